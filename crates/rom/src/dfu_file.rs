//! The `.dfu` file format: the DFU 1.1 suffix (16 bytes with a CRC-32 at the end of every DFU
//! file) and ST's DfuSe v1.1a container (prefix, targets, elements) that UM0391 defines.
//!
//! Parsing is `no_std` and borrows from the input: [`DfuFile::parse`] checks the suffix, the
//! CRC and every length in the container before it returns, so the iterators it hands out never
//! meet a malformed byte. Files that carry a TI Stellaris address prefix (what
//! `dfu-prefix -s ADDR -a` writes) are recognised too. Writing ([`DfuSeBuilder`],
//! [`append_suffix`]) needs `std`.
//!
//! The CRC is the reflected CRC-32 (polynomial 0xEDB88320, initial value all ones) without the
//! final inversion, i.e. the `crc` crate's CRC-32/JAMCRC, over every byte except the last four.

use crc::{Crc, CRC_32_JAMCRC};

/// Length of the DFU suffix at the end of every `.dfu` file.
pub const SUFFIX_LEN: usize = 16;
/// `bcdDFU` of a DfuSe file (DFU 1.1a, ST extension).
pub const BCD_DFU_DFUSE: u16 = 0x011A;
/// `bcdDFU` of a plain DFU 1.0 file.
pub const BCD_DFU_1_0: u16 = 0x0100;
/// The vendor and product IDs of the STM32 ROM DFU bootloader.
pub const ST_ROM_VID: u16 = 0x0483;
/// Product ID of the STM32 ROM DFU bootloader.
pub const ST_ROM_PID: u16 = 0xDF11;
/// `0xFFFF` in a suffix ID field means "any".
pub const ANY_ID: u16 = 0xFFFF;

const DFUSE_SIGNATURE: &[u8; 5] = b"DfuSe";
const DFUSE_PREFIX_LEN: usize = 11;
const TARGET_SIGNATURE: &[u8; 6] = b"Target";
const TARGET_PREFIX_LEN: usize = 274;
const TARGET_NAME_LEN: usize = 255;
const ELEMENT_HEADER_LEN: usize = 8;
const STELLARIS_PREFIX_LEN: usize = 8;
/// The suffix signature as stored in the file ("DFU" reversed).
const SUFFIX_SIGNATURE: &[u8; 3] = b"UFD";

const DFU_CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_JAMCRC);

/// The CRC a DFU suffix stores for `bytes` (every file byte before the CRC field).
pub fn dfu_crc(bytes: &[u8]) -> u32 {
    DFU_CRC.checksum(bytes)
}

