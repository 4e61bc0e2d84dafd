#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

mod banks;
mod parts;
mod read;
mod writer;

pub use banks::{BankSwap, SwapMechanism};
pub use parts::PARTS;
pub use read::{read_tolerant, EccReport, ReadFault};
pub use writer::{AlignedWriter, WriterError, MAX_WRITE_UNIT};

/// STM32 family: selects the flash controller's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// H74x/H75x (incl. dual-core H745/H747/H755/H757), RM0433/RM0399.
    H74x,
    /// H72x/H73x, RM0468.
    H72x,
    /// H7A3/H7B3/H7B0, RM0455.
    H7A3,
    /// H5, RM0481.
    H5,
    /// L4 (L47x/L48x/L49x/L4Ax), RM0351.
    L4,
    /// L4+ (L4R/L4S/L4P/L4Q), RM0432.
    L4Plus,
    /// L0 category 5, RM0367/RM0377.
    L0,
    /// F4, RM0090.
    F4,
    /// F7, RM0410/RM0385.
    F7,
    /// G0, RM0444.
    G0,
    /// G4, RM0440.
    G4,
    /// U5, RM0456.
    U5,
    /// L5, RM0438.
    L5,
}

impl Family {
    /// The hardware status flag raised by a program whose address is not on a write unit.
    pub fn misaligned_flag(self) -> HwFlag {
        match self {
            // H7-class write buffer: an access straddling two flash words.
            Family::H74x | Family::H72x | Family::H7A3 | Family::H5 => HwFlag::Incerr,
            _ => HwFlag::Pgaerr,
        }
    }

    /// The hardware status flag raised by a program that is not a whole number of write units.
    pub fn short_write_flag(self) -> HwFlag {
        match self {
            // The partial flash word waits in the write buffer; the next access to another
            // flash word raises INCERR.
            Family::H74x | Family::H72x | Family::H7A3 | Family::H5 => HwFlag::Incerr,
            // Access width differs from PSIZE.
            Family::F4 | Family::F7 => HwFlag::Pgperr,
            _ => HwFlag::Sizerr,
        }
    }

    /// The flag raised by a refused second program of a unit, if the family refuses it.
    pub fn reprogram_flag(self) -> Option<HwFlag> {
        match self {
            Family::L4 | Family::L4Plus | Family::G0 | Family::G4 | Family::U5 | Family::L5 => {
                Some(HwFlag::Progerr)
            }
            Family::L0 => Some(HwFlag::Notzeroerr),
            _ => None,
        }
    }
}

/// A flash controller status flag, named as the reference manual names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HwFlag {
    /// Programming sequence error.
    Pgserr,
    /// Programming alignment error.
    Pgaerr,
    /// Programming parallelism error (F4/F7: access size differs from PSIZE).
    Pgperr,
    /// Programming error: unit not erased and data not all zeros (L4/G0/G4/L5/U5).
    Progerr,
    /// Write to a not-erased (non-zero) word (L0).
    Notzeroerr,
    /// Size error: byte or half-word access (L4/G0/G4/L5/U5/L0).
    Sizerr,
    /// Inconsistency error: access to another flash word before the previous one completed (H7/H5).
    Incerr,
    /// Write protection error.
    Wrperr,
}

impl HwFlag {
    /// The flag's name as printed in the reference manual.
    pub fn name(self) -> &'static str {
        match self {
            HwFlag::Pgserr => "PGSERR",
            HwFlag::Pgaerr => "PGAERR",
            HwFlag::Pgperr => "PGPERR",
            HwFlag::Progerr => "PROGERR",
            HwFlag::Notzeroerr => "NOTZEROERR",
            HwFlag::Sizerr => "SIZERR",
            HwFlag::Incerr => "INCERR",
            HwFlag::Wrperr => "WRPERR",
        }
    }
}

impl core::fmt::Display for HwFlag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the controller does when a write unit is programmed again without an erase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteRule {
    /// Bits only go 1 -> 0 (F4/F7: no ECC).
    BitwiseAnd,
    /// Refused with PROGERR unless the new data is all zeros (L4/G0/G4/L5/U5).
    OnceExceptAllZeros,
    /// No hardware check: a second program silently poisons the ECC (H7, H5).
    OnceNoHwCheck,
    /// Refused with NOTZEROERR when the word is not zero (L0, erased value 0x00).
    NotZeroErr,
}

/// How a torn (half-programmed) unit reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ecc {
    /// No ECC: a torn unit reads as a mix of old and new bits, no fault.
    None,
    /// Single-error correction only: no double-error signal (L0).
    SecOnly,
    /// SEC/DED: a double error raises a fault on read.
    SecDed(EccFault),
}

impl Ecc {
    /// Whether a torn unit faults on read (and so can be found by a scan).
    pub fn detects_double_errors(self) -> bool {
        matches!(self, Ecc::SecDed(_))
    }
}

