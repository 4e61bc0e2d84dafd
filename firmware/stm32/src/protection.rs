//! The chip's self-protection: a read-only report ([`read`]) of the read-out protection (RDP)
//! level and of whether an address range (for example the bootloader's own sectors) is
//! write-protected, and [`protect`], which write-protects a range through the option bytes.
//!
//! [`read`] only loads the option registers, which hold the option bytes as loaded at reset
//! (or at the last option-byte launch). On F4/F7 and L4 the readable register is also the one
//! software edits before an option-byte launch, so a pending, not yet launched edit shows up as
//! if it were active \[I\].
//!
//! [`protect`] is the only writer here and nothing calls it implicitly: the bootloader calls it
//! only when a user asks for it. Option-byte programming erases and rewrites the option bytes;
//! a reset or power cut in the middle can leave them mismatched, which the chip answers with
//! its most restrictive defaults (RDP level 1, everything protected) \[S ST community reports
//! for F429, U5; RM0367 §3.8.2 for L0\]. Run it on a stable supply with the watchdog fed.
//!
//! Per family (tags as in `stm32-flash.md`: \[P\] ST text, \[S\] other projects, \[I\] inference,
//! \[U\] unverified):
//! - RDP on every family: 0xAA is level 0, 0xCC is level 2, any other value is level 1 (the
//!   HAL writes 0x55 on F4/F7/H7, 0xBB on L4) \[P HAL `OB_RDP_LEVEL_x` for F4, H7, L4 per
//!   `stm32-flash.md` §1, §14; L0 \[U\]\].
//! - F4 (RM0090): OPTCR RDP\[15:8\]; nWRP\[27:16\], one bit per bank-1 sector 0-11, 0 = protected.
//!   With SPRMOD (OPTCR bit 31, F42x/F43x only) set the bits select PCROP instead, with the
//!   active level inverted: 1 = sector read/write protected \[P RM0090 Rev 21 §3.7.5 note\].
//!   Bank-2 sectors of dual-bank F42x/F43x live in OPTCR1, which is not decoded here.
//! - F7 (RM0410/RM0385): OPTCR RDP\[15:8\]; nWRP, 0 = protected. F76x/F77x have 12 bits at
//!   \[27:16\] (metapac's field is only the 8 bits of F74x/F75x, so the raw register is read):
//!   single bank, bit i = sector i; dual bank (nDBANK = 0), bit i = sectors 2i and 2i+1 of the
//!   dual-bank numbering 0-23, where bank 2 starts at 12 \[P HAL-F7 `OB_WRP_DB_SECTOR_x`\]. The
//!   bank mode is taken from the part passed in (one bank or two), so pass the part
//!   [`crate::flash::Flash::detect`] chose. PCROP (OPTCR2) is not reported.
//! - H7 (RM0433): FLASH_OPTSR_CUR RDP\[15:8\]; FLASH_WPSN_CUR1R/CUR2R WRPSn\[7:0\], one bit per
//!   sector of bank 1/2, 0 = protected \[P HAL-H7 `WPSN_PRG1 &= ~WRPSector`\]. Which bank the
//!   two registers describe while SWAP_BANK is set is \[U\]; this reads CUR1R for the bank at
//!   0x0800_0000. PCROP and the secure-access area are not reported.
//! - L4 (RM0351): OPTR RDP\[7:0\]; WRP1AR/WRP1BR (bank 1) and WRP2AR/WRP2BR (bank 2) each hold
//!   STRT\[7:0\] and END\[23:16\], page offsets inside the bank (2 KiB pages); an area protects
//!   pages STRT..=END and is active only when STRT <= END \[P SVD `flash_l4.yaml` field names;
//!   the activation rule is RM0351's, not checked against its text here: U\]. Bank swap
//!   (FB_MODE/BFB2) is \[U\]. PCROP is not reported.
//! - L0 (RM0367/RM0377): OPTR RDPROT\[7:0\]; WRPROT1 bits 0-31 and WRPROT2 bits 0-15, one bit
//!   per 4 KiB sector counted from 0x0800_0000 (sector 32, WRPROT2 bit 0, starts at
//!   0x0802_0000), 1 = protected: the polarity is inverted against F4 \[P HAL-L0
//!   `OB_WRP_Pages0to31`, `OB_WRP2_Pages1024to1055` "Sector32"\]. With WPRMOD (OPTR bit 8) set
//!   the same bits select PCROP; a set bit is still read as protected \[U\].
//!
//! Sectors are those of `part.geometry` that overlap the range, so the answer is per erase
//! unit of the part (per 2 KiB page on L4, per 128-byte page on L0 mapped to its 4 KiB WRP
//! sector). A sector whose protection bit this build cannot locate (another family than the
//! build's chip, F4 bank 2, an index beyond the register) counts as not protected: the report
//! never claims a protection it could not read.
//!
//! [`protect`] per family (keys 0x0819_2A3B, 0x4C5D_6E7F, written only while the lock bit
//! reads 1, `emulation.md` §2):
//! - F4/F7: wait SR.BSY, unlock OPTCR, clear the nWRP bits of the sectors in OPTCR (the other
//!   fields are written back as read), OPTSTRT, wait BSY, OPTLOCK \[P HAL/SPL-F4
//!   `FLASH_OB_WRPConfig`, `HAL_FLASH_OB_Launch`\]. Reported as in effect at once (no reset)
//!   \[U: RM0090/RM0410 not checked; the check after programming reads OPTCR, which holds the
//!   edit either way\]. F4 refuses bank-2 sectors (OPTCR1) and SPRMOD = 1 (the bits would
//!   clear PCROP instead); F7 dual bank protects whole sector pairs (one bit per pair).
//! - H7: wait for both banks and OPTSR_CUR.OPT_BUSY, unlock OPTCR, clear the sector bits in
//!   WPSN_PRG1R/2R, OPTSTART, wait OPT_BUSY, check OPTCHANGEERR, OPTLOCK \[P HAL-H7
//!   `FLASH_OB_EnableWRP`, `FLASH_OB_WaitForLastOperation`\]. In effect at once: the check
//!   reads WPSN_CURxR \[I from the HAL, which launches no reload\]. Refused while SWAP_BANK is
//!   set, since which bank each register set describes then is \[U\].
//! - L4: unlock CR (KEYR), then OPTKEYR; one WRP area per bank set to, or widened to, the
//!   pages of the range in that bank (an active area is widened only where the union stays one
//!   run of pages; otherwise a free area is used, A first; no area left: `Unsupported`);
//!   OPTSTRT, wait BSY, check SR (OPTVERR included) \[P HAL-L4 `FLASH_OB_WRPConfig`, area
//!   semantics U\]. The new values load only at an option-byte launch, which resets the chip:
//!   the caller answers, then calls [`apply_and_reset`].
//! - L0: not supported. Its option bytes are written like data EEPROM (PECR OPTLOCK,
//!   word stores into the option area, each byte with its complement), which this driver
//!   does not do.
//!
//! Under QEMU the FLASH interface is an unimplemented device that reads 0 (`emulation.md`
//! §1.2), so the report shows what all-zero registers decode to: RDP level 1 on every family;
//! on F4/F7/H7 every sector write-protected (nWRP/WRPSn = 0); on L4 page 0 of each bank
//! protected (both areas read STRT = END = 0); on L0 nothing protected.

