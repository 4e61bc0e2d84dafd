//! H74x/H75x (RM0433): each bank has its own KEYR/CR/SR/CCR block (bank 2 at +0x100). A
//! store to bank 2 with PG set only in CR1 is rejected with PGSERR2, so every program and
//! erase picks the register set from the address's bank. Registers follow SWAP_BANK together
//! with the memory, so the address decides the set in both swap states.

use brickless_flash::{Family, Geometry, Part, Sector};
use cortex_m::asm::{dsb, isb};
use stm32_metapac::flash::regs::{Ccr, Sr};
use stm32_metapac::flash::Bank;
use stm32_metapac::FLASH;

use super::{bank_of, sector_index, word, Error};

const KEY1: u32 = 0x4567_0123;
const KEY2: u32 = 0xCDEF_89AB;
/// PSIZE x32: valid over the whole supply range (x64 needs VOS0/1 and more current).
const PSIZE_X32: u8 = 0b10;
/// One flash word: 256 bits.
const FLASH_WORD: usize = 32;

pub(super) fn family_ok(f: Family) -> bool {
    f == Family::H74x
}

pub(super) fn detect_part() -> Option<&'static Part> {
    None
}

fn regs(bank: u8) -> Result<Bank, Error> {
    if bank < 2 {
        Ok(FLASH.bank(usize::from(bank)))
    } else {
        Err(Error::UnsupportedPart)
    }
}

/// The program/erase error flags of SRx (ECC and CRC flags belong to reads).
fn err_mask() -> u32 {
    let mut m = Sr(0);
    m.set_wrperr(true);
    m.set_pgserr(true);
    m.set_strberr(true);
    m.set_incerr(true);
    m.set_operr(true);
    m.0
}

fn clear_errors(r: Bank) {
    let mut c = Ccr(0);
    c.set_clr_eop(true);
    c.set_clr_wrperr(true);
    c.set_clr_pgserr(true);
    c.set_clr_strberr(true);
    c.set_clr_incerr(true);
    c.set_clr_operr(true);
    r.ccr().write_value(c);
}

/// Writes the keys only while locked: a second key sequence locks the bank until reset.
fn unlock(r: Bank) {
    if r.cr().read().lock() {
        r.keyr().write_value(KEY1);
        r.keyr().write_value(KEY2);
    }
}

fn lock(r: Bank) {
    r.cr().modify(|w| w.set_lock(true));
}

/// Waits until nothing is queued or running in this bank.
fn wait_idle(r: Bank) {
    loop {
        let sr = r.sr().read();
        if !sr.qw() && !sr.bsy() {
            break;
        }
    }
}

/// Unlocks, clears stale flags and waits for idle before, and locks after, `op`.
fn with_bank(bank: u8, op: impl FnOnce(Bank) -> Result<(), Error>) -> Result<(), Error> {
    let r = regs(bank)?;
    unlock(r);
    wait_idle(r);
    clear_errors(r);
    let result = op(r);
    let sr = r.sr().read().0 & err_mask();
    clear_errors(r);
    lock(r);
    match result {
        Ok(()) if sr != 0 => Err(Error::Controller(sr)),
        other => other,
    }
}

pub(super) fn program(g: &Geometry, addr: u32, data: &[u8]) -> Result<(), Error> {
    for (i, chunk) in data.chunks_exact(FLASH_WORD).enumerate() {
        let at = addr + (i * FLASH_WORD) as u32;
        with_bank(bank_of(g, at)?, |r| {
            r.cr().modify(|w| {
                w.set_psize(PSIZE_X32);
                w.set_pg(true);
            });
            // PG must be visible to the bank before the first store, else PGSERR.
            isb();
            dsb();
            let dst = at as *mut u32;
            for (j, w) in chunk.chunks_exact(4).enumerate() {
                // SAFETY: `at` is a flash word of this bank (checked by the caller) and PG
                // is set: the store fills the bank's write buffer.
                unsafe { dst.add(j).write_volatile(word(w)) };
            }
            isb();
            dsb();
            wait_idle(r);
            let sr = r.sr().read().0 & err_mask();
            r.cr().modify(|w| w.set_pg(false));
            if sr != 0 {
                Err(Error::Controller(sr))
            } else {
                Ok(())
            }
        })?;
    }
    Ok(())
}

pub(super) fn erase_sector(_g: &Geometry, s: &Sector) -> Result<(), Error> {
    let snb = sector_index(s, 8)?;
    with_bank(s.bank, |r| {
        r.cr().modify(|w| {
            w.set_psize(PSIZE_X32);
            w.set_ser(true);
            w.set_snb(snb);
        });
        r.cr().modify(|w| w.set_start(true));
        dsb();
        wait_idle(r);
        let sr = r.sr().read().0 & err_mask();
        r.cr().modify(|w| {
            w.set_ser(false);
            w.set_snb(0);
        });
        if sr != 0 {
            Err(Error::Controller(sr))
        } else {
            Ok(())
        }
    })
}
