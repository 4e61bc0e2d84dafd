#![doc = include_str!("../README.md")]
pub mod bench;
pub mod history;
pub mod kit;
pub mod layout_file;
pub mod rows;

use std::sync::OnceLock;

use brickless_boot::multi::{dual_core_layout, GroupImage};
use brickless_boot::state::StateStore;
use brickless_boot::{
    default_layout, BootDecision, BootLoader, Error, ImageVersion, Layout, LayoutError, LayoutSpec,
    NoPlatform, Phase, Region, StrategyKind, Updater, UpgradeMode, VerifyPolicy,
};
use brickless_flash::{Bank, Geometry, Part, SectorRun};
use brickless_flash_model::{CutPhase, CutPoint, SimFlash};
use kit::{build_image, Checker, McubootKit};

/// The parts every campaign covers.
pub const CAMPAIGN_PARTS: [&str; 7] = [
    "stm32h753zi",
    "stm32h7a3zi",
    "stm32l475vg",
    "stm32f407vg",
    "stm32g071rb",
    "stm32l073rz",
    "stm32u585ai",
];

/// Boots a life may take to settle before it counts as a brick.
pub const MAX_BOOTS: u32 = 8;

/// Resets in a row a boot may ask for (bank swap: one per flip) before it counts as a loop.
pub const MAX_RESETS: u32 = 4;

/// The strategies `part` can run: every one, bank swap only on parts with two banks they can
/// swap.
pub fn strategies_for(part: &Part) -> Vec<StrategyKind> {
    StrategyKind::ALL
        .into_iter()
        .filter(|s| s.available_on(&part.geometry))
        .collect()
}

/// Runs the bootloader as a device does: after a `Reset` decision (bank swap: the option
/// bytes changed) the chip resets and the bootloader runs again, at most [`MAX_RESETS`]
/// times in a row; `Ok(Reset)` then means it kept asking.
pub fn boot_device(
    flash: &mut SimFlash,
    layout: Layout,
    check: Checker,
    policy: VerifyPolicy,
    buf: &mut [u8],
) -> Result<BootDecision, Error> {
    for _ in 0..MAX_RESETS {
        let mut e = BootLoader::with_bank_swap(&mut *flash, layout, check, NoPlatform, buf)?;
        e.set_verify_policy(policy);
        match e.boot() {
            Ok(BootDecision::Reset) => flash.reset(),
            other => return other,
        }
    }
    Ok(BootDecision::Reset)
}

/// Copy buffer of the campaign's engine (what a bootloader would give it).
pub const DEFAULT_BUFFER: usize = 4096;

/// What the application does around an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Request a test upgrade; the new image confirms itself on its trial boot.
    TestConfirm,
    /// Request a test upgrade; the new image never confirms: it must be reverted.
    TestRevert,
    /// Request a permanent upgrade.
    Permanent,
    /// As `TestConfirm`, cutting only the confirmation itself.
    ConfirmCut,
    /// Request an upgrade to an older version: it must be refused.
    Downgrade,
}

impl Flow {
    /// Every flow; a full campaign runs them in this order.
    pub const ALL: [Flow; 5] = [
        Flow::TestConfirm,
        Flow::TestRevert,
        Flow::Permanent,
        Flow::ConfirmCut,
        Flow::Downgrade,
    ];

    /// The flow's name on the command line and in reports (`test-confirm`, …).
    pub fn name(self) -> &'static str {
        match self {
            Flow::TestConfirm => "test-confirm",
            Flow::TestRevert => "test-revert",
            Flow::Permanent => "permanent",
            Flow::ConfirmCut => "confirm-cut",
            Flow::Downgrade => "downgrade",
        }
    }

    /// The flow [`Flow::name`] calls `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Flow> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    fn mode(self) -> UpgradeMode {
        match self {
            Flow::TestConfirm | Flow::TestRevert | Flow::ConfirmCut => UpgradeMode::Test,
            Flow::Permanent | Flow::Downgrade => UpgradeMode::Permanent,
        }
    }

    fn confirms(self) -> bool {
        matches!(self, Flow::TestConfirm | Flow::ConfirmCut)
    }
}