use core::fmt;

use brickless_flash::{Family, Part, Sector};
use stm32_metapac::FLASH;

/// The read-out protection level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadoutLevel {
    /// No read-out protection (RDP byte 0xAA).
    Level0,
    /// Flash not readable by a debugger or RAM/system-memory boot; reversible with a mass
    /// erase (any RDP byte other than 0xAA and 0xCC).
    Level1,
    /// Debug and option-byte changes disabled for good (RDP byte 0xCC); irreversible.
    Level2,
}

impl ReadoutLevel {
    fn from_byte(rdp: u8) -> ReadoutLevel {
        match rdp {
            0xAA => ReadoutLevel::Level0,
            0xCC => ReadoutLevel::Level2,
            _ => ReadoutLevel::Level1,
        }
    }
}

impl fmt::Display for ReadoutLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadoutLevel::Level0 => "level 0",
            ReadoutLevel::Level1 => "level 1",
            ReadoutLevel::Level2 => "level 2",
        })
    }
}

/// The write protection of an address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteProtection {
    /// No sector of the range is write-protected (also: the range holds no flash).
    None,
    /// Every sector of the range is write-protected.
    Full,
    /// Some sectors of the range are write-protected, others are not.
    Partial,
}

impl fmt::Display for WriteProtection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteProtection::None => "not write-protected",
            WriteProtection::Full => "write-protected",
            WriteProtection::Partial => "partly write-protected",
        })
    }
}

