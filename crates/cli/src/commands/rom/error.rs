//! `brickless rom` errors with what to do about them: one mapping from the library's error
//! kinds, not one per host.
use std::path::PathBuf;

use brickless_rom::dfuse::DfuseError;
use brickless_rom::open::{Host, HostError, OpenError};
use brickless_rom::program::ProgramError;
use brickless_rom::ErrorKind;
use miette::Diagnostic;
use thiserror::Error;

use crate::firmware_file;

/// What can go wrong in `brickless rom`, with what to do about it.
#[derive(Debug, Error, Diagnostic)]
pub enum RomError {
    /// The serial port, TCP address or file could not be opened.
    #[error("cannot open {what}: {source}")]
    #[diagnostic(
        code(brickless::rom::open),
        help("check the port name/address and that no other program holds it")
    )]
    Open {
        /// What was being opened, as the user named it.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The AN3155 bootloader never answered the 0x7F sync byte.
    #[error("no answer from the bootloader to the 0x7F sync byte")]
    #[diagnostic(
        code(brickless::rom::no_sync),
        help("is BOOT0 high and was the chip reset since (--entry can do it)? Right port, TX/RX crossed, baud ≤ 115200? Use --parity none on a pty")
    )]
    NoSync,
    /// The device stopped answering mid-command (the host's message).
    #[error("{0}")]
    #[diagnostic(
        code(brickless::rom::timeout),
        help("the device stopped answering: check power and wiring; a long erase may need --timeout-ms")
    )]
    Timeout(String),
    /// The bootloader refused a command or its data (NACK).
    #[error("{0}")]
    #[diagnostic(
        code(brickless::rom::nack),
        help("the address may be outside the device's memory, or the sector write-protected (brickless rom unprotect write)")
    )]
    Nack(String),
    /// Read-out protection (RDP) is active.
    #[error("read-out protection is active: the bootloader refuses to read or write memory")]
    #[diagnostic(
        code(brickless::rom::read_protected),
        help("`brickless rom unprotect readout` removes it and mass-erases the flash")
    )]
    ReadProtected,
    /// A byte that is neither ACK nor NACK: line noise or a wrong baud or parity.
    #[error("{0}")]
    #[diagnostic(
        code(brickless::rom::noise),
        help("line noise or a wrong baud/parity; lower --baud or check grounding")
    )]
    Noise(String),
    /// The device broke the protocol some other way.
    #[error("{0}")]
    #[diagnostic(code(brickless::rom::protocol))]
    Protocol(String),
    /// The link itself failed (I/O error on the port or socket).
    #[error("{0}")]
    #[diagnostic(
        code(brickless::rom::open),
        help("check the port name/address and that no other program holds it")
    )]
    Link(String),
    /// Verification found a byte in flash that differs from the file.
    #[error("verify failed at {addr:#010x}: expected {expected:#04x}, device has {found:#04x}")]
    #[diagnostic(
        code(brickless::rom::verify),
        help("the flash was not erased, or a write was lost; erase and write again")
    )]
    Mismatch {
        /// Absolute address of the first differing byte.
        addr: u32,
        /// The file's byte.
        expected: u8,
        /// The device's byte.
        found: u8,
    },
    /// The data would fall outside the part's flash.
    #[error("{addr:#010x}..{end:#010x} is not in the flash of {device}", end = u64::from(*addr) + u64::from(*len))]
    #[diagnostic(
        code(brickless::rom::range),
        help("check the file's addresses or --address against the part's flash")
    )]
    OutsideFlash {
        /// Absolute start address of the data.
        addr: u32,
        /// Its length in bytes.
        len: u32,
        /// The part's name.
        device: String,
    },
    /// The product ID the bootloader reports is not in the chip table.
    #[error("unknown product ID {0:#05x}: no flash layout for it")]
    #[diagnostic(
        code(brickless::rom::unknown_device),
        help("`brickless rom devices` lists the known parts")
    )]
    UnknownDevice(u16),
    /// The arguments contradict each other or the device.
    #[error("{0}")]
    #[diagnostic(code(brickless::rom::usage))]
    Usage(String),
    /// A `.dfu` file that does not parse.
    #[error("{path}: not a usable .dfu file: {reason}")]
    #[diagnostic(
        code(brickless::rom::dfu_file),
        help("regenerate it (dfuse-pack, STM32CubeProgrammer) or pass the ELF/HEX/BIN")
    )]
    BadDfu {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A shared job (`brickless_host`) failed: its message and hint.
    #[error("{message}")]
    #[diagnostic(code(brickless::rom::job))]
    Job {
        /// What went wrong.
        message: String,
        /// What to do about it.
        #[help]
        help: Option<String>,
    },
    /// A firmware file (BIN, HEX, ELF) that cannot be read or written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    File(#[from] firmware_file::FileError),
    /// The Linux i2c-dev bus could not be opened.
    #[error("cannot open the I2C bus {path}: {reason}")]
    #[diagnostic(
        code(brickless::rom::i2c_open),
        help("is the i2c-dev module loaded (`modprobe i2c-dev`), does {path} exist (`ls /dev/i2c-*`) and may you open it (the `i2c` group)?")
    )]
    I2cOpen {
        /// The bus device, e.g. `/dev/i2c-1`.
        path: String,
        /// Why it could not be opened.
        reason: String,
    },
    /// No AN4221 bootloader answered at the address(es) tried.
    #[error("no bootloader answered on {path} at {tried}")]
    #[diagnostic(
        code(brickless::rom::i2c_no_answer),
        help("give the part's bootloader address with --addr (AN2606); check BOOT0 high at reset, SCL/SDA on the bootloader's I2C pins and pull-ups")
    )]
    I2cNoAnswer {
        /// The bus device.
        path: String,
        /// The addresses tried, as text.
        tried: String,
    },
    /// The I2C bootloader failed a command (the host's message).
    #[error("I2C bootloader: {0}")]
    #[diagnostic(
        code(brickless::rom::i2c),
        help("check wiring and pull-ups; a long erase may need a power-cycle and a retry")
    )]
    I2c(String),
    /// `--dfu` was given something that is not `VID:PID`.
    #[error("`{0}` is not a USB VID:PID like 0483:df11")]
    #[diagnostic(
        code(brickless::rom::bad_vid_pid),
        help("give two hex numbers separated by ':' (e.g. --dfu 0483:df11); if it was the firmware file, put the file before --dfu or write --dfu=VID:PID")
    )]
    BadVidPid(String),
    /// No USB device with that VID:PID is attached.
    #[error("no DFU device {vid:04x}:{pid:04x} was found")]
    #[diagnostic(
        code(brickless::rom::dfu_not_found),
        help("hold BOOT0 high, reset the part and cable its USB port; `lsusb` should list it. Check --dfu VID:PID")
    )]
    DfuNotFound {
        /// USB vendor ID looked for.
        vid: u16,
        /// USB product ID looked for.
        pid: u16,
    },
    /// The USB device was found but could not be claimed.
    #[error("cannot use the DFU device: {0}")]
    #[diagnostic(
        code(brickless::rom::dfu_open),
        help("permission denied usually means a missing udev rule for the device (or run as root); another program may hold it")
    )]
    DfuOpen(String),
    /// The DfuSe device failed a request (the host's message).
    #[error("DfuSe: {0}")]
    #[diagnostic(
        code(brickless::rom::dfuse),
        help("the address may be outside the device's memory layout or the device left DFU mode; reset into the bootloader and retry")
    )]
    Dfuse(String),
    /// The `.dfu` file names another USB device than the one attached.
    #[error(
        "{path} is made for USB device {file_vid:04x}:{file_pid:04x}, not {vid:04x}:{pid:04x}"
    )]
    #[diagnostic(
        code(brickless::rom::dfu_mismatch),
        help("use the .dfu file built for this device, or the ELF/HEX/BIN")
    )]
    DfuFileForOtherDevice {
        /// The file.
        path: PathBuf,
        /// USB vendor ID the file's suffix names.
        file_vid: u16,
        /// USB product ID the file's suffix names.
        file_pid: u16,
        /// Vendor ID of the attached device.
        vid: u16,
        /// Product ID of the attached device.
        pid: u16,
    },
}

