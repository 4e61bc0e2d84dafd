//! Multi-image: the STM32H755's Cortex-M7 and Cortex-M4 images as one group in one slot pair
//! (`brickless_boot::multi`). Every flow cut at every operation and long histories with
//! single and double cuts: the campaign compares every booted group byte for byte with the
//! old and the new release, so a boot that runs one image updated without the other counts
//! as an unverified boot. Then what the group check refuses: unmet DEPENDENCY TLVs (ours and
//! imgtool's), one image's security counter going down, a tampered second image.
use brickless_boot::multi::{GroupCheck, GroupImage};
use brickless_boot::{
    BootDecision, Error, ImageCheck, ImageVersion, StrategyKind, Updater, UpgradeMode,
};
use brickless_campaign::history::{History, HistoryOptions, HistoryPlan};
use brickless_campaign::kit::{group_bytes, Checker};
use brickless_campaign::{mcuboot_kit, run_row, CutPlan, Flow, Kit, RowReport, Scenario};
use brickless_flash::part;
use brickless_flash_model::SimFlash;
use brickless_image::Dependency;

const H755: &str = "stm32h755zi";
const STRATEGIES: [StrategyKind; 2] = [StrategyKind::Swap, StrategyKind::Overwrite];

fn check(row: &RowReport) {
    println!("{row}");
    assert_eq!(row.bricks, 0, "{row:#?}");
    assert_eq!(row.unverified_boots, 0, "{row:#?}");
}

#[test]
fn group_the_h755_layout_puts_the_m4_image_at_bank_2() {
    let scn = Scenario::group(part(H755).unwrap(), StrategyKind::Swap, Flow::TestConfirm).unwrap();
    let Checker::Group {
        images, primary, ..
    } = scn.check
    else {
        panic!("a group scenario checks a group")
    };
    assert_eq!(primary, scn.layout.spec().primary.start);
    assert_eq!(primary + images[1].offset, 0x0810_0000, "BOOT_CM4_ADD0");
    assert_eq!(images[0].offset, 0);
    assert!(images[0].size >= 512 * 1024 && images[1].size >= 128 * 1024);
    assert!(scn.layout.spec().primary.end() <= scn.layout.spec().secondary.start);
}

#[test]
fn group_every_flow_survives_every_cut() {
    for strategy in STRATEGIES {
        for flow in Flow::ALL {
            let scn = Scenario::group(part(H755).unwrap(), strategy, flow).unwrap();
            let row = run_row(&scn, CutPlan::Every, &mut |_, _| {});
            check(&row);
            let refused = strategy == StrategyKind::Overwrite
                && !matches!(flow, Flow::Permanent | Flow::Downgrade);
            assert_eq!(row.cut_points == 0, refused, "{row:#?}");
        }
    }
}

#[test]
fn group_histories_survive_sampled_single_and_double_cuts() {
    for kit in [Kit::Fast, Kit::Mcuboot] {
        for strategy in STRATEGIES {
            let opts = HistoryOptions {
                group: true,
                kit,
                steps: if kit == Kit::Fast { 64 } else { 24 },
                ..HistoryOptions::default()
            };
            let h = History::generate(part(H755).unwrap(), strategy, &opts).unwrap();
            let plan = HistoryPlan::Sample {
                ops: if kit == Kit::Fast { 160 } else { 40 },
                offset: 1,
                pairs: if kit == Kit::Fast { 40 } else { 10 },
            };
            let out = h.run(plan, 1, &mut |_, _| {});
            assert_eq!(out.reference.failure, None);
            assert_eq!(out.reference.steps_done(), h.steps.len());
            check(&out.row);
            assert!(out.row.cut_points > 0);
        }
    }
}

/// A group release: image 0 of `m7` version and counter with its dependencies, image 1 the
/// same, signed by the campaign kit.
fn release(
    scn: &Scenario,
    images: [GroupImage; 2],
    m7: (ImageVersion, u32, &[Dependency]),
    m4: (ImageVersion, u32, &[Dependency]),
) -> Vec<u8> {
    let k = mcuboot_kit();
    let (unit, wu) = (scn.layout.unit(), scn.layout.write_unit());
    let a = k.build_with(m7.0, m7.1, unit, 21, wu, m7.2);
    let b = k.build_with(m4.0, m4.1, unit / 2, 22, wu, m4.2);
    group_bytes(&images, &[a, b], scn.layout.erased())
}

