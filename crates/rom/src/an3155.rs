//! AN3155 host: the USART protocol of the STM32 ROM bootloader.
//!
//! `no_std`, no allocation, generic over a [`SerialLink`] (a byte stream with read timeouts
//! and a delay). Every command of the protocol is here: Get, Get Version, Get ID, Read
//! Memory, Go, Write Memory, Erase (0x43) and Extended Erase (0x44, incl. mass and bank
//! erase), Write Protect/Unprotect, Readout Protect/Unprotect and Get Checksum (0xA1).
//!
//! Guarantees:
//! * a write is reported done only after the device's final ACK, or after reading the block
//!   back when that ACK was lost; never a silently partial write;
//! * a NACK, a timeout, a stray byte or a device that stops answering ends in a named
//!   [`Error`]; reads and erases, and writes whose data the device refused, are retried after
//!   a resync ([`Config::retries`] times);
//! * timeouts scale with the work: line time at [`Config::baud`], the part's maximum erase
//!   time per page, 35 s for a mass erase.
//!
//! Byte layouts follow ST AN3155, checked against stm32flash and ST's Open Bootloader.

use crate::device::{self, Quirks, RomDevice};
use crate::target::{Erase, ReadProtection, RomTarget, TargetInfo};

/// ACK: the device accepted the frame, or finished the work it started.
pub const ACK: u8 = 0x79;
/// NACK: the device refused the frame (bad checksum or address, command not allowed
/// under read-out protection).
pub const NACK: u8 = 0x1F;
/// BUSY: a no-stretch command (I2C/SPI) is still running; polled through like a late ACK.
pub const BUSY: u8 = 0x76;
/// The host's autobaud byte, sent once after reset; the ROM measures the baud rate from it and
/// answers ACK.
pub const SYNC: u8 = 0x7F;

/// Command codes.
pub mod cmd {
    /// Get: protocol version and the command codes this bootloader offers.
    pub const GET: u8 = 0x00;
    /// Get Version: protocol version, plus two option bytes on USART.
    pub const GET_VERSION: u8 = 0x01;
    /// Get ID: the product ID (PID, e.g. 0x413 for F405/F407) as 2 big-endian bytes.
    pub const GET_ID: u8 = 0x02;
    /// Read Memory: 1..=256 bytes from an address; NACKed under read-out protection.
    pub const READ_MEMORY: u8 = 0x11;
    /// Go: load MSP from the address and jump to the reset vector at address + 4.
    pub const GO: u8 = 0x21;
    /// Write Memory: 1..=256 bytes to a 4-aligned address in RAM or flash.
    pub const WRITE_MEMORY: u8 = 0x31;
    /// Erase (legacy): 1-byte page count and page numbers, or 0xFF for a global erase.
    pub const ERASE: u8 = 0x43;
    /// Extended Erase: 2-byte page count and page numbers, or 0xFFFF / 0xFFFE / 0xFFFD for
    /// mass / bank 1 / bank 2 erase.
    pub const EXTENDED_ERASE: u8 = 0x44;
    /// Write Protect: protect the listed sectors; the device resets afterwards.
    pub const WRITE_PROTECT: u8 = 0x63;
    /// Write Unprotect: remove write protection from all of flash; the device resets.
    pub const WRITE_UNPROTECT: u8 = 0x73;
    /// Readout Protect: enable read-out protection; the device resets.
    pub const READOUT_PROTECT: u8 = 0x82;
    /// Readout Unprotect: disable read-out protection, which mass-erases the flash; the device
    /// resets.
    pub const READOUT_UNPROTECT: u8 = 0x92;
    /// Get Checksum: the device's CRC-32 (STM32 CRC unit) of a 4-aligned region; optional.
    pub const GET_CHECKSUM: u8 = 0xA1;
}

/// A serial byte stream with timeouts: what the host needs from a UART.
///
/// Implemented for `serialport` ports and TCP streams in `brickless`'s `std` side, and by an
/// MCU's UART driver when one STM32 programs another.
pub trait SerialLink {
    /// What the UART driver or port reports when a transfer fails.
    type Error: core::fmt::Debug;
    /// Sends every byte of `data`.
    fn write_all(&mut self, data: &[u8]) -> Result<(), Self::Error>;
    /// Reads until `buf` is full or `timeout_ms` has passed since the call; returns the count.
    fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, Self::Error>;
    /// Drops bytes received but not read yet.
    fn discard_input(&mut self) -> Result<(), Self::Error>;
    /// Waits `ms` milliseconds (after a reset-causing command).
    fn delay_ms(&mut self, ms: u32);
}

