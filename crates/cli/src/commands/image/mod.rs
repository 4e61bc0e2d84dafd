//! `brickless image …`: sign, verify, inspect and merge MCUboot-format images.
//!
//! `sign` takes imgtool's flags, so `imgtool sign …` becomes `brickless image sign …` with
//! nothing else changed; the signing itself lives in `brickless-image`.
use std::path::{Path, PathBuf};

use brickless_image::firmware::FirmwareImage;
use brickless_image::sign::{
    hex_segments, parse_custom_tlv, parse_custom_tlv_tag, parse_int, sign_image, CustomTlvError,
    PublicKeyFormat, SecurityCounter, SignError, SignOptions,
};
use brickless_image::{Dependency, ImageVersion};
use clap::{Args, Subcommand, ValueEnum};
use miette::{miette, Result};

use super::keys::load_key;
use crate::firmware_file::{write_file_atomically, FileError, FileFormat};

mod inspect;
mod merge;
mod verify;

pub use inspect::InspectArgs;
pub use merge::MergeArgs;
pub use verify::VerifyArgs;

/// The `brickless image` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Sign a firmware (BIN, HEX or ELF) into an MCUboot image; takes `imgtool sign`'s flags.
    Sign(SignArgs),
    /// Check an image's hash and signature against trusted public keys.
    Verify(VerifyArgs),
    /// Show an image's header, TLVs, hash, key and trailer (the fields of `imgtool dumpinfo`).
    Inspect(InspectArgs),
    /// Combine a bootloader and signed images into one factory HEX or BIN.
    Merge(MergeArgs),
}

/// Runs a `brickless image` subcommand.
pub fn run(cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Sign(args) => sign(args),
        ImageCommand::Verify(args) => verify::verify(args),
        ImageCommand::Inspect(args) => inspect::inspect_cmd(args),
        ImageCommand::Merge(args) => merge::merge(args),
    }
}

/// An integer in decimal, 0x hex, 0o octal or 0b binary, as imgtool accepts.
fn int_arg(s: &str) -> std::result::Result<u32, String> {
    parse_int(s).ok_or_else(|| format!("'{s}' is not an integer (decimal or 0x-prefixed hex)"))
}

fn version_arg(s: &str) -> std::result::Result<ImageVersion, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn erased_arg(s: &str) -> std::result::Result<u8, String> {
    match parse_int(s) {
        Some(0) => Ok(0),
        Some(0xff) => Ok(0xff),
        _ => Err(format!("'{s}' is not an erased value: use 0 or 0xff")),
    }
}

/// How a signed image names its key (`--public-key-format`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyFormatArg {
    /// KEYHASH TLV: SHA-256 of the public key (imgtool's default).
    Hash,
    /// PUBKEY TLV: the whole public key.
    Full,
}

