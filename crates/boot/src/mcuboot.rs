//! The real [`ImageCheck`]: MCUboot image format, SHA-256 and a signature by one of the given
//! keys (ed25519 or ECDSA P-256), through `brickless-image`'s streaming verifier.
use crate::{ImageCheck, ImageInfo, ImageVersion};
use brickless_image::{verify_image, PublicKey};
use embedded_storage::nor_flash::ReadNorFlash;

/// Accepts an image only if its hash matches and a signature by one of `keys` verifies.
/// With no keys nothing verifies (a hash alone is not enough to boot).
#[derive(Clone, Copy, Debug)]
pub struct McubootCheck<'k> {
    pub keys: &'k [PublicKey],
}

impl<F: ReadNorFlash> ImageCheck<F> for McubootCheck<'_> {
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo> {
        if self.keys.is_empty() {
            return None;
        }
        let v = verify_image(flash, offset, max_size, self.keys).ok()?;
        v.key_index?;
        let h = v.header.version;
        Some(ImageInfo {
            version: ImageVersion {
                major: h.major,
                minor: h.minor,
                revision: h.revision,
                build: h.build,
            },
            security_counter: v.security_counter.unwrap_or(0),
            size: v.tlv_end,
            hash: v.hash,
        })
    }
}
