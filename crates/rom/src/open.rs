//! Opening a ROM bootloader host over a std transport: a serial port (with the BOOT0/NRST
//! line sequences stm32flash's `-i` describes), a TCP byte stream, a Linux I2C bus or a USB
//! DfuSe device. Every host comes back as one [`AnyTarget`] whose errors say their
//! [`ErrorKind`].
use std::io;

use crate::an3155::{self, Usart};
use crate::target::{Erase, ErrorKind, RomTarget, TargetError, TargetInfo};

/// Which host an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Host {
    /// AN3155 over a serial port or TCP.
    Usart,
    /// AN4221 over I2C.
    I2c,
    /// DfuSe over USB.
    Dfu,
}

/// An error of any host, with its kind.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct HostError {
    host: Host,
    kind: ErrorKind,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl HostError {
    fn new<E: TargetError + std::error::Error + Send + Sync + 'static>(host: Host, e: E) -> Self {
        HostError {
            host,
            kind: e.kind(),
            source: Box::new(e),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The host that failed.
    pub fn host(&self) -> Host {
        self.host
    }
}

impl TargetError for HostError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Any connected host.
pub type AnyTarget = Box<dyn RomTarget<Error = HostError>>;

/// A host whose errors become [`HostError`]s.
struct Mapped<T>(T, Host);

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&mut self, $($arg: $ty),*) -> Result<$ret, HostError> {
            let host = self.1;
            self.0.$name($($arg),*).map_err(|e| HostError::new(host, e))
        })*
    };
}

impl<T> RomTarget for Mapped<T>
where
    T: RomTarget,
    T::Error: TargetError + std::error::Error + Send + Sync + 'static,
{
    type Error = HostError;
    fn info(&self) -> TargetInfo {
        self.0.info()
    }
    fn max_transfer(&self) -> usize {
        self.0.max_transfer()
    }
    forward! {
        read_memory(addr: u32, buf: &mut [u8]) -> ();
        write_memory(addr: u32, data: &[u8]) -> ();
        erase(what: Erase<'_>) -> ();
        go(addr: u32) -> ();
        write_protect(sectors: &[u16]) -> ();
        write_unprotect() -> ();
        readout_protect() -> ();
        readout_unprotect() -> ();
        checksum(addr: u32, len: u32) -> Option<u32>;
    }
}

/// One step of a modem-line sequence: drive DTR or RTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineStep {
    /// Assert (`true`, "high" in stm32flash's words) or release DTR.
    Dtr(bool),
    /// Assert or release RTS.
    Rts(bool),
}

/// A modem-line sequence as stm32flash's `-i` writes it: `-rts,dtr,-dtr` (a leading `-`
/// drives the line low), one step every 100 ms.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LineSequence(pub Vec<LineStep>);

impl std::str::FromStr for LineSequence {
    type Err = OpenError;
    fn from_str(seq: &str) -> Result<Self, OpenError> {
        let steps = seq.split(',').map(str::trim).filter(|s| !s.is_empty());
        let step = |s: &str| match s {
            "dtr" => Ok(LineStep::Dtr(true)),
            "-dtr" => Ok(LineStep::Dtr(false)),
            "rts" => Ok(LineStep::Rts(true)),
            "-rts" => Ok(LineStep::Rts(false)),
            other => Err(OpenError::BadLineStep(other.into())),
        };
        Ok(LineSequence(steps.map(step).collect::<Result<_, _>>()?))
    }
}

