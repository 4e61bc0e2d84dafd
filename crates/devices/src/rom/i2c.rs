//! The AN4221 (I2C) server of the virtual ROM bootloader, on an in-process I2C bus.
//!
//! [`SimI2cBus`] implements embedded-hal's `I2c`, so the real host
//! ([`brickless_rom::an4221::I2cHost`]) drives it exactly as it drives `/dev/i2c-N`. The device
//! side follows ST's protocol phase by phase: every host phase must be its own write
//! transaction, every ACK/NACK is read on its own, a write that arrives while the device still
//! has bytes to send is a protocol violation (NACK and back to command state). Flash work
//! takes modelled time on a virtual clock ([`SimClock`]): the no-stretch commands answer BUSY
//! (0x76) until it has passed, the stretching ones hold the bus (the read returns after the
//! work). The host sleeps through [`SimDelay`](crate::clock::SimDelay), which advances the
//! same clock, so tests of 35-second erases run in microseconds.

use std::collections::VecDeque;

use brickless_rom::an4221::{cmd, ACK, BUSY, NACK};
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

use super::core::{RomCore, BASE_COMMANDS};
use crate::clock::SimClock;

/// How the virtual I2C bootloader behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I2cServerOptions {
    /// 7-bit address it answers at.
    pub address: u8,
    /// I2C protocol version: 0x10 (stretching only), 0x11 (+ no-stretch), 0x12 (+ checksum).
    pub version: u8,
    /// Bus clock, for the time a transfer takes.
    pub bus_hz: u32,
    /// Fault: a no-stretch command answers BUSY forever.
    pub busy_forever: bool,
    /// Extra codes listed in Get after the standard ones (Open Bootloader lists its Special
    /// commands 0x50/0x51), which makes Get longer than the version's usual length.
    pub vendor_commands: &'static [u8],
}

impl I2cServerOptions {
    /// The part's AN2606 address (0x42 when the table has none) at v1.2 and 400 kHz.
    pub fn for_device(device: &brickless_rom::RomDevice) -> Self {
        I2cServerOptions {
            address: device.i2c_address.unwrap_or(0x42),
            version: 0x12,
            bus_hz: 400_000,
            busy_forever: false,
            vendor_commands: &[],
        }
    }
}

/// What a write transaction completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Command,
    Address(u8),
    ReadCount(u32),
    WriteData(u8, u32),
    EraseCount(u8),
    ErasePages(u8, usize),
    ProtectCount(u8),
    ProtectSectors(u8, usize),
    ChecksumLength(u32),
}

/// Work in progress: the byte to send when it is done, and whether the bus is stretched.
#[derive(Debug, Clone, Copy)]
struct Pending {
    until_ns: u64,
    answer: u8,
    stretch: bool,
    /// Bytes to queue after the answer (Get Checksum's result).
    then: Option<[u8; 5]>,
}

/// Counters tests look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct I2cStats {
    /// Write transactions that broke the phase rules.
    pub violations: u32,
    /// BUSY bytes sent.
    pub busy_bytes: u32,
    /// Go commands accepted (the device left the bootloader).
    pub gos: u32,
    /// Write Memory commands that programmed flash or RAM.
    pub writes: u32,
}

/// The device side of AN4221 over a [`RomCore`].
pub struct I2cServer {
    /// The part's memories and protection.
    pub core: RomCore,
    opts: I2cServerOptions,
    clock: SimClock,
    expect: Expect,
    /// What the device will send, one entry per read transaction (a reply never spills
    /// into the next transaction: the final ACK after a reply is a read of its own).
    out: VecDeque<Vec<u8>>,
    pending: Option<Pending>,
    /// Counters for tests.
    pub stats: I2cStats,
}