/// The protocol step an error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// 0x7F autobaud.
    Sync,
    /// The 2-byte command frame.
    Command(u8),
    /// The address frame of a command.
    Address(u8),
    /// The length/count frame of a command.
    Length(u8),
    /// The data frame (write data, page list, …) or its completion.
    Data(u8),
    /// Bytes the device sends back (Get, Get ID, Read Memory data, checksum).
    Reply(u8),
}

/// What went wrong talking to the ROM bootloader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The link itself failed (port closed, I/O error).
    Link(E),
    /// The device did not answer within the step's timeout.
    Timeout(Step),
    /// The device refused the step (NACK).
    Nack(Step),
    /// A byte that is neither ACK nor NACK arrived (line noise, wrong baud or parity).
    UnexpectedByte(Step, u8),
    /// No answer to 0x7F: not in the bootloader, wrong port, or wrong line settings.
    NoSync,
    /// Read Memory or Write Memory refused at the command: read-out protection is active.
    ReadProtected,
    /// The device does not list the command in its Get reply.
    Unsupported(u8),
    /// A malformed reply (e.g. a Get ID of an odd length).
    BadReply(Step),
    /// The device's ACK of a write was lost and the block reads back as neither the data
    /// nor erased flash: it is partly programmed.
    WriteUnconfirmed {
        /// Absolute address of the block's first byte.
        addr: u32,
    },
    /// The caller asked for something the protocol cannot carry.
    InvalidArgument(&'static str),
}

impl<E: core::fmt::Debug> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Link(e) => write!(f, "serial link error: {e:?}"),
            Error::Timeout(s) => write!(f, "device did not answer in time ({s:?})"),
            Error::Nack(s) => write!(f, "device refused the request (NACK at {s:?})"),
            Error::UnexpectedByte(s, b) => write!(f, "unexpected byte {b:#04x} at {s:?}"),
            Error::NoSync => write!(f, "no answer to the 0x7F sync byte"),
            Error::ReadProtected => write!(f, "read-out protection is active"),
            Error::Unsupported(c) => write!(f, "the bootloader does not offer command {c:#04x}"),
            Error::BadReply(s) => write!(f, "malformed reply at {s:?}"),
            Error::WriteUnconfirmed { addr } => {
                write!(
                    f,
                    "write at {addr:#010x} was not acknowledged and is partly programmed"
                )
            }
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for Error<E> {}

impl<E: core::fmt::Debug> crate::target::TargetError for Error<E> {
    fn kind(&self) -> crate::target::ErrorKind {
        use crate::target::ErrorKind as K;
        match self {
            Error::Link(_) => K::Link,
            Error::Timeout(_) => K::Timeout,
            Error::Nack(_) => K::Nack,
            Error::UnexpectedByte(..) => K::Noise,
            Error::NoSync => K::NoSync,
            Error::ReadProtected => K::ReadProtected,
            Error::Unsupported(_) => K::Unsupported,
            Error::BadReply(_) | Error::WriteUnconfirmed { .. } => K::Protocol,
            Error::InvalidArgument(_) => K::InvalidArgument,
        }
    }
}

impl<E> Error<E> {
    /// True for errors a resync and a second attempt may cure (noise, a lost byte).
    fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout(_) | Error::Nack(_) | Error::UnexpectedByte(..) | Error::BadReply(_)
        )
    }
}

/// Host settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Line rate, to scale timeouts to transfer time (0: ignore).
    pub baud: u32,
    /// Bits per byte on the line: 11 for 8E1, 10 for 8N1.
    pub bits_per_byte: u32,
    /// Time the device may take to answer one frame, on top of line time.
    pub ack_timeout_ms: u32,
    /// Attempts after the first for a failed read, erase or refused write.
    pub retries: u8,
    /// Send a command's frames back to back and collect the ACKs afterwards: one round trip
    /// per command instead of three. Works on the virtual device and on UART bootloaders that
    /// keep up; a failure falls back to the strict exchange for that command.
    pub pipeline: bool,
    /// Skip the 0x7F sync (the bootloader was synced before; stm32flash's `-c`).
    pub no_sync: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            baud: 115_200,
            bits_per_byte: 11,
            ack_timeout_ms: 500,
            retries: 2,
            pipeline: false,
            no_sync: false,
        }
    }
}

/// The command list from Get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commands {
    codes: [u8; 32],
    len: u8,
}

impl Commands {
    /// The command codes in the order Get listed them (at most 32 kept).
    pub fn as_slice(&self) -> &[u8] {
        &self.codes[..usize::from(self.len).min(32)]
    }

