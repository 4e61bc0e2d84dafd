//! ST ROM bootloaders (AN3155 over a serial port or TCP): write a firmware file, erasing
//! the pages it touches and verifying it. The file is read and checked before the device
//! is touched.
use std::path::Path;

use brickless_image::firmware::{coalesce, FirmwareImage, Segment};
use brickless_rom::an3155::Config;
use brickless_rom::device::RomDevice;
use brickless_rom::dfu_file::DfuFile;
use brickless_rom::open::{self, AnyTarget, HostError, Link};
use brickless_rom::program::{self, Phase, ProgramError};
use brickless_rom::target::{Erase, TargetInfo};
use brickless_rom::RomTarget;

use crate::target::Target;
use crate::{Cancel, Error, ErrorKind};

/// How to talk to the bootloader and what to do after writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RomOptions {
    /// Serial baud rate (for TCP, the modelled line rate timeouts are scaled to).
    pub baud: u32,
    /// 8E1, as the ROM bootloader wants; 8N1 for ptys and adapters without parity.
    pub parity_even: bool,
    /// Milliseconds to wait for each answer, on top of line time.
    pub timeout_ms: u32,
    /// Attempts after a failed read, erase or refused write.
    pub retries: u8,
    /// Read back (or CRC) what was written.
    pub verify: bool,
    /// Where a BIN file goes (default: the start of the part's flash).
    pub address: Option<u32>,
    /// Start the firmware afterwards (Go to its first address).
    pub go: bool,
}

impl Default for RomOptions {
    fn default() -> Self {
        RomOptions {
            baud: 115_200,
            parity_even: true,
            timeout_ms: 500,
            retries: 2,
            verify: true,
            address: None,
            go: false,
        }
    }
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RomWritten {
    /// The part, from the device table.
    pub device: String,
    /// Bytes of the file's segments.
    pub bytes: u64,
    /// Segments written.
    pub segments: usize,
    /// Bytes not sent because the erase already left them so.
    pub skipped: u64,
    /// Read back or CRC-checked.
    pub verified: bool,
}

/// Where in the work a progress report is.
pub type RomPhase = Phase;

/// Reads a firmware file (BIN at `address`, else `fallback_base`; Intel HEX; ELF; DfuSe
/// `.dfu`) into segments joined across small gaps (filled with `erased`). A file without
/// data is refused.
pub fn load_segments(
    file: &Path,
    address: Option<u32>,
    fallback_base: u32,
    erased: u8,
) -> Result<Vec<Segment>, Error> {
    let base = address.unwrap_or(fallback_base);
    let bad = |e: brickless_image::firmware::FirmwareFileError| {
        let kind = match e {
            brickless_image::firmware::FirmwareFileError::Read { .. } => ErrorKind::File,
            _ => ErrorKind::BadImage,
        };
        let help = match e {
            brickless_image::firmware::FirmwareFileError::HexRecord { .. } => {
                Some("the file is damaged or not Intel HEX; regenerate it (e.g. objcopy -O ihex)")
            }
            brickless_image::firmware::FirmwareFileError::Elf { .. } => {
                Some("pass the linker's output ELF, or convert it to BIN/HEX with objcopy")
            }
            _ => None,
        };
        Error {
            kind,
            message: e.to_string(),
            help,
        }
    };
    let image = if file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dfu"))
    {
        let bytes = std::fs::read(file).map_err(|e| {
            Error::new(
                ErrorKind::File,
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        let dfu = DfuFile::parse(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::BadImage,
                format!("{}: not a usable .dfu file: {e}", file.display()),
            )
            .with_help("regenerate it (dfuse-pack, STM32CubeProgrammer) or pass the ELF/HEX/BIN")
        })?;
        if let Some(reason) = dfu.no_data(None) {
            return Err(Error::new(
                ErrorKind::BadImage,
                format!("{}: not a usable .dfu file: {reason}", file.display()),
            ));
        }
        let segments = dfu
            .segments(base)
            .into_iter()
            .map(|(address, data)| Segment {
                address,
                data: data.to_vec(),
            })
            .collect();
        FirmwareImage::from_segments(segments, file).map_err(bad)?
    } else {
        FirmwareImage::load(file, base).map_err(bad)?
    };
    if image.is_empty() {
        // Never report writing 0 bytes as success.
        return Err(bad(brickless_image::firmware::FirmwareFileError::Empty {
            path: file.into(),
        }));
    }
    Ok(coalesce(image.segments(), 256, erased))
}

/// A programming-loop error as a job error; `device` names the part in range errors.
fn program_error(e: ProgramError<Stop>, device: &str) -> Error {
    match e {
        ProgramError::Target(Stop::Cancelled) => Error::cancelled(),
        ProgramError::Target(Stop::Host(h)) => host_error(h),
        ProgramError::OutsideFlash { addr, len } => Error::invalid(format!(
            "{addr:#010x}..{:#010x} is not in the flash of {device}",
            u64::from(addr) + u64::from(len)
        ))
        .with_help("check the file's addresses or the address option against the part's flash"),
        ProgramError::Mismatch {
            addr,
            expected,
            found,
        } => Error::new(
            ErrorKind::Mismatch,
            format!(
                "verify failed at {addr:#010x}: expected {expected:#04x}, device has {found:#04x}"
            ),
        ),
        // A device checksum that disagrees with a read-back that found no difference.
        other => Error::new(ErrorKind::Mismatch, other.to_string()),
    }
}

/// A host error with its kind.
pub fn host_error(h: HostError) -> Error {
    let kind = h.kind();
    let e = Error::new(kind.into(), h.to_string());
    match kind {
        brickless_rom::ErrorKind::NoSync => e.with_help(
            "is BOOT0 high and was the chip reset since? Right port, TX/RX crossed, baud at most 115200?",
        ),
        brickless_rom::ErrorKind::ReadProtected => {
            e.with_help("`brickless rom unprotect readout` removes it and mass-erases the flash")
        }
        _ => e,
    }
}

fn open_error(e: open::OpenError) -> Error {
    match e {
        open::OpenError::Host(h) => host_error(h),
        open::OpenError::Unsupported(what) => Error::new(ErrorKind::Unsupported, what),
        other => Error::new(ErrorKind::Connection, other.to_string())
            .with_help("check the port name or address and that no other program holds it"),
    }
}

/// Connects to the bootloader at `target` (serial or TCP).
pub fn connect(target: &Target, opts: &RomOptions) -> Result<AnyTarget, Error> {
    let link = match target {
        Target::Serial { path, .. } => Link::Serial {
            path: path.clone(),
            parity_even: opts.parity_even,
        },
        Target::Tcp(addr) => Link::Tcp(addr.clone()),
        Target::Udp(_) => {
            return Err(Error::invalid(format!(
                "{target}: ROM bootloaders are reached over a serial port or TCP, not UDP"
            )))
        }
    };
    let baud = match target {
        Target::Serial { baud, .. } => *baud,
        _ => opts.baud,
    };
    let t = open::Transport {
        link,
        usart: Config {
            baud,
            bits_per_byte: if opts.parity_even { 11 } else { 10 },
            ack_timeout_ms: opts.timeout_ms,
            retries: opts.retries,
            pipeline: false,
            no_sync: false,
        },
        entry: None,
        exit: None,
    };
    open::open(&t).map_err(open_error)
}

/// Stops a programming loop at its next command once the flag is set.
struct Cancellable<'a> {
    inner: &'a mut AnyTarget,
    cancel: &'a Cancel,
}

/// The error of a [`Cancellable`] target.
#[derive(Debug)]
enum Stop {
    Cancelled,
    Host(HostError),
}

impl core::fmt::Display for Stop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Stop::Cancelled => f.write_str("cancelled"),
            Stop::Host(h) => h.fmt(f),
        }
    }
}