impl I2cServer {
    /// A server for `core` on `clock`.
    pub fn new(core: RomCore, opts: I2cServerOptions, clock: SimClock) -> Self {
        I2cServer {
            core,
            opts,
            clock,
            expect: Expect::Command,
            out: VecDeque::new(),
            pending: None,
            stats: I2cStats::default(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> I2cServerOptions {
        self.opts
    }

    /// Changes the options (tests switch faults on mid-session).
    pub fn opts_mut(&mut self) -> &mut I2cServerOptions {
        &mut self.opts
    }

    /// The Get list for the configured version.
    pub fn command_list(&self) -> Vec<u8> {
        let mut list = BASE_COMMANDS.to_vec();
        if self.opts.version >= 0x11 {
            list.extend_from_slice(&[
                cmd::NS_WRITE_MEMORY,
                cmd::NS_EXTENDED_ERASE,
                cmd::NS_WRITE_PROTECT,
                cmd::NS_WRITE_UNPROTECT,
                cmd::NS_READOUT_PROTECT,
                cmd::NS_READOUT_UNPROTECT,
            ]);
        }
        if self.opts.version >= 0x12 {
            list.push(cmd::GET_CHECKSUM);
        }
        list.extend_from_slice(self.opts.vendor_commands);
        list
    }

    fn is_no_stretch(code: u8) -> bool {
        matches!(
            code,
            cmd::NS_WRITE_MEMORY
                | cmd::NS_EXTENDED_ERASE
                | cmd::NS_WRITE_PROTECT
                | cmd::NS_WRITE_UNPROTECT
                | cmd::NS_READOUT_PROTECT
                | cmd::NS_READOUT_UNPROTECT
                | cmd::GET_CHECKSUM
        )
    }

    fn busy(&mut self, code: u8, duration_ns: u64, answer: u8) {
        self.pending = Some(Pending {
            until_ns: self.clock.now_ns() + duration_ns,
            answer,
            stretch: !Self::is_no_stretch(code),
            then: None,
        });
    }

    fn reset_to_command(&mut self) {
        self.expect = Expect::Command;
    }

    fn nack(&mut self) {
        self.out.push_back(vec![NACK]);
        self.reset_to_command();
    }

    fn ack(&mut self) {
        self.out.push_back(vec![ACK]);
    }

    fn timing(&self) -> brickless_flash::Timing {
        self.core.geometry().timing
    }

    fn program_ns(&self, len: usize) -> u64 {
        let unit = self.core.geometry().write_unit.max(1) as usize;
        let units = len.div_ceil(unit) as u64;
        units * u64::from(self.timing().program_unit_typ_us) * 1_000
    }

    fn erase_ns(&self, bytes: u64) -> u64 {
        (bytes / 1024).max(1) * u64::from(self.timing().erase_per_kib_typ_us) * 1_000
    }

    fn pages_bytes(&self, pages: &[u16]) -> u64 {
        pages
            .iter()
            .filter_map(|&p| self.core.device.page(p))
            .map(|s| u64::from(s.size))
            .sum()
    }

    /// Handles one write transaction.
    pub fn on_write(&mut self, bytes: &[u8]) {
        if !self.out.is_empty() || self.pending.is_some() {
            // The host wrote before reading what the device had to say.
            self.stats.violations += 1;
            self.out.clear();
            self.pending = None;
            self.nack();
            return;
        }
        match self.expect {
            Expect::Command => self.command(bytes),
            Expect::Address(code) => self.address(code, bytes),
            Expect::ReadCount(addr) => self.read_count(addr, bytes),
            Expect::WriteData(code, addr) => self.write_data(code, addr, bytes),
            Expect::EraseCount(code) => self.erase_count(code, bytes),
            Expect::ErasePages(code, n) => self.erase_pages(code, n, bytes),
            Expect::ProtectCount(code) => self.protect_count(code, bytes),
            Expect::ProtectSectors(code, n) => self.protect_sectors(code, n, bytes),
            Expect::ChecksumLength(addr) => self.checksum_length(addr, bytes),
        }
    }

    fn command(&mut self, bytes: &[u8]) {
        let [code, complement] = *bytes else {
            self.stats.violations += 1;
            return self.nack();
        };
        if complement != !code || !self.command_list().contains(&code) {
            return self.nack();
        }
        let protected = self.core.is_read_protected();
        match code {
            cmd::GET => {
                self.ack();
                let list = self.command_list();
                let mut reply = vec![list.len() as u8, self.opts.version];
                reply.extend(list);
                self.out.push_back(reply);
                self.ack();
            }
            cmd::GET_VERSION => {
                self.ack();
                self.out.push_back(vec![self.opts.version]);
                self.ack();
            }
            cmd::GET_ID => {
                self.ack();
                let pid = self.core.pid().to_be_bytes();
                self.out.push_back(vec![1, pid[0], pid[1]]);
                self.ack();
            }
            cmd::READ_MEMORY
            | cmd::GO
            | cmd::WRITE_MEMORY
            | cmd::NS_WRITE_MEMORY
            | cmd::GET_CHECKSUM => {
                if protected {
                    return self.nack();
                }
                self.ack();
                self.expect = Expect::Address(code);
            }
            cmd::EXTENDED_ERASE | cmd::NS_EXTENDED_ERASE => {
                if protected {
                    return self.nack();
                }
                self.ack();
                self.expect = Expect::EraseCount(code);
            }
            cmd::WRITE_PROTECT | cmd::NS_WRITE_PROTECT => {
                if protected {
                    return self.nack();
                }
                self.ack();
                self.expect = Expect::ProtectCount(code);
            }
            cmd::WRITE_UNPROTECT | cmd::NS_WRITE_UNPROTECT => {
                if protected {
                    return self.nack();
                }
                self.ack();
                let answer = if self.core.write_unprotect().is_ok() {
                    ACK
                } else {
                    NACK
                };
                let t = self.erase_ns(1024);
                self.busy(code, t, answer);
            }
            cmd::READOUT_PROTECT | cmd::NS_READOUT_PROTECT => {
                if protected {
                    return self.nack();
                }
                self.ack();
                let answer = if self.core.readout_protect().is_ok() {
                    ACK
                } else {
                    NACK
                };
                let t = self.erase_ns(1024);
                self.busy(code, t, answer);
            }
            cmd::READOUT_UNPROTECT | cmd::NS_READOUT_UNPROTECT => {
                // Both ACKs go out before the work: the mass erase also clears the RAM the
                // bootloader would answer from.
                self.ack();
                self.ack();
                let _ = self.core.readout_unprotect();
                let total = u64::from(self.core.geometry().total_size());
                let t = self.erase_ns(total);
                self.pending = Some(Pending {
                    until_ns: self.clock.now_ns() + t,
                    answer: 0xFF,
                    stretch: code == cmd::READOUT_UNPROTECT,
                    then: None,
                });
            }
            _ => self.nack(),
        }
    }

    fn address(&mut self, code: u8, bytes: &[u8]) {
        let [a3, a2, a1, a0, x] = *bytes else {
            self.stats.violations += 1;
            return self.nack();
        };
        if a3 ^ a2 ^ a1 ^ a0 != x {
            return self.nack();
        }
        let addr = u32::from_be_bytes([a3, a2, a1, a0]);
        match code {
            cmd::READ_MEMORY => {
                if !self.core.is_readable(addr) {
                    return self.nack();
                }
                self.ack();
                self.expect = Expect::ReadCount(addr);
            }
            cmd::GO => {
                if self.core.go(addr).is_err() {
                    return self.nack();
                }
                self.ack();
                self.stats.gos += 1;
                self.reset_to_command();
            }
            cmd::GET_CHECKSUM => {
                if addr % 4 != 0 || !self.core.is_readable(addr) {
                    return self.nack();
                }
                self.ack();
                self.expect = Expect::ChecksumLength(addr);
            }
            _ => {
                if !self.core.is_writable(addr) {
                    return self.nack();
                }
                self.ack();
                self.expect = Expect::WriteData(code, addr);
            }
        }
    }

    fn read_count(&mut self, addr: u32, bytes: &[u8]) {
        let [n, complement] = *bytes else {
            self.stats.violations += 1;
            return self.nack();
        };
        if complement != !n {
            return self.nack();
        }
        let mut data = vec![0u8; usize::from(n) + 1];
        if self.core.read(addr, &mut data).is_err() {
            return self.nack();
        }
        self.ack();
        self.out.push_back(data);
        self.reset_to_command();
    }

    fn write_data(&mut self, code: u8, addr: u32, bytes: &[u8]) {
        let Some((&n, rest)) = bytes.split_first() else {
            self.stats.violations += 1;
            return self.nack();
        };
        let len = usize::from(n) + 1;
        if rest.len() != len + 1 {
            self.stats.violations += 1;
            return self.nack();
        }
        let (data, checksum) = rest.split_at(len);
        let x = data.iter().fold(n, |x, b| x ^ b);
        if checksum != [x] {
            return self.nack();
        }
        let answer = match self.core.write(addr, data) {
            Ok(_) => {
                self.stats.writes += 1;
                ACK
            }
            Err(_) => NACK,
        };
        let t = self.program_ns(len);
        self.busy(code, t, answer);
        self.reset_to_command();
    }

    fn erase_count(&mut self, code: u8, bytes: &[u8]) {
        let [nh, nl, x] = *bytes else {
            self.stats.violations += 1;
            return self.nack();
        };
        if nh ^ nl != x {
            return self.nack();
        }
        let n = u16::from_be_bytes([nh, nl]);
        if n & 0xFFF0 == 0xFFF0 {
            let result = match n {
                0xFFFF => self.core.mass_erase(),
                0xFFFE => self.core.erase_bank(0),
                0xFFFD => self.core.erase_bank(1),
                _ => return self.nack(),
            };
            let bytes = match n {
                0xFFFF => u64::from(self.core.geometry().total_size()),
                _ => u64::from(self.core.geometry().total_size()) / 2,
            };
            let t = self.erase_ns(bytes);
            let answer = if result.is_ok() { ACK } else { NACK };
            self.busy(code, t, answer);
            return self.reset_to_command();
        }
        self.ack();
        self.expect = Expect::ErasePages(code, usize::from(n) + 1);
    }

    fn erase_pages(&mut self, code: u8, count: usize, bytes: &[u8]) {
        if bytes.len() != count * 2 + 1 {
            self.stats.violations += 1;
            return self.nack();
        }
        let (list, checksum) = bytes.split_at(count * 2);
        if checksum != [list.iter().fold(0u8, |x, b| x ^ b)] {
            return self.nack();
        }
        let pages: Vec<u16> = list
            .chunks_exact(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect();
        let answer = if self.core.erase_pages(&pages).is_ok() {
            ACK
        } else {
            NACK
        };
        let t = self.erase_ns(self.pages_bytes(&pages));
        self.busy(code, t, answer);
        self.reset_to_command();
    }

    fn protect_count(&mut self, code: u8, bytes: &[u8]) {
        let [n, complement] = *bytes else {
            self.stats.violations += 1;
            return self.nack();
        };
        if complement != !n {
            return self.nack();
        }
        self.ack();
        self.expect = Expect::ProtectSectors(code, usize::from(n) + 1);
    }

    fn protect_sectors(&mut self, code: u8, count: usize, bytes: &[u8]) {
        if bytes.len() != count + 1 {
            self.stats.violations += 1;
            return self.nack();
        }
        let (list, checksum) = bytes.split_at(count);
        if checksum != [list.iter().fold(0u8, |x, b| x ^ b)] {
            return self.nack();
        }
        let pages: Vec<u16> = list.iter().map(|&p| u16::from(p)).collect();
        let answer = if self.core.write_protect(&pages).is_ok() {
            ACK
        } else {
            NACK
        };
        let t = self.erase_ns(1024);
        self.busy(code, t, answer);
        self.reset_to_command();
    }

    fn checksum_length(&mut self, addr: u32, bytes: &[u8]) {
        let [l3, l2, l1, l0, x] = *bytes else {
            self.stats.violations += 1;
            return self.nack();
        };
        if l3 ^ l2 ^ l1 ^ l0 != x {
            return self.nack();
        }
        let len = u32::from_be_bytes([l3, l2, l1, l0]);
        match self.core.checksum(addr, len) {
            Ok(crc) => {
                let c = crc.to_be_bytes();
                // Reading flash to compute it takes time too: ~1 ns per byte is plenty.
                self.pending = Some(Pending {
                    until_ns: self.clock.now_ns() + u64::from(len),
                    answer: ACK,
                    stretch: false,
                    then: Some([c[0], c[1], c[2], c[3], c[0] ^ c[1] ^ c[2] ^ c[3]]),
                });
                self.reset_to_command();
            }
            Err(_) => self.nack(),
        }
    }

    /// What one read transaction gets (bytes past it read as 0xFF, the idle bus).
    pub fn next_frame(&mut self) -> Vec<u8> {
        if let Some(frame) = self.out.pop_front() {
            return frame;
        }
        if let Some(p) = self.pending {
            if self.opts.busy_forever && !p.stretch {
                self.stats.busy_bytes += 1;
                return vec![BUSY];
            }
            if self.clock.now_ns() < p.until_ns {
                if p.stretch {
                    // Clock stretching: the read completes only when the work is done.
                    self.clock.advance_to(p.until_ns);
                } else {
                    self.stats.busy_bytes += 1;
                    return vec![BUSY];
                }
            }
            self.pending = None;
            if let Some(extra) = p.then {
                self.out.push_back(extra.to_vec());
            }
            return vec![p.answer];
        }
        Vec::new()
    }

    fn transfer_ns(&self, bytes: usize) -> u64 {
        // 9 clocks per byte plus the address byte.
        (bytes as u64 + 1) * 9 * 1_000_000_000 / u64::from(self.opts.bus_hz.max(1))
    }
}

/// Why a simulated transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimI2cError(pub ErrorKind);

impl embedded_hal::i2c::Error for SimI2cError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// Faults a test can switch on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusFaults {
    /// After this many more transactions, the device stops acknowledging its address.
    pub vanish_after: Option<u32>,
    /// Flip the first byte of the next read (a corrupted ACK).
    pub corrupt_next_read: bool,
    /// The next write transaction fails with an arbitration loss.
    pub lose_arbitration_once: bool,
    /// The host adapter gives up on a transfer held (clock-stretched) longer than this, as
    /// Linux i2c drivers do: the read fails with a bus error after that long.
    pub adapter_timeout_ms: Option<u32>,
}

/// An in-process I2C bus with one virtual bootloader on it.
pub struct SimI2cBus {
    /// The device.
    pub server: I2cServer,
    /// Faults to inject.
    pub faults: BusFaults,
    /// Transactions seen.
    pub transactions: u64,
}

impl SimI2cBus {
    /// A bus with `server` on it.
    pub fn new(server: I2cServer) -> Self {
        SimI2cBus {
            server,
            faults: BusFaults::default(),
            transactions: 0,
        }
    }
}

impl ErrorType for SimI2cBus {
    type Error = SimI2cError;
}

impl I2c for SimI2cBus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.transactions += 1;
        let nack = SimI2cError(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        if address != self.server.opts.address {
            return Err(nack);
        }
        if let Some(left) = self.faults.vanish_after.as_mut() {
            if *left == 0 {
                self.server.clock.advance_ns(self.server.transfer_ns(0));
                return Err(nack);
            }
            *left -= 1;
        }
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    if std::mem::take(&mut self.faults.lose_arbitration_once) {
                        return Err(SimI2cError(ErrorKind::ArbitrationLoss));
                    }
                    self.server
                        .clock
                        .advance_ns(self.server.transfer_ns(bytes.len()));
                    self.server.on_write(bytes);
                }
                Operation::Read(buf) => {
                    if let (Some(limit), Some(p)) =
                        (self.faults.adapter_timeout_ms, self.server.pending)
                    {
                        let limit_ns = u64::from(limit) * 1_000_000;
                        let now = self.server.clock.now_ns();
                        if p.stretch && self.server.out.is_empty() && p.until_ns > now + limit_ns {
                            self.server.clock.advance_ns(limit_ns);
                            return Err(SimI2cError(ErrorKind::Other));
                        }
                    }
                    self.server
                        .clock
                        .advance_ns(self.server.transfer_ns(buf.len()));
                    let frame = self.server.next_frame();
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = frame.get(i).copied().unwrap_or(0xFF);
                    }
                    if std::mem::take(&mut self.faults.corrupt_next_read) {
                        if let Some(first) = buf.first_mut() {
                            *first ^= 0x5A;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
