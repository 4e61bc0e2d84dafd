//! Builds firmware from `firmware/` (its own workspace) for one board at a time, and turns the
//! ELF into the bytes that go into flash.
use crate::{repo_root, Machine};
use brickless_image::firmware::FirmwareImage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Where firmware builds go (outside the host workspace's target, one per tree).
pub fn target_dir() -> PathBuf {
    repo_root().join("firmware/target")
}

/// Built ELF files, by (package, features, target); builds run one at a time because every
/// board's build writes the same output path.
static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();

/// Builds `package` in release mode with `features` (one of them the board) for `target`,
/// and returns a copy of `artifact` (a binary's name, or a library file) that later builds
/// will not overwrite.
pub fn build(package: &str, artifact: &str, features: &[&str], target: &str) -> PathBuf {
    let key = format!("{package}/{artifact}/{}/{target}", features.join(","));
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let dir = target_dir();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(repo_root().join("firmware"))
        .env("CARGO_TARGET_DIR", &dir)
        // The host build's settings must not leak into the thumb build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--release", "--locked", "-q", "-p", package])
        .args(["--no-default-features", "--features", &features.join(",")])
        .args(["--target", target]);
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "firmware build failed: {key}");
    let built_file = dir.join(target).join("release").join(artifact);
    let keep = dir.join(format!("{}.out", key.replace(['/', ','], "_")));
    std::fs::copy(&built_file, &keep).expect("copy the build output");
    built.insert(key, keep.clone());
    keep
}

/// The bootloader for `machine`, with SMP recovery unless `recovery` is false.
pub fn bootloader(machine: &Machine, recovery: bool) -> PathBuf {
    let board = format!("board-{}", machine.board);
    let mut features = vec![board.as_str()];
    if recovery {
        features.push("recovery");
    }
    build(
        "brickless-bootloader",
        "brickless-bootloader",
        &features,
        machine.target,
    )
}

/// The Rust example application for `machine`.
pub fn example_app(machine: &Machine) -> PathBuf {
    let board = format!("board-{}", machine.board);
    build(
        "brickless-example-app",
        "brickless-example-app",
        &[&board],
        machine.target,
    )
}

/// The C library (`libbrickless_app.a`) for `machine`.
pub fn c_library(machine: &Machine) -> PathBuf {
    let board = format!("board-{}", machine.board);
    build(
        "brickless-app-c",
        "libbrickless_app.a",
        &[&board],
        machine.target,
    )
}

/// The flash bytes of an ELF: its loadable segments from `base`, gaps filled with `fill`.
pub fn elf_bytes(elf: &Path, base: u32, fill: u8) -> Vec<u8> {
    let bytes = std::fs::read(elf).expect("read the ELF");
    let image = FirmwareImage::parse_elf(&bytes, elf).expect("a firmware ELF");
    let start = image.start_address().expect("segments");
    assert_eq!(
        start,
        base,
        "{} starts at {start:#x}, not {base:#x}",
        elf.display()
    );
    let end = image.end_address().expect("segments");
    let mut out = vec![fill; (end - u64::from(base)) as usize];
    for s in image.segments() {
        let at = (s.address - base) as usize;
        out[at..at + s.data.len()].copy_from_slice(&s.data);
    }
    out
}
