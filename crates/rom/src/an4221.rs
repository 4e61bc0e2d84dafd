//! AN4221: the I2C protocol of the STM32 ROM bootloader, host side, over embedded-hal 1.0's
//! [`I2c`] trait, so the same code drives `/dev/i2c-N` on Linux (`linux-i2c` feature:
//! `linux::open`) and an I2C peripheral of another STM32 (embassy-stm32, stm32h7xx-hal).
//!
//! Each protocol phase is its own I2C transaction: a write for the command, the address, the
//! length and the data, and a separate 1-byte read for every ACK/NACK. Commands that take long
//! use the no-stretch variants (0x32, 0x45, 0x64, 0x74, 0x83, 0x93) when Get lists them: the
//! device then answers BUSY (0x76) to every poll until it is done, and the host polls with a
//! budget scaled to the work (pages × per-page time, bytes written, mass erase).
//!
//! Guarantees: no allocation, no panic on device replies; a NACK, a BUSY that outlasts its
//! budget, a device that stops acknowledging its address, and a bus fault are distinct named
//! errors ([`I2cError`]); a write is reported done only after the device's final ACK. Only
//! steps that change nothing are retried (a read, a command byte the device refused to take).

use crate::device::{by_pid, RomDevice};
use crate::target::{Erase, ReadProtection, RomTarget, TargetInfo};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{Error as _, ErrorKind, I2c, NoAcknowledgeSource};

/// Control bytes and the command codes both protocols share are AN3155's: one definition.
pub use crate::an3155::{ACK, BUSY, NACK};

/// AN4221 command codes: AN3155's, plus the no-stretch variants of the long commands.
pub mod cmd {
    pub use crate::an3155::cmd::*;

    /// Write Memory, no stretch.
    pub const NS_WRITE_MEMORY: u8 = 0x32;
    /// Extended Erase, no stretch.
    pub const NS_EXTENDED_ERASE: u8 = 0x45;
    /// Write Protect, no stretch.
    pub const NS_WRITE_PROTECT: u8 = 0x64;
    /// Write Unprotect, no stretch.
    pub const NS_WRITE_UNPROTECT: u8 = 0x74;
    /// Readout Protect, no stretch.
    pub const NS_READOUT_PROTECT: u8 = 0x83;
    /// Readout Unprotect, no stretch.
    pub const NS_READOUT_UNPROTECT: u8 = 0x93;
}

/// Number of command codes Get lists, by I2C protocol version (stm32flash's table): v1.0
/// lists 11, v1.1 adds the six no-stretch commands, v1.2 adds the checksum command.
pub fn get_reply_command_count(version: u8) -> u8 {
    match version {
        0x10 => 11,
        0x11 => 17,
        _ => 18,
    }
}

/// Which protocol step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The command byte and its complement.
    Command,
    /// The 4-byte address and its checksum.
    Address,
    /// A length or count with its checksum.
    Count,
    /// The data or page list and its checksum.
    Data,
    /// The reply bytes of Get / Get Version / Get ID / Read Memory.
    Reply,
    /// Waiting for the final ACK after the work.
    Completion,
}

