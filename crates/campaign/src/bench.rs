//! Upgrade benchmark: flash operations, erases per sector and modelled time of a full-slot
//! upgrade, against the physical minimum (erase each needed sector once, program the image
//! once) and against MCUboot's simulator counts on its `k64f` device.
use super::kit::{build_image, HashCheck};
use super::{NEW_VERSION, OLD_VERSION};
use brickless_boot::{
    default_layout, BootDecision, BootLoader, Layout, LayoutSpec, Region, StrategyKind, Updater,
    UpgradeMode,
};
use brickless_flash::{Bank, Geometry, Part, SectorRun};
use brickless_flash_model::SimFlash;
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

/// Counts write and erase calls (MCUboot's simulator counts one per `flash_area_write` and
/// one per `flash_area_erase`).
pub struct Counting<'a> {
    /// The model the calls go to.
    pub inner: &'a mut SimFlash,
    /// `write` calls so far.
    pub writes: u64,
    /// `erase` calls so far (one per call, whatever its length).
    pub erases: u64,
}

impl ErrorType for Counting<'_> {
    type Error = <SimFlash as ErrorType>::Error;
}
impl ReadNorFlash for Counting<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}
impl NorFlash for Counting<'_> {
    const WRITE_SIZE: usize = <SimFlash as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <SimFlash as NorFlash>::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.erases += 1;
        self.inner.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.writes += 1;
        self.inner.write(offset, bytes)
    }
}

/// One benchmark line.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// Part name (`k64f-shaped` for the MCUboot comparison).
    pub part: String,
    /// Strategy name.
    pub strategy: String,
    /// The engine's copy buffer, in bytes.
    pub buffer: usize,
    /// Units the image occupies.
    pub units: u32,
    /// Image size in bytes: the largest image the primary slot takes.
    pub image_bytes: u32,
    /// Write + erase calls of the whole upgrade (request, install, confirm).
    pub ops: u64,
    /// Write calls among `ops`.
    pub writes: u64,
    /// Erase calls among `ops`.
    pub erases: u64,
    /// Of those, the bootloader's alone (what MCUboot's simulator counts).
    pub bootloader_ops: u64,
    /// Erase each needed slot unit once (one call per unit, as the engine erases) + write
    /// the image once in buffer-sized calls.
    pub min_ops: u64,
    /// Most erases any sector saw.
    pub max_erases_per_sector: u32,
    /// Modelled busy time of programs and erases (typical figures), ms.
    pub time_ms: f64,
    /// Modelled time of the physical minimum, ms.
    pub min_time_ms: f64,
    /// `time_ms` / `min_time_ms`: 1.0 is the physical minimum.
    pub time_ratio: f64,
    /// MCUboot's count on the same geometry and our ratio to it, where known.
    pub mcuboot: Option<String>,
}

/// MCUboot simulator counts on `k64f` (32 × 4 KiB sectors per 128 KiB slot, 1 KiB writes).
pub const MCUBOOT_K64F: [(&str, u64); 4] = [
    ("swap-scratch", 587),
    ("swap-move", 547),
    ("swap-offset", 368),
    ("overwrite-only", 162),
];

/// A k64f-shaped array: 4 KiB sectors, 8-byte write unit, L4-class rules.
pub fn k64f_part() -> &'static Part {
    static K64F: Part = {
        let base = brickless_flash::part_named("stm32l475vg");
        Part {
            name: "k64f-shaped",
            geometry: Geometry {
                banks: &[Bank {
                    base: 0,
                    sectors: &[SectorRun {
                        size: 4096,
                        count: 96,
                    }],
                }],
                ..base.geometry
            },
            ..*base
        }
    };
    &K64F
}

/// The k64f layout: 32 KiB bootloader, two 4 KiB state copies, 128 KiB primary (32 units),
/// secondary one unit larger for swap.
pub fn k64f_layout(strategy: StrategyKind) -> Layout {
    let k = 1024;
    let spec = LayoutSpec {
        bootloader: Region::new(0, 32 * k),
        state: [Region::new(32 * k, 4 * k), Region::new(36 * k, 4 * k)],
        primary: Region::new(40 * k, 128 * k),
        secondary: Region::new(168 * k, 132 * k),
        unit: 4 * k,
        strategy,
    };
    Layout::new(spec, &k64f_part().geometry).expect("k64f layout is valid")
}

