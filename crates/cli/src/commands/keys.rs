//! `brickless keygen` and `brickless getpub`: the same flags and file formats as imgtool's.
use std::io::Write;
use std::path::{Path, PathBuf};

use brickless_image::keys::{self, GetpubEncoding, KeyType, LoadedKey};
use clap::{Args, ValueEnum};
use miette::{miette, IntoDiagnostic, Result};

use crate::firmware_file::write_file_atomically;

/// Key algorithms (imgtool's `keygen -t` names).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyTypeArg {
    /// Ed25519: small, fast, deterministic signatures (recommended).
    Ed25519,
    /// ECDSA over NIST P-256.
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
}

impl From<KeyTypeArg> for KeyType {
    fn from(k: KeyTypeArg) -> Self {
        match k {
            KeyTypeArg::Ed25519 => KeyType::Ed25519,
            KeyTypeArg::EcdsaP256 => KeyType::EcdsaP256,
        }
    }
}

/// Output encodings of `getpub` (imgtool's names).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EncodingArg {
    /// A C array of the DER public key and its length, for MCUboot's keys.c.
    #[value(name = "lang-c")]
    LangC,
    /// A Rust byte slice of the DER public key, for brickless's bootloader build.
    #[value(name = "lang-rust")]
    LangRust,
    /// PEM SubjectPublicKeyInfo: share this with anyone who verifies your images.
    Pem,
    /// Raw DER SubjectPublicKeyInfo bytes.
    Raw,
}

impl From<EncodingArg> for GetpubEncoding {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::LangC => GetpubEncoding::LangC,
            EncodingArg::LangRust => GetpubEncoding::LangRust,
            EncodingArg::Pem => GetpubEncoding::Pem,
            EncodingArg::Raw => GetpubEncoding::Raw,
        }
    }
}

/// Arguments of `brickless keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Key algorithm.
    #[arg(short = 't', long = "type", value_enum)]
    pub key_type: KeyTypeArg,
    /// Where to write the private key (PKCS#8 PEM, readable by imgtool).
    #[arg(short = 'k', long = "key")]
    pub key: PathBuf,
    /// Replace the file if it exists (a lost key cannot sign updates for devices in the field).
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `brickless getpub`.
#[derive(Args, Debug)]
pub struct GetpubArgs {
    /// Private or public key PEM (from `brickless keygen` or `imgtool keygen`).
    #[arg(short = 'k', long = "key")]
    pub key: PathBuf,
    /// Output encoding.
    #[arg(short = 'e', long = "encoding", value_enum, default_value = "lang-c")]
    pub encoding: EncodingArg,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Append this to the C/Rust symbol names (e.g. `_2` for a second key).
    #[arg(long = "name-suffix", default_value = "")]
    pub name_suffix: String,
}

/// Read and parse a PEM key file, with errors naming the file.
pub fn load_key(path: &Path) -> Result<LoadedKey> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        miette!(
            help = "pass the PEM file written by `brickless keygen` or `imgtool keygen`",
            "cannot read key {}: {e}",
            path.display()
        )
    })?;
    keys::load_pem(&text).map_err(|e| {
        miette!(
            help =
                "brickless reads ed25519 and ecdsa-p256 keys in PEM (PKCS#8, SEC1 or public key)",
            "key {}: {e}",
            path.display()
        )
    })
}

/// Runs `brickless keygen`: writes a new key, never over an existing one without `--force`.
pub fn keygen(args: KeygenArgs) -> Result<()> {
    if args.key.exists() && !args.force {
        return Err(miette!(
            help = "choose another path, or pass --force to replace it",
            "{} already exists; refusing to overwrite a key",
            args.key.display()
        ));
    }
    let key = keys::generate(args.key_type.into());
    write_private_file(&args.key, key.to_pem().as_bytes())?;
    eprintln!(
        "wrote {} key to {}",
        KeyType::from(args.key_type).imgtool_name(),
        args.key.display()
    );
    Ok(())
}

/// Write a secret: owner-only from creation where the OS has modes, complete or not at all.
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| miette!("{} names no file", path.display()))?;
    let temp = path.with_file_name(format!(".{}.brickless-tmp", name.to_string_lossy()));
    // A temp left by a killed run must not block the next one.
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|e| {
        miette!(
            help = "check the folder exists and is writable",
            "cannot write key {}: {e}",
            path.display()
        )
    })
}

/// Runs `brickless getpub`: prints the public key in the chosen encoding.
pub fn getpub(args: GetpubArgs) -> Result<()> {
    let key = load_key(&args.key)?;
    let out = keys::getpub(&key.public_key(), args.encoding.into(), &args.name_suffix);
    match args.output {
        Some(path) => write_file_atomically(&path, &out)?,
        None => std::io::stdout().write_all(&out).into_diagnostic()?,
    }
    Ok(())
}
