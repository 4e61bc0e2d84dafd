//! The engine's answers to what a new user ran into: staging during a trial, a state area
//! programmed with the erased value, hostile units next to images, the floor on every boot
//! path, one meaning of the boot hash, and header flags. Each test failed before its fix.
use brickless_boot::state::{encode_record, seal_record, BootState, Phase, StateStore};
use brickless_boot::{
    BootDecision, BootEvent, BootLoader, BootTarget, Error, Exec, ImageCheck, ImageVersion, Layout,
    LayoutSpec, NotRunnable, StrategyKind, Updater, UpgradeMode, VerifyPolicy,
};
use brickless_campaign::kit::Checker;
use brickless_campaign::{run_row, CutPlan, Flow, Scenario, CAMPAIGN_PARTS};
use brickless_flash::{part, Part};
use brickless_flash_model::{CutPhase, CutPoint, SimFlash, UnitState};
use brickless_image::sign::{sign_image, SecurityCounter, SignOptions};
use brickless_image::PublicKey;
use embedded_storage::nor_flash::{NorFlash, NorFlashErrorKind};
use sha2::{Digest, Sha256};

/// Parts whose flash detects double errors (a torn unit faults on read).
const ECC_PARTS: [&str; 5] = [
    "stm32h753zi",
    "stm32h7a3zi",
    "stm32l475vg",
    "stm32g071rb",
    "stm32u585ai",
];

fn scenario(name: &str, strategy: StrategyKind, flow: Flow) -> Scenario {
    Scenario::new(part(name).unwrap(), strategy, flow).unwrap()
}

/// Boots once on a fresh bootloader (a reset).
fn boot(scn: &Scenario, flash: &mut SimFlash) -> BootDecision {
    let mut buf = vec![0u8; scn.buffer];
    brickless_campaign::boot_device(flash, scn.layout, scn.check, scn.policy, &mut buf).unwrap()
}

fn booted(scn: &Scenario, flash: &mut SimFlash) -> BootTarget {
    match boot(scn, flash) {
        BootDecision::Boot(t) => t,
        other => panic!("{}: expected a boot, got {other:?}", scn.part.name),
    }
}

/// The primary slot's bytes for the target, compared with a known image.
fn runs(flash: &SimFlash, t: &BootTarget, image: &[u8]) -> bool {
    let mut got = vec![0u8; t.image.size as usize];
    flash.read_abs(t.address, &mut got).is_ok() && got == image
}

fn with_updater<R>(
    scn: &Scenario,
    flash: &mut SimFlash,
    f: impl FnOnce(&mut Updater<&mut SimFlash, Checker>) -> R,
) -> R {
    f(&mut Updater::new(&mut *flash, scn.layout, scn.check))
}

fn state(scn: &Scenario, flash: &mut SimFlash) -> BootState {
    StateStore::load(flash, &scn.layout).state
}

#[test]
fn staging_during_a_trial_is_refused_and_the_trial_reverts() {
    for name in CAMPAIGN_PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        let mut flash = scn.initial_flash();
        let floor = state(&scn, &mut flash);
        with_updater(&scn, &mut flash, |e| e.request_upgrade(UpgradeMode::Test)).unwrap();
        let t = booted(&scn, &mut flash);
        assert!(
            t.trial && t.event == BootEvent::TrialStarted,
            "{name}: {t:?}"
        );
        assert!(
            runs(&flash, &t, &scn.new),
            "{name}: trial runs the new image"
        );

        // The application takes the next upload before confirming: refused, nothing written.
        let ops = flash.op_count();
        let wu = scn.layout.write_unit() as usize;
        with_updater(&scn, &mut flash, |e| {
            assert_eq!(e.erase_staging(), Err(Error::StagingLocked), "{name}");
            assert_eq!(
                e.write_staged(0, &vec![0x5A; wu]),
                Err(Error::StagingLocked),
                "{name}"
            );
        });
        assert_eq!(
            flash.op_count(),
            ops,
            "{name}: a refused staging wrote flash"
        );

        // Never confirmed: the next reset reverts, the floor does not move.
        let t = booted(&scn, &mut flash);
        assert!(!t.trial && t.event == BootEvent::Reverted, "{name}: {t:?}");
        assert!(runs(&flash, &t, &scn.old), "{name}: the old image is back");
        let after = state(&scn, &mut flash);
        assert_eq!(
            (after.floor_version, after.floor_counter),
            (floor.floor_version, floor.floor_counter),
            "{name}"
        );
        // Idle again: staging is allowed.
        with_updater(&scn, &mut flash, |e| e.erase_staging()).unwrap();
    }
}

#[test]
fn staging_is_refused_while_a_request_is_pending_and_out_of_range_is_named() {
    for strategy in StrategyKind::ALL {
        let scn = scenario("stm32l475vg", strategy, Flow::Permanent);
        let mut flash = scn.initial_flash();
        let staging = scn.layout.staging();
        with_updater(&scn, &mut flash, |e| {
            assert_eq!(
                e.write_staged(staging.size, &[0; 8]),
                Err(Error::OutOfRange)
            );
            assert_eq!(
                e.write_staged(u32::MAX - 3, &[0; 8]),
                Err(Error::OutOfRange)
            );
            // A refusal with power on keeps its kind (not a power cut).
            assert_eq!(
                e.write_staged(staging.size - 16, &[0; 3]),
                Err(Error::Flash(NorFlashErrorKind::NotAligned))
            );
            // The last write unit of the staging area is inside it.
            let wu = scn.layout.write_unit();
            let last = vec![0xA5; wu as usize];
            e.erase_staging().unwrap();
            assert_eq!(e.write_staged(staging.size - wu, &last), Ok(()));
            e.erase_staging().unwrap();
            for (i, chunk) in scn.new.chunks(256).enumerate() {
                let mut c = chunk.to_vec();
                c.resize(c.len().div_ceil(wu as usize) * wu as usize, 0xFF);
                e.write_staged(i as u32 * 256, &c).unwrap();
            }
            e.request_upgrade(UpgradeMode::Permanent).unwrap();
            assert_eq!(e.erase_staging(), Err(Error::StagingLocked));
        });
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{}: installed", strategy.name());
    }
}