/// One part × layout × flow, with its images.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The part whose flash is modelled.
    pub part: &'static Part,
    /// Slots, state copies and swap strategy on that flash.
    pub layout: Layout,
    /// What the application does around the update.
    pub flow: Flow,
    /// Copy buffer size given to the engine.
    pub buffer: usize,
    /// The image in the primary slot at the start (confirmed, factory-programmed).
    pub old: Vec<u8>,
    /// The image staged for the update (older than `old` for [`Flow::Downgrade`]).
    pub new: Vec<u8>,
    /// Seed of the model's torn contents.
    pub seed: u64,
    /// The engine's image check (matching how `old` and `new` were built).
    pub check: Checker,
    /// Pre-fill the first state copy with old records so the flow's records force a
    /// compaction into the other copy (erase, then write) at some point.
    pub aged_state: bool,
    /// When the engine checks signatures.
    pub policy: VerifyPolicy,
    /// Program both state copies with the erased value first, as a factory tool writing a
    /// 0xFF-filled merged image does: the units read as erased but cannot be programmed
    /// again on ECC parts.
    pub filled_state: bool,
}

/// How the campaign builds and checks images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kit {
    /// MCUboot images signed with ed25519, verified by the engine's real check.
    Mcuboot,
    /// Hash-only images: faster, for the very long runs (pairs of cuts).
    Fast,
}

/// The kit every MCUboot-kit campaign signs with.
pub fn mcuboot_kit() -> &'static McubootKit {
    static KIT: OnceLock<McubootKit> = OnceLock::new();
    KIT.get_or_init(McubootKit::new)
}

/// Version of the image in the primary slot at the start (1.2.0).
pub const OLD_VERSION: ImageVersion = ImageVersion {
    major: 1,
    minor: 2,
    revision: 0,
    build: 0,
};
/// Version of the staged update (1.3.0).
pub const NEW_VERSION: ImageVersion = ImageVersion {
    major: 1,
    minor: 3,
    revision: 0,
    build: 0,
};
/// Version [`Flow::Downgrade`] stages (1.1.0): older than [`OLD_VERSION`], so refused.
pub const DOWNGRADE_VERSION: ImageVersion = ImageVersion {
    major: 1,
    minor: 1,
    revision: 0,
    build: 0,
};

impl Scenario {
    /// The part's default layout for `strategy`, an old image of 1.5 units and a new one of
    /// 2.25 units (so the update is larger than what it replaces).
    pub fn new(
        part: &'static Part,
        strategy: StrategyKind,
        flow: Flow,
    ) -> Result<Scenario, LayoutError> {
        let layout = default_layout(&part.geometry, strategy)?;
        Ok(Scenario::with_layout(part, layout, flow))
    }

    /// Same images, a given layout (MCUboot kit).
    pub fn with_layout(part: &'static Part, layout: Layout, flow: Flow) -> Scenario {
        Scenario::with_kit(part, layout, flow, Kit::Mcuboot)
    }

    /// A given layout and image kit.
    pub fn with_kit(part: &'static Part, layout: Layout, flow: Flow, kit: Kit) -> Scenario {
        let unit = layout.unit();
        let cap = layout.max_image_size();
        let (version, counter) = if flow == Flow::Downgrade {
            (DOWNGRADE_VERSION, 2)
        } else {
            (NEW_VERSION, 3)
        };
        let (old_size, new_size) = ((unit * 3 / 2).min(cap), (unit * 9 / 4).min(cap));
        let (old, new, check) = match kit {
            Kit::Fast => (
                build_image(OLD_VERSION, 2, old_size, 1),
                build_image(version, counter, new_size, 2),
                Checker::Hash,
            ),
            Kit::Mcuboot => {
                let k = mcuboot_kit();
                let wu = layout.write_unit();
                (
                    k.build(OLD_VERSION, 2, old_size, 1, wu),
                    k.build(version, counter, new_size, 2, wu),
                    Checker::Mcuboot(k.keys),
                )
            }
        };
        Scenario {
            part,
            layout,
            flow,
            buffer: DEFAULT_BUFFER.min(unit as usize),
            old,
            new,
            seed: 0x5EED,
            check,
            aged_state: false,
            policy: VerifyPolicy::EveryBoot,
            filled_state: false,
        }
    }

