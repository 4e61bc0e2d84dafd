//! Long histories: one device lives through dozens of update steps, so the state log
//! compacts many times, the anti-rollback floor rises, refused images come and go, and every
//! operation of the whole life can be cut.
//!
//! A [`History`] is generated from a seed on a [`reduced_part`] (the family's write unit,
//! erased value, ECC and rewrite rule on 1–2 KiB sectors, so one state copy holds a handful
//! of records). Each [`Step`] is one thing the application does: stage an image through
//! [`Updater::erase_staging`] + [`Updater::write_staged`] (a few write units per call, as an
//! upload would), ask for it ([`Updater::request_upgrade`] or
//! [`Updater::request_upgrade_unverified`]), then confirm it, let it be reverted, or watch it be
//! refused. The generator also computes the **reference**: which image must run after the
//! step and the anti-rollback floor (highest version and counter kept for good).
//!
//! Checks, at every boot: the bytes started (read back from the primary slot) are exactly one
//! image of the history and one the step allows at that moment — the image before the step
//! or, if the reference accepts the update, the new one; once a confirmation or a permanent
//! request has landed, only the new one; after a trial boot whose confirmation never landed,
//! never the trial image again; after a test request landed, its trial next. At the end of
//! every step: the image running and the recorded floor ([`StateStore::load`]) equal the
//! reference, and the state is idle.
//!
//! Cuts ([`HistoryPlan`]): a cut sequence starts at the snapshot of the step holding its first
//! cut, replays that step with the cuts armed (after each cut power comes back and the device
//! boots until stable, the application redoing what it must: restaging, re-asking, retrying
//! an update whose confirmation was lost), checks the step's outcome against the reference,
//! then runs `horizon` more steps uncut and checks them too.
use std::collections::VecDeque;

use super::kit::{build_image, Checker, McubootKit};
use super::{mcuboot_kit, next, reduced_layout, reduced_part, Kit, RowReport, MAX_BOOTS};
use brickless_boot::state::StateStore;
use brickless_boot::{
    BootDecision, Error, ImageVersion, Layout, LayoutError, Phase, StrategyKind, Updater,
    UpgradeMode, VerifyPolicy,
};
use brickless_flash::Part;
use brickless_flash_model::{CutPhase, CutPoint, SimFlash};

/// The flow name of history rows (`brickless sim campaign --flow history`).
pub const FLOW_NAME: &str = "history";
/// Update steps of a default history.
pub const DEFAULT_STEPS: usize = 64;
/// Steps run (and checked) after the one a cut sequence interrupts.
pub const DEFAULT_HORIZON: usize = 1;
/// Times the application retries an update whose confirmation was lost to a cut.
const MAX_ATTEMPTS: u32 = 4;
/// Lives (power-on to power loss or stable) a step may take before it counts as stuck.
const MAX_LIVES: u32 = 24;

/// What the application does in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Test upgrade; the new image confirms itself on its trial boot.
    TestConfirm,
    /// Test upgrade never confirmed: reverted at the next reset.
    TestRevert,
    /// Permanent upgrade.
    Permanent,
    /// An image with a lower version than the one running or confirmed: refused.
    DowngradeVersion,
    /// Same or higher version but a lower security counter: refused.
    DowngradeCounter,
    /// A genuine image with one byte flipped after signing: refused.
    Tampered,
    /// An image signed with another key (MCUboot kit only): refused.
    WrongKey,
    /// Test upgrade; during the unconfirmed trial the application stages the next image
    /// (erase + write of the staging area, as an SMP upload before confirming would). The
    /// engine must refuse, and the trial must still be reverted at the next reset.
    StagingDuringTrial,
}

impl StepKind {
    /// Every kind, in declaration order.
    pub const ALL: [StepKind; 8] = [
        StepKind::TestConfirm,
        StepKind::TestRevert,
        StepKind::Permanent,
        StepKind::DowngradeVersion,
        StepKind::DowngradeCounter,
        StepKind::Tampered,
        StepKind::WrongKey,
        StepKind::StagingDuringTrial,
    ];

    /// The kind's name in reports and traces (`test-confirm`, …).
    pub fn name(self) -> &'static str {
        match self {
            StepKind::TestConfirm => "test-confirm",
            StepKind::TestRevert => "test-revert",
            StepKind::Permanent => "permanent",
            StepKind::DowngradeVersion => "downgrade-version",
            StepKind::DowngradeCounter => "downgrade-counter",
            StepKind::Tampered => "tampered",
            StepKind::WrongKey => "wrong-key",
            StepKind::StagingDuringTrial => "staging-during-trial",
        }
    }

    /// Kinds that stage a genuine, acceptable upgrade.
    pub fn upgrades(self) -> bool {
        matches!(
            self,
            StepKind::TestConfirm
                | StepKind::TestRevert
                | StepKind::Permanent
                | StepKind::StagingDuringTrial
        )
    }

    /// Relative frequency after every kind has appeared once.
    fn weight(self, strategy: StrategyKind) -> u64 {
        match (self, strategy) {
            (StepKind::TestConfirm, StrategyKind::Swap | StrategyKind::BankSwap) => 5,
            (StepKind::TestRevert, StrategyKind::Swap | StrategyKind::BankSwap) => 3,
            (StepKind::Permanent, StrategyKind::Swap | StrategyKind::BankSwap) => 3,
            (StepKind::StagingDuringTrial, StrategyKind::Swap | StrategyKind::BankSwap) => 2,
            (StepKind::Permanent, StrategyKind::Overwrite) => 8,
            _ => 1,
        }
    }
}

/// One image of a history.
#[derive(Clone, Debug)]
pub struct HistImage {
    /// The image as the application stages it (header, payload, hash or TLVs).
    pub bytes: Vec<u8>,
    /// Version in the image header.
    pub version: ImageVersion,
    /// Security counter in the image (the anti-rollback counter).
    pub counter: u32,
    /// Signed by the device's key and intact.
    pub genuine: bool,
}