#[test]
fn a_trial_whose_revert_source_is_damaged_stays_a_trial_and_says_so() {
    for name in CAMPAIGN_PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        with_updater(&scn, &mut flash, |e| e.request_upgrade(UpgradeMode::Test)).unwrap();
        let t = booted(&scn, &mut flash);
        assert!(t.trial);
        // Damage the saved old image (a debugger write, or worn-out cells).
        let secondary = scn.layout.spec().secondary.start;
        let junk: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        flash.preload(secondary + 64, &junk).unwrap();
        for _ in 0..2 {
            let t = booted(&scn, &mut flash);
            assert!(
                t.trial && t.event == BootEvent::RevertImpossible,
                "{name}: {t:?}"
            );
            assert!(runs(&flash, &t, &scn.new), "{name}");
            assert_eq!(state(&scn, &mut flash).phase, Phase::Trial, "{name}");
        }
        let ops = flash.op_count();
        booted(&scn, &mut flash);
        assert_eq!(flash.op_count(), ops, "{name}: not stable");
        with_updater(&scn, &mut flash, |e| e.confirm()).unwrap();
        let t = booted(&scn, &mut flash);
        assert!(!t.trial && t.event == BootEvent::None && runs(&flash, &t, &scn.new));
        assert_eq!(
            state(&scn, &mut flash).floor_version,
            t.image.version.packed(),
            "{name}: confirming raises the floor"
        );
    }
}

/// A blank primary slot takes the staged image for good (there is nothing to revert to);
/// a later trial whose revert source is damaged is still no revert: the recorded image is
/// not the one in the primary slot.
#[test]
fn a_first_install_is_permanent_and_a_later_unrevertable_trial_stays_a_trial() {
    for name in CAMPAIGN_PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = SimFlash::with_seed(scn.part, scn.seed);
        flash.preload(scn.layout.staging().start, &scn.old).unwrap();
        let t = booted(&scn, &mut flash);
        assert!(
            !t.trial && t.event == BootEvent::Installed && runs(&flash, &t, &scn.old),
            "{name}: {t:?}"
        );
        assert_eq!(state(&scn, &mut flash).phase, Phase::Idle, "{name}");

        let mut staged = scn.new.clone();
        let wu = scn.layout.write_unit() as usize;
        staged.resize(staged.len().div_ceil(wu) * wu, scn.layout.erased());
        with_updater(&scn, &mut flash, |e| {
            e.erase_staging()?;
            e.write_staged(0, &staged)?;
            e.request_upgrade(UpgradeMode::Test)
        })
        .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(t.trial && runs(&flash, &t, &scn.new), "{name}: {t:?}");
        let secondary = scn.layout.spec().secondary.start;
        let junk: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        flash.preload(secondary + 64, &junk).unwrap();
        let t = booted(&scn, &mut flash);
        assert!(
            t.trial && t.event == BootEvent::RevertImpossible && runs(&flash, &t, &scn.new),
            "{name}: {t:?}"
        );
        assert_eq!(state(&scn, &mut flash).phase, Phase::Trial, "{name}");
    }
}

/// A flash that flips one bit of the first write into `target` and says nothing (a marginal
/// cell that programmed wrong): the copy then yields an image that does not verify.
struct SilentFlip<'a> {
    inner: &'a mut SimFlash,
    target: core::ops::Range<u32>,
    flipped: bool,
}

impl embedded_storage::nor_flash::ErrorType for SilentFlip<'_> {
    type Error = <SimFlash as embedded_storage::nor_flash::ErrorType>::Error;
}

impl embedded_storage::nor_flash::ReadNorFlash for SilentFlip<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl NorFlash for SilentFlip<'_> {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.inner.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !self.flipped && self.target.contains(&offset) {
            self.flipped = true;
            let mut bad = bytes.to_vec();
            bad[bytes.len() / 2] ^= 0x10;
            return self.inner.write(offset, &bad);
        }
        self.inner.write(offset, bytes)
    }
}

/// An install into a blank primary slot whose copy silently comes out wrong is not a trial
/// (there is nothing to revert to): the next reset installs the staged image again.
#[test]
fn a_first_install_that_comes_out_wrong_is_tried_again_not_made_a_trial() {
    for name in CAMPAIGN_PARTS {
        for strategy in [StrategyKind::Swap, StrategyKind::Overwrite] {
            let scn = scenario(name, strategy, Flow::TestConfirm);
            let mut flash = SimFlash::with_seed(scn.part, scn.seed);
            flash.preload(scn.layout.staging().start, &scn.new).unwrap();
            let primary = scn.layout.spec().primary;
            let base = flash.geometry().base();
            let target = primary.start - base..primary.start - base + primary.size;
            let mut buf = vec![0u8; scn.buffer];
            let first = {
                let faulty = SilentFlip {
                    inner: &mut flash,
                    target,
                    flipped: false,
                };
                let mut b = BootLoader::new(faulty, scn.layout, scn.check, &mut buf).unwrap();
                b.boot().unwrap()
            };
            assert!(
                matches!(first, BootDecision::Recovery(_)),
                "{name} {}: {first:?}",
                strategy.name()
            );
            assert_eq!(state(&scn, &mut flash).phase, Phase::Idle, "{name}");
            let t = booted(&scn, &mut flash);
            assert!(
                !t.trial && t.event == BootEvent::Installed && runs(&flash, &t, &scn.new),
                "{name} {}: {t:?}",
                strategy.name()
            );
        }
    }
}

#[test]
fn a_state_area_programmed_with_the_erased_value_still_takes_updates() {
    for name in CAMPAIGN_PARTS {
        for (strategy, mode) in [
            (StrategyKind::Swap, UpgradeMode::Test),
            (StrategyKind::Overwrite, UpgradeMode::Permanent),
        ] {
            for policy in [VerifyPolicy::EveryBoot, VerifyPolicy::RecordedHash] {
                let mut scn = scenario(name, strategy, Flow::TestConfirm);
                scn.filled_state = true;
                scn.policy = policy;
                let mut flash = scn.initial_flash();
                let what = format!("{name} {} {policy:?}", strategy.name());
                let first = scn.layout.spec().state[0].start;
                assert_eq!(flash.unit_state(first), Some(UnitState::Programmed));
                let t = booted(&scn, &mut flash);
                assert!(runs(&flash, &t, &scn.old), "{what}");
                with_updater(&scn, &mut flash, |e| e.request_upgrade(mode))
                    .unwrap_or_else(|e| panic!("{what}: request refused: {e}"));
                // The request is really recorded (not lost in a poisoned unit).
                assert_eq!(state(&scn, &mut flash).phase, Phase::Pending, "{what}");
                let t = booted(&scn, &mut flash);
                assert!(runs(&flash, &t, &scn.new), "{what}");
                if t.trial {
                    with_updater(&scn, &mut flash, |e| e.confirm()).unwrap();
                }
                let t = booted(&scn, &mut flash);
                assert!(runs(&flash, &t, &scn.new) && !t.trial, "{what}");
                let ops = flash.op_count();
                booted(&scn, &mut flash);
                assert_eq!(flash.op_count(), ops, "{what}: not stable");
            }
        }
    }
}

#[test]
fn every_cut_while_recovering_a_filled_state_area_is_safe_l475() {
    every_cut_while_recovering_a_filled_state_area_is_safe("stm32l475vg");
}