/// What went wrong on the I2C link or in the protocol. `E` is the I2C driver's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum I2cError<E: core::fmt::Debug> {
    /// The I2C driver failed (arbitration loss, bus error, data NACK, overrun).
    #[error("command {cmd:#04x} {phase:?}: I2C bus error {kind:?}: {error:?}")]
    Bus {
        /// The command being run (a [`cmd`] code).
        cmd: u8,
        /// The step it failed in.
        phase: Phase,
        /// embedded-hal's classification of `error`.
        kind: ErrorKind,
        /// The driver's own error.
        error: E,
    },
    /// The device stopped acknowledging its address for longer than the budget.
    #[error("command {cmd:#04x} {phase:?}: the device does not answer at its address (waited {waited_ms} ms)")]
    NoAnswer {
        /// The command being run (a [`cmd`] code).
        cmd: u8,
        /// The step it failed in.
        phase: Phase,
        /// Time waited in ms, as the budget counts it (see [`I2cTimeouts`]).
        waited_ms: u32,
    },
    /// The device answered NACK (0x1F).
    #[error("command {cmd:#04x} {phase:?}: the device answered NACK")]
    Nack {
        /// The command being run (a [`cmd`] code).
        cmd: u8,
        /// The step the device refused.
        phase: Phase,
    },
    /// The device stayed BUSY (0x76) past the budget for this work.
    #[error("command {cmd:#04x}: still BUSY after {waited_ms} ms")]
    BusyTimeout {
        /// The command being run (a [`cmd`] code).
        cmd: u8,
        /// Time waited in ms, as the budget counts it (see [`I2cTimeouts`]).
        waited_ms: u32,
    },
    /// A byte that is neither ACK, NACK nor BUSY where one was expected.
    #[error("command {cmd:#04x} {phase:?}: unexpected byte {byte:#04x}")]
    UnexpectedByte {
        /// The command being run (a [`cmd`] code).
        cmd: u8,
        /// The step whose answer it was.
        phase: Phase,
        /// The byte received.
        byte: u8,
    },
    /// A reply whose length field is impossible.
    #[error("command {cmd:#04x}: malformed reply")]
    MalformedReply {
        /// The command whose reply it was.
        cmd: u8,
    },
    /// The bootloader does not list a command this operation needs.
    #[error("the bootloader does not offer command {cmd:#04x}")]
    Unsupported {
        /// The missing command code (the stretching variant when both exist).
        cmd: u8,
    },
    /// Read or write length outside 1..=256, or more than 65535 pages.
    #[error("length {len} is outside what one command carries")]
    BadLength {
        /// The length asked for: bytes, pages or sectors, by command.
        len: usize,
    },
    /// Not a 7-bit address the bootloader can use (0x03..=0x77).
    #[error("I2C address {0:#04x} is outside 0x03..=0x77")]
    BadAddress(u8),
    /// Write Memory needs a 4-byte aligned address.
    #[error("write address {addr:#010x} is not 4-byte aligned")]
    Unaligned {
        /// The absolute address asked for.
        addr: u32,
    },
    /// Write-protect sector numbers are one byte on I2C.
    #[error("write-protect sector {0} does not fit the 1-byte sector field")]
    SectorTooLarge(u16),
    /// An operation before [`I2cHost::connect`].
    #[error("not connected: call connect() first")]
    NotConnected,
}

impl<E: core::fmt::Debug> crate::target::TargetError for I2cError<E> {
    fn kind(&self) -> crate::target::ErrorKind {
        use crate::target::ErrorKind as K;
        match self {
            I2cError::Bus { .. } => K::Link,
            I2cError::NoAnswer { .. } | I2cError::BusyTimeout { .. } => K::Timeout,
            I2cError::Nack { .. } => K::Nack,
            I2cError::UnexpectedByte { .. } => K::Noise,
            I2cError::Unsupported { .. } => K::Unsupported,
            I2cError::BadLength { .. }
            | I2cError::BadAddress(_)
            | I2cError::Unaligned { .. }
            | I2cError::SectorTooLarge(_) => K::InvalidArgument,
            I2cError::MalformedReply { .. } | I2cError::NotConnected => K::Protocol,
        }
    }
}

/// Time budgets. Waiting time is counted as the sum of the poll delays, so the real time
/// spent is at least the budget (transfers add to it), never less.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I2cTimeouts {
    /// Delay between two polls of an ACK/BUSY byte.
    pub poll_interval_us: u32,
    /// An ACK for a step that does no flash work.
    pub ack_ms: u32,
    /// One Write Memory block (up to 256 bytes).
    pub write_block_ms: u32,
    /// Per page in an erase list (stm32flash: 5 s per page).
    pub erase_page_ms: u32,
    /// Mass or bank erase, and Readout Unprotect (stm32flash: 35 s).
    pub mass_erase_ms: u32,
    /// Write (un)protect and readout protect (option-byte programming).
    pub option_bytes_ms: u32,
    /// How long a transfer the adapter gave up on is counted as having taken (the shortest
    /// adapter timeout expected; Linux drivers use 25 ms and more). An underestimate only
    /// makes the host wait longer, never shorter, than a budget.
    pub failed_transfer_ms: u32,
}

