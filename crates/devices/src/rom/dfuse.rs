//! The USB DfuSe (AN3156) server of the virtual ROM bootloader, on an in-process USB control
//! interface: [`SimDfuUsb`] implements the host's [`DfuTransport`], so the real host
//! ([`brickless_rom::dfuse::DfuseHost`]) drives it exactly as it drives a device through nusb.
//!
//! The device follows the DFU 1.1 state machine as ST's bootloader does: DNLOAD block 0 carries
//! a command (Set Address Pointer, Erase, Mass Erase, Read Unprotect), blocks ≥ 2 carry data
//! for `(block − 2) × wTransferSize + pointer`; the work runs on the GETSTATUS that follows,
//! which answers dfuDNBUSY with bwPollTimeout set to the modelled flash time; the next
//! GETSTATUS after that time gives dfuDNLOAD-IDLE or dfuERROR with the failure's bStatus.
//! Requests that the state does not allow are stalled (dfuERROR, errSTALLEDPKT). Time is the
//! shared [`SimClock`]; the host sleeps through [`SimDelay`](crate::clock::SimDelay) on the
//! same clock.

use brickless_rom::dfuse::{
    command, request, DfuState, DfuStatus, DfuStatusCode, DfuTransport, UsbError,
};
use brickless_rom::RomDevice;

use super::core::{RomCore, RomError};
use crate::clock::SimClock;

/// The memory-layout string of the part's internal flash, as the ROM's alt setting 0 names it
/// (runs of equal sectors; a new `/0x…/` group after a hole between banks).
pub fn memory_layout(device: &RomDevice) -> String {
    let mut out = String::from("@Internal Flash  ");
    let mut next_addr: Option<u32> = None;
    let mut run: Option<(u32, u32)> = None; // (count, size)
    let mut first_in_group = true;
    let flush = |out: &mut String, run: &mut Option<(u32, u32)>, first: &mut bool| {
        if let Some((count, size)) = run.take() {
            if !*first {
                out.push(',');
            }
            *first = false;
            if size >= 1024 && size % 1024 == 0 {
                out.push_str(&format!("{count:02}*{:03}Kg", size / 1024));
            } else {
                out.push_str(&format!("{count:02}*{size:03} g"));
            }
        }
    };
    for s in device.geometry.sectors() {
        if next_addr != Some(s.addr) {
            flush(&mut out, &mut run, &mut first_in_group);
            out.push_str(&format!("/0x{:08X}/", s.addr));
            first_in_group = true;
        }
        match run {
            Some((count, size)) if size == s.size => run = Some((count + 1, size)),
            _ => {
                flush(&mut out, &mut run, &mut first_in_group);
                run = Some((1, s.size));
            }
        }
        next_addr = Some(s.addr + s.size);
    }
    flush(&mut out, &mut run, &mut first_in_group);
    out
}

/// Faults a test can switch on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DfuFaults {
    /// Report a 1 ms poll timeout and stall this many GETSTATUS requests made while the
    /// device is still busy (what dfu-util works around on some L4 ROMs).
    pub stall_busy_polls: u32,
    /// Stay in dfuDNBUSY forever.
    pub busy_forever: bool,
    /// Fail the next data block with this status after its busy time.
    pub fail_next_write: Option<DfuStatusCode>,
    /// After this many more requests, the device is gone from the bus.
    pub vanish_after: Option<u32>,
    /// Return this many bytes fewer than asked on the next UPLOAD.
    pub short_next_upload: usize,
    /// Like the F405 on mass erase: report a 100 ms poll time, then leave every GETSTATUS
    /// unanswered (USB timeout) until the work is done.
    pub silent_while_busy: bool,
}

/// Counters tests look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DfuStats {
    /// Data blocks programmed.
    pub blocks_written: u32,
    /// Page erases done.
    pub pages_erased: u32,
    /// Mass erases done.
    pub mass_erases: u32,
    /// Requests stalled.
    pub stalls: u32,
    /// GETSTATUS requests.
    pub status_polls: u32,
}

#[derive(Debug, Clone)]
enum Job {
    Command(Vec<u8>),
    Write { block: u16, data: Vec<u8> },
}