    /// True when Get listed `code` (see [`cmd`]).
    pub fn contains(&self, code: u8) -> bool {
        self.as_slice().contains(&code)
    }
}

/// A connected AN3155 bootloader.
pub struct Usart<L: SerialLink> {
    link: L,
    config: Config,
    commands: Commands,
    info: TargetInfo,
    options: [u8; 2],
}

type Res<T, L> = Result<T, Error<<L as SerialLink>::Error>>;

fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

fn address_frame(addr: u32) -> [u8; 5] {
    let b = addr.to_be_bytes();
    [b[0], b[1], b[2], b[3], xor(&b)]
}

impl<L: SerialLink> Usart<L> {
    /// Syncs (unless [`Config::no_sync`]), then reads Get, Get Version and Get ID.
    pub fn connect(link: L, config: Config) -> Res<Self, L> {
        let mut host = Usart {
            link,
            config,
            commands: Commands {
                codes: [0; 32],
                len: 0,
            },
            info: TargetInfo {
                pid: 0,
                protocol_version: 0,
                device: None,
                read_protection: ReadProtection::Unknown,
            },
            options: [0; 2],
        };
        if !config.no_sync {
            host.sync()?;
        }
        host.retrying(|h| h.get())?;
        if host.commands.contains(cmd::GET_VERSION) {
            let (_, opt1, opt2) = host.retrying(|h| h.get_version())?;
            host.options = [opt1, opt2];
        }
        let pid = host.retrying(|h| h.get_id())?;
        host.info.pid = pid;
        host.info.device = device::by_pid(pid);
        Ok(host)
    }

    /// Gives the link back.
    pub fn into_link(self) -> L {
        self.link
    }

    /// The link, for what the protocol does not cover (line settings, fault injection in tests).
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Commands the bootloader offers (from Get).
    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    /// The two option bytes Get Version returned (0 on bootloaders that do not fill them).
    pub fn option_bytes(&self) -> [u8; 2] {
        self.options
    }