/// What is wrong with a `.dfu` file. Every variant names the field that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DfuFileError {
    /// The file is shorter than the structure it claims to hold.
    #[error("file is {len} bytes, too short for a DFU suffix (16 bytes)")]
    TooShortForSuffix {
        /// The file's length in bytes.
        len: usize,
    },
    /// The bytes "UFD" are not at offset 8 of the last 16 bytes.
    #[error("no DFU suffix: the signature 'UFD' is missing from the last 16 bytes")]
    MissingSuffix,
    /// bLength of the suffix is not 16 (the only length this format defines).
    #[error("DFU suffix bLength is {0}, expected 16")]
    BadSuffixLength(u8),
    /// The stored CRC does not match the file's bytes.
    #[error("DFU suffix CRC mismatch: file says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch {
        /// dwCRC as stored in the suffix.
        stored: u32,
        /// The CRC of the file's bytes before dwCRC.
        computed: u32,
    },
    /// A DfuSe file whose prefix does not start with "DfuSe".
    #[error("not a DfuSe file: the prefix signature 'DfuSe' is missing")]
    MissingDfuSePrefix,
    /// bVersion of the DfuSe prefix is not 1.
    #[error("DfuSe prefix bVersion is {0}, only version 1 exists")]
    UnsupportedDfuSeVersion(u8),
    /// DFUImageSize disagrees with the file length.
    #[error("DfuSe prefix says the image is {declared} bytes but the file is {actual} bytes")]
    ImageSizeMismatch {
        /// DFUImageSize from the prefix.
        declared: u32,
        /// The file's length, suffix included.
        actual: usize,
    },
    /// bTargets is 0.
    #[error("DfuSe file holds no target")]
    NoTargets,
    /// A target prefix does not start with "Target".
    #[error("target {target}: signature 'Target' missing")]
    MissingTargetSignature {
        /// Index of the target in file order, from 0 (not its alternate setting).
        target: u8,
    },
    /// A target or its elements run past the end of the image.
    #[error("target {target}: truncated (needs {needed} bytes, {available} left)")]
    TargetTruncated {
        /// Index of the target in file order, from 0 (not its alternate setting).
        target: u8,
        /// Bytes the target prefix (274) or its dwTargetSize needs.
        needed: usize,
        /// Bytes left before the suffix.
        available: usize,
    },
    /// dwTargetSize disagrees with the sum of its elements.
    #[error("target {target}: dwTargetSize is {declared} but its elements take {actual} bytes")]
    TargetSizeMismatch {
        /// Index of the target in file order, from 0 (not its alternate setting).
        target: u8,
        /// dwTargetSize from the target prefix.
        declared: u32,
        /// Bytes its elements take, headers included.
        actual: usize,
    },
    /// An element runs past the end of its target.
    #[error("target {target} element {element}: truncated")]
    ElementTruncated {
        /// Index of the target in file order, from 0 (not its alternate setting).
        target: u8,
        /// Index of the element within its target, from 0.
        element: u32,
    },
    /// An element's address range wraps past 4 GiB.
    #[error("target {target} element {element}: address {address:#010x} + size {size} overflows")]
    ElementAddressOverflow {
        /// Index of the target in file order, from 0 (not its alternate setting).
        target: u8,
        /// Index of the element within its target, from 0.
        element: u32,
        /// dwElementAddress.
        address: u32,
        /// dwElementSize in bytes.
        size: u32,
    },
    /// Bytes left between the last target and the suffix.
    #[error("{extra} unexpected bytes after the last target")]
    TrailingBytes {
        /// How many bytes.
        extra: usize,
    },
    /// The suffix says DfuSe (bcdDFU 0x011A) but no DfuSe prefix is present, or the reverse.
    #[error("bcdDFU is {bcd_dfu:#06x} but the file {}", if *has_prefix { "has a DfuSe prefix" } else { "has no DfuSe prefix" })]
    SuffixPrefixDisagree {
        /// bcdDFU from the suffix.
        bcd_dfu: u16,
        /// True when the body starts with "DfuSe".
        has_prefix: bool,
    },
    /// The Stellaris prefix's length field disagrees with the payload.
    #[error("Stellaris prefix says {declared} bytes but {actual} follow")]
    StellarisLengthMismatch {
        /// The payload length the prefix gives.
        declared: u32,
        /// Bytes between the 8-byte prefix and the suffix.
        actual: usize,
    },
    /// A target name longer than the 255-byte field (writing only).
    #[error("target name is {len} bytes, the field holds 255")]
    TargetNameTooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// An element larger than 4 GiB or a file that overflows a u32 length (writing only).
    #[error("content too large for the 32-bit length fields of the DfuSe format")]
    TooLarge,
}

/// The 16-byte DFU suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DfuSuffix {
    /// bcdDevice: firmware release the file is for, 0xFFFF = any.
    pub bcd_device: u16,
    /// idProduct, 0xFFFF = any.
    pub product_id: u16,
    /// idVendor, 0xFFFF = any.
    pub vendor_id: u16,
    /// bcdDFU: 0x0100 plain DFU, 0x011A DfuSe.
    pub bcd_dfu: u16,
    /// dwCRC as stored (already checked against the bytes).
    pub crc: u32,
}

