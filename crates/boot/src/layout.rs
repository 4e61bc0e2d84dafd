//! Where the bootloader, the two slots and the state area live, as data, checked against the
//! part's flash geometry.
//!
//! Addresses here are absolute (0x0800_0000 based) because that is how users and linker
//! scripts name them; the engine converts them to `NorFlash` offsets (`address - base`).
use crate::strategy::{Strategy, StrategyKind};
use brickless_flash::Geometry;
use core::fmt;

/// A contiguous address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Absolute start address.
    pub start: u32,
    /// Length in bytes.
    pub size: u32,
}

impl Region {
    /// `size` bytes from absolute address `start`.
    pub const fn new(start: u32, size: u32) -> Self {
        Region { start, size }
    }

    /// One past the last byte (saturating, so a bad spec cannot overflow).
    pub fn end(&self) -> u32 {
        self.start.saturating_add(self.size)
    }

    fn overlaps(&self, other: &Region) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

/// What a user writes: the regions and the strategy, not yet checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutSpec {
    /// The bootloader's own flash: checked like the other regions (inside flash, on sector
    /// edges, no overlap), never erased or written by the engine.
    pub bootloader: Region,
    /// The slot the application runs from; its image header sits at `start`.
    pub primary: Region,
    /// The other slot: where updates are staged and, with a strategy that reverts, where
    /// the old image is kept.
    pub secondary: Region,
    /// Two state copies, each made of whole sectors, sharing no sector.
    pub state: [Region; 2],
    /// Copy/swap unit in bytes: a multiple of every sector it covers in both slots.
    pub unit: u32,
    /// How an update moves into the primary slot; it also sets the secondary's minimum size.
    pub strategy: StrategyKind,
}

/// A layout checked against a geometry. Only [`Layout::new`] builds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    spec: LayoutSpec,
    geometry: Geometry,
}

/// Size of a unit digest kept in the swap plan (a truncated SHA-256).
pub const DIGEST_LEN: usize = 16;

/// Fixed part of a state record, before digests and padding (see `state.rs`).
pub const RECORD_FIXED_LEN: u32 = 128;

/// Why a layout does not fit the part; every variant says what to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// A region is empty.
    Empty {
        /// The region: `bootloader`, `primary`, `secondary`, `state 0` or `state 1`.
        region: &'static str,
    },
    /// A region is not inside the flash array, or crosses a hole between banks.
    OutsideFlash {
        /// The region, named as in [`LayoutError::Empty`].
        region: &'static str,
        /// The region's absolute start address.
        start: u32,
        /// One past the region's last byte.
        end: u32,
        /// Absolute address of the flash's first byte.
        flash_start: u32,
        /// One past the flash's last byte.
        flash_end: u32,
    },
    /// A region edge is not a sector boundary.
    NotSectorAligned {
        /// The region, named as in [`LayoutError::Empty`].
        region: &'static str,
        /// The edge inside a sector (absolute address).
        addr: u32,
        /// Start of that sector: the nearest boundary below.
        below: u32,
        /// End of that sector: the nearest boundary above.
        above: u32,
    },
    /// Two regions share bytes or sectors.
    Overlap {
        /// One region, named as in [`LayoutError::Empty`].
        a: &'static str,
        /// The other region.
        b: &'static str,
    },
    /// The unit is not a multiple of the write unit or of the sectors it covers.
    BadUnit {
        /// The layout's unit, bytes.
        unit: u32,
        /// The slot it does not tile: `primary` or `secondary`.
        region: &'static str,
        /// Absolute address of the sector that does not fit (the primary's start when the
        /// unit is not a multiple of the write unit).
        addr: u32,
        /// That sector's size, or the write unit when the unit is not a multiple of it.
        sector_size: u32,
    },
    /// A slot is not a whole number of units.
    SlotNotUnits {
        /// The slot: `primary` or `secondary`.
        region: &'static str,
        /// The slot's size, bytes.
        size: u32,
        /// The layout's unit, bytes.
        unit: u32,
    },
    /// The secondary slot is too small for the strategy.
    SecondaryTooSmall {
        /// The secondary slot's size, bytes.
        size: u32,
        /// The least the strategy needs for this primary slot, bytes.
        needed: u32,
    },
    /// A state copy is too small for the largest record.
    StateTooSmall {
        /// Which state copy: 0 or 1.
        index: u8,
        /// Its size, bytes.
        size: u32,
        /// Bytes needed: two swap plans for the primary's units (see [`plan_record_len`]).
        needed: u32,
    },
    /// Bank swap needs a part with two equal banks it can swap.
    NoBankSwap,
    /// A dual-core group layout needs a part with two banks.
    NeedsTwoBanks,
    /// Bank swap maps each bank over the other, so each region in bank 1 needs a twin at the
    /// same offset in bank 2 (and the bootloader must start bank 1).
    NotMirrored {
        /// The region out of place.
        region: &'static str,
        /// Its absolute start address.
        start: u32,
        /// Where it must start (for a region that leaves bank 1: bank 1's base).
        expected: u32,
    },
    /// The primary slot has more units than a record can describe.
    TooManyUnits {
        /// Units in the primary slot.
        units: u32,
        /// The limit, [`MAX_UNITS`].
        max: u32,
    },
}