/// Arguments of `brickless image sign`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example (a confirmed image for a 128 KiB slot on STM32H7):\n  \
    brickless image sign -k key.pem -v 1.0.0 -H 0x400 --pad-header -S 0x20000 --align 32 --confirm app.bin app.signed.bin"
)]
pub struct SignArgs {
    /// Private key PEM (ed25519 or ecdsa-p256). Without it the image carries only its hash.
    #[arg(short = 'k', long = "key")]
    pub key: Option<PathBuf>,
    /// Image version, `major.minor.revision+build` (e.g. 1.2.3+4).
    #[arg(short = 'v', long = "version", value_parser = version_arg)]
    pub version: ImageVersion,
    /// Header size in bytes; the payload starts here (0x200 for Zephyr, 0x400 on STM32H7).
    #[arg(short = 'H', long = "header-size", value_parser = int_arg)]
    pub header_size: u32,
    /// Prepend --header-size erased bytes for the header (else the input must start with zeros).
    #[arg(long = "pad-header")]
    pub pad_header: bool,
    /// Slot size in bytes (the secondary slot's if the slots differ).
    #[arg(short = 'S', long = "slot-size", value_parser = int_arg)]
    pub slot_size: u32,
    /// Flash write size used by swap updates: 1, 2, 4, 8, 16 or 32.
    #[arg(long, default_value = "1", value_parser = int_arg)]
    pub align: u32,
    /// The bootloader's BOOT_MAX_ALIGN (8, 16 or 32); default max(8, --align).
    #[arg(long = "max-align", value_parser = int_arg)]
    pub max_align: Option<u32>,
    /// Pad to --slot-size and write the trailer magic (a slot image ready to program).
    #[arg(long)]
    pub pad: bool,
    /// Pad and mark the image confirmed (image_ok = 1): boots permanently.
    #[arg(long)]
    pub confirm: bool,
    /// Pad and mark the image for a test swap (reverted unless the app confirms it).
    #[arg(long)]
    pub test: bool,
    /// Sectors the swap status area must cover (default 128).
    #[arg(short = 'M', long = "max-sectors", value_parser = int_arg)]
    pub max_sectors: Option<u32>,
    /// Size the trailer for overwrite-only updates.
    #[arg(long = "overwrite-only")]
    pub overwrite_only: bool,
    /// Security counter for anti-rollback: a number, or `auto` (from the version).
    #[arg(short = 's', long = "security-counter")]
    pub security_counter: Option<SecurityCounter>,
    /// Dependencies on other images: "(image_id,version), (image_id,version)".
    #[arg(short = 'd', long = "dependencies")]
    pub dependencies: Option<String>,
    /// RAM address to load the image to (RAM-load bootloaders).
    #[arg(short = 'L', long = "load-addr", value_parser = int_arg)]
    pub load_addr: Option<u32>,
    /// Flash address the image is linked for (sets ROM_FIXED).
    #[arg(short = 'F', long = "rom-fixed", value_parser = int_arg)]
    pub rom_fixed: Option<u32>,
    /// Address of the image in a HEX output (default: the input HEX/ELF's own address).
    #[arg(short = 'x', long = "hex-addr", value_parser = int_arg)]
    pub hex_addr: Option<u32>,
    /// Value erased flash reads as: 0xff (most STM32) or 0.
    #[arg(short = 'R', long = "erased-val", default_value = "0xff", value_parser = erased_arg)]
    pub erased_val: u8,
    /// How the image names its key: a hash (default) or the full public key.
    #[arg(long = "public-key-format", value_enum, default_value = "hash")]
    pub public_key_format: KeyFormatArg,
    /// Pad ECDSA signatures to 72 bytes (MCUboot before 1.5).
    #[arg(long = "pad-sig")]
    pub pad_sig: bool,
    /// Mark the image as not bootable.
    #[arg(long = "non-bootable")]
    pub non_bootable: bool,
    /// Protected vendor TLV: `--custom-tlv 0xa0 0x0102` (hex bytes) or `--custom-tlv 0xa0 text`.
    #[arg(long = "custom-tlv", num_args = 2, value_names = ["TAG", "VALUE"], action = clap::ArgAction::Append)]
    pub custom_tlv: Vec<String>,
    /// Protected vendor TLV whose value is a file's bytes: `--custom-tlv-file 0xa1 blob.bin`.
    #[arg(long = "custom-tlv-file", num_args = 2, value_names = ["TAG", "FILE"], action = clap::ArgAction::Append)]
    pub custom_tlv_file: Vec<String>,
    /// Input firmware: BIN, Intel HEX (.hex) or ELF.
    pub infile: PathBuf,
    /// Output image: Intel HEX if it ends in .hex, BIN otherwise.
    pub outfile: PathBuf,
}

/// imgtool's `-d` syntax: "(1,1.2.3+0), (2, 0.4)".
fn parse_dependencies(text: &str) -> Result<Vec<Dependency>> {
    let bad = |why: &str| {
        miette!(
            help = "write dependencies as \"(image_id,version), (image_id,version)\", e.g. \"(1,1.2.0)\"",
            "--dependencies {text:?}: {why}"
        )
    };
    let mut deps = Vec::new();
    for group in text.split(')') {
        let group = group.trim().trim_start_matches(',').trim();
        if group.is_empty() {
            continue;
        }
        let inner = group.strip_prefix('(').ok_or_else(|| bad("expected '('"))?;
        let (id, version) = inner.split_once(',').ok_or_else(|| bad("expected ','"))?;
        let image_id = id
            .trim()
            .parse()
            .map_err(|_| bad("image id is not 0..255"))?;
        let min_version = version
            .trim()
            .parse()
            .map_err(|_| bad("version is not major.minor.revision+build"))?;
        deps.push(Dependency {
            image_id,
            min_version,
        });
    }
    if deps.is_empty() {
        return Err(bad("no dependency given"));
    }
    Ok(deps)
}

impl SignArgs {
    /// imgtool's order: every `--custom-tlv`, then every `--custom-tlv-file`.
    fn custom_tlvs(&self) -> Result<Vec<(u16, Vec<u8>)>> {
        let refused = |e: CustomTlvError| match e {
            CustomTlvError::Hex { .. } => miette!(
                help =
                    "write an even number of hex digits after 0x, or a value without 0x for text",
                "{e}"
            ),
            _ => miette!(help = "custom TLV tags are 0xa0..=0xfffe, e.g. 0xa0", "{e}"),
        };
        let mut out = Vec::new();
        for pair in self.custom_tlv.chunks_exact(2) {
            out.push(parse_custom_tlv(&pair[0], &pair[1]).map_err(refused)?);
        }
        for pair in self.custom_tlv_file.chunks_exact(2) {
            let tag = parse_custom_tlv_tag(&pair[0]).map_err(refused)?;
            let value = std::fs::read(&pair[1]).map_err(|e| {
                miette!(
                    help = "check the path given to --custom-tlv-file",
                    "cannot read custom TLV file {}: {e}",
                    pair[1]
                )
            })?;
            out.push((tag, value));
        }
        Ok(out)
    }

