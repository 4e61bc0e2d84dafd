//! The 32-byte MCUboot image header and the image version.

use core::fmt;

use crate::error::ImageError;

/// `IMAGE_MAGIC`: first word of every MCUboot image.
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// Size of the fixed header structure; `hdr_size` may be larger (padding).
pub const IMAGE_HEADER_SIZE: usize = 32;

/// Header flag bits (`IMAGE_F_*`).
pub mod flags {
    /// Position-independent image (not supported by MCUboot).
    pub const PIC: u32 = 0x0000_0001;
    /// Payload encrypted with AES-128-CTR.
    pub const ENCRYPTED_AES128: u32 = 0x0000_0004;
    /// Payload encrypted with AES-256-CTR.
    pub const ENCRYPTED_AES256: u32 = 0x0000_0008;
    /// The image must not be booted (e.g. a co-processor image).
    pub const NON_BOOTABLE: u32 = 0x0000_0010;
    /// Copy to RAM at `load_addr` before running.
    pub const RAM_LOAD: u32 = 0x0000_0020;
    /// Built to run at the flash address in `load_addr`.
    pub const ROM_FIXED: u32 = 0x0000_0100;
    /// Payload compressed with LZMA1.
    pub const COMPRESSED_LZMA1: u32 = 0x0000_0200;
    /// Payload compressed with LZMA2.
    pub const COMPRESSED_LZMA2: u32 = 0x0000_0400;
    /// ARM Thumb branch filter applied before compression.
    pub const COMPRESSED_ARM_THUMB: u32 = 0x0000_0800;
}

/// Image version `major.minor.revision+build`.
///
/// Ordering compares major, minor, revision, then build (field order), which is how
/// MCUboot's downgrade prevention compares versions when it includes the build number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImageVersion {
    /// Major number (byte 0 of the encoded version); compared first.
    pub major: u8,
    /// Minor number (byte 1).
    pub minor: u8,
    /// Revision (bytes 2..4, little-endian).
    pub revision: u16,
    /// Build number (bytes 4..8, little-endian); left out of [`ImageVersion::packed`] and
    /// of the security counter imgtool derives.
    pub build: u32,
}

impl ImageVersion {
    /// `major.minor.revision+build`, e.g. `new(1, 2, 3, 4)` is `1.2.3+4`.
    pub const fn new(major: u8, minor: u8, revision: u16, build: u32) -> Self {
        Self {
            major,
            minor,
            revision,
            build,
        }
    }

    /// Decode the 8 bytes `u8 major, u8 minor, u16 revision, u32 build` (little-endian).
    pub fn from_bytes(b: &[u8; 8]) -> Self {
        Self {
            major: b[0],
            minor: b[1],
            revision: u16::from_le_bytes([b[2], b[3]]),
            build: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encode as the 8 header bytes `u8 major, u8 minor, u16 revision, u32 build`
    /// (little-endian), the inverse of [`ImageVersion::from_bytes`].
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.major;
        b[1] = self.minor;
        b[2..4].copy_from_slice(&self.revision.to_le_bytes());
        b[4..8].copy_from_slice(&self.build.to_le_bytes());
        b
    }

    /// Major, minor and revision packed so that `<` orders versions without the build
    /// number, as MCUboot's default downgrade check compares them.
    pub const fn packed(&self) -> u64 {
        ((self.major as u64) << 24) | ((self.minor as u64) << 16) | self.revision as u64
    }

    /// imgtool's `--security-counter auto`: `(major << 24) + (minor << 16) + revision`.
    pub const fn auto_security_counter(&self) -> u32 {
        ((self.major as u32) << 24) + ((self.minor as u32) << 16) + self.revision as u32
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.revision, self.build
        )
    }
}

/// Error from [`ImageVersion::from_str`](core::str::FromStr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionParseError;

impl fmt::Display for VersionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid version: expected major.minor.revision+build with later parts optional (e.g. 1.2.3+4)")
    }
}

impl core::str::FromStr for ImageVersion {
    type Err = VersionParseError;

    /// Accepts what imgtool accepts: `maj[.min[.rev[+build]]]`, decimal, no leading zeros.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn num<T: core::str::FromStr>(s: &str) -> Result<T, VersionParseError> {
            let ok = !s.is_empty()
                && s.bytes().all(|c| c.is_ascii_digit())
                && (s == "0" || !s.starts_with('0'));
            if !ok {
                return Err(VersionParseError);
            }
            s.parse().map_err(|_| VersionParseError)
        }
        let (main, build) = match s.split_once('+') {
            Some((m, b)) => (m, Some(b)),
            None => (s, None),
        };
        let mut parts = main.split('.');
        let major = num(parts.next().ok_or(VersionParseError)?)?;
        let minor = parts.next().map(num).transpose()?;
        let revision = parts.next().map(num).transpose()?;
        if parts.next().is_some() || (build.is_some() && revision.is_none()) {
            return Err(VersionParseError);
        }
        Ok(Self {
            major,
            minor: minor.unwrap_or(0),
            revision: revision.unwrap_or(0),
            build: build.map(num).transpose()?.unwrap_or(0),
        })
    }
}

/// The image header (`struct image_header`), decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// `ih_magic` (bytes 0..4): [`IMAGE_MAGIC`] in every header that parsed.
    pub magic: u32,
    /// RAM load address (`RAM_LOAD`) or flash address (`ROM_FIXED`); 0 otherwise.
    pub load_addr: u32,
    /// Header size including padding = offset of the payload.
    pub hdr_size: u16,
    /// Size of the protected TLV area including its 4-byte info header; 0 if none.
    pub protect_tlv_size: u16,
    /// Payload size (header excluded).
    pub img_size: u32,
    /// `ih_flags` (bytes 16..20): `IMAGE_F_*` bits, see [`flags`].
    pub flags: u32,
    /// `ih_ver` (bytes 20..28): the version imgtool's `--version` sets.
    pub version: ImageVersion,
}

