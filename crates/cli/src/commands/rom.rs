//! `brickless rom …`: program an STM32 through its ROM bootloader.
//!
//! Every subcommand works over any [`RomTarget`] (AN3155 over a serial port or TCP, AN4221
//! over Linux I2C, DfuSe over USB);
//! the erase/write/verify logic is `brickless_rom::program`, shared with MCU-side hosts.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brickless_rom::an3155::{self, Config, Step, Usart};
use brickless_rom::device::RomDevice;
use brickless_rom::link::{SerialPortLink, TcpLink};
use brickless_rom::program::{self, Phase, ProgramError};
use brickless_rom::target::{Erase, ReadProtection, RomTarget, TargetInfo};
use brickless_rom::{an4221, dfuse};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use miette::Diagnostic;
use thiserror::Error;

use crate::firmware_file::{self, FirmwareImage, Segment};

#[derive(Subcommand, Debug)]
pub enum RomCommand {
    /// Connect and show the device: product ID, bootloader version, commands, flash size,
    /// unique ID, protection.
    Info(InfoArgs),
    /// Read memory to a file (.hex: Intel HEX; anything else: raw binary).
    Read(ReadArgs),
    /// Erase what a firmware file needs, write it and read it back to verify.
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

/// How to reach the bootloader: exactly one of --port, --tcp, --i2c, --dfu.
#[derive(Args, Debug, Clone)]
#[command(group(
    clap::ArgGroup::new("link")
        .required(true)
        .multiple(false)
        .args(["port", "tcp", "i2c", "dfu"])
))]
pub struct Transport {
    /// Serial port of a USB-UART wired to the STM32's bootloader USART (e.g. /dev/ttyUSB0).
    #[arg(long, value_name = "PATH")]
    pub port: Option<PathBuf>,

    /// Baud rate (the bootloader detects it from the 0x7F sync byte; 115200 is the tested
    /// maximum on most parts).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,

    /// Line parity: even is what the bootloader uses; `none` for a pty or an adapter that
    /// cannot do parity (the virtual device accepts both).
    #[arg(long, value_enum, default_value_t = Parity::Even)]
    pub parity: Parity,

    /// A raw TCP byte stream instead of a serial port (the virtual device's --tcp, ser2net).
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,

