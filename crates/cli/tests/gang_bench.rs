//! Gang programming's speed goal: eight virtual boards on modelled 115200-baud lines take at
//! most 1.2x the wall time of one. Alone in its test binary, so no other test competes for
//! the CPU while it is timed. Prints the ratio against the limit.
mod common;

use std::time::Instant;

use brickless_test_support::pseudo_random_bytes;
use common::{brickless, run_ok, SimProcess};

const LIMIT: f64 = 1.2;

/// A virtual STM32L073 ROM bootloader on TCP, its line modelled at 115200 baud 8E1.
fn rom_sim(dir: &std::path::Path, n: usize) -> SimProcess {
    let mut args: Vec<std::ffi::OsString> = [
        "--rom",
        "--part",
        "stm32l073rz",
        "--tcp",
        "127.0.0.1:0",
        "--no-pty",
        "--line-rate",
        "--baud",
        "115200",
        "--checksum",
        "--flash",
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    args.push(dir.join(format!("b{n}.flash")).into());
    SimProcess::start(&args)
}

fn gang_seconds(sims: &[SimProcess], file: &std::path::Path) -> f64 {
    let mut cmd = brickless();
    cmd.args(["rom", "write", "--json"]);
    for s in sims {
        cmd.args(["--tcp", &s.addr()]);
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
    let one: Vec<SimProcess> = vec![rom_sim(dir.path(), 100)];
    let t1 = gang_seconds(&one, &file);
    drop(one);
    let eight: Vec<SimProcess> = (0..8).map(|n| rom_sim(dir.path(), n)).collect();
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