/// The chip's protection state, as [`read`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    /// The read-out protection level.
    pub readout: ReadoutLevel,
    /// The write protection of the range given to [`read`].
    pub range_write_protection: WriteProtection,
}

/// The read-out protection level and the write protection of \[start, end) (absolute
/// addresses, e.g. the bootloader's own sectors), from the option registers as loaded at
/// reset.
///
/// Every sector of `part` that overlaps the range counts; bytes outside the part's flash are
/// ignored, and an empty range (or one without flash) is [`WriteProtection::None`]. Only
/// reads registers.
pub fn read(part: &'static Part, start: u32, end: u32) -> Protection {
    let readout = ReadoutLevel::from_byte(imp::rdp_byte());
    let regs = imp::WrpRegs::load();
    let g = &part.geometry;
    let known = imp::family_ok(g.family);
    let mut any = false;
    let mut all = true;
    for s in g.sectors().filter(|s| s.addr < end && start < s.end()) {
        if known && regs.protects(part, &s) {
            any = true;
        } else {
            all = false;
        }
    }
    let range_write_protection = match (any, all) {
        (false, _) => WriteProtection::None,
        (true, true) => WriteProtection::Full,
        (true, false) => WriteProtection::Partial,
    };
    Protection {
        readout,
        range_write_protection,
    }
}

/// Whether bit `n` of `bits` is set; `false` for a bit beyond the width.
#[cfg_attr(feature = "family-l4", allow(dead_code))]
fn bit(bits: u32, n: u32) -> bool {
    n < 32 && (bits >> n) & 1 != 0
}

/// Why write protection could not be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectError {
    /// This build cannot protect the range: another family than the build's chip, L0, a
    /// sector outside the registers this driver edits, or (L4) no WRP area left to cover it.
    Unsupported,
    /// The option bytes cannot be changed: RDP level 2, or the option lock did not open
    /// (a wrong key sequence earlier locks it until reset).
    Locked,
    /// The controller reported an error: the status register's error bits at their positions
    /// in SR (F4/F7/L4) or OPTSR_CUR's OPTCHANGEERR (bit 30, H7).
    Controller(u32),
    /// Programming finished without an error, yet [`read`] does not show the range protected.
    NotApplied,
}

impl fmt::Display for ProtectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtectError::Unsupported => f.write_str("not supported for this range on this chip"),
            ProtectError::Locked => f.write_str("option bytes locked"),
            ProtectError::Controller(bits) => write!(f, "flash controller error 0x{bits:08x}"),
            ProtectError::NotApplied => f.write_str("protection not in effect after programming"),
        }
    }
}

/// Write-protects every sector (page) overlapping \[start, end) through the option bytes,
/// keeping every other option and every other sector's protection as it is. Returns
/// `Ok(true)` when the change takes effect only after an option-byte reload (a reset): the
/// caller must answer first, then reset (with [`apply_and_reset`]); `Ok(false)` when it is in
/// effect now.
///
/// The protection unit is the register's: a whole sector pair on dual-bank F7, a 2 KiB page
/// on L4, so the protected span can reach past `end`. A range without flash is `Ok(false)`
/// without touching anything, and so is one already protected (on L4 `Ok(true)`, since its
/// registers cannot tell a loaded area from a pending one). Removing protection is not
/// offered. See the module text for each family's sequence and what is verified.
pub fn protect(part: &'static Part, start: u32, end: u32) -> Result<bool, ProtectError> {
    if !imp::family_ok(part.geometry.family) {
        return Err(ProtectError::Unsupported);
    }
    let mut sectors = part
        .geometry
        .sectors()
        .filter(|s| s.addr < end && start < s.end())
        .peekable();
    if sectors.peek().is_none() {
        return Ok(false);
    }
    if ReadoutLevel::from_byte(imp::rdp_byte()) == ReadoutLevel::Level2 {
        return Err(ProtectError::Locked);
    }
    let needs_reset = imp::protect(part, sectors)?;
    if !needs_reset && read(part, start, end).range_write_protection != WriteProtection::Full {
        return Err(ProtectError::NotApplied);
    }
    Ok(needs_reset)
}

