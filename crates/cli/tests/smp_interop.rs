//! `brickless sim` (the virtual STM32 running brickless) driven by smpmgr, the real mcumgr
//! peer, over UDP and over the pty: echo, state read, a first image through recovery, a test
//! upgrade, confirm, and an unconfirmed trial reverted at the next reset. Then the same
//! device driven by `brickless smp` and `brickless upgrade`.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use brickless_test_support::missing_peer;
use common::run_ok as run;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_brickless");

/// A running `brickless sim`, killed on drop.
struct Sim {
    child: Child,
    udp: String,
    pty: PathBuf,
    log: PathBuf,
}

impl Sim {
    /// Starts the virtual MCU serving UDP on `udp` (smpmgr always uses port 1337, so each
    /// test takes its own loopback address) and a pty linked at DIR/ttySMP.
    fn start(dir: &Path, udp: &str, extra: &[&str]) -> Sim {
        let pty = dir.join("ttySMP");
        let log = dir.join("sim.log");
        let mut child = Command::new(BIN)
            .args(["sim", "--flash"])
            .arg(dir.join("dev.flash"))
            .args(["--udp", udp, "--link"])
            .arg(&pty)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start brickless sim");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(
            first.starts_with("serving SMP on udp "),
            "first line: {first}"
        );
        let udp = first
            .split("udp ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("udp address in the first line")
            .to_string();
        Sim {
            child,
            udp,
            pty,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Signs a pseudo-random payload as version `major.0.0` with the development key.
fn signed(dir: &Path, major: u8, size: usize) -> PathBuf {
    common::signed_app(dir, major, size)
}

fn smpmgr_present() -> bool {
    let ok = Command::new("smpmgr")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing_peer("smpmgr");
    }
    ok
}

/// smpmgr with the connection flags `via`.
fn smpmgr(via: &[String], args: &[&str]) -> String {
    text(&run(Command::new("smpmgr")
        .args(via)
        .args(["--timeout", "10"])
        .args(args)))
}

/// The running image from smpmgr's `image state-read`: (version, confirmed).
fn running(via: &[String]) -> (String, bool) {
    let out = smpmgr(via, &["image", "state-read"]);
    for block in out.split("ImageState(").skip(1) {
        if block.contains("slot=0,") && block.contains("active=True") {
            let version = block
                .split("version='")
                .nth(1)
                .and_then(|s| s.split('\'').next())
                .unwrap_or_default()
                .to_string();
            return (version, block.contains("confirmed=True"));
        }
    }
    panic!("no active image in slot 0:\n{out}")
}

fn smpmgr_flow(via: &[String], sim: &Sim, dir: &Path) {
    let (v1, v2, v3) = (
        signed(dir, 1, 30_000),
        signed(dir, 2, 42_000),
        signed(dir, 3, 36_000),
    );
    assert!(smpmgr(via, &["os", "echo", "ping-42"]).contains("ping-42"));

    // A blank device serves recovery: upload + reset installs the first image.
    smpmgr(via, &["image", "upload", v1.to_str().unwrap()]);
    smpmgr(via, &["os", "reset"]);
    assert_eq!(running(via), ("1.0.0".into(), true));

    // A test upgrade (upload to slot 1, mark by hash, reset): v2 boots as a trial.
    smpmgr(via, &["upgrade", "--slot", "1", v2.to_str().unwrap()]);
    assert_eq!(running(via), ("2.0.0".into(), false), "v2 runs unconfirmed");
    smpmgr(via, &["image", "state-write", "--confirm"]);
    smpmgr(via, &["os", "reset"]);
    assert_eq!(running(via), ("2.0.0".into(), true), "confirmed v2 stays");

    // v3 is never confirmed: the next reset reverts it.
    smpmgr(via, &["upgrade", "--slot", "1", v3.to_str().unwrap()]);
    assert_eq!(running(via), ("3.0.0".into(), false));
    smpmgr(via, &["os", "reset"]);
    assert_eq!(
        running(via),
        ("2.0.0".into(), true),
        "the unconfirmed v3 was reverted"
    );
    let log = sim.log();
    assert!(
        log.contains("booted 3.0.0 (trial boot of the update)"),
        "{log}"
    );
    assert!(
        log.contains("booted 2.0.0 (the unconfirmed trial was reverted)"),
        "{log}"
    );
}

#[test]
fn smpmgr_over_udp_installs_tests_confirms_and_sees_a_revert() {
    if !smpmgr_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        dir.path(),
        "127.0.0.61:1337",
        &["--no-self-confirm", "--no-pty"],
    );
    let via = vec!["--ip".to_string(), "127.0.0.61".to_string()];
    smpmgr_flow(&via, &sim, dir.path());
}

#[test]
fn smpmgr_drives_bank_swap_updates_the_same_way() {
    // The update is staged in the other bank and the banks flip at reset: smpmgr sees the
    // same slots, trial, confirmation and revert as with the swap strategy.
    if !smpmgr_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        dir.path(),
        "127.0.0.63:1337",
        &["--no-self-confirm", "--no-pty", "--strategy", "bank-swap"],
    );
    let via = vec!["--ip".to_string(), "127.0.0.63".to_string()];
    smpmgr_flow(&via, &sim, dir.path());
    drop(sim);
    // Nothing was copied: each image's one sector was erased once, by its upload, in the
    // bank it was staged in (v1 and v3 in bank 2, v2 in bank 1), and four flips (v1, v2,
    // v3, the revert) leave bank 1 at the base.
    let flash = brickless_flash_model::SimFlash::open(dir.path().join("dev.flash")).unwrap();
    let layout = brickless_boot::default_layout(
        &flash.geometry().clone(),
        brickless_boot::StrategyKind::BankSwap,
    )
    .unwrap();
    let (p, s) = (layout.spec().primary, layout.spec().secondary);
    assert!(!flash.banks_swapped() && !flash.swap_option());
    assert_eq!(flash.wear(p.start), Some(1), "bank 1's slot: v2");
    assert_eq!(flash.wear(s.start), Some(2), "bank 2's slot: v1 and v3");
    for sector in [p.start + 0x2_0000, s.start + 0x2_0000] {
        assert_eq!(
            flash.wear(sector),
            Some(0),
            "{sector:#x}: no copy, no erase"
        );
    }
}

