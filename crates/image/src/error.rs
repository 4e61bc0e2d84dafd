//! Errors of the parser and the verifier. Every distinct failure has its own variant.

use core::fmt;

/// The image bytes are not a well-formed MCUboot image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// The image claims more bytes than are available (file or slot).
    Truncated {
        /// Bytes from the image start the structure needs.
        needed: u32,
        /// Bytes there are: the slot size or the buffer length.
        available: u32,
    },
    /// The first word is not `0x96f3b83d`.
    BadMagic {
        /// The first 4 bytes, as a little-endian `u32`.
        found: u32,
    },
    /// `hdr_size` is smaller than the 32-byte header structure.
    HeaderTooSmall {
        /// The header's `hdr_size`.
        hdr_size: u16,
    },
    /// `hdr_size` points past the end of the available bytes.
    HeaderBeyondImage {
        /// The header's `hdr_size`.
        hdr_size: u16,
        /// Bytes there are: the slot size or the buffer length.
        available: u32,
    },
    /// `hdr_size + img_size + protect_tlv_size` (+ TLV area) overflows 32 bits.
    SizeOverflow,
    /// No TLV info header (`0x6907`, or `0x6908` when `protect_tlv_size != 0`) where one
    /// must be.
    MissingTlvInfo {
        /// Where the info header should be, from the image start.
        offset: u32,
        /// The magic expected there ([`TLV_INFO_MAGIC`](crate::tlv::TLV_INFO_MAGIC) or
        /// [`TLV_PROT_INFO_MAGIC`](crate::tlv::TLV_PROT_INFO_MAGIC)).
        expected: u16,
        /// The little-endian `u16` found there instead.
        found: u16,
    },
    /// The header's `protect_tlv_size` differs from the protected info header's total.
    ProtectedSizeMismatch {
        /// `protect_tlv_size` from the image header.
        header: u16,
        /// `total` from the protected TLV info header.
        info: u16,
    },
    /// A TLV info header's total is smaller than the info header itself.
    TlvInfoTooSmall {
        /// Offset of the info header from the image start.
        offset: u32,
        /// Its `total` field (bytes, info header included).
        total: u16,
    },
    /// A TLV (header or value) runs past the end of its TLV area.
    TlvPastEnd {
        /// Offset of the record header from the image start.
        offset: u32,
        /// The record's length field; 0 when not even its 4-byte header fits.
        len: u16,
        /// End of the TLV area, from the image start.
        area_end: u32,
    },
    /// A TLV of a known type has the wrong length for that type.
    BadTlvLength {
        /// The TLV type code.
        kind: u16,
        /// The length found, bytes.
        len: u16,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, available } => write!(
                f,
                "image truncated: needs {needed} bytes, only {available} available"
            ),
            Self::BadMagic { found } => write!(
                f,
                "bad image magic 0x{found:08x} (expected 0x96f3b83d): not an MCUboot image"
            ),
            Self::HeaderTooSmall { hdr_size } => {
                write!(f, "header size {hdr_size} is smaller than 32 bytes")
            }
            Self::HeaderBeyondImage {
                hdr_size,
                available,
            } => write!(
                f,
                "header size {hdr_size} is beyond the image ({available} bytes)"
            ),
            Self::SizeOverflow => f.write_str("image size fields overflow 32 bits"),
            Self::MissingTlvInfo {
                offset,
                expected,
                found,
            } => write!(
                f,
                "missing TLV info at offset 0x{offset:x}: expected magic 0x{expected:04x}, found 0x{found:04x}"
            ),
            Self::ProtectedSizeMismatch { header, info } => write!(
                f,
                "protected TLV size mismatch: header says {header}, TLV info says {info}"
            ),
            Self::TlvInfoTooSmall { offset, total } => write!(
                f,
                "TLV info at offset 0x{offset:x} has total {total}, less than its own 4 bytes"
            ),
            Self::TlvPastEnd {
                offset,
                len,
                area_end,
            } => write!(
                f,
                "TLV at offset 0x{offset:x} with length {len} runs past the end of its area (0x{area_end:x})"
            ),
            Self::BadTlvLength { kind, len } => {
                write!(f, "TLV 0x{kind:02x} has invalid length {len}")
            }
        }
    }
}

