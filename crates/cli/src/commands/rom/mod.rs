//! `brickless rom …`: program an STM32 through its ROM bootloader.
//!
//! Argument parsing and printing only: opening a transport is `brickless_rom::open`, the
//! erase/write/verify loop is `brickless_rom::program`, firmware files are
//! `brickless_image::firmware`.
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

mod error;
mod ops;
mod write;

pub use error::RomError;
pub use ops::connect;

/// The `brickless rom` subcommands.
#[derive(Subcommand, Debug)]
pub enum RomCommand {
    /// Connect and show the device: product ID, bootloader version, commands, flash size,
    /// unique ID, protection.
    Info(InfoArgs),
    /// Read memory to a file (.hex: Intel HEX; anything else: raw binary).
    Read(ReadArgs),
    /// Erase what a firmware file needs, write it and read it back to verify.
    ///
    /// With several boards (repeated --port/--tcp, or --targets FILE) they are programmed
    /// at once: one progress line each, then a table (or --json) of what each did. A board
    /// that fails does not stop the others; the exit status is the number that failed.
    #[command(after_help = "Examples:
  brickless rom write --port /dev/ttyUSB0 firmware.elf
  brickless rom write --port /dev/ttyUSB0 --port /dev/ttyUSB1 --port /dev/ttyUSB2 module.hex
  brickless rom write --targets line-3.txt --json module.bin   (lines: serial:/dev/ttyUSB0@115200, tcp:10.0.0.7:4000)")]
    Write(WriteArgs),
    /// Compare memory with a firmware file.
    Verify(VerifyArgs),
    /// Erase pages/sectors, a bank, or the whole flash.
    Erase(EraseArgs),
    /// Start the application (or code in RAM) at an address.
    Go(GoArgs),
    /// Turn on write protection of sectors, or read-out protection.
    Protect(ProtectArgs),
    /// Remove write protection, or read-out protection (this mass-erases the flash).
    Unprotect(UnprotectArgs),
    /// List the product IDs the device table knows.
    Devices(DevicesArgs),
}

/// How to reach the bootloader: one of --port, --tcp, --i2c, --dfu (`rom write` takes
/// several --port/--tcp, or --targets, and programs them at once).
#[derive(Args, Debug, Clone)]
#[command(group(
    clap::ArgGroup::new("link")
        .required(true)
        .multiple(true)
        .args(["port", "tcp", "i2c", "dfu", "targets"])
))]
pub struct Transport {
    /// Serial port of a USB-UART wired to the STM32's bootloader USART (e.g. /dev/ttyUSB0).
    /// `rom write` takes it repeated, to program several boards at once.
    #[arg(long, value_name = "PATH")]
    pub port: Vec<PathBuf>,

    /// Baud rate (the bootloader detects it from the 0x7F sync byte; 115200 is the tested
    /// maximum on most parts).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,

    /// Line parity: even is what the bootloader uses; `none` for a pty or an adapter that
    /// cannot do parity (the virtual device accepts both).
    #[arg(long, value_enum, default_value_t = Parity::Even)]
    pub parity: Parity,

    /// A raw TCP byte stream instead of a serial port (the virtual device's --tcp, ser2net).
    /// `rom write` takes it repeated.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Vec<String>,

    /// A file listing the boards for `rom write` to program at once, one per line:
    /// `serial:PATH[@BAUD]` or `tcp:HOST:PORT` (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,

    /// Linux I2C bus wired to the part's bootloader I2C pins (AN4221 protocol), e.g.
    /// /dev/i2c-1. Needs the i2c-dev module (`modprobe i2c-dev`), read/write access to the
    /// node (the `i2c` group), SCL/SDA on the I2C peripheral AN2606 names for the part, with
    /// pull-ups, and BOOT0 high at reset. The adapter must do plain I2C (not SMBus-only).
    #[arg(long, value_name = "/dev/i2c-N", conflicts_with_all = ["port", "tcp", "dfu", "targets"])]
    pub i2c: Option<PathBuf>,