#[test]
fn every_cut_while_recovering_a_filled_state_area_is_safe_h753() {
    every_cut_while_recovering_a_filled_state_area_is_safe("stm32h753zi");
}

#[test]
fn every_cut_while_recovering_a_filled_state_area_is_safe_l073() {
    every_cut_while_recovering_a_filled_state_area_is_safe("stm32l073rz");
}

#[test]
fn every_cut_while_recovering_a_filled_state_area_is_safe_f407() {
    every_cut_while_recovering_a_filled_state_area_is_safe("stm32f407vg");
}

/// One test per part so the parts run in parallel.
fn every_cut_while_recovering_a_filled_state_area_is_safe(name: &str) {
    for (strategy, flow) in [
        (StrategyKind::Swap, Flow::TestConfirm),
        (StrategyKind::Overwrite, Flow::Permanent),
    ] {
        let mut scn = scenario(name, strategy, flow);
        scn.filled_state = true;
        let row = run_row(&scn, CutPlan::Every, &mut |_, _| {});
        assert!(row.ops > 0, "{row:?}");
        assert_eq!(
            (row.bricks, row.unverified_boots),
            (0, 0),
            "{:#?}",
            row.failures
        );
    }
}

/// Tears the write unit at `addr` (absolute): on ECC parts it then faults on every read.
fn tear(flash: &mut SimFlash, addr: u32) {
    let wu = flash.geometry().write_unit as usize;
    flash.arm_cut(CutPoint::new(flash.op_count(), CutPhase::Torn));
    let off = addr - flash.geometry().base();
    assert!(flash.write(off, &vec![0x3C; wu]).is_err());
    flash.disarm_cut();
    flash.power_cycle();
    assert_eq!(flash.unit_state(addr), Some(UnitState::Torn));
}

fn round_up(x: u32, to: u32) -> u32 {
    x.div_ceil(to) * to
}

#[test]
fn a_faulting_unit_after_the_staged_image_in_its_last_unit_does_not_stop_the_install() {
    for name in ECC_PARTS {
        for (strategy, mode) in [
            (StrategyKind::Swap, UpgradeMode::Test),
            (StrategyKind::Overwrite, UpgradeMode::Permanent),
        ] {
            let scn = scenario(name, strategy, Flow::TestConfirm);
            let mut flash = scn.initial_flash();
            let (wu, unit) = (scn.layout.write_unit(), scn.layout.unit());
            let staging = scn.layout.staging().start;
            let after = staging + round_up(scn.new.len() as u32, wu);
            assert!(after < staging + round_up(scn.new.len() as u32, unit));
            tear(&mut flash, after);
            with_updater(&scn, &mut flash, |e| e.request_upgrade(mode)).unwrap();
            let ops = flash.op_count();
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.new), "{name} {}", strategy.name());
            // One install: records are few, not a loop of requests.
            let units = scn.new.len().div_ceil(unit as usize) as u64;
            assert!(
                flash.op_count() - ops < 4 * units * (unit / wu) as u64 + 16,
                "{name}: {} ops",
                flash.op_count() - ops
            );
            if t.trial {
                with_updater(&scn, &mut flash, |e| e.confirm()).unwrap();
            }
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.new) && !t.trial, "{name}");
        }
    }
}

#[test]
fn a_faulting_unit_right_after_the_primary_image_does_not_stop_the_boot() {
    for name in ECC_PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        let wu = scn.layout.write_unit();
        let primary = scn.layout.spec().primary.start;
        tear(&mut flash, primary + round_up(scn.old.len() as u32, wu));
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.old), "{name}");
    }
}

/// A swap plan forged with the real digests of the two images and a floor above both.
fn forge_swap_plan(scn: &Scenario, flash: &mut SimFlash, floor_counter: u32) {
    let unit = scn.layout.unit();
    let wu = scn.layout.write_unit();
    let spec = *scn.layout.spec();
    let span = |size: u32, i: u32| round_up(size - i * unit, wu).min(unit);
    let digest = |flash: &SimFlash, at: u32, len: u32| {
        let mut b = vec![0u8; len as usize];
        flash.read_abs(at, &mut b).unwrap();
        let mut d = [0u8; 16];
        d.copy_from_slice(&Sha256::digest(&b)[..16]);
        d
    };
    let (old_size, new_size) = (scn.old.len() as u32, scn.new.len() as u32);
    let plan = BootState {
        phase: Phase::Swapping,
        permanent: true,
        floor_counter,
        old_size,
        new_size,
        ..BootState::FACTORY.next(Phase::Swapping)
    };
    let mut store = StateStore::load(&mut *flash, &scn.layout);
    store
        .write(&mut *flash, &scn.layout, plan, |f, set, i| {
            let (at, size) = match set {
                brickless_boot::state::DigestSet::Old => (spec.primary.start + i * unit, old_size),
                brickless_boot::state::DigestSet::New => {
                    (spec.secondary.start + (i + 1) * unit, new_size)
                }
            };
            Ok(digest(f, at, span(size, i)))
        })
        .unwrap();
}

/// A plan whose new image would not fit the primary slot (a forged record) is given up
/// before anything moves: the old image boots as it was.
#[test]
fn a_plan_larger_than_the_primary_slot_is_given_up() {
    for name in CAMPAIGN_PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        let unit = scn.layout.unit();
        let too_big = (scn.layout.primary_units() + 1) * unit;
        let plan = BootState {
            old_size: scn.old.len() as u32,
            new_size: too_big,
            ..BootState::FACTORY.next(Phase::Swapping)
        };
        // Digests of what is really there, so only the size rule can refuse the plan.
        let spec = *scn.layout.spec();
        let wu = scn.layout.write_unit();
        let mut store = StateStore::load(&mut flash, &scn.layout);
        store
            .write(&mut flash, &scn.layout, plan, |f, set, i| {
                let (at, size) = match set {
                    brickless_boot::state::DigestSet::Old => {
                        (spec.primary.start + i * unit, plan.old_size)
                    }
                    brickless_boot::state::DigestSet::New => {
                        (spec.secondary.start + (i + 1) * unit, plan.new_size)
                    }
                };
                let len = round_up(size - i * unit, wu).min(unit);
                let mut b = vec![0u8; len as usize];
                let mut d = [0u8; 16];
                if f.read_abs(at, &mut b).is_ok() {
                    d.copy_from_slice(&Sha256::digest(&b)[..16]);
                }
                Ok(d)
            })
            .unwrap();
        let ops = flash.op_count();
        let t = booted(&scn, &mut flash);
        assert!(!t.trial && runs(&flash, &t, &scn.old), "{name}: {t:?}");
        // Only state records were written: no slot unit was erased.
        for i in 0..scn.layout.primary_units() {
            assert_eq!(flash.wear(spec.primary.start + i * unit), Some(0), "{name}");
            assert_eq!(
                flash.wear(spec.secondary.start + i * unit),
                Some(0),
                "{name}"
            );
        }
        assert!(flash.op_count() > ops);
    }
}