impl core::error::Error for ImageError {}

/// Why an image in flash failed verification. `E` is the flash driver's error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError<E> {
    /// The bytes are not a well-formed image (see [`ImageError`]).
    Format(ImageError),
    /// Reading the flash failed (e.g. an ECC double fault on a torn write unit).
    Flash(E),
    /// `offset + slot_size` does not fit in 32 bits or the flash capacity.
    SlotOutOfRange {
        /// The slot's offset in the flash (the driver's offset space).
        offset: u32,
        /// The slot's size, bytes.
        slot_size: u32,
        /// The flash's `capacity()`, bytes (saturated to `u32::MAX`).
        capacity: u32,
    },
    /// The flash driver's `READ_SIZE` is not a power of two that divides the read buffer.
    UnsupportedReadSize(usize),
    /// No SHA-256 hash TLV in the unprotected area.
    MissingHash,
    /// Only a hash algorithm this verifier does not implement (SHA-384/512) is present.
    UnsupportedHash {
        /// The hash TLV type found: 0x11 (SHA-384) or 0x12 (SHA-512).
        kind: u16,
    },
    /// The SHA-256 over header, payload and protected TLVs differs from the hash TLV:
    /// the payload, the header or a protected TLV was changed.
    HashMismatch {
        /// SHA-256 computed over the flash contents.
        computed: [u8; 32],
        /// The value of the image's SHA256 TLV.
        expected: [u8; 32],
    },
    /// Keys were given but the image carries no KEYHASH/PUBKEY TLV naming its key.
    MissingKeyTlv,
    /// The image's KEYHASH/PUBKEY matches none of the given keys.
    UnknownKey,
    /// The image names a known key but has no signature TLV of that key's type.
    MissingSignature,
    /// The signature does not verify with the matching key.
    BadSignature,
    /// A key passed in is not a valid key of its type.
    InvalidKey {
        /// Index of the key in the `keys` slice.
        index: usize,
    },
    /// The image is signed by trusted key `index`, whose algorithm this build left out
    /// (cargo features `ed25519`, `p256`).
    AlgorithmNotBuilt {
        /// Index of the key in the `keys` slice.
        index: usize,
    },
}

impl<E> From<ImageError> for VerifyError<E> {
    fn from(e: ImageError) -> Self {
        Self::Format(e)
    }
}

impl<E: fmt::Debug> fmt::Display for VerifyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(e) => write!(f, "{e}"),
            Self::Flash(e) => write!(f, "flash read failed: {e:?}"),
            Self::SlotOutOfRange {
                offset,
                slot_size,
                capacity,
            } => write!(
                f,
                "slot at 0x{offset:x} of size 0x{slot_size:x} does not fit in flash of 0x{capacity:x} bytes"
            ),
            Self::UnsupportedReadSize(n) => write!(f, "unsupported flash READ_SIZE {n}"),
            Self::MissingHash => f.write_str("image has no SHA-256 hash TLV"),
            Self::UnsupportedHash { kind } => {
                write!(f, "image hash TLV 0x{kind:02x} (SHA-384/512) is not supported")
            }
            Self::HashMismatch { .. } => f.write_str(
                "image hash mismatch: header, payload or protected TLVs were modified",
            ),
            Self::MissingKeyTlv => f.write_str("image names no signing key (no KEYHASH or PUBKEY TLV)"),
            Self::UnknownKey => f.write_str("image was signed with a key that is not trusted"),
            Self::MissingSignature => f.write_str("image has no signature for the trusted key"),
            Self::BadSignature => f.write_str("image signature is invalid"),
            Self::InvalidKey { index } => write!(f, "trusted key #{index} is not a valid key"),
            Self::AlgorithmNotBuilt { index } => write!(
                f,
                "trusted key #{index} uses a signature algorithm this build does not include"
            ),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for VerifyError<E> {}
