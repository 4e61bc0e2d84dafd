//! L47x/L48x/L49x (RM0351): double-word (64-bit) programming as two 32-bit stores, the
//! second one starting the program; page erase by PNB (page index within its bank) plus
//! BKER for bank 2. A byte or half-word store would raise SIZERR.
//!
//! The flash interface's I/D caches are disabled during an operation and reset after it:
//! stale data-cache lines after an erase, and the dual-bank data-cache errata. Bank numbers
//! are physical; with SYSCFG FB_MODE swapped the caller must pass the matching geometry.

use brickless_flash::{Family, Geometry, Part, Sector};
use cortex_m::asm::{dsb, isb};
use stm32_metapac::flash::regs::Sr;
use stm32_metapac::FLASH;

use super::{bank_of, sector_index, word, Error};

const KEY1: u32 = 0x4567_0123;
const KEY2: u32 = 0xCDEF_89AB;

pub(super) fn family_ok(f: Family) -> bool {
    f == Family::L4
}

pub(super) fn detect_part() -> Option<&'static Part> {
    None
}

pub(crate) fn err_mask() -> u32 {
    let mut m = Sr(0);
    m.set_operr(true);
    m.set_progerr(true);
    m.set_wrperr(true);
    m.set_pgaerr(true);
    m.set_sizerr(true);
    m.set_pgserr(true);
    m.set_miserr(true);
    m.set_fasterr(true);
    m.0
}

/// Every W1C flag: any error left set makes the next program fail with PGSERR.
fn clear_errors() {
    let mut m = Sr(err_mask());
    m.set_eop(true);
    m.set_rderr(true);
    m.set_optverr(true);
    FLASH.sr().write_value(m);
}

pub(crate) fn wait_idle() {
    while FLASH.sr().read().bsy() {}
}

fn sr_errors() -> u32 {
    FLASH.sr().read().0 & err_mask()
}

fn with_unlocked(op: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    super::without_caches(|| {
        wait_idle();
        // Keys only while locked: a wrong sequence locks until reset.
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
            w.set_per(false);
            w.set_bker(false);
            w.set_lock(true);
        });
        match result {
            Ok(()) if sr != 0 => Err(Error::Controller(sr)),
            other => other,
        }
    })
}

pub(super) fn program(g: &Geometry, addr: u32, data: &[u8]) -> Result<(), Error> {
    bank_of(g, addr)?;
    with_unlocked(|| {
        FLASH.cr().modify(|w| w.set_pg(true));
        let dst = addr as *mut u32;
        for (j, dw) in data.chunks_exact(8).enumerate() {
            // SAFETY: the caller checked the range is flash of this part and 8-aligned;
            // PG is set, so the two stores form one double word.
            unsafe {
                dst.add(2 * j).write_volatile(word(&dw[..4]));
                isb();
                dst.add(2 * j + 1).write_volatile(word(&dw[4..]));
            }
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
    let page = sector_index(s, 256)?;
    let bank2 = match s.bank {
        0 => false,
        1 => true,
        _ => return Err(Error::UnsupportedPart),
    };
    with_unlocked(|| {
        FLASH.cr().modify(|w| {
            w.set_per(true);
            w.set_pnb(page);
            w.set_bker(bank2);
        });
        FLASH.cr().modify(|w| w.set_start(true));
        dsb();
        wait_idle();
        let sr = sr_errors();
        if sr != 0 {
            Err(Error::Controller(sr))
        } else {
            Ok(())
        }
    })
}
