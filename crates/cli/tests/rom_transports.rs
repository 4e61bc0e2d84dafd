//! `brickless rom` over the I2C (AN4221) and USB DFU (DfuSe) transports when the device is
//! not there or the arguments are wrong: each failure is a named error, nothing hangs and
//! nothing is written to disk. (The protocols themselves are tested in brickless-rom.)
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_brickless");

/// Runs the CLI, failing the test if it takes longer than `limit` (a hang).
fn run(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start brickless");
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("brickless {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn failed(o: &Output) -> bool {
    !o.status.success()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn i2c_bus_that_does_not_exist_is_a_named_error_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("no-such-i2c-bus");
    let bus = bus.to_str().unwrap();
    for extra in [&[][..], &["--addr", "0x56"][..]] {
        let mut args = vec!["rom", "info", "--i2c", bus];
        args.extend_from_slice(extra);
        let o = run(&args, LIMIT);
        let e = stderr(&o);
        assert!(failed(&o), "{args:?} succeeded");
        assert!(e.contains("brickless::rom::i2c_open"), "{e}");
        assert!(e.contains(bus), "error does not name the path: {e}");
    }
}

#[test]
fn i2c_address_is_checked() {
    let o = run(
        &["rom", "info", "--i2c", "/dev/i2c-1", "--addr", "0x80"],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("7-bit I2C address"), "{}", stderr(&o));
    let o = run(
        &["rom", "info", "--tcp", "127.0.0.1:1", "--addr", "0x56"],
        LIMIT,
    );
    assert!(failed(&o));
    assert!(stderr(&o).contains("use it with --i2c"), "{}", stderr(&o));
}

#[test]
fn malformed_dfu_vid_pid_is_a_named_error() {
    for bad in ["zz:1", "0483", "10483:df11", "0483:df11:1"] {
        let o = run(&["rom", "info", "--dfu", bad], LIMIT);
        let e = stderr(&o);
        assert!(failed(&o), "--dfu {bad} succeeded");
        assert!(e.contains("brickless::rom::bad_vid_pid"), "{bad}: {e}");
        assert!(e.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn absent_dfu_device_is_reported_not_waited_for() {
    let t0 = Instant::now();
    let o = run(&["rom", "info", "--dfu", "1234:5678"], LIMIT);
    let e = stderr(&o);
    assert!(failed(&o));
    assert!(e.contains("brickless::rom::dfu_not_found"), "{e}");
    assert!(e.contains("no DFU device 1234:5678 was found"), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn exactly_one_transport_is_required() {
    let o = run(
        &["rom", "info", "--dfu", "1234:5678", "--tcp", "127.0.0.1:1"],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));

    let o = run(
        &[
            "rom",
            "erase",
            "--mass",
            "--i2c",
            "/dev/i2c-1",
            "--port",
            "/dev/null",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = run(&["rom", "info"], LIMIT);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    for flag in ["--port", "--tcp", "--i2c", "--dfu"] {
        assert!(
            e.contains(flag),
            "missing-transport error does not list {flag}: {e}"
        );
    }
}

#[test]
fn write_of_a_bad_file_over_a_failing_transport_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.dfu");
    std::fs::write(&bad, b"this is not a DfuSe file").unwrap();
    let bad = bad.to_str().unwrap();
    let bus = dir.path().join("no-such-i2c-bus");
    let before = entries(dir.path());

    let o = run(
        &["rom", "write", bad, "--i2c", bus.to_str().unwrap()],
        LIMIT,
    );
    assert!(failed(&o));
    assert!(stderr(&o).contains("brickless::rom::"), "{}", stderr(&o));
    assert_eq!(entries(dir.path()), before);

    // Over DFU the file is checked before any USB work.
    let o = run(&["rom", "write", bad, "--dfu", "1234:5678"], LIMIT);
    let e = stderr(&o);
    assert!(failed(&o));
    assert!(e.contains("brickless::rom::dfu_file"), "{e}");
    assert_eq!(entries(dir.path()), before);

    let o = run(&["rom", "verify", bad, "--dfu=1234:5678"], LIMIT);
    assert!(failed(&o));
    assert!(
        stderr(&o).contains("brickless::rom::dfu_file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(entries(dir.path()), before);
}

#[test]
fn dfu_file_for_another_device_is_refused_before_usb() {
    use brickless_rom::dfu_file::DfuSeBuilder;
    let dir = tempfile::tempdir().unwrap();
    // Built for ST's ROM DFU, 0483:df11.
    let bytes = DfuSeBuilder::single(0x0800_0000, &[0xA5; 64])
        .build()
        .unwrap();
    let file = dir.path().join("fw.dfu");
    std::fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap();
    let before = entries(dir.path());

    let o = run(&["rom", "write", file, "--dfu", "1234:5678"], LIMIT);
    let e = stderr(&o);
    assert!(failed(&o));
    assert!(e.contains("brickless::rom::dfu_mismatch"), "{e}");
    assert!(e.contains("0483:df11"), "{e}");

    // The matching device is looked for (and is absent here).
    let o = run(&["rom", "write", file, "--dfu"], LIMIT);
    let e = stderr(&o);
    assert!(failed(&o));
    assert!(e.contains("brickless::rom::dfu_not_found"), "{e}");
    assert_eq!(entries(dir.path()), before);
}