/// Applies option bytes programmed by [`protect`] and resets: on L4 it sets OBL_LAUNCH (the
/// reload resets the chip; a plain system reset does not reload the option bytes there
/// \[U RM0351\]), falling back to a system reset if the option lock does not open or no reset
/// follows; on the other families a system reset (SCB AIRCR.SYSRESETREQ).
pub fn apply_and_reset() -> ! {
    #[cfg(feature = "family-l4")]
    imp::launch_option_load();
    cortex_m::peripheral::SCB::sys_reset()
}

/// The option-byte keys of F4, F7, H7 and L4 (`emulation.md` §2).
#[cfg(not(feature = "family-l0"))]
const OPTKEY1: u32 = 0x0819_2A3B;
#[cfg(not(feature = "family-l0"))]
const OPTKEY2: u32 = 0x4C5D_6E7F;

/// F4/F7: clear the nWRP bits `mask` (bit i = nWRPi, OPTCR\[16 + i\]) and launch.
#[cfg(any(feature = "family-f4", feature = "family-f7"))]
mod optcr {
    use cortex_m::asm::dsb;
    use stm32_metapac::flash::regs::Sr;
    use stm32_metapac::FLASH;

    use super::{ProtectError, OPTKEY1, OPTKEY2};

    // The flash driver's error flags and busy wait: one definition per family.
    use crate::flash::imp::{err_mask, wait_idle};

    pub(super) fn clear_nwrp(mask: u32) -> Result<(), ProtectError> {
        let field = (mask & 0x0FFF) << 16;
        if FLASH.optcr().read().0 & field == 0 {
            // Already protected (0 = protected).
            return Ok(());
        }
        wait_idle();
        if FLASH.optcr().read().optlock() {
            FLASH.optkeyr().write_value(OPTKEY1);
            FLASH.optkeyr().write_value(OPTKEY2);
            if FLASH.optcr().read().optlock() {
                return Err(ProtectError::Locked);
            }
        }
        // Stale flags would be taken for this operation's (W1C).
        FLASH.sr().write_value(Sr(err_mask()));
        // The other OPTCR fields go back as read: RDP, BOR, user bits, nWRP of other sectors.
        FLASH.optcr().modify(|w| w.0 &= !field);
        FLASH.optcr().modify(|w| w.set_optstrt(true));
        dsb();
        wait_idle();
        let sr = FLASH.sr().read().0 & err_mask();
        FLASH.sr().write_value(Sr(err_mask()));
        FLASH.optcr().modify(|w| w.set_optlock(true));
        if sr != 0 {
            Err(ProtectError::Controller(sr))
        } else {
            Ok(())
        }
    }
}

#[cfg(feature = "family-f4")]
mod imp {
    use super::*;

    pub(super) fn family_ok(f: Family) -> bool {
        f == Family::F4
    }

    /// OPTCR RDP\[15:8\] (RM0090 §3.9.10).
    pub(super) fn rdp_byte() -> u8 {
        FLASH.optcr().read().rdp()
    }

    pub(super) struct WrpRegs {
        n_wrp: u32,
        sprmod: bool,
    }

    impl WrpRegs {
        pub(super) fn load() -> WrpRegs {
            let optcr = FLASH.optcr().read();
            WrpRegs {
                // nWRP[27:16], one bit per bank-1 sector 0-11 (RM0090 §3.9.10).
                n_wrp: u32::from(optcr.n_wrp()),
                // Reserved (reads 0) on F40x/F41x.
                sprmod: optcr.sprmod(),
            }
        }

        pub(super) fn protects(&self, _part: &Part, s: &Sector) -> bool {
            if s.bank != 0 || s.index >= 12 {
                // Bank 2 of F42x/F43x: OPTCR1, not decoded.
                return false;
            }
            let set = bit(self.n_wrp, u32::from(s.index));
            // SPRMOD = 0: nWRPi = 0 protects; SPRMOD = 1: nWRPi = 1 is PCROP (read/write).
            set == self.sprmod
        }
    }

