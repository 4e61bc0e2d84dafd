//! Public keys the verifier trusts, and their DER SubjectPublicKeyInfo form (what
//! imgtool embeds, hashes into KEYHASH and prints with `getpub`).

use core::fmt;

use sha2::{Digest, Sha256};

use crate::tlv::kind;

/// DER SPKI prefix of an Ed25519 key (OID 1.3.101.112), followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER SPKI prefix of a P-256 key (id-ecPublicKey, prime256v1), followed by the
/// 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Longest SPKI this crate produces (P-256: 26 + 65).
pub const MAX_SPKI_LEN: usize = 91;

/// A key trusted to sign images.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519 public key (32 bytes).
    Ed25519([u8; 32]),
    /// ECDSA P-256 public key as an uncompressed SEC1 point (`04 || X || Y`).
    EcdsaP256([u8; 65]),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, bytes): (&str, &[u8]) = match self {
            Self::Ed25519(k) => ("Ed25519", k),
            Self::EcdsaP256(k) => ("EcdsaP256", k),
        };
        let mut hex = [0u8; 2 * 65];
        let hex = base16ct::lower::encode_str(bytes, &mut hex).map_err(|_| fmt::Error)?;
        write!(f, "{name}({hex})")
    }
}

/// The bytes given are not a public key this crate supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// Not an Ed25519 or P-256 DER SubjectPublicKeyInfo.
    UnsupportedSpki,
    /// Not a valid SEC1 P-256 point.
    InvalidPoint,
}

impl fmt::Display for KeyFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnsupportedSpki => "not an Ed25519 or ECDSA P-256 SubjectPublicKeyInfo (DER)",
            Self::InvalidPoint => "not a valid P-256 public key point",
        })
    }
}

impl core::error::Error for KeyFormatError {}

impl PublicKey {
    /// A P-256 key from SEC1 bytes, compressed (33) or uncompressed (65).
    #[cfg(feature = "p256")]
    pub fn ecdsa_p256_from_sec1(sec1: &[u8]) -> Result<Self, KeyFormatError> {
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
            .map_err(|_| KeyFormatError::InvalidPoint)?;
        let point = key.to_encoded_point(false);
        let bytes: [u8; 65] = point
            .as_bytes()
            .try_into()
            .map_err(|_| KeyFormatError::InvalidPoint)?;
        Ok(Self::EcdsaP256(bytes))
    }

    /// A key from its DER SubjectPublicKeyInfo, e.g. the array `imgtool getpub` prints.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyFormatError> {
        if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            let key: [u8; 32] = raw
                .try_into()
                .map_err(|_| KeyFormatError::UnsupportedSpki)?;
            return Ok(Self::Ed25519(key));
        }
        if let Some(point) = der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            if point.len() != 65 {
                return Err(KeyFormatError::UnsupportedSpki);
            }
            #[cfg(feature = "p256")]
            return Self::ecdsa_p256_from_sec1(point);
            // Without the curve arithmetic the point cannot be checked; it is kept as given
            // (uncompressed form only) so the key still names the images it signed.
            #[cfg(not(feature = "p256"))]
            return match <[u8; 65]>::try_from(point) {
                Ok(bytes @ [0x04, ..]) => Ok(Self::EcdsaP256(bytes)),
                _ => Err(KeyFormatError::InvalidPoint),
            };
        }
        Err(KeyFormatError::UnsupportedSpki)
    }

    /// Write the DER SubjectPublicKeyInfo into `out` and return it.
    pub fn spki_der<'o>(&self, out: &'o mut [u8; MAX_SPKI_LEN]) -> &'o [u8] {
        let (prefix, raw): (&[u8], &[u8]) = match self {
            Self::Ed25519(k) => (&ED25519_SPKI_PREFIX, k),
            Self::EcdsaP256(k) => (&P256_SPKI_PREFIX, k),
        };
        let len = prefix.len() + raw.len();
        out[..prefix.len()].copy_from_slice(prefix);
        out[prefix.len()..len].copy_from_slice(raw);
        &out[..len]
    }

    /// SHA-256 of the SPKI: the value of the image's KEYHASH TLV.
    pub fn key_hash(&self) -> [u8; 32] {
        let mut buf = [0u8; MAX_SPKI_LEN];
        Sha256::digest(self.spki_der(&mut buf)).into()
    }

    /// The signature TLV type this key produces.
    pub fn signature_tlv(&self) -> u16 {
        match self {
            Self::Ed25519(_) => kind::ED25519,
            Self::EcdsaP256(_) => kind::ECDSA_SIG,
        }
    }

    /// imgtool's short name (`ed25519`, `ecdsa`), used in `getpub` symbol names.
    pub fn short_name(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "ed25519",
            Self::EcdsaP256(_) => "ecdsa",
        }
    }
}
