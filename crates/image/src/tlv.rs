//! TLV areas: `image_tlv_info { u16 magic; u16 total }` followed by
//! `{ u16 type; u16 len; value }` records, all little-endian.

use crate::error::ImageError;
use crate::header::ImageVersion;

/// Size of a TLV info header and of a TLV record header.
pub const TLV_INFO_SIZE: usize = 4;
/// Size of a TLV record header.
pub const TLV_HEADER_SIZE: usize = 4;
/// Magic of the unprotected TLV area.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// Magic of the protected (hashed) TLV area.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;

/// TLV type codes (`IMAGE_TLV_*`).
pub mod kind {
    /// Hash of the signing key's DER SubjectPublicKeyInfo with the image's hash algorithm
    /// (32 bytes for SHA-256; unprotected): how imgtool names the key by default
    /// (`--public-key-format hash`).
    pub const KEYHASH: u16 = 0x01;
    /// The signing key's DER SubjectPublicKeyInfo itself (unprotected); written instead of
    /// KEYHASH with imgtool's `--public-key-format full`.
    pub const PUBKEY: u16 = 0x02;
    /// SHA-256 over header, payload and protected TLVs (32 bytes, unprotected): the hash
    /// this crate verifies and signs.
    pub const SHA256: u16 = 0x10;
    /// SHA-384 over header, payload and protected TLVs (imgtool `--sha 384`, or a P-384
    /// key); not checked by this crate's verifier.
    pub const SHA384: u16 = 0x11;
    /// SHA-512 over header, payload and protected TLVs (imgtool `--sha 512`); not checked
    /// by this crate's verifier.
    pub const SHA512: u16 = 0x12;
    /// RSA-2048 PSS signature of the image hash; not supported by this crate.
    pub const RSA2048_PSS: u16 = 0x20;
    /// ECDSA P-224 signature of the image hash; obsolete, MCUboot no longer accepts it.
    pub const ECDSA224: u16 = 0x21;
    /// ECDSA signature (P-256 or P-384) of the image hash, DER `(r, s)`; this crate
    /// verifies P-256.
    pub const ECDSA_SIG: u16 = 0x22;
    /// RSA-3072 PSS signature of the image hash; not supported by this crate.
    pub const RSA3072_PSS: u16 = 0x23;
    /// Ed25519 signature (64 bytes) over the image hash (over the image with SIG_PURE).
    pub const ED25519: u16 = 0x24;
    /// One byte: the signature covers the image itself, not its hash (e.g. pure Ed25519).
    /// This crate only verifies signatures over the hash.
    pub const SIG_PURE: u16 = 0x25;
    /// Encrypted image: the AES key, encrypted with RSA-2048 OAEP.
    pub const ENC_RSA2048: u16 = 0x30;
    /// Encrypted image: the AES key, wrapped with AES key wrap (AES-KW).
    pub const ENC_KW: u16 = 0x31;
    /// Encrypted image: the AES key, encrypted with ECIES over P-256.
    pub const ENC_EC256: u16 = 0x32;
    /// Encrypted image: the AES key, encrypted with ECIES over X25519 (SHA-256 KDF/MAC).
    pub const ENC_X25519: u16 = 0x33;
    /// Encrypted image: the AES key, encrypted with ECIES over X25519 (SHA-512 KDF/MAC).
    pub const ENC_X25519_SHA512: u16 = 0x34;
    /// Protected, 12 bytes: another image this one needs at a minimum version (see
    /// [`Dependency`](crate::tlv::Dependency)); imgtool `--dependencies`.
    pub const DEPENDENCY: u16 = 0x40;
    /// Protected, little-endian `u32`: the security counter for anti-rollback; imgtool
    /// `--security-counter`.
    pub const SEC_CNT: u16 = 0x50;
    /// Protected: CBOR measured-boot record; imgtool `--boot-record`.
    pub const BOOT_RECORD: u16 = 0x60;
    /// Protected, compressed images: payload size after decompression, bytes.
    pub const DECOMP_SIZE: u16 = 0x70;
    /// Protected, compressed images: hash of the decompressed image (same algorithm and
    /// size as the image's hash TLV).
    pub const DECOMP_SHA: u16 = 0x71;
    /// Protected, compressed images: signature of the decompressed image (same format as
    /// the image's signature TLV).
    pub const DECOMP_SIGNATURE: u16 = 0x72;
    /// Protected, compressed and encrypted images: size of the compressed payload once
    /// decrypted, bytes.
    pub const COMP_DEC_SIZE: u16 = 0x73;
    /// 16-byte vendor UUID, which MCUboot built with `MCUBOOT_UUID_VID` checks.
    pub const UUID_VID: u16 = 0x74;
    /// 16-byte device class UUID, which MCUboot built with `MCUBOOT_UUID_CID` checks.
    pub const UUID_CID: u16 = 0x75;
    /// First type code imgtool accepts for `--custom-tlv`.
    pub const VENDOR_MIN: u16 = 0x00a0;
    /// Last type code imgtool accepts for `--custom-tlv`.
    pub const VENDOR_MAX: u16 = 0xfffe;