/// The most units a slot may have (plan records list one digest pair per unit).
pub const MAX_UNITS: u32 = 1024;

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::Empty { region } => write!(f, "the {region} region is empty: give it a size"),
            LayoutError::OutsideFlash { region, start, end, flash_start, flash_end } => write!(
                f,
                "the {region} region {start:#010x}..{end:#010x} is not inside the flash \
                 {flash_start:#010x}..{flash_end:#010x} (or crosses a hole between banks): move or shrink it"
            ),
            LayoutError::NotSectorAligned { region, addr, below, above } => write!(
                f,
                "the {region} region has an edge at {addr:#010x}, inside a sector: use {below:#010x} or {above:#010x}"
            ),
            LayoutError::Overlap { a, b } => {
                write!(f, "the {a} and {b} regions share flash (or a sector): separate them")
            }
            LayoutError::BadUnit { unit, region, addr, sector_size } => write!(
                f,
                "unit {unit:#x} does not tile the {region} slot at {addr:#010x} (sector of {sector_size:#x} bytes): \
                 make the unit a multiple of every sector in the slots and of the write unit"
            ),
            LayoutError::SlotNotUnits { region, size, unit } => write!(
                f,
                "the {region} slot size {size:#x} is not a multiple of the unit {unit:#x}: round it to whole units"
            ),
            LayoutError::SecondaryTooSmall { size, needed } => write!(
                f,
                "the secondary slot is {size:#x} bytes but this strategy needs at least {needed:#x} \
                 (swap: primary + one unit; overwrite: the primary's size): grow it or shrink the primary"
            ),
            LayoutError::StateTooSmall { index, size, needed } => write!(
                f,
                "state copy {index} is {size:#x} bytes but must hold two swap plans ({needed:#x} bytes): \
                 give it more sectors or use a larger unit"
            ),
            LayoutError::NoBankSwap => f.write_str(
                "bank swap needs two equal banks the part can swap (SWAP_BANK or BFB2): \
                 this part has one bank, unequal banks or no swap option; use the swap strategy"
            ),
            LayoutError::NeedsTwoBanks => f.write_str(
                "a dual-core layout puts the second image at the start of bank 2: this part has one bank"
            ),
            LayoutError::NotMirrored { region, start, expected } => write!(
                f,
                "bank swap maps each bank over the other: the {region} region at {start:#010x} must \
                 start at {expected:#010x}, with its twin's size (the bootloader, state copy 0 and the \
                 primary in bank 1; their twins, state copy 1 and the secondary, at the same offsets in bank 2)"
            ),
            LayoutError::TooManyUnits { units, max } => write!(
                f,
                "the primary slot has {units} units, more than {max}: use a larger unit"
            ),
        }
    }
}

impl core::error::Error for LayoutError {}

