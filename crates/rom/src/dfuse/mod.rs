//! USB DFU host for the STM32 ROM bootloader's DfuSe extension (AN3156), sans-IO: it runs over
//! any USB stack that implements [`DfuTransport`] (two class control requests), and sleeps
//! through embedded-hal's `DelayNs`. With the `usb` feature, `usb` opens a real device through nusb.
//!
//! Guarantees: every command is followed by GETSTATUS polling until the device reports
//! dfuDNLOAD-IDLE, within a time budget scaled to the work; a dfuERROR is cleared and returned
//! as a named [`DfuseError::Device`]; a write block is never retried (re-programming a flash
//! word is not safe on ECC parts) and never reported as done unless the device said so;
//! [`DfuseHost::program`] checks the whole range against the memory layout before it erases
//! anything.

pub mod layout;
#[cfg(feature = "usb")]
pub mod usb;

use crate::device::RomDevice;
use crate::target::{Erase, ReadProtection, RomTarget, TargetInfo};
use embedded_hal::delay::DelayNs;
pub use layout::{Attributes, LayoutError, MemoryLayout, Page, Segment};

/// DFU class request codes (bRequest).
pub mod request {
    /// DFU_DETACH.
    pub const DETACH: u8 = 0;
    /// DFU_DNLOAD.
    pub const DNLOAD: u8 = 1;
    /// DFU_UPLOAD.
    pub const UPLOAD: u8 = 2;
    /// DFU_GETSTATUS.
    pub const GETSTATUS: u8 = 3;
    /// DFU_CLRSTATUS.
    pub const CLRSTATUS: u8 = 4;
    /// DFU_GETSTATE.
    pub const GETSTATE: u8 = 5;
    /// DFU_ABORT.
    pub const ABORT: u8 = 6;
}

/// DfuSe command bytes sent with DNLOAD wBlockNum 0.
pub mod command {
    /// Get Commands (UPLOAD block 0 returns the list).
    pub const GET_COMMANDS: u8 = 0x00;
    /// Set Address Pointer (+ 4-byte little-endian address).
    pub const SET_ADDRESS: u8 = 0x21;
    /// Erase (+ address: page erase; alone: mass erase).
    pub const ERASE: u8 = 0x41;
    /// Read Unprotect: mass erase and reset.
    pub const READ_UNPROTECT: u8 = 0x92;
}

/// The wBlockNum of data blocks: dfu-util sets the address before every block and always
/// uses block 2, so the device's transfer-size multiplier never matters.
pub const DATA_BLOCK: u16 = 2;

/// A failed USB control transfer, as the transport saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsbError {
    /// The device stalled the request (DFU: the request is not valid in this state).
    #[error("the device stalled the request")]
    Stall,
    /// No answer within the transport's timeout.
    #[error("the device did not answer in time")]
    Timeout,
    /// The device left the bus.
    #[error("the device disconnected")]
    Disconnected,
    /// Any other transport failure.
    #[error("USB transfer failed")]
    Other,
}

/// Class-specific control requests to the DFU interface: all a USB stack must provide.
pub trait DfuTransport {
    /// bmRequestType 0x21 (class, interface, host-to-device) with a data stage of `data`.
    fn control_out(
        &mut self,
        request: u8,
        value: u16,
        index: u16,
        data: &[u8],
    ) -> Result<(), UsbError>;
    /// bmRequestType 0xA1 (class, interface, device-to-host); returns the bytes received.
    fn control_in(
        &mut self,
        request: u8,
        value: u16,
        index: u16,
        buf: &mut [u8],
    ) -> Result<usize, UsbError>;
}

impl<T: DfuTransport + ?Sized> DfuTransport for &mut T {
    fn control_out(&mut self, r: u8, v: u16, i: u16, d: &[u8]) -> Result<(), UsbError> {
        (**self).control_out(r, v, i, d)
    }
    fn control_in(&mut self, r: u8, v: u16, i: u16, b: &mut [u8]) -> Result<usize, UsbError> {
        (**self).control_in(r, v, i, b)
    }
}

/// bState of DFU_GETSTATUS / DFU_GETSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfuState {
    /// appIDLE (0).
    AppIdle,
    /// appDETACH (1).
    AppDetach,
    /// dfuIDLE (2).
    Idle,
    /// dfuDNLOAD-SYNC (3).
    DnloadSync,
    /// dfuDNBUSY (4).
    DnBusy,
    /// dfuDNLOAD-IDLE (5).
    DnloadIdle,
    /// dfuMANIFEST-SYNC (6).
    ManifestSync,
    /// dfuMANIFEST (7).
    Manifest,
    /// dfuMANIFEST-WAIT-RESET (8).
    ManifestWaitReset,
    /// dfuUPLOAD-IDLE (9).
    UploadIdle,
    /// dfuERROR (10).
    Error,
    /// A value the DFU 1.1 specification does not define.
    Unknown(u8),
}

impl DfuState {
    /// Decodes bState.
    pub fn from_u8(v: u8) -> Self {
        use DfuState::*;
        match v {
            0 => AppIdle,
            1 => AppDetach,
            2 => Idle,
            3 => DnloadSync,
            4 => DnBusy,
            5 => DnloadIdle,
            6 => ManifestSync,
            7 => Manifest,
            8 => ManifestWaitReset,
            9 => UploadIdle,
            10 => Error,
            other => Unknown(other),
        }
    }

    /// Encodes bState.
    pub fn as_u8(self) -> u8 {
        use DfuState::*;
        match self {
            AppIdle => 0,
            AppDetach => 1,
            Idle => 2,
            DnloadSync => 3,
            DnBusy => 4,
            DnloadIdle => 5,
            ManifestSync => 6,
            Manifest => 7,
            ManifestWaitReset => 8,
            UploadIdle => 9,
            Error => 10,
            Unknown(v) => v,
        }
    }
}

