//! A read-only report of the chip's self-protection: the read-out protection (RDP) level and
//! whether an address range (for example the bootloader's own sectors) is write-protected.
//!
//! Nothing here writes an option byte or a flash register: [`read`] only loads the option
//! registers, which hold the option bytes as loaded at reset (or at the last option-byte
//! launch). On F4/F7 and L4 the readable register is also the one software edits before an
//! option-byte launch, so a pending, not yet launched edit shows up as if it were active \[I\].
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
            let bit_no = if part.geometry.banks.len() > 1 {
                // Dual bank: sectors numbered 0-23 with bank 2 from 12; nWRPi covers 2i, 2i+1.
                (u32::from(s.bank) * 12 + u32::from(s.index)) / 2
            } else {
                u32::from(s.index)
            };
            bit_no < 12 && !bit(self.n_wrp, bit_no)
        }
    }
}

#[cfg(feature = "family-h7")]
mod imp {
    use super::*;

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
}

#[cfg(feature = "family-l4")]
mod imp {
    use super::*;

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
}
