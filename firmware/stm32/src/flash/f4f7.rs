//! F4 (RM0090) and F7 (RM0410): one register set for all banks, 32-bit programming with
//! PSIZE x32 (needs 2.7-3.6 V, what every supported board runs at), sector erase by SNB.
//!
//! Sector numbers: bank 1 sectors are SNB 0-11; on dual-bank parts (F42x/F43x, F76x with
//! nDBANK=0) bank 2 sectors are SNB 0b1_0000 | index, since the single-bank number would
//! silently erase nothing (RM0090 §3.9.8).
//!
//! F4: the flash interface's I/D caches are disabled during an operation and reset after it
//! (stale lines after an erase; F42x dual-bank data-cache errata). F7 has no data cache in
//! the flash interface; the ART only serves the ITCM path, which this driver does not read.

use brickless_flash::{Family, Geometry, Part, Sector};
use cortex_m::asm::dsb;
use stm32_metapac::flash::regs::Sr;
use stm32_metapac::flash::vals::Psize;
use stm32_metapac::FLASH;

use super::{bank_of, sector_index, word, Error};

const KEY1: u32 = 0x4567_0123;
const KEY2: u32 = 0xCDEF_89AB;

#[cfg(feature = "family-f4")]
pub(super) fn family_ok(f: Family) -> bool {
    f == Family::F4
}

#[cfg(feature = "family-f7")]
pub(super) fn family_ok(f: Family) -> bool {
    f == Family::F7
}

/// On the F767, nDBANK (OPTCR bit 29, 1 = single bank) selects the sector map.
#[cfg(feature = "stm32f767zi")]
pub(super) fn detect_part() -> Option<&'static Part> {
    if FLASH.optcr().read().n_dbank() {
        brickless_flash::part("stm32f767zi")
    } else {
        brickless_flash::part("stm32f767zi-dual")
    }
}

#[cfg(not(feature = "stm32f767zi"))]
pub(super) fn detect_part() -> Option<&'static Part> {
    None
}

/// The error flags of SR (F7 names PGSERR "ERSERR" and adds RDERR).
pub(crate) fn err_mask() -> u32 {
    let mut m = Sr(0);
    m.set_operr(true);
    m.set_wrperr(true);
    m.set_pgaerr(true);
    m.set_pgperr(true);
    #[cfg(feature = "family-f4")]
    m.set_pgserr(true);
    #[cfg(feature = "family-f7")]
    {
        m.set_erserr(true);
        m.set_rderr(true);
    }
    m.0
}

fn clear_errors() {
    let mut m = Sr(err_mask());
    m.set_eop(true);
    FLASH.sr().write_value(m);
}

pub(crate) fn wait_idle() {
    while FLASH.sr().read().bsy() {}
}

fn sr_errors() -> u32 {
    FLASH.sr().read().0 & err_mask()
}

/// Unlocks, clears stale flags and waits for idle before, and locks after, `op`; on F4 with
/// the flash caches off around it.
fn with_unlocked(op: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    #[cfg(feature = "family-f4")]
    return super::without_caches(|| unlocked(op));
    #[cfg(not(feature = "family-f4"))]
    unlocked(op)
}

fn unlocked(op: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    wait_idle();
    // Keys only while locked: a wrong sequence locks until reset and raises a bus error.
    if FLASH.cr().read().lock() {
        FLASH.keyr().write_value(KEY1);
        FLASH.keyr().write_value(KEY2);
    }
    clear_errors();
    let result = op();
    let sr = sr_errors();
    clear_errors();
    FLASH.cr().modify(|w| {
        w.set_pg(false);
        w.set_ser(false);
        w.set_lock(true);
    });
    match result {
        Ok(()) if sr != 0 => Err(Error::Controller(sr)),
        other => other,
    }
}

pub(super) fn program(g: &Geometry, addr: u32, data: &[u8]) -> Result<(), Error> {
    bank_of(g, addr)?;
    with_unlocked(|| {
        FLASH.cr().modify(|w| {
            w.set_psize(Psize::PSIZE32);
            w.set_pg(true);
        });
        let dst = addr as *mut u32;
        for (j, w) in data.chunks_exact(4).enumerate() {
            // SAFETY: the caller checked that the range is flash of this part; PG is set.
            unsafe { dst.add(j).write_volatile(word(w)) };
            dsb();
            wait_idle();
            let sr = sr_errors();
            if sr != 0 {
                return Err(Error::Controller(sr));
            }
        }
        Ok(())
    })
}

pub(super) fn erase_sector(_g: &Geometry, s: &Sector) -> Result<(), Error> {
    let index = sector_index(s, 12)?;
    let bank2 = match s.bank {
        0 => false,
        1 => true,
        _ => return Err(Error::UnsupportedPart),
    };
    with_unlocked(|| {
        FLASH.cr().modify(|w| {
            w.set_psize(Psize::PSIZE32);
            w.set_ser(true);
            set_snb(w, index, bank2);
        });
        FLASH.cr().modify(|w| w.set_strt(true));
        dsb();
        wait_idle();
        let sr = sr_errors();
        FLASH.cr().modify(|w| {
            w.set_ser(false);
            set_snb(w, 0, false);
        });
        if sr != 0 {
            Err(Error::Controller(sr))
        } else {
            Ok(())
        }
    })
}

#[cfg(feature = "family-f4")]
fn set_snb(w: &mut stm32_metapac::flash::regs::Cr, index: u8, bank2: bool) {
    w.set_snb(if bank2 { 0x10 | index } else { index });
}

/// The metapac F7 field is SNB[3:0]; SNB[4] (bit 7) selects bank 2 in dual-bank mode.
#[cfg(feature = "family-f7")]
fn set_snb(w: &mut stm32_metapac::flash::regs::Cr, index: u8, bank2: bool) {
    const SNB4: u32 = 1 << 7;
    w.set_snb(index);
    if bank2 {
        w.0 |= SNB4;
    } else {
        w.0 &= !SNB4;
    }
}
