//! Gang programming: `brickless rom write` and `brickless upgrade` on many virtual devices at
//! once. A device that dies mid-way is reported failed while the others finish and verify,
//! and the exit status counts the failures.
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use brickless_test_support::pseudo_random_bytes;
use common::{brickless, run, run_fails, run_ok, signed_app, SimProcess};

/// A virtual device process, killed when dropped.
struct Sim {
    _process: SimProcess,
    addr: String,
}

impl Sim {
    fn start(args: &[&str], flash: &Path) -> Sim {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        all.extend(["--no-pty".into(), "--flash".into(), flash.into()]);
        let process = SimProcess::start(&all);
        Sim {
            addr: process.addr(),
            _process: process,
        }
    }

    /// A virtual ST ROM bootloader (STM32L073, the module a base board updates) on TCP with
    /// its serial line modelled at 115200 baud 8E1.
    fn rom(dir: &Path, n: usize) -> Sim {
        Sim::start(
            &[
                "--rom",
                "--part",
                "stm32l073rz",
                "--tcp",
                "127.0.0.1:0",
                "--line-rate",
                "--baud",
                "115200",
                "--checksum",
            ],
            &dir.join(format!("rom{n}.flash")),
        )
    }

    /// A virtual MCU running the update engine, SMP on UDP.
    fn mcu(dir: &Path, n: usize) -> Sim {
        Sim::start(
            &["--udp", "127.0.0.1:0"],
            &dir.join(format!("mcu{n}.flash")),
        )
    }
}

/// `brickless upgrade` with every sim as a --udp target.
fn upgrade_all(sims: &[Sim]) -> std::process::Command {
    let mut cmd = brickless();
    cmd.arg("upgrade");
    for s in sims {
        cmd.args(["--udp", &s.addr]);
    }
    cmd
}

fn firmware(dir: &Path, len: usize) -> PathBuf {
    let p = dir.join("module.bin");
    std::fs::write(&p, pseudo_random_bytes(len, 7)).unwrap();
    p
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn rom_verify(sim: &Sim, file: &Path) -> bool {
    run(brickless()
        .args(["rom", "verify", "--tcp", &sim.addr])
        .arg(file))
    .status
    .success()
}

#[test]
fn a_killed_device_fails_alone_and_the_other_seven_finish_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let sims: Vec<Sim> = (0..8).map(|n| Sim::rom(dir.path(), n)).collect();
    // About 2.5 s of modelled line time per device: long enough to die mid-way.
    let file = firmware(dir.path(), 24 * 1024);
    let mut cmd = brickless();
    cmd.args(["rom", "write", "--json"]);
    for s in &sims {
        cmd.args(["--tcp", &s.addr]);
    }
    let gang = cmd
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let mut sims = sims;
    let victim = sims.remove(3);
    let victim_addr = victim.addr.clone();
    drop(victim);
    let out = gang.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status counts the one failure"
    );
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for (i, r) in rows.iter().enumerate() {
        if i == 3 {
            assert_eq!(r["target"], format!("tcp:{victim_addr}"));
            assert_eq!(r["ok"], false, "{r}");
            assert!(!r["error"]["message"].as_str().unwrap().is_empty(), "{r}");
        } else {
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["result"]["bytes"], 24 * 1024, "{r}");
            assert_eq!(r["result"]["verified"], true, "{r}");
        }
    }
    // The seven hold the file, as a separate verify reads it back.
    for s in &sims {
        assert!(rom_verify(s, &file), "{} does not hold the file", s.addr);
    }
}