    /// The two-image group of a dual-core part (the STM32H755's Cortex-M7 and Cortex-M4
    /// images, [`dual_core_layout`]), MCUboot kit: each image requires the other at the
    /// version of its own release (DEPENDENCY TLVs), the old release in the primary slot and
    /// the new one staged, as one update.
    pub fn group(
        part: &'static Part,
        strategy: StrategyKind,
        flow: Flow,
    ) -> Result<Scenario, LayoutError> {
        let (layout, images) = dual_core_layout(
            &part.geometry,
            strategy,
            brickless_boot::layout::DEFAULT_BOOTLOADER_SIZE,
        )?;
        let mut scn = Scenario::with_kit(part, layout, flow, Kit::Fast);
        let (version, counter) = if flow == Flow::Downgrade {
            (DOWNGRADE_VERSION, 2)
        } else {
            (NEW_VERSION, 3)
        };
        let unit = layout.unit();
        let wu = layout.write_unit();
        let k = mcuboot_kit();
        let release = |v: ImageVersion, counter: u32, seed: u64| {
            let needs = |other: u8| brickless_image::Dependency {
                image_id: other,
                min_version: v,
            };
            let m7 = k.build_with(
                v,
                counter,
                (unit * 3 / 2).min(images[0].size),
                seed,
                wu,
                &[needs(1)],
            );
            let m4 = k.build_with(
                v,
                counter,
                (unit / 2).min(images[1].size),
                seed + 1,
                wu,
                &[needs(0)],
            );
            kit::group_bytes(&images, &[m7, m4], layout.erased())
        };
        scn.old = release(OLD_VERSION, 2, 1);
        scn.new = release(version, counter, 3);
        scn.check = Checker::Group {
            keys: Some(k.keys),
            images,
            primary: layout.spec().primary.start,
        };
        Ok(scn)
    }

    /// The device before the flow: old image in the primary slot, update staged, state empty.
    pub fn initial_flash(&self) -> SimFlash {
        let mut flash = SimFlash::with_seed(self.part, self.seed);
        let spec = self.layout.spec();
        flash
            .preload(
                spec.bootloader.start,
                &kit::bootloader_stub(self.part, spec.bootloader.start),
            )
            .expect("the bootloader region fits its stand-in");
        flash
            .preload(spec.primary.start, &self.old)
            .expect("primary fits the old image");
        flash
            .preload(self.layout.staging().start, &self.new)
            .expect("staging fits the new image");
        if self.filled_state {
            for copy in self.layout.spec().state {
                flash
                    .fill(copy.start, copy.size, self.layout.erased())
                    .expect("state copies are flash");
            }
        }
        if self.aged_state {
            // Idle records until the first copy has room for little more than one small
            // record: the flow's plan (or the record after it) must go to the other copy.
            let mut store = StateStore::load(&mut flash, &self.layout);
            let copy = self.layout.spec().state[0];
            let wu = self.layout.write_unit();
            let room_needed = 2 * brickless_boot::layout::RECORD_FIXED_LEN.div_ceil(wu) * wu;
            let mut state = brickless_boot::BootState::FACTORY;
            while self.used_in_first_copy(&flash) + room_needed <= copy.size {
                state = state.next(Phase::Idle);
                let none = |_: &mut SimFlash, _, _| Err(Error::Corrupt);
                store
                    .write(&mut flash, &self.layout, state, none)
                    .expect("aging writes fit");
            }
        }
        flash
    }

    fn used_in_first_copy(&self, flash: &SimFlash) -> u32 {
        let copy = self.layout.spec().state[0];
        let unit = self.layout.write_unit();
        let mut buf = vec![0u8; unit as usize];
        let mut used = 0;
        let mut at = copy.start;
        while at < copy.end() {
            if flash.read_abs(at, &mut buf).is_err()
                || buf.iter().any(|&b| b != self.layout.erased())
            {
                used = at + unit - copy.start;
            }
            at += unit;
        }
        used
    }

    fn strategy(&self) -> StrategyKind {
        self.layout.strategy()
    }

    /// Which final images the flow allows, given whether the new image was confirmed.
    fn allowed(&self, which: Which, app: &App) -> bool {
        match (self.flow, self.strategy()) {
            (Flow::Permanent, _) => which == Which::New,
            (Flow::Downgrade, _) => which == Which::Old,
            (_, StrategyKind::Overwrite) => which == Which::Old, // test upgrades are refused
            (Flow::TestRevert, _) => which == Which::Old,
            (Flow::TestConfirm | Flow::ConfirmCut, _) => which == Which::New || !app.confirmed,
        }
    }
}