impl Default for I2cTimeouts {
    fn default() -> Self {
        I2cTimeouts {
            poll_interval_us: 1_000,
            ack_ms: 200,
            write_block_ms: 1_000,
            erase_page_ms: 5_000,
            mass_erase_ms: 40_000,
            option_bytes_ms: 5_000,
            failed_transfer_ms: 25,
        }
    }
}

/// The command variants a connected bootloader offers (no-stretch preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandSet {
    /// Bit `n` is set when Get listed command code `n`.
    listed: [u32; 8],
}

impl CommandSet {
    fn insert(&mut self, code: u8) {
        if let Some(w) = self.listed.get_mut(usize::from(code / 32)) {
            *w |= 1 << (code % 32);
        }
    }

    /// True when Get listed `code`.
    pub fn contains(&self, code: u8) -> bool {
        self.listed
            .get(usize::from(code / 32))
            .is_some_and(|w| w & (1 << (code % 32)) != 0)
    }

    /// The no-stretch variant when listed, else the stretching one when listed.
    fn pick(&self, stretching: u8, no_stretch: u8) -> Option<u8> {
        if self.contains(no_stretch) {
            Some(no_stretch)
        } else if self.contains(stretching) {
            Some(stretching)
        } else {
            None
        }
    }
}

/// An AN4221 host on one I2C bus and 7-bit address.
pub struct I2cHost<I, D> {
    bus: I,
    delay: D,
    address: u8,
    timeouts: I2cTimeouts,
    info: Option<TargetInfo>,
    commands: CommandSet,
}

type Result<T, E> = core::result::Result<T, I2cError<E>>;

impl<I: I2c, D: DelayNs> I2cHost<I, D> {
    /// A host for the bootloader at 7-bit `address` (see [`default_address`]).
    pub fn new(bus: I, delay: D, address: u8) -> core::result::Result<Self, I2cError<I::Error>> {
        if !(0x03..=0x77).contains(&address) {
            return Err(I2cError::BadAddress(address));
        }
        Ok(I2cHost {
            bus,
            delay,
            address,
            timeouts: I2cTimeouts::default(),
            info: None,
            commands: CommandSet::default(),
        })
    }

