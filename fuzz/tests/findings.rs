//! The crash inputs saved in `seeds/boot_path/`, replayed without libFuzzer. Each was
//! minimised from a crash and is named after the engine bug it met (see `KNOWN_ENGINE_BUGS`
//! and the README); all of those are fixed, so every input must now pass with nothing
//! relaxed. They stay as regression seeds (and can be passed to libFuzzer as a corpus).
use brickless_fuzz::boot_path::run_with;
use std::path::PathBuf;

fn findings() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/boot_path");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("seeds/boot_path exists") {
        let path = entry.expect("readable directory").path();
        let data = std::fs::read(&path).expect("readable seed");
        out.push((path, data));
    }
    out.sort();
    assert!(!out.is_empty());
    out
}

/// Runs `data` with nothing relaxed; the panic message if it fails.
fn failure(data: &[u8]) -> Option<String> {
    let e = std::panic::catch_unwind(|| run_with(data, &[])).err()?;
    Some(
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

/// Every saved finding passes as is.
#[test]
fn findings_pass() {
    let open: Vec<_> = findings()
        .into_iter()
        .filter_map(|(path, data)| failure(&data).map(|m| format!("{}: {m}", path.display())))
        .collect();
    assert!(open.is_empty(), "still failing: {open:#?}");
}

/// The same with every prefix of every finding too (each prefix is a complete input: the
/// reader yields zeros past the end), a slightly wider net around each bug. Run with
/// `cargo test --release -- --ignored findings_fixed`.
#[test]
#[ignore]
fn findings_fixed() {
    let mut open = Vec::new();
    for (path, data) in findings() {
        for end in (0..=data.len()).rev() {
            if let Some(m) = failure(&data[..end]) {
                open.push(format!("{} (first {end} bytes): {m}", path.display()));
            }
        }
    }
    assert!(open.is_empty(), "still failing: {open:#?}");
}