    /// Linux I2C bus wired to the part's bootloader I2C pins (AN4221 protocol), e.g.
    /// /dev/i2c-1. Needs the i2c-dev module (`modprobe i2c-dev`), read/write access to the
    /// node (the `i2c` group), SCL/SDA on the I2C peripheral AN2606 names for the part, with
    /// pull-ups, and BOOT0 high at reset. The adapter must do plain I2C (not SMBus-only).
    #[arg(long, value_name = "/dev/i2c-N")]
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
        default_missing_value = "0483:df11"
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

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Parity {
    Even,
    None,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub transport: Transport,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
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

#[derive(Args, Debug)]
pub struct WriteArgs {
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
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub transport: Transport,
    /// Firmware: ELF, Intel HEX, DfuSe `.dfu` or raw binary.
    pub file: PathBuf,
    /// Load address of a raw binary (default: start of flash).
    #[arg(long, value_parser = parse_u32)]
    pub address: Option<u32>,
}

#[derive(Args, Debug)]
pub struct EraseArgs {
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

#[derive(Args, Debug)]
pub struct GoArgs {
    #[command(flatten)]
    pub transport: Transport,
    /// Vector table address (default: start of flash).
    #[arg(long, value_parser = parse_u32)]
    pub address: Option<u32>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protection {
    /// Write protection of flash sectors (option bytes WRP).
    Write,
    /// Read-out protection (RDP level 1).
    Readout,
}

#[derive(Args, Debug)]
pub struct ProtectArgs {
    #[command(flatten)]
    pub transport: Transport,
    /// Which protection to turn on.
    #[arg(value_enum)]
    pub kind: Protection,
    /// Sectors to write-protect (with `write`): `0-3,8`.
    #[arg(long)]
    pub sectors: Option<String>,
}

#[derive(Args, Debug)]
pub struct UnprotectArgs {
    #[command(flatten)]
    pub transport: Transport,
    /// Which protection to remove (`readout` mass-erases the flash).
    #[arg(value_enum)]
    pub kind: Protection,
}

#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What can go wrong in `brickless rom`, with what to do about it.
#[derive(Debug, Error, Diagnostic)]
pub enum RomError {
    #[error("cannot open {what}: {source}")]
    #[diagnostic(
        code(brickless::rom::open),
        help("check the port name/address and that no other program holds it")
    )]
    Open {
        what: String,
        source: std::io::Error,
    },
    #[error("no answer from the bootloader to the 0x7F sync byte")]
    #[diagnostic(
        code(brickless::rom::no_sync),
        help("is BOOT0 high and was the chip reset since (--entry can do it)? Right port, TX/RX crossed, baud ≤ 115200? Use --parity none on a pty")
    )]
    NoSync,
    #[error("the device did not answer in time ({0})")]
    #[diagnostic(
        code(brickless::rom::timeout),
        help("the device stopped answering: check power and wiring; a long erase may need --timeout-ms")
    )]
    Timeout(String),
    #[error("the bootloader refused the request (NACK at {0})")]
    #[diagnostic(
        code(brickless::rom::nack),
        help("the address may be outside the device's memory, or the sector write-protected (brickless rom unprotect write)")
    )]
    Nack(String),
    #[error("read-out protection is active: the bootloader refuses to read or write memory")]
    #[diagnostic(
        code(brickless::rom::read_protected),
        help("`brickless rom unprotect readout` removes it and mass-erases the flash")
    )]
    ReadProtected,
    #[error("unexpected byte {byte:#04x} from the device ({step})")]
    #[diagnostic(
        code(brickless::rom::noise),
        help("line noise or a wrong baud/parity; lower --baud or check grounding")
    )]
    Noise { step: String, byte: u8 },
    #[error("{0}")]
    #[diagnostic(code(brickless::rom::protocol))]
    Protocol(String),
    #[error("verify failed at {addr:#010x}: expected {expected:#04x}, device has {found:#04x}")]
    #[diagnostic(
        code(brickless::rom::verify),
        help("the flash was not erased, or a write was lost; erase and write again")
    )]
    Mismatch { addr: u32, expected: u8, found: u8 },
    #[error("{addr:#010x}..{end:#010x} is not in the flash of {device}", end = u64::from(*addr) + u64::from(*len))]
    #[diagnostic(
        code(brickless::rom::range),
        help("check the file's addresses or --address against the part's flash")
    )]
    OutsideFlash { addr: u32, len: u32, device: String },
    #[error("unknown product ID {0:#05x}: no flash layout for it")]
    #[diagnostic(
        code(brickless::rom::unknown_device),
        help("`brickless rom devices` lists the known parts")
    )]
    UnknownDevice(u16),
    #[error("{0}")]
    #[diagnostic(code(brickless::rom::usage))]
    Usage(String),
    #[error("{path}: not a usable .dfu file: {reason}")]
    #[diagnostic(
        code(brickless::rom::dfu_file),
        help("regenerate it (dfuse-pack, STM32CubeProgrammer) or pass the ELF/HEX/BIN")
    )]
    BadDfu { path: PathBuf, reason: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    File(#[from] firmware_file::FileError),
    #[error("cannot open the I2C bus {path}: {reason}")]
    #[diagnostic(
        code(brickless::rom::i2c_open),
        help("is the i2c-dev module loaded (`modprobe i2c-dev`), does {path} exist (`ls /dev/i2c-*`) and may you open it (the `i2c` group)?")
    )]
    I2cOpen { path: String, reason: String },
    #[error("no bootloader answered on {path} at {tried}")]
    #[diagnostic(
        code(brickless::rom::i2c_no_answer),
        help("give the part's bootloader address with --addr (AN2606); check BOOT0 high at reset, SCL/SDA on the bootloader's I2C pins and pull-ups")
    )]
    I2cNoAnswer { path: String, tried: String },
    #[error("I2C bootloader: {0}")]
    #[diagnostic(
        code(brickless::rom::i2c),
        help("check wiring and pull-ups; a long erase may need a power-cycle and a retry")
    )]
    I2c(String),
    #[error("`{0}` is not a USB VID:PID like 0483:df11")]
    #[diagnostic(
        code(brickless::rom::bad_vid_pid),
        help("give two hex numbers separated by ':' (e.g. --dfu 0483:df11); if it was the firmware file, put the file before --dfu or write --dfu=VID:PID")
    )]
    BadVidPid(String),
    #[error("no DFU device {vid:04x}:{pid:04x} was found")]
    #[diagnostic(
        code(brickless::rom::dfu_not_found),
        help("hold BOOT0 high, reset the part and cable its USB port; `lsusb` should list it. Check --dfu VID:PID")
    )]
    DfuNotFound { vid: u16, pid: u16 },
    #[error("cannot use the DFU device: {0}")]
    #[diagnostic(
        code(brickless::rom::dfu_open),
        help("permission denied usually means a missing udev rule for the device (or run as root); another program may hold it")
    )]
    DfuOpen(String),
    #[error("DfuSe: {0}")]
    #[diagnostic(
        code(brickless::rom::dfuse),
        help("the address may be outside the device's memory layout or the device left DFU mode; reset into the bootloader and retry")
    )]
    Dfuse(String),
    #[error(
        "{path} is made for USB device {file_vid:04x}:{file_pid:04x}, not {vid:04x}:{pid:04x}"
    )]
    #[diagnostic(
        code(brickless::rom::dfu_mismatch),
        help("use the .dfu file built for this device, or the ELF/HEX/BIN")
    )]
    DfuFileForOtherDevice {
        path: PathBuf,
        file_vid: u16,
        file_pid: u16,
        vid: u16,
        pid: u16,
    },
}

