//! The committed header is what cbindgen makes of the source now.
use std::path::Path;
use std::process::Command;

use brickless_test_support::missing_peer;

#[test]
fn the_committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let fresh = out.path().join("brickless.h");
    let run = Command::new("cbindgen")
        .current_dir(dir)
        .args([
            "--config",
            "cbindgen.toml",
            "--crate",
            "brickless-c",
            "--quiet",
            "--output",
        ])
        .arg(&fresh)
        .arg(".")
        .output();
    let run = match run {
        Ok(r) => r,
        Err(_) => return missing_peer("cbindgen"),
    };
    assert!(
        run.status.success(),
        "cbindgen failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let committed = std::fs::read_to_string(dir.join("include/brickless.h")).unwrap();
    let fresh = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        committed == fresh,
        "crates/c/include/brickless.h is stale: run `cbindgen --config cbindgen.toml --crate brickless-c --output include/brickless.h .` in crates/c"
    );
}
