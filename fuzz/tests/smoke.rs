//! A few thousand pseudo-random inputs through each target, on stable, without libFuzzer.
fn inputs(n: usize, seed: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed;
    (0..n).map(move |_| {
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let len = (next() % 600) as usize;
        (0..len).map(|_| next() as u8).collect()
    })
}

#[test]
fn boot_path_smoke() {
    for data in inputs(2000, 1) {
        // Nothing relaxed: the engine bugs the harness found are fixed.
        check("boot_path", &data, |d| {
            brickless_fuzz::boot_path::run_with(d, &[])
        });
    }
}

#[test]
fn rom_frames_smoke() {
    for data in inputs(2000, 2) {
        check("rom_frames", &data, brickless_fuzz::rom_frames::run);
    }
}

/// Runs one input; on a failure, saves it under `target/` for `replay` and fails.
fn check(name: &str, data: &[u8], run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    if std::panic::catch_unwind(|| run(data)).is_err() {
        let path = format!(
            "{}/target/smoke-failure-{name}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::write(&path, data).expect("save the failing input");
        panic!("{name} failed; input saved to {path}");
    }
}

/// The checks are not vacuous: framed traffic does program and erase flash on every
/// transport, and all-bad traffic reaches the "flash unchanged" check with commands sent.
#[test]
fn rom_frames_reaches_both_sides() {
    use brickless_fuzz::rom_frames::{run_report, Mode};
    let mut changed = [0u32; 3];
    let mut checked_bad = [0u32; 3];
    for data in inputs(6000, 3) {
        let r = run_report(&data);
        let t = r.transport as usize;
        if r.mode == Mode::Framed && r.changes > 0 {
            changed[t] += 1;
        }
        if r.mode == Mode::AllBad && !r.may_change && data.len() > 40 {
            checked_bad[t] += 1;
        }
    }
    eprintln!("framed runs that changed flash {changed:?}, all-bad runs checked {checked_bad:?}");
    for t in 0..3 {
        assert!(
            changed[t] > 20,
            "transport {t}: framed traffic changed flash {} times",
            changed[t]
        );
        assert!(
            checked_bad[t] > 30,
            "transport {t}: all-bad checks {}",
            checked_bad[t]
        );
    }
}

#[test]
fn smp_request_decoder_smoke() {
    for data in inputs(20000, 4) {
        check(
            "smp_request_decoder",
            &data,
            brickless_fuzz::smp_request_decoder::run,
        );
    }
}

#[test]
fn smp_server_smoke() {
    for data in inputs(2000, 5) {
        check("smp_server", &data, brickless_fuzz::smp_server::run);
    }
}

/// The checks are not vacuous: pseudo-random inputs get malformed requests refused (and
/// checked), flash programmed, uploads matched against the staging area, and reboots into
/// a trial.
#[test]
fn smp_server_reaches_both_sides() {
    let mut total = brickless_fuzz::smp_server::Report::default();
    for data in inputs(2000, 6) {
        let r = brickless_fuzz::smp_server::run_report(&data);
        total.packets += r.packets;
        total.answered += r.answered;
        total.bad_checked += r.bad_checked;
        total.flash_changes += r.flash_changes;
        total.matched += r.matched;
        total.reboots += r.reboots;
        total.trials += r.trials;
    }
    eprintln!("{total:?}");
    assert!(total.bad_checked > 20, "{total:?}");
    assert!(total.flash_changes > 100, "{total:?}");
    assert!(total.matched > 20, "{total:?}");
    assert!(total.reboots > 20, "{total:?}");
    assert!(total.trials > 2, "{total:?}");
}
