//! A pseudo-terminal for serial tools: the device holds the master side, tools open the slave
//! (its path, or a symlink to it) as they would a USB-UART.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use crate::rom::usart::LineParams;
use nix::pty::openpty;
use nix::sys::termios::{self, SetArg};

/// A raw-mode pseudo-terminal pair: the device serves on `master`; clients open `slave_path`.
pub struct Pty {
    /// The device's side: what the server reads and writes.
    pub master: File,
    /// Held open so the master never sees a hang-up between clients.
    slave: OwnedFd,
    /// Path of the client side (`/dev/pts/N`), for tools to open as a serial port.
    pub slave_path: PathBuf,
}

/// Reads the client's line settings from the slave side.
pub struct LineProbe {
    slave: OwnedFd,
    default_baud: u32,
}

/// Opens a new pty with its slave in raw mode (no echo, no line editing).
pub fn open() -> std::io::Result<Pty> {
    let pair = openpty(None, None).map_err(std::io::Error::from)?;
    // SAFETY: openpty just returned these two descriptors and nothing else owns them.
    let (master, slave) = unsafe {
        (
            OwnedFd::from_raw_fd(pair.master),
            OwnedFd::from_raw_fd(pair.slave),
        )
    };
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))?;
    let mut t = termios::tcgetattr(slave.as_raw_fd()).map_err(std::io::Error::from)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(slave.as_raw_fd(), SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
    Ok(Pty {
        master: File::from(master),
        slave,
        slave_path,
    })
}

impl Pty {
    /// A probe of the baud and framing the client sets; `default_baud` when it sets none.
    pub fn line_probe(&self, default_baud: u32) -> std::io::Result<LineProbe> {
        Ok(LineProbe {
            slave: self.slave.as_fd().try_clone_to_owned()?,
            default_baud,
        })
    }
}

impl LineProbe {
    /// Baud and bits per byte the client set. Read with TCGETS2: serialport-based clients
    /// set arbitrary rates (BOTHER), which the classic termios speed codes cannot express.
    pub fn params(&self) -> LineParams {
        // SAFETY: TCGETS2 fills a `termios2` we own; the descriptor is open for our life.
        let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TCGETS2, &mut t) };
        if r != 0 {
            return LineParams {
                baud: self.default_baud,
                bits_per_byte: 11,
            };
        }
        let mut bits = 10;
        if t.c_cflag & libc::PARENB != 0 {
            bits += 1;
        }
        if t.c_cflag & libc::CSTOPB != 0 {
            bits += 1;
        }
        let baud = if t.c_ospeed > 0 {
            t.c_ospeed
        } else {
            self.default_baud
        };
        LineParams {
            baud,
            bits_per_byte: bits,
        }
    }
}