/// One step and its reference outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// What the application does.
    pub kind: StepKind,
    /// Test (trial, revertible) or permanent request.
    pub mode: UpgradeMode,
    /// Index of the staged image in [`History::images`].
    pub image: usize,
    /// `request_upgrade` (the application verifies) or `request_upgrade_unverified`.
    pub verified: bool,
    /// [`StepKind::StagingDuringTrial`]: the image staged during the trial.
    pub next: Option<usize>,
    /// Image running (confirmed) before the step.
    pub before: usize,
    /// Image that must run after the step.
    pub after: usize,
    /// The bootloader installs the staged image (it may still be reverted).
    pub accepted: bool,
    /// The installed image first boots as a trial.
    pub trial: bool,
    /// The anti-rollback floor after the step (packed version, security counter).
    pub floor_version: u64,
    /// The security-counter part of that floor.
    pub floor_counter: u32,
    /// What the request call returns.
    pub request: Result<(), Error>,
}

/// How to generate a history.
#[derive(Clone, Copy, Debug)]
pub struct HistoryOptions {
    /// Number of update steps.
    pub steps: usize,
    /// How images are built and checked.
    pub kit: Kit,
    /// Seed of the generator (and of the model's torn contents): same seed, same history.
    pub seed: u64,
    /// Torn units read unstably ([`SimFlash::set_unstable_torn`]).
    pub unstable_torn: bool,
    /// Include [`StepKind::StagingDuringTrial`] steps (swap only).
    pub staging_during_trial: bool,
    /// Every image is a two-image group ([`super::reduced_group_layout`]): the images of a
    /// step are updated together, and a boot that runs a mix is an unverified boot.
    pub group: bool,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            steps: DEFAULT_STEPS,
            kit: Kit::Fast,
            seed: 1,
            unstable_torn: false,
            staging_during_trial: true,
            group: false,
        }
    }
}

/// A generated history on a reduced geometry, with its reference.
#[derive(Clone, Debug)]
pub struct History {
    /// The reduced part the history runs on ([`reduced_part`]).
    pub part: &'static Part,
    /// Slots, state copies and strategy on the reduced part.
    pub layout: Layout,
    /// The engine's image check, matching how the images were built.
    pub check: Checker,
    /// Copy buffer given to the engine, in bytes.
    pub buffer: usize,
    /// Seed of the model's torn contents ([`HistoryOptions::seed`]).
    pub seed: u64,
    /// Torn units read unstably ([`SimFlash::set_unstable_torn`]).
    pub unstable_torn: bool,
    /// When the engine checks signatures.
    pub policy: VerifyPolicy,
    /// Keep a trace of boots and application calls and add it to failures (for debugging
    /// one sequence with [`History::replay`]).
    pub trace: bool,
    /// Bytes per `write_staged` call.
    pub stage_chunk: usize,
    /// Image 0 is the factory image in the primary slot.
    pub images: Vec<HistImage>,
    /// The steps in order, each with its reference outcome.
    pub steps: Vec<Step>,
}

fn packed_version(packed: u64, build: u32) -> ImageVersion {
    ImageVersion {
        major: (packed >> 24) as u8,
        minor: (packed >> 16) as u8,
        revision: packed as u16,
        build,
    }
}

fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