    /// Replaces the time budgets.
    pub fn with_timeouts(mut self, timeouts: I2cTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The commands Get listed.
    pub fn commands(&self) -> CommandSet {
        self.commands
    }

    /// Mutable access to the bus (tests inject faults through it).
    pub fn bus_mut(&mut self) -> &mut I {
        &mut self.bus
    }

    /// Gives back the bus and the delay.
    pub fn into_parts(self) -> (I, D) {
        (self.bus, self.delay)
    }

    /// Get Version, Get and Get ID; looks the PID up in the device table.
    pub fn connect(&mut self) -> Result<TargetInfo, I::Error> {
        let version = self.get_version()?;
        let (get_version, commands) = self.get(version)?;
        self.commands = commands;
        let pid = self.get_id()?;
        let info = TargetInfo {
            pid,
            protocol_version: get_version,
            device: by_pid(pid),
            read_protection: ReadProtection::Unknown,
        };
        self.info = Some(info);
        Ok(info)
    }

    // ---- link helpers ----

    fn write_phase(&mut self, cmd: u8, phase: Phase, bytes: &[u8]) -> Result<(), I::Error> {
        self.until_addressed(cmd, phase, |bus, address| bus.write(address, bytes))
    }

    /// Runs one bus transfer, again while the device does not acknowledge its address: it
    /// re-arms its address match between phases, so it gets a bounded number of tries.
    /// Nothing was received on a NACKed address, so repeating is safe.
    fn until_addressed(
        &mut self,
        cmd: u8,
        phase: Phase,
        mut transfer: impl FnMut(&mut I, u8) -> core::result::Result<(), I::Error>,
    ) -> Result<(), I::Error> {
        let mut waited_us: u32 = 0;
        loop {
            match transfer(&mut self.bus, self.address) {
                Ok(()) => return Ok(()),
                Err(e) if is_address_nack(&e) => {
                    if waited_us >= self.timeouts.ack_ms.saturating_mul(1000) {
                        return Err(I2cError::NoAnswer {
                            cmd,
                            phase,
                            waited_ms: waited_us / 1000,
                        });
                    }
                    self.pause(&mut waited_us);
                }
                Err(error) => {
                    return Err(I2cError::Bus {
                        cmd,
                        phase,
                        kind: error.kind(),
                        error,
                    })
                }
            }
        }
    }

    fn pause(&mut self, waited_us: &mut u32) {
        let step = self.timeouts.poll_interval_us.max(1);
        self.delay.delay_us(step);
        *waited_us = waited_us.saturating_add(step);
    }

    fn read_phase(&mut self, cmd: u8, phase: Phase, buf: &mut [u8]) -> Result<(), I::Error> {
        self.until_addressed(cmd, phase, |bus, address| bus.read(address, buf))
    }

    /// Reads the 1-byte answer to a step, polling through BUSY (and through a silent
    /// device, which a stretching command or a device mid-operation can be) for `budget_ms`.
    fn wait_ack(&mut self, cmd: u8, phase: Phase, budget_ms: u32) -> Result<(), I::Error> {
        let budget_us = budget_ms.saturating_mul(1000);
        let mut waited_us: u32 = 0;
        let mut saw_busy = false;
        let mut last_bus_error = None;
        loop {
            let mut b = [0u8; 1];
            match self.bus.read(self.address, &mut b) {
                Ok(()) => match b[0] {
                    ACK => return Ok(()),
                    NACK => return Err(I2cError::Nack { cmd, phase }),
                    BUSY => saw_busy = true,
                    byte => return Err(I2cError::UnexpectedByte { cmd, phase, byte }),
                },
                Err(e) if is_address_nack(&e) => {}
                // A stretching command holds SCL for the whole erase; many adapters give up
                // on the transfer first (Linux i2c drivers: often 25 ms to 1 s). Reading the
                // answer again changes nothing, so keep trying within the work's budget.
                Err(error)
                    if phase == Phase::Completion && error.kind() != ErrorKind::ArbitrationLoss =>
                {
                    last_bus_error = Some(error);
                    // The adapter held the transfer before failing it: count that time.
                    let held = self.timeouts.failed_transfer_ms.saturating_mul(1000);
                    waited_us = waited_us.saturating_add(held);
                }
                Err(error) => {
                    return Err(I2cError::Bus {
                        cmd,
                        phase,
                        kind: error.kind(),
                        error,
                    })
                }
            }
            if waited_us >= budget_us {
                let waited_ms = waited_us / 1000;
                return Err(match (saw_busy, last_bus_error) {
                    (true, _) => I2cError::BusyTimeout { cmd, waited_ms },
                    (false, Some(error)) => I2cError::Bus {
                        cmd,
                        phase,
                        kind: error.kind(),
                        error,
                    },
                    (false, None) => I2cError::NoAnswer {
                        cmd,
                        phase,
                        waited_ms,
                    },
                });
            }
            self.pause(&mut waited_us);
        }
    }

    fn send_command(&mut self, cmd: u8) -> Result<(), I::Error> {
        self.write_phase(cmd, Phase::Command, &[cmd, !cmd])?;
        let budget = self.timeouts.ack_ms;
        self.wait_ack(cmd, Phase::Command, budget)
    }

    fn send_address(&mut self, cmd: u8, addr: u32) -> Result<(), I::Error> {
        let a = addr.to_be_bytes();
        let frame = [a[0], a[1], a[2], a[3], a[0] ^ a[1] ^ a[2] ^ a[3]];
        self.write_phase(cmd, Phase::Address, &frame)?;
        let budget = self.timeouts.ack_ms;
        self.wait_ack(cmd, Phase::Address, budget)
    }

    fn require(&self, code: Option<u8>, fallback: u8) -> Result<u8, I::Error> {
        if self.info.is_none() {
            return Err(I2cError::NotConnected);
        }
        code.ok_or(I2cError::Unsupported { cmd: fallback })
    }

    // ---- commands ----

    /// Get Version (0x01): on I2C only the version byte (e.g. 0x12 for v1.2).
    pub fn get_version(&mut self) -> Result<u8, I::Error> {
        let c = cmd::GET_VERSION;
        self.send_command(c)?;
        let mut v = [0u8; 1];
        self.read_phase(c, Phase::Reply, &mut v)?;
        let budget = self.timeouts.ack_ms;
        self.wait_ack(c, Phase::Completion, budget)?;
        Ok(v[0])
    }

    /// Get (0x00): the reply is read in one transaction, so its length is taken from the
    /// version (see [`get_reply_command_count`]); on a mismatch the host resynchronises and
    /// asks again with the length the device announced.
    pub fn get(&mut self, version: u8) -> Result<(u8, CommandSet), I::Error> {
        let c = cmd::GET;
        let mut expected = get_reply_command_count(version);
        for _ in 0..2 {
            self.send_command(c)?;
            let mut buf = [0u8; 258];
            let n = usize::from(expected) + 2;
            let reply = buf
                .get_mut(..n)
                .ok_or(I2cError::MalformedReply { cmd: c })?;
            self.read_phase(c, Phase::Reply, reply)?;
            let announced = reply[0];
            if announced > expected {
                // The device has more to say than we read: resync and ask with its length.
                self.resync()?;
                expected = announced;
                continue;
            }
            let budget = self.timeouts.ack_ms;
            self.wait_ack(c, Phase::Completion, budget)?;
            let mut set = CommandSet::default();
            for &code in reply.get(2..usize::from(announced) + 2).unwrap_or(&[]) {
                set.insert(code);
            }
            return Ok((reply[1], set));
        }
        Err(I2cError::MalformedReply { cmd: c })
    }

    /// Sends `FF 00` (an invalid command) until the device answers NACK: it is then waiting
    /// for a command again.
    pub fn resync(&mut self) -> Result<(), I::Error> {
        for _ in 0..8 {
            self.write_phase(0xFF, Phase::Command, &[0xFF, 0x00])?;
            let mut b = [0u8; 1];
            self.read_phase(0xFF, Phase::Command, &mut b)?;
            if b[0] == NACK {
                return Ok(());
            }
        }
        Err(I2cError::NoAnswer {
            cmd: 0xFF,
            phase: Phase::Command,
            waited_ms: 0,
        })
    }

    /// Get ID (0x02): the product ID.
    pub fn get_id(&mut self) -> Result<u16, I::Error> {
        let c = cmd::GET_ID;
        self.send_command(c)?;
        let mut r = [0u8; 3];
        self.read_phase(c, Phase::Reply, &mut r)?;
        if r[0] != 1 {
            return Err(I2cError::MalformedReply { cmd: c });
        }
        let budget = self.timeouts.ack_ms;
        self.wait_ack(c, Phase::Completion, budget)?;
        Ok(u16::from_be_bytes([r[1], r[2]]))
    }

    /// Read Memory (0x11): 1..=256 bytes; retried once, since reading changes nothing.
    pub fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), I::Error> {
        if buf.is_empty() || buf.len() > 256 {
            return Err(I2cError::BadLength { len: buf.len() });
        }
        match self.read_memory_once(addr, buf) {
            Err(I2cError::Nack { .. }) | Err(I2cError::UnexpectedByte { .. }) => {
                self.resync()?;
                self.read_memory_once(addr, buf)
            }
            other => other,
        }
    }