    /// Every type imgtool names (custom types excluded).
    pub const KNOWN: [u16; 25] = [
        KEYHASH,
        PUBKEY,
        SHA256,
        SHA384,
        SHA512,
        RSA2048_PSS,
        ECDSA224,
        ECDSA_SIG,
        RSA3072_PSS,
        ED25519,
        SIG_PURE,
        ENC_RSA2048,
        ENC_KW,
        ENC_EC256,
        ENC_X25519,
        ENC_X25519_SHA512,
        DEPENDENCY,
        SEC_CNT,
        BOOT_RECORD,
        DECOMP_SIZE,
        DECOMP_SHA,
        DECOMP_SIGNATURE,
        COMP_DEC_SIZE,
        UUID_VID,
        UUID_CID,
    ];

    /// imgtool's name for a type code (as `dumpinfo` prints it), if it has one.
    pub fn name(kind: u16) -> Option<&'static str> {
        Some(match kind {
            KEYHASH => "KEYHASH",
            PUBKEY => "PUBKEY",
            SHA256 => "SHA256",
            SHA384 => "SHA384",
            SHA512 => "SHA512",
            RSA2048_PSS => "RSA2048",
            ECDSA224 => "ECDSA224",
            ECDSA_SIG => "ECDSASIG",
            RSA3072_PSS => "RSA3072",
            ED25519 => "ED25519",
            SIG_PURE => "SIG_PURE",
            ENC_RSA2048 => "ENCRSA2048",
            ENC_KW => "ENCKW",
            ENC_EC256 => "ENCEC256",
            ENC_X25519 => "ENCX25519",
            ENC_X25519_SHA512 => "ENCX25519_SHA512",
            DEPENDENCY => "DEPENDENCY",
            SEC_CNT => "SEC_CNT",
            BOOT_RECORD => "BOOT_RECORD",
            DECOMP_SIZE => "DECOMP_SIZE",
            DECOMP_SHA => "DECOMP_SHA",
            DECOMP_SIGNATURE => "DECOMP_SIGNATURE",
            COMP_DEC_SIZE => "COMP_DEC_SIZE",
            UUID_VID => "UUID_VID",
            UUID_CID => "UUID_CID",
            _ => return None,
        })
    }
}

/// A dependency on another image (`DEPENDENCY` TLV: `u8 image_id; u8 pad[3];
/// image_version`), satisfied when that image's version is at least `min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    /// The image depended on: its index in a multi-image setup (0 = the first image).
    pub image_id: u8,
    /// Lowest version of that image that satisfies the dependency.
    pub min_version: ImageVersion,
}

impl Dependency {
    /// Bytes of the TLV value: `u8 image_id`, 3 padding bytes, the 8-byte version.
    pub const ENCODED_LEN: usize = 12;

    /// Decode a DEPENDENCY value; `None` unless it is exactly
    /// [`ENCODED_LEN`](Self::ENCODED_LEN) bytes. The padding bytes are ignored.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let b: &[u8; 12] = data.try_into().ok()?;
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[4..12]);
        Some(Self {
            image_id: b[0],
            min_version: ImageVersion::from_bytes(&v),
        })
    }

    /// Encode as a DEPENDENCY value, padding zeroed, as imgtool writes it.
    pub fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0] = self.image_id;
        b[4..12].copy_from_slice(&self.min_version.to_bytes());
        b
    }
}

