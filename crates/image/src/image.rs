//! An image held in memory, parsed into borrowed parts (no allocation), and a
//! read-only flash over a byte slice so in-memory images go through the same verifier.

use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};

use crate::error::ImageError;
use crate::header::{ImageHeader, ImageLayout, IMAGE_HEADER_SIZE};
use crate::tlv::{kind, TlvArea, TlvValue, TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC};

/// A structurally valid image borrowed from a buffer (not yet verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageView<'a> {
    /// The decoded image header.
    pub header: ImageHeader,
    /// Payload and TLV offsets derived from the header.
    pub layout: ImageLayout,
    /// The whole buffer the image was parsed from.
    pub bytes: &'a [u8],
    /// The protected (hashed) TLV area, magic 0x6908; `None` when `protect_tlv_size` is 0.
    pub protected: Option<TlvArea<'a>>,
    /// The unprotected TLV area, magic 0x6907: hash, key and signature TLVs.
    pub unprotected: TlvArea<'a>,
    /// End of the unprotected TLV area: the number of bytes the image occupies.
    pub tlv_end: u32,
}

impl<'a> ImageView<'a> {
    /// Parse an image at the start of `bytes` (trailing bytes, e.g. slot padding and
    /// trailer, are allowed). Checks the same structure as the flash verifier.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        let available = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let header = ImageHeader::parse(bytes)?;
        let layout = header.layout(available)?;
        let protected = if header.protect_tlv_size != 0 {
            // Same checks, in the same order, as the flash verifier.
            let off = layout.payload_end as usize;
            let info = bytes.get(off..off + 4).ok_or(ImageError::SizeOverflow)?;
            let magic = u16::from_le_bytes([info[0], info[1]]);
            let total = u16::from_le_bytes([info[2], info[3]]);
            if magic != TLV_PROT_INFO_MAGIC {
                return Err(ImageError::MissingTlvInfo {
                    offset: layout.payload_end,
                    expected: TLV_PROT_INFO_MAGIC,
                    found: magic,
                });
            }
            if total != header.protect_tlv_size {
                return Err(ImageError::ProtectedSizeMismatch {
                    header: header.protect_tlv_size,
                    info: total,
                });
            }
            let area = TlvArea::parse(bytes, layout.payload_end, TLV_PROT_INFO_MAGIC)?;
            if let Some(sec_cnt) = area.find(kind::SEC_CNT) {
                sec_cnt.value()?;
            }
            Some(area)
        } else {
            None
        };
        let unprotected = TlvArea::parse(bytes, layout.protected_end, TLV_INFO_MAGIC)?;
        let tlv_end = layout.protected_end + unprotected.total_len();
        Ok(Self {
            header,
            layout,
            bytes,
            protected,
            unprotected,
            tlv_end,
        })
    }

    /// Header bytes including padding.
    pub fn header_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.layout.payload_start as usize]
    }

    /// The payload (`img_size` bytes after the header).
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.layout.payload_start as usize..self.layout.payload_end as usize]
    }

    /// The bytes the image hash covers: header, payload, protected TLVs.
    pub fn hashed_region(&self) -> &'a [u8] {
        &self.bytes[..self.layout.protected_end as usize]
    }

    /// Everything from the image start to the end of the unprotected TLVs.
    pub fn image_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.tlv_end as usize]
    }

    /// Security counter from the protected SEC_CNT TLV.
    pub fn security_counter(&self) -> Option<u32> {
        match self.protected?.find(kind::SEC_CNT)?.value() {
            Ok(TlvValue::SecurityCounter(c)) => Some(c),
            _ => None,
        }
    }

    /// The SHA256 TLV value, if present and 32 bytes long.
    pub fn hash_tlv(&self) -> Option<&'a [u8; 32]> {
        self.unprotected.find(kind::SHA256)?.data.try_into().ok()
    }
}

/// A read-only [`ReadNorFlash`] over a byte slice (READ_SIZE 1).
#[derive(Debug, Clone, Copy)]
pub struct SliceFlash<'a> {
    bytes: &'a [u8],
}

impl<'a> SliceFlash<'a> {
    /// A flash of `bytes.len()` bytes whose offset 0 is `bytes[0]`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

/// A read outside the slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds;

impl NorFlashError for OutOfBounds {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::OutOfBounds
    }
}

impl ErrorType for SliceFlash<'_> {
    type Error = OutOfBounds;
}

impl ReadNorFlash for SliceFlash<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let start = offset as usize;
        let src = self
            .bytes
            .get(start..start.saturating_add(bytes.len()))
            .ok_or(OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

/// Verify an image held in memory (the whole buffer is the slot).
pub fn verify_bytes(
    bytes: &[u8],
    keys: &[crate::PublicKey],
) -> Result<crate::VerifiedImage, crate::VerifyError<OutOfBounds>> {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let usable = &bytes[..len as usize];
    crate::verify::verify_image(&mut SliceFlash::new(usable), 0, len, keys)
}

const _: () = assert!(IMAGE_HEADER_SIZE == 32);