impl DfuSuffix {
    /// Parses and checks the suffix at the end of `file`; returns it and the bytes before it.
    pub fn split(file: &[u8]) -> Result<(&[u8], DfuSuffix), DfuFileError> {
        let body_len = file
            .len()
            .checked_sub(SUFFIX_LEN)
            .ok_or(DfuFileError::TooShortForSuffix { len: file.len() })?;
        let (body, raw) = file.split_at(body_len);
        if &raw[8..11] != SUFFIX_SIGNATURE {
            return Err(DfuFileError::MissingSuffix);
        }
        if raw[11] != SUFFIX_LEN as u8 {
            return Err(DfuFileError::BadSuffixLength(raw[11]));
        }
        let stored = le32(raw, 12);
        let computed = dfu_crc(&file[..file.len() - 4]);
        if stored != computed {
            return Err(DfuFileError::CrcMismatch { stored, computed });
        }
        Ok((
            body,
            DfuSuffix {
                bcd_device: le16(raw, 0),
                product_id: le16(raw, 2),
                vendor_id: le16(raw, 4),
                bcd_dfu: le16(raw, 6),
                crc: stored,
            },
        ))
    }

    /// The first 12 suffix bytes (everything before the CRC).
    pub fn header_bytes(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[0..2].copy_from_slice(&self.bcd_device.to_le_bytes());
        out[2..4].copy_from_slice(&self.product_id.to_le_bytes());
        out[4..6].copy_from_slice(&self.vendor_id.to_le_bytes());
        out[6..8].copy_from_slice(&self.bcd_dfu.to_le_bytes());
        out[8..11].copy_from_slice(SUFFIX_SIGNATURE);
        out[11] = SUFFIX_LEN as u8;
        out
    }

    /// True when the suffix accepts a device with this VID/PID (0xFFFF fields match anything).
    pub fn matches_device(&self, vendor_id: u16, product_id: u16) -> bool {
        (self.vendor_id == ANY_ID || self.vendor_id == vendor_id)
            && (self.product_id == ANY_ID || self.product_id == product_id)
    }
}

/// A checked `.dfu` file.
#[derive(Debug, Clone, Copy)]
pub struct DfuFile<'a> {
    /// The suffix (CRC checked).
    pub suffix: DfuSuffix,
    /// What the suffix wraps.
    pub contents: DfuContents<'a>,
}

/// What a `.dfu` file holds.
#[derive(Debug, Clone, Copy)]
pub enum DfuContents<'a> {
    /// A DfuSe container (bcdDFU 0x011A): targets of addressed elements.
    DfuSe(DfuSeImage<'a>),
    /// A TI Stellaris address prefix (`dfu-prefix -s`) and its payload. The prefix stores the
    /// address in KiB units, so only the low 26 bits of the address survive.
    Stellaris {
        /// Absolute load address (a multiple of 1 KiB).
        address: u32,
        /// The bytes to load there.
        payload: &'a [u8],
    },
    /// A plain DFU payload without address (flash it at the device's default address).
    Raw(&'a [u8]),
}

impl<'a> DfuFile<'a> {
    /// Parses and checks a whole `.dfu` file: suffix, CRC, then the DfuSe container when
    /// bcdDFU is 0x011A (or a TI Stellaris prefix, or else a raw payload).
    pub fn parse(file: &'a [u8]) -> Result<Self, DfuFileError> {
        let (body, suffix) = DfuSuffix::split(file)?;
        let has_dfuse_prefix = body.starts_with(DFUSE_SIGNATURE);
        let contents = if suffix.bcd_dfu == BCD_DFU_DFUSE {
            if !has_dfuse_prefix {
                return Err(DfuFileError::SuffixPrefixDisagree {
                    bcd_dfu: suffix.bcd_dfu,
                    has_prefix: false,
                });
            }
            DfuContents::DfuSe(DfuSeImage::parse(body, file.len())?)
        } else if has_dfuse_prefix {
            return Err(DfuFileError::SuffixPrefixDisagree {
                bcd_dfu: suffix.bcd_dfu,
                has_prefix: true,
            });
        } else if let Some((address, payload)) = stellaris_prefix(body)? {
            DfuContents::Stellaris { address, payload }
        } else {
            DfuContents::Raw(body)
        };
        Ok(DfuFile { suffix, contents })
    }
}

/// Recognises a TI Stellaris prefix (byte 0 = 0x01, byte 1 = 0x00, then address / 1024 as
/// u16 LE and the payload length as u32 LE) whose length field matches the payload exactly.
/// A mismatching length on a body that otherwise looks like one is reported, because a raw
/// firmware starting with `01 00` is far less likely than a damaged prefix.
fn stellaris_prefix(body: &[u8]) -> Result<Option<(u32, &[u8])>, DfuFileError> {
    if body.len() < STELLARIS_PREFIX_LEN || body[0] != 0x01 || body[1] != 0x00 {
        return Ok(None);
    }
    let declared = le32(body, 4);
    let payload = &body[STELLARIS_PREFIX_LEN..];
    if declared as usize != payload.len() {
        // A raw image (e.g. a vector table whose SP starts 0x....0001) can begin with 01 00;
        // only treat it as a broken prefix when the length is plausibly a prefix length.
        if (declared as usize) < body.len() {
            return Err(DfuFileError::StellarisLengthMismatch {
                declared,
                actual: payload.len(),
            });
        }
        return Ok(None);
    }
    Ok(Some((u32::from(le16(body, 2)) * 1024, payload)))
}

/// A checked DfuSe container (the part of the file before the suffix).
#[derive(Debug, Clone, Copy)]
pub struct DfuSeImage<'a> {
    target_count: u8,
    /// The bytes after the 11-byte prefix, up to the suffix.
    targets: &'a [u8],
}

