//! Images: sign, verify, inspect. Files are read whole and checked before anything else
//! happens; an output file is written atomically, so a failed job leaves none.
use std::path::Path;

use brickless_image::firmware::{load_flat, write_file_atomically, FirmwareFileError};
use brickless_image::inspect::{inspect, ImageInfo};
use brickless_image::keys::{load_pem, LoadedKey};
use brickless_image::sign::{sign_image, SignError, SignOptions};
use brickless_image::{verify_bytes, ImageVersion, PublicKey};

use crate::{hex, Error, ErrorKind};

/// The signing options the bindings offer (the CLI's `image sign` has all of imgtool's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignSpec {
    /// `maj.min.rev[+build]`.
    pub version: String,
    /// Header size (`-H`), at least 32; the slot's vector table must be aligned after it.
    pub header_size: u32,
    /// Prepend the header instead of overwriting zeros at the start of the input.
    pub pad_header: bool,
    /// Slot size (`-S`); the image must fit.
    pub slot_size: u32,
    /// Flash write size (`--align`): 1, 2, 4, 8, 16 or 32.
    pub align: u32,
    /// Pad to the slot and mark the image confirmed (`--confirm`).
    pub confirm: bool,
}

impl Default for SignSpec {
    fn default() -> Self {
        SignSpec {
            version: "0.0.0".into(),
            header_size: 0x200,
            pad_header: true,
            slot_size: 0x20000,
            align: 8,
            confirm: false,
        }
    }
}

/// What an image is, as `image inspect` summarises it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImageSummary {
    /// Version text as mcumgr shows it (`1.2.3`, or `1.2.3.4` with a build number).
    pub version: String,
    /// SHA-256 over header, payload and protected TLVs (the image's hash), hex.
    pub hash: String,
    /// The image's SHA256 TLV equals `hash`.
    pub hash_matches: bool,
    /// Header size.
    pub header_size: u32,
    /// Payload size.
    pub payload_size: u32,
    /// Bytes up to the end of the TLVs.
    pub image_size: u32,
    /// The header's flags.
    pub flags: u32,
    /// SEC_CNT TLV value, if any.
    pub security_counter: Option<u32>,
    /// Carries a signature TLV.
    pub signed: bool,
    /// Names of the TLVs, protected first.
    pub tlvs: Vec<String>,
}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// Version text.
    pub version: String,
    /// The image's hash, hex.
    pub hash: String,
    /// Index of the key that signed it among those given; `None` when no key was given and
    /// only the hash was checked.
    pub key_index: Option<usize>,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::new(
            ErrorKind::File,
            format!("cannot read {}: {e}", path.display()),
        )
        .with_help("check the path and its permissions")
    })
}

fn file_error(e: FirmwareFileError) -> Error {
    let kind = match e {
        FirmwareFileError::Read { .. } | FirmwareFileError::Write { .. } => ErrorKind::File,
        _ => ErrorKind::BadImage,
    };
    Error::new(kind, e.to_string())
}

/// Loads a PEM key file (ed25519 or ECDSA P-256; private or public).
pub fn load_key(path: &Path) -> Result<LoadedKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::BadKey,
            format!("cannot read key {}: {e}", path.display()),
        )
        .with_help("pass the PEM file written by `brickless keygen` or `imgtool keygen`")
    })?;
    load_pem(&text).map_err(|e| {
        Error::new(ErrorKind::BadKey, format!("key {}: {e}", path.display())).with_help(
            "brickless reads ed25519 and ecdsa-p256 keys in PEM (PKCS#8, SEC1 or public key)",
        )
    })
}

fn options(spec: &SignSpec) -> Result<SignOptions, Error> {
    let version: ImageVersion = spec.version.parse().map_err(|e| {
        Error::invalid(format!("version `{}`: {e}", spec.version))
            .with_help("write it as MAJOR.MINOR.REVISION[+BUILD], e.g. 1.2.3")
    })?;
    Ok(SignOptions {
        version,
        header_size: spec.header_size,
        pad_header: spec.pad_header,
        slot_size: spec.slot_size,
        align: spec.align,
        confirm: spec.confirm,
        ..SignOptions::default()
    })
}

/// Builds and signs an image from `payload` (the firmware's bytes) with the private key in
/// `key` (unsigned, hash only, without one).
pub fn sign_bytes(payload: &[u8], key: Option<&Path>, spec: &SignSpec) -> Result<Vec<u8>, Error> {
    let opts = options(spec)?;
    let key = match key {
        Some(path) => Some(load_key(path)?.signing_key().cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::BadKey,
                format!("{} holds only a public key", path.display()),
            )
            .with_help("signing needs the private key (from `brickless keygen`)")
        })?),
        None => None,
    };
    let with_header = payload.len() as u64
        + if opts.pad_header {
            u64::from(opts.header_size)
        } else {
            0
        };
    if opts.slot_size != 0 && with_header > u64::from(opts.slot_size) {
        return Err(Error::new(
            ErrorKind::BadImage,
            format!(
                "the firmware does not fit the slot: {with_header} bytes with header > slot size {}",
                opts.slot_size
            ),
        ));
    }
    sign_image(payload, key.as_ref(), &opts).map_err(|e| {
        use SignError as S;
        let kind = match e {
            S::Key(_) => ErrorKind::BadKey,
            S::TooLargeForSlot { .. } | S::ImageTooLarge => ErrorKind::BadImage,
            _ => ErrorKind::InvalidArgument,
        };
        Error::new(kind, e.to_string())
    })
}