/// The device side of DfuSe over a [`RomCore`].
pub struct DfuServer {
    /// The part's memories and protection.
    pub core: RomCore,
    clock: SimClock,
    transfer_size: u16,
    state: DfuState,
    status: DfuStatusCode,
    pointer: u32,
    job: Option<Job>,
    busy_until_ns: u64,
    outcome: Result<(), DfuStatusCode>,
    /// Set once the device left DFU (manifest) or reset (read unprotect): requests fail.
    pub gone: bool,
    /// Where a leave request asked to jump, if it did.
    pub left_to: Option<u32>,
    reset_after_busy: bool,
    layout: String,
    /// Faults to inject.
    pub faults: DfuFaults,
    /// Counters for tests.
    pub stats: DfuStats,
}

impl DfuServer {
    /// A DFU-mode device for `core` with the given wTransferSize (ST ROMs: 1024 or 2048).
    pub fn new(core: RomCore, transfer_size: u16, clock: SimClock) -> Self {
        let layout = memory_layout(core.device);
        let pointer = core.geometry().base();
        DfuServer {
            core,
            clock,
            transfer_size: transfer_size.max(1),
            state: DfuState::Idle,
            status: DfuStatusCode::Ok,
            pointer,
            job: None,
            busy_until_ns: 0,
            outcome: Ok(()),
            gone: false,
            left_to: None,
            reset_after_busy: false,
            layout,
            faults: DfuFaults::default(),
            stats: DfuStats::default(),
        }
    }

    /// The memory-layout string of alt setting 0.
    pub fn layout(&self) -> &str {
        &self.layout
    }

    /// wTransferSize.
    pub fn transfer_size(&self) -> u16 {
        self.transfer_size
    }

    /// The current DFU state.
    pub fn state(&self) -> DfuState {
        self.state
    }

    fn stall(&mut self) -> UsbError {
        self.stats.stalls += 1;
        self.state = DfuState::Error;
        self.status = DfuStatusCode::StalledPacket;
        UsbError::Stall
    }

    fn fail_with(e: &RomError, writing: bool) -> DfuStatusCode {
        match e {
            RomError::ReadProtected => DfuStatusCode::Vendor,
            RomError::NotMapped { .. }
            | RomError::NoSuchPage(_)
            | RomError::NoSuchBank(_)
            | RomError::Unaligned => DfuStatusCode::Address,
            RomError::WriteProtected { .. } => DfuStatusCode::Write,
            RomError::NoMassErase => DfuStatusCode::Target,
            RomError::Flash(_) if writing => DfuStatusCode::Prog,
            RomError::Flash(_) => DfuStatusCode::Erase,
        }
    }

    fn erase_ns(&self, bytes: u64) -> u64 {
        let t = self.core.geometry().timing;
        (bytes / 1024).max(1) * u64::from(t.erase_per_kib_typ_us) * 1_000
    }

    fn program_ns(&self, len: usize) -> u64 {
        let g = self.core.geometry();
        let units = len.div_ceil(g.write_unit.max(1) as usize) as u64;
        units * u64::from(g.timing.program_unit_typ_us) * 1_000
    }