    /// 7-bit I2C address of the bootloader (AN2606 gives it per part). Default: try the
    /// addresses of the parts in the device table (`brickless rom devices`).
    #[arg(long, value_name = "0xNN", value_parser = parse_i2c_address, requires = "i2c")]
    pub addr: Option<u8>,

    /// USB DFU (DfuSe) bootloader with this VID:PID, in hex (default 0483:df11, ST's ROM).
    /// Needs BOOT0 high at reset with the part's USB port cabled to this machine, and access to
    /// the USB device (a udev rule granting it to your user, or root). With a positional file,
    /// put the file before --dfu or write `--dfu=VID:PID`.
    #[arg(
        long,
        value_name = "VID:PID",
        num_args = 0..=1,
        default_missing_value = "0483:df11",
        conflicts_with_all = ["port", "tcp", "targets"]
    )]
    pub dfu: Option<String>,

    /// Modem-line sequence that puts the board in its bootloader before connecting, as
    /// stm32flash's -i: comma-separated steps `rts`, `-rts`, `dtr`, `-dtr` (a leading `-`
    /// drives the line low), 100 ms apart; e.g. `-rts,dtr,-dtr` with RTS on BOOT0 and DTR on
    /// NRST.
    #[arg(long, value_name = "SEQ")]
    pub entry: Option<String>,

    /// Modem-line sequence run after the command (e.g. `rts,dtr,-dtr` to reset into the app).
    #[arg(long, value_name = "SEQ")]
    pub exit: Option<String>,

    /// Send each command's frames back to back (one round trip instead of three). Faster over
    /// USB-UART latency; the strict exchange is used again after any failure.
    #[arg(long)]
    pub pipeline: bool,

    /// The bootloader was synced by an earlier run: skip the 0x7F byte.
    #[arg(long)]
    pub no_sync: bool,

    /// Milliseconds to wait for each answer (erase and write times are added per operation).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub timeout_ms: u32,

    /// Attempts after a failed read, erase or refused write.
    #[arg(long, default_value_t = 2)]
    pub retries: u8,
}

/// Serial line parity: `Even` (8E1, as the ROM bootloader expects) or `None` (8N1, for ptys
/// and adapters without parity).
// Variant doc comments would become clap's per-value help and change `--help`.
#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Parity {
    Even,
    None,
}

/// Arguments of `brickless rom info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `brickless rom read`.
#[derive(Args, Debug)]
pub struct ReadArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// First address (default: start of flash).
    #[arg(long, value_parser = parse_u32)]
    pub address: Option<u32>,
    /// Bytes to read (default: the whole flash as the flash-size register reports it).
    #[arg(long, value_parser = parse_u32)]
    pub length: Option<u32>,
    /// Output file: `.hex` writes Intel HEX, anything else raw binary.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// What `brickless rom write` erases first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum EraseMode {
    /// Erase only the pages/sectors the file touches.
    Auto,
    /// Mass-erase first (page by page on parts without mass erase).
    Mass,
    /// Do not erase (the flash must already be erased; with --no-verify, the write units the
    /// image leaves at the erased value, which are not programmed, are read to check it).
    None,
}

/// Arguments of `brickless rom write`.
#[derive(Args, Debug)]
pub struct WriteArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// Firmware: ELF, Intel HEX, DfuSe `.dfu` or raw binary.
    pub file: PathBuf,
    /// Load address of a raw binary (default: start of flash).
    #[arg(long, value_parser = parse_u32)]
    pub address: Option<u32>,
    /// What to erase before writing.
    #[arg(long, value_enum, default_value_t = EraseMode::Auto)]
    pub erase: EraseMode,
    /// Skip the read-back verify (not recommended).
    #[arg(long)]
    pub no_verify: bool,
    /// Start the firmware afterwards (Go to the start of the image).
    #[arg(long)]
    pub go: bool,
    /// Print the result as JSON (one entry per board).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `brickless rom verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// Firmware: ELF, Intel HEX, DfuSe `.dfu` or raw binary.
    pub file: PathBuf,
    /// Load address of a raw binary (default: start of flash).
    #[arg(long, value_parser = parse_u32)]
    pub address: Option<u32>,
}