/// bStatus of DFU_GETSTATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfuStatusCode {
    /// OK (0).
    Ok,
    /// errTARGET (1): file not for this device.
    Target,
    /// errFILE (2): file fails a vendor check.
    File,
    /// errWRITE (3): device cannot write memory.
    Write,
    /// errERASE (4): memory erase failed.
    Erase,
    /// errCHECK_ERASED (5): erase check failed.
    CheckErased,
    /// errPROG (6): program memory failed.
    Prog,
    /// errVERIFY (7): programmed memory failed verification.
    Verify,
    /// errADDRESS (8): address out of range.
    Address,
    /// errNOTDONE (9): download ended before the data was complete.
    NotDone,
    /// errFIRMWARE (10): firmware corrupt.
    Firmware,
    /// errVENDOR (11): vendor-specific (ST: read protection active).
    Vendor,
    /// errUSBR (12): unexpected USB reset.
    UsbReset,
    /// errPOR (13): unexpected power-on reset.
    PowerOnReset,
    /// errUNKNOWN (14).
    Unknown,
    /// errSTALLEDPKT (15): unexpected request.
    StalledPacket,
    /// A value outside the specification.
    Other(u8),
}

impl DfuStatusCode {
    /// Decodes bStatus.
    pub fn from_u8(v: u8) -> Self {
        use DfuStatusCode::*;
        match v {
            0 => Ok,
            1 => Target,
            2 => File,
            3 => Write,
            4 => Erase,
            5 => CheckErased,
            6 => Prog,
            7 => Verify,
            8 => Address,
            9 => NotDone,
            10 => Firmware,
            11 => Vendor,
            12 => UsbReset,
            13 => PowerOnReset,
            14 => Unknown,
            15 => StalledPacket,
            other => Other(other),
        }
    }

    /// Encodes bStatus.
    pub fn as_u8(self) -> u8 {
        use DfuStatusCode::*;
        match self {
            Ok => 0,
            Target => 1,
            File => 2,
            Write => 3,
            Erase => 4,
            CheckErased => 5,
            Prog => 6,
            Verify => 7,
            Address => 8,
            NotDone => 9,
            Firmware => 10,
            Vendor => 11,
            UsbReset => 12,
            PowerOnReset => 13,
            Unknown => 14,
            StalledPacket => 15,
            Other(v) => v,
        }
    }
}

/// The 6-byte DFU_GETSTATUS answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DfuStatus {
    /// bStatus.
    pub status: DfuStatusCode,
    /// bwPollTimeout: how long to wait before the next GETSTATUS, in ms.
    pub poll_timeout_ms: u32,
    /// bState.
    pub state: DfuState,
    /// iString.
    pub string_index: u8,
}

impl DfuStatus {
    /// Decodes the 6 bytes.
    pub fn from_bytes(b: [u8; 6]) -> Self {
        DfuStatus {
            status: DfuStatusCode::from_u8(b[0]),
            poll_timeout_ms: u32::from_le_bytes([b[1], b[2], b[3], 0]),
            state: DfuState::from_u8(b[4]),
            string_index: b[5],
        }
    }

    /// Encodes the 6 bytes.
    pub fn to_bytes(self) -> [u8; 6] {
        let p = self.poll_timeout_ms.min(0x00FF_FFFF).to_le_bytes();
        [
            self.status.as_u8(),
            p[0],
            p[1],
            p[2],
            self.state.as_u8(),
            self.string_index,
        ]
    }
}

/// The DFU operation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfuOp {
    /// GETSTATUS / GETSTATE / CLRSTATUS / ABORT while bringing the device to dfuIDLE.
    ReturnToIdle,
    /// Set Address Pointer.
    SetAddress(u32),
    /// Page erase at an address.
    ErasePage(u32),
    /// Mass erase.
    MassErase,
    /// Read Unprotect.
    ReadUnprotect,
    /// Download (write) of a block at an address.
    Download(u32),
    /// Upload (read) of a block at an address.
    Upload(u32),
    /// Get Commands.
    GetCommands,
    /// Leave DFU mode (manifestation).
    Leave,
}