/// Runs one full-slot upgrade and measures it.
pub fn bench_one(part: &'static Part, layout: Layout, buffer: usize) -> Result<BenchRow, String> {
    let size = layout.max_image_size();
    let old = build_image(OLD_VERSION, 1, size, 11);
    let new = build_image(NEW_VERSION, 2, size, 12);
    let mut flash = SimFlash::new(part);
    flash
        .preload(layout.spec().primary.start, &old)
        .map_err(|e| e.to_string())?;
    flash
        .preload(layout.staging().start, &new)
        .map_err(|e| e.to_string())?;
    let time0 = flash.elapsed_us();
    let mut buf = vec![0u8; buffer];
    let mut counting = Counting {
        inner: &mut flash,
        writes: 0,
        erases: 0,
    };
    let strategy = layout.strategy();
    let mode = if strategy == StrategyKind::Swap {
        UpgradeMode::Test
    } else {
        UpgradeMode::Permanent
    };
    let (app_ops, boot_ops) = {
        Updater::new(&mut counting, layout, HashCheck)
            .request_upgrade(mode)
            .map_err(|e| format!("request: {e}"))?;
        let mut bootloader = BootLoader::new(&mut counting, layout, HashCheck, &mut buf)
            .map_err(|e| e.to_string())?;
        let before = (bootloader.flash().writes, bootloader.flash().erases);
        let decision = bootloader.boot().map_err(|e| format!("boot: {e}"))?;
        let after = (bootloader.flash().writes, bootloader.flash().erases);
        match decision {
            BootDecision::Boot(t) if t.image.version == NEW_VERSION => {}
            d => return Err(format!("upgrade did not boot the new image: {d:?}")),
        }
        Updater::new(&mut counting, layout, HashCheck)
            .confirm()
            .map_err(|e| format!("confirm: {e}"))?;
        let total = counting.writes + counting.erases;
        let boot = (after.0 - before.0) + (after.1 - before.1);
        (total - boot, boot)
    };
    let (writes, erases) = (counting.writes, counting.erases);
    let g = part.geometry;
    let unit = layout.unit();
    let units = size.div_ceil(unit);
    let p = layout.spec().primary;
    let needed: Vec<_> = g
        .sectors()
        .filter(|s| s.addr >= p.start && s.addr < p.start + units * unit)
        .collect();
    let write_unit = g.write_unit;
    let min_ops = u64::from(units) + u64::from(size).div_ceil(buffer as u64);
    // The physical minimum, timed by the same model: erase each needed sector once, then
    // program the image in one call (so the family's fastest mode, e.g. L0 half-pages, counts).
    let min_time_us = {
        let mut ideal = SimFlash::new(part);
        for s in &needed {
            ideal
                .erase_abs(s.addr, s.addr + s.size)
                .map_err(|e| e.to_string())?;
        }
        let mut padded = new.clone();
        padded.resize(new.len().next_multiple_of(write_unit as usize), g.erased);
        ideal
            .program_abs(p.start, &padded)
            .map_err(|e| e.to_string())?;
        ideal.elapsed_us()
    };
    let time_us = flash.elapsed_us() - time0;
    let slots = [layout.spec().primary, layout.spec().secondary];
    let max_erases = g
        .sectors()
        .filter(|s| slots.iter().any(|r| s.addr >= r.start && s.addr < r.end()))
        .filter_map(|s| flash.wear(s.addr))
        .max()
        .unwrap_or(0);
    Ok(BenchRow {
        part: part.name.to_string(),
        strategy: strategy.name().to_string(),
        buffer,
        units,
        image_bytes: size,
        ops: app_ops + boot_ops,
        writes,
        erases,
        bootloader_ops: boot_ops,
        min_ops,
        max_erases_per_sector: max_erases,
        time_ms: time_us as f64 / 1000.0,
        min_time_ms: min_time_us as f64 / 1000.0,
        time_ratio: time_us as f64 / min_time_us.max(1) as f64,
        mcuboot: None,
    })
}