fn v(major: u8, minor: u8) -> ImageVersion {
    ImageVersion::new(major, minor, 0, 0)
}

fn needs(id: u8, min: ImageVersion) -> Dependency {
    Dependency {
        image_id: id,
        min_version: min,
    }
}

/// Stages `bytes` as the update on a fresh H755 (old release installed) and asks for it.
fn stage_and_request(bytes: &[u8], verified: bool) -> (Scenario, SimFlash, Result<(), Error>) {
    let scn = Scenario::group(part(H755).unwrap(), StrategyKind::Swap, Flow::Permanent).unwrap();
    let mut flash = scn.initial_flash();
    let mut up = Updater::new(&mut flash, scn.layout, scn.check);
    up.erase_staging().unwrap();
    let wu = scn.layout.write_unit() as usize;
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(wu) * wu, 0xFF);
    up.write_staged(0, &padded).unwrap();
    let result = if verified {
        up.request_upgrade(UpgradeMode::Permanent).map(|_| ())
    } else {
        up.request_upgrade_unverified(UpgradeMode::Permanent)
    };
    (scn, flash, result)
}

/// The bootloader's decision after an unverified request: the old release must still run,
/// its bytes untouched.
fn old_release_runs(scn: &Scenario, flash: &mut SimFlash) {
    let mut buf = vec![0u8; 4096];
    let d = brickless_campaign::boot_device(flash, scn.layout, scn.check, scn.policy, &mut buf)
        .unwrap();
    let BootDecision::Boot(t) = d else {
        panic!("{d:?}")
    };
    let mut got = vec![0u8; scn.old.len()];
    flash
        .read_abs(scn.layout.spec().primary.start, &mut got)
        .unwrap();
    assert_eq!(got, scn.old, "the old release runs, both images");
    assert_eq!(t.image.size as usize, scn.old.len());
}

fn group_images(scn: &Scenario) -> [GroupImage; 2] {
    match scn.check {
        Checker::Group { images, .. } => images,
        _ => unreachable!(),
    }
}

#[test]
fn group_an_unmet_dependency_refuses_the_whole_group() {
    let scn = Scenario::group(part(H755).unwrap(), StrategyKind::Swap, Flow::Permanent).unwrap();
    let images = group_images(&scn);
    // The new M7 image needs M4 2.0, but the M4 image staged with it is 1.9.
    let bytes = release(
        &scn,
        images,
        (v(2, 0), 3, &[needs(1, v(2, 0))]),
        (v(1, 9), 3, &[]),
    );
    let (_, _, r) = stage_and_request(&bytes, true);
    assert_eq!(r, Err(Error::InvalidImage));
    let (scn, mut flash, r) = stage_and_request(&bytes, false);
    assert_eq!(r, Ok(()));
    old_release_runs(&scn, &mut flash);
    // Met (M4 at 2.0, and a dependency on the M7 image too): accepted.
    let bytes = release(
        &scn,
        images,
        (v(2, 0), 3, &[needs(1, v(2, 0))]),
        (v(2, 0), 3, &[needs(0, v(1, 5))]),
    );
    let (_, _, r) = stage_and_request(&bytes, true);
    assert_eq!(r, Ok(()));
    // A dependency on an image the group does not have is never met.
    let bytes = release(
        &scn,
        images,
        (v(2, 0), 3, &[needs(2, v(0, 1))]),
        (v(2, 0), 3, &[]),
    );
    let (_, _, r) = stage_and_request(&bytes, true);
    assert_eq!(r, Err(Error::InvalidImage));
}

#[test]
fn group_each_image_keeps_its_own_anti_rollback_floor() {
    let scn = Scenario::group(part(H755).unwrap(), StrategyKind::Swap, Flow::Permanent).unwrap();
    let images = group_images(&scn);
    // The old release carries counter 2 in both images: the M7 image going up does not
    // carry the M4 image going down.
    let bytes = release(&scn, images, (v(2, 0), 9, &[]), (v(2, 0), 1, &[]));
    let (_, _, r) = stage_and_request(&bytes, true);
    assert_eq!(r, Err(Error::Downgrade));
    let (scn, mut flash, r) = stage_and_request(&bytes, false);
    assert_eq!(r, Ok(()));
    old_release_runs(&scn, &mut flash);
    let lanes = GroupCheck::<(), 2>::pack([9, 1]).unwrap();
    assert_eq!(GroupCheck::<(), 2>::unpack(lanes, 0), 9);
    assert_eq!(GroupCheck::<(), 2>::unpack(lanes, 1), 1);
    let g = GroupCheck {
        check: Checker::Hash,
        images,
        primary: 0,
    };
    let floor = GroupCheck::<(), 2>::pack([2, 2]).unwrap();
    assert!(!ImageCheck::<SimFlash>::counter_passes(&g, lanes, floor));
    assert!(ImageCheck::<SimFlash>::counter_passes(
        &g,
        GroupCheck::<(), 2>::pack([2, 3]).unwrap(),
        floor
    ));
    assert_eq!(
        ImageCheck::<SimFlash>::raise_floor(&g, floor, lanes),
        GroupCheck::<(), 2>::pack([9, 2]).unwrap()
    );
    assert_eq!(
        GroupCheck::<(), 2>::pack([0x1_0000, 0]),
        None,
        "16-bit lanes"
    );
}

