//! Bad inputs to `brickless keygen` / `image sign` / `image verify`: a named error, a non-zero
//! exit, and no output file created or changed.
mod common;

use std::path::{Path, PathBuf};

use brickless_test_support::pseudo_random_bytes;
use common::*;

struct Fixture {
    dir: tempfile::TempDir,
    key: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    run_ok(
        brickless()
            .args(["keygen", "-t", "ed25519", "-k"])
            .arg(&key),
    );
    Fixture { dir, key }
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `image sign` with small-slot defaults; `extra` go before the file names.
    fn sign(&self, input: &Path, output: &Path, extra: &[&str]) -> std::process::Command {
        let mut cmd = brickless();
        cmd.args(["image", "sign", "-k"])
            .arg(&self.key)
            .args(["-v", "1.0.0", "-H", "0x200", "--pad-header", "-S", "0x8000"])
            .args(extra)
            .arg(input)
            .arg(output);
        cmd
    }
}

/// An existing output that a failed command must leave as it was.
fn existing_output(f: &Fixture, name: &str) -> PathBuf {
    let out = f.path(name);
    std::fs::write(&out, b"previous contents").unwrap();
    out
}

fn assert_untouched(out: &Path) {
    assert_eq!(std::fs::read(out).unwrap(), b"previous contents");
}

#[test]
fn missing_input_is_named() {
    let f = fixture();
    let out = f.path("out.bin");
    let err = run_fails(&mut f.sign(&f.path("nope.bin"), &out, &[]));
    assert!(
        err.contains("nope.bin") && err.contains("cannot read"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn malformed_hex_names_the_line() {
    let f = fixture();
    let input = f.path("app.hex");
    // Second record's checksum is wrong.
    std::fs::write(
        &input,
        ":020000040800F2\n:0400000001020304F1\n:00000001FF\n",
    )
    .unwrap();
    let out = existing_output(&f, "out.bin");
    let err = run_fails(&mut f.sign(&input, &out, &[]));
    assert!(err.contains("app.hex") && err.contains("line 2"), "{err}");
    assert_untouched(&out);

    std::fs::write(&input, ":020000040800F2\n:0400000001020304F2\n").unwrap();
    let err = run_fails(&mut f.sign(&input, &out, &[]));
    assert!(err.contains("end-of-file"), "{err}");
    assert_untouched(&out);
}

#[test]
fn image_too_big_for_slot_names_the_sizes() {
    let f = fixture();
    let input = f.path("big.bin");
    std::fs::write(&input, pseudo_random_bytes(0x9000, 1)).unwrap();
    let out = existing_output(&f, "out.bin");
    let err = run_fails(&mut f.sign(&input, &out, &[]));
    assert!(
        err.contains("does not fit") && err.contains(&(0x9000 + 0x200).to_string()),
        "{err}"
    );
    assert!(err.contains("32768"), "slot size named: {err}");
    assert_untouched(&out);

    // Fits alone but not with the trailer (3120 bytes at align 8, 128 sectors).
    std::fs::write(&input, pseudo_random_bytes(0x7400, 1)).unwrap();
    let err = run_fails(&mut f.sign(&input, &out, &["--align", "8", "--pad"]));
    assert!(err.contains("trailer") && err.contains("0x8000"), "{err}");
    assert_untouched(&out);
}

#[test]
fn wrong_key_and_tampering_fail_verification() {
    let f = fixture();
    let input = f.path("app.bin");
    std::fs::write(&input, pseudo_random_bytes(2000, 2)).unwrap();
    let signed = f.path("app.signed.bin");
    run_ok(&mut f.sign(&input, &signed, &[]));
    run_ok(
        brickless()
            .args(["image", "verify", "-k"])
            .arg(&f.key)
            .arg(&signed),
    );

    let other = f.path("other.pem");
    run_ok(
        brickless()
            .args(["keygen", "-t", "ecdsa-p256", "-k"])
            .arg(&other),
    );
    let err = run_fails(
        brickless()
            .args(["image", "verify", "-k"])
            .arg(&other)
            .arg(&signed),
    );
    assert!(
        err.contains("failed verification") && err.contains("not trusted"),
        "{err}"
    );

    let mut bytes = std::fs::read(&signed).unwrap();
    bytes[0x200 + 10] ^= 1;
    let tampered = f.path("tampered.bin");
    std::fs::write(&tampered, bytes).unwrap();
    let err = run_fails(
        brickless()
            .args(["image", "verify", "-k"])
            .arg(&f.key)
            .arg(&tampered),
    );
    assert!(err.contains("hash mismatch"), "{err}");

    let err = run_fails(brickless().args(["image", "inspect"]).arg(&input));
    assert!(err.contains("not an MCUboot image"), "{err}");
}

#[test]
fn signing_needs_a_private_key_and_keygen_never_overwrites() {
    let f = fixture();
    let public = f.path("pub.pem");
    run_ok(
        brickless()
            .args(["getpub", "-e", "pem", "-k"])
            .arg(&f.key)
            .arg("-o")
            .arg(&public),
    );
    let input = f.path("app.bin");
    std::fs::write(&input, pseudo_random_bytes(100, 3)).unwrap();
    let out = f.path("out.bin");
    let public_only = Fixture {
        dir: tempfile::tempdir().unwrap(),
        key: public,
    };
    let err = run_fails(&mut public_only.sign(&input, &out, &[]));
    assert!(err.contains("public key"), "{err}");
    assert!(!out.exists());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    }
    let before = std::fs::read(&f.key).unwrap();
    let err = run_fails(
        brickless()
            .args(["keygen", "-t", "ed25519", "-k"])
            .arg(&f.key),
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&f.key).unwrap(), before);
}

#[test]
fn hex_output_of_a_bin_needs_an_address() {
    let f = fixture();
    let input = f.path("app.bin");
    std::fs::write(&input, pseudo_random_bytes(100, 4)).unwrap();
    let out = f.path("out.hex");
    let err = run_fails(&mut f.sign(&input, &out, &[]));
    assert!(err.contains("--hex-addr"), "{err}");
    assert!(!out.exists());
}
