#![doc = include_str!("../README.md")]

pub mod cuts;
mod persist;
mod swap;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use brickless_flash::{EccReport, Geometry, HwFlag, Part, RewriteRule, Sector};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

pub use brickless_flash::HwFlag as Flag;
pub use brickless_flash::{BankSwap, SwapMechanism};
pub use cuts::{cut_points, essential_cut_points, op_range, replay, CutPhase, CutPoint};
pub use persist::PersistError;

/// Bytes per copy-on-write chunk.
const CHUNK: usize = 4096;
/// The smallest write unit the model supports (L0 word, F4/F7 x32).
const MIN_UNIT: u32 = 4;
const BITSET_WORDS: usize = CHUNK / MIN_UNIT as usize / 64;

/// Why a flash call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimFlashError {
    /// The controller refused a program and raised this status flag.
    #[error("program refused with {flag} at {addr:#010x}")]
    Program {
        /// The status-register error flag the real controller raises (PGAERR, WRPERR, …).
        flag: HwFlag,
        /// Absolute address of the refused write (or of its partial last unit).
        addr: u32,
    },
    /// An erase range that does not start and end on sector boundaries.
    #[error("erase range {from:#010x}..{to:#010x} does not start and end on sector boundaries")]
    EraseNotSectorAligned {
        /// Absolute start address asked for.
        from: u32,
        /// Absolute end address asked for (exclusive).
        to: u32,
    },
    /// Addresses outside the flash banks (beyond the end, or in the hole between banks).
    #[error("{len} bytes at {addr:#010x} are not flash (outside the banks or in a bank hole)")]
    Unmapped {
        /// Absolute start address of the access.
        addr: u32,
        /// Its length in bytes (0 when only `addr` is known to be outside).
        len: u32,
    },
    /// A read touched a unit with a double ECC error (BusFault on H7, NMI on L4/G0/G4/U5/L5/H5).
    #[error("double ECC error reading the unit at {addr:#010x}")]
    Ecc {
        /// Absolute address of the faulting write unit.
        addr: u32,
    },
    /// Power was cut; nothing works until `power_cycle()`.
    #[error("power lost")]
    PowerLost,
    /// The part cannot swap its banks (single bank, unequal banks, or a family without a
    /// swap option), or a program or erase crosses the edge between swapped banks.
    #[error("{0}")]
    BankSwap(&'static str),
}

impl NorFlashError for SimFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimFlashError::Program { flag, .. } => match flag {
                HwFlag::Pgaerr | HwFlag::Pgperr | HwFlag::Sizerr | HwFlag::Incerr => {
                    NorFlashErrorKind::NotAligned
                }
                _ => NorFlashErrorKind::Other,
            },
            SimFlashError::EraseNotSectorAligned { .. } => NorFlashErrorKind::NotAligned,
            SimFlashError::Unmapped { .. } => NorFlashErrorKind::OutOfBounds,
            SimFlashError::Ecc { .. } | SimFlashError::PowerLost | SimFlashError::BankSwap(_) => {
                NorFlashErrorKind::Other
            }
        }
    }
}

impl EccReport for SimFlashError {
    fn ecc_fault_addr(&self) -> Option<u32> {
        match self {
            SimFlashError::Ecc { addr } => Some(*addr),
            _ => None,
        }
    }
}

/// One 4 KiB piece of the array. Invariant: a unit whose `programmed` bit is clear holds the
/// erased value.
#[derive(Clone)]
struct Chunk {
    data: [u8; CHUNK],
    programmed: [u64; BITSET_WORDS],
    /// Units with a double ECC error (only set on SEC/DED families).
    torn: [u64; BITSET_WORDS],
    torn_count: u32,
}

impl Chunk {
    fn erased(value: u8) -> Self {
        Chunk {
            data: [value; CHUNK],
            programmed: [0; BITSET_WORDS],
            torn: [0; BITSET_WORDS],
            torn_count: 0,
        }
    }
    fn is_programmed(&self, unit: usize) -> bool {
        self.programmed[unit / 64] & (1 << (unit % 64)) != 0
    }
    fn is_torn(&self, unit: usize) -> bool {
        self.torn[unit / 64] & (1 << (unit % 64)) != 0
    }
    fn set_programmed(&mut self, unit: usize) {
        self.programmed[unit / 64] |= 1 << (unit % 64);
    }
    fn set_torn(&mut self, unit: usize, torn: bool) {
        let (w, b) = (unit / 64, 1u64 << (unit % 64));
        let was = self.torn[w] & b != 0;
        if torn && !was {
            self.torn[w] |= b;
            self.torn_count += 1;
        } else if !torn && was {
            self.torn[w] &= !b;
            self.torn_count -= 1;
        }
    }
    fn erase_unit(&mut self, unit: usize, unit_size: usize, erased: u8) {
        self.programmed[unit / 64] &= !(1 << (unit % 64));
        self.set_torn(unit, false);
        self.data[unit * unit_size..(unit + 1) * unit_size].fill(erased);
    }
    fn any_programmed(&self) -> bool {
        self.programmed.iter().any(|w| *w != 0)
    }
}

/// Masks `(word, mask)` covering bits `lo..hi`.
fn bit_masks(lo: usize, hi: usize) -> impl Iterator<Item = (usize, u64)> {
    let mut start = lo;
    std::iter::from_fn(move || {
        if start >= hi {
            return None;
        }
        let (w, b) = (start / 64, start % 64);
        let width = (64 - b).min(hi - start);
        start += width;
        let mask = if width == 64 {
            u64::MAX
        } else {
            ((1u64 << width) - 1) << b
        };
        Some((w, mask))
    })
}