/// Which staged image a boot started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The image in the primary slot at the start.
    Old,
    /// The staged update.
    New,
}

/// The application's memory across resets (what a real app keeps in its own storage).
#[derive(Clone, Copy, Debug, Default)]
struct App {
    /// The upgrade request is recorded (or was refused): do not ask again.
    request_done: bool,
    /// The new image was confirmed: it must never be lost.
    confirmed: bool,
    /// Operation numbers of the confirmation call, from the uncut run.
    confirm_ops: Option<(u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LifeEnd {
    PowerLost,
    Stable { which: Which, boots: u32 },
    Failed(String),
}

#[derive(Clone, Copy, Debug, Default)]
struct Observed {
    unverified_boots: u64,
}

fn identify(flash: &SimFlash, scn: &Scenario, size: u32) -> Option<Which> {
    let mut got = vec![0u8; size as usize];
    flash
        .read_abs(scn.layout.spec().primary.start, &mut got)
        .ok()?;
    if got == scn.old {
        Some(Which::Old)
    } else if got == scn.new {
        Some(Which::New)
    } else {
        None
    }
}

fn life(scn: &Scenario, flash: &mut SimFlash, app: &mut App, obs: &mut Observed) -> LifeEnd {
    let new_floor = ImageVersion::packed(&if scn.flow == Flow::Downgrade {
        DOWNGRADE_VERSION
    } else {
        NEW_VERSION
    });
    let mut buf = vec![0u8; scn.buffer];
    for boot in 1..=MAX_BOOTS {
        let before = flash.op_count();
        // What the application can learn from the state before the bootloader runs.
        let peek = StateStore::load(&mut *flash, &scn.layout).state;
        if peek.phase != Phase::Idle {
            app.request_done = true;
        }
        if scn.flow != Flow::Downgrade && peek.floor_version >= new_floor {
            app.confirmed = true;
        }
        let target = match boot_device(flash, scn.layout, scn.check, scn.policy, &mut buf) {
            Ok(BootDecision::Boot(t)) => t,
            Ok(BootDecision::Recovery(r)) => {
                return LifeEnd::Failed(format!("boot {boot}: recovery ({r:?})"))
            }
            Ok(BootDecision::Reset) => {
                return LifeEnd::Failed(format!(
                    "boot {boot}: asked for {MAX_RESETS} resets in a row"
                ))
            }
            Err(e) => {
                return if flash.is_powered() {
                    LifeEnd::Failed(format!("boot {boot}: engine error with power on: {e}"))
                } else {
                    LifeEnd::PowerLost
                };
            }
        };
        let which = match identify(flash, scn, target.image.size) {
            Some(w) => w,
            None => {
                obs.unverified_boots += 1;
                return LifeEnd::Failed(format!(
                    "boot {boot}: started an image that is neither old nor new"
                ));
            }
        };
        let mut updater = Updater::new(&mut *flash, scn.layout, scn.check);
        let mut wrote = false;
        match which {
            Which::Old if !app.request_done => {
                wrote = true;
                // The downgrade flow skips the application-side check, as an app without
                // crypto would: the bootloader must refuse it.
                let result = if scn.flow == Flow::Downgrade {
                    updater.request_upgrade_unverified(scn.flow.mode())
                } else {
                    updater.request_upgrade(scn.flow.mode()).map(|_| ())
                };
                match result {
                    Ok(()) | Err(Error::Downgrade) | Err(Error::RevertUnsupported) => {
                        app.request_done = true
                    }
                    Err(Error::Flash(_)) => return LifeEnd::PowerLost,
                    Err(e) => return LifeEnd::Failed(format!("boot {boot}: request_upgrade: {e}")),
                }
            }
            Which::Old => {}
            Which::New => {
                if scn.flow == Flow::Downgrade {
                    return LifeEnd::Failed(format!(
                        "boot {boot}: the downgrade image was started"
                    ));
                }
                if target.trial && scn.flow.confirms() {
                    wrote = true;
                    let start = updater.flash().op_count();
                    let result = updater.confirm();
                    let end = updater.flash().op_count();
                    app.confirm_ops.get_or_insert((start, end));
                    match result {
                        Ok(()) => app.confirmed = true,
                        Err(Error::Flash(_)) => return LifeEnd::PowerLost,
                        Err(e) => return LifeEnd::Failed(format!("boot {boot}: confirm: {e}")),
                    }
                }
            }
        }

        if flash.op_count() == before && !wrote {
            return LifeEnd::Stable { which, boots: boot };
        }
    }
    LifeEnd::Failed(format!("not stable after {MAX_BOOTS} boots"))
}

/// Boots `flash` until stable with an application that does nothing (no request, no
/// confirm): the image it settles on, or why it did not (recovery, unverified image,
/// engine error, no settling).
pub fn settle(scn: &Scenario, flash: &mut SimFlash) -> Result<Which, String> {
    let mut app = App {
        request_done: true,
        ..App::default()
    };
    match life(scn, flash, &mut app, &mut Observed::default()) {
        LifeEnd::Stable { which, .. } => Ok(which),
        LifeEnd::Failed(why) => Err(why),
        LifeEnd::PowerLost => Err("power lost".into()),
    }
}

/// Runs the scenario's flow once without cuts from `flash`: the image it settles on.
pub fn run_flow(scn: &Scenario, flash: &mut SimFlash) -> Result<Which, String> {
    let mut app = App::default();
    match life(scn, flash, &mut app, &mut Observed::default()) {
        LifeEnd::Stable { which, .. } if scn.allowed(which, &app) => Ok(which),
        LifeEnd::Stable { which, .. } => Err(format!(
            "settled on the {which:?} image, not allowed by the flow"
        )),
        LifeEnd::Failed(why) => Err(why),
        LifeEnd::PowerLost => Err("power lost".into()),
    }
}

/// A device mid-scenario: flash, application memory, observations.
#[derive(Clone)]
struct Device {
    flash: SimFlash,
    app: App,
    obs: Observed,
    cuts: u32,
    failure: Option<String>,
}

impl Device {
    fn new(scn: &Scenario) -> Device {
        Device {
            flash: scn.initial_flash(),
            app: App::default(),
            obs: Observed::default(),
            cuts: 0,
            failure: None,
        }
    }

    /// One life with `cut` armed, then power back on.
    fn cut_life(&mut self, scn: &Scenario, cut: CutPoint) {
        self.flash.arm_cut(cut);
        let end = life(scn, &mut self.flash, &mut self.app, &mut self.obs);
        if self.flash.disarm_cut().is_none() {
            self.cuts += 1;
        }
        self.flash.power_cycle();
        if let LifeEnd::Failed(why) = end {
            self.failure
                .get_or_insert(format!("after cut at {cut}: {why}"));
        }
    }

    /// The operations an uncut life would use from here.
    fn next_ops(&self, scn: &Scenario) -> std::ops::Range<u64> {
        let mut probe = self.clone();
        let start = probe.flash.op_count();
        life(scn, &mut probe.flash, &mut probe.app, &mut probe.obs);
        start..probe.flash.op_count()
    }

    /// The final uncut life and its checks; `Ok(boots)` or why it is a brick.
    fn finish(mut self, scn: &Scenario, wear_bound: u32) -> Outcome {
        let end = life(scn, &mut self.flash, &mut self.app, &mut self.obs);
        let verdict = match (self.failure.take(), end) {
            (Some(why), _) => Err(why),
            (None, LifeEnd::Stable { which, boots }) if scn.allowed(which, &self.app) => Ok(boots),
            (None, LifeEnd::Stable { which, .. }) => Err(format!(
                "ended on the {which:?} image, which the flow does not allow (confirmed: {})",
                self.app.confirmed
            )),
            (None, LifeEnd::Failed(why)) => Err(why),
            (None, LifeEnd::PowerLost) => Err("power lost without a cut".into()),
        };
        let wear = self.flash.max_wear();
        let verdict = verdict.and_then(|boots| {
            if wear > wear_bound + 2 * self.cuts {
                Err(format!(
                    "wear {wear} above the bound {}",
                    wear_bound + 2 * self.cuts
                ))
            } else {
                Ok(boots)
            }
        });
        Outcome {
            verdict,
            unverified_boots: self.obs.unverified_boots,
            wear,
        }
    }
}

struct Outcome {
    verdict: Result<u32, String>,
    unverified_boots: u64,
    wear: u32,
}

/// Which cut sequences a row tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutPlan {
    /// Every operation of the flow, each Before/Torn/After.
    Every,
    /// About `ops` operations spread evenly over the flow (shifted by `offset`), each
    /// Before/Torn/After; short flows are cut everywhere.
    Sample {
        /// How many operations to cut (the stride is the flow's length / `ops`).
        ops: u64,
        /// Which operation of each stride is cut (taken modulo the stride).
        offset: u64,
    },
    /// Every pair: a cut at every point of the flow, then at every point of the recovery.
    Pairs,
    /// `runs` random sequences of 1..=`max_cuts` cuts, each at a random point of the next life.
    Random {
        /// Number of sequences.
        runs: u32,
        /// Most cuts in one sequence.
        max_cuts: u32,
        /// Seed of the generator: the same seed gives the same sequences.
        seed: u64,
    },
}

/// One line of the campaign's table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowReport {
    /// Part name, e.g. `stm32h753zi`.
    pub part: String,
    /// Strategy name, as [`StrategyKind::name`] spells it.
    pub strategy: String,
    /// Flow name, as [`Flow::name`] spells it.
    pub flow: String,
    /// Cut sequences tried (single cuts: operations × 3 phases).
    pub cut_points: u64,
    /// Sequences after which the device did not boot an allowed image stably.
    pub bricks: u64,
    /// Boots of an image that was neither the old nor the new one.
    pub unverified_boots: u64,
    /// Flash operations of the uncut flow.
    pub ops: u64,
    /// Most boots any sequence's final life took to settle.
    pub max_boots: u32,
    /// Highest erase count of any sector after any sequence.
    pub max_wear: u32,
    /// The first few failures, for debugging.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Update steps the row's device went through uncut (1 for a single-update flow; a
    /// history's length, or fewer if its uncut run failed).
    pub updates: u64,
    /// Erases of a state copy (state-log compactions) in the uncut run.
    pub compactions: u64,
}