    /// Clears nWRPi of each sector (RM0090 §3.7; HAL-F4 `FLASH_OB_EnableWRP`).
    pub(super) fn protect(
        _part: &Part,
        sectors: impl Iterator<Item = Sector>,
    ) -> Result<bool, ProtectError> {
        if FLASH.optcr().read().sprmod() {
            // PCROP mode (F42x/F43x): clearing the bits would remove PCROP, not add WRP.
            return Err(ProtectError::Unsupported);
        }
        let mut mask = 0u32;
        for s in sectors {
            if s.bank != 0 || s.index >= 12 {
                // Bank 2 of F42x/F43x lives in OPTCR1, which this driver does not edit.
                return Err(ProtectError::Unsupported);
            }
            mask |= 1 << s.index;
        }
        super::optcr::clear_nwrp(mask)?;
        Ok(false)
    }
}

#[cfg(feature = "family-f7")]
mod imp {
    use super::*;

    pub(super) fn family_ok(f: Family) -> bool {
        f == Family::F7
    }

    /// OPTCR RDP\[15:8\] (RM0410).
    pub(super) fn rdp_byte() -> u8 {
        FLASH.optcr().read().rdp()
    }

    pub(super) struct WrpRegs {
        n_wrp: u32,
    }

    impl WrpRegs {
        pub(super) fn load() -> WrpRegs {
            // nWRP[27:16] on F76x/F77x (HAL-F7 `OB_WRP_SECTOR_All` 0x0FFF_0000); F74x/F75x use
            // [23:16] and have only sectors 0-7, so the upper bits are never consulted there.
            WrpRegs {
                n_wrp: (FLASH.optcr().read().0 >> 16) & 0x0FFF,
            }
        }

        pub(super) fn protects(&self, part: &Part, s: &Sector) -> bool {
            let bit_no = wrp_bit(part, s);
            bit_no < 12 && !bit(self.n_wrp, bit_no)
        }
    }

    /// The nWRP bit of a sector; 12 or more means none.
    fn wrp_bit(part: &Part, s: &Sector) -> u32 {
        if part.geometry.banks.len() > 1 {
            // Dual bank: sectors numbered 0-23 with bank 2 from 12; nWRPi covers 2i, 2i+1.
            (u32::from(s.bank) * 12 + u32::from(s.index)) / 2
        } else {
            u32::from(s.index)
        }
    }

    /// Clears the nWRP bit of each sector (RM0410; same scheme as F4, nWRP\[27:16\] raw).
    pub(super) fn protect(
        part: &Part,
        sectors: impl Iterator<Item = Sector>,
    ) -> Result<bool, ProtectError> {
        let mut mask = 0u32;
        for s in sectors {
            let bit_no = wrp_bit(part, &s);
            if bit_no >= 12 {
                return Err(ProtectError::Unsupported);
            }
            mask |= 1 << bit_no;
        }
        super::optcr::clear_nwrp(mask)?;
        Ok(false)
    }
}

#[cfg(feature = "family-h7")]
mod imp {
    use super::*;
    use cortex_m::asm::dsb;
    use stm32_metapac::flash::regs::{Optccr, OptsrCur};

    pub(super) fn family_ok(f: Family) -> bool {
        f == Family::H74x
    }

    /// FLASH_OPTSR_CUR RDP\[15:8\] (RM0433).
    pub(super) fn rdp_byte() -> u8 {
        FLASH.optsr_cur().read().rdp()
    }

    pub(super) struct WrpRegs {
        wrpsn: [u8; 2],
    }

    impl WrpRegs {
        pub(super) fn load() -> WrpRegs {
            // FLASH_WPSN_CUR1R (0x038) and CUR2R (0x138): WRPSn[7:0], one bit per sector.
            WrpRegs {
                wrpsn: [
                    FLASH.bank(0).wpsn_curr().read().wrpsn(),
                    FLASH.bank(1).wpsn_curr().read().wrpsn(),
                ],
            }
        }

        pub(super) fn protects(&self, _part: &Part, s: &Sector) -> bool {
            match self.wrpsn.get(usize::from(s.bank)) {
                // 0 = write-protected.
                Some(&bits) => s.index < 8 && !bit(u32::from(bits), u32::from(s.index)),
                None => false,
            }
        }
    }