impl<E: std::fmt::Debug> From<an4221::I2cError<E>> for RomError {
    fn from(e: an4221::I2cError<E>) -> Self {
        use an4221::I2cError as E;
        match e {
            E::Nack { cmd, phase } => RomError::Nack(format!("I2C command {cmd:#04x} {phase:?}")),
            E::NoAnswer { .. } | E::BusyTimeout { .. } => RomError::Timeout(e.to_string()),
            E::UnexpectedByte { cmd, phase, byte } => RomError::Noise {
                step: format!("I2C command {cmd:#04x} {phase:?}"),
                byte,
            },
            other => RomError::I2c(other.to_string()),
        }
    }
}

impl From<dfuse::DfuseError> for RomError {
    fn from(e: dfuse::DfuseError) -> Self {
        match e {
            dfuse::DfuseError::VerifyMismatch {
                address,
                expected,
                found,
            } => RomError::Mismatch {
                addr: address,
                expected,
                found,
            },
            other => RomError::Dfuse(other.to_string()),
        }
    }
}

impl From<dfuse::usb::OpenError> for RomError {
    fn from(e: dfuse::usb::OpenError) -> Self {
        match e {
            dfuse::usb::OpenError::NotFound { vid, pid } => RomError::DfuNotFound { vid, pid },
            other => RomError::DfuOpen(other.to_string()),
        }
    }
}

impl From<an3155::Error<std::io::Error>> for RomError {
    fn from(e: an3155::Error<std::io::Error>) -> Self {
        use an3155::Error as E;
        let step = |s: Step| format!("{s:?}");
        match e {
            E::Link(io) => RomError::Open {
                what: "the link".into(),
                source: io,
            },
            E::Timeout(s) => RomError::Timeout(step(s)),
            E::Nack(s) => RomError::Nack(step(s)),
            E::UnexpectedByte(s, byte) => RomError::Noise {
                step: step(s),
                byte,
            },
            E::NoSync => RomError::NoSync,
            E::ReadProtected => RomError::ReadProtected,
            other => RomError::Protocol(other.to_string()),
        }
    }
}

impl From<ProgramError<RomError>> for RomError {
    fn from(e: ProgramError<RomError>) -> Self {
        match e {
            ProgramError::Target(e) => e,
            ProgramError::OutsideFlash { addr, len } => RomError::OutsideFlash {
                addr,
                len,
                device: "the device".into(),
            },
            ProgramError::Mismatch {
                addr,
                expected,
                found,
            } => RomError::Mismatch {
                addr,
                expected,
                found,
            },
            other => RomError::Protocol(other.to_string()),
        }
    }
}

/// Any host, with errors mapped to [`RomError`] so commands are written once.
pub type DynTarget = Box<dyn RomTarget<Error = RomError>>;

struct Mapped<T>(T);

impl<T: RomTarget> RomTarget for Mapped<T>
where
    RomError: From<T::Error>,
{
    type Error = RomError;
    fn info(&self) -> TargetInfo {
        self.0.info()
    }
    fn max_transfer(&self) -> usize {
        self.0.max_transfer()
    }
    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), RomError> {
        Ok(self.0.read_memory(addr, buf)?)
    }
    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), RomError> {
        Ok(self.0.write_memory(addr, data)?)
    }
    fn erase(&mut self, what: Erase<'_>) -> Result<(), RomError> {
        Ok(self.0.erase(what)?)
    }
    fn go(&mut self, addr: u32) -> Result<(), RomError> {
        Ok(self.0.go(addr)?)
    }
    fn write_protect(&mut self, sectors: &[u16]) -> Result<(), RomError> {
        Ok(self.0.write_protect(sectors)?)
    }
    fn write_unprotect(&mut self) -> Result<(), RomError> {
        Ok(self.0.write_unprotect()?)
    }
    fn readout_protect(&mut self) -> Result<(), RomError> {
        Ok(self.0.readout_protect()?)
    }
    fn readout_unprotect(&mut self) -> Result<(), RomError> {
        Ok(self.0.readout_unprotect()?)
    }
    fn checksum(&mut self, addr: u32, len: u32) -> Result<Option<u32>, RomError> {
        Ok(self.0.checksum(addr, len)?)
    }
}