impl History {
    /// A history of `opts.steps` steps on the reduced geometry of `part`.
    pub fn generate(
        part: &'static Part,
        strategy: StrategyKind,
        opts: &HistoryOptions,
    ) -> Result<History, LayoutError> {
        let small = reduced_part(part);
        let (layout, group) = if opts.group {
            let (layout, images) = super::reduced_group_layout(small, strategy)?;
            (layout, Some(images))
        } else {
            (reduced_layout(small, strategy)?, None)
        };
        let unit = layout.unit();
        let wu = layout.write_unit();
        let mut rng = opts.seed ^ name_hash(part.name) ^ name_hash(strategy.name());
        let other_key = (opts.kit == Kit::Mcuboot).then(|| McubootKit::with_seed([0x5A; 32]));
        let keys = (opts.kit == Kit::Mcuboot).then(|| mcuboot_kit().keys);
        let check = match (group, keys) {
            (Some(images), keys) => Checker::Group {
                keys,
                images,
                primary: layout.spec().primary.start,
            },
            (None, None) => Checker::Hash,
            (None, Some(keys)) => Checker::Mcuboot(keys),
        };
        // A group's images carry the same counter, so the packed floor is that counter in
        // every lane.
        let floor_of = |c: u32| match group {
            Some(_) => brickless_boot::multi::GroupCheck::<(), 2>::pack([c, c]).unwrap_or(u32::MAX),
            None => c,
        };
        let mut seeds = opts.seed.wrapping_mul(1000);
        // An image's bytes, and where a tampered copy gets its flipped byte (inside a signed
        // image, never in a group's padding).
        let mut build = |version: ImageVersion, counter: u32, size: u32, wrong_key: bool| {
            let mut one = |size: u32, deps: &[brickless_image::Dependency]| {
                seeds += 1;
                match (opts.kit, &other_key) {
                    (Kit::Fast, _) => build_image(version, counter, size, seeds),
                    (Kit::Mcuboot, Some(k)) if wrong_key => {
                        k.build_with(version, counter, size, seeds, wu, deps)
                    }
                    (Kit::Mcuboot, _) => {
                        mcuboot_kit().build_with(version, counter, size, seeds, wu, deps)
                    }
                }
            };
            match group {
                None => {
                    let bytes = one(size, &[]);
                    let at = bytes.len() / 2;
                    (bytes, at)
                }
                Some(images) => {
                    // Each image requires the other at the same release.
                    let needs = |id: u8| brickless_image::Dependency {
                        image_id: id,
                        min_version: version,
                    };
                    let first = one(size.min(images[0].size), &[needs(1)]);
                    let second = one((unit / 2).min(images[1].size), &[needs(0)]);
                    let at = first.len() / 2;
                    (
                        super::kit::group_bytes(&images, &[first, second], layout.erased()),
                        at,
                    )
                }
            }
        };
        // Images of 1.25 to 3.75 units: an old image always spans at least two units, so a
        // revert needs more than the first secondary unit.
        let size = |rng: &mut u64| unit + unit / 4 + (next(rng) % u64::from(unit * 5 / 2)) as u32;

        let factory_version = packed_version(0x0104_0000, 0);
        let mut images = vec![HistImage {
            bytes: build(factory_version, 2, size(&mut rng), false).0,
            version: factory_version,
            counter: 2,
            genuine: true,
        }];
        let kinds: Vec<StepKind> = StepKind::ALL
            .into_iter()
            .filter(|k| match k {
                StepKind::WrongKey => opts.kit == Kit::Mcuboot,
                StepKind::StagingDuringTrial => strategy.can_revert() && opts.staging_during_trial,
                _ => true,
            })
            .collect();
        // Every kind once, in a seeded order, then weighted picks.
        let mut order = kinds.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, (next(&mut rng) % (i as u64 + 1)) as usize);
        }
        let total: u64 = kinds.iter().map(|k| k.weight(strategy)).sum();

        let (mut running, mut floor_version, mut floor_counter) = (0usize, 0u64, 0u32);
        let mut steps = Vec::with_capacity(opts.steps);
        for i in 0..opts.steps {
            let kind = match order.get(i) {
                Some(k) => *k,
                None => {
                    let mut pick = next(&mut rng) % total;
                    *kinds
                        .iter()
                        .find(|k| {
                            let w = k.weight(strategy);
                            if pick < w {
                                true
                            } else {
                                pick -= w;
                                false
                            }
                        })
                        .unwrap_or(&StepKind::Permanent)
                }
            };
            let build_no = i as u32 + 1;
            let base_v = floor_version.max(images[running].version.packed());
            let base_c = floor_counter.max(images[running].counter);
            let upgrade_v = |rng: &mut u64| match next(rng) % 8 {
                0 => base_v,
                1 | 2 => ((base_v >> 16) + 1) << 16,
                _ => base_v + 1,
            };
            let upgrade_c = |rng: &mut u64| base_c + u32::from(next(rng) % 3 == 0);
            let (version, counter) = match kind {
                StepKind::DowngradeVersion => {
                    let v = if base_v & 0xFFFF > 0 {
                        base_v - 1
                    } else {
                        base_v - (1 << 16) + 9
                    };
                    (v, base_c)
                }
                StepKind::DowngradeCounter => (upgrade_v(&mut rng), base_c - 1),
                _ => (upgrade_v(&mut rng), upgrade_c(&mut rng)),
            };
            let version = packed_version(version, build_no);
            let (mut bytes, at) =
                build(version, counter, size(&mut rng), kind == StepKind::WrongKey);
            if kind == StepKind::Tampered {
                bytes[at] ^= 0x20;
            }
            let genuine = !matches!(kind, StepKind::Tampered | StepKind::WrongKey);
            images.push(HistImage {
                bytes,
                version,
                counter,
                genuine,
            });
            let image = images.len() - 1;
            let next_image = if kind == StepKind::StagingDuringTrial {
                let v = packed_version(version.packed() + 1, build_no);
                images.push(HistImage {
                    bytes: build(v, counter, size(&mut rng), false).0,
                    version: v,
                    counter,
                    genuine: true,
                });
                Some(images.len() - 1)
            } else {
                None
            };
            let mode = match kind {
                StepKind::TestConfirm | StepKind::TestRevert | StepKind::StagingDuringTrial => {
                    UpgradeMode::Test
                }
                StepKind::Permanent => UpgradeMode::Permanent,
                // Refused images: either mode (overwrite mostly permanent, so the image
                // itself is what gets refused).
                _ if strategy == StrategyKind::Overwrite && next(&mut rng) % 4 != 0 => {
                    UpgradeMode::Permanent
                }
                _ if next(&mut rng) % 2 == 0 => UpgradeMode::Permanent,
                _ => UpgradeMode::Test,
            };
            let verified = next(&mut rng) % 2 == 0;
            let img = &images[image];
            let acceptable = img.genuine && img.counter >= base_c && img.version.packed() >= base_v;
            let test_refused = mode == UpgradeMode::Test && strategy == StrategyKind::Overwrite;
            let request = if test_refused {
                Err(Error::RevertUnsupported)
            } else if !verified {
                Ok(())
            } else if !img.genuine {
                Err(Error::InvalidImage)
            } else if !acceptable {
                Err(Error::Downgrade)
            } else {
                Ok(())
            };
            let accepted = acceptable && !test_refused;
            let keeps =
                accepted && (mode == UpgradeMode::Permanent || kind == StepKind::TestConfirm);
            let before = running;
            if keeps {
                running = image;
                floor_version = floor_version.max(img.version.packed());
                floor_counter = floor_counter.max(img.counter);
            }
            steps.push(Step {
                kind,
                mode,
                image,
                verified,
                next: next_image,
                before,
                after: running,
                accepted,
                trial: accepted && mode == UpgradeMode::Test,
                floor_version,
                floor_counter: floor_of(floor_counter),
                request,
            });
        }
        Ok(History {
            part: small,
            layout,
            check,
            buffer: (unit / 2) as usize,
            seed: opts.seed,
            unstable_torn: opts.unstable_torn,
            policy: VerifyPolicy::EveryBoot,
            trace: false,
            stage_chunk: (4 * wu).max(128) as usize,
            images,
            steps,
        })
    }

    /// The device before the history: factory image in the primary slot, state area erased.
    pub fn initial_flash(&self) -> SimFlash {
        let mut flash = SimFlash::with_seed(self.part, self.seed);
        flash.set_unstable_torn(self.unstable_torn);
        let boot = self.layout.spec().bootloader.start;
        flash
            .preload(boot, &super::kit::bootloader_stub(self.part, boot))
            .expect("the bootloader region fits its stand-in");
        flash
            .preload(self.layout.spec().primary.start, &self.images[0].bytes)
            .expect("the primary slot fits the factory image");
        flash
    }

    fn describe(&self, i: usize) -> String {
        let img = &self.images[i];
        let v = img.version;
        format!(
            "image {i} ({}.{}.{} counter {}{})",
            v.major,
            v.minor,
            v.revision,
            img.counter,
            if img.genuine { "" } else { ", not genuine" }
        )
    }
}

