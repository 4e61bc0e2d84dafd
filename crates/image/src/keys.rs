//! Signing keys in imgtool's formats: generate, load and write PEM (PKCS#8 private keys,
//! SubjectPublicKeyInfo public keys), and the `getpub` / `getpubhash` outputs.

use std::fmt::Write as _;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::LineEnding;
use sha2::{Digest, Sha256};

use crate::pubkey::{PublicKey, MAX_SPKI_LEN};

/// Key algorithms this crate signs with (imgtool `keygen -t` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Ed25519 (`ed25519`): 64-byte signatures in the ED25519 TLV (0x24).
    Ed25519,
    /// ECDSA over NIST P-256 (`ecdsa-p256`): DER signatures in the ECDSA_SIG TLV (0x22).
    EcdsaP256,
}

impl KeyType {
    /// imgtool's `keygen --type` name.
    pub fn imgtool_name(&self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl std::str::FromStr for KeyType {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "ed25519" => Ok(Self::Ed25519),
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            other => Err(KeyError::UnsupportedKeyType(other.to_string())),
        }
    }
}

/// Why a key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text has no `-----BEGIN ...-----` line.
    #[error("not a PEM file (no '-----BEGIN' line)")]
    NotPem,
    /// A password-protected PKCS#8 key (`ENCRYPTED PRIVATE KEY`): decrypt it first.
    #[error("the key is password-protected (ENCRYPTED PRIVATE KEY); decrypt it first (e.g. `openssl pkcs8 -in key.pem -out plain.pem`)")]
    Encrypted,
    /// A key type this crate does not handle: an RSA PEM file (`rsa`), or an unknown
    /// [`KeyType`] name; holds that name.
    #[error("unsupported key type '{0}': only ed25519 and ecdsa-p256 are supported")]
    UnsupportedKeyType(String),
    /// The ECDSA signer returned an error.
    #[error("signing failed")]
    SigningFailed,
    /// The PEM block is not an Ed25519 or P-256 key (or has a label this crate does not
    /// read).
    #[error("PEM block '{label}' is not a valid ed25519 or ecdsa-p256 key")]
    Invalid {
        /// The PEM label, e.g. `PRIVATE KEY`.
        label: String,
    },
}

/// A private key that can sign images.
#[derive(Clone)]
pub enum SigningKey {
    /// An Ed25519 private key.
    Ed25519(ed25519_dalek::SigningKey),
    /// An ECDSA P-256 private key.
    EcdsaP256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material.
        write!(f, "SigningKey({:?})", self.public_key())
    }
}

/// What a PEM file held: a key pair or a public key only.
#[derive(Debug, Clone)]
pub enum LoadedKey {
    /// A private key (PKCS#8 or SEC1): can sign, and its public key is derived from it.
    Private(SigningKey),
    /// A public key (SubjectPublicKeyInfo): can name and verify images, not sign them.
    Public(PublicKey),
}

impl LoadedKey {
    /// The public key, derived from the private key when the file held one.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Private(k) => k.public_key(),
            Self::Public(p) => *p,
        }
    }

    /// The private key; `None` for a public-key file.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        match self {
            Self::Private(k) => Some(k),
            Self::Public(_) => None,
        }
    }
}

/// A fresh random key (OS entropy), like `imgtool keygen`.
pub fn generate(kind: KeyType) -> SigningKey {
    let mut rng = rand_core::OsRng;
    match kind {
        KeyType::Ed25519 => SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
        KeyType::EcdsaP256 => SigningKey::EcdsaP256(p256::ecdsa::SigningKey::random(&mut rng)),
    }
}

/// Load a PEM file as imgtool does: a private key (PKCS#8, or SEC1 `EC PRIVATE KEY`),
/// falling back to a public key (SubjectPublicKeyInfo).
pub fn load_pem(pem: &str) -> Result<LoadedKey, KeyError> {
    let label = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or(KeyError::NotPem)?
        .to_string();
    let invalid = || KeyError::Invalid {
        label: label.clone(),
    };
    match label.as_str() {
        "PRIVATE KEY" => {
            if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
                return Ok(LoadedKey::Private(SigningKey::Ed25519(k)));
            }
            let k = p256::SecretKey::from_pkcs8_pem(pem).map_err(|_| invalid())?;
            Ok(LoadedKey::Private(SigningKey::EcdsaP256(k.into())))
        }
        "EC PRIVATE KEY" => {
            let k = p256::SecretKey::from_sec1_pem(pem).map_err(|_| invalid())?;
            Ok(LoadedKey::Private(SigningKey::EcdsaP256(k.into())))
        }
        "PUBLIC KEY" => {
            if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
                return Ok(LoadedKey::Public(PublicKey::Ed25519(k.to_bytes())));
            }
            let k = p256::PublicKey::from_public_key_pem(pem).map_err(|_| invalid())?;
            let point = k.to_encoded_point(false);
            PublicKey::ecdsa_p256_from_sec1(point.as_bytes())
                .map(LoadedKey::Public)
                .map_err(|_| invalid())
        }
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
        "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => Err(KeyError::UnsupportedKeyType("rsa".into())),
        _ => Err(invalid()),
    }
}

impl SigningKey {
    /// The algorithm of this key.
    pub fn key_type(&self) -> KeyType {
        match self {
            Self::Ed25519(_) => KeyType::Ed25519,
            Self::EcdsaP256(_) => KeyType::EcdsaP256,
        }
    }