/// The exception a double-ECC error raises on the real core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EccFault {
    /// A BusFault (H74x, H72x, H7A3).
    BusFault,
    /// A non-maskable interrupt (H5, L4, L4+, G0, G4, L5, U5).
    Nmi,
}

/// A run of equal-sized erase units (sectors or pages) inside a bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectorRun {
    /// Bytes per sector (page).
    pub size: u32,
    /// Number of consecutive sectors of that size.
    pub count: u16,
}

/// One flash bank: its absolute base address and its erase layout, in address order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bank {
    /// Absolute address of the bank's first byte.
    pub base: u32,
    /// Runs of sectors from `base` upward, tiling the bank without gaps.
    pub sectors: &'static [SectorRun],
}

impl Bank {
    /// Bytes in this bank.
    pub fn size(&self) -> u32 {
        bank_size(self)
    }

    /// One past the last byte of this bank.
    pub fn end(&self) -> u32 {
        self.base.saturating_add(bank_size(self))
    }
}

/// Typical and maximum operation times, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Programming one write unit.
    pub program_unit_typ_us: u32,
    /// Programming one write unit, worst case.
    pub program_unit_max_us: u32,
    /// Erasing one erase unit of the given size is `erase_per_kib_*` times its KiB count.
    pub erase_per_kib_typ_us: u32,
    /// Worst-case erase time per KiB of erase unit.
    pub erase_per_kib_max_us: u32,
}

impl Timing {
    /// Typical time to erase `size` bytes of sectors, in microseconds.
    pub fn erase_typ_us(&self, size: u32) -> u64 {
        u64::from(self.erase_per_kib_typ_us) * u64::from(size) / 1024
    }

    /// Maximum time to erase `size` bytes of sectors, in microseconds.
    pub fn erase_max_us(&self, size: u32) -> u64 {
        u64::from(self.erase_per_kib_max_us) * u64::from(size) / 1024
    }
}

/// The flash array of one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The family, which sets the controller's rules (error flags on bad programs).
    pub family: Family,
    /// Banks in address order; bank 2 may start after a hole (H7 1 MiB parts, G4).
    pub banks: &'static [Bank],
    /// Program granule in bytes: 32 (H74x/H72x), 16 (H7A3/H5/U5), 8 (L4/G0/G4/L5), 4 (L0),
    /// and the PSIZE-chosen unit on F4/F7 (x32 = 4 bytes, the 2.7-3.6 V setting).
    pub write_unit: u32,
    /// Erased byte value (0x00 on L0, else 0xFF).
    pub erased: u8,
    /// What programming a write unit a second time without an erase does.
    pub rewrite: RewriteRule,
    /// How a torn unit reads back: whether ECC flags it, and with which exception.
    pub ecc: Ecc,
    /// Program and erase times.
    pub timing: Timing,
    /// Rated erase cycles per sector/page.
    pub endurance_cycles: u32,
}

/// A sector (or page) located in a geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sector {
    /// 0-based bank index.
    pub bank: u8,
    /// Index inside the bank, as the reference manual numbers it.
    pub index: u16,
    /// Absolute start address.
    pub addr: u32,
    /// Size in bytes.
    pub size: u32,
}

impl Sector {
    /// One past the last byte.
    pub fn end(&self) -> u32 {
        self.addr.saturating_add(self.size)
    }
}

/// A named STM32 part: what a user selects with `--part`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Lower-case, as ST prints it without package/temperature suffix, e.g. `stm32h753zi`.
    /// A `-dual`/`-single` suffix names a non-default bank-mode option setting.
    pub name: &'static str,
    /// The part's flash array.
    pub geometry: Geometry,
    /// RAM base and size, for the stack pointer check before a jump (the region a CubeMX
    /// linker script puts the initial stack in).
    pub ram_base: u32,
    /// Bytes of that RAM region from `ram_base`.
    pub ram_size: u32,
    /// AN2606 product ID, what the ROM bootloader's Get ID command answers (0x450 = H74x/H75x).
    pub pid: u16,
}

impl Part {
    /// Whether `sp` is a plausible initial stack pointer (inside RAM or one past its end).
    pub fn is_valid_stack_pointer(&self, sp: u32) -> bool {
        let end = u64::from(self.ram_base) + u64::from(self.ram_size);
        sp > self.ram_base && u64::from(sp) <= end
    }
}

impl Geometry {
    /// First byte of bank 1.
    pub fn base(&self) -> u32 {
        self.banks.first().map_or(0, |b| b.base)
    }

    /// One past the last byte of the last bank.
    pub fn end(&self) -> u32 {
        self.banks.last().map_or(0, |b| b.base + bank_size(b))
    }

    /// Size of the offset space `end - base` (holes between banks included).
    pub fn span(&self) -> u32 {
        self.end() - self.base()
    }

    /// Bytes of real flash (holes between banks excluded).
    pub fn total_size(&self) -> u32 {
        self.banks.iter().map(bank_size).sum()
    }