fn any_bit(bits: &[u64; BITSET_WORDS], lo: usize, hi: usize) -> bool {
    bit_masks(lo, hi).any(|(w, mask)| bits[w] & mask != 0)
}

fn set_bits(bits: &mut [u64; BITSET_WORDS], lo: usize, hi: usize) {
    bit_masks(lo, hi).for_each(|(w, mask)| bits[w] |= mask);
}

/// Which unit of a multi-unit program (or sector of a multi-sector erase) a Torn cut hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TearAt {
    /// Chosen from the seed and the operation number (reproducible, varied across seeds).
    #[default]
    Seeded,
    /// The first unit: nothing of the call lands intact.
    First,
    /// The last unit: everything but the last unit lands.
    Last,
}

/// Units left torn by a cut (absolute address) and the bits the interrupted operation was
/// changing in each (the bits that may read differently when unstable reads are on).
type Marginal = BTreeMap<u32, [u8; brickless_flash::MAX_WRITE_UNIT]>;

/// A read counter that `read(&self)` can advance; cloned by value (a clone continues from the
/// same count, so a cloned model replays the same reads identically).
#[derive(Debug, Default)]
struct ReadTicks(AtomicU64);

impl Clone for ReadTicks {
    fn clone(&self) -> Self {
        ReadTicks(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

/// One counted flash operation, as recorded by [`SimFlash::record_ops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedOp {
    /// Operation number ([`SimFlash::op_count`] when it started).
    pub op: u64,
    /// Absolute start address.
    pub addr: u32,
    /// Bytes programmed, or bytes erased.
    pub len: u32,
    /// True for an erase, false for a program.
    pub erase: bool,
    /// True for an option-byte program (the bank-swap bit; `addr` and `len` are 0).
    pub option: bool,
}

/// The state of one write unit, for tests and tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitState {
    /// Erased and not programmed since.
    Erased,
    /// Programmed (possibly with the erased value).
    Programmed,
    /// Torn or ECC-poisoned: reads fault (SEC/DED families only).
    Torn,
}

/// A simulated STM32 flash array. See the module documentation for the rules it enforces.
#[derive(Clone)]
pub struct SimFlash {
    part: &'static Part,
    geometry: Geometry,
    seed: u64,
    chunks: Vec<Option<Arc<Chunk>>>,
    sectors: Arc<[Sector]>,
    wear: Vec<u32>,
    ops: u64,
    armed: Option<CutPoint>,
    fired: Option<CutPoint>,
    tear: TearAt,
    /// Sticky error flag per bank, as in the per-bank status registers (SR1/SR2 on H7).
    bank_flags: Vec<Option<HwFlag>>,
    powered: bool,
    elapsed_us: u64,
    elapsed_max_us: u64,
    marginal: Arc<Marginal>,
    unstable_torn: bool,
    read_ticks: ReadTicks,
    op_log: Option<Vec<LoggedOp>>,
    /// The bank-swap option bit as programmed (SWAP_BANK or BFB2): applies at the next reset.
    swap_option: bool,
    /// Whether bank 2 is mapped at the base since the last reset.
    swapped: bool,
}

impl std::fmt::Debug for SimFlash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFlash")
            .field("part", &self.part.name)
            .field("seed", &self.seed)
            .field("ops", &self.ops)
            .field("powered", &self.powered)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

/// splitmix64 finaliser: a stable, dependency-free hash so recorded seeds replay identically
/// across crate versions (a `rand` upgrade could change the stream).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SimFlash {
    /// A fully erased array of `part`, seed 0.
    ///
    /// # Panics
    /// If the part's write unit is not a power of two in 4..=32 (true of every part in
    /// `brickless_flash::PARTS`).
    pub fn new(part: &'static Part) -> Self {
        Self::with_seed(part, 0)
    }

    /// A fully erased array whose torn and partly-erased contents derive from `seed`.
    pub fn with_seed(part: &'static Part, seed: u64) -> Self {
        let geometry = part.geometry;
        let unit = geometry.write_unit;
        assert!(
            unit.is_power_of_two()
                && (MIN_UNIT..=brickless_flash::MAX_WRITE_UNIT as u32).contains(&unit),
            "unsupported write unit {unit} for {}",
            part.name
        );
        let sectors: Arc<[Sector]> = geometry.sectors().collect();
        let chunk_count = (geometry.span() as usize).div_ceil(CHUNK);
        SimFlash {
            part,
            geometry,
            seed,
            chunks: vec![None; chunk_count],
            wear: vec![0; sectors.len()],
            sectors,
            ops: 0,
            armed: None,
            fired: None,
            bank_flags: vec![None; geometry.banks.len()],
            tear: TearAt::Seeded,
            powered: true,
            elapsed_us: 0,
            elapsed_max_us: 0,
            marginal: Arc::new(Marginal::new()),
            unstable_torn: false,
            read_ticks: ReadTicks::default(),
            op_log: None,
            swap_option: false,
            swapped: false,
        }
    }

    /// Makes torn units read unstably (see the module documentation): on F4/F7/L0 the bits
    /// the interrupted operation was changing take fresh values on every read; on SEC/DED
    /// families a read of a torn unit faults or returns such a value, varying per read.
    pub fn set_unstable_torn(&mut self, on: bool) {
        self.unstable_torn = on;
    }

    /// Whether torn units read unstably.
    pub fn unstable_torn(&self) -> bool {
        self.unstable_torn
    }

    /// Absolute addresses of the units in `range` left torn by a cut and not erased or
    /// reprogrammed since (on every family, with or without ECC).
    pub fn marginal_units(&self, range: Range<u32>) -> Vec<u32> {
        self.physical_ranges(range, |flash, phys| {
            flash.marginal.range(phys).map(|(a, _)| *a).collect()
        })
    }

