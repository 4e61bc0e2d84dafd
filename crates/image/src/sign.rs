//! Build and sign images the way `imgtool sign` does, byte for byte.
//!
//! Layout produced: header (padded to `header_size`), payload, protected TLVs
//! (SEC_CNT, DEPENDENCY…, custom TLVs — in imgtool's order), unprotected TLVs
//! (SHA256, KEYHASH or PUBKEY, signature), then with `pad` erased bytes up to the
//! slot's trailer and the trailer magic (and `image_ok` with `confirm`).

use sha2::{Digest, Sha256};

use crate::header::{flags, ImageHeader, ImageVersion, IMAGE_HEADER_SIZE, IMAGE_MAGIC};
use crate::keys::{KeyError, SigningKey};
use crate::tlv::{kind, Dependency, TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC};
use crate::trailer::{boot_magic, trailer_size, DEFAULT_MAX_SECTORS};

/// `--security-counter`: a number, or `auto` (derived from the version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityCounter {
    /// `auto`: `(major << 24) + (minor << 16) + revision` of the image version (see
    /// [`ImageVersion::auto_security_counter`]).
    Auto,
    /// This value.
    Value(u32),
}

impl std::str::FromStr for SecurityCounter {
    type Err = String;
    /// `auto`, or an integer in decimal, `0x`, `0o` or `0b` notation (as imgtool).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        parse_int(s)
            .map(Self::Value)
            .ok_or_else(|| format!("'{s}' is not a valid integer or 'auto'"))
    }
}

/// Parse an integer the way imgtool's `int(value, 0)` does (for u32 values).
pub fn parse_int(s: &str) -> Option<u32> {
    let t = s.trim().replace('_', "");
    let lower = t.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h.to_string(), 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o.to_string(), 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b.to_string(), 2)
    } else {
        (lower.clone(), 10)
    };
    if digits.is_empty() {
        return None;
    }
    u32::from_str_radix(&digits, radix).ok()
}

/// How the signing key is named in the image (`--public-key-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublicKeyFormat {
    /// KEYHASH TLV: SHA-256 of the DER SubjectPublicKeyInfo (imgtool's default).
    #[default]
    Hash,
    /// PUBKEY TLV: the DER SubjectPublicKeyInfo itself.
    Full,
}

/// Every `imgtool sign` option this crate supports, with imgtool's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// `-v/--version`.
    pub version: ImageVersion,
    /// `-H/--header-size` (at least 32).
    pub header_size: u32,
    /// `--pad-header`: prepend `header_size` erased bytes instead of requiring the
    /// input to start with `header_size` zero bytes.
    pub pad_header: bool,
    /// `-S/--slot-size`; 0 disables the size check (imgtool requires it).
    pub slot_size: u32,
    /// `--align`: flash write size, 1, 2, 4, 8, 16 or 32.
    pub align: u32,
    /// `--max-align`: 8, 16 or 32; default `max(8, align)`.
    pub max_align: Option<u32>,
    /// `--pad`: pad to `slot_size` and write the trailer magic.
    pub pad: bool,
    /// `--confirm`: pad and set `image_ok`.
    pub confirm: bool,
    /// `--test`: pad, `image_ok` left erased.
    pub test: bool,
    /// `--overwrite-only`: smaller trailer.
    pub overwrite_only: bool,
    /// `-M/--max-sectors` (default 128).
    pub max_sectors: Option<u32>,
    /// `-R/--erased-val`: 0xff (default) or 0.
    pub erased_val: u8,
    /// `-s/--security-counter`.
    pub security_counter: Option<SecurityCounter>,
    /// `-L/--load-addr`: RAM load address (sets `RAM_LOAD`).
    pub load_addr: Option<u32>,
    /// `-F/--rom-fixed`: flash address the image is linked for (sets `ROM_FIXED`).
    pub rom_fixed: Option<u32>,
    /// `--non-bootable`.
    pub non_bootable: bool,
    /// `-d/--dependencies`.
    pub dependencies: Vec<Dependency>,
    /// `--custom-tlv TAG VALUE` (protected; tags 0xa0..=0xfffe, not a named type).
    pub custom_tlvs: Vec<(u16, Vec<u8>)>,
    /// `--public-key-format`.
    pub public_key_format: PublicKeyFormat,
    /// `--pad-sig`: zero-pad ECDSA signatures to 72 bytes (MCUboot < 1.5).
    pub pad_sig: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            version: ImageVersion::default(),
            header_size: IMAGE_HEADER_SIZE as u32,
            pad_header: false,
            slot_size: 0,
            align: 1,
            max_align: None,
            pad: false,
            confirm: false,
            test: false,
            overwrite_only: false,
            max_sectors: None,
            erased_val: 0xff,
            security_counter: None,
            load_addr: None,
            rom_fixed: None,
            non_bootable: false,
            dependencies: Vec::new(),
            custom_tlvs: Vec::new(),
            public_key_format: PublicKeyFormat::Hash,
            pad_sig: false,
        }
    }
}

