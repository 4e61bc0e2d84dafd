//! Sequences of SMP packets answered by one `Server` over the engine's `Updater` on the
//! flash model: see `src/smp_server.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brickless_fuzz::smp_server::run(data));