impl ImageHeader {
    /// Decode and check the magic. Only the first 32 bytes are read.
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        let b: &[u8; IMAGE_HEADER_SIZE] = bytes
            .get(..IMAGE_HEADER_SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(ImageError::Truncated {
                needed: IMAGE_HEADER_SIZE as u32,
                available: bytes.len() as u32,
            })?;
        Self::from_bytes(b)
    }

    /// Decode 32 header bytes and check the magic.
    pub fn from_bytes(b: &[u8; IMAGE_HEADER_SIZE]) -> Result<Self, ImageError> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let magic = u32_at(0);
        if magic != IMAGE_MAGIC {
            return Err(ImageError::BadMagic { found: magic });
        }
        let mut ver = [0u8; 8];
        ver.copy_from_slice(&b[20..28]);
        Ok(Self {
            magic,
            load_addr: u32_at(4),
            hdr_size: u16_at(8),
            protect_tlv_size: u16_at(10),
            img_size: u32_at(12),
            flags: u32_at(16),
            version: ImageVersion::from_bytes(&ver),
        })
    }

    /// Encode as imgtool does (`_pad1` = 0).
    pub fn to_bytes(&self) -> [u8; IMAGE_HEADER_SIZE] {
        let mut b = [0u8; IMAGE_HEADER_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.load_addr.to_le_bytes());
        b[8..10].copy_from_slice(&self.hdr_size.to_le_bytes());
        b[10..12].copy_from_slice(&self.protect_tlv_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.img_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20..28].copy_from_slice(&self.version.to_bytes());
        b
    }

    /// Check the sizes against the bytes available (`available` = slot size or file size)
    /// and return the layout. Does not look at the TLV areas.
    pub fn layout(&self, available: u32) -> Result<ImageLayout, ImageError> {
        if (self.hdr_size as usize) < IMAGE_HEADER_SIZE {
            return Err(ImageError::HeaderTooSmall {
                hdr_size: self.hdr_size,
            });
        }
        if self.hdr_size as u32 > available {
            return Err(ImageError::HeaderBeyondImage {
                hdr_size: self.hdr_size,
                available,
            });
        }
        let payload_end = (self.hdr_size as u32)
            .checked_add(self.img_size)
            .ok_or(ImageError::SizeOverflow)?;
        let protected_end = payload_end
            .checked_add(self.protect_tlv_size as u32)
            .ok_or(ImageError::SizeOverflow)?;
        // The unprotected info header must follow too.
        let needed = protected_end
            .checked_add(crate::tlv::TLV_INFO_SIZE as u32)
            .ok_or(ImageError::SizeOverflow)?;
        if needed > available {
            return Err(ImageError::Truncated { needed, available });
        }
        Ok(ImageLayout {
            payload_start: self.hdr_size as u32,
            payload_end,
            protected_end,
        })
    }
}

/// Offsets (relative to the image start) derived from a checked header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLayout {
    /// `hdr_size`.
    pub payload_start: u32,
    /// `hdr_size + img_size`: start of the protected TLV area (or of the unprotected one).
    pub payload_end: u32,
    /// End of the protected TLV area = end of the hashed region = start of the
    /// unprotected TLV info header.
    pub protected_end: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parse_display_and_order() {
        let v: ImageVersion = "1.2.3+4".parse().unwrap();
        assert_eq!(v, ImageVersion::new(1, 2, 3, 4));
        assert_eq!(v.to_string(), "1.2.3+4");
        assert_eq!(
            "7".parse::<ImageVersion>(),
            Ok(ImageVersion::new(7, 0, 0, 0))
        );
        assert_eq!(
            "7.1".parse::<ImageVersion>(),
            Ok(ImageVersion::new(7, 1, 0, 0))
        );
        for bad in [
            "",
            "1.",
            "01.2",
            "1.2.3.4",
            "1+2",
            "256.0.0",
            "1.2.65536",
            "a.b",
            "1.2.3+",
        ] {
            assert!(bad.parse::<ImageVersion>().is_err(), "{bad}");
        }
        let order = ["0.9.9+9", "1.0.0", "1.0.0+1", "1.0.1", "1.1.0", "2.0.0"];
        for w in order.windows(2) {
            let (a, b): (ImageVersion, ImageVersion) =
                (w[0].parse().unwrap(), w[1].parse().unwrap());
            assert!(a < b, "{a} < {b}");
        }
        assert_eq!(ImageVersion::from_bytes(&v.to_bytes()), v);
    }

    #[test]
    fn header_round_trip_and_layout() {
        let h = ImageHeader {
            magic: IMAGE_MAGIC,
            load_addr: 0x0802_0000,
            hdr_size: 0x200,
            protect_tlv_size: 12,
            img_size: 1000,
            flags: flags::ROM_FIXED,
            version: ImageVersion::new(1, 2, 3, 4),
        };
        let b = h.to_bytes();
        assert_eq!(&b[..4], &[0x3d, 0xb8, 0xf3, 0x96]);
        assert_eq!(ImageHeader::parse(&b), Ok(h));
        let l = h.layout(0x1000).unwrap();
        assert_eq!(
            (l.payload_start, l.payload_end, l.protected_end),
            (0x200, 0x5e8, 0x5f4)
        );
        assert_eq!(
            h.layout(0x5f7),
            Err(ImageError::Truncated {
                needed: 0x5f8,
                available: 0x5f7
            })
        );
    }
}