impl RowReport {
    /// The column titles of the table [`RowReport`]'s `Display` writes a line of.
    pub fn table_header() -> String {
        format!(
            "{:22} {:9} {:12} {:>6} {:>10} {:>6} {:>10} {:>9} {:>8} {:>7} {:>7}",
            "part",
            "strategy",
            "flow",
            "ops",
            "cut points",
            "bricks",
            "unverified",
            "max boots",
            "max wear",
            "updates",
            "compact"
        )
    }
}

/// One line of the campaign's table, under [`RowReport::table_header`].
impl core::fmt::Display for RowReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:22} {:9} {:12} {:>6} {:>10} {:>6} {:>10} {:>9} {:>8} {:>7} {:>7}",
            self.part,
            self.strategy,
            self.flow,
            self.ops,
            self.cut_points,
            self.bricks,
            self.unverified_boots,
            self.max_boots,
            self.max_wear,
            self.updates,
            self.compactions
        )
    }
}

/// Runs one row. `progress(done, total)` is called as sequences finish.
pub fn run_row(scn: &Scenario, plan: CutPlan, progress: &mut dyn FnMut(u64, u64)) -> RowReport {
    // The uncut flow: its operations, its wear, and that it ends where it should.
    let base = Device::new(scn);
    let uncut = base.clone();
    let ops = uncut.next_ops(scn);
    let uncut_outcome = base.clone().finish(scn, u32::MAX / 4);
    let wear_bound = uncut_outcome.wear;
    let mut confirm_probe = base.clone();
    life(
        scn,
        &mut confirm_probe.flash,
        &mut confirm_probe.app,
        &mut confirm_probe.obs,
    );
    let mut row = RowReport {
        part: scn.part.name.to_string(),
        strategy: scn.strategy().name().to_string(),
        flow: scn.flow.name().to_string(),
        cut_points: 0,
        bricks: 0,
        unverified_boots: 0,
        ops: ops.end - ops.start,
        max_boots: 0,
        max_wear: 0,
        failures: Vec::new(),
        updates: 1,
        compactions: history::state_erases(&confirm_probe.flash, &scn.layout)
            - history::state_erases(&base.flash, &scn.layout),
    };
    let record = |row: &mut RowReport, label: &dyn Fn() -> String, o: Outcome| {
        row.cut_points += 1;
        row.unverified_boots += o.unverified_boots;
        row.max_wear = row.max_wear.max(o.wear);
        match o.verdict {
            Ok(boots) => row.max_boots = row.max_boots.max(boots),
            Err(why) => {
                row.bricks += 1;
                if row.failures.len() < 5 {
                    row.failures.push(format!("{}: {why}", label()));
                }
            }
        }
    };
    record(&mut row, &|| "uncut".into(), uncut_outcome);
    row.cut_points -= 1; // the uncut run is a sanity check, not a cut point

    // Cut points of the first life.
    let first: Vec<CutPoint> = match (scn.flow, plan) {
        (Flow::ConfirmCut, _) => match confirm_probe.app.confirm_ops {
            Some((s, e)) => points(s..e.max(ops.end)),
            None => Vec::new(),
        },
        (
            _,
            CutPlan::Sample {
                ops: wanted,
                offset,
            },
        ) => {
            let stride = ((ops.end - ops.start) / wanted.max(1)).max(1);
            ops.clone()
                .filter(|op| (op - ops.start) % stride == offset % stride)
                .flat_map(phases)
                .collect()
        }
        _ => points(ops.clone()),
    };
    match plan {
        CutPlan::Every | CutPlan::Sample { .. } => {
            let total = first.len() as u64;
            for (i, cut) in first.iter().enumerate() {
                let mut d = base.clone();
                d.cut_life(scn, *cut);
                record(
                    &mut row,
                    &|| format!("cut {cut}"),
                    d.finish(scn, wear_bound),
                );
                progress(i as u64 + 1, total);
            }
        }
        CutPlan::Pairs => {
            let total = first.len() as u64;
            for (i, c1) in first.iter().enumerate() {
                let mut d1 = base.clone();
                d1.cut_life(scn, *c1);
                for c2 in points(d1.next_ops(scn)) {
                    let mut d2 = d1.clone();
                    d2.cut_life(scn, c2);
                    record(
                        &mut row,
                        &|| format!("cuts {c1}, {c2}"),
                        d2.finish(scn, wear_bound),
                    );
                }
                progress(i as u64 + 1, total);
            }
        }
        CutPlan::Random {
            runs,
            max_cuts,
            seed,
        } => {
            let mut rng = seed ^ 0xA076_1D64_78BD_642F;
            for run in 0..runs {
                let mut d = base.clone();
                let n = 1 + (next(&mut rng) % u64::from(max_cuts.max(1))) as usize;
                let mut cuts = Vec::new();
                for _ in 0..n {
                    let r = d.next_ops(scn);
                    if r.is_empty() {
                        break;
                    }
                    let op = r.start + next(&mut rng) % (r.end - r.start);
                    let cut = CutPoint::new(op, CutPhase::ALL[(next(&mut rng) % 3) as usize]);
                    cuts.push(cut);
                    d.cut_life(scn, cut);
                }
                record(
                    &mut row,
                    &|| format!("cuts {cuts:?}"),
                    d.finish(scn, wear_bound),
                );
                progress(u64::from(run) + 1, u64::from(runs));
            }
        }
    }
    row
}

