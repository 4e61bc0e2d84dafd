//! L07x/L08x (RM0367/RM0377): two-stage unlock (PEKEYR clears PELOCK, then PRGKEYR clears
//! PRGLOCK); a plain 32-bit store programs a word; a 128-byte page is erased by setting
//! ERASE|PROG and storing a word into the page. The erased value is 0x00, and a word that is
//! not zero refuses a new value with NOTZEROERR.
//!
//! Word programming runs from flash (the CPU stalls); half-page programming, which must run
//! from RAM, is not used.

use brickless_flash::{Family, Geometry, Part, Sector};
use cortex_m::asm::dsb;
use stm32_metapac::flash::regs::Sr;
use stm32_metapac::FLASH;

use super::{bank_of, word, Error};

const PEKEY1: u32 = 0x89AB_CDEF;
const PEKEY2: u32 = 0x0203_0405;
const PRGKEY1: u32 = 0x8C9D_AEBF;
const PRGKEY2: u32 = 0x1314_1516;

pub(super) fn family_ok(f: Family) -> bool {
    f == Family::L0
}

pub(super) fn detect_part() -> Option<&'static Part> {
    None
}

fn err_mask() -> u32 {
    let mut m = Sr(0);
    m.set_wrperr(true);
    m.set_pgaerr(true);
    m.set_sizerr(true);
    m.set_optverr(true);
    m.set_rderr(true);
    m.set_notzeroerr(true);
    m.set_fwwerr(true);
    m.0
}

fn clear_errors() {
    let mut m = Sr(err_mask());
    m.set_eop(true);
    FLASH.sr().write_value(m);
}

fn wait_idle() {
    while FLASH.sr().read().bsy() {}
}

fn sr_errors() -> u32 {
    FLASH.sr().read().0 & err_mask()
}

fn with_unlocked(op: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    wait_idle();
    // Keys only while locked: a wrong sequence locks until reset.
    if FLASH.pecr().read().pelock() {
        FLASH.pekeyr().write_value(PEKEY1);
        FLASH.pekeyr().write_value(PEKEY2);
    }
    if FLASH.pecr().read().prglock() {
        FLASH.prgkeyr().write_value(PRGKEY1);
        FLASH.prgkeyr().write_value(PRGKEY2);
    }
    clear_errors();
    let result = op();
    let sr = sr_errors();
    clear_errors();
    FLASH.pecr().modify(|w| {
        w.set_erase(false);
        w.set_prog(false);
    });
    // PRGLOCK first, then PELOCK (which also locks PECR), as RM0377 orders it.
    FLASH.pecr().modify(|w| w.set_prglock(true));
    FLASH.pecr().modify(|w| w.set_pelock(true));
    match result {
        Ok(()) if sr != 0 => Err(Error::Controller(sr)),
        other => other,
    }
}

pub(super) fn program(g: &Geometry, addr: u32, data: &[u8]) -> Result<(), Error> {
    bank_of(g, addr)?;
    with_unlocked(|| {
        let dst = addr as *mut u32;
        for (j, w) in data.chunks_exact(4).enumerate() {
            // SAFETY: the caller checked that the range is flash of this part, word aligned.
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
    with_unlocked(|| {
        FLASH.pecr().modify(|w| {
            w.set_erase(true);
            w.set_prog(true);
        });
        // SAFETY: `s.addr` is the first word of a page of this part; with ERASE|PROG the
        // store starts the page erase instead of programming.
        unsafe { (s.addr as *mut u32).write_volatile(0) };
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
