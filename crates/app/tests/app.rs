//! The application side over the flash model, with real signed images and the real check:
//! what `App` stages and asks for is what the bootloader installs, trials confirm or revert,
//! damaged images and staging during a trial change nothing, and the mailbox carries the
//! boot info as the bootloader writes it.
use brickless_app::mailbox::{BootEvent, BootInfo, Handoff, Request, ResetCause};
use brickless_app::{App, Error, ImageVersion, Phase, UpgradeMode};
use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{default_layout, BootDecision, BootLoader, BootTarget, Layout, StrategyKind};
use brickless_campaign::kit::McubootKit;
use brickless_flash_model::SimFlash;

/// Parts with different write units, sector sizes and erased values (L0 erases to 0x00).
const PARTS: [&str; 3] = ["stm32l475vg", "stm32h753zi", "stm32l073rz"];

/// Chunk sizes an odd transport might deliver (none a multiple of a write unit but 1 and 64).
const CHUNKS: [usize; 9] = [1, 7, 13, 250, 3, 333, 64, 1021, 5];

struct Rig {
    flash: SimFlash,
    layout: Layout,
    kit: McubootKit,
}

impl Rig {
    /// A device with `v1` programmed in the primary slot at the factory.
    fn new(part: &str, strategy: StrategyKind) -> (Rig, Vec<u8>) {
        let part = brickless_flash::part(part).unwrap();
        let mut rig = Rig {
            flash: SimFlash::new(part),
            layout: default_layout(&part.geometry, strategy).unwrap(),
            kit: McubootKit::new(),
        };
        let v1 = rig.image(1, 5_000);
        let primary = rig.layout.spec().primary.start;
        rig.flash.preload(primary, &v1).unwrap();
        (rig, v1)
    }

    fn image(&self, major: u8, size: u32) -> Vec<u8> {
        self.kit.build(
            ImageVersion::new(major, 0, 0, 0),
            0,
            size,
            u64::from(major),
            self.layout.write_unit(),
        )
    }

    fn app(&mut self) -> App<&mut SimFlash, McubootCheck<'static>> {
        App::new(
            &mut self.flash,
            self.layout,
            McubootCheck {
                keys: self.kit.keys,
            },
        )
    }

    /// A reset: a fresh bootloader decides.
    fn boot(&mut self) -> BootDecision {
        let mut buf = [0u8; 1024];
        BootLoader::new(
            &mut self.flash,
            self.layout,
            McubootCheck {
                keys: self.kit.keys,
            },
            &mut buf,
        )
        .unwrap()
        .boot()
        .unwrap()
    }

    fn booted(&mut self) -> BootTarget {
        match self.boot() {
            BootDecision::Boot(t) => t,
            other => panic!("expected a boot, got {other:?}"),
        }
    }

    /// The primary slot holds exactly `image` from its start.
    fn runs(&self, image: &[u8]) -> bool {
        let mut got = vec![0u8; image.len()];
        self.flash
            .read_abs(self.layout.spec().primary.start, &mut got)
            .is_ok()
            && got == image
    }

    fn staging_bytes(&self) -> Vec<u8> {
        let r = self.layout.staging();
        let mut got = vec![0u8; r.size as usize];
        self.flash.read_abs(r.start, &mut got).unwrap();
        got
    }
}

/// Streams `image` through `App::stage_write` in chunks of odd sizes.
fn stage<F, C>(app: &mut App<F, C>, image: &[u8]) -> Result<(), Error>
where
    F: embedded_storage::nor_flash::NorFlash,
{
    let mut off = 0;
    for &n in CHUNKS.iter().cycle() {
        if off == image.len() {
            break;
        }
        let end = (off + n).min(image.len());
        app.stage_write(off as u32, &image[off..end])?;
        off = end;
        assert_eq!(app.staged_len(), off as u32);
    }
    Ok(())
}

#[test]
fn a_test_upgrade_staged_through_the_app_is_installed_as_a_trial_and_kept_once_confirmed() {
    for part in PARTS {
        let (mut rig, v1) = Rig::new(part, StrategyKind::Swap);
        assert_eq!(rig.booted().event, BootEvent::None, "{part}: factory image");
        assert!(rig.runs(&v1));
        let v2 = rig.image(2, 9_000);

        let mut app = rig.app();
        stage(&mut app, &v2).unwrap();
        let info = app.stage_finish(UpgradeMode::Test).unwrap();
        assert_eq!(info.version, ImageVersion::new(2, 0, 0, 0));
        assert_eq!(app.state().phase, Phase::Pending);

        let t = rig.booted();
        assert_eq!(
            (t.event, t.trial),
            (BootEvent::TrialStarted, true),
            "{part}"
        );
        assert_eq!(t.image.version.major, 2);
        assert!(rig.runs(&v2), "{part}: v2 installed byte for byte");

        let mut app = rig.app();
        assert_eq!(app.state().phase, Phase::Trial);
        app.confirm().unwrap();
        let state = app.state();
        assert_eq!(state.phase, Phase::Idle, "{part}: confirmed");
        assert_eq!(state.floor_version, ImageVersion::new(2, 0, 0, 0).packed());

        let t = rig.booted();
        assert_eq!((t.event, t.trial), (BootEvent::None, false), "{part}");
        assert_eq!(t.image.version.major, 2);
        assert!(rig.runs(&v2));
        assert_eq!(rig.app().state().phase, Phase::Idle);
    }
}