    /// Runs `f` on the physical ranges holding the CPU range `range` and gives its addresses
    /// back as CPU addresses, sorted.
    fn physical_ranges(
        &self,
        range: Range<u32>,
        f: impl Fn(&Self, Range<u32>) -> Vec<u32>,
    ) -> Vec<u32> {
        if !self.swapped || range.start >= range.end {
            return f(self, range);
        }
        let mut out: Vec<u32> = self
            .pieces(range.start, (range.end - range.start) as usize)
            .iter()
            .flat_map(|p| f(self, p.phys..p.phys + p.len as u32))
            .map(|a| self.cpu_address(a))
            .collect();
        out.sort_unstable();
        out
    }

    /// Starts (or stops and drops) a log of every counted operation from now on.
    pub fn record_ops(&mut self, on: bool) {
        self.op_log = on.then(Vec::new);
    }

    /// The operations logged since [`SimFlash::record_ops`]`(true)` (empty when off).
    pub fn op_log(&self) -> &[LoggedOp] {
        self.op_log.as_deref().unwrap_or(&[])
    }

    /// The part this array belongs to.
    pub fn part(&self) -> &'static Part {
        self.part
    }

    /// The part's geometry (write unit, sectors, rules).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The seed of torn and partly-erased contents.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Replaces the seed (e.g. one seed per campaign run).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Write and erase calls counted so far; the next call is operation number `op_count()`.
    pub fn op_count(&self) -> u64 {
        self.ops
    }

    /// Cuts power at `cut` (replaces any armed cut). A point whose operation already ran
    /// never fires.
    pub fn arm_cut(&mut self, cut: CutPoint) {
        self.armed = Some(cut);
    }

    /// Removes the armed cut, if any.
    pub fn disarm_cut(&mut self) -> Option<CutPoint> {
        self.armed.take()
    }

    /// The armed cut that has not fired yet.
    pub fn armed_cut(&self) -> Option<CutPoint> {
        self.armed
    }

    /// Where a [`CutPhase::Torn`] cut lands inside a multi-unit program or multi-sector erase
    /// (seeded by default).
    pub fn set_tear_at(&mut self, tear: TearAt) {
        self.tear = tear;
    }

    /// The error flag the bank's status register holds (the last refused program in that
    /// bank), until [`SimFlash::clear_flags`] or a power cycle.
    pub fn bank_flag(&self, bank: u8) -> Option<HwFlag> {
        self.bank_flags.get(usize::from(bank)).copied().flatten()
    }

    /// Clears every bank's error flag (what a driver does before its next operation).
    pub fn clear_flags(&mut self) {
        self.bank_flags.iter_mut().for_each(|f| *f = None);
    }

    /// The last cut that fired.
    pub fn last_cut(&self) -> Option<CutPoint> {
        self.fired
    }

    /// Cuts power now, between operations.
    pub fn cut_power(&mut self) {
        self.powered = false;
    }

    /// Restores power: calls work again. Flash contents, wear and the op counter are kept;
    /// the option bytes are loaded, as at every reset (see [`SimFlash::reset`]).
    pub fn power_cycle(&mut self) {
        self.powered = true;
        self.reset();
    }

    /// A system reset with power on (what a bootloader does after changing the option
    /// bytes): error flags clear and the bank-swap option takes effect.
    pub fn reset(&mut self) {
        self.clear_flags();
        self.swapped = match self.geometry.family.swap_mechanism() {
            _ if self.geometry.bank_mirror().is_none() => false,
            Some(SwapMechanism::SwapBank) => self.swap_option,
            // The ROM boots bank 2 only if it starts with a valid stack pointer.
            Some(SwapMechanism::Bfb2) => self.swap_option && self.bank2_has_stack_pointer(),
            None => false,
        };
    }

    /// Whether calls currently work.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Simulated busy time of all programs and erases so far (family typical times), in µs.
    pub fn elapsed_us(&self) -> u64 {
        self.elapsed_us
    }

    /// The same busy time at the family's maximum program/erase times (a worst-case budget).
    pub fn elapsed_max_us(&self) -> u64 {
        self.elapsed_max_us
    }

    /// Erase cycles of the sector holding `addr` (absolute), or `None` outside flash.
    pub fn wear(&self, addr: u32) -> Option<u32> {
        // The mapping is its own inverse: the CPU address's physical place.
        self.sector_index(self.cpu_address(addr))
            .map(|i| self.wear[i])
    }

    /// The highest erase count of any sector.
    pub fn max_wear(&self) -> u32 {
        self.wear.iter().copied().max().unwrap_or(0)
    }

    /// Sectors whose erase count passed the part's rated endurance.
    pub fn worn_out_sectors(&self) -> Vec<Sector> {
        let limit = self.geometry.endurance_cycles;
        self.sectors
            .iter()
            .zip(&self.wear)
            .filter(|(_, w)| **w > limit)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Reads absolute addresses, with ECC faults, while powered.
    pub fn read_abs(&self, addr: u32, buf: &mut [u8]) -> Result<(), SimFlashError> {
        if !self.powered {
            return Err(SimFlashError::PowerLost);
        }
        self.read_cpu(addr, buf, true)
    }

    /// A read at CPU addresses, piece by physical piece, errors named by CPU address.
    fn read_cpu(&self, addr: u32, buf: &mut [u8], ecc: bool) -> Result<(), SimFlashError> {
        let mut done = 0;
        for p in self.pieces(addr, buf.len()) {
            self.read_checked(p.phys, &mut buf[done..done + p.len], ecc)
                .map_err(|e| self.cpu_error(e))?;
            done += p.len;
        }
        Ok(())
    }

    /// Reads absolute addresses without ECC faults or power checks (a debugger's view: torn
    /// units show their undefined bits).
    pub fn peek(&self, addr: u32, buf: &mut [u8]) -> Result<(), SimFlashError> {
        self.read_cpu(addr, buf, false)
    }

    /// Factory programming: sets bytes at an absolute address without rules, power checks or
    /// counting an operation. Every unit touched becomes programmed (bytes of a touched unit
    /// outside `bytes` keep their value) and loses any ECC error.
    pub fn preload(&mut self, addr: u32, bytes: &[u8]) -> Result<(), SimFlashError> {
        let mut done = 0;
        for p in self.pieces(addr, bytes.len()) {
            self.preload_physical(p.phys, &bytes[done..done + p.len])
                .map_err(|e| self.cpu_error(e))?;
            done += p.len;
        }
        Ok(())
    }

    fn preload_physical(&mut self, addr: u32, bytes: &[u8]) -> Result<(), SimFlashError> {
        self.mapped(addr, bytes.len())?;
        let unit = self.geometry.write_unit;
        self.clear_marginal(addr - addr % unit, addr + bytes.len() as u32);
        let mut done = 0usize;
        while done < bytes.len() {
            let off = (addr - self.geometry.base()) as usize + done;
            let (ci, co) = (off / CHUNK, off % CHUNK);
            let take = (CHUNK - co).min(bytes.len() - done);
            let unit = self.geometry.write_unit as usize;
            let chunk = self.chunk_mut(ci);
            chunk.data[co..co + take].copy_from_slice(&bytes[done..done + take]);
            for u in co / unit..(co + take).div_ceil(unit) {
                chunk.set_programmed(u);
                chunk.set_torn(u, false);
            }
            done += take;
        }
        Ok(())
    }

    /// Factory programming of `len` copies of `byte` (see [`SimFlash::preload`]).
    pub fn fill(&mut self, addr: u32, len: u32, byte: u8) -> Result<(), SimFlashError> {
        self.mapped(addr, len as usize)?;
        self.preload(addr, &vec![byte; len as usize])
    }

    /// Absolute addresses of the units in `range` (absolute) that fault on read, without
    /// failing. Always empty on families without double-error detection (F4/F7/L0): their
    /// torn units read back as silent garbage.
    pub fn scan_torn(&self, range: Range<u32>) -> Vec<u32> {
        self.physical_ranges(range, Self::scan_torn_physical)
    }

    fn scan_torn_physical(&self, range: Range<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        let base = self.geometry.base();
        let unit = self.geometry.write_unit as usize;
        let start = range.start.max(base);
        let end = range.end.min(self.geometry.end());
        if start >= end {
            return out;
        }
        let (first, last) = ((start - base) as usize, (end - base) as usize);
        for ci in first / CHUNK..last.div_ceil(CHUNK) {
            let Some(chunk) = &self.chunks[ci] else {
                continue;
            };
            if chunk.torn_count == 0 {
                continue;
            }
            for u in 0..CHUNK / unit {
                let off = ci * CHUNK + u * unit;
                if chunk.is_torn(u) && off + unit > first && off < last {
                    out.push(base + off as u32);
                }
            }
        }
        out
    }

    /// The state of the unit holding `addr` (absolute), or `None` outside flash.
    pub fn unit_state(&self, addr: u32) -> Option<UnitState> {
        let addr = self.cpu_address(addr);
        if !self.geometry.contains(addr) {
            return None;
        }
        let off = (addr - self.geometry.base()) as usize;
        let unit = off % CHUNK / self.geometry.write_unit as usize;
        Some(match &self.chunks[off / CHUNK] {
            None => UnitState::Erased,
            Some(c) if c.is_torn(unit) => UnitState::Torn,
            Some(c) if c.is_programmed(unit) => UnitState::Programmed,
            Some(_) => UnitState::Erased,
        })
    }

    // ---- operations ------------------------------------------------------------------------

    /// Programs `data` at absolute `addr` (one operation).
    pub fn program_abs(&mut self, addr: u32, data: &[u8]) -> Result<(), SimFlashError> {
        let phase = self.begin_op()?;
        self.log_op(addr, data.len() as u32, false);
        if phase == Some(CutPhase::Before) {
            return Err(self.lose_power());
        }
        let checked = self
            .physical_range(addr, data.len())
            .and_then(|phys| self.check_program(phys, data.len()).map(|()| phys));
        let addr = match checked {
            Ok(phys) => phys,
            Err(e) => {
                return match phase {
                    Some(_) => Err(self.lose_power()),
                    None => {
                        let e = self.raise(e);
                        Err(self.cpu_error(e))
                    }
                };
            }
        };
        let unit = self.geometry.write_unit as usize;
        let units = data.len() / unit;
        let op = self.ops - 1;
        let tear_at = match phase {
            Some(CutPhase::Torn) if units > 0 => Some(self.tear_index(op, units)),
            _ => None,
        };
        let done = tear_at.unwrap_or(units) * unit;
        let result = self.program_run(addr, &data[..done]);
        if let (Ok(()), Some(_)) = (result, tear_at) {
            self.tear_unit(addr + done as u32, &data[done..done + unit], op);
        }
        match phase {
            Some(_) => Err(self.lose_power()),
            None => result.map_err(|e| {
                let e = self.raise(e);
                self.cpu_error(e)
            }),
        }
    }

    /// Erases the sectors covering exactly `[from, to)` (absolute; one operation).
    pub fn erase_abs(&mut self, from: u32, to: u32) -> Result<(), SimFlashError> {
        let phase = self.begin_op()?;
        self.log_op(from, to.saturating_sub(from), true);
        if phase == Some(CutPhase::Before) {
            return Err(self.lose_power());
        }
        let range = if from > to {
            Err(SimFlashError::EraseNotSectorAligned { from, to })
        } else {
            self.physical_range(from, (to - from) as usize)
                .and_then(|phys| self.check_erase(phys, phys + (to - from)))
        };
        let range = match (range, phase) {
            (Ok(r), _) => r,
            (Err(_), Some(_)) => return Err(self.lose_power()),
            (Err(e), None) => return Err(self.cpu_error(e)),
        };
        let op = self.ops - 1;
        let tear_at = match phase {
            Some(CutPhase::Torn) if !range.is_empty() => {
                Some(range.start + self.tear_index(op, range.len()))
            }
            _ => None,
        };
        for si in range {
            let sector = self.sectors[si];
            self.wear[si] = self.wear[si].saturating_add(1);
            if tear_at == Some(si) {
                self.charge_erase(sector.size, 2);
                self.partly_erase(sector, op);
                break;
            }
            self.charge_erase(sector.size, 1);
            self.erase_sector(sector);
        }
        match phase {
            Some(_) => Err(self.lose_power()),
            None => Ok(()),
        }
    }

    // ---- internals -------------------------------------------------------------------------

    fn begin_op(&mut self) -> Result<Option<CutPhase>, SimFlashError> {
        if !self.powered {
            return Err(SimFlashError::PowerLost);
        }
        let op = self.ops;
        self.ops += 1;
        match self.armed {
            Some(cut) if cut.op == op => {
                self.armed = None;
                self.fired = Some(cut);
                Ok(Some(cut.phase))
            }
            _ => Ok(None),
        }
    }

    fn log_op(&mut self, addr: u32, len: u32, erase: bool) {
        let op = self.ops - 1;
        if let Some(log) = &mut self.op_log {
            log.push(LoggedOp {
                op,
                addr,
                len,
                erase,
                option: false,
            });
        }
    }

    /// Forgets the torn marks of units in `[from, to)` (absolute): erased or reprogrammed.
    fn clear_marginal(&mut self, from: u32, to: u32) {
        if self.marginal.range(from..to).next().is_some() {
            Arc::make_mut(&mut self.marginal).retain(|a, _| !(from..to).contains(a));
        }
    }

    /// Marks the unit at `addr` torn, `changing` holding the bits the operation was changing.
    fn mark_marginal(&mut self, addr: u32, changing: &[u8]) {
        let mut mask = [0u8; brickless_flash::MAX_WRITE_UNIT];
        mask[..changing.len()].copy_from_slice(changing);
        Arc::make_mut(&mut self.marginal).insert(addr, mask);
    }

    /// Which of `n` units (program) or sectors (erase) a Torn cut of operation `op` hits.
    fn tear_index(&self, op: u64, n: usize) -> usize {
        match self.tear {
            TearAt::Seeded => (mix(self.seed ^ mix(op)) % n as u64) as usize,
            TearAt::First => 0,
            TearAt::Last => n - 1,
        }
    }

    /// Latches a refused program's flag in its bank's status.
    fn raise(&mut self, e: SimFlashError) -> SimFlashError {
        if let SimFlashError::Program { flag, addr } = e {
            if let Some(bank) = self.geometry.bank_at(addr) {
                self.bank_flags[usize::from(bank)] = Some(flag);
            }
        }
        e
    }

    fn lose_power(&mut self) -> SimFlashError {
        self.powered = false;
        SimFlashError::PowerLost
    }

    fn mapped(&self, addr: u32, len: usize) -> Result<(), SimFlashError> {
        let len32 = u32::try_from(len).map_err(|_| SimFlashError::Unmapped {
            addr,
            len: u32::MAX,
        })?;
        if self.geometry.contains_range(addr, len32) {
            Ok(())
        } else {
            Err(SimFlashError::Unmapped { addr, len: len32 })
        }
    }

    fn check_program(&self, addr: u32, len: usize) -> Result<(), SimFlashError> {
        let family = self.geometry.family;
        let unit = self.geometry.write_unit;
        if len == 0 {
            return Ok(());
        }
        self.mapped(addr, len)?;
        if addr % unit != 0 {
            return Err(SimFlashError::Program {
                flag: family.misaligned_flag(),
                addr,
            });
        }
        if len % unit as usize != 0 {
            let tail = addr + (len - len % unit as usize) as u32;
            return Err(SimFlashError::Program {
                flag: family.short_write_flag(),
                addr: tail,
            });
        }
        Ok(())
    }

    fn check_erase(&self, from: u32, to: u32) -> Result<Range<usize>, SimFlashError> {
        if from > to {
            return Err(SimFlashError::EraseNotSectorAligned { from, to });
        }
        if from == to {
            return Ok(0..0);
        }
        if !self.geometry.contains_range(from, to - from) {
            return Err(SimFlashError::Unmapped {
                addr: from,
                len: to - from,
            });
        }
        if !self.geometry.is_erasable_range(from, to) {
            return Err(SimFlashError::EraseNotSectorAligned { from, to });
        }
        let first = self
            .sector_index(from)
            .ok_or(SimFlashError::Unmapped { addr: from, len: 0 })?;
        let last = self.sector_index(to - 1).ok_or(SimFlashError::Unmapped {
            addr: to - 1,
            len: 0,
        })?;
        Ok(first..last + 1)
    }

    fn sector_index(&self, addr: u32) -> Option<usize> {
        let i = self
            .sectors
            .partition_point(|s| s.addr <= addr)
            .checked_sub(1)?;
        let s = self.sectors[i];
        (addr - s.addr < s.size).then_some(i)
    }

    fn chunk_mut(&mut self, index: usize) -> &mut Chunk {
        let erased = self.geometry.erased;
        Arc::make_mut(self.chunks[index].get_or_insert_with(|| Arc::new(Chunk::erased(erased))))
    }

    /// (chunk index, unit index in chunk, byte offset in chunk) of an absolute unit address.
    fn locate(&self, addr: u32) -> (usize, usize, usize) {
        let off = (addr - self.geometry.base()) as usize;
        let co = off % CHUNK;
        (off / CHUNK, co / self.geometry.write_unit as usize, co)
    }

    /// Adds the time of programming `len` bytes at `addr`, divided by `divisor` (2 for a cut
    /// half-way). L0 programs an aligned 64-byte half-page in the time of one word.
    fn charge_program(&mut self, addr: u32, len: usize, divisor: u64) {
        let unit = self.geometry.write_unit as usize;
        let steps = if self.geometry.family == brickless_flash::Family::L0 {
            const HALF_PAGE: u32 = 64;
            let first = addr.div_ceil(HALF_PAGE) * HALF_PAGE;
            let end = addr + len as u32;
            let halves = if end > first {
                (end - first) / HALF_PAGE
            } else {
                0
            };
            let words = (len - (halves * HALF_PAGE) as usize) / unit;
            u64::from(halves) + words as u64
        } else {
            (len / unit) as u64
        };
        let t = self.geometry.timing;
        self.elapsed_us += steps * u64::from(t.program_unit_typ_us) / divisor;
        self.elapsed_max_us += steps * u64::from(t.program_unit_max_us) / divisor;
    }

    fn charge_erase(&mut self, size: u32, divisor: u64) {
        let t = self.geometry.timing;
        self.elapsed_us += t.erase_typ_us(size) / divisor;
        self.elapsed_max_us += t.erase_max_us(size) / divisor;
    }

    /// Programs whole units in address order, stopping at the first refused one. Units with
    /// no program since erase (the common case) take a bulk copy per chunk.
    fn program_run(&mut self, addr: u32, data: &[u8]) -> Result<(), SimFlashError> {
        let unit = self.geometry.write_unit as usize;
        let mut done = 0usize;
        while done < data.len() {
            let at = addr + done as u32;
            let (ci, u0, co) = self.locate(at);
            let take = (CHUNK - co).min(data.len() - done);
            let n = take / unit;
            let fresh = match &self.chunks[ci] {
                None => true,
                Some(c) => !any_bit(&c.programmed, u0, u0 + n),
            };
            if fresh {
                self.charge_program(at, take, 1);
                let chunk = self.chunk_mut(ci);
                // Unprogrammed units hold the erased value: a plain copy is every rule's result.
                chunk.data[co..co + take].copy_from_slice(&data[done..done + take]);
                set_bits(&mut chunk.programmed, u0, u0 + n);
            } else {
                for (i, new) in data[done..done + take].chunks_exact(unit).enumerate() {
                    self.program_unit(at + (i * unit) as u32, new)?;
                }
            }
            done += take;
        }
        Ok(())
    }

    fn program_unit(&mut self, addr: u32, new: &[u8]) -> Result<(), SimFlashError> {
        let (ci, u, co) = self.locate(addr);
        let rule = self.geometry.rewrite;
        let erased = self.geometry.erased;
        let family = self.geometry.family;
        let poisons = self.geometry.ecc.detects_double_errors();
        // Refusals first: they change nothing, so an erased chunk stays unallocated.
        let (programmed, current_zero) = match &self.chunks[ci] {
            None => (false, erased == 0),
            Some(c) => (
                c.is_programmed(u),
                c.data[co..co + new.len()].iter().all(|b| *b == 0),
            ),
        };
        match rule {
            RewriteRule::OnceExceptAllZeros if programmed && new.iter().any(|b| *b != 0) => {
                return Err(SimFlashError::Program {
                    flag: family.reprogram_flag().unwrap_or(HwFlag::Progerr),
                    addr,
                });
            }
            RewriteRule::NotZeroErr if !current_zero => {
                return Err(SimFlashError::Program {
                    flag: HwFlag::Notzeroerr,
                    addr,
                });
            }
            _ => {}
        }
        self.charge_program(addr, new.len(), 1);
        let chunk = self.chunk_mut(ci);
        let cur = &mut chunk.data[co..co + new.len()];
        match rule {
            RewriteRule::BitwiseAnd => cur.iter_mut().zip(new).for_each(|(c, n)| *c &= n),
            RewriteRule::OnceExceptAllZeros => {
                // First program, or the all-zeros overwrite that also repairs the ECC.
                cur.copy_from_slice(new);
                chunk.set_torn(u, false);
            }
            RewriteRule::OnceNoHwCheck => {
                if programmed {
                    cur.iter_mut().zip(new).for_each(|(c, n)| *c &= n);
                    chunk.set_torn(u, poisons);
                } else {
                    cur.copy_from_slice(new);
                }
            }
            RewriteRule::NotZeroErr => cur.copy_from_slice(new),
        }
        chunk.set_programmed(u);
        if let Some(mask) = self.marginal.get(&addr).copied() {
            // Cells this program drives fully are stable now; on the AND rule the cells it
            // leaves alone stay half-programmed. Elsewhere the unit is rewritten or poisoned.
            let mut left = mask;
            let keep = rule == RewriteRule::BitwiseAnd && {
                for (m, n) in left.iter_mut().zip(new) {
                    *m &= if erased == 0xFF { *n } else { !*n };
                }
                left.iter().any(|m| *m != 0)
            };
            if keep {
                Arc::make_mut(&mut self.marginal).insert(addr, left);
            } else {
                Arc::make_mut(&mut self.marginal).remove(&addr);
            }
        }
        Ok(())
    }

    /// Seeded undefined bytes for the unit at `addr` in operation `op`.
    fn noise(&self, op: u64, addr: u32, buf: &mut [u8]) {
        let mut state = mix(self.seed ^ mix(op ^ mix(u64::from(addr) ^ 0x746F_726E)));
        for bytes in buf.chunks_mut(8) {
            state = mix(state);
            let n = bytes.len();
            bytes.copy_from_slice(&state.to_le_bytes()[..n]);
        }
    }

    fn tear_unit(&mut self, addr: u32, new: &[u8], op: u64) {
        let (ci, u, co) = self.locate(addr);
        let erased = self.geometry.erased;
        let poisons = self.geometry.ecc.detects_double_errors();
        let refused = match &self.chunks[ci] {
            None => false,
            Some(c) => match self.geometry.rewrite {
                RewriteRule::OnceExceptAllZeros => {
                    c.is_programmed(u) && new.iter().any(|b| *b != 0)
                }
                RewriteRule::NotZeroErr => c.data[co..co + new.len()].iter().any(|b| *b != 0),
                _ => false,
            },
        };
        if refused {
            return; // the controller never started programming this unit
        }
        let mut noise = [0u8; brickless_flash::MAX_WRITE_UNIT];
        let noise = &mut noise[..new.len()];
        self.noise(op, addr, noise);
        self.charge_program(addr, new.len(), 2);
        let mut changing = [0u8; brickless_flash::MAX_WRITE_UNIT];
        let chunk = self.chunk_mut(ci);
        let cur = &mut chunk.data[co..co + new.len()];
        for ((m, c), n) in changing.iter_mut().zip(cur.iter()).zip(new) {
            *m = if erased == 0xFF { *c & !n } else { !*c & n };
        }
        for ((c, n), r) in cur.iter_mut().zip(new).zip(noise.iter()) {
            // Programming moves bits away from the erased value; a torn unit got some of them.
            *c = if erased == 0xFF {
                *c & (n | r)
            } else {
                *c | (n & r)
            };
        }
        chunk.set_programmed(u);
        chunk.set_torn(u, poisons);
        let len = new.len();
        self.mark_marginal(addr, &changing[..len]);
    }

    fn erase_sector(&mut self, sector: Sector) {
        self.clear_marginal(sector.addr, sector.end());
        let base = self.geometry.base();
        let erased = self.geometry.erased;
        let unit = self.geometry.write_unit as usize;
        let (start, end) = (
            (sector.addr - base) as usize,
            (sector.end() - base) as usize,
        );
        for ci in start / CHUNK..end.div_ceil(CHUNK) {
            let (lo, hi) = (start.max(ci * CHUNK), end.min((ci + 1) * CHUNK));
            if lo == ci * CHUNK && hi == (ci + 1) * CHUNK {
                self.chunks[ci] = None;
                continue;
            }
            let Some(arc) = &mut self.chunks[ci] else {
                continue;
            };
            let chunk = Arc::make_mut(arc);
            for u in (lo % CHUNK) / unit..(hi - ci * CHUNK) / unit {
                chunk.erase_unit(u, unit, erased);
            }
            if !chunk.any_programmed() {
                self.chunks[ci] = None;
            }
        }
    }

    fn partly_erase(&mut self, sector: Sector, op: u64) {
        let base = self.geometry.base();
        let erased = self.geometry.erased;
        let poisons = self.geometry.ecc.detects_double_errors();
        let unit = self.geometry.write_unit as usize;
        let seed = self.seed;
        let (start, end) = (
            (sector.addr - base) as usize,
            (sector.end() - base) as usize,
        );
        // Units fully erased lose their marks; units left half-erased get new ones.
        let mut marks: Vec<(u32, Option<[u8; brickless_flash::MAX_WRITE_UNIT]>)> = Vec::new();
        for ci in start / CHUNK..end.div_ceil(CHUNK) {
            let (lo, hi) = (start.max(ci * CHUNK), end.min((ci + 1) * CHUNK));
            let Some(arc) = &mut self.chunks[ci] else {
                continue;
            };
            let chunk = Arc::make_mut(arc);
            for u in (lo % CHUNK) / unit..(hi - ci * CHUNK) / unit {
                if !chunk.is_programmed(u) {
                    continue; // erased cells stay erased
                }
                let addr = base + (ci * CHUNK + u * unit) as u32;
                let mut state = mix(seed ^ mix(op ^ mix(u64::from(addr) ^ 0x6572_6173)));
                match state % 3 {
                    0 => {
                        chunk.erase_unit(u, unit, erased);
                        marks.push((addr, None));
                    }
                    1 => {} // not reached yet: old data
                    _ => {
                        let mut changing = [0u8; brickless_flash::MAX_WRITE_UNIT];
                        for (m, b) in changing
                            .iter_mut()
                            .zip(&chunk.data[u * unit..(u + 1) * unit])
                        {
                            *m = if erased == 0xFF { !*b } else { *b };
                        }
                        marks.push((addr, Some(changing)));
                        for bytes in chunk.data[u * unit..(u + 1) * unit].chunks_mut(8) {
                            state = mix(state);
                            for (b, r) in bytes.iter_mut().zip(state.to_le_bytes()) {
                                // Erasing moves bits toward the erased value.
                                *b = if erased == 0xFF { *b | r } else { *b & r };
                            }
                        }
                        chunk.set_torn(u, poisons);
                    }
                }
            }
            if !chunk.any_programmed() {
                self.chunks[ci] = None;
            }
        }
        if !marks.is_empty() {
            let map = Arc::make_mut(&mut self.marginal);
            for (addr, mark) in marks {
                match mark {
                    Some(m) => map.insert(addr, m),
                    None => map.remove(&addr),
                };
            }
        }
    }

    fn read_checked(&self, addr: u32, buf: &mut [u8], ecc: bool) -> Result<(), SimFlashError> {
        self.mapped(addr, buf.len())?;
        let base = self.geometry.base();
        let erased = self.geometry.erased;
        let unit = self.geometry.write_unit as usize;
        let first_unit = addr - addr % unit as u32;
        let end = addr + buf.len() as u32;
        let unstable =
            ecc && self.unstable_torn && self.marginal.range(first_unit..end).next().is_some();
        let mut done = 0usize;
        while done < buf.len() {
            let off = (addr - base) as usize + done;
            let (ci, co) = (off / CHUNK, off % CHUNK);
            let take = (CHUNK - co).min(buf.len() - done);
            let out = &mut buf[done..done + take];
            match &self.chunks[ci] {
                None => out.fill(erased),
                Some(chunk) => {
                    if ecc && chunk.torn_count > 0 {
                        for u in co / unit..(co + take).div_ceil(unit) {
                            let at = base + (ci * CHUNK + u * unit) as u32;
                            // Unstable marked units are decided below, per read.
                            if chunk.is_torn(u) && !(unstable && self.marginal.contains_key(&at)) {
                                return Err(SimFlashError::Ecc { addr: at });
                            }
                        }
                    }
                    out.copy_from_slice(&chunk.data[co..co + take]);
                }
            }
            done += take;
        }
        if unstable {
            self.unstable_read(addr, buf)?;
        }
        Ok(())
    }

    /// Re-senses the marked units a read touches: fresh values for the bits their interrupted
    /// operation was changing; on SEC/DED families a torn unit may fault instead.
    fn unstable_read(&self, addr: u32, buf: &mut [u8]) -> Result<(), SimFlashError> {
        let unit = self.geometry.write_unit;
        let end = addr + buf.len() as u32;
        let tick = self.read_ticks.0.fetch_add(1, Ordering::Relaxed);
        let faults = self.geometry.ecc.detects_double_errors();
        for (&at, mask) in self.marginal.range(addr - addr % unit..end) {
            let mut state = mix(self.seed ^ mix(tick ^ mix(u64::from(at) ^ 0x756E_7374)));
            if faults && self.unit_state(at) == Some(UnitState::Torn) {
                state = mix(state);
                if state & 1 == 0 {
                    return Err(SimFlashError::Ecc { addr: at });
                }
            }
            for i in 0..unit {
                if i % 8 == 0 {
                    state = mix(state);
                }
                let a = at + i;
                if a < addr || a >= end {
                    continue;
                }
                let r = state.to_le_bytes()[(i % 8) as usize];
                let b = &mut buf[(a - addr) as usize];
                let m = mask[i as usize];
                *b = (*b & !m) | (r & m);
            }
        }
        Ok(())
    }
}