/// What went wrong talking DfuSe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DfuseError {
    /// The USB transfer failed.
    #[error("{op:?}: USB error: {error}")]
    Usb {
        /// The operation that failed.
        op: DfuOp,
        /// How the control transfer failed.
        error: UsbError,
    },
    /// The device entered dfuERROR; `status` is its bStatus (cleared before returning).
    #[error("{op:?}: the device reported {status:?}")]
    Device {
        /// The operation that failed.
        op: DfuOp,
        /// bStatus of the GETSTATUS that reported dfuERROR.
        status: DfuStatusCode,
    },
    /// The device is in a state this step does not allow.
    #[error("{op:?}: unexpected device state {state:?}")]
    UnexpectedState {
        /// The operation that failed.
        op: DfuOp,
        /// bState the device reported.
        state: DfuState,
    },
    /// The device stayed busy past the budget for this operation.
    #[error("{op:?}: still busy after {waited_ms} ms")]
    Timeout {
        /// The operation that failed.
        op: DfuOp,
        /// Sum of the poll delays waited, in ms (from bwPollTimeout).
        waited_ms: u32,
    },
    /// GETSTATUS returned fewer than 6 bytes.
    #[error("GETSTATUS returned {len} bytes, expected 6")]
    ShortStatus {
        /// Bytes received.
        len: usize,
    },
    /// An UPLOAD returned fewer bytes than asked for.
    #[error("upload at {address:#010x} returned {got} of {expected} bytes")]
    ShortUpload {
        /// Absolute address of the block's first byte.
        address: u32,
        /// Bytes asked for.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// A block longer than the device's wTransferSize.
    #[error("block of {len} bytes exceeds the transfer size {max}")]
    BlockTooLarge {
        /// The block's length in bytes.
        len: usize,
        /// The transfer size in use (wTransferSize of the DFU functional descriptor).
        max: u16,
    },
    /// The range is not covered by the memory layout.
    #[error("address {address:#010x} is outside the device's memory layout")]
    OutsideLayout {
        /// The first absolute address no page covers.
        address: u32,
    },
    /// The layout marks the page holding `address` as not erasable / writable / readable.
    #[error("the page at {address:#010x} does not allow {what}")]
    NotAllowed {
        /// An absolute address in the refused page.
        address: u32,
        /// The operation refused: `"erase"` or `"write"`.
        what: &'static str,
    },
    /// Read-back differs from what was written.
    #[error("verify failed at {address:#010x}: wrote {expected:#04x}, read {found:#04x}")]
    VerifyMismatch {
        /// Absolute address of the first differing byte.
        address: u32,
        /// The byte written.
        expected: u8,
        /// The byte read back.
        found: u8,
    },
    /// The ROM's DfuSe has no command for this (option bytes are a separate alt setting).
    #[error("DfuSe cannot {what}")]
    Unsupported {
        /// What was asked for, as a phrase ("write-protect", …).
        what: &'static str,
    },
    /// A memory-layout string longer than a USB string descriptor can carry.
    #[error("memory-layout string longer than {max} bytes")]
    LayoutTooLong {
        /// The longest layout string accepted, in bytes.
        max: usize,
    },
    /// The memory-layout string is malformed.
    #[error("memory layout: {0}")]
    Layout(#[from] LayoutError),
    /// A `.dfu` file with nothing to program for the alternate setting: no elements, only
    /// empty ones, or an empty raw payload.
    #[error("the .dfu file holds no data for alternate setting {alt_setting}")]
    NoData {
        /// The alternate setting (bAlternateSetting) being programmed.
        alt_setting: u8,
    },
}

impl crate::target::TargetError for DfuseError {
    fn kind(&self) -> crate::target::ErrorKind {
        use crate::target::ErrorKind as K;
        match self {
            DfuseError::Usb {
                error: UsbError::Timeout,
                ..
            } => K::Timeout,
            DfuseError::Usb { .. } => K::Link,
            DfuseError::Device {
                status: DfuStatusCode::Vendor,
                ..
            } => K::ReadProtected,
            DfuseError::Device {
                status: DfuStatusCode::Address,
                ..
            }
            | DfuseError::OutsideLayout { .. } => K::OutsideFlash,
            DfuseError::Device { .. } | DfuseError::NotAllowed { .. } => K::Nack,
            DfuseError::Timeout { .. } => K::Timeout,
            DfuseError::VerifyMismatch { .. } => K::Verify,
            DfuseError::Unsupported { .. } => K::Unsupported,
            DfuseError::BlockTooLarge { .. } => K::InvalidArgument,
            _ => K::Protocol,
        }
    }
}

/// Time budgets (ms of accumulated poll wait) per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DfuTimeouts {
    /// Set Address Pointer, Get Commands, CLRSTATUS / ABORT recovery.
    pub command_ms: u32,
    /// Budget per KiB of an erased page (a 128 KiB F4 sector gets 128 × this).
    pub erase_per_kib_ms: u32,
    /// Minimum for any page erase.
    pub erase_min_ms: u32,
    /// Mass erase and read unprotect (F405 reports 100 ms and takes up to 32 s).
    pub mass_erase_ms: u32,
    /// One write block.
    pub write_ms: u32,
    /// GETSTATUS retries after a stall or timeout (dfu-util: some L4 stall while busy).
    pub status_retries: u8,
}

impl Default for DfuTimeouts {
    fn default() -> Self {
        DfuTimeouts {
            command_ms: 1_000,
            erase_per_kib_ms: 40,
            erase_min_ms: 1_000,
            mass_erase_ms: 60_000,
            write_ms: 5_000,
            status_retries: 3,
        }
    }
}

/// A DfuSe host over a transport, on one DFU interface (alternate setting already selected).
pub struct DfuseHost<T, D> {
    transport: T,
    delay: D,
    interface: u16,
    transfer_size: u16,
    timeouts: DfuTimeouts,
    /// Padding unit for the final block of a write; 8 works around the L43x V9.1 erratum on
    /// writes not a multiple of 8 bytes.
    pad_to: u16,
    /// Padding byte: the flash's erased value (0xFF; 0x00 on L0).
    pad_fill: u8,
    /// The flash's erased value when known: padded pieces holding only it are not written.
    skip_erased: Option<u8>,
}

impl<T: DfuTransport, D: DelayNs> DfuseHost<T, D> {
    /// A host on interface number `interface`; `transfer_size` is the DFU functional
    /// descriptor's wTransferSize (2048 on F4 ROMs, 1024 in ST's USB library).
    pub fn new(transport: T, delay: D, interface: u16, transfer_size: u16) -> Self {
        DfuseHost {
            transport,
            delay,
            interface,
            transfer_size: transfer_size.clamp(1, MAX_TRANSFER as u16),
            timeouts: DfuTimeouts::default(),
            pad_to: 8,
            pad_fill: 0xFF,
            skip_erased: None,
        }
    }

    /// Replaces the time budgets.
    pub fn with_timeouts(mut self, timeouts: DfuTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the write padding unit (1 = no padding) and the padding byte (the erased value).
    pub fn with_padding(mut self, pad_to: u16, fill: u8) -> Self {
        self.pad_to = pad_to.max(1);
        self.pad_fill = fill;
        self
    }

    /// Skips writing the pieces of a block (the padding unit's multiples) that hold only
    /// `erased`, the flash's erased value: on ECC parts a unit programmed with it could not be
    /// programmed again before an erase. `None` (the default, for an unknown part) writes
    /// every byte.
    pub fn with_skip_erased(mut self, erased: Option<u8>) -> Self {
        self.skip_erased = erased;
        self
    }

    /// The wTransferSize in use.
    pub fn transfer_size(&self) -> u16 {
        self.transfer_size
    }

    /// Gives back the transport and delay.
    pub fn into_parts(self) -> (T, D) {
        (self.transport, self.delay)
    }

    /// Mutable access to the transport (tests inject faults through it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn out(&mut self, op: DfuOp, request: u8, value: u16, data: &[u8]) -> Result<(), DfuseError> {
        match self
            .transport
            .control_out(request, value, self.interface, data)
        {
            Ok(()) => Ok(()),
            Err(UsbError::Stall) => Err(self.explain_stall(op)),
            Err(error) => Err(DfuseError::Usb { op, error }),
        }
    }