impl Layout {
    /// Checks `spec` against `geometry`.
    pub fn new(spec: LayoutSpec, geometry: &Geometry) -> Result<Layout, LayoutError> {
        let named = [
            ("bootloader", spec.bootloader),
            ("primary", spec.primary),
            ("secondary", spec.secondary),
            ("state 0", spec.state[0]),
            ("state 1", spec.state[1]),
        ];
        for (name, r) in named {
            if r.size == 0 {
                return Err(LayoutError::Empty { region: name });
            }
            check_region(geometry, name, r)?;
        }
        for i in 0..named.len() {
            for j in i + 1..named.len() {
                if named[i].1.overlaps(&named[j].1) {
                    return Err(LayoutError::Overlap {
                        a: named[i].0,
                        b: named[j].0,
                    });
                }
            }
        }
        let unit = spec.unit;
        if unit == 0 || unit % geometry.write_unit != 0 {
            return Err(LayoutError::BadUnit {
                unit,
                region: "primary",
                addr: spec.primary.start,
                sector_size: geometry.write_unit,
            });
        }
        for (name, r) in [("primary", spec.primary), ("secondary", spec.secondary)] {
            if r.size % unit != 0 {
                return Err(LayoutError::SlotNotUnits {
                    region: name,
                    size: r.size,
                    unit,
                });
            }
            // Every unit must start on a sector boundary and hold whole sectors only.
            for s in geometry
                .sectors()
                .filter(|s| s.addr >= r.start && s.addr < r.end())
            {
                let rel = s.addr - r.start;
                let unit_start = rel - rel % unit;
                if s.size > unit || rel - unit_start + s.size > unit {
                    return Err(LayoutError::BadUnit {
                        unit,
                        region: name,
                        addr: s.addr,
                        sector_size: s.size,
                    });
                }
            }
        }
        spec.strategy.check_layout(&spec, geometry)?;
        let needed = spec.strategy.secondary_size(spec.primary.size, unit);
        if spec.secondary.size < needed {
            return Err(LayoutError::SecondaryTooSmall {
                size: spec.secondary.size,
                needed,
            });
        }
        let units = spec.primary.size / unit;
        if units > MAX_UNITS {
            return Err(LayoutError::TooManyUnits {
                units,
                max: MAX_UNITS,
            });
        }
        let needed = 2 * plan_record_len(units, geometry.write_unit);
        for (index, r) in spec.state.iter().enumerate() {
            if r.size < needed {
                return Err(LayoutError::StateTooSmall {
                    index: index as u8,
                    size: r.size,
                    needed,
                });
            }
        }
        Ok(Layout {
            spec,
            geometry: *geometry,
        })
    }

    /// The spec, as given (it passed every check).
    pub fn spec(&self) -> &LayoutSpec {
        &self.spec
    }
    /// The part's flash geometry the spec was checked against.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// How updates move into the primary slot.
    pub fn strategy(&self) -> StrategyKind {
        self.spec.strategy
    }
    /// The copy/swap unit, bytes.
    pub fn unit(&self) -> u32 {
        self.spec.unit
    }
    /// The flash write unit (program granule), bytes.
    pub fn write_unit(&self) -> u32 {
        self.geometry.write_unit
    }
    /// The flash's erased byte (0xFF; 0x00 on L0).
    pub fn erased(&self) -> u8 {
        self.geometry.erased
    }
    /// Number of units in the primary slot.
    pub fn primary_units(&self) -> u32 {
        self.spec.primary.size / self.spec.unit
    }
    /// `NorFlash` offset of an absolute address.
    pub fn offset(&self, addr: u32) -> u32 {
        addr - self.geometry.base()
    }
    /// Where the application stores an update for this strategy (absolute region).
    pub fn staging(&self) -> Region {
        self.spec.strategy.staging(&self.spec)
    }
    /// Largest image the primary slot can run.
    pub fn max_image_size(&self) -> u32 {
        self.spec.primary.size
    }
}

/// Bytes a swap plan with `units` units takes in a state copy, padded to the write unit.
pub fn plan_record_len(units: u32, write_unit: u32) -> u32 {
    let raw = RECORD_FIXED_LEN + 2 * units * DIGEST_LEN as u32;
    raw.div_ceil(write_unit) * write_unit
}