/// Whether the last flash operation of an interrupted application call (the one that makes
/// its record valid) happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Landed {
    No,
    Maybe,
    Yes,
}

/// What the harness knows about the last trial boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrialConfirm {
    /// No confirmation landed: the next boot must revert.
    NotLanded,
    /// A confirmation was torn: either outcome, but the next boot decides for good.
    Unknown,
}

/// The application's memory across resets within a step.
#[derive(Clone, Copy, Debug, Default)]
struct App {
    staged: bool,
    requested: bool,
    staged_next: bool,
    attempts: u32,
}

/// A device partway through a history.
#[derive(Clone, Debug)]
struct Device {
    flash: SimFlash,
    step: usize,
    app: App,
    /// Only this image may boot (a confirmation or a permanent install landed).
    pinned: Option<usize>,
    /// The last successful boot was a trial of this image.
    trial: Option<(usize, TrialConfirm)>,
    /// A request landed: the next successful boot must start this image (as a trial or not).
    next_boot: Option<(usize, bool)>,
    /// Cuts still to arm, each after the previous one fired.
    pending_cuts: VecDeque<CutPoint>,
    max_boots: u32,
    unverified_boots: u64,
    staging_refused: u64,
    staging_accepted: u64,
    /// What happened, when [`History::trace`] is on.
    log: Vec<String>,
}

enum LifeEnd {
    PowerLost,
    Stable { image: usize, boots: u32 },
    Failed(String),
}

/// A request or a confirmation, replayable on a probe clone.
#[derive(Clone, Copy)]
enum Call {
    Request { mode: UpgradeMode, verified: bool },
    Confirm,
}

fn run_bootloader(
    h: &History,
    flash: &mut SimFlash,
    buf: &mut [u8],
) -> Result<BootDecision, Error> {
    super::boot_device(flash, h.layout, h.check, h.policy, buf)
}

fn call(h: &History, flash: &mut SimFlash, c: Call) -> Result<(), Error> {
    let mut e = Updater::new(flash, h.layout, h.check);
    match c {
        Call::Request {
            mode,
            verified: true,
        } => e.request_upgrade(mode).map(|_| ()),
        Call::Request {
            mode,
            verified: false,
        } => e.request_upgrade_unverified(mode),
        Call::Confirm => e.confirm(),
    }
}

/// Stages `bytes` through the engine: erase the staging area, then write a few units a call.
fn stage(h: &History, flash: &mut SimFlash, bytes: &[u8]) -> Result<(), Error> {
    let wu = h.layout.write_unit() as usize;
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(wu) * wu, h.layout.erased());
    let mut e = Updater::new(flash, h.layout, h.check);
    e.erase_staging()?;
    for (i, chunk) in padded.chunks(h.stage_chunk).enumerate() {
        e.write_staged((i * h.stage_chunk) as u32, chunk)?;
    }
    Ok(())
}

/// Erases of the state copies so far, from the model's wear: per copy, the highest erase
/// count of its sectors (a copy is erased whole, whatever number of sectors it spans).
pub fn state_erases(flash: &SimFlash, layout: &Layout) -> u64 {
    layout
        .spec()
        .state
        .iter()
        .map(|r| {
            flash
                .geometry()
                .sectors()
                .filter(|s| s.addr >= r.start && s.end() <= r.end())
                .map(|s| u64::from(flash.wear(s.addr).unwrap_or(0)))
                .max()
                .unwrap_or(0)
        })
        .sum()
}

impl Device {
    fn new(h: &History) -> Device {
        Device {
            flash: h.initial_flash(),
            step: 0,
            app: App::default(),
            pinned: None,
            trial: None,
            next_boot: None,
            pending_cuts: VecDeque::new(),
            max_boots: 0,
            unverified_boots: 0,
            staging_refused: 0,
            staging_accepted: 0,
            log: Vec::new(),
        }
    }

    fn note(&mut self, h: &History, what: impl FnOnce() -> String) {
        if h.trace {
            let line = format!(
                "op {:5} step {:2}: {}",
                self.flash.op_count(),
                self.step,
                what()
            );
            self.log.push(line);
        }
    }

    /// Runs `c`; when a cut is armed, first learns on a clone which operation is its last.
    fn app_call(&mut self, h: &History, c: Call) -> (Result<(), Error>, Landed) {
        let last_op = self.flash.armed_cut().map(|_| {
            let mut probe = self.flash.clone();
            probe.disarm_cut();
            let start = probe.op_count();
            let _ = call(h, &mut probe, c);
            (probe.op_count() > start).then(|| probe.op_count() - 1)
        });
        let result = call(h, &mut self.flash, c);
        let cut = self.flash.last_cut();
        self.note(h, || {
            let what = match c {
                Call::Request { mode, verified } => format!("request {mode:?} verified {verified}"),
                Call::Confirm => "confirm".into(),
            };
            format!("{what} -> {result:?} (last op {last_op:?}, last cut {cut:?})")
        });
        let landed = match (self.flash.is_powered(), self.flash.last_cut(), last_op) {
            (true, _, _) => Landed::Yes,
            (false, Some(cut), Some(Some(last))) if cut.op == last => match cut.phase {
                CutPhase::Before => Landed::No,
                CutPhase::Torn => Landed::Maybe,
                CutPhase::After => Landed::Yes,
            },
            _ => Landed::No,
        };
        (result, landed)
    }