#[test]
fn an_unconfirmed_trial_is_reverted_at_the_next_boot() {
    for part in PARTS {
        let (mut rig, v1) = Rig::new(part, StrategyKind::Swap);
        let v2 = rig.image(2, 7_777);
        let mut app = rig.app();
        stage(&mut app, &v2).unwrap();
        app.stage_finish(UpgradeMode::Test).unwrap();
        assert_eq!(rig.booted().event, BootEvent::TrialStarted, "{part}");

        // The trial image never confirms: the next reset puts v1 back.
        let t = rig.booted();
        assert_eq!((t.event, t.trial), (BootEvent::Reverted, false), "{part}");
        assert_eq!(t.image.version.major, 1);
        assert!(rig.runs(&v1), "{part}: v1 back byte for byte");
        assert_eq!(rig.app().state().phase, Phase::Idle);
        assert_eq!(rig.booted().event, BootEvent::None);
    }
}

#[test]
fn a_permanent_request_installs_with_no_trial() {
    for part in PARTS {
        for strategy in [StrategyKind::Swap, StrategyKind::Overwrite] {
            let (mut rig, _) = Rig::new(part, strategy);
            let v2 = rig.image(2, 6_001);
            let mut app = rig.app();
            stage(&mut app, &v2).unwrap();
            if strategy == StrategyKind::Overwrite {
                // The engine's rule, not the app's: overwrite cannot revert.
                assert_eq!(
                    app.request_upgrade(UpgradeMode::Test),
                    Err(Error::RevertUnsupported)
                );
            }
            app.request_upgrade(UpgradeMode::Permanent).unwrap();
            let t = rig.booted();
            assert_eq!(
                (t.event, t.trial),
                (BootEvent::Installed, false),
                "{part} {strategy:?}"
            );
            assert!(rig.runs(&v2));
            let mut app = rig.app();
            assert_eq!(app.state().phase, Phase::Idle);
            assert_eq!(app.confirm(), Ok(()), "nothing to confirm: a no-op");
            let t = rig.booted();
            assert_eq!((t.event, t.image.version.major), (BootEvent::None, 2));
        }
    }
}

#[test]
fn an_unverified_app_stages_and_requests_and_the_bootloader_installs() {
    let (mut rig, _) = Rig::new("stm32l475vg", StrategyKind::Swap);
    let v2 = rig.image(2, 4_321);
    let mut app = App::unverified(&mut rig.flash, rig.layout);
    stage(&mut app, &v2).unwrap();
    app.stage_finish_unverified(UpgradeMode::Permanent).unwrap();
    assert_eq!(app.state().phase, Phase::Pending);
    let t = rig.booted();
    assert_eq!((t.event, t.image.version.major), (BootEvent::Installed, 2));
    assert!(rig.runs(&v2));
}

#[test]
fn a_damaged_staged_image_is_refused_and_the_next_boot_changes_nothing() {
    for part in PARTS {
        let (mut rig, v1) = Rig::new(part, StrategyKind::Swap);
        let before = rig.booted();
        let mut v2 = rig.image(2, 8_000);
        let mid = v2.len() / 2;
        v2[mid] ^= 0x01;

        let mut app = rig.app();
        stage(&mut app, &v2).unwrap();
        assert_eq!(
            app.stage_finish(UpgradeMode::Test),
            Err(Error::InvalidImage),
            "{part}"
        );
        assert_eq!(app.state().phase, Phase::Idle, "nothing recorded");
        let t = rig.booted();
        assert_eq!(t, before, "{part}: the same image, the same boot");
        assert!(rig.runs(&v1));

        // Asked unverified, the bootloader refuses it instead and drops the request.
        let mut app = App::unverified(&mut rig.flash, rig.layout);
        stage(&mut app, &v2).unwrap();
        app.stage_finish_unverified(UpgradeMode::Test).unwrap();
        assert_eq!(app.state().phase, Phase::Pending);
        let t = rig.booted();
        assert_eq!(t, before, "{part}: still the same image");
        assert!(rig.runs(&v1));
        assert_eq!(
            rig.app().state().phase,
            Phase::Idle,
            "{part}: request dropped"
        );
    }
}