    /// Runs the job of a dfuDNLOAD-SYNC; returns its modelled duration and outcome.
    fn run(&mut self, job: Job) -> (u64, Result<(), DfuStatusCode>) {
        match job {
            Job::Write { block, data } => {
                let addr = u32::from(block - 2)
                    .wrapping_mul(u32::from(self.transfer_size))
                    .wrapping_add(self.pointer);
                let t = self.program_ns(data.len());
                if let Some(code) = self.faults.fail_next_write.take() {
                    return (t, Err(code));
                }
                let r = self
                    .core
                    .write(addr, &data)
                    .map(|_| ())
                    .map_err(|e| Self::fail_with(&e, true));
                if r.is_ok() {
                    self.stats.blocks_written += 1;
                }
                (t, r)
            }
            Job::Command(bytes) => match bytes.as_slice() {
                [command::SET_ADDRESS, a0, a1, a2, a3] => {
                    let addr = u32::from_le_bytes([*a0, *a1, *a2, *a3]);
                    if self.core.is_readable(addr) || self.core.is_writable(addr) {
                        self.pointer = addr;
                        (50_000, Ok(()))
                    } else {
                        (50_000, Err(DfuStatusCode::Address))
                    }
                }
                [command::ERASE, a0, a1, a2, a3] => {
                    let addr = u32::from_le_bytes([*a0, *a1, *a2, *a3]);
                    let Some(page) = self.core.device.page_index(addr) else {
                        return (50_000, Err(DfuStatusCode::Address));
                    };
                    let size = self.core.device.page(page).map_or(0, |s| u64::from(s.size));
                    let r = self
                        .core
                        .erase_pages(&[page])
                        .map_err(|e| Self::fail_with(&e, false));
                    if r.is_ok() {
                        self.stats.pages_erased += 1;
                    }
                    (self.erase_ns(size), r)
                }
                [command::ERASE] => {
                    let r = self
                        .core
                        .mass_erase()
                        .map_err(|e| Self::fail_with(&e, false));
                    if r.is_ok() {
                        self.stats.mass_erases += 1;
                    }
                    (
                        self.erase_ns(u64::from(self.core.geometry().total_size())),
                        r,
                    )
                }
                [command::READ_UNPROTECT] => {
                    let _ = self.core.readout_unprotect();
                    self.reset_after_busy = true;
                    (
                        self.erase_ns(u64::from(self.core.geometry().total_size())),
                        Ok(()),
                    )
                }
                [command::GET_COMMANDS] => (1_000, Ok(())),
                _ => (1_000, Err(DfuStatusCode::StalledPacket)),
            },
        }
    }

    fn status_reply(&self, poll_ms: u32) -> DfuStatus {
        DfuStatus {
            status: self.status,
            poll_timeout_ms: poll_ms,
            state: self.state,
            string_index: 0,
        }
    }

    fn get_status(&mut self) -> Result<DfuStatus, UsbError> {
        self.stats.status_polls += 1;
        let now = self.clock.now_ns();
        match self.state {
            DfuState::DnloadSync => {
                let Some(job) = self.job.take() else {
                    self.state = DfuState::DnloadIdle;
                    return Ok(self.status_reply(0));
                };
                let (duration, outcome) = self.run(job);
                self.outcome = outcome;
                self.busy_until_ns = now + duration;
                self.state = DfuState::DnBusy;
                // The L4 symptom: a too-short poll timeout, then stalls while still busy.
                let poll_ms = if self.faults.stall_busy_polls > 0 {
                    1
                } else if self.faults.silent_while_busy {
                    100
                } else {
                    duration.div_ceil(1_000_000) as u32
                };
                Ok(self.status_reply(poll_ms))
            }
            DfuState::DnBusy => {
                if self.faults.busy_forever || now < self.busy_until_ns {
                    if self.faults.silent_while_busy {
                        // The host's transfer times out after its timeout (5 s in nusb use).
                        self.clock.advance_ns(5_000_000_000);
                        return Err(UsbError::Timeout);
                    }
                    if self.faults.stall_busy_polls > 0 {
                        self.faults.stall_busy_polls -= 1;
                        self.stats.stalls += 1;
                        return Err(UsbError::Stall);
                    }
                    let left = self.busy_until_ns.saturating_sub(now).div_ceil(1_000_000);
                    return Ok(self.status_reply(left.max(1) as u32));
                }
                if self.reset_after_busy {
                    self.gone = true;
                    return Err(UsbError::Disconnected);
                }
                match self.outcome {
                    Ok(()) => self.state = DfuState::DnloadIdle,
                    Err(code) => {
                        self.state = DfuState::Error;
                        self.status = code;
                    }
                }
                Ok(self.status_reply(0))
            }
            DfuState::ManifestSync => {
                self.state = DfuState::Manifest;
                self.left_to = Some(self.pointer);
                let reply = self.status_reply(10);
                // The ROM jumps or resets right after: it is gone from the bus.
                self.gone = true;
                Ok(reply)
            }
            _ => Ok(self.status_reply(0)),
        }
    }

    fn dnload(&mut self, block: u16, data: &[u8]) -> Result<(), UsbError> {
        if !matches!(self.state, DfuState::Idle | DfuState::DnloadIdle) {
            return Err(self.stall());
        }
        if data.is_empty() {
            self.state = DfuState::ManifestSync;
            return Ok(());
        }
        if data.len() > usize::from(self.transfer_size) {
            return Err(self.stall());
        }
        self.job = Some(match block {
            0 => Job::Command(data.to_vec()),
            1 => return Err(self.stall()),
            _ => Job::Write {
                block,
                data: data.to_vec(),
            },
        });
        self.state = DfuState::DnloadSync;
        Ok(())
    }