impl<'a> DfuSeImage<'a> {
    /// Checks the DfuSe prefix and every target and element in `body` (file minus suffix).
    /// `file_len` is the whole file's length, which DFUImageSize must equal.
    pub fn parse(body: &'a [u8], file_len: usize) -> Result<Self, DfuFileError> {
        if body.len() < DFUSE_PREFIX_LEN || !body.starts_with(DFUSE_SIGNATURE) {
            return Err(DfuFileError::MissingDfuSePrefix);
        }
        if body[5] != 1 {
            return Err(DfuFileError::UnsupportedDfuSeVersion(body[5]));
        }
        let declared = le32(body, 6);
        if declared as usize != file_len {
            return Err(DfuFileError::ImageSizeMismatch {
                declared,
                actual: file_len,
            });
        }
        let target_count = body[10];
        if target_count == 0 {
            return Err(DfuFileError::NoTargets);
        }
        let targets = &body[DFUSE_PREFIX_LEN..];
        let mut rest = targets;
        for index in 0..target_count {
            let (_, after) = parse_target(rest, index)?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err(DfuFileError::TrailingBytes { extra: rest.len() });
        }
        Ok(DfuSeImage {
            target_count,
            targets,
        })
    }

    /// Number of targets (bTargets).
    pub fn target_count(&self) -> u8 {
        self.target_count
    }

    /// The targets in file order.
    pub fn targets(&self) -> Targets<'a> {
        Targets {
            rest: self.targets,
            next_index: 0,
            count: self.target_count,
        }
    }
}

/// Iterator over the targets of a checked [`DfuSeImage`].
#[derive(Debug, Clone)]
pub struct Targets<'a> {
    rest: &'a [u8],
    next_index: u8,
    count: u8,
}

impl<'a> Iterator for Targets<'a> {
    type Item = DfuSeTarget<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.next_index >= self.count {
            return None;
        }
        // Already checked in DfuSeImage::parse; an error here cannot happen, end quietly.
        let (target, rest) = parse_target(self.rest, self.next_index).ok()?;
        self.rest = rest;
        self.next_index += 1;
        Some(target)
    }
}

/// One DfuSe target: the image for one alternate setting (one memory of the device).
#[derive(Debug, Clone, Copy)]
pub struct DfuSeTarget<'a> {
    /// bAlternateSetting: which DFU alternate setting (memory) this target is for.
    pub alt_setting: u8,
    /// The target name without its NUL padding, when bTargetNamed is set.
    pub name: Option<&'a [u8]>,
    element_count: u32,
    elements: &'a [u8],
    target_index: u8,
}