    /// The matching public key: what the bootloader trusts and the KEYHASH TLV names.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(k) => PublicKey::Ed25519(k.verifying_key().to_bytes()),
            Self::EcdsaP256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                let mut raw = [0u8; 65];
                raw.copy_from_slice(point.as_bytes());
                PublicKey::EcdsaP256(raw)
            }
        }
    }

    /// The private key as imgtool's `keygen` writes it: unencrypted PKCS#8 PEM
    /// (Ed25519 as a v1 structure without the public key; P-256 with the public key
    /// inside the SEC1 structure and no curve parameters, as OpenSSL writes it).
    pub fn to_pem(&self) -> String {
        match self {
            Self::Ed25519(k) => {
                let bytes = ed25519_dalek::pkcs8::KeypairBytes {
                    secret_key: k.to_bytes(),
                    public_key: None,
                };
                bytes
                    .to_pkcs8_pem(LineEnding::LF)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            }
            Self::EcdsaP256(k) => p256::SecretKey::from(k)
                .to_pkcs8_pem(LineEnding::LF)
                .map(|s| s.to_string())
                .unwrap_or_default(),
        }
    }

    /// Sign a SHA-256 image digest: Ed25519 over the 32 digest bytes, or ECDSA P-256
    /// over the digest as a prehash (DER signature, RFC 6979 deterministic nonce).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Ed25519(k) => {
                use ed25519_dalek::Signer;
                Ok(k.sign(digest).to_bytes().to_vec())
            }
            Self::EcdsaP256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(digest)
                    .map_err(|_| KeyError::SigningFailed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

/// DER SubjectPublicKeyInfo of a key (`imgtool getpub -e raw`).
pub fn spki_der(key: &PublicKey) -> Vec<u8> {
    let mut buf = [0u8; MAX_SPKI_LEN];
    key.spki_der(&mut buf).to_vec()
}

/// PEM SubjectPublicKeyInfo (`imgtool getpub -e pem`).
pub fn public_key_pem(key: &PublicKey) -> String {
    let der = spki_der(key);
    let doc = p256::pkcs8::Document::try_from(der.as_slice());
    match doc {
        Ok(doc) => doc.to_pem("PUBLIC KEY", LineEnding::LF).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Output encodings of `imgtool getpub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetpubEncoding {
    /// C array of the DER SPKI plus its length (imgtool's default).
    LangC,
    /// Rust static byte slice of the DER SPKI.
    LangRust,
    /// PEM SubjectPublicKeyInfo.
    Pem,
    /// Raw DER SPKI bytes.
    Raw,
}

impl std::str::FromStr for GetpubEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lang-c" => Ok(Self::LangC),
            "lang-rust" => Ok(Self::LangRust),
            "pem" => Ok(Self::Pem),
            "raw" => Ok(Self::Raw),
            o => Err(format!(
                "unknown encoding '{o}': expected lang-c, lang-rust, pem or raw"
            )),
        }
    }
}

const AUTOGEN_MESSAGE: &str = "/* Autogenerated by imgtool.py, do not edit. */";

/// The byte-array body imgtool prints: 8 bytes per line, 4-space indent.
fn emit_array(header: &str, trailer: &str, bytes: &[u8], len_line: Option<String>) -> String {
    let mut s = String::new();
    s.push_str(AUTOGEN_MESSAGE);
    s.push('\n');
    s.push_str(header);
    for (i, b) in bytes.iter().enumerate() {
        s.push_str(if i % 8 == 0 { "\n    " } else { " " });
        let _ = write!(s, "0x{b:02x},");
    }
    s.push('\n');
    s.push_str(trailer);
    s.push('\n');
    if let Some(l) = len_line {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// `imgtool getpub -e <encoding> [--name-suffix S]`, byte for byte.
pub fn getpub(key: &PublicKey, encoding: GetpubEncoding, name_suffix: &str) -> Vec<u8> {
    let der = spki_der(key);
    let name = key.short_name();
    match encoding {
        GetpubEncoding::LangC => emit_array(
            &format!("const unsigned char {name}_pub_key{name_suffix}[] = {{"),
            "};",
            &der,
            Some(format!(
                "const unsigned int {name}_pub_key{name_suffix}_len = {};",
                der.len()
            )),
        )
        .into_bytes(),
        GetpubEncoding::LangRust => emit_array(
            &format!(
                "static {}_PUB_KEY{}: &[u8] = &[",
                name.to_uppercase(),
                name_suffix.to_uppercase()
            ),
            "];",
            &der,
            None,
        )
        .into_bytes(),
        GetpubEncoding::Pem => public_key_pem(key).into_bytes(),
        GetpubEncoding::Raw => der,
    }
}

/// Output encodings of `imgtool getpubhash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetpubhashEncoding {
    /// C array of the 32-byte hash plus its length (imgtool's default).
    LangC,
    /// The 32 raw hash bytes.
    Raw,
}

/// `imgtool getpubhash -e <encoding> [--name-suffix S]`: SHA-256 of the DER SPKI.
pub fn getpubhash(key: &PublicKey, encoding: GetpubhashEncoding, name_suffix: &str) -> Vec<u8> {
    let hash = Sha256::digest(spki_der(key));
    let name = key.short_name();
    match encoding {
        GetpubhashEncoding::LangC => emit_array(
            &format!("const unsigned char {name}_pub_key_hash{name_suffix}[] = {{"),
            "};",
            &hash,
            Some(format!(
                "const unsigned int {name}_pub_key_hash{name_suffix}_len = {};",
                hash.len()
            )),
        )
        .into_bytes(),
        GetpubhashEncoding::Raw => hash.to_vec(),
    }
}