    /// Checks a successful boot against the reference and updates what the harness knows.
    fn check_boot(&mut self, h: &History, image: usize, trial: bool) -> Result<(), String> {
        let e = &h.steps[self.step];
        let allowed = match self.pinned {
            Some(p) => image == p,
            None => image == e.before || (e.accepted && image == e.image),
        };
        if !allowed {
            return Err(format!(
                "booted {} but the step allows only {}",
                h.describe(image),
                match self.pinned {
                    Some(p) => h.describe(p),
                    None if e.accepted => {
                        format!("{} or {}", h.describe(e.before), h.describe(e.image))
                    }
                    None => h.describe(e.before),
                }
            ));
        }
        if trial && !(e.trial && image == e.image) {
            return Err(format!("{} booted as a trial", h.describe(image)));
        }
        if let Some((img, confirm)) = self.trial.take() {
            match confirm {
                TrialConfirm::NotLanded if image == img => {
                    return Err(format!(
                        "the unconfirmed trial {} survived a reset (not reverted)",
                        h.describe(img)
                    ))
                }
                TrialConfirm::Unknown if image == img => self.pinned = Some(img),
                _ => {}
            }
        }
        if let Some((want, want_trial)) = self.next_boot.take() {
            if image != want || trial != want_trial {
                return Err(format!(
                    "a request for {} landed, but the next boot started {} (trial: {trial})",
                    h.describe(want),
                    h.describe(image)
                ));
            }
        }
        if trial {
            self.trial = Some((image, TrialConfirm::NotLanded));
        } else if image == e.image {
            // Installed for good (permanent, or a confirmed trial): never lost from here on.
            self.pinned = Some(image);
        }
        Ok(())
    }

    /// The application after a boot of `image`. `Ok(true)` if it did something.
    fn act(&mut self, h: &History, image: usize, trial: bool) -> Result<bool, LifeEnd> {
        let e = h.steps[self.step];
        if image == e.before {
            if self.app.requested {
                // Asked, and the old image still runs: fine unless the update had to stick
                // (its confirmation was lost to a cut): then the user tries again.
                if e.after == e.before || self.app.attempts >= MAX_ATTEMPTS {
                    return Ok(false);
                }
                self.app = App {
                    attempts: self.app.attempts + 1,
                    ..App::default()
                };
            }
            if !self.app.staged {
                self.note(h, || format!("stage image {}", e.image));
                match stage(h, &mut self.flash, &h.images[e.image].bytes) {
                    Ok(()) => self.app.staged = true,
                    Err(_) if !self.flash.is_powered() => return Err(LifeEnd::PowerLost),
                    Err(err) => return Err(LifeEnd::Failed(format!("staging: {err}"))),
                }
            }
            let c = Call::Request {
                mode: e.mode,
                verified: e.verified,
            };
            let (result, landed) = self.app_call(h, c);
            if !self.flash.is_powered() {
                if landed == Landed::Yes && e.request.is_ok() && e.accepted {
                    self.next_boot = Some((e.image, e.trial));
                }
                return Err(LifeEnd::PowerLost);
            }
            if result != e.request {
                return Err(LifeEnd::Failed(format!(
                    "{} request of {} returned {result:?}, the reference expects {:?}",
                    if e.verified { "verified" } else { "unverified" },
                    h.describe(e.image),
                    e.request
                )));
            }
            self.app.requested = true;
            if result.is_ok() && e.accepted {
                self.next_boot = Some((e.image, e.trial));
            }
            return Ok(true);
        }
        // The step's image runs.
        self.app.requested = true;
        if !trial {
            return Ok(false);
        }
        match e.kind {
            StepKind::TestConfirm => {
                let (result, landed) = self.app_call(h, Call::Confirm);
                match result {
                    Ok(()) => {
                        self.trial = None;
                        self.pinned = Some(image);
                    }
                    Err(_) if !self.flash.is_powered() => {
                        match landed {
                            Landed::Yes => {
                                self.trial = None;
                                self.pinned = Some(image);
                            }
                            Landed::Maybe => self.trial = Some((image, TrialConfirm::Unknown)),
                            Landed::No => {}
                        }
                        return Err(LifeEnd::PowerLost);
                    }
                    Err(err) => return Err(LifeEnd::Failed(format!("confirm: {err}"))),
                }
            }
            StepKind::StagingDuringTrial if !self.app.staged_next => {
                let next = e
                    .next
                    .expect("staging-during-trial steps name their next image");
                let result = stage(h, &mut self.flash, &h.images[next].bytes);
                self.note(h, || {
                    format!("stage image {next} during the trial -> {result:?}")
                });
                if !self.flash.is_powered() {
                    return Err(LifeEnd::PowerLost);
                }
                match result {
                    Ok(()) => self.staging_accepted += 1,
                    Err(_) => self.staging_refused += 1,
                }
                self.app.staged_next = true;
            }
            _ => {}
        }
        // A trial always ends with a reset (confirmed or not).
        Ok(true)
    }