    fn upload(&mut self, block: u16, buf: &mut [u8]) -> Result<usize, UsbError> {
        if !matches!(self.state, DfuState::Idle | DfuState::UploadIdle) {
            return Err(self.stall());
        }
        if buf.len() > usize::from(self.transfer_size) {
            return Err(self.stall());
        }
        let n = match block {
            0 => {
                let list = [
                    command::GET_COMMANDS,
                    command::SET_ADDRESS,
                    command::ERASE,
                    command::READ_UNPROTECT,
                ];
                let n = list.len().min(buf.len());
                buf[..n].copy_from_slice(&list[..n]);
                n
            }
            1 => return Err(self.stall()),
            _ => {
                if self.core.is_read_protected() {
                    let e = self.stall();
                    self.status = DfuStatusCode::Vendor;
                    return Err(e);
                }
                let addr = u32::from(block - 2)
                    .wrapping_mul(u32::from(self.transfer_size))
                    .wrapping_add(self.pointer);
                let n = buf
                    .len()
                    .saturating_sub(std::mem::take(&mut self.faults.short_next_upload));
                if self.core.read(addr, &mut buf[..n]).is_err() {
                    let e = self.stall();
                    self.status = DfuStatusCode::Address;
                    return Err(e);
                }
                n
            }
        };
        self.state = DfuState::UploadIdle;
        Ok(n)
    }

    fn tick(&mut self, data_len: usize) -> Result<(), UsbError> {
        // A control transfer takes about a USB frame, plus the data at full speed.
        self.clock.advance_ns(1_000_000 + data_len as u64 * 1_000);
        if self.gone {
            return Err(UsbError::Disconnected);
        }
        if let Some(left) = self.faults.vanish_after.as_mut() {
            if *left == 0 {
                self.gone = true;
                return Err(UsbError::Disconnected);
            }
            *left -= 1;
        }
        Ok(())
    }
}

/// An in-process USB DFU interface with one virtual bootloader behind it.
pub struct SimDfuUsb {
    /// The device.
    pub server: DfuServer,
    /// The interface number the device answers on.
    pub interface: u16,
}

impl SimDfuUsb {
    /// The device on interface 0.
    pub fn new(server: DfuServer) -> Self {
        SimDfuUsb {
            server,
            interface: 0,
        }
    }
}

impl DfuTransport for SimDfuUsb {
    fn control_out(
        &mut self,
        req: u8,
        value: u16,
        index: u16,
        data: &[u8],
    ) -> Result<(), UsbError> {
        let s = &mut self.server;
        s.tick(data.len())?;
        if index != self.interface {
            return Err(s.stall());
        }
        match req {
            request::DNLOAD => s.dnload(value, data),
            request::CLRSTATUS if s.state == DfuState::Error => {
                s.state = DfuState::Idle;
                s.status = DfuStatusCode::Ok;
                Ok(())
            }
            request::ABORT
                if matches!(
                    s.state,
                    DfuState::Idle
                        | DfuState::DnloadSync
                        | DfuState::DnloadIdle
                        | DfuState::ManifestSync
                        | DfuState::UploadIdle
                ) =>
            {
                s.job = None;
                s.state = DfuState::Idle;
                Ok(())
            }
            _ => Err(s.stall()),
        }
    }

    fn control_in(
        &mut self,
        req: u8,
        value: u16,
        index: u16,
        buf: &mut [u8],
    ) -> Result<usize, UsbError> {
        let s = &mut self.server;
        s.tick(buf.len())?;
        if index != self.interface {
            return Err(s.stall());
        }
        match req {
            request::GETSTATUS => {
                let st = s.get_status()?.to_bytes();
                let n = st.len().min(buf.len());
                buf[..n].copy_from_slice(&st[..n]);
                Ok(n)
            }
            request::GETSTATE => {
                if let Some(b) = buf.first_mut() {
                    *b = s.state.as_u8();
                }
                Ok(buf.len().min(1))
            }
            request::UPLOAD => s.upload(value, buf),
            _ => Err(s.stall()),
        }
    }
}