impl ErrorType for SimFlash {
    type Error = SimFlashError;
}

/// `READ_SIZE = 1`: any byte can be read.
///
/// `WRITE_SIZE` and `ERASE_SIZE` are *sound upper bounds over every part*: a write aligned to
/// and a multiple of 32 bytes (the largest flash word; every part's unit divides it), or an
/// erase of a 256 KiB-aligned range of 256 KiB multiples (F7's largest sector; every part's
/// sector boundaries fall on them), is never refused for alignment. The part's real, smaller
/// units are runtime data: the update engine takes them from [`SimFlash::geometry`], and the
/// model enforces them with the hardware's own error.
impl ReadNorFlash for SimFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let addr = self.offset_to_addr(offset, bytes.len())?;
        self.read_abs(addr, bytes)
    }

    fn capacity(&self) -> usize {
        self.geometry.span() as usize
    }
}

impl NorFlash for SimFlash {
    const WRITE_SIZE: usize = brickless_flash::MAX_WRITE_UNIT;
    const ERASE_SIZE: usize = 256 * 1024;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let base = self.geometry.base();
        let (Some(f), Some(t)) = (base.checked_add(from), base.checked_add(to)) else {
            if !self.powered {
                return Err(SimFlashError::PowerLost);
            }
            return Err(SimFlashError::Unmapped {
                addr: from,
                len: to.wrapping_sub(from),
            });
        };
        self.erase_abs(f, t)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let Some(addr) = self.geometry.base().checked_add(offset) else {
            if !self.powered {
                return Err(SimFlashError::PowerLost);
            }
            return Err(SimFlashError::Unmapped {
                addr: offset,
                len: bytes.len() as u32,
            });
        };
        self.program_abs(addr, bytes)
    }
}

impl SimFlash {
    fn offset_to_addr(&self, offset: u32, len: usize) -> Result<u32, SimFlashError> {
        if !self.powered {
            return Err(SimFlashError::PowerLost);
        }
        self.geometry
            .base()
            .checked_add(offset)
            .ok_or(SimFlashError::Unmapped {
                addr: offset,
                len: len as u32,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_ranges_cover_exactly_the_requested_bits() {
        for (lo, hi) in [
            (0, 0),
            (0, 1),
            (10, 100),
            (63, 65),
            (64, 128),
            (5, 1024),
            (1000, 1024),
        ] {
            let mut bits = [0u64; BITSET_WORDS];
            set_bits(&mut bits, lo, hi);
            for i in 0..1024 {
                let set = bits[i / 64] & (1 << (i % 64)) != 0;
                assert_eq!(set, (lo..hi).contains(&i), "{lo}..{hi} bit {i}");
                let mut one = [0u64; BITSET_WORDS];
                one[i / 64] = 1 << (i % 64);
                assert_eq!(
                    any_bit(&one, lo, hi),
                    (lo..hi).contains(&i),
                    "{lo}..{hi} probe {i}"
                );
            }
        }
    }
}