/// The benchmark table: each part's default layout (full-slot image) for both strategies,
/// then the k64f shape with 1 KiB writes against MCUboot's counts.
pub fn bench_report(parts: &[&'static Part], buffer: usize) -> Result<Vec<BenchRow>, String> {
    let mut rows = Vec::new();
    // Bank swap copies nothing: it has its own comparison ([`bank_swap_comparison`]).
    for p in parts {
        for strategy in [StrategyKind::Swap, StrategyKind::Overwrite] {
            let layout =
                default_layout(&p.geometry, strategy).map_err(|e| format!("{}: {e}", p.name))?;
            rows.push(bench_one(p, layout, buffer.min(layout.unit() as usize))?);
        }
    }
    let k64f = k64f_part();
    for buffer in [1024, 4096] {
        for strategy in [StrategyKind::Swap, StrategyKind::Overwrite] {
            let mut row = bench_one(k64f, k64f_layout(strategy), buffer)?;
            let against = if strategy == StrategyKind::Swap {
                MCUBOOT_K64F[2]
            } else {
                MCUBOOT_K64F[3]
            };
            row.mcuboot = Some(format!(
                "{} {}: ops ratio {:.2} (all ops), {:.2} (bootloader ops)",
                against.0,
                against.1,
                row.ops as f64 / against.1 as f64,
                row.bootloader_ops as f64 / against.1 as f64
            ));
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Memory the engine itself needs (host sizes: pointers are 8 bytes here, 4 on Cortex-M).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct EngineRam {
    /// Size of the bootloader engine ([`BootLoader`]) itself, in bytes.
    pub engine_struct: usize,
    /// Size of a [`Layout`], in bytes.
    pub layout: usize,
    /// Fixed-size buffers the engine puts on the stack: the state scan block (256 B), the
    /// record writer (256 B + CRC state), a CRC read block (64 B), a record header (92 B)
    /// and a SHA-256 state.
    pub stack_buffers: usize,
}

/// The engine's RAM figures for the campaign's flash type (the bootloader side, the larger).
pub fn engine_ram() -> EngineRam {
    EngineRam {
        engine_struct: core::mem::size_of::<
            BootLoader<'static, &'static mut SimFlash, super::kit::Checker>,
        >(),
        layout: core::mem::size_of::<Layout>(),
        stack_buffers: 256 + 256 + 4 + 64 + 92 + core::mem::size_of::<sha2::Sha256>(),
    }
}

/// One end-to-end upgrade of a full-slot image, staging included, as the bank-swap
/// comparison measures it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UpgradeCost {
    /// Part name.
    pub part: String,
    /// Strategy name.
    pub strategy: String,
    /// Image size in bytes (the largest the primary slot takes).
    pub image_bytes: u32,
    /// Sectors the image occupies.
    pub image_sectors: u32,
    /// Bytes the bootloader programmed into either slot (copies of image data).
    pub bootloader_copied_bytes: u64,
    /// Sector erases in the slots, the application's staging included.
    pub slot_erases: u64,
    /// Most erases any slot sector saw.
    pub max_erases_per_sector: u32,
    /// Option-byte programs (bank flips).
    pub option_programs: u64,
    /// Modelled busy time of the whole upgrade (staging, install, confirm), ms.
    pub time_ms: f64,
    /// Of which the bootloader's part (what the device spends between reset and the new
    /// image), ms.
    pub bootloader_time_ms: f64,
}

/// Stages a full-slot update through the application side (erase, then 4 KiB writes),
/// requests a test upgrade, boots it (through the resets bank swap asks for) and confirms it,
/// on `part`'s default layout for `strategy`. Both banks start with the bootloader, as after
/// the first bank-swap install.
pub fn upgrade_cost(part: &'static Part, strategy: StrategyKind) -> Result<UpgradeCost, String> {
    let layout = default_layout(&part.geometry, strategy).map_err(|e| e.to_string())?;
    let size = layout.max_image_size();
    let old = build_image(OLD_VERSION, 1, size, 11);
    let new = build_image(NEW_VERSION, 2, size, 12);
    let mut flash = SimFlash::new(part);
    let spec = *layout.spec();
    flash
        .preload(spec.primary.start, &old)
        .map_err(|e| e.to_string())?;
    let stub = super::kit::bootloader_stub(part, spec.bootloader.start);
    flash
        .preload(spec.bootloader.start, &stub)
        .map_err(|e| e.to_string())?;
    if let Some(mirror) = part
        .geometry
        .bank_mirror()
        .filter(|_| strategy == StrategyKind::BankSwap)
    {
        flash
            .preload(spec.bootloader.start + mirror, &stub)
            .map_err(|e| e.to_string())?;
    }
    flash.record_ops(true);
    let wu = layout.write_unit() as usize;
    let mut padded = new.clone();
    padded.resize(new.len().div_ceil(wu) * wu, layout.erased());
    let mut app = Updater::new(&mut flash, layout, HashCheck);
    app.erase_staging()
        .map_err(|e| format!("erase staging: {e}"))?;
    for (i, chunk) in padded.chunks(4096).enumerate() {
        app.write_staged((i * 4096) as u32, chunk)
            .map_err(|e| format!("stage: {e}"))?;
    }
    let mode = if strategy.can_revert() {
        UpgradeMode::Test
    } else {
        UpgradeMode::Permanent
    };
    app.request_upgrade(mode)
        .map_err(|e| format!("request: {e}"))?;
    let (boot_from_op, boot_from_us) = (flash.op_count(), flash.elapsed_us());
    let mut buf = vec![0u8; 4096.min(layout.unit() as usize)];
    let decision = super::boot_device(
        &mut flash,
        layout,
        super::kit::Checker::Hash,
        brickless_boot::VerifyPolicy::EveryBoot,
        &mut buf,
    )
    .map_err(|e| format!("boot: {e}"))?;
    match decision {
        BootDecision::Boot(t) if t.image.version == NEW_VERSION => {}
        d => return Err(format!("the upgrade did not boot the new image: {d:?}")),
    }
    let (boot_to_op, boot_us) = (flash.op_count(), flash.elapsed_us() - boot_from_us);
    Updater::new(&mut flash, layout, HashCheck)
        .confirm()
        .map_err(|e| format!("confirm: {e}"))?;
    let in_slots = |addr: u32| {
        [spec.primary, spec.secondary]
            .iter()
            .any(|r| addr >= r.start && addr < r.end())
    };
    let log = flash.op_log();
    let bootloader_copied_bytes = log
        .iter()
        .filter(|o| (boot_from_op..boot_to_op).contains(&o.op))
        .filter(|o| !o.erase && !o.option && in_slots(o.addr))
        .map(|o| u64::from(o.len))
        .sum();
    let g = &part.geometry;
    let slot_erases = log
        .iter()
        .filter(|o| o.erase && in_slots(o.addr))
        .map(|o| {
            g.sectors()
                .filter(|s| s.addr >= o.addr && s.end() <= o.addr + o.len)
                .count() as u64
        })
        .sum();
    let option_programs = log.iter().filter(|o| o.option).count() as u64;
    let max_erases_per_sector = g
        .sectors()
        .filter(|s| in_slots(s.addr))
        .filter_map(|s| flash.wear(s.addr))
        .max()
        .unwrap_or(0);
    let image_sectors = g
        .sectors()
        .filter(|s| s.addr >= spec.primary.start && s.addr < spec.primary.start + size)
        .count() as u32;
    Ok(UpgradeCost {
        part: part.name.to_string(),
        strategy: strategy.name().to_string(),
        image_bytes: size,
        image_sectors,
        bootloader_copied_bytes,
        slot_erases,
        max_erases_per_sector,
        option_programs,
        time_ms: flash.elapsed_us() as f64 / 1000.0,
        bootloader_time_ms: boot_us as f64 / 1000.0,
    })
}

/// Bank swap against swap on each dual-bank part of `parts`: the same end-to-end upgrade
/// ([`upgrade_cost`]) under both strategies, swap first.
pub fn bank_swap_comparison(
    parts: &[&'static Part],
) -> Result<Vec<(UpgradeCost, UpgradeCost)>, String> {
    parts
        .iter()
        .filter(|p| StrategyKind::BankSwap.available_on(&p.geometry))
        .map(|p| {
            let swap =
                upgrade_cost(p, StrategyKind::Swap).map_err(|e| format!("{}: {e}", p.name))?;
            let bank =
                upgrade_cost(p, StrategyKind::BankSwap).map_err(|e| format!("{}: {e}", p.name))?;
            Ok((swap, bank))
        })
        .collect()
}