impl Cancellable<'_> {
    fn run<R>(
        &mut self,
        f: impl FnOnce(&mut AnyTarget) -> Result<R, HostError>,
    ) -> Result<R, Stop> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        f(self.inner).map_err(Stop::Host)
    }
}

impl RomTarget for Cancellable<'_> {
    type Error = Stop;
    fn info(&self) -> TargetInfo {
        self.inner.info()
    }
    fn max_transfer(&self) -> usize {
        self.inner.max_transfer()
    }
    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Stop> {
        self.run(|t| t.read_memory(addr, buf))
    }
    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), Stop> {
        self.run(|t| t.write_memory(addr, data))
    }
    fn erase(&mut self, what: Erase<'_>) -> Result<(), Stop> {
        self.run(|t| t.erase(what))
    }
    fn go(&mut self, addr: u32) -> Result<(), Stop> {
        self.run(|t| t.go(addr))
    }
    fn write_protect(&mut self, sectors: &[u16]) -> Result<(), Stop> {
        self.run(|t| t.write_protect(sectors))
    }
    fn write_unprotect(&mut self) -> Result<(), Stop> {
        self.run(|t| t.write_unprotect())
    }
    fn readout_protect(&mut self) -> Result<(), Stop> {
        self.run(|t| t.readout_protect())
    }
    fn readout_unprotect(&mut self) -> Result<(), Stop> {
        self.run(|t| t.readout_unprotect())
    }
    fn checksum(&mut self, addr: u32, len: u32) -> Result<Option<u32>, Stop> {
        self.run(|t| t.checksum(addr, len))
    }
}

/// Writes `file` through the bootloader at `target`: connects, erases the pages the file
/// touches, writes, verifies (unless `opts.verify` is off) and, with `opts.go`, starts it.
/// `progress(phase, done, total)` counts pages while erasing and bytes otherwise.
pub fn write_file(
    target: &Target,
    file: &Path,
    opts: &RomOptions,
    progress: &mut dyn FnMut(Phase, u32, u32),
    cancel: &Cancel,
) -> Result<RomWritten, Error> {
    // Check the file before touching the device (the real base comes with the part).
    load_segments(file, opts.address, 0x0800_0000, 0xff)?;
    cancel.check()?;
    let mut t = connect(target, opts)?;
    let d: &RomDevice = t.info().device.ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "unknown product ID {:#05x}: no flash layout for it",
                t.info().pid
            ),
        )
        .with_help("`brickless rom devices` lists the known parts")
    })?;
    let segments = load_segments(file, opts.address, d.flash().start, d.geometry.erased)?;
    let options = program::Options {
        erase: program::EraseMode::Touched,
        verify: opts.verify,
        outside_flash: false,
    };
    let mut buf = vec![0u8; t.max_transfer().clamp(program::BLOCK, 4096)];
    let mut ct = Cancellable {
        inner: &mut t,
        cancel,
    };
    let done = program::program_segments(
        &mut ct,
        d,
        || segments.iter().map(|s| (s.address, &s.data[..])),
        options,
        &mut buf,
        &mut |ph, done, tot| progress(ph, done, tot),
    )
    .map_err(|e| program_error(e, d.name))?;
    if opts.go {
        let start = segments.first().map_or(d.flash().start, |s| s.address);
        t.go(start).map_err(host_error)?;
    }
    Ok(RomWritten {
        device: d.name.to_string(),
        bytes: done.bytes,
        segments: done.segments,
        skipped: done.skipped,
        verified: opts.verify,
    })
}
