//! The internal flash as an `embedded_storage` [`NorFlash`], addressed by offset from
//! 0x0800_0000 (offset 0 is the first byte of bank 1; bank holes count in the offset space).
//!
//! - `READ_SIZE` is 1; reads are copies through [`guarded_read`], so a double-ECC fault comes
//!   back as [`Error::EccFault`] once the binary installed the fault handlers.
//! - `WRITE_SIZE` is the part's program unit: 32 bytes on H7 (one 256-bit flash word, eight
//!   32-bit stores), 8 on L4 (two 32-bit stores), 4 on F4/F7 (PSIZE x32) and L0.
//! - `ERASE_SIZE` is the smallest sector of the chip; [`NorFlash::erase`] also requires both
//!   ends on sector edges of the actual geometry and erases each sector by its reference-manual
//!   number, through the register set of its bank.
//!
//! Caches: the driver cleans or invalidates no core cache. The bootloader runs with the M7
//! D-cache off, so reads after a program or erase see the array (on H7 they go over the AXI
//! bus). A binary that enables the D-cache must invalidate the range it changed. The flash
//! interface's own caches (F4/L4 ACR I/D cache) are disabled during an operation and reset
//! after it, which also covers the dual-bank data-cache errata (F42x, L4).
//!
//! Timing: operations poll without a timeout (a stuck controller is the watchdog's business).

use brickless_flash::{EccReport, Geometry, Part, Sector};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use crate::guard::guarded_read;

#[cfg(any(feature = "family-f4", feature = "family-f7"))]
#[path = "flash/f4f7.rs"]
pub(crate) mod imp;
#[cfg(feature = "family-h7")]
#[path = "flash/h7.rs"]
pub(crate) mod imp;
#[cfg(feature = "family-l0")]
#[path = "flash/l0.rs"]
pub(crate) mod imp;
#[cfg(feature = "family-l4")]
#[path = "flash/l4.rs"]
pub(crate) mod imp;

/// The chip this build is for, as `brickless-flash` names it.
#[cfg(feature = "stm32h753zi")]
pub const CHIP: &str = "stm32h753zi";
/// The chip this build is for, as `brickless-flash` names it.
#[cfg(feature = "stm32l475vg")]
pub const CHIP: &str = "stm32l475vg";
/// The chip this build is for, as `brickless-flash` names it (single-bank factory setting;
/// [`Flash::detect`] reads nDBANK).
#[cfg(feature = "stm32f767zi")]
pub const CHIP: &str = "stm32f767zi";
/// The chip this build is for, as `brickless-flash` names it.
#[cfg(feature = "stm32f407vg")]
pub const CHIP: &str = "stm32f407vg";
/// The F405 has the F407's die and flash (same product ID 0x413), so it uses that entry.
#[cfg(feature = "stm32f405rg")]
pub const CHIP: &str = "stm32f407vg";
/// The chip this build is for, as `brickless-flash` names it.
#[cfg(feature = "stm32l073rz")]
pub const CHIP: &str = "stm32l073rz";

/// The chip table entry of [`CHIP`]; a name missing from the table fails the build.
pub const CHIP_PART: &Part = brickless_flash::part_named(CHIP);

/// Absolute address of offset 0.
pub const FLASH_BASE: u32 = 0x0800_0000;

/// The smallest sector of any option-byte variant of the chip (same product ID), so it
/// divides every sector size whichever bank mode the chip is in.
const MIN_SECTOR: u32 = min_sector_for_pid(CHIP_PART.pid);

const fn min_sector_for_pid(pid: u16) -> u32 {
    let parts = brickless_flash::PARTS;
    let mut min = u32::MAX;
    let mut p = 0;
    while p < parts.len() {
        if parts[p].pid == pid {
            let banks = parts[p].geometry.banks;
            let mut b = 0;
            while b < banks.len() {
                let runs = banks[b].sectors;
                let mut r = 0;
                while r < runs.len() {
                    if runs[r].size < min {
                        min = runs[r].size;
                    }
                    r += 1;
                }
                b += 1;
            }
        }
        p += 1;
    }
    min
}

/// Why a flash operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Offset or length not on a write unit, or an erase end not on a sector edge.
    NotAligned,
    /// Outside the part's flash, or in the hole between two banks.
    OutOfBounds,
    /// The controller refused or aborted the operation: its status register's error bits,
    /// at their positions in SR (SRx on H7).
    Controller(u32),
    /// A read raised a double-ECC error (or another bus error) at this absolute address.
    EccFault {
        /// Absolute address the fault reported.
        addr: u32,
    },
    /// The part given to [`Flash::new`] is not of the chip family this build drives, or its
    /// write unit or sectors do not fit `WRITE_SIZE`/`ERASE_SIZE`.
    UnsupportedPart,
}

impl NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Error::NotAligned => NorFlashErrorKind::NotAligned,
            Error::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

