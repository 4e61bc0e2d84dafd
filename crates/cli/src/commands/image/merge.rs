//! `brickless image merge`: a bootloader and signed images into one factory HEX or BIN.
use std::path::PathBuf;

use brickless_image::sign::parse_int;
use clap::Args;
use miette::{miette, Result};

use crate::firmware_file::{
    load_file, write_file_atomically, FileError, FileFormat, FirmwareImage, DEFAULT_MAX_FLAT_SIZE,
};

/// Arguments of `brickless image merge`.
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

pub(super) fn merge(args: MergeArgs) -> Result<()> {
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