#[test]
fn targets_come_from_a_file_and_bad_lists_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sims: Vec<Sim> = (0..2).map(|n| Sim::rom(dir.path(), n)).collect();
    let file = firmware(dir.path(), 2048);
    let list = dir.path().join("line.txt");
    std::fs::write(
        &list,
        format!(
            "# the bench\ntcp:{}\ntcp {}  # second board\n",
            sims[0].addr, sims[1].addr
        ),
    )
    .unwrap();
    let out = run_ok(
        brickless()
            .args(["rom", "write", "--targets"])
            .arg(&list)
            .arg(&file),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 of 2 devices succeeded"), "{text}");
    assert_eq!(
        text.matches("STM32L07x/L08x: 2048 bytes, verified").count(),
        2,
        "{text}"
    );

    // A bad line, a repeated board, a UDP target, a bad file: refused before any board is
    // touched (the flash files keep what the first write left).
    // (The device saves its flash file once the connection closes.)
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before: Vec<Vec<u8>> = (0..2)
        .map(|n| std::fs::read(dir.path().join(format!("rom{n}.flash"))).unwrap())
        .collect();
    let refused = |args: &[&str], file: &Path, why: &str| {
        let err = run_fails(brickless().args(["rom", "write"]).args(args).arg(file));
        assert!(err.contains(why), "{args:?}: {err}");
    };
    let list_arg = list.to_str().unwrap();
    std::fs::write(&list, format!("tcp:{}\nbogus line\n", sims[0].addr)).unwrap();
    refused(&["--targets", list_arg], &file, "line 2");
    let (a, b) = (sims[0].addr.as_str(), sims[1].addr.as_str());
    refused(&["--tcp", a, "--tcp", a], &file, "named twice");
    std::fs::write(&list, "udp:127.0.0.1:1337\n").unwrap();
    refused(
        &["--targets", list_arg],
        &file,
        "ROM bootloaders are reached over",
    );
    let empty = dir.path().join("empty.hex");
    std::fs::write(&empty, ":00000001FF\n").unwrap();
    refused(&["--tcp", a, "--tcp", b], &empty, "holds no data");
    std::thread::sleep(std::time::Duration::from_millis(200));
    for (n, was) in before.iter().enumerate() {
        let now = std::fs::read(dir.path().join(format!("rom{n}.flash"))).unwrap();
        assert!(now == *was, "board {n} changed");
    }
    // Other ROM commands take one board.
    let o = run(brickless().args([
        "rom",
        "info",
        "--tcp",
        &sims[0].addr,
        "--tcp",
        &sims[1].addr,
    ]));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only `rom write` programs several"),
        "{o:?}"
    );
}

#[test]
fn upgrade_updates_eight_devices_at_once_and_counts_failures() {
    let dir = tempfile::tempdir().unwrap();
    let sims: Vec<Sim> = (0..8).map(|n| Sim::mcu(dir.path(), n)).collect();
    let (v1, v2) = (
        signed_app(dir.path(), 1, 30_000),
        signed_app(dir.path(), 2, 40_000),
    );
    // Each device starts empty: its recovery takes v1 for good (no test request, which
    // recovery would refuse as already pending).
    let out = run_ok(upgrade_all(&sims).arg(&v1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("1.0.0 runs and is confirmed").count(),
        8,
        "{text}"
    );
    let mut cmd = upgrade_all(&sims);
    cmd.arg("--json");
    // A ninth device that is not there: it fails, the eight succeed, the exit status is 1.
    cmd.args(["--udp", "127.0.0.1:9", "--timeout", "1"]);
    let out = run(cmd.arg(&v2));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 9);
    for r in &rows[..8] {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["result"]["version"], "2.0.0");
        assert_eq!(r["result"]["confirmed"], true);
    }
    assert_eq!(rows[8]["ok"], false);
    assert_eq!(rows[8]["error"]["kind"], "connection", "{}", rows[8]);
    for s in &sims {
        let list = run_ok(brickless().args(["smp", "--udp", &s.addr, "image", "list", "--json"]));
        let images = json(&list);
        assert_eq!(images[0]["version"], "2.0.0", "{images}");
        assert_eq!(images[0]["active"], true);
        assert_eq!(images[0]["confirmed"], true);
    }
    // A second run finds v2 running everywhere and sends nothing.
    let out = run_ok(upgrade_all(&sims).arg(&v2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("8 of 8 devices succeeded"), "{text}");
    assert_eq!(
        text.matches("2.0.0 already runs and is confirmed").count(),
        8,
        "{text}"
    );
}