#[test]
fn the_floor_applies_right_after_an_install_too() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32f407vg"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::Permanent);
        let mut flash = scn.initial_flash();
        forge_swap_plan(&scn, &mut flash, 10);
        // Both images carry counters below 10: neither may start.
        match boot(&scn, &mut flash) {
            BootDecision::Recovery(_) => {}
            other => panic!("{name}: expected recovery below the floor: {other:?}"),
        }
        // The same plan under a floor the new image passes installs it.
        let mut flash = scn.initial_flash();
        forge_swap_plan(&scn, &mut flash, 3);
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new) && t.event == BootEvent::Installed);
    }
}

#[test]
fn the_boot_hash_is_the_image_tlv_hash_on_every_path() {
    for name in ["stm32l475vg", "stm32h753zi"] {
        let mut scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        scn.policy = VerifyPolicy::RecordedHash;
        let mut flash = scn.initial_flash();
        let primary = scn.layout.offset(scn.layout.spec().primary.start);
        let tlv_hash = scn
            .check
            .clone()
            .check(&mut flash, primary, scn.layout.spec().primary.size)
            .unwrap()
            .hash;
        let full = booted(&scn, &mut flash);
        let ops = flash.op_count();
        let recorded = booted(&scn, &mut flash);
        assert_eq!(flash.op_count(), ops, "the second boot only hashes");
        assert_eq!(full.image.hash, tlv_hash, "{name}: fully verified path");
        assert_eq!(recorded.image.hash, tlv_hash, "{name}: recorded-hash path");
        assert_eq!(full.image, recorded.image, "{name}");
    }
}

/// An image signed by the test's own key with extra options, and the checker trusting it.
fn signed(opts: impl FnOnce(&mut SignOptions), wu: u32, seed: u8) -> (Vec<u8>, Checker) {
    static KEYS: std::sync::OnceLock<(brickless_image::keys::SigningKey, &'static [PublicKey])> =
        std::sync::OnceLock::new();
    let (key, keys) = KEYS.get_or_init(|| {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);
        let key = brickless_image::keys::SigningKey::Ed25519(sk);
        let keys: &'static [PublicKey] = Box::leak(Box::new([key.public_key()]));
        (key, keys)
    });
    let mut o = SignOptions {
        version: ImageVersion::new(2, 0, 0, 0),
        pad_header: true,
        align: wu.clamp(1, 32),
        security_counter: Some(SecurityCounter::Value(5)),
        ..SignOptions::default()
    };
    opts(&mut o);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i as u8) ^ seed).collect();
    (
        sign_image(&payload, Some(key), &o).unwrap(),
        Checker::Mcuboot(keys),
    )
}

fn flagged_scenario(p: &'static Part, staged: Vec<u8>, check: Checker) -> Scenario {
    let mut scn = Scenario::new(p, StrategyKind::Swap, Flow::Permanent).unwrap();
    let wu = scn.layout.write_unit();
    scn.old = signed(|o| o.version = ImageVersion::new(1, 0, 0, 0), wu, 1).0;
    scn.new = staged;
    scn.check = check;
    scn
}

#[test]
fn images_that_cannot_run_here_are_refused_with_their_reason() {
    let p = part("stm32l475vg").unwrap();
    let layout = Scenario::new(p, StrategyKind::Swap, Flow::Permanent)
        .unwrap()
        .layout;
    let (slot, wu) = (layout.spec().primary.start, layout.write_unit());
    type SetFlags = Box<dyn Fn(&mut SignOptions)>;
    let cases: [(&str, SetFlags, NotRunnable); 3] = [
        (
            "non-bootable",
            Box::new(|o| o.non_bootable = true),
            NotRunnable::NonBootable,
        ),
        (
            "ram-load",
            Box::new(|o| o.load_addr = Some(0x2000_0000)),
            NotRunnable::RamLoad,
        ),
        (
            "rom-fixed elsewhere",
            Box::new(move |o| o.rom_fixed = Some(slot + 0x1_0000)),
            NotRunnable::WrongAddress {
                built_for: slot + 0x1_0000,
                slot,
            },
        ),
    ];
    for (what, opts, reason) in cases {
        let (img, check) = signed(opts, wu, 2);
        let scn = flagged_scenario(p, img, check);
        let mut flash = scn.initial_flash();
        let got = with_updater(&scn, &mut flash, |e| {
            e.request_upgrade(UpgradeMode::Permanent)
        });
        assert_eq!(got, Err(Error::NotRunnable(reason)), "{what}");
        assert!(Error::NotRunnable(reason)
            .to_string()
            .contains("cannot run"));
        // An application without crypto asks anyway: the bootloader drops the request.
        with_updater(&scn, &mut flash, |e| {
            e.request_upgrade_unverified(UpgradeMode::Permanent)
        })
        .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.old), "{what}: the old image stays");
        assert_eq!(state(&scn, &mut flash).phase, Phase::Idle, "{what}");

        // Alone in the primary slot, it is not started either.
        let mut alone = SimFlash::new(scn.part);
        alone.preload(slot, &scn.new).unwrap();
        assert!(
            matches!(boot(&scn, &mut alone), BootDecision::Recovery(_)),
            "{what}: started from the primary slot"
        );
    }
    // Linked for the primary slot's address: accepted and started.
    let (img, check) = signed(|o| o.rom_fixed = Some(slot), wu, 3);
    let scn = flagged_scenario(p, img, check);
    let mut flash = scn.initial_flash();
    let info = with_updater(&scn, &mut flash, |e| {
        e.request_upgrade(UpgradeMode::Permanent)
    })
    .unwrap();
    assert_eq!(info.exec, Exec::FixedAt(slot));
    let t = booted(&scn, &mut flash);
    assert!(runs(&flash, &t, &scn.new));
}