    /// Power-on to power loss, or to a boot after which nothing changed.
    fn life(&mut self, h: &History) -> LifeEnd {
        let mut buf = vec![0u8; h.buffer];
        for boot in 1..=MAX_BOOTS {
            let before = self.flash.op_count();
            // What the application can learn from the state before the bootloader runs.
            let peek = StateStore::load(&mut self.flash, &h.layout).state;
            if peek.phase != Phase::Idle {
                self.app.requested = true;
            }
            // A landed test request wants its trial next; but if this boot records the trial
            // and is then cut, the trial happened without a confirmation and the next boot
            // must revert instead. Which operation records it: learnt on a clone.
            let trial_record = match (self.flash.armed_cut(), self.next_boot) {
                (Some(_), Some((_, true))) => {
                    let mut probe = self.flash.clone();
                    probe.disarm_cut();
                    match run_bootloader(h, &mut probe, &mut buf) {
                        Ok(BootDecision::Boot(t)) if t.trial => probe.op_count().checked_sub(1),
                        _ => None,
                    }
                }
                _ => None,
            };
            let decision = run_bootloader(h, &mut self.flash, &mut buf);
            let cut = self.flash.last_cut();
            self.note(h, || {
                format!(
                    "boot {boot} (state {:?} seq {}) -> {decision:?} (last cut {cut:?})",
                    peek.phase, peek.seq,
                )
            });
            let target = match decision {
                Ok(BootDecision::Boot(t)) => t,
                Ok(BootDecision::Recovery(r)) => {
                    return LifeEnd::Failed(format!("boot {boot}: recovery ({r:?})"))
                }
                Ok(BootDecision::Reset) => {
                    return LifeEnd::Failed(format!(
                        "boot {boot}: asked for {} resets in a row",
                        super::MAX_RESETS
                    ))
                }
                Err(_) if !self.flash.is_powered() => {
                    if let (Some(last), Some(cut), Some((img, _))) =
                        (trial_record, self.flash.last_cut(), self.next_boot)
                    {
                        if cut.op == last && cut.phase != CutPhase::Before {
                            self.next_boot = None;
                            if cut.phase == CutPhase::After {
                                self.trial = Some((img, TrialConfirm::NotLanded));
                            }
                        }
                    }
                    return LifeEnd::PowerLost;
                }
                Err(err) => {
                    return LifeEnd::Failed(format!(
                        "boot {boot}: engine error with power on: {err} (flash status: {:?})",
                        self.flash.bank_flag(0)
                    ))
                }
            };
            let image = match identify(h, &self.flash, target.image.size) {
                Some(i) if !h.images[i].genuine => {
                    self.unverified_boots += 1;
                    return LifeEnd::Failed(format!(
                        "boot {boot}: started {}, which must never verify",
                        h.describe(i)
                    ));
                }
                Some(i) => {
                    self.note(h, || format!("started image {i} trial {}", target.trial));
                    i
                }
                None => {
                    self.unverified_boots += 1;
                    return LifeEnd::Failed(format!(
                        "boot {boot}: started bytes that are no image of the history"
                    ));
                }
            };
            if let Err(why) = self.check_boot(h, image, target.trial) {
                return LifeEnd::Failed(format!(
                    "boot {boot}: {why} (state before the boot: {:?} seq {})",
                    peek.phase, peek.seq
                ));
            }
            let acted = match self.act(h, image, target.trial) {
                Ok(a) => a,
                Err(end) => return end,
            };
            if !acted && self.flash.op_count() == before {
                return LifeEnd::Stable { image, boots: boot };
            }
        }
        LifeEnd::Failed(format!("not stable after {MAX_BOOTS} boots"))
    }

    /// Runs the current step to its end (or to the next power loss if `stop_at_cut`), arming
    /// pending cuts as earlier ones fire. `Ok(true)`: the step ended and matched the
    /// reference; `Ok(false)`: stopped at a cut.
    fn run_step(&mut self, h: &History, stop_at_cut: bool) -> Result<bool, String> {
        let e = h.steps[self.step];
        let step = self.step;
        let label = |d: &Device, why: String| {
            let head = format!("step {step} ({}): {why}", e.kind.name());
            if h.trace {
                format!("{head}\n  trace:\n    {}", d.log.join("\n    "))
            } else {
                head
            }
        };
        for _ in 0..MAX_LIVES {
            let armed = self.flash.armed_cut();
            match self.life(h) {
                LifeEnd::PowerLost => {
                    if armed.is_none() || self.flash.armed_cut().is_some() {
                        return Err(label(self, "power lost without a cut".into()));
                    }
                    self.flash.power_cycle();
                    if let Some(c) = self.pending_cuts.pop_front() {
                        self.flash.arm_cut(c);
                    }
                    if stop_at_cut {
                        return Ok(false);
                    }
                }
                LifeEnd::Failed(why) => return Err(label(self, why)),
                LifeEnd::Stable { image, boots } => {
                    self.max_boots = self.max_boots.max(boots);
                    if h.trace {
                        let spec = h.layout.spec();
                        let torn =
                            |r: brickless_boot::Region| self.flash.marginal_units(r.start..r.end());
                        let line = format!(
                            "stable on image {image}; torn units left: primary {:x?} secondary {:x?} state {:x?} {:x?}",
                            torn(spec.primary),
                            torn(spec.secondary),
                            torn(spec.state[0]),
                            torn(spec.state[1])
                        );
                        self.note(h, || line);
                    }
                    if image != e.after {
                        return Err(label(
                            self,
                            format!(
                                "settled on {}, the reference expects {}",
                                h.describe(image),
                                h.describe(e.after)
                            ),
                        ));
                    }
                    let state = StateStore::load(&mut self.flash, &h.layout).state;
                    if state.phase != Phase::Idle
                        || state.floor_version != e.floor_version
                        || state.floor_counter != e.floor_counter
                    {
                        return Err(label(self, format!(
                            "state {:?} with floor {:#x}/{} after the step, the reference expects idle with floor {:#x}/{}",
                            state.phase,
                            state.floor_version,
                            state.floor_counter,
                            e.floor_version,
                            e.floor_counter
                        )));
                    }
                    self.step += 1;
                    self.app = App::default();
                    self.pinned = None;
                    self.trial = None;
                    self.next_boot = None;
                    return Ok(true);
                }
            }
        }
        Err(label(
            self,
            format!("the step did not end within {MAX_LIVES} lives"),
        ))
    }
}

fn identify(h: &History, flash: &SimFlash, size: u32) -> Option<usize> {
    let mut got = vec![0u8; size as usize];
    flash
        .read_abs(h.layout.spec().primary.start, &mut got)
        .ok()?;
    h.images.iter().position(|i| i.bytes == got)
}

/// The uncut run of a history: a snapshot at the start of every step and what it cost.
#[derive(Clone, Debug)]
pub struct Reference {
    snapshots: Vec<Device>,
    /// First operation number of each step, and one past the last of the history.
    pub step_ops: Vec<u64>,
    /// Operations erasing a state copy (compactions of the state log).
    pub compaction_ops: Vec<u64>,
    /// Why the uncut run failed, at which step (the snapshots stop there).
    pub failure: Option<String>,
    /// Staging attempts during a trial that the engine refused.
    pub staging_refused: u64,
    /// Staging attempts during a trial that the engine accepted.
    pub staging_accepted: u64,
    /// Most boots any life of the uncut run took to settle.
    pub max_boots: u32,
    /// Highest erase count of any sector at the end of the uncut run.
    pub max_wear: u32,
    /// Erases of the state copies over the history (from the model's wear).
    pub state_erases: u64,
}

