//! STM32 embedded-flash geometry as data, for the bootloader, the flash model and the hosts.
//!
//! `no_std`, no allocation. Every part is a `&'static Part`; look one up by name with
//! [`part`]. Addresses are absolute (0x0800_0000 based); the `NorFlash` offset space used by
//! the engine and the model is `address - Geometry::base()`.
#![no_std]
#![forbid(unsafe_code)]

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

/// What the controller does when a write unit is programmed again without an erase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteRule {
    /// Bits only go 1 -> 0 (F4/F7: no ECC).
    BitwiseAnd,
    /// Refused with PROGERR unless the new data is all zeros (L4/G0/G4/L5/U5/H5).
    OnceExceptAllZeros,
    /// No hardware check: a second program silently poisons the ECC (H7).
    OnceNoHwCheck,
    /// Refused with NOTZEROERR (L0, erased value 0x00).
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

/// The exception a double-ECC error raises on the real core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EccFault {
    BusFault,
    Nmi,
}

/// A run of equal-sized erase units (sectors or pages) inside a bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectorRun {
    pub size: u32,
    pub count: u16,
}

/// One flash bank: its absolute base address and its erase layout, in address order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bank {
    pub base: u32,
    pub sectors: &'static [SectorRun],
}

/// Typical and maximum operation times, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Programming one write unit.
    pub program_unit_typ_us: u32,
    pub program_unit_max_us: u32,
    /// Erasing one erase unit of the given size is `erase_per_kib_*` times its KiB count.
    pub erase_per_kib_typ_us: u32,
    pub erase_per_kib_max_us: u32,
}

/// The flash array of one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub family: Family,
    /// Banks in address order; bank 2 may start after a hole (H7 1 MiB parts, G4).
    pub banks: &'static [Bank],
    /// Program granule in bytes: 32 (H74x/H72x), 16 (H7A3/H5/U5), 8 (L4/G0/G4/L5), 4 (L0),
    /// and the PSIZE-chosen unit on F4/F7.
    pub write_unit: u32,
    /// Erased byte value (0x00 on L0, else 0xFF).
    pub erased: u8,
    pub rewrite: RewriteRule,
    pub ecc: Ecc,
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
    pub size: u32,
}

/// A named STM32 part: what a user selects with `--part`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Lower-case, as ST prints it without package/temperature suffix, e.g. `stm32h753zi`.
    pub name: &'static str,
    pub geometry: Geometry,
    /// RAM base and size, for the stack pointer check before a jump.
    pub ram_base: u32,
    pub ram_size: u32,
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

    /// Bytes of real flash (holes between banks excluded).
    pub fn total_size(&self) -> u32 {
        self.banks.iter().map(bank_size).sum()
    }

    /// Every sector in address order.
    pub fn sectors(&self) -> impl Iterator<Item = Sector> + '_ {
        self.banks.iter().enumerate().flat_map(|(bank_index, bank)| {
            let mut addr = bank.base;
            let mut index = 0u16;
            bank.sectors.iter().flat_map(move |run| {
                (0..run.count).map(move |_| run.size)
            })
            .map(move |size| {
                let sector = Sector { bank: bank_index as u8, index, addr, size };
                addr += size;
                index += 1;
                sector
            })
        })
    }

    /// The sector holding `addr`, or `None` for an address outside flash or in a bank hole.
    pub fn sector_at(&self, addr: u32) -> Option<Sector> {
        self.sectors().find(|s| addr >= s.addr && addr - s.addr < s.size)
    }

    /// The largest erase unit, what a `NorFlash::ERASE_SIZE` for the whole array must be.
    pub fn max_sector_size(&self) -> u32 {
        self.sectors().map(|s| s.size).max().unwrap_or(0)
    }
}

fn bank_size(bank: &Bank) -> u32 {
    bank.sectors.iter().map(|r| r.size * u32::from(r.count)).sum()
}

/// Every part brickless knows, in name order.
pub static PARTS: &[Part] = &[];

/// Looks a part up by name, ignoring case (`STM32H753ZI` and `stm32h753zi` both work).
pub fn part(name: &str) -> Option<&'static Part> {
    PARTS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}