    fn read_memory_once(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), I::Error> {
        let c = cmd::READ_MEMORY;
        self.send_command(c)?;
        self.send_address(c, addr)?;
        let n = (buf.len() - 1) as u8;
        self.write_phase(c, Phase::Count, &[n, !n])?;
        let budget = self.timeouts.ack_ms;
        self.wait_ack(c, Phase::Count, budget)?;
        self.read_phase(c, Phase::Reply, buf)
    }

    /// Write Memory (0x32 no-stretch, else 0x31): 1..=256 bytes at a 4-aligned address, the
    /// length padded to 4 with 0xFF. Done only when the device's final ACK arrives.
    pub fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), I::Error> {
        if data.is_empty() || data.len() > 256 {
            return Err(I2cError::BadLength { len: data.len() });
        }
        if addr % 4 != 0 {
            return Err(I2cError::Unaligned { addr });
        }
        let c = self.require(
            self.commands.pick(cmd::WRITE_MEMORY, cmd::NS_WRITE_MEMORY),
            cmd::WRITE_MEMORY,
        )?;
        let padded = data.len().div_ceil(4) * 4;
        let mut frame = [0xFFu8; 258];
        frame[0] = (padded - 1) as u8;
        frame[1..=data.len()].copy_from_slice(data);
        let checksum = frame[..=padded].iter().fold(0u8, |x, b| x ^ b);
        frame[padded + 1] = checksum;
        self.send_command(c)?;
        self.send_address(c, addr)?;
        self.write_phase(c, Phase::Data, &frame[..padded + 2])?;
        let budget = self.timeouts.write_block_ms;
        self.wait_ack(c, Phase::Completion, budget)
    }

    fn erase_command(&mut self) -> Result<u8, I::Error> {
        self.require(
            self.commands
                .pick(cmd::EXTENDED_ERASE, cmd::NS_EXTENDED_ERASE),
            cmd::EXTENDED_ERASE,
        )
    }

    /// Extended Erase of a page list (1..=511 pages; [`RomTarget::erase`] splits longer ones): count + its own checksum, ACK, then the pages + checksum, then BUSY polling
    /// with `pages × erase_page_ms` of budget.
    pub fn erase_pages(&mut self, pages: &[u16]) -> Result<(), I::Error> {
        // Pages go out in one transaction from a fixed stack buffer (no allocation), so one
        // command carries at most 511 pages: the ROMs' own limit (stm32flash) anyway.
        const MAX: usize = 511;
        if pages.is_empty() || pages.len() > MAX {
            return Err(I2cError::BadLength { len: pages.len() });
        }
        let c = self.erase_command()?;
        let n = (pages.len() - 1) as u16;
        let nb = n.to_be_bytes();
        self.send_command(c)?;
        self.write_phase(c, Phase::Count, &[nb[0], nb[1], nb[0] ^ nb[1]])?;
        let budget = self.timeouts.ack_ms;
        self.wait_ack(c, Phase::Count, budget)?;
        let mut frame = [0u8; MAX * 2 + 1];
        let mut checksum = 0u8;
        for (i, p) in pages.iter().enumerate() {
            let b = p.to_be_bytes();
            frame[2 * i] = b[0];
            frame[2 * i + 1] = b[1];
            checksum ^= b[0] ^ b[1];
        }
        let len = pages.len() * 2;
        frame[len] = checksum;
        self.write_phase(c, Phase::Data, &frame[..=len])?;
        let budget = self
            .timeouts
            .erase_page_ms
            .saturating_mul(pages.len() as u32);
        self.wait_ack(c, Phase::Completion, budget)
    }

    /// Special erase: 0xFFFF mass, 0xFFFE bank 1, 0xFFFD bank 2.
    pub fn erase_special(&mut self, code: u16) -> Result<(), I::Error> {
        let c = self.erase_command()?;
        let b = code.to_be_bytes();
        self.send_command(c)?;
        self.write_phase(c, Phase::Count, &[b[0], b[1], b[0] ^ b[1]])?;
        let budget = self.timeouts.mass_erase_ms;
        self.wait_ack(c, Phase::Completion, budget)
    }

    /// Get Checksum (0xA1, v1.2): the STM32-CRC-unit CRC-32 of `[addr, addr + len)`, both
    /// multiples of 4, computed by the device; `None` when the bootloader does not list it.
    pub fn checksum(&mut self, addr: u32, len: u32) -> Result<Option<u32>, I::Error> {
        let c = cmd::GET_CHECKSUM;
        if self.info.is_none() {
            return Err(I2cError::NotConnected);
        }
        if !self.commands.contains(c) {
            return Ok(None);
        }
        if addr % 4 != 0 || len % 4 != 0 || len == 0 {
            return Err(I2cError::BadLength { len: len as usize });
        }
        self.send_command(c)?;
        self.send_address(c, addr)?;
        let l = len.to_be_bytes();
        self.write_phase(
            c,
            Phase::Count,
            &[l[0], l[1], l[2], l[3], l[0] ^ l[1] ^ l[2] ^ l[3]],
        )?;
        let budget = self.timeouts.option_bytes_ms;
        self.wait_ack(c, Phase::Completion, budget)?;
        let mut r = [0u8; 5];
        self.read_phase(c, Phase::Reply, &mut r)?;
        if r[0] ^ r[1] ^ r[2] ^ r[3] != r[4] {
            return Err(I2cError::MalformedReply { cmd: c });
        }
        Ok(Some(u32::from_be_bytes([r[0], r[1], r[2], r[3]])))
    }

    /// Go (0x21): jump to the code whose vector table is at `addr`.
    pub fn go(&mut self, addr: u32) -> Result<(), I::Error> {
        let c = self.require(Some(cmd::GO), cmd::GO)?;
        self.send_command(c)?;
        self.send_address(c, addr)
    }

    /// Write Protect (0x64 / 0x63) of the given sectors; the device resets afterwards.
    pub fn write_protect(&mut self, sectors: &[u16]) -> Result<(), I::Error> {
        if sectors.is_empty() || sectors.len() > 256 {
            return Err(I2cError::BadLength { len: sectors.len() });
        }
        let c = self.require(
            self.commands
                .pick(cmd::WRITE_PROTECT, cmd::NS_WRITE_PROTECT),
            cmd::WRITE_PROTECT,
        )?;
        let mut frame = [0u8; 257];
        let mut checksum = 0u8;
        for (i, &s) in sectors.iter().enumerate() {
            let b = u8::try_from(s).map_err(|_| I2cError::SectorTooLarge(s))?;
            frame[i] = b;
            checksum ^= b;
        }
        frame[sectors.len()] = checksum;
        let n = (sectors.len() - 1) as u8;
        self.send_command(c)?;
        self.write_phase(c, Phase::Count, &[n, !n])?;
        let budget = self.timeouts.ack_ms;
        self.wait_ack(c, Phase::Count, budget)?;
        self.write_phase(c, Phase::Data, &frame[..=sectors.len()])?;
        let budget = self.timeouts.option_bytes_ms;
        self.wait_ack(c, Phase::Completion, budget)
    }

    fn two_ack_command(
        &mut self,
        stretching: u8,
        no_stretch: u8,
        budget_ms: u32,
    ) -> Result<(), I::Error> {
        let c = self.require(self.commands.pick(stretching, no_stretch), stretching)?;
        self.send_command(c)?;
        self.wait_ack(c, Phase::Completion, budget_ms)
    }

    /// Write Unprotect (0x74 / 0x73); the device resets afterwards.
    pub fn write_unprotect(&mut self) -> Result<(), I::Error> {
        let budget = self.timeouts.option_bytes_ms;
        self.two_ack_command(cmd::WRITE_UNPROTECT, cmd::NS_WRITE_UNPROTECT, budget)
    }

    /// Readout Protect (0x83 / 0x82); the device resets afterwards.
    pub fn readout_protect(&mut self) -> Result<(), I::Error> {
        let budget = self.timeouts.option_bytes_ms;
        self.two_ack_command(cmd::READOUT_PROTECT, cmd::NS_READOUT_PROTECT, budget)
    }

    /// Readout Unprotect (0x93 / 0x92): after the second ACK the device mass-erases and
    /// resets; the host must reconnect (after up to `mass_erase_ms`).
    pub fn readout_unprotect(&mut self) -> Result<(), I::Error> {
        let budget = self.timeouts.ack_ms;
        self.two_ack_command(cmd::READOUT_UNPROTECT, cmd::NS_READOUT_UNPROTECT, budget)
    }
}