    /// Waits until nothing is queued or running in either bank.
    fn wait_banks_idle() {
        for b in 0..2 {
            loop {
                let sr = FLASH.bank(b).sr().read();
                if !sr.qw() && !sr.bsy() {
                    break;
                }
            }
        }
    }

    fn wait_opt_idle() {
        while FLASH.optsr_cur().read().opt_busy() {}
    }

    fn clear_optchangeerr() {
        let mut c = Optccr(0);
        c.set_clr_optchangeerr(true);
        FLASH.optccr().write_value(c);
    }

    /// Clears WRPSn of each sector in WPSN_PRGxR and starts the option change (RM0433;
    /// HAL-H7 `FLASH_OB_EnableWRP`, `HAL_FLASH_OB_Launch`).
    pub(super) fn protect(
        _part: &Part,
        sectors: impl Iterator<Item = Sector>,
    ) -> Result<bool, ProtectError> {
        if FLASH.optcr().read().swap_bank() {
            return Err(ProtectError::Unsupported);
        }
        let mut masks = [0u8; 2];
        for s in sectors {
            match masks.get_mut(usize::from(s.bank)) {
                Some(m) if s.index < 8 => *m |= 1 << s.index,
                _ => return Err(ProtectError::Unsupported),
            }
        }
        let cur = WrpRegs::load().wrpsn;
        if masks.iter().zip(cur).all(|(&m, c)| c & m == 0) {
            // Already protected (0 = protected).
            return Ok(false);
        }
        wait_banks_idle();
        wait_opt_idle();
        if FLASH.optcr().read().optlock() {
            FLASH.optkeyr().write_value(OPTKEY1);
            FLASH.optkeyr().write_value(OPTKEY2);
            if FLASH.optcr().read().optlock() {
                return Err(ProtectError::Locked);
            }
        }
        clear_optchangeerr();
        for (b, &m) in masks.iter().enumerate() {
            if m != 0 {
                FLASH
                    .bank(b)
                    .wpsn_prgr()
                    .modify(|w| w.set_wrpsn(w.wrpsn() & !m));
            }
        }
        FLASH.optcr().modify(|w| w.set_optstart(true));
        dsb();
        wait_opt_idle();
        let optsr = FLASH.optsr_cur().read();
        if optsr.optchangeerr() {
            clear_optchangeerr();
        }
        FLASH.optcr().modify(|w| w.set_optlock(true));
        if optsr.optchangeerr() {
            let mut e = OptsrCur(0);
            e.set_optchangeerr(true);
            Err(ProtectError::Controller(e.0))
        } else {
            Ok(false)
        }
    }
}

#[cfg(feature = "family-l4")]
mod imp {
    use super::*;
    use cortex_m::asm::dsb;
    use stm32_metapac::flash::regs::Sr;

    /// Page size the WRP offsets count in (RM0351; HAL-L4 `FLASH_PAGE_SIZE` 0x800).
    const PAGE: u32 = 2048;

    pub(super) fn family_ok(f: Family) -> bool {
        f == Family::L4
    }

    /// OPTR RDP\[7:0\] (RM0351).
    pub(super) fn rdp_byte() -> u8 {
        FLASH.optr().read().rdp()
    }

    /// One WRP area: pages `strt..=end` of its bank, active when `strt <= end`.
    #[derive(Clone, Copy)]
    struct Area {
        strt: u8,
        end: u8,
    }

    impl Area {
        fn covers(self, page: u16) -> bool {
            self.strt <= self.end && u16::from(self.strt) <= page && page <= u16::from(self.end)
        }
    }

    pub(super) struct WrpRegs {
        /// Areas A and B of bank 1, then of bank 2.
        areas: [[Area; 2]; 2],
    }

    impl WrpRegs {
        pub(super) fn load() -> WrpRegs {
            let (a1, b1) = (FLASH.wrp1ar().read(), FLASH.wrp1br().read());
            let (a2, b2) = (FLASH.wrp2ar().read(), FLASH.wrp2br().read());
            WrpRegs {
                areas: [
                    [
                        Area {
                            strt: a1.wrp1a_strt(),
                            end: a1.wrp1a_end(),
                        },
                        Area {
                            strt: b1.wrp1b_strt(),
                            end: b1.wrp1b_end(),
                        },
                    ],
                    [
                        Area {
                            strt: a2.wrp2a_strt(),
                            end: a2.wrp2a_end(),
                        },
                        Area {
                            strt: b2.wrp2b_strt(),
                            end: b2.wrp2b_end(),
                        },
                    ],
                ],
            }
        }

