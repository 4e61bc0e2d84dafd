//! `brickless demo` is the README's first command and a test of the whole product: it must
//! exit 0 and tell each step's outcome (recovery install, an upload resumed after a power
//! cut, a swap finished after a power cut, a self-confirmed trial, a reverted trial).
mod common;

use common::{brickless, run_ok};

#[test]
fn demo_runs_every_step_on_the_virtual_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run_ok(brickless().arg("demo").arg("--dir").arg(dir.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    // Each line in this order (the device's own words come from `describe_boot`).
    let steps = [
        "== 1. Make a signing key",
        "v2.0.0: 65,536 B of code -> app-v2.signed.bin",
        "modelled at 115200 baud 8N1",
        "device: no image verifies: serving recovery SMP",
        "device: booted 1.0.0 (installed)",
        "slot 0: 1.0.0  active confirmed",
        "POWER CUT with",
        "device: power cut: the device restarts from its flash",
        "device: booted 1.0.0",
        "client: answers stopped, so it asked the device where to carry on and resumed",
        "uploaded v2.0.0: 66,704 B",
        "slot 1: 2.0.0  pending",
        "power will fail inside operation",
        "device: power lost during boot",
        "device: power cut: the device restarts from its flash",
        "device: booted 2.0.0 (trial boot of the update), the application confirmed itself",
        "the boot that finished the swap:",
        "slot 0: 2.0.0  active confirmed",
        "device: booted 3.0.0 (trial boot of the update), running as an unconfirmed trial",
        "slot 1: 2.0.0  confirmed",
        "device: booted 2.0.0 (the unconfirmed trial was reverted)",
        "== Done: every step passed",
        "of the line's 11,520 B/s (8N1 at 115200 baud)",
        "total: ",
    ];
    let mut at = 0;
    for s in steps {
        match text[at..].find(s) {
            Some(i) => at += i + s.len(),
            None => panic!("`{s}` missing (or out of order) after byte {at} of:\n{text}"),
        }
    }
    // The files it leaves are real: the key verifies the signed images.
    let key = dir.path().join("demo-signing-key.pem");
    for v in 1..=3 {
        let image = dir.path().join(format!("app-v{v}.signed.bin"));
        run_ok(
            brickless()
                .args(["image", "verify", "-k"])
                .arg(&key)
                .arg(&image),
        );
    }
}
