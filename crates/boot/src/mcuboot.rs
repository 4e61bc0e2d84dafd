//! The real [`ImageCheck`]: MCUboot image format, SHA-256 and a signature by one of the given
//! keys (ed25519 or ECDSA P-256), through `brickless-image`'s streaming verifier.
use crate::{Exec, ImageCheck, ImageInfo, ImageVersion};
use brickless_image::{image_dependencies, verify_image, PublicKey};
use embedded_storage::nor_flash::ReadNorFlash;

/// Accepts an image only if its hash matches and a signature by one of `keys` verifies.
/// With no keys nothing verifies (a hash alone is not enough to boot).
#[derive(Clone, Copy, Debug)]
pub struct McubootCheck<'k> {
    /// The trusted public keys: an image boots only if signed by one of them.
    pub keys: &'k [PublicKey],
}

impl<F: ReadNorFlash> ImageCheck<F> for McubootCheck<'_> {
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo> {
        if self.keys.is_empty() {
            return None;
        }
        let v = verify_image(flash, offset, max_size, self.keys).ok()?;
        v.key_index?;
        Some(ImageInfo {
            version: v.header.version,
            security_counter: v.security_counter.unwrap_or(0),
            size: v.tlv_end,
            hash: v.hash,
            exec: Exec::from_header(&v.header),
        })
    }

    fn dependencies(
        &mut self,
        flash: &mut F,
        offset: u32,
        max_size: u32,
        visit: &mut dyn FnMut(u8, ImageVersion),
    ) -> bool {
        image_dependencies(flash, offset, max_size, |d| {
            visit(d.image_id, d.min_version)
        })
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brickless_image::header::flags;
    use brickless_image::{ImageHeader, ImageVersion, IMAGE_MAGIC};

    fn header(flags: u32) -> ImageHeader {
        ImageHeader {
            magic: IMAGE_MAGIC,
            load_addr: 0x0802_0000,
            hdr_size: 0x20,
            protect_tlv_size: 0,
            img_size: 0x100,
            flags,
            version: ImageVersion::new(1, 0, 0, 0),
        }
    }

    #[test]
    fn every_flag_that_stops_running_in_place_is_seen_on_its_own() {
        for (flag, exec) in [
            (flags::ENCRYPTED_AES128, Exec::Encrypted),
            (flags::ENCRYPTED_AES256, Exec::Encrypted),
            (flags::NON_BOOTABLE, Exec::NonBootable),
            (flags::RAM_LOAD, Exec::RamLoad),
            (flags::COMPRESSED_LZMA1, Exec::Compressed),
            (flags::COMPRESSED_LZMA2, Exec::Compressed),
            (flags::ROM_FIXED, Exec::FixedAt(0x0802_0000)),
            (0, Exec::InPlace),
        ] {
            assert_eq!(Exec::from_header(&header(flag)), exec, "flags {flag:#x}");
        }
    }
}
