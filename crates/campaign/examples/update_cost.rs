//! What one update costs the flash, counting the application's staging too: bytes programmed
//! and the most erases of any sector per region, for the largest image the default layout
//! accepts, for upgrade + confirm and for upgrade + revert; then state-area erases per update
//! over a long run of updates. Ratios are printed against stated limits.
//!
//! `cargo run --release -p brickless-campaign --example update_cost [UPDATES]` (default 1000)
use brickless_boot::state::StateStore;
use brickless_boot::{
    default_layout,
    layout::{plan_record_len, RECORD_FIXED_LEN},
    BootDecision, BootLoader, ImageVersion, Layout, Region, StrategyKind, Updater, UpgradeMode,
};
use brickless_campaign::kit::{build_image, Checker};
use brickless_flash::part;
use brickless_flash_model::SimFlash;
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

/// Counts bytes programmed per region on the way to the model.
struct Counting<'a> {
    flash: &'a mut SimFlash,
    regions: [Region; 4],
    base: u32,
    programmed: [u64; 4],
}

impl ErrorType for Counting<'_> {
    type Error = <SimFlash as ErrorType>::Error;
}
impl ReadNorFlash for Counting<'_> {
    const READ_SIZE: usize = SimFlash::READ_SIZE;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.flash.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}
impl NorFlash for Counting<'_> {
    const WRITE_SIZE: usize = SimFlash::WRITE_SIZE;
    const ERASE_SIZE: usize = SimFlash::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.flash.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let addr = self.base + offset;
        if let Some(i) = self
            .regions
            .iter()
            .position(|r| addr >= r.start && addr < r.end())
        {
            self.programmed[i] += bytes.len() as u64;
        }
        self.flash.write(offset, bytes)
    }
}

const NAMES: [&str; 4] = ["primary", "secondary", "state 0", "state 1"];

fn regions(layout: &Layout) -> [Region; 4] {
    let s = layout.spec();
    [s.primary, s.secondary, s.state[0], s.state[1]]
}

fn version(n: u32) -> ImageVersion {
    ImageVersion {
        major: 1,
        minor: 0,
        revision: n as u16,
        build: 0,
    }
}

/// Stages `image` through the application side (4 KiB writes), requests a test upgrade,
/// boots, confirms or not, boots again.
fn update(flash: &mut Counting<'_>, layout: Layout, image: &[u8], confirm: bool) {
    let mut buf = vec![0u8; 4096.min(layout.unit() as usize)];
    let mut e = Updater::new(&mut *flash, layout, Checker::Hash);
    e.erase_staging().expect("stage");
    for (i, chunk) in image.chunks(4096).enumerate() {
        let wu = layout.write_unit() as usize;
        let mut c = chunk.to_vec();
        c.resize(c.len().div_ceil(wu) * wu, layout.erased());
        e.write_staged((i * 4096) as u32, &c).expect("stage");
    }
    if let Err(err) = e.request_upgrade(UpgradeMode::Test) {
        panic!(
            "request of {:?}: {err} (state {:?})",
            &image[4..8],
            e.state()
        );
    }
    let mut b = BootLoader::new(&mut *flash, layout, Checker::Hash, &mut buf).expect("buffer");
    assert!(matches!(b.boot(), Ok(BootDecision::Boot(t)) if t.trial));
    if confirm {
        Updater::new(&mut *flash, layout, Checker::Hash)
            .confirm()
            .expect("confirm");
    }
    let mut b = BootLoader::new(&mut *flash, layout, Checker::Hash, &mut buf).expect("buffer");
    assert!(matches!(b.boot(), Ok(BootDecision::Boot(t)) if !t.trial));
}

/// Erase counts of the sectors of `r`.
fn wear(flash: &SimFlash, r: Region) -> impl Iterator<Item = u32> + '_ {
    flash
        .geometry()
        .sectors()
        .filter(move |s| s.addr >= r.start && s.addr < r.end())
        .filter_map(|s| flash.wear(s.addr))
}