    /// Every sector in address order.
    pub fn sectors(&self) -> impl Iterator<Item = Sector> + '_ {
        self.banks
            .iter()
            .enumerate()
            .flat_map(|(bank_index, bank)| {
                let mut addr = bank.base;
                let mut index = 0u16;
                bank.sectors
                    .iter()
                    .flat_map(move |run| (0..run.count).map(move |_| run.size))
                    .map(move |size| {
                        let sector = Sector {
                            bank: bank_index as u8,
                            index,
                            addr,
                            size,
                        };
                        addr += size;
                        index += 1;
                        sector
                    })
            })
    }

    /// Number of sectors (pages) over all banks.
    pub fn sector_count(&self) -> usize {
        self.banks
            .iter()
            .flat_map(|b| b.sectors.iter())
            .map(|r| usize::from(r.count))
            .sum()
    }

    /// The bank index holding `addr`, or `None` outside flash or in a hole.
    pub fn bank_at(&self, addr: u32) -> Option<u8> {
        self.banks
            .iter()
            .position(|b| addr >= b.base && addr - b.base < bank_size(b))
            .map(|i| i as u8)
    }

    /// Whether `addr` is a byte of real flash.
    pub fn contains(&self, addr: u32) -> bool {
        self.bank_at(addr).is_some()
    }

    /// Whether `[addr, addr + len)` lies entirely in real flash (may span banks only if they
    /// are contiguous).
    pub fn contains_range(&self, addr: u32, len: u32) -> bool {
        if len == 0 {
            return self.contains(addr) || addr == self.end();
        }
        let Some(last) = addr.checked_add(len - 1) else {
            return false;
        };
        let mut at = addr;
        loop {
            let Some(bank) = self.banks.iter().find(|b| at >= b.base && at < b.end()) else {
                return false;
            };
            if last < bank.end() {
                return true;
            }
            at = bank.end();
        }
    }

    /// The sector holding `addr`, or `None` for an address outside flash or in a bank hole.
    pub fn sector_at(&self, addr: u32) -> Option<Sector> {
        let (bank_index, bank) = self
            .banks
            .iter()
            .enumerate()
            .find(|(_, b)| addr >= b.base && addr - b.base < bank_size(b))?;
        let mut start = bank.base;
        let mut index = 0u32;
        for run in bank.sectors {
            let run_len = run.size * u32::from(run.count);
            if addr - start < run_len {
                let n = (addr - start) / run.size;
                return Some(Sector {
                    bank: bank_index as u8,
                    index: (index + n) as u16,
                    addr: start + n * run.size,
                    size: run.size,
                });
            }
            start += run_len;
            index += u32::from(run.count);
        }
        None
    }

    /// Whether `addr` is the first byte of a sector.
    pub fn is_sector_start(&self, addr: u32) -> bool {
        self.sector_at(addr).is_some_and(|s| s.addr == addr)
    }

    /// Whether `[from, to)` starts and ends on sector boundaries and covers only real flash.
    pub fn is_erasable_range(&self, from: u32, to: u32) -> bool {
        if from >= to {
            return from == to && (self.is_sector_start(from) || from == self.end());
        }
        let Some(last) = self.sector_at(to - 1) else {
            return false;
        };
        self.is_sector_start(from) && last.end() == to && self.contains_range(from, to - from)
    }

    /// The largest erase unit, what a `NorFlash::ERASE_SIZE` for the whole array must be.
    pub fn max_sector_size(&self) -> u32 {
        self.sectors().map(|s| s.size).max().unwrap_or(0)
    }

    /// The smallest erase unit.
    pub fn min_sector_size(&self) -> u32 {
        self.sectors().map(|s| s.size).min().unwrap_or(0)
    }
}

fn bank_size(bank: &Bank) -> u32 {
    bank.sectors
        .iter()
        .map(|r| r.size * u32::from(r.count))
        .sum()
}

/// Looks a part up by name, ignoring case (`STM32H753ZI` and `stm32h753zi` both work).
pub fn part(name: &str) -> Option<&'static Part> {
    PARTS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The part named `name` exactly (lower case), for other crates' static tables: used in a
/// `static` or `const` initialiser, a missing name fails the build instead of a lookup at run
/// time. At run time use [`part`].
pub const fn part_named(name: &str) -> &'static Part {
    let parts: &'static [Part] = PARTS;
    let mut i = 0;
    while i < parts.len() {
        if const_str_eq(parts[i].name, name) {
            return &parts[i];
        }
        i += 1;
    }
    panic!("no part of that name in brickless-flash's table")
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Every part answering the given AN2606 product ID (the ROM bootloader's Get ID), in table order.
pub fn parts_with_pid(pid: u16) -> impl Iterator<Item = &'static Part> {
    PARTS.iter().filter(move |p| p.pid == pid)
}