impl From<brickless_host::Error> for RomError {
    fn from(e: brickless_host::Error) -> Self {
        RomError::Job {
            message: e.message,
            help: e.help.map(str::to_string),
        }
    }
}

impl From<HostError> for RomError {
    fn from(e: HostError) -> Self {
        match (e.host(), e.kind()) {
            (Host::Dfu, _) => RomError::Dfuse(e.to_string()),
            (_, ErrorKind::NoSync) => RomError::NoSync,
            (_, ErrorKind::ReadProtected) => RomError::ReadProtected,
            (_, ErrorKind::Timeout) => RomError::Timeout(e.to_string()),
            (_, ErrorKind::Nack) => RomError::Nack(e.to_string()),
            (_, ErrorKind::Noise) => RomError::Noise(e.to_string()),
            (Host::Usart, ErrorKind::Link) => RomError::Link(e.to_string()),
            (Host::I2c, _) => RomError::I2c(e.to_string()),
            _ => RomError::Protocol(e.to_string()),
        }
    }
}

impl From<ProgramError<HostError>> for RomError {
    fn from(e: ProgramError<HostError>) -> Self {
        match e {
            ProgramError::Target(e) => e.into(),
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

impl From<DfuseError> for RomError {
    fn from(e: DfuseError) -> Self {
        match e {
            DfuseError::VerifyMismatch {
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

impl From<OpenError> for RomError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Io { what, source } => RomError::Open { what, source },
            OpenError::I2cOpen { path, reason } => RomError::I2cOpen { path, reason },
            OpenError::I2cNoAnswer { path, tried } => RomError::I2cNoAnswer { path, tried },
            OpenError::DfuNotFound { vid, pid } => RomError::DfuNotFound { vid, pid },
            OpenError::DfuOpen(reason) => RomError::DfuOpen(reason),
            OpenError::Host(e) => e.into(),
            other => RomError::Usage(other.to_string()),
        }
    }
}