impl Reference {
    /// Steps the uncut run completed.
    pub fn steps_done(&self) -> usize {
        self.snapshots.len() - 1
    }

    /// Operations of the completed steps.
    pub fn ops(&self) -> std::ops::Range<u64> {
        self.step_ops[0]..*self.step_ops.last().unwrap_or(&0)
    }

    /// The step whose operations include `op`.
    fn step_of(&self, op: u64) -> usize {
        self.step_ops.partition_point(|s| *s <= op) - 1
    }
}

impl History {
    /// Runs the whole history without cuts, checking every step.
    pub fn reference(&self) -> Reference {
        let mut d = Device::new(self);
        d.flash.record_ops(true);
        let mut snapshots = Vec::with_capacity(self.steps.len() + 1);
        let mut step_ops = Vec::with_capacity(self.steps.len() + 1);
        let mut failure = None;
        let snapshot = |d: &Device| {
            let mut s = d.clone();
            s.flash.record_ops(false);
            s
        };
        snapshots.push(snapshot(&d));
        step_ops.push(d.flash.op_count());
        while d.step < self.steps.len() {
            match d.run_step(self, false) {
                Ok(_) => {
                    snapshots.push(snapshot(&d));
                    step_ops.push(d.flash.op_count());
                }
                Err(why) => {
                    failure = Some(format!("uncut: {why}"));
                    break;
                }
            }
        }
        let state = self.layout.spec().state;
        let compaction_ops = d
            .flash
            .op_log()
            .iter()
            .filter(|o| {
                o.erase
                    && state
                        .iter()
                        .any(|r| o.addr < r.end() && r.start < o.addr + o.len)
            })
            .map(|o| o.op)
            .collect();
        Reference {
            step_ops,
            compaction_ops,
            failure,
            staging_refused: d.staging_refused,
            staging_accepted: d.staging_accepted,
            max_boots: d.max_boots,
            max_wear: d.flash.max_wear(),
            state_erases: state_erases(&d.flash, &self.layout),
            snapshots,
        }
    }
}

/// Which cut sequences a history row tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryPlan {
    /// Every operation of the history, each Before/Torn/After.
    Every,
    /// About `ops` operations spread evenly (shifted by `offset`) plus every compaction of the
    /// state log (the erase of a state copy), each Before/Torn/After; then `pairs` random
    /// double cuts (a cut, then a cut in its recovery).
    Sample {
        /// How many operations to cut (the stride is the history's length / `ops`).
        ops: u64,
        /// Which operation of each stride is cut (modulo the stride); also seeds the pairs.
        offset: u64,
        /// Number of random double cuts.
        pairs: u32,
    },
    /// Every single cut, then every cut in its recovery (the rest of the interrupted step).
    Pairs,
    /// `runs` random sequences of 1..=`max_cuts` cuts, each in the recovery of the previous.
    Random {
        /// Number of sequences.
        runs: u32,
        /// Most cuts in one sequence.
        max_cuts: u32,
        /// Seed of the generator: the same seed gives the same sequences.
        seed: u64,
    },
}

/// What a history row found.
#[derive(Clone, Debug)]
pub struct HistoryOutcome {
    /// The table row: counts over every cut sequence tried.
    pub row: RowReport,
    /// The uncut run the sequences were checked against.
    pub reference: Reference,
}

fn phases(op: u64) -> [CutPoint; 3] {
    CutPhase::ALL.map(|phase| CutPoint::new(op, phase))
}

struct Tally<'a> {
    row: &'a mut RowReport,
}

impl Tally<'_> {
    fn record(
        &mut self,
        label: &dyn Fn() -> String,
        d: Option<&Device>,
        verdict: Result<(), String>,
    ) {
        self.row.cut_points += 1;
        if let Some(d) = d {
            self.row.unverified_boots += d.unverified_boots;
            self.row.max_boots = self.row.max_boots.max(d.max_boots);
            self.row.max_wear = self.row.max_wear.max(d.flash.max_wear());
        }
        if let Err(why) = verdict {
            self.row.bricks += 1;
            if self.row.failures.len() < 5 {
                self.row.failures.push(format!("{}: {why}", label()));
            }
        }
    }
}

impl History {
    /// From a device stopped at a cut (power back on): the rest of its step, then `horizon`
    /// more steps.
    fn finish(&self, d: &mut Device, r: &Reference, horizon: usize) -> Result<(), String> {
        // Steps the uncut run could not complete are reported once, by the uncut run.
        let end = (d.step + 1 + horizon)
            .min(r.steps_done())
            .max(d.step + 1)
            .min(self.steps.len());
        while d.step < end {
            d.run_step(self, false)?;
        }
        Ok(())
    }

    /// Starts the sequence `cuts` from the snapshot of the step holding the first cut; stops
    /// after the first cut fired (the rest are armed in turn).
    fn start(&self, r: &Reference, cuts: &[CutPoint]) -> Result<Device, String> {
        let k = r.step_of(cuts[0].op);
        let mut d = r.snapshots[k].clone();
        d.log.clear();
        d.pending_cuts = cuts[1..].iter().copied().collect();
        d.flash.arm_cut(cuts[0]);
        if d.run_step(self, true)? {
            // The step ended without the cut firing (a retry path the uncut run did not take).
            d.flash.disarm_cut();
        }
        Ok(d)
    }

    /// Replays one cut sequence (as a row names it) and its checks: `Err` says why it fails,
    /// with a trace of boots and calls when [`History::trace`] is on.
    pub fn replay(&self, cuts: &[CutPoint], horizon: usize) -> Result<(), String> {
        let r = self.reference();
        if let Some(why) = r.failure.clone() {
            return Err(why);
        }
        if cuts.is_empty() {
            return Ok(());
        }
        let mut d = self.start(&r, cuts)?;
        self.finish(&mut d, &r, horizon)
    }