fn is_address_nack<E: embedded_hal::i2c::Error>(e: &E) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
            | ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown)
    )
}

/// The 7-bit address AN2606 gives for the part with this product ID, if known.
pub fn default_address(pid: u16) -> Option<u8> {
    by_pid(pid).and_then(|d| d.i2c_address)
}

impl<I: I2c, D: DelayNs> RomTarget for I2cHost<I, D> {
    type Error = I2cError<I::Error>;

    fn info(&self) -> TargetInfo {
        self.info.unwrap_or(TargetInfo {
            pid: 0,
            protocol_version: 0,
            device: None,
            read_protection: ReadProtection::Unknown,
        })
    }

    fn max_transfer(&self) -> usize {
        256
    }

    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> core::result::Result<(), Self::Error> {
        I2cHost::read_memory(self, addr, buf)
    }

    fn write_memory(&mut self, addr: u32, data: &[u8]) -> core::result::Result<(), Self::Error> {
        I2cHost::write_memory(self, addr, data)
    }

    fn erase(&mut self, what: Erase<'_>) -> core::result::Result<(), Self::Error> {
        match what {
            Erase::Pages(pages) => {
                let per = self
                    .info
                    .and_then(|i| i.device)
                    .map_or(511, |d: &RomDevice| {
                        usize::from(d.max_erase_pages).clamp(1, 511)
                    });
                for batch in pages.chunks(per) {
                    self.erase_pages(batch)?;
                }
                Ok(())
            }
            Erase::Bank(0) => self.erase_special(0xFFFE),
            Erase::Bank(_) => self.erase_special(0xFFFD),
            Erase::Mass => self.erase_special(0xFFFF),
        }
    }