    /// After a stalled request the device sits in dfuERROR with the reason in bStatus: read
    /// it, clear it, and name it (e.g. errVENDOR when read protection is active).
    fn explain_stall(&mut self, op: DfuOp) -> DfuseError {
        match self.status_once(op) {
            Ok(s) if s.state == DfuState::Error && s.status != DfuStatusCode::Ok => {
                let _ = self.clear_status();
                DfuseError::Device {
                    op,
                    status: s.status,
                }
            }
            _ => DfuseError::Usb {
                op,
                error: UsbError::Stall,
            },
        }
    }

    fn status_once(&mut self, op: DfuOp) -> Result<DfuStatus, DfuseError> {
        let mut buf = [0u8; 6];
        let n = self
            .transport
            .control_in(request::GETSTATUS, 0, self.interface, &mut buf)
            .map_err(|error| DfuseError::Usb { op, error })?;
        if n < 6 {
            return Err(DfuseError::ShortStatus { len: n });
        }
        Ok(DfuStatus::from_bytes(buf))
    }

    /// DFU_GETSTATUS.
    pub fn get_status(&mut self) -> Result<DfuStatus, DfuseError> {
        self.status_once(DfuOp::ReturnToIdle)
    }

    /// DFU_GETSTATE.
    pub fn get_state(&mut self) -> Result<DfuState, DfuseError> {
        let mut buf = [0u8; 1];
        let op = DfuOp::ReturnToIdle;
        let n = self
            .transport
            .control_in(request::GETSTATE, 0, self.interface, &mut buf)
            .map_err(|error| DfuseError::Usb { op, error })?;
        if n < 1 {
            return Err(DfuseError::ShortStatus { len: n });
        }
        Ok(DfuState::from_u8(buf[0]))
    }

    /// DFU_CLRSTATUS (leaves dfuERROR).
    pub fn clear_status(&mut self) -> Result<(), DfuseError> {
        // Not through `out`: a stall here must not recurse into explaining the stall.
        let op = DfuOp::ReturnToIdle;
        self.transport
            .control_out(request::CLRSTATUS, 0, self.interface, &[])
            .map_err(|error| DfuseError::Usb { op, error })
    }

    /// DFU_ABORT (back to dfuIDLE from the idle sub-states).
    pub fn abort(&mut self) -> Result<(), DfuseError> {
        self.out(DfuOp::ReturnToIdle, request::ABORT, 0, &[])
    }

    /// Brings the device to dfuIDLE: clears an error, aborts a download or upload.
    pub fn ensure_idle(&mut self) -> Result<(), DfuseError> {
        let op = DfuOp::ReturnToIdle;
        for _ in 0..3 {
            let status = self.status_once(op)?;
            match status.state {
                DfuState::Idle => return Ok(()),
                DfuState::Error => self.clear_status()?,
                DfuState::DnloadIdle | DfuState::UploadIdle | DfuState::DnloadSync => {
                    self.abort()?
                }
                DfuState::DnBusy => self.delay.delay_ms(status.poll_timeout_ms.max(1)),
                state => return Err(DfuseError::UnexpectedState { op, state }),
            }
        }
        let state = self.status_once(op)?.state;
        if state == DfuState::Idle {
            Ok(())
        } else {
            Err(DfuseError::UnexpectedState { op, state })
        }
    }