        pub(super) fn protects(&self, _part: &Part, s: &Sector) -> bool {
            if s.size != PAGE {
                return false;
            }
            match self.areas.get(usize::from(s.bank)) {
                Some(areas) => areas.iter().any(|a| a.covers(s.index)),
                None => false,
            }
        }
    }

    impl Area {
        fn active(self) -> bool {
            self.strt <= self.end
        }

        /// This active area widened to also cover `lo..=hi`, if the union is one run of pages.
        fn merged(self, lo: u8, hi: u8) -> Option<Area> {
            let touches = u16::from(self.strt) <= u16::from(hi) + 1
                && u16::from(lo) <= u16::from(self.end) + 1;
            (self.active() && touches).then(|| Area {
                strt: self.strt.min(lo),
                end: self.end.max(hi),
            })
        }
    }

    use crate::flash::imp::wait_idle;

    /// SR flags that fail an option change (HAL-L4 `FLASH_FLAG_SR_ERRORS`): the driver's
    /// program/erase errors plus RDERR and OPTVERR.
    fn err_mask() -> u32 {
        let mut m = Sr(crate::flash::imp::err_mask());
        m.set_rderr(true);
        m.set_optverr(true);
        m.0
    }

    /// Opens CR (KEYR), then the option bytes (OPTKEYR); `false` if either stays locked.
    fn unlock_options() -> bool {
        if FLASH.cr().read().lock() {
            FLASH.keyr().write_value(KEY1);
            FLASH.keyr().write_value(KEY2);
        }
        if FLASH.cr().read().lock() {
            return false;
        }
        if FLASH.cr().read().optlock() {
            FLASH.optkeyr().write_value(OPTKEY1);
            FLASH.optkeyr().write_value(OPTKEY2);
        }
        !FLASH.cr().read().optlock()
    }

    fn lock_all() {
        FLASH.cr().modify(|w| {
            w.set_optlock(true);
            w.set_lock(true);
        });
    }

    const KEY1: u32 = 0x4567_0123;
    const KEY2: u32 = 0xCDEF_89AB;

    fn write_area(bank: usize, slot: usize, a: Area) {
        match (bank, slot) {
            (0, 0) => FLASH.wrp1ar().modify(|w| {
                w.set_wrp1a_strt(a.strt);
                w.set_wrp1a_end(a.end);
            }),
            (0, _) => FLASH.wrp1br().modify(|w| {
                w.set_wrp1b_strt(a.strt);
                w.set_wrp1b_end(a.end);
            }),
            (_, 0) => FLASH.wrp2ar().modify(|w| {
                w.set_wrp2a_strt(a.strt);
                w.set_wrp2a_end(a.end);
            }),
            _ => FLASH.wrp2br().modify(|w| {
                w.set_wrp2b_strt(a.strt);
                w.set_wrp2b_end(a.end);
            }),
        }
    }

