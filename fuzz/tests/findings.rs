//! The crash inputs saved in `seeds/boot_path/`, replayed without libFuzzer. Each file is
//! named after the known engine bug it meets (`KNOWN_ENGINE_BUGS`): it must pass with that
//! one check relaxed, so it meets nothing else. Once the engine is fixed it passes with
//! nothing relaxed too (then the name can leave `KNOWN_ENGINE_BUGS`; the input stays as a
//! regression seed).
use brickless_fuzz::boot_path::{run_with, KNOWN_ENGINE_BUGS};
use std::path::PathBuf;

fn findings() -> Vec<(PathBuf, &'static str, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/boot_path");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("seeds/boot_path exists") {
        let path = entry.expect("readable directory").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let bug = KNOWN_ENGINE_BUGS
            .iter()
            .copied()
            .filter(|k| stem.starts_with(k))
            .max_by_key(|k| k.len())
            .unwrap_or_else(|| panic!("{}: not named after a known bug", path.display()));
        let data = std::fs::read(&path).expect("readable seed");
        out.push((path, bug, data));
    }
    assert!(!out.is_empty());
    out
}

fn passes(data: &[u8], relax: &[&str]) -> bool {
    std::panic::catch_unwind(|| run_with(data, relax)).is_ok()
}

#[test]
fn each_finding_meets_only_its_known_bug() {
    for (path, bug, data) in findings() {
        assert!(
            passes(&data, &[bug]),
            "{}: fails even with {bug} relaxed",
            path.display()
        );
        if passes(&data, &[]) {
            eprintln!(
                "{}: passes with nothing relaxed: {bug} looks fixed",
                path.display()
            );
        }
    }
}

/// Run with `--ignored` once the engine fixes land: every finding must then pass as is.
#[test]
#[ignore]
fn findings_fixed() {
    let open: Vec<_> = findings()
        .into_iter()
        .filter(|(_, _, data)| !passes(data, &[]))
        .map(|(path, bug, _)| format!("{} ({bug})", path.display()))
        .collect();
    assert!(open.is_empty(), "still failing: {open:?}");
}