fn check_region(g: &Geometry, name: &'static str, r: Region) -> Result<(), LayoutError> {
    let outside = || LayoutError::OutsideFlash {
        region: name,
        start: r.start,
        end: r.end(),
        flash_start: g.base(),
        flash_end: g.end(),
    };
    if r.start < g.base() || r.end() > g.end() || r.end() < r.start.saturating_add(r.size) {
        return Err(outside());
    }
    // Every byte must be real flash: walk the sectors and require them to be contiguous.
    let mut cursor = r.start;
    for s in g.sectors() {
        if s.addr + s.size <= cursor || s.addr >= r.end() {
            continue;
        }
        if s.addr > cursor {
            return Err(outside());
        }
        if s.addr < r.start {
            return Err(not_aligned(g, name, r.start));
        }
        cursor = s.addr + s.size;
        if cursor > r.end() {
            return Err(not_aligned(g, name, r.end()));
        }
    }
    if cursor != r.end() {
        return Err(outside());
    }
    Ok(())
}

fn not_aligned(g: &Geometry, region: &'static str, addr: u32) -> LayoutError {
    let (below, above) = g
        .sectors()
        .find(|s| addr > s.addr && addr < s.addr + s.size)
        .map_or((addr, addr), |s| (s.addr, s.addr + s.size));
    LayoutError::NotSectorAligned {
        region,
        addr,
        below,
        above,
    }
}

/// Smallest bootloader reservation of the default layouts.
pub const DEFAULT_BOOTLOADER_SIZE: u32 = 32 * 1024;
/// Smallest unit of the default layouts (keeps plans short on parts with tiny pages).
pub const DEFAULT_MIN_UNIT: u32 = 2 * 1024;

/// Flash the brickless bootloader binaries (`firmware/`) reserve for themselves: ed25519
/// verification, swap and revert, SMP recovery and the boot log take more than
/// [`DEFAULT_BOOTLOADER_SIZE`] today (`scripts/firmware.sh size` prints each build).
pub const FIRMWARE_BOOTLOADER_SIZE: u32 = 128 * 1024;

/// A sensible layout for a part: bootloader first (at least 32 KiB), then two state copies,
/// then the slots made of equal units (the secondary as large as the strategy needs).
pub fn default_layout(geometry: &Geometry, strategy: StrategyKind) -> Result<Layout, LayoutError> {
    layout_with_bootloader(geometry, strategy, DEFAULT_BOOTLOADER_SIZE)
}

/// The image header size applications for the brickless bootloader binaries are signed with
/// (imgtool `--header-size 0x400`): the vector table follows it, and VTOR needs the table
/// aligned to its size rounded up to a power of two, 1 KiB on parts with up to 240 vectors.
pub const FIRMWARE_APP_HEADER: u32 = 0x400;

/// The layout the brickless bootloader binaries use: the swap strategy, with
/// [`FIRMWARE_BOOTLOADER_SIZE`] for the bootloader. The bootloader, the applications' linker
/// scripts and the host tools that prepare a device's flash all call this one function.
pub fn firmware_layout(geometry: &Geometry) -> Result<Layout, LayoutError> {
    layout_with_bootloader(geometry, StrategyKind::Swap, FIRMWARE_BOOTLOADER_SIZE)
}