impl EccReport for Error {
    fn ecc_fault_addr(&self) -> Option<u32> {
        match *self {
            Error::EccFault { addr } => Some(addr),
            _ => None,
        }
    }
}

/// The internal flash of the chip.
pub struct Flash {
    part: &'static Part,
    supported: bool,
}

impl Flash {
    /// A driver for `part`'s geometry (the caller picks the bank-mode variant). A part of
    /// another family makes every operation fail with [`Error::UnsupportedPart`].
    pub fn new(part: &'static Part) -> Flash {
        let g = &part.geometry;
        let supported = imp::family_ok(g.family)
            && g.write_unit as usize == <Flash as NorFlash>::WRITE_SIZE
            && g.base() == FLASH_BASE
            && g.sectors().all(|s| s.size % MIN_SECTOR == 0);
        Flash { part, supported }
    }

    /// A driver for [`CHIP_PART`], or on the F767 for the variant its nDBANK option selects.
    pub fn detect() -> Flash {
        Flash::new(imp::detect_part().unwrap_or(CHIP_PART))
    }

    /// The part this driver was made for.
    pub fn part(&self) -> &'static Part {
        self.part
    }

    fn geometry(&self) -> &'static Geometry {
        &self.part.geometry
    }

    /// The absolute address of `[offset, offset + len)`, which must lie in real flash.
    fn locate(&self, offset: u32, len: usize) -> Result<u32, Error> {
        let len = u32::try_from(len).map_err(|_| Error::OutOfBounds)?;
        let end = offset.checked_add(len).ok_or(Error::OutOfBounds)?;
        if end > self.geometry().span() {
            return Err(Error::OutOfBounds);
        }
        let addr = FLASH_BASE + offset;
        if len != 0 && !self.geometry().contains_range(addr, len) {
            return Err(Error::OutOfBounds);
        }
        Ok(addr)
    }

    fn check_supported(&self) -> Result<(), Error> {
        if self.supported {
            Ok(())
        } else {
            Err(Error::UnsupportedPart)
        }
    }
}

impl ErrorType for Flash {
    type Error = Error;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        let addr = self.locate(offset, bytes.len())?;
        if bytes.is_empty() {
            return Ok(());
        }
        // SAFETY: `locate` checked that the whole range is flash of this part.
        unsafe { guarded_read(addr, bytes) }.map_err(|f| Error::EccFault { addr: f.addr })
    }

    fn capacity(&self) -> usize {
        self.geometry().span() as usize
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = CHIP_PART.geometry.write_unit as usize;
    const ERASE_SIZE: usize = MIN_SECTOR as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        self.check_supported()?;
        if from > to {
            return Err(Error::OutOfBounds);
        }
        let start = self.locate(from, (to - from) as usize)?;
        if from == to {
            return Ok(());
        }
        let end = start + (to - from);
        let g = self.geometry();
        if !g.is_erasable_range(start, end) {
            return Err(Error::NotAligned);
        }
        for sector in g.sectors().filter(|s| s.addr >= start && s.end() <= end) {
            imp::erase_sector(g, &sector)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        self.check_supported()?;
        let addr = self.locate(offset, bytes.len())?;
        let unit = Self::WRITE_SIZE;
        if offset as usize % unit != 0 || bytes.len() % unit != 0 {
            return Err(Error::NotAligned);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        imp::program(self.geometry(), addr, bytes)
    }
}

/// The little-endian word in a 4-byte chunk (callers pass `chunks_exact(4)` items).
/// Runs a program or erase with the flash's instruction and data caches off (a line cached
/// before the operation must not be served after it), resets them while off, then restores
/// the enables as they were.
#[cfg(any(feature = "family-f4", feature = "family-l4"))]
fn without_caches<R>(op: impl FnOnce() -> R) -> R {
    use stm32_metapac::FLASH;
    let acr = FLASH.acr().read();
    FLASH.acr().modify(|w| {
        w.set_dcen(false);
        w.set_icen(false);
    });
    let result = op();
    // The reset bits work only while the caches are off.
    FLASH.acr().modify(|w| {
        w.set_dcrst(true);
        w.set_icrst(true);
    });
    FLASH.acr().modify(|w| {
        w.set_dcrst(false);
        w.set_icrst(false);
    });
    FLASH.acr().modify(|w| {
        w.set_dcen(acr.dcen());
        w.set_icen(acr.icen());
    });
    result
}

fn word(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The sector's bank as an index the family code accepts.
fn bank_of(g: &Geometry, addr: u32) -> Result<u8, Error> {
    g.bank_at(addr).ok_or(Error::OutOfBounds)
}

#[cfg_attr(feature = "family-l0", allow(dead_code))]
fn sector_index(s: &Sector, limit: u16) -> Result<u8, Error> {
    if s.index < limit {
        Ok(s.index as u8)
    } else {
        Err(Error::UnsupportedPart)
    }
}