fn phases(op: u64) -> [CutPoint; 3] {
    CutPhase::ALL.map(|phase| CutPoint::new(op, phase))
}

fn points(ops: std::ops::Range<u64>) -> Vec<CutPoint> {
    ops.flat_map(phases).collect()
}

/// splitmix64: reproducible random cut choices from a seed, no dependency needed.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small array with the family's rules (write unit, erased value, ECC, rewrite rule) but
/// 1 KiB sectors (2 KiB with 32-byte units), so pairs of cuts can be tried exhaustively.
///
/// `part` is one of `brickless_flash::PARTS` (panics otherwise): the reduced parts form a
/// table built once beside it, so a scenario holds a `&'static Part` without leaking one.
pub fn reduced_part(part: &Part) -> &'static Part {
    let i = brickless_flash::PARTS
        .iter()
        .position(|p| p.name == part.name)
        .expect("reduced_part takes a part of brickless_flash's table");
    &reduced_parts()[i]
}

/// One reduced part per part of `brickless_flash::PARTS`, in its order.
fn reduced_parts() -> &'static [Part] {
    // Two banks of 8 sectors, contiguous: a bank-swap layout fits, the others see 16 sectors.
    const RUN: &[SectorRun] = &[SectorRun {
        size: 1024,
        count: 8,
    }];
    static SMALL: [Bank; 2] = [
        Bank {
            base: 0x0800_0000,
            sectors: RUN,
        },
        Bank {
            base: 0x0800_2000,
            sectors: RUN,
        },
    ];
    // 32-byte units: 64 units a sector, as on the other families.
    const RUN_32: &[SectorRun] = &[SectorRun {
        size: 2048,
        count: 8,
    }];
    static SMALL_32: [Bank; 2] = [
        Bank {
            base: 0x0800_0000,
            sectors: RUN_32,
        },
        Bank {
            base: 0x0800_4000,
            sectors: RUN_32,
        },
    ];
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    static TABLE: OnceLock<Vec<Part>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let names = NAMES.get_or_init(|| {
            brickless_flash::PARTS
                .iter()
                .map(|p| format!("{}-reduced", p.name))
                .collect()
        });
        brickless_flash::PARTS
            .iter()
            .zip(names)
            .map(|(part, name)| Part {
                name,
                geometry: Geometry {
                    banks: if part.geometry.write_unit >= 32 {
                        &SMALL_32
                    } else {
                        &SMALL
                    },
                    ..part.geometry
                },
                ..*part
            })
            .collect()
    })
}

