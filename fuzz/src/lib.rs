//! The fuzz targets' logic, as a library so that tests can replay saved inputs without
//! libFuzzer (`cargo test` in this directory).
pub mod boot_path;
pub mod input;
pub mod rom_frames;
pub mod smp_request_decoder;
pub mod smp_server;

/// Whether `BRICKLESS_FUZZ_TRACE` is set: the targets then print what they do (for replaying
/// one input by hand; never while fuzzing).
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("BRICKLESS_FUZZ_TRACE").is_some())
}

/// `eprintln!` when tracing.
#[macro_export]
macro_rules! trace {
    ($($t:tt)*) => {
        if $crate::tracing() {
            eprintln!($($t)*);
        }
    };
}

/// The check names in `BRICKLESS_FUZZ_RELAX` (comma-separated, see the README): for long
/// runs against an engine that still has one of the bugs in `boot_path::KNOWN_ENGINE_BUGS`
/// (all fixed on main). Every check is on by default.
pub fn relax_from_env() -> &'static [&'static str] {
    static LIST: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        let names = std::env::var("BRICKLESS_FUZZ_RELAX").unwrap_or_default();
        names
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| &*Box::leak(s.to_string().into_boxed_str()))
            .collect()
    })
}