/// [`default_layout`] with at least `bootloader` bytes (rounded up to a sector edge) for the
/// bootloader.
pub fn layout_with_bootloader(
    geometry: &Geometry,
    strategy: StrategyKind,
    bootloader: u32,
) -> Result<Layout, LayoutError> {
    if strategy == StrategyKind::BankSwap {
        return mirrored_layout(geometry, bootloader);
    }
    let base = geometry.base();
    let boot_end = boundary_at_or_after(geometry, base.saturating_add(bootloader));
    // Guess the unit from the sectors after the bootloader, then grow it until the plan fits
    // a reasonable state copy.
    let max_sector = geometry
        .sectors()
        .filter(|s| s.addr >= boot_end)
        .map(|s| s.size)
        .max()
        .unwrap_or(0);
    let mut unit = max_sector.max(DEFAULT_MIN_UNIT);
    let rest = geometry.end().saturating_sub(boot_end);
    while rest / unit / 2 > 256 {
        unit *= 2;
    }
    let units_guess = rest / unit / 2;
    let state_need = (2 * plan_record_len(units_guess, geometry.write_unit)).max(4096);
    let s0_end = boundary_at_or_after(geometry, boot_end + state_need);
    let s1_end = boundary_at_or_after(geometry, s0_end + state_need);
    // Contiguous runs of whole units after the state (a hole between banks ends a run).
    let mut best: Option<(u32, u32)> = None; // (start, units) of the largest run
    let mut run_start: Option<u32> = None;
    let mut cursor = 0u32;
    let mut filled = 0u32;
    let mut units = 0u32;
    for s in geometry.sectors().filter(|s| s.addr >= s1_end) {
        if run_start.is_some() && s.addr != cursor {
            // Hole: close the run, start a new one here.
            if best.is_none_or(|(_, n)| units > n) {
                best = run_start.map(|st| (st, units));
            }
            run_start = None;
        }
        if run_start.is_none() {
            if s.size > unit {
                continue;
            }
            run_start = Some(s.addr);
            (filled, units) = (0, 0);
        }
        cursor = s.addr + s.size;
        filled += s.size;
        if filled == unit {
            (filled, units) = (0, units + 1);
        } else if filled > unit {
            // A sector straddles the unit edge: restart the run at this sector.
            if best.is_none_or(|(_, n)| units > n) {
                best = run_start.map(|st| (st, units));
            }
            run_start = Some(s.addr);
            (filled, units) = if s.size == unit { (0, 1) } else { (s.size, 0) };
        }
    }
    if best.is_none_or(|(_, n)| units > n) {
        best = run_start.map(|st| (st, units));
    }
    let (slots_start, n) = best.unwrap_or((geometry.end(), 0));
    // The most units the primary can have with the secondary the strategy needs beside it.
    let fits = |p: u32| {
        let size = p * unit;
        size.saturating_add(strategy.secondary_size(size, unit)) <= n * unit
    };
    let primary_units = (0..=n / 2).rev().find(|&p| fits(p)).unwrap_or(0);
    let primary = Region::new(slots_start, primary_units * unit);
    let secondary = Region::new(primary.end(), (n - primary_units) * unit);
    let spec = LayoutSpec {
        bootloader: Region::new(base, boot_end - base),
        primary,
        secondary,
        state: [
            Region::new(boot_end, s0_end - boot_end),
            Region::new(s0_end, s1_end - s0_end),
        ],
        unit,
        strategy,
    };
    Layout::new(spec, geometry)
}

/// The bank-swap layout: bank 1 holds the bootloader, state copy 0 and the primary slot (the
/// rest of the bank, in whole units); bank 2 holds their twins at the same offsets.
fn mirrored_layout(geometry: &Geometry, bootloader: u32) -> Result<Layout, LayoutError> {
    let mirror = geometry.bank_mirror().ok_or(LayoutError::NoBankSwap)?;
    let bank1 = geometry.banks[0];
    let base = bank1.base;
    let boot_end = boundary_at_or_after(geometry, base.saturating_add(bootloader));
    let mut unit = geometry
        .sectors()
        .filter(|s| s.addr >= boot_end && s.end() <= bank1.end())
        .map(|s| s.size)
        .max()
        .unwrap_or(0)
        .max(DEFAULT_MIN_UNIT);
    let rest = bank1.end().saturating_sub(boot_end);
    while rest / unit > 256 {
        unit *= 2;
    }
    let state_need = (2 * plan_record_len(rest / unit, geometry.write_unit)).max(4096);
    let s0_end = boundary_at_or_after(geometry, boot_end + state_need);
    let state0 = Region::new(boot_end, s0_end - boot_end);
    // The primary ends the bank; with mixed sectors (F4) it starts at the first unit edge
    // that tiles, leaving any smaller sectors before it unused.
    let mut result = Err(LayoutError::Empty { region: "primary" });
    for units in (1..=bank1.end().saturating_sub(s0_end) / unit).rev() {
        let primary = Region::new(bank1.end() - units * unit, units * unit);
        let spec = LayoutSpec {
            bootloader: Region::new(base, boot_end - base),
            primary,
            secondary: Region::new(primary.start + mirror, primary.size),
            state: [state0, Region::new(state0.start + mirror, state0.size)],
            unit,
            strategy: StrategyKind::BankSwap,
        };
        result = Layout::new(spec, geometry);
        if result.is_ok() {
            break;
        }
    }
    result
}

fn boundary_at_or_after(g: &Geometry, addr: u32) -> u32 {
    g.sectors()
        .map(|s| s.addr + s.size)
        .find(|&e| e >= addr)
        .unwrap_or(g.end())
}