impl<'a> DfuSeTarget<'a> {
    /// The name as text, when it is named and valid UTF-8.
    pub fn name_str(&self) -> Option<&'a str> {
        self.name.and_then(|n| core::str::from_utf8(n).ok())
    }

    /// Number of elements (dwNbElements).
    pub fn element_count(&self) -> u32 {
        self.element_count
    }

    /// The elements in file order.
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            rest: self.elements,
            remaining: self.element_count,
            target: self.target_index,
            element: 0,
        }
    }
}

/// Iterator over the elements of a checked target.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    rest: &'a [u8],
    remaining: u32,
    target: u8,
    element: u32,
}

impl<'a> Iterator for Elements<'a> {
    type Item = DfuSeElement<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (element, rest) = parse_element(self.rest, self.target, self.element).ok()?;
        self.rest = rest;
        self.remaining -= 1;
        self.element += 1;
        Some(element)
    }
}

/// One element: bytes to place at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DfuSeElement<'a> {
    /// dwElementAddress.
    pub address: u32,
    /// The element's bytes (dwElementSize of them).
    pub data: &'a [u8],
}

fn parse_target(bytes: &[u8], index: u8) -> Result<(DfuSeTarget<'_>, &[u8]), DfuFileError> {
    if bytes.len() < TARGET_PREFIX_LEN {
        return Err(DfuFileError::TargetTruncated {
            target: index,
            needed: TARGET_PREFIX_LEN,
            available: bytes.len(),
        });
    }
    if !bytes.starts_with(TARGET_SIGNATURE) {
        return Err(DfuFileError::MissingTargetSignature { target: index });
    }
    let alt_setting = bytes[6];
    let named = le32(bytes, 7) != 0;
    let name_field = &bytes[11..11 + TARGET_NAME_LEN];
    let name_len = name_field
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(TARGET_NAME_LEN);
    let declared_size = le32(bytes, 266);
    let element_count = le32(bytes, 270);
    let after_prefix = &bytes[TARGET_PREFIX_LEN..];
    let size = declared_size as usize;
    if after_prefix.len() < size {
        return Err(DfuFileError::TargetTruncated {
            target: index,
            needed: size,
            available: after_prefix.len(),
        });
    }
    let (elements, rest) = after_prefix.split_at(size);
    let mut cursor = elements;
    for element in 0..element_count {
        let (_, after) = parse_element(cursor, index, element)?;
        cursor = after;
    }
    if !cursor.is_empty() {
        return Err(DfuFileError::TargetSizeMismatch {
            target: index,
            declared: declared_size,
            actual: size - cursor.len(),
        });
    }
    Ok((
        DfuSeTarget {
            alt_setting,
            name: named.then_some(&name_field[..name_len]),
            element_count,
            elements,
            target_index: index,
        },
        rest,
    ))
}