    /// The settings this host was connected with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn device(&self) -> Option<&'static RomDevice> {
        self.info.device
    }

    fn quirk(&self, q: Quirks) -> bool {
        self.device().is_some_and(|d| d.quirks.contains(q))
    }

    /// Milliseconds to move `bytes` over the line.
    fn line_ms(&self, bytes: usize) -> u32 {
        if self.config.baud == 0 {
            return 0;
        }
        let bits = bytes as u64 * u64::from(self.config.bits_per_byte.max(10)) * 1000;
        u32::try_from(bits / u64::from(self.config.baud) + 1).unwrap_or(u32::MAX)
    }

    fn send(&mut self, data: &[u8]) -> Res<(), L> {
        self.link.write_all(data).map_err(Error::Link)
    }

    fn read_exact(&mut self, buf: &mut [u8], step: Step, timeout_ms: u32) -> Res<(), L> {
        let timeout = timeout_ms.saturating_add(self.line_ms(buf.len()));
        let n = self.link.read(buf, timeout).map_err(Error::Link)?;
        if n < buf.len() {
            return Err(Error::Timeout(step));
        }
        Ok(())
    }

    /// Waits for ACK; BUSY bytes (I2C/SPI style) extend the wait.
    fn wait_ack(&mut self, step: Step, timeout_ms: u32) -> Res<(), L> {
        let mut busy = 0u32;
        loop {
            let mut b = [0u8];
            self.read_exact(&mut b, step, timeout_ms)?;
            match b[0] {
                ACK => return Ok(()),
                NACK => return Err(Error::Nack(step)),
                BUSY if busy < 10_000 => busy += 1,
                other => return Err(Error::UnexpectedByte(step, other)),
            }
        }
    }

    fn command(&mut self, code: u8) -> Res<(), L> {
        self.send(&[code, code ^ 0xFF])?;
        self.wait_ack(Step::Command(code), self.config.ack_timeout_ms)
    }

    fn require(&self, code: u8) -> Res<(), L> {
        // Before Get has answered, everything is allowed.
        if self.commands.len == 0 || self.commands.contains(code) {
            Ok(())
        } else {
            Err(Error::Unsupported(code))
        }
    }

    /// Runs `op`, resyncing and retrying on transient errors.
    fn retrying<T>(&mut self, mut op: impl FnMut(&mut Self) -> Res<T, L>) -> Res<T, L> {
        let mut attempt = 0;
        loop {
            match op(self) {
                Err(e) if e.is_transient() && attempt < self.config.retries => {
                    attempt += 1;
                    self.resync()?;
                }
                other => return other,
            }
        }
    }

    /// Sends 0x7F until the bootloader answers (ACK: fresh; NACK: it was synced already).
    pub fn sync(&mut self) -> Res<(), L> {
        for _ in 0..3 {
            self.link.discard_input().map_err(Error::Link)?;
            self.send(&[SYNC])?;
            let mut b = [0u8];
            let n = self
                .link
                .read(&mut b, self.config.ack_timeout_ms)
                .map_err(Error::Link)?;
            if n == 1 && (b[0] == ACK || b[0] == NACK) {
                // Some bootloaders answer with two ACKs (L412/422 V13.1): drop a second one.
                let mut extra = [0u8];
                let _ = self.link.read(&mut extra, 10).map_err(Error::Link)?;
                return Ok(());
            }
        }
        Err(Error::NoSync)
    }

    /// Brings the device back to "waiting for a command" after a failed exchange.
    ///
    /// The filler byte 0xFE can never complete a frame with a valid checksum (an even byte
    /// repeated an odd number of times XORs to zero, never to itself), so it cannot start a
    /// write or an erase by accident. Single fillers are sent until one NACK answers: the
    /// device then sits at a command boundary (a pending filler was taken as a command byte
    /// and refused by its complement). A device still deep inside a frame gets bursts.
    pub fn resync(&mut self) -> Res<(), L> {
        const FILL: u8 = 0xFE;
        let wait = self.config.ack_timeout_ms.clamp(20, 100) + self.line_ms(1);
        let mut silent = 0u32;
        for _ in 0..24 {
            self.drain()?;
            self.send(&[FILL])?;
            let mut b = [0u8];
            let n = self.link.read(&mut b, wait).map_err(Error::Link)?;
            if n == 0 {
                silent += 1;
                // Two silent fillers: not a pending command byte, so inside a long frame.
                if silent >= 2 {
                    self.send(&[FILL; 64])?;
                    self.link.delay_ms(wait + self.line_ms(64));
                    silent = 0;
                }
                continue;
            }
            silent = 0;
            if b[0] == NACK {
                let more = self
                    .link
                    .read(&mut b, 20 + self.line_ms(1))
                    .map_err(Error::Link)?;
                if more == 0 {
                    return Ok(());
                }
            }
        }
        Err(Error::Timeout(Step::Sync))
    }

    fn drain(&mut self) -> Res<(), L> {
        self.link.discard_input().map_err(Error::Link)?;
        let mut sink = [0u8; 64];
        while self.link.read(&mut sink, 5).map_err(Error::Link)? > 0 {}
        Ok(())
    }

    /// Get (0x00): protocol version and the supported commands.
    pub fn get(&mut self) -> Res<(u8, Commands), L> {
        self.command(cmd::GET)?;
        let mut n = [0u8];
        self.read_exact(&mut n, Step::Reply(cmd::GET), self.config.ack_timeout_ms)?;
        let count = usize::from(n[0]) + 1;
        let mut buf = [0u8; 256];
        let reply = buf
            .get_mut(..count)
            .ok_or(Error::BadReply(Step::Reply(cmd::GET)))?;
        self.read_exact(reply, Step::Reply(cmd::GET), self.config.ack_timeout_ms)?;
        self.wait_ack(Step::Reply(cmd::GET), self.config.ack_timeout_ms)?;
        let version = reply[0];
        let codes = &reply[1..];
        let mut commands = Commands {
            codes: [0; 32],
            len: 0,
        };
        for (slot, code) in commands.codes.iter_mut().zip(codes) {
            *slot = *code;
            commands.len += 1;
        }
        self.commands = commands;
        self.info.protocol_version = version;
        Ok((version, commands))
    }

    /// Get Version (0x01): version and the two option bytes (UART returns 3 bytes).
    pub fn get_version(&mut self) -> Res<(u8, u8, u8), L> {
        self.require(cmd::GET_VERSION)?;
        self.command(cmd::GET_VERSION)?;
        let mut b = [0u8; 3];
        self.read_exact(
            &mut b,
            Step::Reply(cmd::GET_VERSION),
            self.config.ack_timeout_ms,
        )?;
        self.wait_ack(Step::Reply(cmd::GET_VERSION), self.config.ack_timeout_ms)?;
        Ok((b[0], b[1], b[2]))
    }

    /// Get ID (0x02): the product ID.
    pub fn get_id(&mut self) -> Res<u16, L> {
        self.command(cmd::GET_ID)?;
        let mut n = [0u8];
        self.read_exact(&mut n, Step::Reply(cmd::GET_ID), self.config.ack_timeout_ms)?;
        let mut buf = [0u8; 256];
        let count = usize::from(n[0]) + 1;
        let reply = buf
            .get_mut(..count)
            .ok_or(Error::BadReply(Step::Reply(cmd::GET_ID)))?;
        self.read_exact(reply, Step::Reply(cmd::GET_ID), self.config.ack_timeout_ms)?;
        self.wait_ack(Step::Reply(cmd::GET_ID), self.config.ack_timeout_ms)?;
        if count < 2 {
            return Err(Error::BadReply(Step::Reply(cmd::GET_ID)));
        }
        // The PID is the first two bytes; stm32flash warns about and ignores any more.
        Ok(u16::from_be_bytes([reply[0], reply[1]]))
    }

    fn read_once(&mut self, addr: u32, buf: &mut [u8]) -> Res<(), L> {
        let len = buf.len();
        let n = (len - 1) as u8;
        let timeout = self.config.ack_timeout_ms;
        if self.config.pipeline {
            let a = address_frame(addr);
            self.send(&[
                cmd::READ_MEMORY,
                !cmd::READ_MEMORY,
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                n,
                !n,
            ])?;
            self.read_ack_or_protected(timeout)?;
        } else {
            self.command_or_protected(cmd::READ_MEMORY)?;
            self.send(&address_frame(addr))?;
        }
        self.wait_ack(Step::Address(cmd::READ_MEMORY), timeout)?;
        if !self.config.pipeline {
            self.send(&[n, !n])?;
        }
        self.wait_ack(Step::Length(cmd::READ_MEMORY), timeout)?;
        self.read_exact(buf, Step::Reply(cmd::READ_MEMORY), timeout)
    }

    fn command_or_protected(&mut self, code: u8) -> Res<(), L> {
        self.send(&[code, code ^ 0xFF])?;
        self.read_ack_or_protected_for(code, self.config.ack_timeout_ms)
    }

    fn read_ack_or_protected(&mut self, timeout: u32) -> Res<(), L> {
        self.read_ack_or_protected_for(cmd::READ_MEMORY, timeout)
    }

    /// Read and Write Memory are refused at the command byte when RDP is active.
    fn read_ack_or_protected_for(&mut self, code: u8, timeout: u32) -> Res<(), L> {
        match self.wait_ack(Step::Command(code), timeout) {
            Err(Error::Nack(_)) => {
                self.info.read_protection = ReadProtection::Active;
                Err(Error::ReadProtected)
            }
            other => other,
        }
    }

    fn write_once(&mut self, addr: u32, frame: &[u8]) -> Res<(), L> {
        let timeout = self.config.ack_timeout_ms;
        if self.config.pipeline {
            let a = address_frame(addr);
            self.send(&[
                cmd::WRITE_MEMORY,
                !cmd::WRITE_MEMORY,
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
            ])?;
            self.send(frame)?;
            self.read_ack_or_protected_for(cmd::WRITE_MEMORY, timeout)?;
            self.wait_ack(Step::Address(cmd::WRITE_MEMORY), timeout)?;
        } else {
            self.command_or_protected(cmd::WRITE_MEMORY)?;
            self.send(&address_frame(addr))?;
            self.wait_ack(Step::Address(cmd::WRITE_MEMORY), timeout)?;
            self.send(frame)?;
        }
        // Programming 256 bytes takes up to ~1 s on the slowest parts (L0 word writes).
        let program_ms = self.program_time_ms(frame.len().saturating_sub(2));
        self.wait_ack(Step::Data(cmd::WRITE_MEMORY), timeout + program_ms)
    }

    fn program_time_ms(&self, bytes: usize) -> u32 {
        let (unit, max_us) = self.device().map_or((4, 1000), |d| {
            (d.write_unit().max(1), d.geometry.timing.program_unit_max_us)
        });
        let units = (bytes as u32).div_ceil(unit);
        (units.saturating_mul(max_us) / 1000)
            .saturating_mul(2)
            .max(100)
    }

    /// After an uncertain write (lost final ACK): the block is either written, untouched or
    /// partly written. Only the first two are safe to report or retry.
    fn write_outcome(&mut self, addr: u32, data: &[u8]) -> Res<WriteOutcome, L> {
        let mut buf = [0u8; 256];
        let back = buf
            .get_mut(..data.len())
            .ok_or(Error::InvalidArgument("block over 256 bytes"))?;
        self.retrying(|h| h.read_once(addr, back))?;
        let back = &buf[..data.len()];
        let erased = self.device().map_or(0xFF, |d| d.geometry.erased);
        if back == data {
            Ok(WriteOutcome::Written)
        } else if back.iter().all(|&b| b == erased) {
            Ok(WriteOutcome::Untouched)
        } else {
            Ok(WriteOutcome::Partial)
        }
    }

    /// Checksum of the range from the device (0xA1), as stm32flash sends it.
    fn checksum_once(&mut self, addr: u32, len: u32) -> Res<u32, L> {
        self.command(cmd::GET_CHECKSUM)?;
        self.send(&address_frame(addr))?;
        self.wait_ack(Step::Address(cmd::GET_CHECKSUM), self.config.ack_timeout_ms)?;
        self.send(&address_frame(len))?;
        // The device reads every byte: allow ~1 s per MiB.
        let work = self.config.ack_timeout_ms + len / 1024;
        self.wait_ack(Step::Length(cmd::GET_CHECKSUM), work)?;
        self.wait_ack(Step::Reply(cmd::GET_CHECKSUM), work)?;
        let mut b = [0u8; 5];
        self.read_exact(
            &mut b,
            Step::Reply(cmd::GET_CHECKSUM),
            self.config.ack_timeout_ms,
        )?;
        if xor(&b[..4]) != b[4] {
            return Err(Error::BadReply(Step::Reply(cmd::GET_CHECKSUM)));
        }
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn erase_timeout_ms(&self, pages: &[u16]) -> u32 {
        let Some(d) = self.device() else {
            // stm32flash: 5 s per page.
            return (pages.len() as u32).saturating_mul(5000).max(5000);
        };
        let kib: u32 = pages
            .iter()
            .filter_map(|&p| d.page(p))
            .map(|s| s.size / 1024)
            .sum();
        let kib = kib.max(pages.len() as u32); // sub-KiB pages (L0) still cost one unit
        let us = u64::from(kib) * u64::from(d.geometry.timing.erase_per_kib_max_us);
        // Twice the datasheet maximum, at least one second.
        u32::try_from(us * 2 / 1000).unwrap_or(u32::MAX).max(1000) + self.config.ack_timeout_ms
    }

    fn mass_erase_timeout_ms(&self) -> u32 {
        let computed = self.device().map_or(0, |d| {
            let kib = u64::from(d.geometry.total_size() / 1024);
            u32::try_from(kib * u64::from(d.geometry.timing.erase_per_kib_max_us) * 2 / 1000)
                .unwrap_or(u32::MAX)
        });
        // stm32flash's 35 s ("datasheet says up to 32 seconds" on F4).
        computed.max(35_000)
    }

    fn erase_pages_once(&mut self, pages: &[u16]) -> Res<(), L> {
        let timeout = self.erase_timeout_ms(pages);
        if self.commands.contains(cmd::EXTENDED_ERASE) {
            let mut frame = [0u8; 2 + 2 * 64 + 1];
            let n = (pages.len() - 1) as u16;
            frame[..2].copy_from_slice(&n.to_be_bytes());
            for (i, p) in pages.iter().enumerate() {
                frame[2 + 2 * i..4 + 2 * i].copy_from_slice(&p.to_be_bytes());
            }
            let end = 2 + 2 * pages.len();
            frame[end] = xor(&frame[..end]);
            self.command(cmd::EXTENDED_ERASE)?;
            self.send(&frame[..=end])?;
            self.wait_ack(Step::Data(cmd::EXTENDED_ERASE), timeout)
        } else {
            let mut frame = [0u8; 1 + 64 + 1];
            frame[0] = (pages.len() - 1) as u8;
            for (i, p) in pages.iter().enumerate() {
                frame[1 + i] = u8::try_from(*p)
                    .map_err(|_| Error::InvalidArgument("legacy erase reaches page 255 only"))?;
            }
            let end = 1 + pages.len();
            frame[end] = xor(&frame[..end]);
            self.require(cmd::ERASE)?;
            self.command(cmd::ERASE)?;
            self.send(&frame[..=end])?;
            self.wait_ack(Step::Data(cmd::ERASE), timeout)
        }
    }

    fn erase_special_once(&mut self, code: u16) -> Res<(), L> {
        let timeout = self.mass_erase_timeout_ms();
        if self.commands.contains(cmd::EXTENDED_ERASE) {
            let b = code.to_be_bytes();
            self.command(cmd::EXTENDED_ERASE)?;
            self.send(&[b[0], b[1], b[0] ^ b[1]])?;
            self.wait_ack(Step::Data(cmd::EXTENDED_ERASE), timeout)
        } else if code == 0xFFFF {
            self.require(cmd::ERASE)?;
            self.command(cmd::ERASE)?;
            self.send(&[0xFF, 0x00])?;
            self.wait_ack(Step::Data(cmd::ERASE), timeout)
        } else {
            Err(Error::Unsupported(cmd::EXTENDED_ERASE))
        }
    }

    /// Erases pages `first..first + count`, in batches the device accepts.
    fn erase_page_span(&mut self, first: u16, count: u32) -> Res<(), L> {
        let per = if self.quirk(Quirks::ERASE_ONE_PAGE_PER_COMMAND) {
            1
        } else {
            64
        };
        let mut list = [0u16; 64];
        let mut done = 0u32;
        while done < count {
            let n = (count - done).min(per) as usize;
            for (i, slot) in list[..n].iter_mut().enumerate() {
                *slot = u16::try_from(u32::from(first) + done + i as u32)
                    .map_err(|_| Error::InvalidArgument("page number over 65535"))?;
            }
            let batch = &list[..n];
            self.retrying(|h| h.erase_pages_once(batch))?;
            done += n as u32;
        }
        Ok(())
    }

    /// Waits for the reset that follows an option-byte command and syncs again.
    fn resync_after_reset(&mut self, settle_ms: u32, total_ms: u32) -> Res<(), L> {
        self.link.delay_ms(settle_ms);
        let mut waited = settle_ms;
        loop {
            match self.sync() {
                Ok(()) => return Ok(()),
                Err(Error::NoSync) if waited < total_ms => {
                    self.link.delay_ms(500);
                    waited += 500 + 3 * self.config.ack_timeout_ms;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn simple_reset_command(&mut self, code: u8, ack_ms: u32) -> Res<(), L> {
        self.require(code)?;
        self.command(code)?;
        self.wait_ack(Step::Data(code), ack_ms)
    }
}

enum WriteOutcome {
    Written,
    Untouched,
    Partial,
}

impl<L: SerialLink> RomTarget for Usart<L> {
    type Error = Error<L::Error>;

    fn info(&self) -> TargetInfo {
        self.info
    }

    fn max_transfer(&self) -> usize {
        256
    }

    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        if buf.is_empty() || buf.len() > 256 {
            return Err(Error::InvalidArgument("read length must be 1..=256"));
        }
        self.require(cmd::READ_MEMORY)?;
        self.retrying(|h| {
            let r = h.read_once(addr, buf);
            // A pipelined frame that failed is repeated strictly.
            if r.is_err() && h.config.pipeline {
                h.config.pipeline = false;
                h.resync()?;
                let again = h.read_once(addr, buf);
                h.config.pipeline = true;
                return again;
            }
            r
        })
    }

    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), Self::Error> {
        if data.is_empty() || data.len() > 256 {
            return Err(Error::InvalidArgument("write length must be 1..=256"));
        }
        if addr % 4 != 0 {
            return Err(Error::InvalidArgument(
                "write address must be 4-byte aligned",
            ));
        }
        self.require(cmd::WRITE_MEMORY)?;
        // Frame: N, data padded to 4 bytes with 0xFF, XOR of all (stm32flash, stm32loader).
        let mut frame = [0u8; 1 + 256 + 1];
        let padded = data.len().div_ceil(4) * 4;
        frame[0] = (padded - 1) as u8;
        frame[1..=data.len()].copy_from_slice(data);
        frame[1 + data.len()..=padded].fill(0xFF);
        frame[padded + 1] = xor(&frame[..=padded]);
        let frame = &frame[..padded + 2];
        let block = &frame[1..=padded];
        let mut attempt = 0;
        loop {
            let err = match self.write_once(addr, frame) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match err {
                Error::ReadProtected | Error::Link(_) => return Err(err),
                // Refused at or before the data: nothing was programmed.
                Error::Nack(_) => {}
                // Command or address lost: nothing was programmed.
                Error::Timeout(s) | Error::UnexpectedByte(s, _) if !matches!(s, Step::Data(_)) => {}
                // The final ACK was lost: find out what the device did.
                Error::Timeout(_) | Error::UnexpectedByte(..) => {
                    self.resync()?;
                    match self.write_outcome(addr, block)? {
                        WriteOutcome::Written => return Ok(()),
                        WriteOutcome::Untouched if attempt < self.config.retries => {
                            attempt += 1;
                            continue;
                        }
                        WriteOutcome::Untouched => return Err(err),
                        WriteOutcome::Partial => return Err(Error::WriteUnconfirmed { addr }),
                    }
                }
                _ => return Err(err),
            }
            if attempt >= self.config.retries {
                return Err(err);
            }
            attempt += 1;
            self.resync()?;
        }
    }

    fn erase(&mut self, what: Erase<'_>) -> Result<(), Self::Error> {
        match what {
            Erase::Pages(pages) => {
                if pages.is_empty() {
                    return Ok(());
                }
                for batch in pages.chunks(if self.quirk(Quirks::ERASE_ONE_PAGE_PER_COMMAND) {
                    1
                } else {
                    64
                }) {
                    self.retrying(|h| h.erase_pages_once(batch))?;
                }
                Ok(())
            }
            Erase::Mass => {
                if self.quirk(Quirks::NO_MASS_ERASE) {
                    let count = self.device().map_or(0, |d| u32::from(d.page_count()));
                    return self.erase_page_span(0, count);
                }
                self.retrying(|h| h.erase_special_once(0xFFFF))
            }
            Erase::Bank(bank) => {
                let d = self
                    .device()
                    .ok_or(Error::InvalidArgument("unknown device: no bank map"))?;
                if usize::from(bank) >= d.geometry.banks.len() {
                    return Err(Error::InvalidArgument("no such bank"));
                }
                let use_pages = !d.dual_bank()
                    || self.quirk(Quirks::NO_BANK_ERASE)
                    || self.quirk(Quirks::NO_MASS_ERASE)
                    || !self.commands.contains(cmd::EXTENDED_ERASE);
                if use_pages {
                    let base = d.geometry.banks[usize::from(bank)].base;
                    let first = d
                        .page_index(base)
                        .ok_or(Error::InvalidArgument("bank map"))?;
                    let count = d.geometry.sectors().filter(|s| s.bank == bank).count() as u32;
                    return self.erase_page_span(first, count);
                }
                let code = if bank == 0 { 0xFFFE } else { 0xFFFD };
                self.retrying(|h| h.erase_special_once(code))
            }
        }
    }

    fn go(&mut self, addr: u32) -> Result<(), Self::Error> {
        self.require(cmd::GO)?;
        self.send(&[cmd::GO, !cmd::GO])?;
        match self.wait_ack(Step::Command(cmd::GO), self.config.ack_timeout_ms) {
            Ok(()) => {}
            // H74x V9.0 skips this ACK.
            Err(Error::Timeout(_)) if self.quirk(Quirks::GO_FIRST_ACK_MAY_BE_MISSING) => {}
            Err(e) => return Err(e),
        }
        self.send(&address_frame(addr))?;
        self.wait_ack(Step::Address(cmd::GO), self.config.ack_timeout_ms)
    }

    fn write_protect(&mut self, sectors: &[u16]) -> Result<(), Self::Error> {
        if sectors.is_empty() || sectors.len() > 256 {
            return Err(Error::InvalidArgument(
                "write protect takes 1..=256 sectors",
            ));
        }
        self.require(cmd::WRITE_PROTECT)?;
        let mut frame = [0u8; 258];
        frame[0] = (sectors.len() - 1) as u8;
        for (i, s) in sectors.iter().enumerate() {
            frame[1 + i] = u8::try_from(*s)
                .map_err(|_| Error::InvalidArgument("write protect takes sectors 0..=255"))?;
        }
        let end = 1 + sectors.len();
        frame[end] = xor(&frame[..end]);
        self.command(cmd::WRITE_PROTECT)?;
        self.send(&frame[..=end])?;
        self.wait_ack(Step::Data(cmd::WRITE_PROTECT), 2000)?;
        self.resync_after_reset(100, 5000)
    }

    fn write_unprotect(&mut self) -> Result<(), Self::Error> {
        self.simple_reset_command(cmd::WRITE_UNPROTECT, 2000)?;
        self.resync_after_reset(100, 5000)
    }

    fn readout_protect(&mut self) -> Result<(), Self::Error> {
        self.simple_reset_command(cmd::READOUT_PROTECT, 2000)?;
        self.info.read_protection = ReadProtection::Active;
        self.resync_after_reset(100, 5000)
    }

    fn readout_unprotect(&mut self) -> Result<(), Self::Error> {
        let mass = self.mass_erase_timeout_ms();
        self.simple_reset_command(cmd::READOUT_UNPROTECT, mass)?;
        self.info.read_protection = ReadProtection::Inactive;
        // The device mass-erases, then resets.
        self.resync_after_reset(200, mass)
    }

    fn checksum(&mut self, addr: u32, len: u32) -> Result<Option<u32>, Self::Error> {
        if !self.commands.contains(cmd::GET_CHECKSUM) || len == 0 || len % 4 != 0 || addr % 4 != 0 {
            return Ok(None);
        }
        self.retrying(|h| h.checksum_once(addr, len)).map(Some)
    }
}