/// Arguments of `brickless rom erase`.
#[derive(Args, Debug)]
pub struct EraseArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// Page/sector numbers as the bootloader counts them (global across banks): `0-3,8`.
    #[arg(long, conflicts_with_all = ["bank", "mass", "range"])]
    pub pages: Option<String>,
    /// Erase one bank (1 or 2).
    #[arg(long, conflicts_with_all = ["mass", "range"])]
    pub bank: Option<u8>,
    /// Erase the whole flash.
    #[arg(long, conflicts_with = "range")]
    pub mass: bool,
    /// Erase the pages covering ADDR:LEN (e.g. 0x08020000:0x40000).
    #[arg(long, value_name = "ADDR:LEN")]
    pub range: Option<String>,
}

/// Arguments of `brickless rom go`.
#[derive(Args, Debug)]
pub struct GoArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// Vector table address (default: start of flash).
    #[arg(long, value_parser = parse_u32)]
    pub address: Option<u32>,
}

/// Which protection `protect` / `unprotect` change.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protection {
    /// Write protection of flash sectors (option bytes WRP).
    Write,
    /// Read-out protection (RDP level 1).
    Readout,
}

/// Arguments of `brickless rom protect`.
#[derive(Args, Debug)]
pub struct ProtectArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// Which protection to turn on.
    #[arg(value_enum)]
    pub kind: Protection,
    /// Sectors to write-protect (with `write`): `0-3,8`.
    #[arg(long)]
    pub sectors: Option<String>,
}

/// Arguments of `brickless rom unprotect`.
#[derive(Args, Debug)]
pub struct UnprotectArgs {
    /// How to reach the bootloader.
    #[command(flatten)]
    pub transport: Transport,
    /// Which protection to remove (`readout` mass-erases the flash).
    #[arg(value_enum)]
    pub kind: Protection,
}

/// Arguments of `brickless rom devices`.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_i2c_address(s: &str) -> Result<u8, String> {
    let v = parse_u32(s)?;
    u8::try_from(v)
        .ok()
        .filter(|a| (0x03..=0x77).contains(a))
        .ok_or_else(|| format!("`{s}` is not a 7-bit I2C address (0x03..=0x77)"))
}

pub(crate) fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim().replace('_', "");
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("`{s}` is not a number (decimal or 0x-hex)"))
}

/// `0-3,8` → [0,1,2,3,8].
pub(crate) fn parse_list(s: &str) -> Result<Vec<u16>, RomError> {
    let bad = || RomError::Usage(format!("`{s}` is not a page list like `0-3,8`"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Runs one `brickless rom` subcommand.
pub fn run(cmd: RomCommand) -> miette::Result<()> {
    match cmd {
        RomCommand::Write(a) => write::write_command(a),
        cmd => Ok(run_inner(cmd)?),
    }
}

fn run_inner(cmd: RomCommand) -> Result<(), RomError> {
    match cmd {
        RomCommand::Info(a) => ops::info(a),
        RomCommand::Read(a) => ops::read(a),
        RomCommand::Write(a) => write::write(a),
        RomCommand::Verify(a) => write::verify(a),
        RomCommand::Erase(a) => ops::erase(a),
        RomCommand::Go(a) => ops::go(a),
        RomCommand::Protect(a) => ops::protect(a),
        RomCommand::Unprotect(a) => ops::unprotect(a),
        RomCommand::Devices(a) => {
            ops::devices(a.json);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_parse() {
        assert_eq!(parse_list("0-3,8").unwrap(), vec![0, 1, 2, 3, 8]);
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("x").is_err());
        assert!(parse_list("").is_err());
    }
}