#[test]
fn group_a_tampered_second_image_refuses_the_group() {
    let scn = Scenario::group(part(H755).unwrap(), StrategyKind::Swap, Flow::Permanent).unwrap();
    let images = group_images(&scn);
    let mut bytes = release(&scn, images, (v(2, 0), 3, &[]), (v(2, 0), 3, &[]));
    let at = images[1].offset as usize + 0x100;
    bytes[at] ^= 1;
    let (_, _, r) = stage_and_request(&bytes, true);
    assert_eq!(r, Err(Error::InvalidImage));
    let (scn, mut flash, _) = stage_and_request(&bytes, false);
    old_release_runs(&scn, &mut flash);
}

#[test]
fn group_imgtool_dependencies_are_honoured() {
    use std::process::Command;
    let ok = Command::new("imgtool")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        brickless_test_support::missing_peer("imgtool");
        return;
    }
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../keys/insecure-dev-ed25519.pem"
    );
    let pem = std::fs::read_to_string(key).unwrap();
    let keys: &'static [brickless_image::PublicKey] =
        Box::leak(Box::new([brickless_image::keys::load_pem(&pem)
            .unwrap()
            .public_key()]));
    let dir = std::env::temp_dir().join(format!("brickless-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sign = |name: &str, version: &str, deps: Option<&str>| {
        let raw = dir.join(format!("{name}.bin"));
        std::fs::write(&raw, brickless_test_support::pseudo_random_bytes(3000, 5)).unwrap();
        let out = dir.join(format!("{name}-signed.bin"));
        let mut cmd = Command::new("imgtool");
        cmd.args([
            "sign",
            "--key",
            key,
            "--header-size",
            "0x400",
            "--pad-header",
        ])
        .args([
            "--align",
            "32",
            "--slot-size",
            "0x20000",
            "--version",
            version,
        ]);
        if let Some(d) = deps {
            cmd.args(["--dependencies", d]);
        }
        let run = cmd.arg(&raw).arg(&out).output().unwrap();
        assert!(
            run.status.success(),
            "imgtool sign {name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::fs::read(out).unwrap()
    };
    let scn = Scenario::group(part(H755).unwrap(), StrategyKind::Swap, Flow::Permanent).unwrap();
    let images = group_images(&scn);
    let check = |m7: &[u8], m4: &[u8]| {
        let bytes = group_bytes(&images, &[m7.to_vec(), m4.to_vec()], 0xFF);
        let mut flash = SimFlash::new(part(H755).unwrap());
        let at = scn.layout.staging().start;
        flash.preload(at, &bytes).unwrap();
        let mut g = GroupCheck {
            check: Checker::Mcuboot(keys),
            images,
            primary: scn.layout.spec().primary.start,
        };
        g.check(&mut flash, scn.layout.offset(at), scn.layout.staging().size)
    };
    let m4_old = sign("m4-old", "1.9.0", None);
    let m4_new = sign("m4-new", "2.0.0", Some("(0,2.0.0)"));
    let m7 = sign("m7", "2.0.0", Some("(1,2.0.0)"));
    let group = check(&m7, &m4_new).expect("dependencies met: the group verifies");
    assert_eq!(group.version, v(2, 0));
    assert_eq!(
        group.size,
        images[1].offset + u32::try_from(m4_new.len()).unwrap()
    );
    assert!(check(&m7, &m4_old).is_none(), "M7 needs M4 2.0.0");
    let m7_old = sign("m7-old", "1.5.0", None);
    assert!(check(&m7_old, &m4_new).is_none(), "M4 needs M7 2.0.0");
    std::fs::remove_dir_all(&dir).ok();
}