#[test]
fn forged_sequence_numbers_settle_instead_of_writing_at_every_boot() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32l073rz"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        // Records spread over the whole 32-bit range (no "newest" under wrapping comparison),
        // each a request that makes the boot write.
        let wu = scn.layout.write_unit() as usize;
        // Planted in the second copy, so the renumbering erases the first copy's side too.
        let mut at = scn.layout.spec().state[1].start;
        let top = if name == "stm32h753zi" {
            0xC000_0000
        } else {
            0xFFFF_FFFF
        };
        for seq in [0x0000_0010, 0x6000_0000, 0x9000_0000, top] {
            let forged = BootState {
                seq,
                permanent: true,
                ..BootState::FACTORY.next(Phase::Pending)
            };
            // Planted raw, as an attacker with flash access would.
            let mut rec = vec![0u8; 256];
            let len = encode_record(&forged, &scn.layout, &[], &mut rec).unwrap();
            rec.truncate(len.div_ceil(wu) * wu);
            flash.preload(at, &rec).unwrap();
            at += rec.len() as u32;
        }
        assert_eq!(state(&scn, &mut flash).seq, top);
        let mut quiet = 0;
        for boot_no in 0..8 {
            let ops = flash.op_count();
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.old) || runs(&flash, &t, &scn.new));
            if flash.op_count() == ops {
                quiet += 1;
            } else {
                assert!(boot_no < 4, "{name}: boot {boot_no} still writes");
            }
        }
        assert!(quiet >= 4, "{name}: never settled");
        let settled = state(&scn, &mut flash);
        assert!(settled.seq < brickless_boot::state::SEQ_REBASE_AT);
        // Renumbering keeps what the records said: the forged request was installed for good.
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}");
        assert_eq!(
            (settled.phase, settled.floor_version),
            (Phase::Idle, t.image.version.packed()),
            "{name}: the state was lost while renumbering"
        );
    }
}

#[test]
fn the_copy_buffer_must_be_two_write_units_or_more_and_whole_units() {
    for name in ["stm32h753zi", "stm32l475vg", "stm32l073rz"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let wu = scn.layout.write_unit() as usize;
        for (len, ok) in [
            (wu, false),
            (2 * wu - 1, false),
            (2 * wu, true),
            (2 * wu + 1, false),
            (3 * wu, true),
            (4096, true),
        ] {
            let mut flash = scn.initial_flash();
            let mut buf = vec![0u8; len];
            let got = BootLoader::new(&mut flash, scn.layout, scn.check, &mut buf).map(|_| ());
            assert_eq!(got.is_ok(), ok, "{name}: buffer of {len} bytes");
            if !ok {
                assert_eq!(got, Err(Error::BufferSize));
            }
        }
        // The smallest buffer still installs an update.
        let mut flash = scn.initial_flash();
        let mut buf = vec![0u8; 2 * wu];
        Updater::new(&mut flash, scn.layout, scn.check)
            .request_upgrade(UpgradeMode::Permanent)
            .unwrap();
        let mut e = BootLoader::new(&mut flash, scn.layout, scn.check, &mut buf).unwrap();
        assert!(matches!(e.boot(), Ok(BootDecision::Boot(t)) if t.event == BootEvent::Installed));
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}");
    }
}

#[test]
fn a_damaged_primary_with_only_a_downgrade_staged_goes_to_recovery_at_once() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32f407vg"] {
        for strategy in brickless_campaign::strategies_for(part(name).unwrap()) {
            // v1.3 (counter 3) installed and kept: the floor is 1.3 / 3.
            let scn = scenario(name, strategy, Flow::Permanent);
            let mut flash = scn.initial_flash();
            with_updater(&scn, &mut flash, |e| {
                e.request_upgrade(UpgradeMode::Permanent)
            })
            .unwrap();
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.new));
            // Stage the older image (1.2, counter 2), then the primary gets damaged.
            with_updater(&scn, &mut flash, |e| {
                e.erase_staging()?;
                let wu = scn.layout.write_unit() as usize;
                let mut img = scn.old.clone();
                img.resize(img.len().div_ceil(wu) * wu, scn.layout.erased());
                e.write_staged(0, &img)
            })
            .unwrap();
            let primary = scn.layout.spec().primary.start;
            flash.preload(primary + 8, &[0x00; 8]).unwrap();
            let ops = flash.op_count();
            let decision = boot(&scn, &mut flash);
            assert_eq!(
                decision,
                BootDecision::Recovery(brickless_boot::RecoveryReason::NoValidImage),
                "{name} {}",
                strategy.name()
            );
            assert_eq!(flash.op_count(), ops, "{name}: recovery wrote flash");
        }
    }
}

#[test]
fn a_plan_that_cannot_finish_is_given_up_and_the_staged_image_installs_in_the_same_boot() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32l073rz"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::Permanent);
        let mut flash = scn.initial_flash();
        let spec = *scn.layout.spec();
        // The primary slot is damaged and a plan claims to save an old image that is not there.
        flash.preload(spec.primary.start + 8, &[0u8; 8]).unwrap();
        let plan = BootState {
            phase: Phase::Swapping,
            permanent: true,
            old_size: scn.layout.unit(),
            new_size: scn.new.len() as u32,
            ..BootState::FACTORY.next(Phase::Swapping)
        };
        let mut store = StateStore::load(&mut flash, &scn.layout);
        store
            .write(&mut flash, &scn.layout, plan, |_, _, i| {
                Ok([i as u8 ^ 0x5A; 16])
            })
            .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}: {t:?}");
        assert_eq!(t.event, BootEvent::Installed, "{name}");
    }
}

#[test]
fn a_revert_that_finished_before_its_source_was_damaged_counts_as_done() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32f407vg"] {
        let mut scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        scn.policy = VerifyPolicy::RecordedHash;
        let mut flash = scn.initial_flash();
        booted(&scn, &mut flash); // records the installed image
        with_updater(&scn, &mut flash, |e| e.request_upgrade(UpgradeMode::Test)).unwrap();
        assert!(booted(&scn, &mut flash).trial);
        // The revert copied the old image back, power failed before its record, and then the
        // saved copy was damaged.
        let spec = *scn.layout.spec();
        flash.preload(spec.primary.start, &scn.old).unwrap();
        flash.preload(spec.secondary.start + 8, &[0u8; 8]).unwrap();
        let t = booted(&scn, &mut flash);
        assert!(
            runs(&flash, &t, &scn.old) && !t.trial && t.event == BootEvent::Reverted,
            "{name}: {t:?}"
        );
        assert_eq!(state(&scn, &mut flash).phase, Phase::Idle, "{name}");
    }
}

#[test]
fn a_recorded_image_of_size_zero_is_never_booted() {
    for name in ["stm32l475vg", "stm32h753zi"] {
        let mut scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        scn.policy = VerifyPolicy::RecordedHash;
        // A blank device whose state names an empty image with the hash of no bytes.
        let mut flash = SimFlash::new(scn.part);
        let forged = BootState {
            installed: brickless_boot::state::InstalledImage {
                sha256: Sha256::digest([]).into(),
                ..brickless_boot::state::InstalledImage::NONE
            },
            ..BootState::FACTORY.next(Phase::Idle)
        };
        let mut store = StateStore::load(&mut flash, &scn.layout);
        store
            .write(&mut flash, &scn.layout, forged, |_, _, _| {
                Err(Error::Corrupt)
            })
            .unwrap();
        assert!(
            matches!(boot(&scn, &mut flash), BootDecision::Recovery(_)),
            "{name}: booted an empty image"
        );
    }
}