impl SignOptions {
    /// The effective `BOOT_MAX_ALIGN` (explicit, or `max(8, align)`).
    pub fn effective_max_align(&self) -> u32 {
        self.max_align.unwrap_or(self.align.max(8))
    }

    /// Trailer bytes reserved at the end of the slot.
    pub fn trailer_size(&self) -> u32 {
        trailer_size(
            self.align,
            self.effective_max_align(),
            self.max_sectors.unwrap_or(DEFAULT_MAX_SECTORS),
            self.overwrite_only,
        )
    }
}

/// Why an image could not be built. Nothing is written on error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// `header_size` is below 32 or above 65535 (`hdr_size` is a `u16`); holds it.
    #[error("header size {0} is invalid: it must be at least 32 and at most 65535")]
    InvalidHeaderSize(u32),
    /// Without `pad_header`, the input must start with `header_size` zero bytes, the room
    /// the header is written into.
    #[error("the input does not start with {header_size} zero bytes; use --pad-header to prepend the header")]
    HeaderNotZero {
        /// The header size asked for, bytes.
        header_size: u32,
    },
    /// Without `pad_header`, the input is shorter than the header it must make room for.
    #[error("the input ({len} bytes) is shorter than the header size {header_size}")]
    InputShorterThanHeader {
        /// Input length, bytes.
        len: usize,
        /// The header size asked for, bytes.
        header_size: u32,
    },
    /// `align` is not 1, 2, 4, 8, 16 or 32; holds it.
    #[error("--align {0} is invalid: use 1, 2, 4, 8, 16 or 32")]
    InvalidAlign(u32),
    /// `max_align` is not 8, 16 or 32; holds it.
    #[error("--max-align {0} is invalid: use 8, 16 or 32")]
    InvalidMaxAlign(u32),
    /// `erased_val` is neither 0 nor 0xff; holds it.
    #[error("--erased-val {0:#x} is invalid: use 0 or 0xff")]
    InvalidErasedValue(u8),
    /// `load_addr` (`RAM_LOAD`) and `rom_fixed` (`ROM_FIXED`) are both non-zero: the
    /// header holds one address.
    #[error("cannot set both a load address and a fixed ROM address")]
    LoadAddrAndRomFixed,
    /// `pad`, `confirm` or `test` without a `slot_size`.
    #[error("padding needs a slot size (--slot-size)")]
    PadWithoutSlotSize,
    /// The image plus the trailer does not fit in `slot_size`.
    #[error("image size (0x{image:x}) + trailer (0x{trailer:x}) exceeds the slot size 0x{slot:x}")]
    TooLargeForSlot {
        /// Image bytes: header, payload and TLVs.
        image: usize,
        /// Trailer bytes reserved at the slot end ([`SignOptions::trailer_size`]).
        trailer: u32,
        /// `slot_size`, bytes.
        slot: u32,
    },
    /// The payload does not fit the header's 32-bit `img_size`.
    #[error("the image is larger than 4 GiB")]
    ImageTooLarge,
    /// A TLV area (in practice the protected one, which holds the custom TLVs) is over
    /// 65535 bytes, info header included; holds its size.
    #[error("the protected TLVs ({0} bytes) exceed 65535 bytes")]
    ProtectedTlvsTooLarge(usize),
    /// A custom TLV tag is outside 0xa0..=0xfffe or is a type MCUboot defines
    /// ([`kind::KNOWN`]); holds it.
    #[error("custom TLV tag 0x{0:x} is invalid: use 0xa0..=0xfffe, not a predefined TLV type")]
    InvalidCustomTlv(u16),
    /// The same custom TLV tag is given twice; holds it.
    #[error("custom TLV tag 0x{0:x} is given twice")]
    DuplicateCustomTlv(u16),
    /// A TLV value is longer than a record's 16-bit length field allows.
    #[error("TLV 0x{kind:x} value of {len} bytes exceeds 65535 bytes")]
    TlvTooLarge {
        /// The TLV type code.
        kind: u16,
        /// The value's length, bytes.
        len: usize,
    },
    /// Signing the digest failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The slot cannot hold a trailer (HEX layout of a padded image).
    #[error("slot size {0} is too small for a trailer")]
    SlotTooSmallForTrailer(u32),
    /// The signed image is shorter than the slot it claims to fill.
    #[error("signed image is shorter than its slot")]
    ShorterThanSlot,
    /// The HEX address plus the slot passes 4 GiB.
    #[error("HEX address 0x{0:x} + slot runs past 4 GiB")]
    HexAddressOverflow(u32),
    /// The signed bytes do not parse as an image.
    #[error(transparent)]
    Image(#[from] crate::ImageError),
}

