//! The virtual ST ROM bootloader's USART, I2C and DfuSe frame handling: see
//! `src/rom_frames.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brickless_fuzz::rom_frames::run(data));