#[test]
fn a_test_upgrade_onto_an_empty_primary_is_installed_for_good() {
    for name in ["stm32l475vg", "stm32h753zi"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = SimFlash::new(scn.part);
        flash.preload(scn.layout.staging().start, &scn.new).unwrap();
        with_updater(&scn, &mut flash, |e| e.request_upgrade(UpgradeMode::Test)).unwrap();
        // Nothing to revert to: no trial, and the floor rises at once.
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}");
        assert!(!t.trial && t.event == BootEvent::Installed, "{name}: {t:?}");
        assert_eq!(
            state(&scn, &mut flash).floor_version,
            t.image.version.packed()
        );
    }
}

#[test]
fn a_plan_that_installs_garbage_is_reverted() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32f407vg"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        // Staged bytes that are no image, and a forged plan that installs them over the old
        // image (a damaged staging area or a forged record).
        let staging = scn.layout.staging().start;
        let junk: Vec<u8> = (0..scn.new.len() as u32)
            .map(|i| (i * 7 + 3) as u8)
            .collect();
        flash.preload(staging, &junk).unwrap();
        forge_swap_plan(&scn, &mut flash, 0);
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.old), "{name}: {t:?}");
        assert_eq!(t.event, BootEvent::Reverted, "{name}");
    }
}

#[test]
fn a_full_slot_image_boots_from_its_recorded_hash() {
    for name in ["stm32l475vg", "stm32l073rz"] {
        let mut scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        scn.policy = VerifyPolicy::RecordedHash;
        scn.check = Checker::Hash;
        let size = scn.layout.spec().primary.size;
        scn.old = brickless_campaign::kit::build_image(brickless_campaign::OLD_VERSION, 2, size, 9);
        let mut flash = SimFlash::new(scn.part);
        flash
            .preload(scn.layout.spec().primary.start, &scn.old)
            .unwrap();
        let first = booted(&scn, &mut flash);
        assert_eq!(first.image.size, size);
        // Recorded once, so later boots hash instead of verifying.
        let recorded = state(&scn, &mut flash).installed;
        assert_eq!(
            (recorded.size, recorded.hash),
            (size, first.image.hash),
            "{name}"
        );
        let ops = flash.op_count();
        for _ in 0..2 {
            let again = booted(&scn, &mut flash);
            assert_eq!(again.image, first.image, "{name}");
        }
        assert_eq!(
            flash.op_count(),
            ops,
            "{name}: a full-slot image is re-recorded"
        );
    }
}

#[test]
fn a_revert_source_of_another_size_than_saved_is_not_used() {
    for name in ["stm32l475vg", "stm32h753zi"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        let mut flash = scn.initial_flash();
        with_updater(&scn, &mut flash, |e| e.request_upgrade(UpgradeMode::Test)).unwrap();
        assert!(booted(&scn, &mut flash).trial);
        // A record saying the saved old image is one write unit shorter than what is there.
        let mut store = StateStore::load(&mut flash, &scn.layout);
        let trial = store.state;
        assert_eq!(trial.phase, Phase::Trial);
        let forged = BootState {
            old_size: trial.old_size - scn.layout.write_unit(),
            ..trial.next(Phase::Trial)
        };
        store
            .write(&mut flash, &scn.layout, forged, |_, _, _| {
                Err(Error::Corrupt)
            })
            .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}: {t:?}");
        assert_eq!(t.event, BootEvent::RevertImpossible, "{name}");
    }
}

#[test]
fn an_install_records_the_new_image_for_recorded_hash_boots() {
    for name in ["stm32l475vg", "stm32h753zi"] {
        for strategy in StrategyKind::ALL {
            let mut scn = scenario(name, strategy, Flow::Permanent);
            scn.policy = VerifyPolicy::RecordedHash;
            let mut flash = scn.initial_flash();
            booted(&scn, &mut flash);
            with_updater(&scn, &mut flash, |e| {
                e.request_upgrade(UpgradeMode::Permanent)
            })
            .unwrap();
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.new) && t.event == BootEvent::Installed);
            assert_eq!(
                state(&scn, &mut flash).installed.hash,
                t.image.hash,
                "{name}"
            );
            let ops = flash.op_count();
            booted(&scn, &mut flash);
            assert_eq!(
                flash.op_count(),
                ops,
                "{name}: the boot after an install wrote"
            );
        }
    }
}

/// The same state area under another strategy: each strategy's records are its own (a swap
/// plan read by an overwrite bootloader would move the wrong bytes).
#[test]
fn records_of_another_strategy_are_ignored() {
    let scn = scenario("stm32l475vg", StrategyKind::Swap, Flow::TestConfirm);
    let wu = scn.layout.write_unit() as usize;
    let spec = scn.layout.spec();
    let geometry = &scn.part.geometry;
    let other = |strategy| Layout::new(LayoutSpec { strategy, ..*spec }, geometry).unwrap();
    let layouts = [scn.layout, other(StrategyKind::Overwrite)];
    let pending = BootState {
        permanent: true,
        ..BootState::FACTORY.next(Phase::Pending)
    };
    for (i, writer) in layouts.iter().enumerate() {
        let mut rec = vec![0u8; 256];
        let len = encode_record(&pending, writer, &[], &mut rec).unwrap();
        rec.truncate(len.div_ceil(wu) * wu);
        let mut flash = scn.initial_flash();
        flash.preload(spec.state[0].start, &rec).unwrap();
        for (j, reader) in layouts.iter().enumerate() {
            let got = StateStore::load(&mut flash, reader);
            assert_eq!(
                got.found,
                i == j,
                "{} record read by {}",
                writer.strategy().name(),
                reader.strategy().name()
            );
        }
    }
}