/// The pieces of `signed` a HEX output holds at `address`, as imgtool writes them: the image,
/// and for a padded image only the trailer bytes that differ from erased flash (magic, and
/// image_ok when confirmed or tested), so programming it never writes erased words (which
/// would commit ECC on STM32H7/L4/U5).
pub fn hex_segments(
    signed: &[u8],
    address: u32,
    opts: &SignOptions,
) -> Result<Vec<crate::firmware::Segment>, SignError> {
    use crate::firmware::Segment;
    use crate::trailer::{boot_magic, TrailerOffsets};
    let padded = opts.pad || opts.confirm || opts.test;
    if !padded {
        return Ok(vec![Segment {
            address,
            data: signed.to_vec(),
        }]);
    }
    let image_len = crate::ImageView::parse(signed)?.tlv_end as usize;
    let max_align = opts.effective_max_align();
    let offsets = TrailerOffsets::new(opts.slot_size, max_align)
        .ok_or(SignError::SlotTooSmallForTrailer(opts.slot_size))?;
    let piece = |start: u32, len: usize| -> Result<Segment, SignError> {
        let data = signed
            .get(start as usize..start as usize + len)
            .ok_or(SignError::ShorterThanSlot)?
            .to_vec();
        let at = address
            .checked_add(start)
            .ok_or(SignError::HexAddressOverflow(address))?;
        Ok(Segment { address: at, data })
    };
    let mut segments = vec![piece(0, image_len)?];
    if (opts.confirm || opts.test) && !opts.overwrite_only {
        segments.push(piece(offsets.image_ok, max_align as usize)?);
    }
    segments.push(piece(offsets.magic, boot_magic(max_align).len())?);
    Ok(segments)
}

struct TlvWriter {
    magic: u16,
    buf: Vec<u8>,
}

impl TlvWriter {
    fn new(magic: u16) -> Self {
        Self {
            magic,
            buf: Vec::new(),
        }
    }

    fn add(&mut self, kind: u16, value: &[u8]) -> Result<(), SignError> {
        let len = u16::try_from(value.len()).map_err(|_| SignError::TlvTooLarge {
            kind,
            len: value.len(),
        })?;
        self.buf.extend_from_slice(&kind.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(value);
        Ok(())
    }

    /// Info header + records, or nothing when empty (as imgtool).
    fn finish(self) -> Result<Vec<u8>, SignError> {
        if self.buf.is_empty() {
            return Ok(Vec::new());
        }
        let total = self.buf.len() + 4;
        let total16 = u16::try_from(total).map_err(|_| SignError::ProtectedTlvsTooLarge(total))?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.magic.to_le_bytes());
        out.extend_from_slice(&total16.to_le_bytes());
        out.extend_from_slice(&self.buf);
        Ok(out)
    }
}

fn check_options(opts: &SignOptions) -> Result<(), SignError> {
    if opts.header_size < IMAGE_HEADER_SIZE as u32 || opts.header_size > u16::MAX as u32 {
        return Err(SignError::InvalidHeaderSize(opts.header_size));
    }
    if !matches!(opts.align, 1 | 2 | 4 | 8 | 16 | 32) {
        return Err(SignError::InvalidAlign(opts.align));
    }
    if let Some(m) = opts.max_align {
        if !matches!(m, 8 | 16 | 32) {
            return Err(SignError::InvalidMaxAlign(m));
        }
    }
    if !matches!(opts.erased_val, 0 | 0xff) {
        return Err(SignError::InvalidErasedValue(opts.erased_val));
    }
    if opts.load_addr.unwrap_or(0) != 0 && opts.rom_fixed.unwrap_or(0) != 0 {
        return Err(SignError::LoadAddrAndRomFixed);
    }
    let mut seen = Vec::new();
    for (tag, _) in &opts.custom_tlvs {
        if !(kind::VENDOR_MIN..=kind::VENDOR_MAX).contains(tag) || kind::KNOWN.contains(tag) {
            return Err(SignError::InvalidCustomTlv(*tag));
        }
        if seen.contains(tag) {
            return Err(SignError::DuplicateCustomTlv(*tag));
        }
        seen.push(*tag);
    }
    Ok(())
}