fn parse_element(
    bytes: &[u8],
    target: u8,
    element: u32,
) -> Result<(DfuSeElement<'_>, &[u8]), DfuFileError> {
    if bytes.len() < ELEMENT_HEADER_LEN {
        return Err(DfuFileError::ElementTruncated { target, element });
    }
    let address = le32(bytes, 0);
    let size = le32(bytes, 4);
    if size > 0 && address.checked_add(size - 1).is_none() {
        return Err(DfuFileError::ElementAddressOverflow {
            target,
            element,
            address,
            size,
        });
    }
    let after = &bytes[ELEMENT_HEADER_LEN..];
    if after.len() < size as usize {
        return Err(DfuFileError::ElementTruncated { target, element });
    }
    let (data, rest) = after.split_at(size as usize);
    Ok((DfuSeElement { address, data }, rest))
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(s) = bytes.get(at..at + 2) {
        b.copy_from_slice(s);
    }
    u16::from_le_bytes(b)
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

#[cfg(feature = "std")]
impl<'a> DfuFile<'a> {
    /// Why the file has nothing to write for alternate setting `alt` (any when `None`), if
    /// it has nothing: DfuSe targets without elements (or with empty ones only), an empty
    /// payload.
    pub fn no_data(&self, alt: Option<u8>) -> Option<std::string::String> {
        match self.contents {
            DfuContents::DfuSe(image) => {
                let targets = || {
                    image
                        .targets()
                        .filter(move |t| alt.is_none_or(|a| t.alt_setting == a))
                };
                let elements: u64 = targets().map(|t| u64::from(t.element_count())).sum();
                let bytes: u64 = targets()
                    .flat_map(|t| t.elements())
                    .map(|e| e.data.len() as u64)
                    .sum();
                let which = match alt {
                    Some(a) => std::format!(" for alternate setting {a}"),
                    None => std::string::String::new(),
                };
                if elements == 0 {
                    Some(std::format!(
                        "its DfuSe targets hold no elements{which}: there is nothing to write"
                    ))
                } else if bytes == 0 {
                    Some(std::format!(
                        "its {elements} DfuSe element(s){which} are all empty (0 bytes): there is nothing to write"
                    ))
                } else {
                    None
                }
            }
            DfuContents::Stellaris { payload, .. } | DfuContents::Raw(payload) => payload
                .is_empty()
                .then(|| "its payload is empty (0 bytes): there is nothing to write".into()),
        }
    }

    /// The file's data as (address, bytes): every DfuSe element of every target, or the
    /// Stellaris payload at its address, or a raw payload at `raw_address`.
    pub fn segments(&self, raw_address: u32) -> std::vec::Vec<(u32, &'a [u8])> {
        match self.contents {
            DfuContents::DfuSe(image) => image
                .targets()
                .flat_map(|t| t.elements())
                .map(|e| (e.address, e.data))
                .collect(),
            DfuContents::Stellaris { address, payload } => std::vec![(address, payload)],
            DfuContents::Raw(payload) => std::vec![(raw_address, payload)],
        }
    }
}

#[cfg(feature = "std")]
pub use writer::*;

#[cfg(feature = "std")]
mod writer {
    use super::*;
    use std::vec::Vec;

    /// Appends a DFU suffix (with its CRC) to `payload`.
    pub fn append_suffix(
        payload: &[u8],
        vendor_id: u16,
        product_id: u16,
        bcd_device: u16,
        bcd_dfu: u16,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + SUFFIX_LEN);
        out.extend_from_slice(payload);
        let suffix = DfuSuffix {
            bcd_device,
            product_id,
            vendor_id,
            bcd_dfu,
            crc: 0,
        };
        out.extend_from_slice(&suffix.header_bytes());
        let crc = dfu_crc(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// One target to write: an alternate setting, an optional name, and its elements.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct TargetSpec {
        /// bAlternateSetting (0 = internal flash on STM32 ROM DFU).
        pub alt_setting: u8,
        /// Name stored in szTargetName (≤ 255 bytes); `None` leaves bTargetNamed = 0.
        pub name: Option<String>,
        /// (address, bytes) pairs in file order.
        pub elements: Vec<(u32, Vec<u8>)>,
    }

    /// Builds a DfuSe v1.1a `.dfu` file.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DfuSeBuilder {
        /// idVendor for the suffix.
        pub vendor_id: u16,
        /// idProduct for the suffix.
        pub product_id: u16,
        /// bcdDevice for the suffix.
        pub bcd_device: u16,
        /// The targets in file order.
        pub targets: Vec<TargetSpec>,
    }

    impl Default for DfuSeBuilder {
        fn default() -> Self {
            DfuSeBuilder {
                vendor_id: ST_ROM_VID,
                product_id: ST_ROM_PID,
                bcd_device: 0,
                targets: Vec::new(),
            }
        }
    }

    impl DfuSeBuilder {
        /// A file for the STM32 ROM DFU (0483:DF11) holding one image at `address` in alt 0.
        pub fn single(address: u32, data: &[u8]) -> Self {
            DfuSeBuilder {
                targets: vec![TargetSpec {
                    alt_setting: 0,
                    name: Some("ST...".into()),
                    elements: vec![(address, data.to_vec())],
                }],
                ..Default::default()
            }
        }

        /// Encodes the file: prefix, targets, elements, then the suffix with its CRC.
        pub fn build(&self) -> Result<Vec<u8>, DfuFileError> {
            if self.targets.is_empty() {
                return Err(DfuFileError::NoTargets);
            }
            let target_count =
                u8::try_from(self.targets.len()).map_err(|_| DfuFileError::TooLarge)?;
            let mut out = Vec::new();
            out.extend_from_slice(DFUSE_SIGNATURE);
            out.push(1);
            out.extend_from_slice(&[0; 4]); // DFUImageSize, patched below
            out.push(target_count);
            for target in &self.targets {
                let mut name_field = [0u8; TARGET_NAME_LEN];
                if let Some(name) = &target.name {
                    let bytes = name.as_bytes();
                    if bytes.len() > TARGET_NAME_LEN {
                        return Err(DfuFileError::TargetNameTooLong { len: bytes.len() });
                    }
                    name_field[..bytes.len()].copy_from_slice(bytes);
                }
                let mut elements = Vec::new();
                for (address, data) in &target.elements {
                    let size = u32::try_from(data.len()).map_err(|_| DfuFileError::TooLarge)?;
                    if size > 0 && address.checked_add(size - 1).is_none() {
                        return Err(DfuFileError::TooLarge);
                    }
                    elements.extend_from_slice(&address.to_le_bytes());
                    elements.extend_from_slice(&size.to_le_bytes());
                    elements.extend_from_slice(data);
                }
                let target_size =
                    u32::try_from(elements.len()).map_err(|_| DfuFileError::TooLarge)?;
                let element_count =
                    u32::try_from(target.elements.len()).map_err(|_| DfuFileError::TooLarge)?;
                out.extend_from_slice(TARGET_SIGNATURE);
                out.push(target.alt_setting);
                out.extend_from_slice(&u32::from(target.name.is_some()).to_le_bytes());
                out.extend_from_slice(&name_field);
                out.extend_from_slice(&target_size.to_le_bytes());
                out.extend_from_slice(&element_count.to_le_bytes());
                out.extend_from_slice(&elements);
            }
            let total =
                u32::try_from(out.len() + SUFFIX_LEN).map_err(|_| DfuFileError::TooLarge)?;
            out[6..10].copy_from_slice(&total.to_le_bytes());
            Ok(append_suffix(
                &out,
                self.vendor_id,
                self.product_id,
                self.bcd_device,
                BCD_DFU_DFUSE,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_reference_check_value() {
        // zlib CRC-32("123456789") = 0xCBF43926; the DFU suffix stores its inverse.
        assert_eq!(dfu_crc(b"123456789"), 0x340B_C6D9);
    }

    #[test]
    fn raw_suffix_round_trip() {
        let file = append_suffix(b"hello", 0x1234, 0x5678, 0x0200, BCD_DFU_1_0);
        let parsed = DfuFile::parse(&file).unwrap();
        assert_eq!(parsed.suffix.vendor_id, 0x1234);
        assert_eq!(parsed.suffix.product_id, 0x5678);
        assert_eq!(parsed.suffix.bcd_device, 0x0200);
        assert!(matches!(parsed.contents, DfuContents::Raw(b"hello")));
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let file = DfuSeBuilder::single(0x0800_0000, &[1, 2, 3, 4, 5])
            .build()
            .unwrap();
        for byte in 0..file.len() {
            for bit in 0..8 {
                let mut bad = file.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    DfuFile::parse(&bad).is_err(),
                    "flip at {byte}.{bit} accepted"
                );
            }
        }
    }

    #[test]
    fn truncation_is_an_error_never_a_panic() {
        let file = DfuSeBuilder::single(0x0800_0000, &[7; 40]).build().unwrap();
        for len in 0..file.len() {
            assert!(DfuFile::parse(&file[..len]).is_err());
        }
    }
}