#[test]
fn records_this_layout_did_not_write_are_ignored() {
    let scn = scenario("stm32l475vg", StrategyKind::Swap, Flow::TestConfirm);
    let wu = scn.layout.write_unit() as usize;
    let pending = BootState {
        permanent: true,
        ..BootState::FACTORY.next(Phase::Pending)
    };
    let mut rec = vec![0u8; 256];
    let len = encode_record(&pending, &scn.layout, &[], &mut rec).unwrap();
    rec.truncate(len);
    // Sanity: the untouched record is taken.
    let plant = |bytes: &[u8]| {
        let mut flash = scn.initial_flash();
        let mut b = bytes.to_vec();
        b.resize(b.len().div_ceil(wu) * wu, 0xFF);
        flash.preload(scn.layout.spec().state[0].start, &b).unwrap();
        state(&scn, &mut flash)
    };
    assert_eq!(plant(&rec).phase, Phase::Pending);
    let patches: [(&str, usize, &[u8]); 9] = [
        ("magic", 0, &[0x42, 0x4C, 0x53, 0x75]),
        ("format", 10, &[1]),
        ("strategy", 14, &[2]),
        ("unit", 32, &[0, 4, 0, 0]),
        ("unit zero", 32, &[0, 0, 0, 0]),
        ("permanent byte", 12, &[2]),
        ("old unit count", 28, &[1, 0]),
        ("new unit count", 30, &[1, 0]),
        ("length", 8, &[0x90, 0]),
    ];
    for (what, at, bytes) in patches {
        let mut bad = rec.clone();
        bad[at..at + bytes.len()].copy_from_slice(bytes);
        seal_record(&mut bad);
        assert_eq!(
            plant(&bad),
            BootState::FACTORY,
            "a record with another {what} was taken"
        );
    }
    // Plan sizes outside a move, or a mode in Idle: not canonical either.
    for odd in [
        BootState {
            old_size: 100,
            ..BootState::FACTORY.next(Phase::Idle)
        },
        BootState {
            new_size: 100,
            ..BootState::FACTORY.next(Phase::Pending)
        },
        BootState {
            permanent: true,
            ..BootState::FACTORY.next(Phase::Idle)
        },
    ] {
        let mut raw = vec![0u8; 256];
        let n = encode_record(&odd, &scn.layout, &[], &mut raw).unwrap();
        assert_eq!(plant(&raw[..n]), BootState::FACTORY, "{odd:?} was taken");
    }
}

#[test]
fn records_append_without_erasing_until_a_copy_is_full() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32l073rz"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        let mut store = StateStore::load(&mut flash, &scn.layout);
        let mut s = BootState::FACTORY;
        for _ in 0..6 {
            s = s.idle();
            store
                .write(&mut flash, &scn.layout, s, |_, _, _| Err(Error::Corrupt))
                .unwrap();
        }
        for copy in scn.layout.spec().state {
            assert_eq!(
                flash.wear(copy.start),
                Some(0),
                "{name}: a state copy was erased"
            );
        }
        assert_eq!(state(&scn, &mut flash).seq, 6);
    }
}

/// The log as a fresh boot finds it: each record goes right after the last used unit of the
/// copy (a torn unit is stepped over, not written over), and the other copy is erased only
/// when this one has no room left.
#[test]
fn a_reloaded_log_appends_right_after_its_last_used_unit() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32l073rz", "stm32f407vg"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        let wu = scn.layout.write_unit();
        let copy = scn.layout.spec().state[0];
        // Whatever follows the copy is not part of it, even when programmed.
        let after = copy.start + copy.size;
        let mut probe = vec![0u8; wu as usize];
        flash.read_abs(after, &mut probe).unwrap();
        if probe.iter().all(|&b| b == scn.layout.erased()) {
            flash.preload(after, &vec![0x3C; wu as usize]).unwrap();
        }
        flash.record_ops(true);
        let mut s = BootState::FACTORY;
        let mut next_at = copy.start;
        let mut writes = 0;
        loop {
            s = s.idle();
            let mut store = StateStore::load(&mut flash, &scn.layout);
            let before = flash.op_log().len();
            store
                .write(&mut flash, &scn.layout, s, |_, _, _| Err(Error::Corrupt))
                .unwrap();
            let ops: Vec<_> = flash.op_log()[before..].to_vec();
            if ops.iter().any(|o| o.erase) {
                // Compaction: only once the record no longer fits after the last one.
                let len = ops.iter().filter(|o| !o.erase).map(|o| o.len).sum::<u32>();
                assert!(
                    next_at + len > copy.start + copy.size,
                    "{name}: compacted after {writes} records with room left at {next_at:#x}"
                );
                break;
            }
            assert_eq!(ops[0].addr, next_at, "{name}: record {writes} misplaced");
            next_at = ops.iter().map(|o| o.addr + o.len).max().unwrap();
            writes += 1;
            if writes == 3 {
                // A torn write after the third record: one unit of garbage to step over.
                let garbage: Vec<u8> = (0..wu).map(|i| (i as u8).wrapping_mul(29) ^ 0x5A).collect();
                flash.preload(next_at, &garbage).unwrap();
                next_at += wu;
            }
            assert!(writes < 10_000, "{name}: never compacted");
        }
        assert!(writes > 4, "{name}: {writes} records before compaction");
        assert_eq!(state(&scn, &mut flash).seq, s.seq, "{name}");
    }
}

/// A record that ends exactly at the end of its copy is taken; one that runs past it (into
/// whatever follows) is not, even with a valid CRC.
#[test]
fn a_record_must_lie_inside_its_copy() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32l073rz"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let wu = scn.layout.write_unit();
        let unit = scn.layout.unit();
        // A fixed-size record, and a plan longer than that (its digests follow).
        let pending = BootState {
            permanent: true,
            ..BootState::FACTORY.next(Phase::Pending)
        };
        let plan = BootState {
            old_size: 2 * unit,
            new_size: 3 * unit - 5,
            ..BootState::FACTORY.next(Phase::Swapping)
        };
        let digests: Vec<[u8; 16]> = (0..5u8).map(|i| [i * 17 + 1; 16]).collect();
        for (state, digests) in [(pending, &[][..]), (plan, &digests[..])] {
            let mut rec = vec![0u8; 512];
            let len = encode_record(&state, &scn.layout, digests, &mut rec).unwrap();
            rec.truncate(len);
            let padded = (len as u32).div_ceil(wu) * wu;
            let copy = scn.layout.spec().state[0];
            let end = copy.start + copy.size;
            for (at, inside) in [(end - padded, true), (end - padded + wu, false)] {
                let mut flash = scn.initial_flash();
                flash.preload(at, &rec).unwrap();
                assert_eq!(
                    StateStore::load(&mut flash, &scn.layout).found,
                    inside,
                    "{name}: {:?} record at {at:#x}, copy ends at {end:#x}",
                    state.phase
                );
            }
        }
    }
}