/// The layout used on a [`reduced_part`]: one-sector units, 4-unit primary (bank swap: the
/// primary in bank 1 and its twins in bank 2).
pub fn reduced_layout(part: &'static Part, strategy: StrategyKind) -> Result<Layout, LayoutError> {
    let s = part.geometry.max_sector_size();
    let base = part.geometry.base();
    if strategy == StrategyKind::BankSwap {
        let mirror = part.geometry.bank_mirror().ok_or(LayoutError::NoBankSwap)?;
        let (state0, primary) = (Region::new(base + s, s), Region::new(base + 2 * s, 4 * s));
        let spec = LayoutSpec {
            bootloader: Region::new(base, s),
            state: [state0, Region::new(state0.start + mirror, s)],
            primary,
            secondary: Region::new(primary.start + mirror, primary.size),
            unit: s,
            strategy,
        };
        return Layout::new(spec, &part.geometry);
    }
    let spec = LayoutSpec {
        bootloader: Region::new(base, s),
        state: [Region::new(base + s, s), Region::new(base + 2 * s, s)],
        primary: Region::new(base + 3 * s, 4 * s),
        secondary: Region::new(base + 7 * s, 5 * s),
        unit: s,
        strategy,
    };
    Layout::new(spec, &part.geometry)
}

/// The two-image group layout on a [`reduced_part`]: one-sector units, bootloader and state
/// copies one sector each, then a primary of 6 units across the bank edge (image 0: the 5
/// units before bank 2, image 1: bank 2's first unit), the secondary after it.
pub fn reduced_group_layout(
    part: &'static Part,
    strategy: StrategyKind,
) -> Result<(Layout, [GroupImage; 2]), LayoutError> {
    let s = part.geometry.max_sector_size();
    let base = part.geometry.base();
    let bank2 = part
        .geometry
        .banks
        .get(1)
        .ok_or(LayoutError::NeedsTwoBanks)?
        .base;
    let primary = Region::new(bank2 - 5 * s, 6 * s);
    let spec = LayoutSpec {
        bootloader: Region::new(base, s),
        state: [Region::new(base + s, s), Region::new(base + 2 * s, s)],
        primary,
        secondary: Region::new(
            primary.end(),
            brickless_boot::strategy::Strategy::secondary_size(&strategy, primary.size, s),
        ),
        unit: s,
        strategy,
    };
    let images = [
        GroupImage {
            offset: 0,
            size: 5 * s,
        },
        GroupImage {
            offset: 5 * s,
            size: s,
        },
    ];
    Ok((Layout::new(spec, &part.geometry)?, images))
}

/// A scenario on the reduced array of `part` (copy buffer of half a unit).
pub fn reduced_scenario(
    part: &'static Part,
    strategy: StrategyKind,
    flow: Flow,
) -> Result<Scenario, LayoutError> {
    let small = reduced_part(part);
    let layout = reduced_layout(small, strategy)?;
    let mut scn = Scenario::with_kit(small, layout, flow, Kit::Fast);
    scn.buffer = (layout.unit() / 2) as usize;
    Ok(scn)
}