    /// Polls GETSTATUS after a DNLOAD until dfuDNLOAD-IDLE, sleeping bwPollTimeout between
    /// polls, within `budget_ms` of accumulated waiting.
    fn wait_done(&mut self, op: DfuOp, budget_ms: u32) -> Result<(), DfuseError> {
        let mut waited: u32 = 0;
        let mut last_poll: u32 = 1;
        let mut retries = 0u8;
        // A mass erase can keep the device from answering for tens of seconds while it
        // reports a 100 ms poll time (F405: dfu-util waits 35 s): keep asking, once a
        // second, for the whole budget instead of a few quick retries.
        let patient = matches!(op, DfuOp::MassErase | DfuOp::ReadUnprotect);
        loop {
            let status = match self.status_once(op) {
                Ok(s) => s,
                // Some L4 bootloaders report too short a poll time and stall (or miss) the
                // poll while busy: wait as long again and ask again, a bounded number of times.
                Err(DfuseError::Usb {
                    error: UsbError::Stall | UsbError::Timeout,
                    ..
                }) if (patient || retries < self.timeouts.status_retries) && waited < budget_ms => {
                    retries = retries.saturating_add(1);
                    let wait = if patient {
                        last_poll.max(1_000)
                    } else {
                        last_poll
                    };
                    self.delay.delay_ms(wait);
                    waited = waited.saturating_add(wait);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match status.state {
                DfuState::DnloadIdle | DfuState::Idle if status.status == DfuStatusCode::Ok => {
                    return Ok(())
                }
                DfuState::DnBusy | DfuState::DnloadSync => {
                    if waited >= budget_ms {
                        return Err(DfuseError::Timeout {
                            op,
                            waited_ms: waited,
                        });
                    }
                    last_poll = status.poll_timeout_ms.max(1);
                    self.delay.delay_ms(last_poll);
                    waited = waited.saturating_add(last_poll);
                }
                DfuState::Error => {
                    // Leave the device usable for the next command, then report.
                    let _ = self.clear_status();
                    return Err(DfuseError::Device {
                        op,
                        status: status.status,
                    });
                }
                state => {
                    if status.status != DfuStatusCode::Ok {
                        return Err(DfuseError::Device {
                            op,
                            status: status.status,
                        });
                    }
                    return Err(DfuseError::UnexpectedState { op, state });
                }
            }
        }
    }

    fn special(&mut self, op: DfuOp, cmd: &[u8], budget_ms: u32) -> Result<(), DfuseError> {
        self.out(op, request::DNLOAD, 0, cmd)?;
        self.wait_done(op, budget_ms)
    }

    /// Set Address Pointer (`21 A0..A3`).
    pub fn set_address(&mut self, address: u32) -> Result<(), DfuseError> {
        let a = address.to_le_bytes();
        let budget = self.timeouts.command_ms;
        self.special(
            DfuOp::SetAddress(address),
            &[command::SET_ADDRESS, a[0], a[1], a[2], a[3]],
            budget,
        )
    }

    /// Erases the page holding `address` (`41 A0..A3`); `page_size` scales the time budget.
    pub fn erase_page(&mut self, address: u32, page_size: u32) -> Result<(), DfuseError> {
        let a = address.to_le_bytes();
        let t = self.timeouts;
        let budget = (page_size / 1024)
            .saturating_mul(t.erase_per_kib_ms)
            .max(t.erase_min_ms);
        self.special(
            DfuOp::ErasePage(address),
            &[command::ERASE, a[0], a[1], a[2], a[3]],
            budget,
        )
    }

    /// Mass erase (`41` alone).
    pub fn mass_erase(&mut self) -> Result<(), DfuseError> {
        let budget = self.timeouts.mass_erase_ms;
        self.special(DfuOp::MassErase, &[command::ERASE], budget)
    }

    /// Read Unprotect (`92`): the device mass-erases and resets, so it may vanish from the
    /// bus; that counts as success, an explicit dfuERROR does not.
    pub fn read_unprotect(&mut self) -> Result<(), DfuseError> {
        let op = DfuOp::ReadUnprotect;
        self.out(op, request::DNLOAD, 0, &[command::READ_UNPROTECT])?;
        match self.wait_done(op, self.timeouts.mass_erase_ms) {
            Ok(())
            | Err(DfuseError::Usb {
                error: UsbError::Disconnected | UsbError::Stall | UsbError::Timeout,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The command bytes the bootloader supports (UPLOAD block 0), into `buf`.
    pub fn get_commands<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], DfuseError> {
        let op = DfuOp::GetCommands;
        self.ensure_idle()?;
        let n = self
            .transport
            .control_in(request::UPLOAD, 0, self.interface, buf)
            .map_err(|error| DfuseError::Usb { op, error })?;
        self.abort()?;
        Ok(buf.get(..n).unwrap_or(buf))
    }

    /// Writes one block (≤ wTransferSize) at `address`: Set Address Pointer, DNLOAD block 2,
    /// then GETSTATUS until the device has programmed it. The flash must be erased.
    pub fn download_block(&mut self, address: u32, data: &[u8]) -> Result<(), DfuseError> {
        if data.len() > usize::from(self.transfer_size) {
            return Err(DfuseError::BlockTooLarge {
                len: data.len(),
                max: self.transfer_size,
            });
        }
        self.set_address(address)?;
        let op = DfuOp::Download(address);
        self.out(op, request::DNLOAD, DATA_BLOCK, data)?;
        let budget = self.timeouts.write_ms;
        self.wait_done(op, budget)
    }

    /// Reads `buf.len()` bytes from `address` in blocks of wTransferSize.
    pub fn upload(&mut self, address: u32, buf: &mut [u8]) -> Result<(), DfuseError> {
        let step = usize::from(self.transfer_size);
        let mut offset = 0usize;
        while offset < buf.len() {
            let chunk_address = address.wrapping_add(offset as u32);
            let end = (offset + step).min(buf.len());
            let chunk = &mut buf[offset..end];
            self.set_address(chunk_address)?;
            // UPLOAD is only accepted from dfuIDLE: the address command left DNLOAD-IDLE.
            self.abort()?;
            let op = DfuOp::Upload(chunk_address);
            let got =
                match self
                    .transport
                    .control_in(request::UPLOAD, DATA_BLOCK, self.interface, chunk)
                {
                    Ok(n) => n,
                    Err(UsbError::Stall) => return Err(self.explain_stall(op)),
                    Err(error) => return Err(DfuseError::Usb { op, error }),
                };
            if got != chunk.len() {
                let _ = self.ensure_idle();
                return Err(DfuseError::ShortUpload {
                    address: chunk_address,
                    expected: chunk.len(),
                    got,
                });
            }
            offset = end;
        }
        self.abort()
    }

    /// Leaves DFU mode: optional Set Address Pointer (the jump target), then a zero-length
    /// DNLOAD and GETSTATUS. A device that drops off the bus at once counts as gone.
    pub fn leave(&mut self, jump_to: Option<u32>) -> Result<(), DfuseError> {
        if let Some(address) = jump_to {
            self.set_address(address)?;
        }
        let op = DfuOp::Leave;
        self.out(op, request::DNLOAD, DATA_BLOCK, &[])?;
        match self.status_once(op) {
            Ok(s) if s.state == DfuState::Error => Err(DfuseError::Device {
                op,
                status: s.status,
            }),
            Ok(_)
            | Err(DfuseError::Usb {
                error: UsbError::Disconnected | UsbError::Stall | UsbError::Timeout,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Checks that every byte of `[address, address + len)` lies in pages that allow `what`.
    pub fn check_range(
        layout: &MemoryLayout<'_>,
        address: u32,
        len: u32,
        need: fn(Attributes) -> bool,
        what: &'static str,
    ) -> Result<(), DfuseError> {
        if len == 0 {
            return Ok(());
        }
        let end = u64::from(address) + u64::from(len);
        let mut at = u64::from(address);
        while at < end {
            let a = at as u32;
            let page = layout
                .page_at(a)
                .ok_or(DfuseError::OutsideLayout { address: a })?;
            if !need(page.attributes) {
                return Err(DfuseError::NotAllowed { address: a, what });
            }
            at = u64::from(page.start) + u64::from(page.size);
        }
        Ok(())
    }

    /// Programs `data` at `address`: checks the range against the layout first (nothing is
    /// erased when any page is missing or not erasable/writable), then erases the touched
    /// pages, writes in wTransferSize blocks (padded with the erased value) and reads
    /// everything back, through [`crate::program::program_segments`]. Returns the bytes not
    /// written because they hold the erased value (see [`DfuseHost::with_skip_erased`]);
    /// the read-back covers them.
    pub fn program(
        &mut self,
        layout: &MemoryLayout<'_>,
        address: u32,
        data: &[u8],
        progress: &mut dyn crate::program::Progress,
    ) -> Result<u32, DfuseError> {
        let len = u32::try_from(data.len()).map_err(|_| DfuseError::OutsideLayout { address })?;
        let padded = round_up(len, u32::from(self.pad_to));
        Self::check_range(layout, address, padded, Attributes::erasable, "erase")?;
        Self::check_range(layout, address, padded, Attributes::writable, "write")?;
        let done = self.program_segments(layout, || core::iter::once((address, data)), progress)?;
        Ok(done.skipped as u32)
    }

    /// The one programming loop over this host and `layout` (pages numbered in layout
    /// order), between two returns to dfuIDLE.
    fn program_segments<'d, I: Iterator<Item = (u32, &'d [u8])>>(
        &mut self,
        layout: &MemoryLayout<'_>,
        segments: impl Fn() -> I,
        progress: &mut dyn crate::program::Progress,
    ) -> Result<crate::program::Programmed, DfuseError> {
        use crate::program::{EraseMode, Options, ProgramError};
        self.ensure_idle()?;
        let options = Options {
            erase: EraseMode::Touched,
            verify: true,
            outside_flash: false,
        };
        let mut buf = [0u8; MAX_TRANSFER];
        let mut target = LayoutTarget {
            host: &mut *self,
            layout,
        };
        let map = LayoutMap {
            layout,
            unit: u32::from(target.host.pad_to),
            fill: target.host.pad_fill,
            skip: target.host.skip_erased.is_some(),
        };
        let done = crate::program::program_segments(
            &mut target,
            &map,
            segments,
            options,
            &mut buf,
            progress,
        )
        .map_err(|e| match e {
            ProgramError::Target(e) => e,
            ProgramError::Mismatch {
                addr,
                expected,
                found,
            } => DfuseError::VerifyMismatch {
                address: addr,
                expected,
                found,
            },
            ProgramError::OutsideFlash { addr, .. } => DfuseError::OutsideLayout { address: addr },
            // DfuSe offers no checksum: a read-back decides.
            _ => DfuseError::Unsupported {
                what: "trust a device checksum",
            },
        })?;
        self.ensure_idle()?;
        Ok(done)
    }
}

/// A DfuSe host and a memory layout as a [`RomTarget`]: erase numbers are layout-order pages.
struct LayoutTarget<'h, 'l, T, D> {
    host: &'h mut DfuseHost<T, D>,
    layout: &'h MemoryLayout<'l>,
}

/// The pages of a DfuSe memory layout, in layout order, for the programming loop.
struct LayoutMap<'h, 'l> {
    layout: &'h MemoryLayout<'l>,
    unit: u32,
    fill: u8,
    skip: bool,
}

fn layout_pages<'l>(layout: &MemoryLayout<'l>) -> impl Iterator<Item = (u32, u32)> + 'l {
    layout
        .segments()
        .flat_map(|s| (0..s.count).map(move |i| (s.start + i * s.page_size, s.page_size)))
}

impl crate::program::FlashMap for LayoutMap<'_, '_> {
    fn page_at(&self, addr: u32) -> Option<crate::program::FlashPage> {
        let page = self.layout.page_at(addr)?;
        let index = layout_pages(self.layout).position(|(start, _)| start == page.start)?;
        Some(crate::program::FlashPage {
            index: u16::try_from(index).ok()?,
            start: page.start,
            size: page.size,
        })
    }
    fn page(&self, index: u16) -> Option<crate::program::FlashPage> {
        let (start, size) = layout_pages(self.layout).nth(usize::from(index))?;
        Some(crate::program::FlashPage { index, start, size })
    }
    fn pages_per_erase(&self) -> usize {
        64
    }
    fn layout(&self) -> crate::program::Layout {
        crate::program::Layout {
            write_unit: self.unit.max(1),
            erased: self.fill,
            skip_erased: self.skip,
        }
    }
}

impl<T: DfuTransport, D: DelayNs> RomTarget for LayoutTarget<'_, '_, T, D> {
    type Error = DfuseError;
    fn info(&self) -> TargetInfo {
        TargetInfo {
            pid: 0,
            protocol_version: 0x1A,
            device: None,
            read_protection: ReadProtection::Unknown,
        }
    }
    fn max_transfer(&self) -> usize {
        usize::from(self.host.transfer_size())
    }
    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), DfuseError> {
        self.host.upload(addr, buf)
    }
    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), DfuseError> {
        self.host.download_block(addr, data)
    }
    fn erase(&mut self, what: Erase<'_>) -> Result<(), DfuseError> {
        let Erase::Pages(pages) = what else {
            return Err(DfuseError::Unsupported {
                what: "erase more than pages here",
            });
        };
        for &p in pages {
            let (start, size) =
                layout_pages(self.layout)
                    .nth(usize::from(p))
                    .ok_or(DfuseError::OutsideLayout {
                        address: u32::from(p),
                    })?;
            self.host.erase_page(start, size)?;
        }
        Ok(())
    }
    fn go(&mut self, addr: u32) -> Result<(), DfuseError> {
        self.host.leave(Some(addr))
    }
    fn write_protect(&mut self, _: &[u16]) -> Result<(), DfuseError> {
        Err(DfuseError::Unsupported {
            what: "write-protect",
        })
    }
    fn write_unprotect(&mut self) -> Result<(), DfuseError> {
        Err(DfuseError::Unsupported {
            what: "write-unprotect",
        })
    }
    fn readout_protect(&mut self) -> Result<(), DfuseError> {
        Err(DfuseError::Unsupported {
            what: "readout-protect",
        })
    }
    fn readout_unprotect(&mut self) -> Result<(), DfuseError> {
        self.host.read_unprotect()
    }
}

/// The largest wTransferSize the host uses (ST ROMs report 2048 or less); larger ones are clamped.
pub const MAX_TRANSFER: usize = 2048;

fn round_up(v: u32, unit: u32) -> u32 {
    if unit <= 1 {
        return v;
    }
    v.div_ceil(unit).saturating_mul(unit)
}

/// Parses a `VID:PID` argument in hex (`0483:df11`, `0x0483:0xDF11`); `None` gives the ST
/// ROM bootloader's 0483:DF11. `None` back means the text is not two hex numbers.
pub fn parse_vid_pid(text: Option<&str>) -> Option<(u16, u16)> {
    let Some(text) = text else {
        return Some((crate::dfu_file::ST_ROM_VID, crate::dfu_file::ST_ROM_PID));
    };
    let (v, p) = text.split_once(':')?;
    let hex = |s: &str| {
        let s = s.trim();
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        u16::from_str_radix(s, 16).ok()
    };
    Some((hex(v)?, hex(p)?))
}

/// A USB string descriptor holds at most 126 UTF-16 units; the ASCII layout fits in this.
pub const MAX_LAYOUT_LEN: usize = 128;

/// A [`DfuseHost`] with the memory layout of its alternate setting, as a [`RomTarget`]: what
/// the program/verify loops in [`crate::program`] and the CLI drive.
pub struct DfuseTarget<T, D> {
    /// The protocol host.
    pub host: DfuseHost<T, D>,
    layout: [u8; MAX_LAYOUT_LEN],
    layout_len: usize,
    device: Option<&'static RomDevice>,
}

impl<T: DfuTransport, D: DelayNs> DfuseTarget<T, D> {
    /// Wraps `host`; `layout` is the alt setting's memory-layout string (checked here), and
    /// `device` the part when known (DFU does not report the chip's product ID; without it,
    /// erase page numbers are the layout's page order).
    pub fn new(
        host: DfuseHost<T, D>,
        layout: &str,
        device: Option<&'static RomDevice>,
    ) -> Result<Self, DfuseError> {
        MemoryLayout::parse(layout)?;
        let bytes = layout.as_bytes();
        if bytes.len() > MAX_LAYOUT_LEN {
            return Err(DfuseError::LayoutTooLong {
                max: MAX_LAYOUT_LEN,
            });
        }
        let mut buf = [0u8; MAX_LAYOUT_LEN];
        buf[..bytes.len()].copy_from_slice(bytes);
        let device = device.or_else(|| guess_device(layout));
        let host = match device {
            // Pad to the flash write unit (at least 8, the L43x erratum) with the erased value.
            // Blocks of the erased value are not written (see `DfuseHost::with_skip_erased`).
            Some(d) => {
                let unit = u16::try_from(d.write_unit().max(8)).unwrap_or(8);
                host.with_padding(unit, d.geometry.erased)
                    .with_skip_erased(Some(d.geometry.erased))
            }
            None => host,
        };
        Ok(DfuseTarget {
            host,
            layout: buf,
            layout_len: bytes.len(),
            device,
        })
    }

    /// The memory layout.
    pub fn layout(&self) -> MemoryLayout<'_> {
        let text = core::str::from_utf8(&self.layout[..self.layout_len]).unwrap_or("@");
        // Checked in `new`; an impossible failure yields an empty layout, never a panic.
        MemoryLayout::parse(text).unwrap_or(MemoryLayout::EMPTY)
    }

    /// Write unit, padding value and erased-unit skipping this target writes with.
    pub fn write_layout(&self) -> crate::program::Layout {
        crate::program::Layout {
            write_unit: u32::from(self.host.pad_to),
            erased: self.host.pad_fill,
            skip_erased: self.host.skip_erased.is_some(),
        }
    }

    /// The part, when given or recognised from the layout.
    pub fn device(&self) -> Option<&'static RomDevice> {
        self.device
    }

    /// Erases, writes and verifies `data` at `address` using only the layout (no device
    /// table entry needed): see [`DfuseHost::program`]. Returns the bytes of erased value
    /// skipped.
    pub fn program_with_layout(
        &mut self,
        address: u32,
        data: &[u8],
        progress: &mut dyn crate::program::Progress,
    ) -> Result<u32, DfuseError> {
        let mut copy = [0u8; MAX_LAYOUT_LEN];
        copy[..self.layout_len].copy_from_slice(&self.layout[..self.layout_len]);
        let text = core::str::from_utf8(&copy[..self.layout_len]).unwrap_or("@");
        let layout = MemoryLayout::parse(text)?;
        self.host.program(&layout, address, data, progress)
    }

    /// Programs a `.dfu` file: every element of every target for `alt_setting` (0 is the
    /// internal flash on ST ROMs). All elements are checked against the layout before
    /// anything is erased; a raw file (no addresses) goes to `raw_address`. A file with no
    /// data for `alt_setting` (no elements, only empty ones, an empty payload) is refused
    /// with [`DfuseError::NoData`] before anything is erased.
    pub fn program_dfu_file(
        &mut self,
        file: &crate::dfu_file::DfuFile<'_>,
        alt_setting: u8,
        raw_address: Option<u32>,
        progress: &mut dyn crate::program::Progress,
    ) -> Result<DfuFileWritten, DfuseError> {
        use crate::dfu_file::DfuContents;
        match file.contents {
            DfuContents::Raw(data) => {
                if data.is_empty() {
                    return Err(DfuseError::NoData { alt_setting });
                }
                let address = raw_address.ok_or(DfuseError::Unsupported {
                    what: "place a raw .dfu payload without an address",
                })?;
                let skipped = self.program_with_layout(address, data, progress)?;
                Ok(DfuFileWritten {
                    elements: 1,
                    bytes: data.len() as u64,
                    skipped: u64::from(skipped),
                })
            }
            DfuContents::Stellaris { .. } => Err(DfuseError::Unsupported {
                what: "program a TI Stellaris-prefixed file on an STM32",
            }),
            DfuContents::DfuSe(image) => {
                let mut copy = [0u8; MAX_LAYOUT_LEN];
                copy[..self.layout_len].copy_from_slice(&self.layout[..self.layout_len]);
                let text = core::str::from_utf8(&copy[..self.layout_len]).unwrap_or("@");
                let layout = MemoryLayout::parse(text)?;
                let elements = || {
                    image
                        .targets()
                        .filter(move |t| t.alt_setting == alt_setting)
                        .flat_map(|t| t.elements())
                        .map(|e| (e.address, e.data))
                };
                let bytes: u64 = elements().map(|(_, d)| d.len() as u64).sum();
                if bytes == 0 {
                    return Err(DfuseError::NoData { alt_setting });
                }
                for (address, data) in elements() {
                    let len = u32::try_from(data.len())
                        .map_err(|_| DfuseError::OutsideLayout { address })?;
                    DfuseHost::<T, D>::check_range(
                        &layout,
                        address,
                        len,
                        Attributes::writable,
                        "write",
                    )?;
                    DfuseHost::<T, D>::check_range(
                        &layout,
                        address,
                        len,
                        Attributes::erasable,
                        "erase",
                    )?;
                }
                let done = self.host.program_segments(&layout, elements, progress)?;
                Ok(DfuFileWritten {
                    elements: elements().count(),
                    bytes,
                    skipped: done.skipped,
                })
            }
        }
    }

    fn page_address(&self, index: u16) -> Option<(u32, u32)> {
        match self.device {
            Some(d) => d.page(index).map(|s| (s.addr, s.size)),
            None => self
                .layout()
                .segments()
                .flat_map(|s| (0..s.count).map(move |i| (s.start + i * s.page_size, s.page_size)))
                .nth(usize::from(index)),
        }
    }
}

/// What [`DfuseTarget::program_dfu_file`] wrote and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DfuFileWritten {
    /// Elements programmed (1 for a raw file).
    pub elements: usize,
    /// Bytes of the file's data for the alternate setting.
    pub bytes: u64,
    /// Of those, bytes not written because they hold the erased value (verified erased).
    pub skipped: u64,
}

/// The device-table part whose flash sectors are exactly the layout's pages, if exactly one.
pub fn guess_device(layout: &str) -> Option<&'static RomDevice> {
    let layout = MemoryLayout::parse(layout).ok()?;
    let mut found = None;
    for d in crate::device::DEVICES {
        let mut pages = layout
            .segments()
            .flat_map(|s| (0..s.count).map(move |i| (s.start + i * s.page_size, s.page_size)));
        let same = d
            .geometry
            .sectors()
            .all(|s| pages.next() == Some((s.addr, s.size)))
            && pages.next().is_none();
        if same {
            if found.is_some() {
                return None;
            }
            found = Some(d);
        }
    }
    found
}

