//! `brickless image …`: sign, verify, inspect and merge MCUboot-format images.
//!
//! `sign` takes imgtool's flags, so `imgtool sign …` becomes `brickless image sign …` with
//! nothing else changed; the signing itself lives in `brickless-image`.
use std::path::{Path, PathBuf};

use brickless_image::inspect::{inspect, ImageInfo};
use brickless_image::sign::{
    parse_int, sign_image, PublicKeyFormat, SecurityCounter, SignError, SignOptions,
};
use brickless_image::tlv::kind;
use brickless_image::trailer::{boot_magic, TrailerOffsets};
use brickless_image::{verify_bytes, Dependency, ImageVersion, ImageView, PublicKey, TlvArea};
use clap::{Args, Subcommand, ValueEnum};
use miette::{miette, IntoDiagnostic, Result};
use serde_json::{json, Value};

use super::keys::load_key;
use crate::firmware_file::{
    load_file, write_file_atomically, FileError, FileFormat, FirmwareImage, Segment,
    DEFAULT_MAX_FLAT_SIZE,
};

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

pub fn run(cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Sign(args) => sign(args),
        ImageCommand::Verify(args) => verify(args),
        ImageCommand::Inspect(args) => inspect_cmd(args),
        ImageCommand::Merge(args) => merge(args),
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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyFormatArg {
    /// KEYHASH TLV: SHA-256 of the public key (imgtool's default).
    Hash,
    /// PUBKEY TLV: the whole public key.
    Full,
}

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
        let tag_of = |t: &str| {
            parse_int(t)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| {
                    miette!(
                        help = "custom TLV tags are 0xa0..=0xfffe, e.g. 0xa0",
                        "custom TLV tag {t:?} is not a 16-bit number"
                    )
                })
        };
        let mut out = Vec::new();
        for pair in self.custom_tlv.chunks_exact(2) {
            let tag = tag_of(&pair[0])?;
            let value = match pair[1].strip_prefix("0x") {
                Some(hex) => decode_hex(hex).ok_or_else(|| {
                    miette!(
                        help = "write an even number of hex digits after 0x, or a value without 0x for text",
                        "custom TLV 0x{tag:x}: {:?} is not hex bytes",
                        pair[1]
                    )
                })?,
                None => pair[1].as_bytes().to_vec(),
            };
            out.push((tag, value));
        }
        for pair in self.custom_tlv_file.chunks_exact(2) {
            let tag = tag_of(&pair[0])?;
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

/// Read a firmware or image file as flat bytes and the address of its first byte
/// (`None` for BIN). Gaps in HEX/ELF are filled with `fill`, as imgtool's HEX reader does.
fn load_flat(path: &Path, fill: u8) -> Result<(Vec<u8>, Option<u32>)> {
    let (format, image) = load_file(path, 0)?;
    let bytes = image
        .to_bin(fill, DEFAULT_MAX_FLAT_SIZE, path)
        .map_err(FileError)?;
    let base = match format {
        FileFormat::Bin => None,
        _ => image.start_address(),
    };
    Ok((bytes, base))
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
            hex_output(&signed, address, &opts, &args.outfile)?
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

/// The HEX layout imgtool writes: the image, and for a padded image only the trailer bytes
/// that differ from erased flash (magic, and image_ok when confirmed or tested), so
/// programming it never writes erased words (which would commit ECC on STM32H7/L4/U5).
fn hex_output(
    signed: &[u8],
    address: u32,
    opts: &SignOptions,
    outfile: &Path,
) -> Result<FirmwareImage> {
    let padded = opts.pad || opts.confirm || opts.test;
    if !padded {
        return Ok(FirmwareImage::from_bin(address, signed.to_vec(), outfile).map_err(FileError)?);
    }
    let image_len = ImageView::parse(signed).into_diagnostic()?.tlv_end as usize;
    let max_align = opts.effective_max_align();
    let offsets = TrailerOffsets::new(opts.slot_size, max_align)
        .ok_or_else(|| miette!("slot size {} is too small for a trailer", opts.slot_size))?;
    let piece = |start: u32, len: usize| -> Result<Segment> {
        let data = signed
            .get(start as usize..start as usize + len)
            .ok_or_else(|| miette!("signed image is shorter than its slot"))?
            .to_vec();
        Ok(Segment {
            address: address
                .checked_add(start)
                .ok_or_else(|| miette!("HEX address 0x{address:x} + slot runs past 4 GiB"))?,
            data,
        })
    };
    let mut segments = vec![piece(0, image_len)?];
    if (opts.confirm || opts.test) && !opts.overwrite_only {
        segments.push(piece(offsets.image_ok, max_align as usize)?);
    }
    segments.push(piece(offsets.magic, boot_magic(max_align).len())?);
    Ok(FirmwareImage::from_segments(segments, outfile).map_err(FileError)?)
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Trusted public or private key PEM; repeat for several. Without one only the hash is checked.
    #[arg(short = 'k', long = "key")]
    pub keys: Vec<PathBuf>,
    /// Value erased flash reads as (fills gaps in a HEX image).
    #[arg(short = 'R', long = "erased-val", default_value = "0xff", value_parser = erased_arg)]
    pub erased_val: u8,
    /// Image file: BIN or Intel HEX (.hex), padded to the slot or not.
    pub image: PathBuf,
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn verify(args: VerifyArgs) -> Result<()> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for path in &args.keys {
        keys.push(load_key(path)?.public_key());
    }
    let (bytes, _) = load_flat(&args.image, args.erased_val)?;
    let verified = verify_bytes(&bytes, &keys).map_err(|e| {
        use brickless_image::VerifyError as V;
        let help = match &e {
            V::UnknownKey | V::MissingSignature => {
                "pass the public key the image was signed with; `brickless image inspect` shows its key hash"
            }
            V::HashMismatch { .. } => {
                "the header, firmware or protected TLVs changed after signing: sign it again"
            }
            V::BadSignature => "the image was altered or its signature forged: do not install it",
            V::MissingKeyTlv => "the image is unsigned: sign it with `brickless image sign -k KEY`",
            V::Format(_) => "is this a signed image? `brickless image inspect` shows its structure",
            _ => "the image is damaged, was changed after signing, or was signed with another key",
        };
        miette!(help = help, "{} failed verification: {e}", args.image.display())
    })?;
    match verified.key_index.and_then(|i| args.keys.get(i)) {
        Some(key) => println!(
            "{}: OK, version {}, signed by {}, hash {}",
            args.image.display(),
            verified.version(),
            key.display(),
            hex_string(&verified.hash)
        ),
        None => println!(
            "{}: hash OK (no key given, signature not checked), version {}, hash {}",
            args.image.display(),
            verified.version(),
            hex_string(&verified.hash)
        ),
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print JSON: imgtool dumpinfo's fields (`header`, `tlv_area`, `trailer`) plus `brickless`.
    #[arg(long)]
    pub json: bool,
    /// Value erased flash reads as (fills HEX gaps and decodes trailer flags).
    #[arg(short = 'R', long = "erased-val", default_value = "0xff", value_parser = erased_arg)]
    pub erased_val: u8,
    /// Image file: BIN or Intel HEX (.hex).
    pub image: PathBuf,
}

fn tlv_area_json(area: Option<&TlvArea<'_>>) -> (Value, Vec<Value>) {
    let Some(area) = area else {
        return (json!({}), Vec::new());
    };
    let tlvs = area
        .iter()
        .filter_map(|t| t.ok())
        .map(|t| {
            json!({
                "type": t.kind,
                "type_name": kind::name(t.kind).unwrap_or("UNKNOWN"),
                "len": t.data.len(),
                "data": hex_string(t.data),
            })
        })
        .collect();
    (
        json!({"magic": area.magic, "tlv_tot": area.total_len()}),
        tlvs,
    )
}

/// The trailer fields as imgtool dumpinfo reads them: the last 16 bytes as magic, and the
/// flags only when the magic is valid.
fn trailer_json(bytes: &[u8], info: &ImageInfo) -> Value {
    if bytes.len() <= info.tlv_end as usize {
        return json!({});
    }
    let magic = &bytes[bytes.len().saturating_sub(16)..];
    let mut out = serde_json::Map::new();
    out.insert("magic".into(), json!(hex_string(magic)));
    let max_align = info.trailer.and_then(|t| t.max_align);
    let offsets = max_align.and_then(|a| TrailerOffsets::new(bytes.len() as u32, a));
    if let Some(off) = offsets {
        let byte = |o: u32| bytes.get(o as usize).copied();
        if let (Some(ok), Some(done), Some(info_byte)) =
            (byte(off.image_ok), byte(off.copy_done), byte(off.swap_info))
        {
            out.insert("image_ok".into(), json!(ok));
            out.insert("copy_done".into(), json!(done));
            out.insert("swap_info".into(), json!(info_byte));
        }
        if let Some(s) = bytes.get(off.swap_size as usize..off.swap_size as usize + 4) {
            out.insert(
                "swap_size".into(),
                json!(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
            );
        }
    }
    Value::Object(out)
}

fn inspect_json(path: &Path, bytes: &[u8], view: &ImageView<'_>, info: &ImageInfo) -> Value {
    let h = &info.header;
    let (prot_hdr, prot_tlvs) = tlv_area_json(view.protected.as_ref());
    let (hdr, tlvs) = tlv_area_json(Some(&view.unprotected));
    let key_hash = view
        .unprotected
        .find(kind::KEYHASH)
        .map(|t| hex_string(t.data));
    let trailer_state = info.trailer.map(|t| {
        json!({
            "max_align": t.max_align,
            "magic": format!("{:?}", t.state.magic).to_lowercase(),
            "image_ok": format!("{:?}", t.state.image_ok).to_lowercase(),
            "copy_done": format!("{:?}", t.state.copy_done).to_lowercase(),
            "swap_info": t.state.swap_info,
        })
    });
    json!({
        "filename": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "header": {
            "magic": h.magic,
            "load_addr": h.load_addr,
            "hdr_size": h.hdr_size,
            "protected_tlv_size": h.protect_tlv_size,
            "img_size": h.img_size,
            "flags": h.flags,
            "version": h.version.to_string(),
        },
        "tlv_area": {
            "tlv_hdr_prot": prot_hdr,
            "tlvs_prot": prot_tlvs,
            "tlv_hdr": hdr,
            "tlvs": tlvs,
        },
        "trailer": trailer_json(bytes, info),
        "brickless": {
            "file_size": info.total_len,
            "image_size": info.tlv_end,
            "computed_hash": hex_string(&info.computed_hash),
            "hash_matches": info.hash_matches,
            "key_hash": key_hash,
            "security_counter": info.security_counter,
            "trailer_state": trailer_state,
        },
    })
}

fn flag_names(flags: u32) -> String {
    use brickless_image::header::flags as f;
    let names = [
        (f::PIC, "PIC"),
        (f::ENCRYPTED_AES128, "ENCRYPTED_AES128"),
        (f::ENCRYPTED_AES256, "ENCRYPTED_AES256"),
        (f::NON_BOOTABLE, "NON_BOOTABLE"),
        (f::RAM_LOAD, "RAM_LOAD"),
        (f::ROM_FIXED, "ROM_FIXED"),
        (f::COMPRESSED_LZMA1, "COMPRESSED_LZMA1"),
        (f::COMPRESSED_LZMA2, "COMPRESSED_LZMA2"),
        (f::COMPRESSED_ARM_THUMB, "COMPRESSED_ARM_THUMB"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!(" ({})", set.join(" | "))
    }
}

fn print_human(path: &Path, doc: &Value, info: &ImageInfo) {
    let h = &info.header;
    println!("image {}", path.display());
    println!("  header");
    println!("    magic               0x{:08x}", h.magic);
    println!("    load_addr           0x{:x}", h.load_addr);
    println!("    hdr_size            0x{:x}", h.hdr_size);
    println!("    protected_tlv_size  0x{:x}", h.protect_tlv_size);
    println!(
        "    img_size            0x{:x} ({} bytes)",
        h.img_size, h.img_size
    );
    println!(
        "    flags               0x{:x}{}",
        h.flags,
        flag_names(h.flags)
    );
    println!("    version             {}", h.version);
    for (title, hdr_key, list_key) in [
        ("protected TLVs", "tlv_hdr_prot", "tlvs_prot"),
        ("TLVs", "tlv_hdr", "tlvs"),
    ] {
        let area = &doc["tlv_area"];
        let Some(magic) = area[hdr_key]["magic"].as_u64() else {
            println!("  {title}: none");
            continue;
        };
        println!(
            "  {title} (magic 0x{magic:04x}, area size 0x{:x})",
            area[hdr_key]["tlv_tot"].as_u64().unwrap_or(0)
        );
        for tlv in area[list_key].as_array().into_iter().flatten() {
            println!(
                "    {:<12} 0x{:02x} len 0x{:<3x} {}",
                tlv["type_name"].as_str().unwrap_or("?"),
                tlv["type"].as_u64().unwrap_or(0),
                tlv["len"].as_u64().unwrap_or(0),
                tlv["data"].as_str().unwrap_or("")
            );
        }
    }
    println!("  checks");
    println!(
        "    hash                {} ({})",
        hex_string(&info.computed_hash),
        if info.hash_matches {
            "matches the SHA256 TLV"
        } else {
            "DOES NOT match the SHA256 TLV"
        }
    );
    if let Some(k) = doc["brickless"]["key_hash"].as_str() {
        println!("    key hash            {k}");
    }
    if let Some(c) = info.security_counter {
        println!("    security counter    {c}");
    }
    println!(
        "    size                0x{:x} bytes of image in a 0x{:x}-byte file",
        info.tlv_end, info.total_len
    );
    let trailer = &doc["trailer"];
    match trailer["magic"].as_str() {
        None => println!("  trailer: none (image not padded to a slot)"),
        Some(magic) => {
            println!("  trailer");
            println!("    magic               {magic}");
            match info.trailer.filter(|t| t.max_align.is_some()) {
                None => println!("    (magic not recognised: other trailer fields not read)"),
                Some(t) => {
                    println!("    max_align           {}", t.max_align.unwrap_or(8));
                    println!("    image_ok            {:?}", t.state.image_ok);
                    println!("    copy_done           {:?}", t.state.copy_done);
                    match t.state.swap_info {
                        Some(v) => println!("    swap_info           0x{v:02x}"),
                        None => println!("    swap_info           unset"),
                    }
                    if let Some(s) = trailer["swap_size"].as_u64() {
                        println!("    swap_size           0x{s:x}");
                    }
                }
            }
        }
    }
}

fn inspect_cmd(args: InspectArgs) -> Result<()> {
    let (bytes, _) = load_flat(&args.image, args.erased_val)?;
    let not_image = |e: &dyn std::fmt::Display| {
        miette!(
            help = "is this a signed image? `brickless image sign` makes one from a plain firmware",
            "{} is not an MCUboot image: {e}",
            args.image.display()
        )
    };
    let view = ImageView::parse(&bytes).map_err(|e| not_image(&e))?;
    let info = inspect(&bytes, args.erased_val).map_err(|e| not_image(&e))?;
    let doc = inspect_json(&args.image, &bytes, &view, &info);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc).into_diagnostic()?);
    } else {
        print_human(&args.image, &doc, &info);
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  brickless image merge bootloader.elf --at 0x08020000=app.signed.bin -o factory.hex -o factory.bin"
)]
pub struct MergeArgs {
    /// HEX or ELF files placed at their own addresses (e.g. the bootloader).
    pub inputs: Vec<PathBuf>,
    /// Place a BIN at an address: `--at 0x08020000=app.signed.bin`. Repeat for more.
    #[arg(long = "at", value_name = "ADDRESS=FILE")]
    pub at: Vec<String>,
    /// Output file: Intel HEX if it ends in .hex, BIN otherwise. Repeat for both.
    #[arg(short = 'o', long = "output", required = true)]
    pub outputs: Vec<PathBuf>,
    /// Byte for gaps in a BIN output (0xff = erased flash on most STM32).
    #[arg(long, default_value = "0xff", value_parser = erased_or_any)]
    pub fill: u8,
}

fn erased_or_any(s: &str) -> std::result::Result<u8, String> {
    parse_int(s)
        .and_then(|v| u8::try_from(v).ok())
        .ok_or_else(|| format!("'{s}' is not a byte value (0..=0xff)"))
}

fn merge(args: MergeArgs) -> Result<()> {
    let mut parts: Vec<(PathBuf, FirmwareImage)> = Vec::new();
    for path in &args.inputs {
        let (format, image) = load_file(path, 0)?;
        if format == FileFormat::Bin {
            return Err(miette!(
                help = format!(
                    "place it with --at ADDRESS=FILE, e.g. --at 0x08000000={}",
                    path.display()
                ),
                "{} is a BIN and carries no address",
                path.display()
            ));
        }
        parts.push((path.clone(), image));
    }
    for spec in &args.at {
        let (addr, file) = spec.split_once('=').ok_or_else(|| {
            miette!(
                help = "write it as ADDRESS=FILE, e.g. --at 0x08020000=app.signed.bin",
                "--at {spec:?} has no '='"
            )
        })?;
        let address = parse_int(addr).ok_or_else(|| {
            miette!(
                help = "write the address in hex, e.g. 0x08020000",
                "--at {spec:?}: {addr:?} is not an address"
            )
        })?;
        let path = PathBuf::from(file);
        let (format, image) = load_file(&path, address)?;
        if format != FileFormat::Bin {
            return Err(miette!(
                help = "HEX and ELF files already hold their addresses: pass them without --at",
                "--at {spec:?}: {} is {:?}, not a BIN",
                path.display(),
                format
            ));
        }
        parts.push((path, image));
    }
    if parts.is_empty() {
        return Err(miette!(
            help =
                "e.g. brickless image merge boot.hex --at 0x08020000=app.signed.bin -o factory.hex",
            "nothing to merge"
        ));
    }
    for (i, (a_path, a)) in parts.iter().enumerate() {
        for (b_path, b) in &parts[i + 1..] {
            if let Some(range) = a.find_overlap(b) {
                return Err(miette!(
                    help = "check the slot addresses: each input must have its own flash range",
                    "{} and {} overlap at {range}",
                    a_path.display(),
                    b_path.display()
                ));
            }
        }
    }
    let segments = parts
        .iter()
        .flat_map(|(_, img)| img.segments().iter().cloned())
        .collect();
    let first = &parts[0].0;
    let merged = FirmwareImage::from_segments(segments, first).map_err(FileError)?;
    // Build every output before writing any, so a failure leaves no file behind.
    let mut outputs = Vec::new();
    for path in &args.outputs {
        let bytes = match FileFormat::for_output(path) {
            FileFormat::Hex => merged.to_hex().into_bytes(),
            _ => merged
                .to_bin(args.fill, DEFAULT_MAX_FLAT_SIZE, path)
                .map_err(FileError)?,
        };
        outputs.push((path, bytes));
    }
    for (path, bytes) in outputs {
        write_file_atomically(path, &bytes)?;
        eprintln!(
            "wrote {} (0x{:08x}..0x{:08x})",
            path.display(),
            merged.start_address().unwrap_or(0),
            merged.end_address().unwrap_or(0)
        );
    }
    Ok(())
}
