//! Entry points a bootloader would call, so the verifier is monomorphised and its
//! stack can be measured on the real target (`measure.py`).
#![no_std]

use brickless_image::{verify_image, PublicKey, SliceFlash};

/// Verify an Ed25519-signed image held in memory; 0 on success.
///
/// # Safety
/// `image` must point to `len` readable bytes and `key` to 32 bytes.
#[cfg(feature = "ed25519")]
#[no_mangle]
pub unsafe extern "C" fn stack_verify_ed25519(
    image: *const u8,
    len: u32,
    key: *const [u8; 32],
) -> i32 {
    let bytes = core::slice::from_raw_parts(image, len as usize);
    let keys = [PublicKey::Ed25519(*key)];
    verify_image(&mut SliceFlash::new(bytes), 0, len, &keys).map_or(-1, |_| 0)
}

/// Verify an ECDSA P-256-signed image held in memory; 0 on success.
///
/// # Safety
/// `image` must point to `len` readable bytes and `key` to 65 bytes.
#[cfg(feature = "p256")]
#[no_mangle]
pub unsafe extern "C" fn stack_verify_p256(
    image: *const u8,
    len: u32,
    key: *const [u8; 65],
) -> i32 {
    let bytes = core::slice::from_raw_parts(image, len as usize);
    let keys = [PublicKey::EcdsaP256(*key)];
    verify_image(&mut SliceFlash::new(bytes), 0, len, &keys).map_or(-1, |_| 0)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
