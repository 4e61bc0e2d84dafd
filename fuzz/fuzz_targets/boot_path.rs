//! The update engine's boot path over arbitrary flash content: see `src/boot_path.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brickless_fuzz::boot_path::run(data));