    /// Sets or widens one WRP area per bank to cover the pages (RM0351; HAL-L4
    /// `FLASH_OB_WRPConfig`, `HAL_FLASH_OB_Launch`). Always `Ok(true)`: the areas load only at
    /// an option-byte launch.
    pub(super) fn protect(
        _part: &Part,
        sectors: impl Iterator<Item = Sector>,
    ) -> Result<bool, ProtectError> {
        // Per bank, the first and last page of the range (the pages of a bank are a run).
        let mut want: [Option<(u8, u8)>; 2] = [None; 2];
        for s in sectors {
            let page = u8::try_from(s.index).map_err(|_| ProtectError::Unsupported)?;
            match want.get_mut(usize::from(s.bank)) {
                Some(w) if s.size == PAGE => {
                    *w = Some(match *w {
                        None => (page, page),
                        Some((lo, hi)) => (lo.min(page), hi.max(page)),
                    })
                }
                _ => return Err(ProtectError::Unsupported),
            }
        }
        let old = WrpRegs::load().areas;
        let mut new = old;
        for (bank, w) in want.iter().enumerate() {
            let Some((lo, hi)) = *w else { continue };
            let areas = &mut new[bank];
            if (lo..=hi).all(|p| areas.iter().any(|a| a.covers(u16::from(p)))) {
                continue;
            }
            // Widen an active area (A first), else take a free one (A first).
            let widened = (0..2).find_map(|i| areas[i].merged(lo, hi).map(|a| (i, a)));
            let free = (0..2)
                .find(|&i| !areas[i].active())
                .map(|i| (i, Area { strt: lo, end: hi }));
            let (slot, area) = widened.or(free).ok_or(ProtectError::Unsupported)?;
            areas[slot] = area;
        }
        let changed =
            |b: usize, i: usize| (old[b][i].strt, old[b][i].end) != (new[b][i].strt, new[b][i].end);
        if !(0..2).any(|b| (0..2).any(|i| changed(b, i))) {
            // Covered already; loaded or pending cannot be told apart, so ask for the reload.
            return Ok(true);
        }
        wait_idle();
        if !unlock_options() {
            lock_all();
            return Err(ProtectError::Locked);
        }
        // Every W1C flag: a stale error would fail OPTSTRT with PGSERR or be taken as ours.
        let mut clear = Sr(err_mask());
        clear.set_eop(true);
        FLASH.sr().write_value(clear);
        for (b, areas) in new.iter().enumerate() {
            for (i, &area) in areas.iter().enumerate() {
                if changed(b, i) {
                    write_area(b, i, area);
                }
            }
        }
        FLASH.cr().modify(|w| w.set_optstrt(true));
        dsb();
        wait_idle();
        let sr = FLASH.sr().read().0 & err_mask();
        FLASH.sr().write_value(clear);
        lock_all();
        if sr != 0 {
            Err(ProtectError::Controller(sr))
        } else {
            Ok(true)
        }
    }

    /// Sets OBL_LAUNCH (needs CR and the option bytes unlocked) and waits for the reset it
    /// causes; returns if the lock does not open or no reset came.
    pub(super) fn launch_option_load() {
        wait_idle();
        if unlock_options() {
            FLASH.cr().modify(|w| w.set_obl_launch(true));
            dsb();
            // The reload resets the chip; give it time before falling back.
            for _ in 0..1_000_000 {
                cortex_m::asm::nop();
            }
        }
        lock_all();
    }
}

#[cfg(feature = "family-l0")]
mod imp {
    use super::*;

    /// The WRP unit: 32 pages of 128 bytes (RM0377 §3; HAL-L0 `OB_WRP_Pages0to31`).
    const WRP_SECTOR: u32 = 4096;
    const FLASH_BASE: u32 = crate::flash::FLASH_BASE;

    pub(super) fn family_ok(f: Family) -> bool {
        f == Family::L0
    }

    /// OPTR RDPROT\[7:0\] (RM0367).
    pub(super) fn rdp_byte() -> u8 {
        FLASH.optr().read().rdprot()
    }

    pub(super) struct WrpRegs {
        /// WRPROT1 (sectors 0-31), WRPROT2 (sectors 32-47, bits 0-15).
        wrprot: [u32; 2],
    }

    impl WrpRegs {
        pub(super) fn load() -> WrpRegs {
            WrpRegs {
                wrprot: [FLASH.wrprot().read().0, FLASH.wrprot2().read().0 & 0xFFFF],
            }
        }

        pub(super) fn protects(&self, _part: &Part, s: &Sector) -> bool {
            let Some(offset) = s.addr.checked_sub(FLASH_BASE) else {
                return false;
            };
            let n = offset / WRP_SECTOR;
            match self.wrprot.get((n / 32) as usize) {
                // 1 = write-protected (inverted against F4).
                Some(&bits) => bit(bits, n % 32),
                None => false,
            }
        }
    }

    /// Not supported: L0 option bytes are programmed like data EEPROM (PECR OPTLOCK unlocked
    /// with its own keys, word stores of value and complement into the option area, then
    /// OBL_LAUNCH), which this driver does not implement.
    pub(super) fn protect(
        _part: &Part,
        _sectors: impl Iterator<Item = Sector>,
    ) -> Result<bool, ProtectError> {
        Err(ProtectError::Unsupported)
    }
}