/// A plan for images of many units is longer than the record writer's buffer: it is
/// written in several pieces, each in its place, and reads back whole.
#[test]
fn a_long_plan_is_written_and_read_back_whole() {
    use brickless_boot::state::DigestSet;
    for name in ["stm32l475vg", "stm32h753zi", "stm32l073rz"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let unit = scn.layout.unit();
        let units = scn.layout.primary_units().min(40);
        let plan = BootState {
            old_size: (units - 1) * unit + 3,
            new_size: units * unit,
            ..BootState::FACTORY.next(Phase::Swapping)
        };
        let digest = |set: DigestSet, i: u32| {
            let tag = if set == DigestSet::Old { 0x11 } else { 0x77 };
            let mut d = [0u8; 16];
            for (k, b) in d.iter_mut().enumerate() {
                *b = tag ^ (i as u8).wrapping_mul(31) ^ k as u8;
            }
            d
        };
        let mut flash = scn.initial_flash();
        let mut store = StateStore::load(&mut flash, &scn.layout);
        store
            .write(&mut flash, &scn.layout, plan, |_, set, i| {
                Ok(digest(set, i))
            })
            .unwrap();
        let back = StateStore::load(&mut flash, &scn.layout);
        assert!(back.found, "{name}: the long plan did not read back");
        assert_eq!(back.state, plan, "{name}");
        for (set, count) in [(DigestSet::Old, units), (DigestSet::New, units)] {
            for i in 0..count {
                assert_eq!(
                    back.digest(&mut flash, &scn.layout, set, i).unwrap(),
                    digest(set, i),
                    "{name}: digest {set:?} {i}"
                );
            }
        }
    }
}

/// The unit comparison that lets a copy skip units already in place (a resumed copy, or
/// identical units): equal only when every byte asked for is equal, whatever the buffer.
#[test]
fn units_compare_equal_only_when_every_byte_asked_for_is() {
    use brickless_boot::strategy::Ctx;
    let scn = scenario("stm32l475vg", StrategyKind::Overwrite, Flow::Permanent);
    let unit = scn.layout.unit();
    let (a, b) = (
        scn.layout.spec().primary.start,
        scn.layout.spec().secondary.start,
    );
    let content: Vec<u8> = (0..unit).map(|i| (i * 7 + i / 251) as u8).collect();
    let wu = scn.layout.write_unit() as usize;
    for buf_len in [2 * wu, 6 * wu, 64 * wu] {
        for differ_at in [None, Some(0), Some(wu as u32 * 3 + 1), Some(unit - 1)] {
            let mut flash = SimFlash::with_seed(scn.part, 1);
            let mut other = content.clone();
            if let Some(i) = differ_at {
                other[i as usize] ^= 0x40;
            }
            flash.preload(a, &content).unwrap();
            flash.preload(b, &other).unwrap();
            let (off_a, off_b) = (scn.layout.offset(a), scn.layout.offset(b));
            let mut buf = vec![0u8; buf_len];
            let mut platform = brickless_boot::NoPlatform;
            let mut ctx = Ctx {
                flash: &mut flash,
                layout: &scn.layout,
                buf: &mut buf,
                platform: &mut platform,
                banks: None,
            };
            assert_eq!(
                ctx.same(off_a, off_b, unit),
                differ_at.is_none(),
                "buffer {buf_len}, differing at {differ_at:?}"
            );
            if let Some(i) = differ_at.filter(|&i| i > 0) {
                // Bytes past the length asked for do not count.
                assert!(
                    ctx.same(off_a, off_b, i),
                    "buffer {buf_len}, first {i} bytes"
                );
            }
        }
    }
}

/// A swap erases only the units the images use: each primary unit the new image fills once,
/// each secondary unit the old image is saved into once, nothing beyond either image.
#[test]
fn a_swap_erases_only_the_units_the_images_use() {
    for name in CAMPAIGN_PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        let unit = scn.layout.unit();
        let (k_old, k_new) = (
            (scn.old.len() as u32).div_ceil(unit),
            (scn.new.len() as u32).div_ceil(unit),
        );
        assert!(
            k_new > k_old,
            "{name}: the flow's update is the larger image"
        );
        with_updater(&scn, &mut flash, |e| e.request_upgrade(UpgradeMode::Test)).unwrap();
        let t = booted(&scn, &mut flash);
        assert!(t.trial && runs(&flash, &t, &scn.new), "{name}");
        let spec = scn.layout.spec();
        // Up to the unit after each image, where the slot has one.
        let units = scn.layout.primary_units();
        for i in 0..=k_new.min(units - 1) {
            let want = u32::from(i < k_new);
            let got = flash.wear(spec.primary.start + i * unit);
            assert_eq!(got, Some(want), "{name}: primary unit {i} erased");
        }
        for i in 0..=k_old.min(units - 1) {
            let want = u32::from(i < k_old);
            let got = flash.wear(spec.secondary.start + i * unit);
            assert_eq!(got, Some(want), "{name}: secondary unit {i} erased");
        }
    }
}

#[test]
fn an_encoded_plan_reads_back_with_its_digests() {
    let scn = scenario("stm32l475vg", StrategyKind::Swap, Flow::TestConfirm);
    let unit = scn.layout.unit();
    let plan = BootState {
        old_size: 2 * unit,
        new_size: 3 * unit - 5,
        ..BootState::FACTORY.next(Phase::Swapping)
    };
    let digests: Vec<[u8; 16]> = (0..5u8).map(|i| [i * 17 + 1; 16]).collect();
    let mut raw = vec![0u8; 512];
    assert_eq!(
        encode_record(&plan, &scn.layout, &digests[..4], &mut raw),
        None
    );
    let n = encode_record(&plan, &scn.layout, &digests, &mut raw).unwrap();
    let wu = scn.layout.write_unit() as usize;
    let mut flash = scn.initial_flash();
    let mut padded = raw[..n].to_vec();
    padded.resize(n.div_ceil(wu) * wu, 0xFF);
    flash
        .preload(scn.layout.spec().state[0].start, &padded)
        .unwrap();
    let store = StateStore::load(&mut flash, &scn.layout);
    assert_eq!(store.state, plan);
    use brickless_boot::state::DigestSet;
    for (set, first, count) in [(DigestSet::Old, 0, 2), (DigestSet::New, 2, 3)] {
        for i in 0..count {
            let d = store.digest(&mut flash, &scn.layout, set, i).unwrap();
            assert_eq!(d, digests[first + i as usize], "{set:?} {i}");
        }
    }
}

#[test]
fn an_application_without_the_image_check_stages_and_asks() {
    for strategy in StrategyKind::ALL {
        let scn = scenario("stm32l475vg", strategy, Flow::Permanent);
        let mut flash = scn.initial_flash();
        let wu = scn.layout.write_unit() as usize;
        let mut img = scn.new.clone();
        img.resize(img.len().div_ceil(wu) * wu, scn.layout.erased());
        let mut app = Updater::unverified(&mut flash, scn.layout);
        app.erase_staging().unwrap();
        app.write_staged(0, &img).unwrap();
        app.request_upgrade_unverified(UpgradeMode::Permanent)
            .unwrap();
        assert_eq!(app.state().phase, Phase::Pending, "{}", strategy.name());
        // The bootloader verifies it before installing.
        let t = booted(&scn, &mut flash);
        assert!(
            runs(&flash, &t, &scn.new) && t.event == BootEvent::Installed,
            "{}: {t:?}",
            strategy.name()
        );
    }
}
