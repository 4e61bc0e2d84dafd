//! `std` adapters from real byte streams to [`SerialLink`]: a TCP stream (the virtual device's
//! `--tcp` endpoint, ser2net-style bridges) and, with the `serialport` feature, a serial port.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::an3155::SerialLink;

/// Reads into `buf` until full or `timeout_ms` has passed, via a per-read timeout setter.
fn read_with_deadline<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    timeout_ms: u32,
    mut set_timeout: impl FnMut(&mut R, Duration) -> io::Result<()>,
) -> io::Result<usize> {
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    let mut got = 0;
    while got < buf.len() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        set_timeout(reader, (deadline - now).max(Duration::from_millis(1)))?;
        match reader.read(&mut buf[got..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "link closed")),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A raw TCP byte stream (no telnet/RFC 2217 negotiation).
pub struct TcpLink {
    stream: TcpStream,
}

impl TcpLink {
    /// Connects to `addr` (`host:port`), e.g. a ser2net port or the virtual device.
    pub fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(TcpLink { stream })
    }

    /// Wraps a stream that is already connected (a socket a server accepted).
    pub fn from_stream(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(TcpLink { stream })
    }
}

impl SerialLink for TcpLink {
    type Error = io::Error;

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)
    }

    fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> io::Result<usize> {
        read_with_deadline(&mut self.stream, buf, timeout_ms, |s, t| {
            s.set_read_timeout(Some(t))
        })
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.stream.set_nonblocking(true)?;
        let mut sink = [0u8; 256];
        let result = loop {
            match self.stream.read(&mut sink) {
                Ok(0) => break Err(io::Error::new(io::ErrorKind::UnexpectedEof, "link closed")),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        self.stream.set_nonblocking(false)?;
        result
    }

    fn delay_ms(&mut self, ms: u32) {
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
    }
}

#[cfg(feature = "serialport")]
pub use serial::SerialPortLink;

#[cfg(feature = "serialport")]
mod serial {
    use super::*;
    use serialport::{ClearBuffer, DataBits, Parity, SerialPort, StopBits};

    /// A serial port (USB-UART adapter, pty) in the AN3155 line format.
    pub struct SerialPortLink {
        port: Box<dyn SerialPort>,
    }

    impl SerialPortLink {
        /// Opens `path` at `baud`, 8 data bits, 1 stop bit, even parity unless `parity_none`
        /// (a pty, or an adapter that cannot do parity).
        pub fn open(path: &str, baud: u32, parity_none: bool) -> serialport::Result<Self> {
            let port = serialport::new(path, baud)
                .data_bits(DataBits::Eight)
                .parity(if parity_none {
                    Parity::None
                } else {
                    Parity::Even
                })
                .stop_bits(StopBits::One)
                .timeout(Duration::from_millis(100))
                .open()?;
            Ok(SerialPortLink { port })
        }

        /// The port itself, for settings this type does not cover (baud, timeouts).
        pub fn port_mut(&mut self) -> &mut dyn SerialPort {
            self.port.as_mut()
        }

        /// Sets DTR and RTS (for BOOT0/NRST entry circuits).
        pub fn set_lines(&mut self, dtr: bool, rts: bool) -> serialport::Result<()> {
            self.port.write_data_terminal_ready(dtr)?;
            self.port.write_request_to_send(rts)
        }
    }

    impl SerialLink for SerialPortLink {
        type Error = io::Error;

        fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
            // No flush: it is tcdrain(), which on a pty (and some USB-UART drivers) sleeps a
            // scheduler tick per call; the bytes are already in the kernel's queue.
            self.port.write_all(data)
        }

        fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> io::Result<usize> {
            read_with_deadline(&mut self.port, buf, timeout_ms, |p, t| {
                p.set_timeout(t).map_err(io::Error::from)
            })
        }

        fn discard_input(&mut self) -> io::Result<()> {
            self.port.clear(ClearBuffer::Input).map_err(io::Error::from)
        }

        fn delay_ms(&mut self, ms: u32) {
            std::thread::sleep(Duration::from_millis(u64::from(ms)));
        }
    }
}