fn parse_i2c_address(s: &str) -> Result<u8, String> {
    let v = parse_u32(s)?;
    u8::try_from(v)
        .ok()
        .filter(|a| (0x03..=0x77).contains(a))
        .ok_or_else(|| format!("`{s}` is not a 7-bit I2C address (0x03..=0x77)"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim().replace('_', "");
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("`{s}` is not a number (decimal or 0x-hex)"))
}

/// `0-3,8` → [0,1,2,3,8].
fn parse_list(s: &str) -> Result<Vec<u16>, RomError> {
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

fn run_line_sequence(link: &mut SerialPortLink, seq: &str) -> Result<(), RomError> {
    let (mut dtr, mut rts) = (false, false);
    for step in seq.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match step {
            "dtr" => dtr = true,
            "-dtr" => dtr = false,
            "rts" => rts = true,
            "-rts" => rts = false,
            other => {
                return Err(RomError::Usage(format!(
                    "unknown line step `{other}` (use rts, -rts, dtr, -dtr)"
                )))
            }
        }
        // serialport asserts a line with `true`; "high" in stm32flash's sense is asserted.
        link.set_lines(dtr, rts).map_err(|e| RomError::Open {
            what: "modem lines".into(),
            source: e.into(),
        })?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Connects over the chosen transport.
pub fn connect(t: &Transport) -> Result<DynTarget, RomError> {
    let config = Config {
        baud: t.baud,
        bits_per_byte: if t.parity == Parity::Even { 11 } else { 10 },
        ack_timeout_ms: t.timeout_ms,
        retries: t.retries,
        pipeline: t.pipeline,
        no_sync: t.no_sync,
    };
    if t.addr.is_some() && t.i2c.is_none() {
        return Err(RomError::Usage(
            "--addr is the I2C address: use it with --i2c".into(),
        ));
    }
    if let Some(path) = &t.i2c {
        return connect_i2c(path, t.addr);
    }
    if let Some(arg) = &t.dfu {
        let (vid, pid) = dfu_vid_pid(arg)?;
        return Ok(Box::new(Mapped(open_dfu(vid, pid)?)));
    }
    if let Some(addr) = &t.tcp {
        let link = TcpLink::connect(addr).map_err(|source| RomError::Open {
            what: format!("tcp {addr}"),
            source,
        })?;
        let host = Usart::connect(link, config)?;
        return Ok(Box::new(Mapped(host)));
    }
    let path = t.port.as_ref().ok_or_else(|| {
        RomError::Usage(
            "give one of --port PATH, --tcp HOST:PORT, --i2c /dev/i2c-N, --dfu [VID:PID]".into(),
        )
    })?;
    let shown = path.display().to_string();
    let mut link = SerialPortLink::open(&shown, t.baud, t.parity == Parity::None).map_err(|e| {
        RomError::Open {
            what: shown.clone(),
            source: e.into(),
        }
    })?;
    if let Some(seq) = &t.entry {
        run_line_sequence(&mut link, seq)?;
    }
    let host = Usart::connect(link, config)?;
    Ok(Box::new(Mapped(host)))
}

type UsbDfuTarget = dfuse::DfuseTarget<dfuse::usb::NusbTransport, dfuse::usb::StdDelay>;

/// The ROM's internal-flash alternate setting of DFU device `vid:pid`.
fn open_dfu(vid: u16, pid: u16) -> Result<UsbDfuTarget, RomError> {
    match dfuse::usb::open_target(vid, pid, "Internal Flash", None) {
        Ok(t) => Ok(t),
        // ENOENT while listing or opening: no USB bus here, or the device went away.
        Err(dfuse::usb::OpenError::Usb(e)) if e.os_error() == Some(2) => {
            Err(RomError::DfuNotFound { vid, pid })
        }
        Err(e) => Err(e.into()),
    }
}

fn dfu_vid_pid(arg: &str) -> Result<(u16, u16), RomError> {
    dfuse::parse_vid_pid(Some(arg)).ok_or_else(|| RomError::BadVidPid(arg.into()))
}

#[cfg(target_os = "linux")]
fn connect_i2c(path: &Path, addr: Option<u8>) -> Result<DynTarget, RomError> {
    use an4221::linux::LinuxOpenError;
    let shown = path.display().to_string();
    // Without --addr, try the addresses AN2606 gives for the known parts, in table order.
    let candidates: Vec<u8> = match addr {
        Some(a) => vec![a],
        None => {
            let mut all = Vec::new();
            for a in brickless_rom::DEVICES.iter().filter_map(|d| d.i2c_address) {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
            all
        }
    };
    for &a in &candidates {
        match an4221::linux::open(&shown, a) {
            Ok((host, _info)) => return Ok(Box::new(Mapped(host))),
            Err(LinuxOpenError::Open { source, .. }) => {
                return Err(RomError::I2cOpen {
                    path: shown,
                    reason: source.to_string(),
                })
            }
            Err(LinuxOpenError::Protocol(an4221::I2cError::NoAnswer { .. })) if addr.is_none() => {}
            Err(LinuxOpenError::Protocol(e)) => return Err(e.into()),
        }
    }
    let tried = candidates
        .iter()
        .map(|a| format!("{a:#04x}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(RomError::I2cNoAnswer { path: shown, tried })
}

#[cfg(not(target_os = "linux"))]
fn connect_i2c(path: &Path, _addr: Option<u8>) -> Result<DynTarget, RomError> {
    Err(RomError::I2cOpen {
        path: path.display().to_string(),
        reason: "I2C is supported on Linux only (i2c-dev)".into(),
    })
}

/// A `.dfu` file's suffix must name the device it goes to (or "any").
fn check_dfu_suffix(t: &Transport, file: &Path) -> Result<(), RomError> {
    let Some(arg) = &t.dfu else { return Ok(()) };
    if !is_dfu_file(file) {
        return Ok(());
    }
    let (vid, pid) = dfu_vid_pid(arg)?;
    let bytes = std::fs::read(file).map_err(|source| RomError::Open {
        what: file.display().to_string(),
        source,
    })?;
    let dfu = brickless_rom::dfu_file::DfuFile::parse(&bytes).map_err(|e| RomError::BadDfu {
        path: file.into(),
        reason: e.to_string(),
    })?;
    if dfu.suffix.matches_device(vid, pid) {
        Ok(())
    } else {
        Err(RomError::DfuFileForOtherDevice {
            path: file.into(),
            file_vid: dfu.suffix.vendor_id,
            file_pid: dfu.suffix.product_id,
            vid,
            pid,
        })
    }
}

fn finish(t: &Transport, target: DynTarget) -> Result<(), RomError> {
    if let (Some(seq), Some(path)) = (&t.exit, &t.port) {
        drop(target);
        let shown = path.display().to_string();
        let mut link =
            SerialPortLink::open(&shown, t.baud, t.parity == Parity::None).map_err(|e| {
                RomError::Open {
                    what: shown,
                    source: e.into(),
                }
            })?;
        run_line_sequence(&mut link, seq)?;
    }
    Ok(())
}

fn device_of(target: &DynTarget) -> Result<&'static RomDevice, RomError> {
    let info = target.info();
    info.device.ok_or(RomError::UnknownDevice(info.pid))
}

/// A progress bar that follows the erase/write/verify phases.
struct Progress {
    bar: ProgressBar,
    phase: Option<Phase>,
}

impl Progress {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress { bar, phase: None }
    }

    fn update(&mut self, phase: Phase, done: u32, total: u32) {
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.bar.reset();
            self.bar.set_message(match phase {
                Phase::Erase => "erasing",
                Phase::Write => "writing",
                Phase::Verify => "verifying",
            });
            // Erase progress is counted in pages.
            self.bar.set_length(u64::from(total));
        }
        self.bar.set_position(u64::from(done));
    }

    fn done(self) {
        self.bar.finish_and_clear();
    }
}

pub fn run(cmd: RomCommand) -> miette::Result<()> {
    Ok(run_inner(cmd)?)
}

fn run_inner(cmd: RomCommand) -> Result<(), RomError> {
    match cmd {
        RomCommand::Info(a) => info(a),
        RomCommand::Read(a) => read(a),
        RomCommand::Write(a) => write(a),
        RomCommand::Verify(a) => verify(a),
        RomCommand::Erase(a) => erase(a),
        RomCommand::Go(a) => {
            let mut t = connect(&a.transport)?;
            let addr = match a.address {
                Some(a) => a,
                None => device_of(&t)?.flash().start,
            };
            t.go(addr)?;
            println!("started code at {addr:#010x}");
            finish(&a.transport, t)
        }
        RomCommand::Protect(a) => {
            let mut t = connect(&a.transport)?;
            match a.kind {
                Protection::Write => {
                    let list = a.sectors.as_deref().ok_or_else(|| {
                        RomError::Usage("give --sectors, e.g. --sectors 0-1".into())
                    })?;
                    t.write_protect(&parse_list(list)?)?;
                    println!("write protection on for sectors {list}");
                }
                Protection::Readout => {
                    t.readout_protect()?;
                    println!("read-out protection on");
                }
            }
            finish(&a.transport, t)
        }
        RomCommand::Unprotect(a) => {
            let mut t = connect(&a.transport)?;
            match a.kind {
                Protection::Write => {
                    t.write_unprotect()?;
                    println!("write protection removed");
                }
                Protection::Readout => {
                    t.readout_unprotect()?;
                    println!("read-out protection removed; the flash was mass-erased");
                }
            }
            finish(&a.transport, t)
        }
        RomCommand::Devices(a) => {
            devices(a.json);
            Ok(())
        }
    }
}

fn devices(json: bool) {
    let list: Vec<serde_json::Value> = brickless_rom::DEVICES
        .iter()
        .map(|d| {
            serde_json::json!({
                "pid": format!("{:#05x}", d.pid),
                "name": d.name,
                "flash_start": format!("{:#010x}", d.flash().start),
                "flash_max_bytes": d.geometry.total_size(),
                "pages": d.page_count(),
                "write_unit": d.write_unit(),
                "ram": format!("{:#010x}..{:#010x}", d.ram.start, d.ram.end),
                "i2c_address": d.i2c_address.map(|a| format!("{a:#04x}")),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    println!(
        "{:<6} {:<22} {:>9} {:>6} {:>5} {:>5}",
        "PID", "name", "flash", "pages", "unit", "i2c"
    );
    for d in brickless_rom::DEVICES {
        println!(
            "{:#05x}  {:<22} {:>7}Ki {:>6} {:>5} {:>5}",
            d.pid,
            d.name,
            d.geometry.total_size() / 1024,
            d.page_count(),
            d.write_unit(),
            d.i2c_address
                .map_or("-".to_string(), |a| format!("{a:#04x}"))
        );
    }
}

fn read_flash_size(t: &mut DynTarget, d: &RomDevice) -> Option<u32> {
    let mut b = [0u8; 2];
    t.read_memory(d.flash_size_addr, &mut b).ok()?;
    let kib = u16::from_le_bytes(b);
    (kib != 0 && kib != 0xFFFF).then_some(u32::from(kib) * 1024)
}

fn info(a: InfoArgs) -> Result<(), RomError> {
    let mut t = connect(&a.transport)?;
    let i = t.info();
    let (flash_size, uid) = match i.device {
        Some(d) => {
            let size = read_flash_size(&mut t, d);
            let mut uid = [0u8; 12];
            let uid = t.read_memory(d.uid_addr, &mut uid).ok().map(|_| uid);
            (size, uid)
        }
        None => (None, None),
    };
    let uid_hex = uid.map(|u| u.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let rdp = match i.read_protection {
        ReadProtection::Active => "active",
        ReadProtection::Inactive => "inactive",
        ReadProtection::Unknown if flash_size.is_some() => "inactive",
        ReadProtection::Unknown => "unknown",
    };
    if a.json {
        let v = serde_json::json!({
            "pid": format!("{:#05x}", i.pid),
            "device": i.device.map(|d| d.name),
            "bootloader_version": format!("{}.{}", i.protocol_version >> 4, i.protocol_version & 0xF),
            "flash_size": flash_size,
            "unique_id": uid_hex,
            "read_protection": rdp,
        });
        println!("{v}");
    } else {
        println!(
            "product ID   {:#05x} ({})",
            i.pid,
            i.device.map_or("unknown part", |d| d.name)
        );
        println!(
            "bootloader   V{}.{}",
            i.protocol_version >> 4,
            i.protocol_version & 0xF
        );
        if let Some(s) = flash_size {
            println!("flash        {} KiB", s / 1024);
        }
        if let Some(u) = &uid_hex {
            println!("unique ID    {u}");
        }
        println!("read-out protection {rdp}");
    }
    finish(&a.transport, t)
}

fn read(a: ReadArgs) -> Result<(), RomError> {
    if a.length == Some(0) {
        return Err(RomError::Usage(
            "--length 0 reads nothing: give at least 1".into(),
        ));
    }
    let mut t = connect(&a.transport)?;
    let d = device_of(&t).ok();
    let start = match (a.address, d) {
        (Some(x), _) => x,
        (None, Some(d)) => d.flash().start,
        (None, None) => return Err(RomError::Usage("unknown part: give --address".into())),
    };
    let len = match (a.length, d) {
        (Some(l), _) => l,
        (None, Some(d)) => read_flash_size(&mut t, d).unwrap_or(d.geometry.total_size()),
        (None, None) => return Err(RomError::Usage("unknown part: give --length".into())),
    };
    let mut data = vec![0u8; len as usize];
    let mut p = Progress::new();
    let t0 = Instant::now();
    program::read(&mut *t, start, &mut data, &mut |ph, d, tot| {
        p.update(ph, d, tot)
    })?;
    p.done();
    let image =
        FirmwareImage::from_bin(start, data, &a.output).map_err(firmware_file::FileError)?;
    firmware_file::save(&image, &a.output, 0xFF)?;
    println!(
        "read {len} bytes at {start:#010x} to {} in {:.1} s",
        a.output.display(),
        t0.elapsed().as_secs_f64()
    );
    finish(&a.transport, t)
}

/// Segments joined across small gaps (filled with the erased value), so no flash write
/// unit is programmed twice.
fn coalesce(segments: &[Segment], erased: u8) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for s in segments {
        match out.last_mut() {
            Some(last) if s.address as u64 >= last.end() && s.address as u64 - last.end() < 256 => {
                let gap = (s.address as u64 - last.end()) as usize;
                last.data.extend(std::iter::repeat_n(erased, gap));
                last.data.extend_from_slice(&s.data);
            }
            _ => out.push(s.clone()),
        }
    }
    out
}

/// Why a `.dfu` file has nothing to write for alternate setting `alt` (any when `None`), if
/// it has nothing: a DfuSe file without elements (or with empty ones only), an empty payload.
fn dfu_without_data(dfu: &brickless_rom::dfu_file::DfuFile<'_>, alt: Option<u8>) -> Option<String> {
    use brickless_rom::dfu_file::DfuContents;
    match dfu.contents {
        DfuContents::DfuSe(image) => {
            let targets = || {
                image
                    .targets()
                    .filter(move |t| alt.is_none_or(|a| t.alt_setting == a))
            };
            let elements: u64 = targets().map(|t| u64::from(t.element_count())).sum();
            let bytes: u64 = targets()
                .flat_map(|t| t.elements())
                .map(|e| e.data.len() as u64)
                .sum();
            let which = match alt {
                Some(a) => format!(" for alternate setting {a}"),
                None => String::new(),
            };
            if elements == 0 {
                Some(format!(
                    "its DfuSe targets hold no elements{which}: there is nothing to write"
                ))
            } else if bytes == 0 {
                Some(format!(
                    "its {elements} DfuSe element(s){which} are all empty (0 bytes): there is nothing to write"
                ))
            } else {
                None
            }
        }
        DfuContents::Stellaris { payload, .. } | DfuContents::Raw(payload) => payload
            .is_empty()
            .then(|| "its payload is empty (0 bytes): there is nothing to write".to_string()),
    }
}

/// Segments of a `.dfu` file: DfuSe elements (all targets), or a Stellaris/raw payload.
/// A file without data is refused.
fn dfu_segments(file: &Path, base: u32) -> Result<Vec<Segment>, RomError> {
    use brickless_rom::dfu_file::{DfuContents, DfuFile};
    let bytes = std::fs::read(file).map_err(|source| RomError::Open {
        what: file.display().to_string(),
        source,
    })?;
    let dfu = DfuFile::parse(&bytes).map_err(|e| RomError::BadDfu {
        path: file.into(),
        reason: e.to_string(),
    })?;
    if let Some(reason) = dfu_without_data(&dfu, None) {
        return Err(RomError::BadDfu {
            path: file.into(),
            reason,
        });
    }
    let segments = match dfu.contents {
        DfuContents::DfuSe(image) => image
            .targets()
            .flat_map(|t| t.elements())
            .map(|e| Segment {
                address: e.address,
                data: e.data.to_vec(),
            })
            .collect(),
        DfuContents::Stellaris { address, payload } => vec![Segment {
            address,
            data: payload.to_vec(),
        }],
        DfuContents::Raw(payload) => vec![Segment {
            address: base,
            data: payload.to_vec(),
        }],
    };
    Ok(segments)
}

fn load_image(
    file: &Path,
    address: Option<u32>,
    d: Option<&RomDevice>,
) -> Result<Vec<Segment>, RomError> {
    let base = address
        .or(d.map(|d| d.flash().start))
        .unwrap_or(0x0800_0000);
    let is_dfu = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dfu"));
    let image = if is_dfu {
        FirmwareImage::from_segments(dfu_segments(file, base)?, file)
            .map_err(firmware_file::FileError)?
    } else {
        FirmwareImage::load(file, base).map_err(firmware_file::FileError)?
    };
    if image.is_empty() {
        // Never report writing or verifying 0 bytes as success.
        return Err(
            firmware_file::FileError(firmware_file::FirmwareFileError::Empty { path: file.into() })
                .into(),
        );
    }
    let erased = d.map_or(0xFF, |d| d.geometry.erased);
    Ok(coalesce(image.segments(), erased))
}

/// A `.dfu` file over DFU, the way DfuSe tools do it: every element of alt setting 0 is
/// checked against the device's own memory layout, then erased, written and read back (no
/// device-table entry needed).
fn write_dfu_file(a: &WriteArgs, vid: u16, pid: u16) -> Result<(), RomError> {
    let bytes = std::fs::read(&a.file).map_err(|source| RomError::Open {
        what: a.file.display().to_string(),
        source,
    })?;
    let bad = |e: brickless_rom::dfu_file::DfuFileError| RomError::BadDfu {
        path: a.file.clone(),
        reason: e.to_string(),
    };
    let file = brickless_rom::dfu_file::DfuFile::parse(&bytes).map_err(bad)?;
    // Alt setting 0 (the internal flash) is what gets programmed: refuse before any USB work.
    if let Some(reason) = dfu_without_data(&file, Some(0)) {
        return Err(RomError::BadDfu {
            path: a.file.clone(),
            reason,
        });
    }
    let mut target = open_dfu(vid, pid)?;
    let start = target.layout().start();
    let raw_address = a.address.or(start);
    let mut p = Progress::new();
    let t0 = Instant::now();
    let written = target.program_dfu_file(&file, 0, raw_address, &mut |ph, done, total| {
        p.update(ph, done, total)
    })?;
    p.done();
    println!(
        "wrote {} bytes{} and verified {} element(s) of {} in {:.1} s",
        written.bytes,
        skipped_note(written.skipped),
        written.elements,
        a.file.display(),
        t0.elapsed().as_secs_f64()
    );
    if a.go {
        let at = a.address.or(start).ok_or_else(|| {
            RomError::Usage("the device's layout has no start address: give --address".into())
        })?;
        target.go(at)?;
        println!("started the firmware at {at:#010x}");
    }
    Ok(())
}

/// " (N bytes of erased value skipped)" when some were, for the final line of a write.
fn skipped_note(skipped: u64) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} bytes of erased value skipped)")
    }
}

fn is_dfu_file(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dfu"))
}

fn write(a: WriteArgs) -> Result<(), RomError> {
    check_dfu_suffix(&a.transport, &a.file)?;
    if let Some(arg) = &a.transport.dfu {
        if is_dfu_file(&a.file) && a.erase == EraseMode::Auto && !a.no_verify {
            let (vid, pid) = dfu_vid_pid(arg)?;
            return write_dfu_file(&a, vid, pid);
        }
    }
    let mut t = connect(&a.transport)?;
    let d = device_of(&t)?;
    let segments = load_image(&a.file, a.address, Some(d))?;
    let total: usize = segments.iter().map(|s| s.data.len()).sum();
    let t0 = Instant::now();
    let mut p = Progress::new();
    let options = program::Options {
        erase: match a.erase {
            EraseMode::Auto => program::EraseMode::Touched,
            EraseMode::Mass => program::EraseMode::Mass,
            EraseMode::None => program::EraseMode::None,
        },
        verify: !a.no_verify,
        // RAM segments are written in full, without erasing.
        outside_flash: true,
    };
    let mut buf = vec![0u8; t.max_transfer().clamp(program::BLOCK, 4096)];
    let done = program::program_segments(
        &mut *t,
        d,
        || segments.iter().map(|s| (s.address, &s.data[..])),
        options,
        &mut buf,
        &mut |ph, done, tot| p.update(ph, done, tot),
    )
    .map_err(|e| match e {
        ProgramError::OutsideFlash { addr, len } => RomError::OutsideFlash {
            addr,
            len,
            device: d.name.into(),
        },
        e => e.into(),
    })?;
    let skipped = done.skipped;
    p.done();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "wrote {total} bytes{} in {} segment(s) to {} {}in {secs:.1} s ({:.1} KiB/s)",
        skipped_note(skipped),
        segments.len(),
        d.name,
        if a.no_verify { "" } else { "and verified " },
        total as f64 / 1024.0 / secs.max(1e-9)
    );
    if a.go {
        let start = segments.first().map_or(d.flash().start, |s| s.address);
        t.go(start)?;
        println!("started the firmware at {start:#010x}");
    }
    let _ = std::io::stdout().flush();
    finish(&a.transport, t)
}

fn verify(a: VerifyArgs) -> Result<(), RomError> {
    check_dfu_suffix(&a.transport, &a.file)?;
    let mut t = connect(&a.transport)?;
    let d = device_of(&t).ok();
    let segments = load_image(&a.file, a.address, d)?;
    let mut p = Progress::new();
    for s in &segments {
        program::verify(&mut *t, s.address, &s.data, &mut |ph, done, tot| {
            p.update(ph, done, tot)
        })?;
    }
    p.done();
    let total: usize = segments.iter().map(|s| s.data.len()).sum();
    println!(
        "verified {total} bytes: the device matches {}",
        a.file.display()
    );
    finish(&a.transport, t)
}

fn erase(a: EraseArgs) -> Result<(), RomError> {
    let mut t = connect(&a.transport)?;
    if a.mass {
        t.erase(Erase::Mass)?;
        println!("flash mass-erased");
    } else if let Some(bank) = a.bank {
        if !(1..=2).contains(&bank) {
            return Err(RomError::Usage("--bank is 1 or 2".into()));
        }
        t.erase(Erase::Bank(bank - 1))?;
        println!("bank {bank} erased");
    } else if let Some(list) = &a.pages {
        let pages = parse_list(list)?;
        for chunk in pages.chunks(64) {
            t.erase(Erase::Pages(chunk))?;
        }
        println!("erased pages {list}");
    } else if let Some(range) = &a.range {
        let (addr, len) = range
            .split_once(':')
            .ok_or_else(|| RomError::Usage("--range is ADDR:LEN".into()))?;
        let addr = parse_u32(addr).map_err(RomError::Usage)?;
        let len = parse_u32(len).map_err(RomError::Usage)?;
        if len == 0 {
            return Err(RomError::Usage(
                "--range ADDR:0 erases nothing: give a length of at least 1".into(),
            ));
        }
        let d = device_of(&t)?;
        let mut p = Progress::new();
        program::erase_range(&mut *t, d, addr, len, &mut |ph, done, tot| {
            p.update(ph, done, tot)
        })?;
        p.done();
        println!("erased the pages covering {addr:#010x}+{len:#x}");
    } else {
        return Err(RomError::Usage(
            "say what to erase: --pages, --bank, --mass or --range".into(),
        ));
    }
    finish(&a.transport, t)
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

    #[test]
    fn close_segments_are_joined_with_erased_fill() {
        let s = vec![
            Segment {
                address: 0x100,
                data: vec![1; 4],
            },
            Segment {
                address: 0x108,
                data: vec![2; 4],
            },
            Segment {
                address: 0x1000,
                data: vec![3; 4],
            },
        ];
        let c = coalesce(&s, 0xFF);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].data,
            vec![1, 1, 1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 2, 2, 2, 2]
        );
    }
}