fn max_erases(flash: &SimFlash, r: Region) -> u32 {
    wear(flash, r).max().unwrap_or(0)
}

fn main() {
    let updates: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    for name in ["stm32h753zi", "stm32l475vg"] {
        let p = part(name).expect("part");
        let layout = default_layout(&p.geometry, StrategyKind::Swap).expect("layout");
        let size = layout.max_image_size();
        println!(
            "\n{name}: swap layout, primary {} x {} KiB, largest image {} KiB",
            layout.primary_units(),
            layout.unit() / 1024,
            size / 1024
        );
        println!(
            "{:<16} {:>10} {:>14} {:>10} {:>10} {:>10} {:>10}",
            "flow", "region", "programmed", "x image", "limit", "erases", "limit"
        );
        for (flow, confirm) in [("upgrade+confirm", true), ("upgrade+revert", false)] {
            let mut sim = SimFlash::new(p);
            let old = build_image(version(1), 1, size, 1);
            let new = build_image(version(2), 1, size, 2);
            sim.preload(layout.spec().primary.start, &old)
                .expect("fits");
            let mut counting = Counting {
                flash: &mut sim,
                regions: regions(&layout),
                base: p.geometry.base(),
                programmed: [0; 4],
            };
            update(&mut counting, layout, &new, confirm);
            let programmed = counting.programmed;
            // Limits: staging writes the image once into the secondary slot; the swap writes
            // the new image into the primary and the old one into the secondary; a revert
            // writes the old one back into the primary. Each sector is erased once by the
            // swap, and the secondary's once more by the application's staging.
            let limits = if confirm {
                [(1.0, 1), (2.0, 2)]
            } else {
                [(2.0, 2), (2.0, 2)]
            };
            for (i, r) in regions(&layout).iter().enumerate() {
                let ratio = programmed[i] as f64 / f64::from(size);
                // State: the four records of an update (request, plan, trial, settled).
                let records = plan_record_len(layout.primary_units(), layout.write_unit())
                    + 3 * RECORD_FIXED_LEN.div_ceil(layout.write_unit()) * layout.write_unit();
                let (limit, erase_limit) = if i < 2 {
                    limits[i]
                } else {
                    (f64::from(records) / f64::from(size), 1)
                };
                let erases = max_erases(&sim, *r);
                println!(
                    "{flow:<16} {:>10} {:>14} {ratio:>10.3} {limit:>10.3} {erases:>10} {erase_limit:>10}",
                    NAMES[i], programmed[i]
                );
            }
        }

        // State-area erases per update over a long run (test upgrade + confirm each time,
        // images of 1.5 units so the run stays short; record counts do not depend on size).
        let mut sim = SimFlash::new(p);
        let small = layout.unit() * 3 / 2;
        sim.preload(
            layout.spec().primary.start,
            &build_image(version(0), 1, small, 0),
        )
        .expect("fits");
        let mut counting = Counting {
            flash: &mut sim,
            regions: regions(&layout),
            base: p.geometry.base(),
            programmed: [0; 4],
        };
        for n in 1..=updates {
            let img = build_image(version(n), 1, small, u64::from(n));
            update(&mut counting, layout, &img, n % 4 != 0);
        }
        let state_erases: u32 = layout
            .spec()
            .state
            .iter()
            .map(|r| wear(&sim, *r).sum::<u32>())
            .sum();
        let seq = StateStore::load(&mut sim, &layout).state.seq;
        let worst = layout
            .spec()
            .state
            .iter()
            .map(|r| max_erases(&sim, *r))
            .max()
            .unwrap_or(0);
        println!(
            "{updates} updates (3 of 4 confirmed): {state_erases} state-sector erases ({:.4} per update); \
             most-erased state sector {worst} times ({:.4} per update, limit 1.0); {} records ({:.1} per update)",
            f64::from(state_erases) / f64::from(updates),
            f64::from(worst) / f64::from(updates),
            seq,
            f64::from(seq) / f64::from(updates)
        );
    }
}
