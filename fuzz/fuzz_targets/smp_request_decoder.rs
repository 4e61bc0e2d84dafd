//! The SMP server's CBOR request-body decoders on raw and structured bodies: see
//! `src/smp_request_decoder.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brickless_fuzz::smp_request_decoder::run(data));