/// One TLV record borrowed from an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Type code (see [`kind`]).
    pub kind: u16,
    /// Offset of the record header from the image start.
    pub offset: u32,
    /// The value: the `len` bytes after the 4-byte record header.
    pub data: &'a [u8],
}

/// A TLV's value decoded by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvValue<'a> {
    /// SHA-256 of the signing key's DER SubjectPublicKeyInfo.
    KeyHash(&'a [u8]),
    /// The signing key's DER SubjectPublicKeyInfo.
    PubKey(&'a [u8]),
    /// SHA-256 over header, payload and protected TLVs.
    Sha256(&'a [u8; 32]),
    /// SHA-384 over header, payload and protected TLVs.
    Sha384(&'a [u8; 48]),
    /// SHA-512 over header, payload and protected TLVs.
    Sha512(&'a [u8; 64]),
    /// Ed25519 signature (`R || S`) over the image hash.
    Ed25519Signature(&'a [u8; 64]),
    /// DER `(r, s)`, possibly zero-padded (imgtool `--pad-sig`).
    EcdsaSignature(&'a [u8]),
    /// RSA-2048 or RSA-3072 PSS signature, kept opaque.
    RsaSignature(&'a [u8]),
    /// `true`: the signature covers the image itself rather than its hash (any non-zero
    /// byte counts as `true`).
    SigPure(bool),
    /// Encrypted-image key material (ENC_*), kept opaque.
    EncryptionKey {
        /// Which ENC_* type (0x30..=0x34).
        kind: u16,
        /// The encrypted or wrapped key as stored.
        data: &'a [u8],
    },
    /// Another image this one needs.
    Dependency(Dependency),
    /// The security counter (anti-rollback).
    SecurityCounter(u32),
    /// CBOR measured-boot record.
    BootRecord(&'a [u8]),
    /// Payload size after decompression, bytes.
    DecompressedSize(u32),
    /// Hash of the decompressed image.
    DecompressedHash(&'a [u8]),
    /// Signature of the decompressed image.
    DecompressedSignature(&'a [u8]),
    /// Size of the compressed payload once decrypted, bytes.
    CompressedDecryptedSize(u32),
    /// Vendor UUID.
    VendorUuid(&'a [u8; 16]),
    /// Device class UUID.
    ClassUuid(&'a [u8; 16]),
    /// A vendor type (0x00a0..=0xfffe) or one this crate does not know.
    Other {
        /// The type code.
        kind: u16,
        /// The value as stored.
        data: &'a [u8],
    },
}

impl<'a> Tlv<'a> {
    /// Decode the value by type; a known type with the wrong length is an error.
    pub fn value(&self) -> Result<TlvValue<'a>, ImageError> {
        let d = self.data;
        let bad = ImageError::BadTlvLength {
            kind: self.kind,
            len: d.len() as u16,
        };
        let u32_of = |d: &[u8]| -> Result<u32, ImageError> {
            let b: [u8; 4] = d.try_into().map_err(|_| bad)?;
            Ok(u32::from_le_bytes(b))
        };
        Ok(match self.kind {
            kind::KEYHASH => TlvValue::KeyHash(d),
            kind::PUBKEY => TlvValue::PubKey(d),
            kind::SHA256 => TlvValue::Sha256(d.try_into().map_err(|_| bad)?),
            kind::SHA384 => TlvValue::Sha384(d.try_into().map_err(|_| bad)?),
            kind::SHA512 => TlvValue::Sha512(d.try_into().map_err(|_| bad)?),
            kind::ED25519 => TlvValue::Ed25519Signature(d.try_into().map_err(|_| bad)?),
            kind::ECDSA_SIG | kind::ECDSA224 => TlvValue::EcdsaSignature(d),
            kind::RSA2048_PSS | kind::RSA3072_PSS => TlvValue::RsaSignature(d),
            kind::SIG_PURE => match d {
                [b] => TlvValue::SigPure(*b != 0),
                _ => return Err(bad),
            },
            kind::ENC_RSA2048
            | kind::ENC_KW
            | kind::ENC_EC256
            | kind::ENC_X25519
            | kind::ENC_X25519_SHA512 => TlvValue::EncryptionKey {
                kind: self.kind,
                data: d,
            },
            kind::DEPENDENCY => TlvValue::Dependency(Dependency::decode(d).ok_or(bad)?),
            kind::SEC_CNT => TlvValue::SecurityCounter(u32_of(d)?),
            kind::BOOT_RECORD => TlvValue::BootRecord(d),
            kind::DECOMP_SIZE => TlvValue::DecompressedSize(u32_of(d)?),
            kind::DECOMP_SHA => TlvValue::DecompressedHash(d),
            kind::DECOMP_SIGNATURE => TlvValue::DecompressedSignature(d),
            kind::COMP_DEC_SIZE => TlvValue::CompressedDecryptedSize(u32_of(d)?),
            kind::UUID_VID => TlvValue::VendorUuid(d.try_into().map_err(|_| bad)?),
            kind::UUID_CID => TlvValue::ClassUuid(d.try_into().map_err(|_| bad)?),
            k => TlvValue::Other { kind: k, data: d },
        })
    }
}

/// A TLV area (protected or not) borrowed from an image held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvArea<'a> {
    /// `TLV_INFO_MAGIC` or `TLV_PROT_INFO_MAGIC`.
    pub magic: u16,
    /// Offset of the info header from the image start.
    pub offset: u32,
    /// Records after the info header (`total - 4` bytes).
    pub records: &'a [u8],
}

impl<'a> TlvArea<'a> {
    /// Parse the info header at `offset` in `image` and check that every record lies
    /// inside the area (so iteration after this cannot fail).
    pub fn parse(image: &'a [u8], offset: u32, magic: u16) -> Result<Self, ImageError> {
        let available = image.len() as u32;
        let start = offset as usize;
        let info = image
            .get(start..start.saturating_add(TLV_INFO_SIZE))
            .ok_or(ImageError::Truncated {
                needed: offset.saturating_add(TLV_INFO_SIZE as u32),
                available,
            })?;
        let found = u16::from_le_bytes([info[0], info[1]]);
        let total = u16::from_le_bytes([info[2], info[3]]);
        if found != magic {
            return Err(ImageError::MissingTlvInfo {
                offset,
                expected: magic,
                found,
            });
        }
        if (total as usize) < TLV_INFO_SIZE {
            return Err(ImageError::TlvInfoTooSmall { offset, total });
        }
        let end = offset as u64 + total as u64;
        if end > available as u64 {
            return Err(ImageError::Truncated {
                needed: u32::try_from(end).unwrap_or(u32::MAX),
                available,
            });
        }
        let records = image
            .get(start + TLV_INFO_SIZE..end as usize)
            .ok_or(ImageError::SizeOverflow)?;
        let area = Self {
            magic,
            offset,
            records,
        };
        for tlv in area.iter() {
            tlv?;
        }
        Ok(area)
    }

    /// Total size including the info header.
    pub fn total_len(&self) -> u32 {
        (self.records.len() + TLV_INFO_SIZE) as u32
    }

    /// Iterate the records; a record running past the area yields one error and stops.
    pub fn iter(&self) -> TlvIter<'a> {
        TlvIter {
            records: self.records,
            pos: 0,
            base: self.offset + TLV_INFO_SIZE as u32,
            done: false,
        }
    }

    /// The first record of a type.
    pub fn find(&self, kind: u16) -> Option<Tlv<'a>> {
        self.iter().filter_map(Result::ok).find(|t| t.kind == kind)
    }
}

/// Iterator over the records of a [`TlvArea`].
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    records: &'a [u8],
    pos: usize,
    base: u32,
    done: bool,
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, ImageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.records.len() {
            return None;
        }
        let offset = self.base + self.pos as u32;
        let area_end = self.base + self.records.len() as u32;
        let rest = &self.records[self.pos..];
        let Some(hdr) = rest.get(..TLV_HEADER_SIZE) else {
            self.done = true;
            return Some(Err(ImageError::TlvPastEnd {
                offset,
                len: 0,
                area_end,
            }));
        };
        let kind = u16::from_le_bytes([hdr[0], hdr[1]]);
        let len = u16::from_le_bytes([hdr[2], hdr[3]]);
        let Some(data) = rest.get(TLV_HEADER_SIZE..TLV_HEADER_SIZE + len as usize) else {
            self.done = true;
            return Some(Err(ImageError::TlvPastEnd {
                offset,
                len,
                area_end,
            }));
        };
        self.pos += TLV_HEADER_SIZE + len as usize;
        Some(Ok(Tlv { kind, offset, data }))
    }
}