#[test]
fn staging_during_a_trial_is_refused_and_touches_no_flash() {
    for part in PARTS {
        let (mut rig, _) = Rig::new(part, StrategyKind::Swap);
        let v2 = rig.image(2, 5_500);
        let mut app = rig.app();
        stage(&mut app, &v2).unwrap();
        app.stage_finish(UpgradeMode::Test).unwrap();
        assert_eq!(rig.booted().event, BootEvent::TrialStarted);

        let staging = rig.staging_bytes();
        let ops = rig.flash.op_count();
        let v3 = rig.image(3, 5_500);
        let mut app = rig.app();
        assert_eq!(
            app.stage_write(0, &v3[..100]),
            Err(Error::StagingLocked),
            "{part}"
        );
        assert_eq!(app.staged_len(), 0);
        assert_eq!(stage(&mut app, &v3), Err(Error::StagingLocked));
        assert_eq!(app.state().phase, Phase::Trial);
        assert_eq!(rig.flash.op_count(), ops, "{part}: no erase, no write");
        assert_eq!(
            rig.staging_bytes(),
            staging,
            "{part}: the revert image intact"
        );
        // And the trial still reverts.
        assert_eq!(rig.booted().event, BootEvent::Reverted);
    }
}

#[test]
fn chunks_out_of_order_or_past_the_staging_area_change_nothing() {
    let (mut rig, _) = Rig::new("stm32h753zi", StrategyKind::Swap);
    let v2 = rig.image(2, 3_000);
    let size = rig.layout.staging().size;
    let mut app = rig.app();
    app.stage_write(0, &v2[..100]).unwrap();
    assert_eq!(app.stage_write(50, &v2[50..60]), Err(Error::OutOfRange));
    assert_eq!(app.stage_write(101, &v2[101..200]), Err(Error::OutOfRange));
    assert_eq!(
        app.stage_write(100, &vec![0u8; size as usize]),
        Err(Error::OutOfRange)
    );
    assert_eq!(app.staged_len(), 100, "the stream stands where it was");
    app.stage_write(100, &v2[100..]).unwrap();
    app.stage_finish(UpgradeMode::Permanent).unwrap();
    let t = rig.booted();
    assert_eq!((t.event, t.image.version.major), (BootEvent::Installed, 2));
    assert!(rig.runs(&v2));
}

#[test]
fn a_restarted_upload_replaces_the_first_one() {
    let (mut rig, _) = Rig::new("stm32l475vg", StrategyKind::Swap);
    let v2 = rig.image(2, 6_000);
    let v3 = rig.image(3, 4_000);
    let mut app = rig.app();
    // Half of v2, then the upload starts over with v3.
    app.stage_write(0, &v2[..3_001]).unwrap();
    stage(&mut app, &v3).unwrap();
    app.stage_finish(UpgradeMode::Permanent).unwrap();
    let t = rig.booted();
    assert_eq!(t.image.version.major, 3);
    assert!(rig.runs(&v3));
}

#[test]
fn boot_info_round_trips_through_the_mailbox_as_the_bootloader_writes_it() {
    let (mut rig, _) = Rig::new("stm32l475vg", StrategyKind::Swap);
    let v2 = rig.image(2, 6_000);
    let mut app = rig.app();
    stage(&mut app, &v2).unwrap();
    app.stage_finish(UpgradeMode::Test).unwrap();
    let target = rig.booted();

    // RAM after power-on: garbage, no info, no request.
    let mut ram = [0x6B8B_4567u32; 16];
    let mut mailbox = Handoff::new(&mut ram);
    assert_eq!(mailbox.boot_info(), None);
    assert_eq!(mailbox.take_request(), Request::None);
    assert_eq!(mailbox.reset_count(), 0);

    // The bootloader: count the resets, then write the info before the jump.
    assert_eq!(mailbox.bump_reset_count(), 1);
    assert_eq!(mailbox.bump_reset_count(), 2);
    mailbox.clear_reset_count();
    assert_eq!(mailbox.reset_count(), 0, "cleared after the window");
    assert_eq!(mailbox.bump_reset_count(), 1, "counting starts over");
    mailbox.clear_reset_count();
    let bootloader = ImageVersion::new(0, 1, 0, 0);
    let info = BootInfo::new(bootloader, &target, ResetCause::Software);
    mailbox.write_boot_info(&info);

    // The application reads it.
    let got = Handoff::new(&mut ram).boot_info().unwrap();
    assert_eq!(got, info);
    assert_eq!(got.slot, rig.layout.spec().primary.start);
    assert_eq!(got.image_version, ImageVersion::new(2, 0, 0, 0));
    assert_eq!(got.image_size, target.image.size);
    assert!(got.trial);
    assert_eq!(got.event, BootEvent::TrialStarted);
    assert_eq!(got.reset_cause, ResetCause::Software);
    assert_eq!(got.bootloader_version, bootloader);

    // The application asks for recovery; the bootloader serves it once.
    let mut mailbox = Handoff::new(&mut ram);
    mailbox.request_recovery();
    assert_eq!(mailbox.request(), Request::Recovery);
    assert_eq!(
        mailbox.boot_info(),
        Some(info),
        "the request leaves the info"
    );
    assert_eq!(mailbox.take_request(), Request::Recovery);
    assert_eq!(mailbox.take_request(), Request::None);

    // A damaged info word is not believed.
    ram[5] ^= 1 << 7;
    assert_eq!(Handoff::new(&mut ram).boot_info(), None);
}