#[test]
fn sim_refuses_bank_swap_on_a_single_bank_part() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "sim",
            "--part",
            "stm32f407vg",
            "--strategy",
            "bank-swap",
            "--flash",
        ])
        .arg(dir.path().join("f4.flash"))
        .args(["--udp", "127.0.0.64:1337", "--no-pty"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no bank-swap layout for stm32f407vg"), "{err}");
    assert!(err.contains("two equal banks"), "{err}");
}

#[test]
fn smpmgr_over_the_pty_installs_tests_confirms_and_sees_a_revert() {
    if !smpmgr_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "127.0.0.62:0", &["--no-self-confirm"]);
    let via = vec!["--port".to_string(), sim.pty.display().to_string()];
    smpmgr_flow(&via, &sim, dir.path());
}

fn brickless(args: &[&str]) -> String {
    text(&run(Command::new(BIN).args(args)))
}

#[test]
fn brickless_upgrade_over_udp_and_pty_and_a_refused_upload_during_a_trial() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "127.0.0.63:0", &["--no-self-confirm"]);
    let (v1, v2, v3) = (
        signed(dir.path(), 1, 20_000),
        signed(dir.path(), 2, 50_000),
        signed(dir.path(), 3, 20_000),
    );
    let udp = ["--udp", sim.udp.as_str()];
    let pty_path = sim.pty.display().to_string();
    let pty = ["--port", pty_path.as_str()];

    // Recovery takes the first image; `upgrade` then finds it running.
    let out = brickless(&[&["smp", "image", "upload", v1.to_str().unwrap()][..], &udp].concat());
    assert!(out.contains("uploaded"), "{out}");
    brickless(&[&["smp", "reset"][..], &udp].concat());
    let list = brickless(&[&["smp", "image", "list"][..], &pty].concat());
    assert!(
        list.contains("slot 0: version 1.0.0  bootable confirmed active"),
        "{list}"
    );

    // One-shot upgrade over the pty: upload, test, reset, wait, confirm.
    let out = brickless(&[&["upgrade", "--json", v2.to_str().unwrap()][..], &pty].concat());
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["version"], "2.0.0");
    assert_eq!(j["confirmed"], true);

    // A trial of v3, left unconfirmed; an upload during it is refused and the revert happens.
    let out = brickless(&[&["upgrade", "--no-confirm", v3.to_str().unwrap()][..], &udp].concat());
    assert!(out.contains("3.0.0 runs as a trial"), "{out}");
    let refused = Command::new(BIN)
        .args([&["smp", "image", "upload", v1.to_str().unwrap()][..], &udp].concat())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("no free slot"), "{err}");
    brickless(&[&["smp", "reset"][..], &udp].concat());
    let list = brickless(&[&["smp", "image", "list", "--json"][..], &udp].concat());
    let images: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(images[0]["version"], "2.0.0", "{list}");
    assert_eq!(images[0]["confirmed"], true, "{list}");

    // The flash lives in its file: a new process boots what the last one left.
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(sim);
    let sim = Sim::start(dir.path(), "127.0.0.63:0", &["--no-pty"]);
    let udp = ["--udp", sim.udp.as_str()];
    let list = brickless(&[&["smp", "image", "list", "--json"][..], &udp].concat());
    let images: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(images[0]["version"], "2.0.0", "after a restart: {list}");
    assert!(sim.log().contains("booted 2.0.0"), "{}", sim.log());
}

#[test]
fn protect_reports_and_sets_write_protection_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "127.0.0.64:0", &[]);
    let udp = ["--udp", sim.udp.as_str()];
    let out = brickless(&[&["smp", "protect"][..], &udp].concat());
    assert!(
        out.contains("read-out protection: level 0")
            && out.contains("bootloader sectors: not write-protected"),
        "{out}"
    );
    // Reading twice changes nothing.
    let again = brickless(&[&["smp", "protect", "--json"][..], &udp].concat());
    let j: serde_json::Value = serde_json::from_str(again.trim()).unwrap();
    assert_eq!(
        (j["rdp"].as_u64(), j["wrp"].as_str()),
        (Some(0), Some("none")),
        "{again}"
    );
    let set = brickless(&[&["smp", "protect", "--set", "--json"][..], &udp].concat());
    let j: serde_json::Value = serde_json::from_str(set.trim()).unwrap();
    assert_eq!(j["wrp"], "full", "{set}");
    assert_eq!(j["reset"], false, "{set}");
    let out = brickless(&[&["smp", "protect"][..], &udp].concat());
    assert!(out.contains("bootloader sectors: write-protected"), "{out}");
}