/// Build (and with a key, sign) an image from `input`, as `imgtool sign` does with the
/// same options. `input` is the raw binary: unless `pad_header` is set it must start
/// with `header_size` zero bytes, which the header overwrites.
pub fn sign_image(
    input: &[u8],
    key: Option<&SigningKey>,
    opts: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    check_options(opts)?;
    let header_size = opts.header_size as usize;
    let pad = opts.pad || opts.confirm || opts.test;
    if pad && opts.slot_size == 0 {
        return Err(SignError::PadWithoutSlotSize);
    }

    let mut image = Vec::with_capacity(input.len() + header_size + 512);
    if opts.pad_header {
        image.resize(header_size, opts.erased_val);
    } else {
        if input.len() < header_size {
            return Err(SignError::InputShorterThanHeader {
                len: input.len(),
                header_size: opts.header_size,
            });
        }
        if input[..header_size].iter().any(|&b| b != 0) {
            return Err(SignError::HeaderNotZero {
                header_size: opts.header_size,
            });
        }
    }
    image.extend_from_slice(input);
    let img_size =
        u32::try_from(image.len() - header_size).map_err(|_| SignError::ImageTooLarge)?;

    // Protected TLVs, in imgtool's order.
    let mut prot = TlvWriter::new(TLV_PROT_INFO_MAGIC);
    let security_counter = opts.security_counter.map(|c| match c {
        SecurityCounter::Auto => opts.version.auto_security_counter(),
        SecurityCounter::Value(v) => v,
    });
    if let Some(c) = security_counter {
        prot.add(kind::SEC_CNT, &c.to_le_bytes())?;
    }
    for dep in &opts.dependencies {
        prot.add(kind::DEPENDENCY, &dep.encode())?;
    }
    for (tag, value) in &opts.custom_tlvs {
        prot.add(*tag, value)?;
    }
    let prot = prot.finish()?;

    let rom_fixed = opts.rom_fixed.unwrap_or(0);
    let load_addr = opts.load_addr.unwrap_or(0);
    let mut hdr_flags = 0;
    if load_addr != 0 {
        hdr_flags |= flags::RAM_LOAD;
    }
    if rom_fixed != 0 {
        hdr_flags |= flags::ROM_FIXED;
    }
    if opts.non_bootable {
        hdr_flags |= flags::NON_BOOTABLE;
    }
    let header = ImageHeader {
        magic: IMAGE_MAGIC,
        load_addr: if rom_fixed != 0 { rom_fixed } else { load_addr },
        hdr_size: opts.header_size as u16,
        protect_tlv_size: prot.len() as u16,
        img_size,
        flags: hdr_flags,
        version: opts.version,
    };
    image[..IMAGE_HEADER_SIZE].copy_from_slice(&header.to_bytes());
    image.extend_from_slice(&prot);

    let digest: [u8; 32] = Sha256::digest(&image).into();
    let mut tlvs = TlvWriter::new(TLV_INFO_MAGIC);
    tlvs.add(kind::SHA256, &digest)?;
    if let Some(key) = key {
        let public = key.public_key();
        match opts.public_key_format {
            PublicKeyFormat::Hash => tlvs.add(kind::KEYHASH, &public.key_hash())?,
            PublicKeyFormat::Full => tlvs.add(kind::PUBKEY, &crate::keys::spki_der(&public))?,
        }
        let mut sig = key.sign_digest(&digest)?;
        if opts.pad_sig && matches!(key, SigningKey::EcdsaP256(_)) {
            sig.resize(72, 0);
        }
        tlvs.add(public.signature_tlv(), &sig)?;
    }
    image.extend_from_slice(&tlvs.finish()?);

    if opts.slot_size > 0 {
        let trailer = opts.trailer_size();
        if image.len() as u64 + trailer as u64 > opts.slot_size as u64 {
            return Err(SignError::TooLargeForSlot {
                image: image.len(),
                trailer,
                slot: opts.slot_size,
            });
        }
        if pad {
            let max_align = opts.effective_max_align();
            image.resize(opts.slot_size as usize, opts.erased_val);
            let magic_at = opts.slot_size as usize - 16;
            image[magic_at..].copy_from_slice(&boot_magic(max_align));
            if opts.confirm && !opts.overwrite_only {
                let image_ok_at = opts.slot_size as usize
                    - (16usize.next_multiple_of(max_align as usize) + max_align as usize);
                image[image_ok_at] = 0x01;
            }
        }
    }
    Ok(image)
}