    fn go(&mut self, addr: u32) -> core::result::Result<(), Self::Error> {
        I2cHost::go(self, addr)
    }

    fn write_protect(&mut self, sectors: &[u16]) -> core::result::Result<(), Self::Error> {
        I2cHost::write_protect(self, sectors)
    }

    fn write_unprotect(&mut self) -> core::result::Result<(), Self::Error> {
        I2cHost::write_unprotect(self)
    }

    fn readout_protect(&mut self) -> core::result::Result<(), Self::Error> {
        I2cHost::readout_protect(self)
    }

    fn readout_unprotect(&mut self) -> core::result::Result<(), Self::Error> {
        I2cHost::readout_unprotect(self)
    }

    fn checksum(&mut self, addr: u32, len: u32) -> core::result::Result<Option<u32>, Self::Error> {
        if addr % 4 != 0 || len % 4 != 0 || len == 0 {
            return Ok(None);
        }
        I2cHost::checksum(self, addr, len)
    }
}

/// `/dev/i2c-N` on Linux through linux-embedded-hal (i2c-dev plain I2C transfers; an
/// SMBus-only adapter cannot carry this protocol).
#[cfg(all(feature = "linux-i2c", target_os = "linux"))]
pub mod linux {
    use super::*;
    pub use linux_embedded_hal::{Delay, I2CError, I2cdev};

    /// Opens `path` (e.g. `/dev/i2c-1`) for the bootloader at `address`, and connects.
    pub fn open(
        path: &str,
        address: u8,
    ) -> core::result::Result<(I2cHost<I2cdev, Delay>, TargetInfo), LinuxOpenError> {
        let bus = I2cdev::new(path).map_err(|e| LinuxOpenError::Open {
            path: path.into(),
            source: e,
        })?;
        let mut host = I2cHost::new(bus, Delay, address).map_err(LinuxOpenError::Protocol)?;
        let info = host.connect().map_err(LinuxOpenError::Protocol)?;
        Ok((host, info))
    }

    /// Why `/dev/i2c-N` could not be used.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum LinuxOpenError {
        /// The device node could not be opened.
        #[error("cannot open {path}: {source}")]
        Open {
            /// The device node, e.g. `/dev/i2c-1`.
            path: std::string::String,
            /// Why opening it failed.
            source: linux_embedded_hal::i2cdev::linux::LinuxI2CError,
        },
        /// The bootloader did not answer as AN4221 says.
        #[error("{0}")]
        Protocol(I2cError<I2CError>),
    }
}