impl<T: DfuTransport, D: DelayNs> RomTarget for DfuseTarget<T, D> {
    type Error = DfuseError;

    fn info(&self) -> TargetInfo {
        TargetInfo {
            pid: self.device.map_or(0, |d| d.pid),
            protocol_version: 0x1A,
            device: self.device,
            read_protection: ReadProtection::Unknown,
        }
    }

    fn max_transfer(&self) -> usize {
        usize::from(self.host.transfer_size())
    }

    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), DfuseError> {
        self.host.upload(addr, buf)
    }

    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), DfuseError> {
        self.host.download_block(addr, data)
    }

    fn erase(&mut self, what: Erase<'_>) -> Result<(), DfuseError> {
        match what {
            Erase::Pages(pages) => {
                // Resolve every page before erasing any.
                for &p in pages {
                    self.page_address(p).ok_or(DfuseError::OutsideLayout {
                        address: u32::from(p),
                    })?;
                }
                for &p in pages {
                    if let Some((addr, size)) = self.page_address(p) {
                        self.host.erase_page(addr, size)?;
                    }
                }
                Ok(())
            }
            Erase::Bank(bank) => {
                let d = self.device.ok_or(DfuseError::Unsupported {
                    what: "erase a bank of an unknown part",
                })?;
                if usize::from(bank) >= d.geometry.banks.len() {
                    return Err(DfuseError::Unsupported {
                        what: "erase a missing bank",
                    });
                }
                for s in d.geometry.sectors().filter(|s| s.bank == bank) {
                    self.host.erase_page(s.addr, s.size)?;
                }
                Ok(())
            }
            Erase::Mass => self.host.mass_erase(),
        }
    }

    fn go(&mut self, addr: u32) -> Result<(), DfuseError> {
        self.host.leave(Some(addr))
    }

    fn write_protect(&mut self, _sectors: &[u16]) -> Result<(), DfuseError> {
        Err(DfuseError::Unsupported {
            what: "write-protect (write the option bytes alt setting instead)",
        })
    }

    fn write_unprotect(&mut self) -> Result<(), DfuseError> {
        Err(DfuseError::Unsupported {
            what: "write-unprotect (write the option bytes alt setting instead)",
        })
    }

    fn readout_protect(&mut self) -> Result<(), DfuseError> {
        Err(DfuseError::Unsupported {
            what: "readout-protect (write the option bytes alt setting instead)",
        })
    }

    fn readout_unprotect(&mut self) -> Result<(), DfuseError> {
        self.host.read_unprotect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vid_pid_arguments() {
        assert_eq!(parse_vid_pid(None), Some((0x0483, 0xDF11)));
        assert_eq!(parse_vid_pid(Some("0483:df11")), Some((0x0483, 0xDF11)));
        assert_eq!(parse_vid_pid(Some("0x1209:0xABCD")), Some((0x1209, 0xABCD)));
        assert_eq!(parse_vid_pid(Some("0483")), None);
        assert_eq!(parse_vid_pid(Some("0483:xyz")), None);
        assert_eq!(parse_vid_pid(Some("10483:df11")), None);
    }

    #[test]
    fn status_bytes_round_trip() {
        let s = DfuStatus {
            status: DfuStatusCode::Prog,
            poll_timeout_ms: 0x01_0203,
            state: DfuState::Error,
            string_index: 7,
        };
        assert_eq!(s.to_bytes(), [6, 0x03, 0x02, 0x01, 10, 7]);
        assert_eq!(DfuStatus::from_bytes(s.to_bytes()), s);
        for v in 0..=255u8 {
            assert_eq!(DfuState::from_u8(v).as_u8(), v);
            assert_eq!(DfuStatusCode::from_u8(v).as_u8(), v);
        }
    }
}
