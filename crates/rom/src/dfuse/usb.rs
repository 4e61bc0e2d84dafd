//! Real USB for the DfuSe host, through nusb: find a DFU-mode device by VID:PID, pick the
//! alternate setting whose memory-layout string names the wanted memory, read wTransferSize
//! from the DFU functional descriptor, and hand back a ready [`DfuseHost`].

pub use super::parse_vid_pid;
use super::{DfuTransport, DfuseError, DfuseHost, DfuseTarget, UsbError};
use crate::device::RomDevice;
use embedded_hal::delay::DelayNs;
use nusb::descriptors::language_id::US_ENGLISH;
use nusb::transfer::{ControlIn, ControlOut, ControlType, Recipient, TransferError};
use nusb::MaybeFuture;
use std::string::String;
use std::time::Duration;
use std::vec::Vec;

/// DFU interface class / subclass / protocol of a device in DFU mode.
const DFU_CLASS: (u8, u8, u8) = (0xFE, 0x01, 0x02);
/// DFU functional descriptor type.
const DFU_FUNCTIONAL: u8 = 0x21;

/// Why a DFU device could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No USB device with that VID:PID is attached.
    #[error("no USB device {vid:04x}:{pid:04x} found (is BOOT0 high and the USB cable in the device's USB port?)")]
    NotFound {
        /// USB vendor ID asked for.
        vid: u16,
        /// USB product ID asked for.
        pid: u16,
    },
    /// The device has no interface in DFU mode.
    #[error("device {vid:04x}:{pid:04x} has no DFU-mode interface")]
    NoDfuInterface {
        /// USB vendor ID of the device.
        vid: u16,
        /// USB product ID of the device.
        pid: u16,
    },
    /// No alternate setting's layout string names the memory asked for.
    #[error("no DFU alternate setting named {wanted:?}; the device offers {offered:?}")]
    NoSuchMemory {
        /// The memory name asked for (e.g. "Internal Flash").
        wanted: String,
        /// The interface strings of every DFU alternate setting.
        offered: Vec<String>,
    },
    /// The OS refused (permissions, driver, device gone).
    #[error("USB: {0}")]
    Usb(#[from] nusb::Error),
    /// The alt setting's memory-layout string is malformed.
    #[error("the device's memory layout {layout:?} is unusable: {error}")]
    Layout {
        /// The alternate setting's interface string.
        layout: String,
        /// What is wrong with it.
        error: DfuseError,
    },
}

/// One DFU alternate setting as the device describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AltSetting {
    /// Interface number.
    pub interface: u8,
    /// bAlternateSetting.
    pub alt: u8,
    /// The interface string: the DfuSe memory-layout string on ST devices.
    pub name: String,
}

/// A control-transfer transport over an nusb interface.
pub struct NusbTransport {
    interface: nusb::Interface,
    timeout: Duration,
}

impl NusbTransport {
    /// Wraps a claimed interface; `timeout` bounds every control transfer.
    pub fn new(interface: nusb::Interface, timeout: Duration) -> Self {
        NusbTransport { interface, timeout }
    }
}

fn map_error(e: TransferError) -> UsbError {
    match e {
        TransferError::Stall => UsbError::Stall,
        TransferError::Cancelled => UsbError::Timeout,
        TransferError::Disconnected => UsbError::Disconnected,
        _ => UsbError::Other,
    }
}

impl DfuTransport for NusbTransport {
    fn control_out(
        &mut self,
        request: u8,
        value: u16,
        index: u16,
        data: &[u8],
    ) -> Result<(), UsbError> {
        self.interface
            .control_out(
                ControlOut {
                    control_type: ControlType::Class,
                    recipient: Recipient::Interface,
                    request,
                    value,
                    index,
                    data,
                },
                self.timeout,
            )
            .wait()
            .map_err(map_error)
    }