    /// Operations the rest of `d`'s step would use from here (uncut).
    fn recovery_ops(&self, d: &Device) -> std::ops::Range<u64> {
        let mut probe = d.clone();
        probe.flash.disarm_cut();
        probe.pending_cuts.clear();
        let start = probe.flash.op_count();
        if probe.step < self.steps.len() {
            let _ = probe.run_step(self, false);
        }
        start..probe.flash.op_count()
    }

    /// Runs one row: the uncut history, then the plan's cut sequences.
    pub fn run(
        &self,
        plan: HistoryPlan,
        horizon: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> HistoryOutcome {
        let r = self.reference();
        let mut row = RowReport {
            part: self.part.name.to_string(),
            strategy: self.layout.strategy().name().to_string(),
            flow: FLOW_NAME.to_string(),
            cut_points: 0,
            bricks: 0,
            unverified_boots: 0,
            ops: r.ops().end - r.ops().start,
            max_boots: r.max_boots,
            max_wear: r.max_wear,
            failures: Vec::new(),
            updates: r.steps_done() as u64,
            compactions: r.compaction_ops.len() as u64,
        };
        if let Some(why) = &r.failure {
            row.bricks += 1;
            row.failures.push(why.clone());
        }
        let mut tally = Tally { row: &mut row };
        let ops = r.ops();
        let singles: Vec<CutPoint> = match plan {
            HistoryPlan::Every | HistoryPlan::Pairs => ops.clone().flat_map(phases).collect(),
            HistoryPlan::Sample {
                ops: wanted,
                offset,
                ..
            } => {
                let stride = ((ops.end - ops.start) / wanted.max(1)).max(1);
                let mut picked: Vec<u64> = ops
                    .clone()
                    .filter(|op| (op - ops.start) % stride == offset % stride)
                    .chain(
                        r.compaction_ops
                            .iter()
                            .copied()
                            .filter(|op| ops.contains(op)),
                    )
                    .collect();
                picked.sort_unstable();
                picked.dedup();
                picked.into_iter().flat_map(phases).collect()
            }
            HistoryPlan::Random { .. } => Vec::new(),
        };
        let run_single = |c: CutPoint| -> (Option<Device>, Result<(), String>) {
            match self.start(&r, &[c]) {
                Ok(mut d) => {
                    let v = self.finish(&mut d, &r, horizon);
                    (Some(d), v)
                }
                Err(why) => (None, Err(why)),
            }
        };
        match plan {
            HistoryPlan::Every | HistoryPlan::Sample { .. } => {
                let total = singles.len() as u64;
                for (i, c) in singles.iter().enumerate() {
                    let (d, v) = run_single(*c);
                    tally.record(&|| format!("cut {c}"), d.as_ref(), v);
                    progress(i as u64 + 1, total);
                }
                if let HistoryPlan::Sample { pairs, offset, .. } = plan {
                    let mut rng = offset ^ 0x5041_4952;
                    for _ in 0..pairs {
                        if ops.is_empty() {
                            break;
                        }
                        let c1 = CutPoint::new(
                            ops.start + next(&mut rng) % (ops.end - ops.start),
                            CutPhase::ALL[(next(&mut rng) % 3) as usize],
                        );
                        self.random_tail(&r, c1, 1, &mut rng, horizon, &mut tally);
                    }
                }
            }
            HistoryPlan::Pairs => {
                let total = singles.len() as u64;
                for (i, c1) in singles.iter().enumerate() {
                    match self.start(&r, &[*c1]) {
                        Err(why) => tally.record(&|| format!("cut {c1}"), None, Err(why)),
                        Ok(d1) => {
                            for c2 in self.recovery_ops(&d1).flat_map(phases) {
                                let mut d2 = d1.clone();
                                d2.flash.arm_cut(c2);
                                let v = self.finish(&mut d2, &r, horizon);
                                tally.record(&|| format!("cuts {c1}, {c2}"), Some(&d2), v);
                            }
                        }
                    }
                    progress(i as u64 + 1, total);
                }
            }
            HistoryPlan::Random {
                runs,
                max_cuts,
                seed,
            } => {
                let mut rng = seed ^ 0xA076_1D64_78BD_642F;
                for run in 0..runs {
                    if ops.is_empty() {
                        break;
                    }
                    let c1 = CutPoint::new(
                        ops.start + next(&mut rng) % (ops.end - ops.start),
                        CutPhase::ALL[(next(&mut rng) % 3) as usize],
                    );
                    let extra = (next(&mut rng) % u64::from(max_cuts.max(1))) as u32;
                    self.random_tail(&r, c1, extra, &mut rng, horizon, &mut tally);
                    progress(u64::from(run) + 1, u64::from(runs));
                }
            }
        }
        HistoryOutcome { row, reference: r }
    }

    /// A sequence starting with `c1`, then up to `extra` cuts, each at a random point of the
    /// recovery left by the previous one.
    fn random_tail(
        &self,
        r: &Reference,
        c1: CutPoint,
        extra: u32,
        rng: &mut u64,
        horizon: usize,
        tally: &mut Tally<'_>,
    ) {
        let mut cuts = vec![c1];
        let mut d = match self.start(r, &cuts) {
            Ok(d) => d,
            Err(why) => return tally.record(&|| format!("cuts {cuts:?}"), None, Err(why)),
        };
        for _ in 0..extra {
            let rec = self.recovery_ops(&d);
            if rec.is_empty() || d.step >= self.steps.len() {
                break;
            }
            let c = CutPoint::new(
                rec.start + next(rng) % (rec.end - rec.start),
                CutPhase::ALL[(next(rng) % 3) as usize],
            );
            cuts.push(c);
            d.flash.arm_cut(c);
            match d.run_step(self, true) {
                Ok(_) => d.flash.disarm_cut(),
                Err(why) => return tally.record(&|| format!("cuts {cuts:?}"), Some(&d), Err(why)),
            };
        }
        let v = self.finish(&mut d, r, horizon);
        tally.record(&|| format!("cuts {cuts:?}"), Some(&d), v);
    }
}