    fn options(&self) -> Result<SignOptions> {
        Ok(SignOptions {
            version: self.version,
            header_size: self.header_size,
            pad_header: self.pad_header,
            slot_size: self.slot_size,
            align: self.align,
            max_align: self.max_align,
            pad: self.pad,
            confirm: self.confirm,
            test: self.test,
            overwrite_only: self.overwrite_only,
            max_sectors: self.max_sectors,
            erased_val: self.erased_val,
            security_counter: self.security_counter,
            load_addr: self.load_addr,
            rom_fixed: self.rom_fixed,
            non_bootable: self.non_bootable,
            dependencies: match &self.dependencies {
                Some(d) => parse_dependencies(d)?,
                None => Vec::new(),
            },
            custom_tlvs: self.custom_tlvs()?,
            public_key_format: match self.public_key_format {
                KeyFormatArg::Hash => PublicKeyFormat::Hash,
                KeyFormatArg::Full => PublicKeyFormat::Full,
            },
            pad_sig: self.pad_sig,
        })
    }
}

fn sign_error(e: SignError, args: &SignArgs) -> miette::Report {
    let help = match &e {
        SignError::TooLargeForSlot { .. } => {
            "the firmware does not fit the slot with its trailer: check -S/--slot-size, or shrink the firmware"
        }
        SignError::HeaderNotZero { .. } | SignError::InputShorterThanHeader { .. } => {
            "pass --pad-header to let brickless add the header in front of your firmware"
        }
        SignError::PadWithoutSlotSize => "pass -S/--slot-size",
        SignError::Key(_) => "check the key file passed with -k",
        _ => "see `brickless image sign --help`",
    };
    miette!(help = help, "cannot sign {}: {e}", args.infile.display())
}

/// A firmware or image file as flat bytes and the address of its first byte (`None` for
/// BIN), with CLI diagnostics.
fn load_flat(path: &Path, fill: u8) -> Result<(Vec<u8>, Option<u32>)> {
    Ok(brickless_image::firmware::load_flat(path, fill).map_err(FileError)?)
}

fn sign(args: SignArgs) -> Result<()> {
    let opts = args.options()?;
    let key = match &args.key {
        Some(path) => {
            let loaded = load_key(path)?;
            let private = loaded.signing_key().cloned().ok_or_else(|| {
                miette!(
                    help = "signing needs the private key (from `brickless keygen`), not the public one",
                    "{} holds only a public key",
                    path.display()
                )
            })?;
            Some(private)
        }
        None => None,
    };
    // imgtool's HEX reader fills gaps with 0xff.
    let (payload, base_addr) = load_flat(&args.infile, 0xff)?;
    let with_header = payload.len() as u64
        + if opts.pad_header {
            opts.header_size as u64
        } else {
            0
        };
    if with_header > opts.slot_size as u64 {
        return Err(miette!(
            help = "check -S/--slot-size against your flash layout, or shrink the firmware",
            "{} does not fit the slot: {} bytes with header > slot size {} (0x{:x})",
            args.infile.display(),
            with_header,
            opts.slot_size,
            opts.slot_size
        ));
    }
    let signed = sign_image(&payload, key.as_ref(), &opts).map_err(|e| sign_error(e, &args))?;

    let output = match FileFormat::for_output(&args.outfile) {
        FileFormat::Hex => {
            // Like imgtool: a HEX input's address moves down by a header added in front of it.
            let input_addr = base_addr.map(|b| {
                if opts.pad_header && b != 0 {
                    b.wrapping_sub(opts.header_size)
                } else {
                    b
                }
            });
            let address = args.hex_addr.or(input_addr).ok_or_else(|| {
                miette!(
                    help = "pass -x/--hex-addr with the slot's flash address, e.g. -x 0x08020000",
                    "HEX output needs an address, and the input {} is a BIN without one",
                    args.infile.display()
                )
            })?;
            let segments = hex_segments(&signed, address, &opts).map_err(|e| miette!("{e}"))?;
            FirmwareImage::from_segments(segments, &args.outfile)
                .map_err(FileError)?
                .to_hex()
                .into_bytes()
        }
        _ => signed,
    };
    write_file_atomically(&args.outfile, &output)?;
    eprintln!(
        "signed {} -> {} (version {}, {} bytes)",
        args.infile.display(),
        args.outfile.display(),
        opts.version,
        output.len()
    );
    Ok(())
}