/// How to reach the bootloader.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Link {
    /// A serial port; `parity_even` is the bootloader's 8E1 (8N1 otherwise, for ptys).
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0`.
        path: String,
        /// 8E1 when true, 8N1 when false.
        parity_even: bool,
    },
    /// A raw TCP byte stream (`HOST:PORT`).
    Tcp(String),
    /// A Linux I2C bus; without an address, the device table's addresses are tried.
    I2c {
        /// `/dev/i2c-N`.
        path: String,
        /// 7-bit address.
        address: Option<u8>,
    },
    /// A USB DfuSe device.
    Dfu {
        /// USB vendor ID.
        vid: u16,
        /// USB product ID.
        pid: u16,
    },
}

/// A link and how to talk over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Where the bootloader is.
    pub link: Link,
    /// AN3155 settings (serial and TCP).
    pub usart: an3155::Config,
    /// Lines to drive before connecting (serial only).
    pub entry: Option<LineSequence>,
    /// Lines to drive after the work (serial only), by [`close`].
    pub exit: Option<LineSequence>,
}

/// Why a transport could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The port, socket or modem lines failed.
    #[error("cannot open {what}: {source}")]
    Io {
        /// What was being opened.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A line sequence step other than rts, -rts, dtr, -dtr.
    #[error("unknown line step `{0}` (use rts, -rts, dtr, -dtr)")]
    BadLineStep(String),
    /// The I2C bus node could not be opened.
    #[error("cannot open the I2C bus {path}: {reason}")]
    I2cOpen {
        /// `/dev/i2c-N`.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// No bootloader answered at any address tried.
    #[error("no bootloader answered on {path} at {tried}")]
    I2cNoAnswer {
        /// `/dev/i2c-N`.
        path: String,
        /// The addresses tried, e.g. `0x4e, 0x38`.
        tried: String,
    },
    /// No USB device with that VID:PID.
    #[error("no DFU device {vid:04x}:{pid:04x} was found")]
    DfuNotFound {
        /// USB vendor ID.
        vid: u16,
        /// USB product ID.
        pid: u16,
    },
    /// The USB device could not be used.
    #[error("cannot use the DFU device: {0}")]
    DfuOpen(String),
    /// The bootloader did not connect as its protocol says.
    #[error(transparent)]
    Host(#[from] HostError),
    /// This build or platform has no such transport.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Opens the transport, runs the entry sequence and connects.
pub fn open(t: &Transport) -> Result<AnyTarget, OpenError> {
    match &t.link {
        Link::Tcp(addr) => {
            let link = crate::link::TcpLink::connect(addr).map_err(|source| OpenError::Io {
                what: format!("tcp {addr}"),
                source,
            })?;
            let host = Usart::connect(link, t.usart).map_err(|e| HostError::new(Host::Usart, e))?;
            Ok(Box::new(Mapped(host, Host::Usart)))
        }
        Link::Serial { path, parity_even } => open_serial(path, *parity_even, t),
        Link::I2c { path, address } => open_i2c(path, *address),
        Link::Dfu { vid, pid } => {
            #[cfg(feature = "usb")]
            {
                Ok(Box::new(Mapped(open_dfu(*vid, *pid)?, Host::Dfu)))
            }
            #[cfg(not(feature = "usb"))]
            {
                let _ = (vid, pid);
                Err(OpenError::Unsupported("built without USB DFU support"))
            }
        }
    }
}

/// Runs the exit sequence, if any, once `target` is closed (the port is opened again).
pub fn close(t: &Transport, target: AnyTarget) -> Result<(), OpenError> {
    drop(target);
    match (&t.exit, &t.link) {
        (Some(seq), Link::Serial { path, parity_even }) => {
            #[cfg(feature = "serialport")]
            {
                let mut link = serial_link(path, t.usart.baud, *parity_even)?;
                run_lines(&mut link, seq)
            }
            #[cfg(not(feature = "serialport"))]
            {
                let _ = (seq, path, parity_even);
                Err(OpenError::Unsupported("built without serial port support"))
            }
        }
        _ => Ok(()),
    }
}

#[cfg(feature = "serialport")]
fn serial_link(
    path: &str,
    baud: u32,
    parity_even: bool,
) -> Result<crate::link::SerialPortLink, OpenError> {
    crate::link::SerialPortLink::open(path, baud, !parity_even).map_err(|e| OpenError::Io {
        what: path.into(),
        source: e.into(),
    })
}

#[cfg(feature = "serialport")]
fn run_lines(link: &mut crate::link::SerialPortLink, seq: &LineSequence) -> Result<(), OpenError> {
    let (mut dtr, mut rts) = (false, false);
    for step in &seq.0 {
        match *step {
            LineStep::Dtr(on) => dtr = on,
            LineStep::Rts(on) => rts = on,
        }
        // serialport asserts a line with `true`; "high" in stm32flash's sense is asserted.
        link.set_lines(dtr, rts).map_err(|e| OpenError::Io {
            what: "modem lines".into(),
            source: e.into(),
        })?;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

fn open_serial(path: &str, parity_even: bool, t: &Transport) -> Result<AnyTarget, OpenError> {
    #[cfg(feature = "serialport")]
    {
        let mut link = serial_link(path, t.usart.baud, parity_even)?;
        if let Some(seq) = &t.entry {
            run_lines(&mut link, seq)?;
        }
        let host = Usart::connect(link, t.usart).map_err(|e| HostError::new(Host::Usart, e))?;
        Ok(Box::new(Mapped(host, Host::Usart)))
    }
    #[cfg(not(feature = "serialport"))]
    {
        let _ = (path, parity_even, t);
        Err(OpenError::Unsupported("built without serial port support"))
    }
}

/// A DfuSe device's internal-flash alternate setting over USB.
#[cfg(feature = "usb")]
pub type UsbDfuTarget =
    crate::dfuse::DfuseTarget<crate::dfuse::usb::NusbTransport, crate::dfuse::usb::StdDelay>;

/// Opens the ROM's internal-flash alternate setting of DFU device `vid:pid`.
#[cfg(feature = "usb")]
pub fn open_dfu(vid: u16, pid: u16) -> Result<UsbDfuTarget, OpenError> {
    use crate::dfuse::usb::{open_target, OpenError as UsbOpen};
    match open_target(vid, pid, "Internal Flash", None) {
        Ok(t) => Ok(t),
        Err(UsbOpen::NotFound { vid, pid }) => Err(OpenError::DfuNotFound { vid, pid }),
        // ENOENT while listing or opening: no USB bus here, or the device went away.
        Err(UsbOpen::Usb(e)) if e.os_error() == Some(2) => Err(OpenError::DfuNotFound { vid, pid }),
        Err(e) => Err(OpenError::DfuOpen(e.to_string())),
    }
}

#[cfg(all(feature = "linux-i2c", target_os = "linux"))]
fn open_i2c(path: &str, address: Option<u8>) -> Result<AnyTarget, OpenError> {
    use crate::an4221::{self, linux::LinuxOpenError};
    // Without an address, try the addresses AN2606 gives for the known parts, in table order.
    let mut candidates: Vec<u8> = Vec::new();
    match address {
        Some(a) => candidates.push(a),
        None => {
            for a in crate::DEVICES.iter().filter_map(|d| d.i2c_address) {
                if !candidates.contains(&a) {
                    candidates.push(a);
                }
            }
        }
    }
    for &a in &candidates {
        match an4221::linux::open(path, a) {
            Ok((host, _info)) => return Ok(Box::new(Mapped(host, Host::I2c))),
            Err(LinuxOpenError::Open { source, .. }) => {
                return Err(OpenError::I2cOpen {
                    path: path.into(),
                    reason: source.to_string(),
                })
            }
            Err(LinuxOpenError::Protocol(an4221::I2cError::NoAnswer { .. }))
                if address.is_none() => {}
            Err(LinuxOpenError::Protocol(e)) => return Err(HostError::new(Host::I2c, e).into()),
        }
    }
    let tried = candidates
        .iter()
        .map(|a| format!("{a:#04x}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(OpenError::I2cNoAnswer {
        path: path.into(),
        tried,
    })
}

#[cfg(not(all(feature = "linux-i2c", target_os = "linux")))]
fn open_i2c(path: &str, _address: Option<u8>) -> Result<AnyTarget, OpenError> {
    Err(OpenError::I2cOpen {
        path: path.into(),
        reason: "I2C is supported on Linux only (i2c-dev)".into(),
    })
}