/// Signs the firmware file `input` (BIN, Intel HEX or ELF) into the BIN image `output`.
pub fn sign_file(
    input: &Path,
    output: &Path,
    key: Option<&Path>,
    spec: &SignSpec,
) -> Result<ImageSummary, Error> {
    let (payload, _) = load_flat(input, 0xff).map_err(file_error)?;
    let signed = sign_bytes(&payload, key, spec).map_err(|e| e.context(input.display()))?;
    write_file_atomically(output, &signed).map_err(file_error)?;
    summarise(&signed)
}

/// Summarises an image held in memory.
pub fn summarise(bytes: &[u8]) -> Result<ImageSummary, Error> {
    let info = inspect(bytes, 0xff).map_err(|e| {
        Error::new(ErrorKind::BadImage, format!("not an MCUboot image: {e}"))
            .with_help("pass an image signed with `brickless image sign` or `imgtool sign`")
    })?;
    Ok(summary_of(&info))
}

fn summary_of(info: &ImageInfo) -> ImageSummary {
    let tlvs: Vec<String> = info
        .protected_tlvs
        .iter()
        .chain(&info.unprotected_tlvs)
        .map(|t| {
            t.name
                .map_or_else(|| format!("0x{:02x}", t.kind), str::to_string)
        })
        .collect();
    ImageSummary {
        version: brickless_smp::client::version_text(info.header.version),
        hash: hex(&info.computed_hash),
        hash_matches: info.hash_matches,
        header_size: u32::from(info.header.hdr_size),
        payload_size: info.header.img_size,
        image_size: info.tlv_end,
        flags: info.header.flags,
        security_counter: info.security_counter,
        signed: tlvs.iter().any(|n| {
            matches!(
                n.as_str(),
                "ED25519" | "ECDSASIG" | "ECDSA224" | "RSA2048" | "RSA3072"
            )
        }),
        tlvs,
    }
}

/// Summarises the image file at `path` (BIN, as signed).
pub fn inspect_file(path: &Path) -> Result<ImageSummary, Error> {
    summarise(&read(path)?).map_err(|e| e.context(path.display()))
}

/// Reads a signed image to upload: refuses what is not an MCUboot image or whose hash TLV
/// does not match, before any device is touched. Returns the bytes and the image's hash.
pub fn read_signed(path: &Path) -> Result<(Vec<u8>, ImageInfo), Error> {
    let bytes = read(path)?;
    let info = inspect(&bytes, 0xff).map_err(|e| {
        Error::new(
            ErrorKind::BadImage,
            format!("{} is not an MCUboot image: {e}", path.display()),
        )
        .with_help("upload an image signed with `brickless image sign` or `imgtool sign`")
    })?;
    if !info.hash_matches {
        return Err(Error::new(
            ErrorKind::BadImage,
            format!(
                "{}: its SHA256 TLV does not match its contents",
                path.display()
            ),
        )
        .with_help("the file was changed after signing (or cut short): sign it again"));
    }
    if (info.tlv_end as usize) > bytes.len() {
        return Err(Error::new(
            ErrorKind::BadImage,
            format!("{} is truncated", path.display()),
        ));
    }
    Ok((bytes, info))
}

/// Verifies the image at `path` against the public (or private) keys in `keys`; with no
/// key only its hash is checked.
pub fn verify_file(path: &Path, keys: &[&Path]) -> Result<Verified, Error> {
    let mut public: Vec<PublicKey> = Vec::new();
    for k in keys {
        public.push(load_key(k)?.public_key());
    }
    let bytes = read(path)?;
    let v = verify_bytes(&bytes, &public).map_err(|e| {
        use brickless_image::VerifyError as V;
        let (kind, help) = match &e {
            V::UnknownKey | V::MissingSignature => (
                ErrorKind::Verification,
                "pass the public key the image was signed with",
            ),
            V::HashMismatch { .. } => (
                ErrorKind::Verification,
                "the image changed after signing: sign it again",
            ),
            V::BadSignature => (
                ErrorKind::Verification,
                "the image was altered or its signature forged: do not install it",
            ),
            V::MissingKeyTlv => (ErrorKind::Verification, "the image is unsigned"),
            _ => (
                ErrorKind::BadImage,
                "is this a signed image? `brickless image inspect` shows its structure",
            ),
        };
        Error::new(kind, format!("{} failed verification: {e}", path.display())).with_help(help)
    })?;
    Ok(Verified {
        version: brickless_smp::client::version_text(v.version()),
        hash: hex(&v.hash),
        key_index: v.key_index,
    })
}