    fn control_in(
        &mut self,
        request: u8,
        value: u16,
        index: u16,
        buf: &mut [u8],
    ) -> Result<usize, UsbError> {
        let length = u16::try_from(buf.len()).unwrap_or(u16::MAX);
        let data = self
            .interface
            .control_in(
                ControlIn {
                    control_type: ControlType::Class,
                    recipient: Recipient::Interface,
                    request,
                    value,
                    index,
                    length,
                },
                self.timeout,
            )
            .wait()
            .map_err(map_error)?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }
}

/// Sleeps with the OS clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDelay;

impl DelayNs for StdDelay {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(Duration::from_nanos(u64::from(ns)));
    }
}

/// An opened DfuSe device: the host, plus what it needs to know about the memory.
pub struct OpenedDfu {
    /// The host, ready on the chosen alternate setting.
    pub host: DfuseHost<NusbTransport, StdDelay>,
    /// The memory-layout string of that alternate setting (parse with `MemoryLayout::parse`).
    pub layout: String,
    /// Every alternate setting the device offers.
    pub alt_settings: Vec<AltSetting>,
}

/// Opens the first device `vid:pid` in DFU mode and selects the alternate setting whose
/// layout string names `memory` (case-insensitive prefix match, e.g. "Internal Flash").
pub fn open(vid: u16, pid: u16, memory: &str) -> Result<OpenedDfu, OpenError> {
    let info = nusb::list_devices()
        .wait()?
        .find(|d| d.vendor_id() == vid && d.product_id() == pid)
        .ok_or(OpenError::NotFound { vid, pid })?;
    let device = info.open().wait()?;
    let timeout = Duration::from_millis(5_000);

    let mut alt_settings = Vec::new();
    let mut transfer_size: u16 = 1024;
    let mut found_dfu = false;
    if let Ok(config) = device.active_configuration() {
        for alt in config.interface_alt_settings() {
            if (alt.class(), alt.subclass(), alt.protocol()) != DFU_CLASS {
                continue;
            }
            found_dfu = true;
            for d in alt.descriptors() {
                if d.descriptor_type() == DFU_FUNCTIONAL && d.len() >= 7 {
                    transfer_size = u16::from_le_bytes([d[5], d[6]]);
                }
            }
            let name = match alt.string_index() {
                Some(i) => device
                    .get_string_descriptor(i, US_ENGLISH, timeout)
                    .wait()
                    .unwrap_or_default(),
                None => String::new(),
            };
            alt_settings.push(AltSetting {
                interface: alt.interface_number(),
                alt: alt.alternate_setting(),
                name,
            });
        }
    }
    if !found_dfu {
        return Err(OpenError::NoDfuInterface { vid, pid });
    }
    let wanted = memory.to_ascii_lowercase();
    let chosen = alt_settings
        .iter()
        .find(|a| {
            a.name
                .trim_start_matches('@')
                .to_ascii_lowercase()
                .starts_with(&wanted)
        })
        .cloned()
        .ok_or_else(|| OpenError::NoSuchMemory {
            wanted: memory.into(),
            offered: alt_settings.iter().map(|a| a.name.clone()).collect(),
        })?;
    let interface = device.detach_and_claim_interface(chosen.interface).wait()?;
    interface.set_alt_setting(chosen.alt).wait()?;
    let host = DfuseHost::new(
        NusbTransport::new(interface, timeout),
        StdDelay,
        u16::from(chosen.interface),
        transfer_size,
    );
    Ok(OpenedDfu {
        host,
        layout: chosen.name,
        alt_settings,
    })
}

/// [`open`], then wraps the host with its layout as a [`DfuseTarget`] (a `RomTarget`):
/// `device` is the part when the user named it; otherwise it is recognised from the layout
/// when exactly one table entry has that flash.
pub fn open_target(
    vid: u16,
    pid: u16,
    memory: &str,
    device: Option<&'static RomDevice>,
) -> Result<DfuseTarget<NusbTransport, StdDelay>, OpenError> {
    let opened = open(vid, pid, memory)?;
    let layout = opened.layout;
    DfuseTarget::new(opened.host, &layout, device)
        .map_err(|error| OpenError::Layout { layout, error })
}
