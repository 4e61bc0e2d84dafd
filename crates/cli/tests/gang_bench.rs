//! Gang programming's speed goal: eight virtual boards on modelled 115200-baud lines take at
//! most 1.2x the wall time of one. Alone in its test binary, so no other test competes for
//! the CPU while it is timed. Prints the ratio against the limit.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Instant;

use brickless_test_support::pseudo_random_bytes;
use common::{brickless, run_ok};

const LIMIT: f64 = 1.2;

struct Sim(Child, String);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rom_sim(dir: &std::path::Path, n: usize) -> Sim {
    let mut child = brickless()
        .args([
            "sim",
            "--rom",
            "--part",
            "stm32l073rz",
            "--tcp",
            "127.0.0.1:0",
            "--no-pty",
        ])
        .args(["--line-rate", "--baud", "115200", "--checksum", "--flash"])
        .arg(dir.join(format!("b{n}.flash")))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.split_whitespace().nth(4).unwrap().to_string();
    Sim(child, addr)
}

fn gang_seconds(sims: &[Sim], file: &std::path::Path) -> f64 {
    let mut cmd = brickless();
    cmd.args(["rom", "write", "--json"]);
    for s in sims {
        cmd.args(["--tcp", &s.1]);
    }
    let t0 = Instant::now();
    let out = run_ok(cmd.arg(file));
    let secs = t0.elapsed().as_secs_f64();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), sims.len());
    assert!(
        rows.as_array().unwrap().iter().all(|r| r["ok"] == true),
        "{rows}"
    );
    secs
}

#[test]
fn eight_boards_take_at_most_1_2_times_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("module.bin");
    // 32 KiB: about 3.5 s of line time at 115200 8E1, write and CRC verify.
    std::fs::write(&file, pseudo_random_bytes(32 * 1024, 11)).unwrap();
    let one: Vec<Sim> = vec![rom_sim(dir.path(), 100)];
    let t1 = gang_seconds(&one, &file);
    drop(one);
    let eight: Vec<Sim> = (0..8).map(|n| rom_sim(dir.path(), n)).collect();
    let t8 = gang_seconds(&eight, &file);
    let ratio = t8 / t1;
    println!(
        "gang of 8 at 115200 baud: {t8:.2} s, one board {t1:.2} s, ratio {ratio:.3} (limit {LIMIT})"
    );
    assert!(
        ratio <= LIMIT,
        "8 boards took {ratio:.3}x one board (limit {LIMIT})"
    );
}