/// Parse imgtool's `--dependencies` text, e.g. `"(1,2.3.4+5), (2, 1.0.0)"`: every
/// `(ID` paired with every `, VERSION)` in order, as imgtool matches them.
pub fn parse_dependencies(text: &str) -> Result<Vec<Dependency>, String> {
    let bytes = text.as_bytes();
    let mut ids = Vec::new();
    let mut versions = Vec::new();
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'(' {
            let digits: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if !digits.is_empty() {
                ids.push(digits);
            }
        } else if c == b',' {
            let rest = text[i + 1..].trim_start();
            let ver: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '+')
                .collect();
            if !ver.is_empty() && rest[ver.len()..].starts_with(')') {
                versions.push(ver);
            }
        }
    }
    if ids.is_empty() {
        return Err(format!("image dependency format is invalid: {text}"));
    }
    if ids.len() != versions.len() {
        return Err(format!(
            "{} dependency images but {} versions in: {text}",
            ids.len(),
            versions.len()
        ));
    }
    ids.iter()
        .zip(&versions)
        .map(|(id, ver)| {
            let image_id = id
                .parse::<u8>()
                .map_err(|_| format!("dependency image id {id} is not 0..=255"))?;
            let min_version = ver
                .parse::<ImageVersion>()
                .map_err(|e| format!("dependency version {ver}: {e}"))?;
            Ok(Dependency {
                image_id,
                min_version,
            })
        })
        .collect()
}

/// Why a custom TLV's tag or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustomTlvError {
    /// The tag is not a number up to 0xffff.
    #[error("custom TLV tag {0:?} is not a 16-bit number")]
    Tag(String),
    /// The value starts with `0x` but what follows is not whole hex bytes.
    #[error("custom TLV 0x{tag:x}: {value:?} is not hex bytes")]
    Hex {
        /// The TLV's tag.
        tag: u16,
        /// The value as given.
        value: String,
    },
}

/// Parse a custom TLV tag as imgtool takes it: an integer (`0x` allowed) up to 0xffff.
pub fn parse_custom_tlv_tag(tag: &str) -> Result<u16, CustomTlvError> {
    parse_int(tag)
        .and_then(|t| u16::try_from(t).ok())
        .ok_or_else(|| CustomTlvError::Tag(tag.to_string()))
}

/// Parse imgtool's `--custom-tlv TAG VALUE`: TAG as [`parse_custom_tlv_tag`], VALUE hex
/// bytes when it starts with `0x`, otherwise its UTF-8 bytes.
pub fn parse_custom_tlv(tag: &str, value: &str) -> Result<(u16, Vec<u8>), CustomTlvError> {
    let tag = parse_custom_tlv_tag(tag)?;
    let data = match value.strip_prefix("0x") {
        Some(hex) => base16ct::mixed::decode_vec(hex).map_err(|_| CustomTlvError::Hex {
            tag,
            value: value.to_string(),
        })?,
        None => value.as_bytes().to_vec(),
    };
    Ok((tag, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_parse_like_imgtool() {
        let d = parse_dependencies("(1,2.3.4+5), (2, 1.0)").unwrap();
        assert_eq!(
            d,
            vec![
                Dependency {
                    image_id: 1,
                    min_version: ImageVersion::new(2, 3, 4, 5)
                },
                Dependency {
                    image_id: 2,
                    min_version: ImageVersion::new(1, 0, 0, 0)
                },
            ]
        );
        assert!(parse_dependencies("1,2.3.4").is_err());
        assert!(parse_dependencies("(1,2.3.4").is_err());
        assert!(parse_dependencies("(300,1.0.0)").is_err());
    }

    #[test]
    fn custom_tlvs_and_ints_parse_like_imgtool() {
        assert_eq!(parse_custom_tlv("0xa0", "0x0102"), Ok((0xa0, vec![1, 2])));
        assert_eq!(parse_custom_tlv("170", "hi"), Ok((170, b"hi".to_vec())));
        assert!(parse_custom_tlv("0xa0", "0x012").is_err());
        assert_eq!(parse_custom_tlv("1", "0xAbCd"), Ok((1, vec![0xab, 0xcd])));
        // Four bytes, but not four hex digits: an error, not a slice across a character.
        assert!(parse_custom_tlv("1", "0xa\u{e9}1").is_err());
        assert!(parse_custom_tlv("1", "0xzz").is_err());
        assert!(parse_custom_tlv("0x10000", "x").is_err());
        assert_eq!(parse_int("0b101"), Some(5));
        assert_eq!(parse_int("0o17"), Some(15));
        assert_eq!(parse_int("0X1f"), Some(31));
        assert_eq!(parse_int(""), None);
    }
}
