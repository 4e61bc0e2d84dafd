//! Interop with the real imgtool: an update it signs and pads with a trailer (`--pad` asks
//! for a test swap, `--pad --confirm` for a permanent one), written byte for byte into the
//! staging area (the MCUboot secondary slot) as an application's upload would, drives the
//! engine like MCUboot's `boot_set_pending`: swap-type table row 2 (TEST) gives a trial that
//! reverts unless confirmed, row 3 (PERM) installs for good.
mod common;

use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::trailer::{self, Flag, Magic, Trailer};
use brickless_boot::{default_layout, BootDecision, BootEvent, BootLoader, Layout, StrategyKind};
use brickless_flash::part;
use brickless_flash_model::SimFlash;
use brickless_image::PublicKey;
use brickless_test_support::pseudo_random_bytes;
use common::*;

/// Parts by write unit (8, 16, 32, and 4 on a flash that erases to 0x00), with imgtool's
/// `--align`, `--max-align` and `--erased-val` for them.
const PARTS: [(&str, u32, u32, &str); 4] = [
    ("stm32l475vg", 8, 8, "0xff"),
    ("stm32h7a3zi", 16, 16, "0xff"),
    ("stm32h753zi", 32, 32, "0xff"),
    ("stm32l073rz", 4, 8, "0"),
];

fn boot(flash: &mut SimFlash, layout: Layout, keys: &[PublicKey]) -> brickless_boot::BootTarget {
    let mut buf = vec![0u8; 4096.min(layout.unit() as usize)];
    let check = McubootCheck { keys };
    match BootLoader::new(flash, layout, check, &mut buf)
        .unwrap()
        .boot()
        .unwrap()
    {
        BootDecision::Boot(t) => t,
        other => panic!("expected a boot, got {other:?}"),
    }
}

/// Whether the primary slot holds `image`'s bytes for the booted size.
fn runs(flash: &SimFlash, t: &brickless_boot::BootTarget, image: &[u8]) -> bool {
    let mut got = vec![0u8; t.image.size as usize];
    flash.read_abs(t.address, &mut got).is_ok() && got[..] == image[..t.image.size as usize]
}

/// Writes `bytes` at an absolute address in 4 KiB programs (an application's upload).
fn upload(flash: &mut SimFlash, at: u32, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        flash.program_abs(at + (i * 4096) as u32, chunk).unwrap();
    }
}

#[test]
fn imgtool_padded_updates_drive_the_swap_type_table() {
    let Some(imgtool) = imgtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let (old_bin, new_bin) = (dir.path().join("old.bin"), dir.path().join("new.bin"));
    std::fs::write(&old_bin, pseudo_random_bytes(3001, 1)).unwrap();
    std::fs::write(&new_bin, pseudo_random_bytes(5003, 2)).unwrap();

    let mut cmds = vec![sargs(&[&"keygen", &"-t", &"ed25519", &"-k", &key])];
    let mut outputs = Vec::new();
    for (name, wu, max_align, erased) in PARTS {
        let layout = default_layout(&part(name).unwrap().geometry, StrategyKind::Swap).unwrap();
        let sign = |input: &std::path::Path, version: &str, slot: u32, extra: &[&str], out| {
            let mut v = sargs(&[
                &"sign",
                &"-k",
                &key,
                &"-v",
                &version,
                &"-H",
                &"0x200",
                &"--pad-header",
                &"-S",
                &slot.to_string(),
                &"--align",
                &wu.to_string(),
                &"--max-align",
                &max_align.to_string(),
                &"-R",
                &erased,
            ]);
            v.extend(extra.iter().map(|s| s.to_string()));
            v.extend(sargs(&[&input, &out]));
            v
        };
        let old = dir.path().join(format!("{name}-old.bin"));
        let test = dir.path().join(format!("{name}-test.bin"));
        let perm = dir.path().join(format!("{name}-perm.bin"));
        let staging = layout.staging().size;
        cmds.push(sign(
            &old_bin,
            "1.2.0",
            layout.spec().primary.size,
            &[],
            &old,
        ));
        cmds.push(sign(&new_bin, "1.3.0", staging, &["--pad"], &test));
        cmds.push(sign(
            &new_bin,
            "1.3.0",
            staging,
            &["--pad", "--confirm"],
            &perm,
        ));
        outputs.push((name, layout, old, test, perm));
    }
    imgtool.batch_ok(cmds);
    let pem = std::fs::read_to_string(&key).unwrap();
    let keys = [brickless_image::keys::load_pem(&pem).unwrap().public_key()];

    for (name, layout, old, test, perm) in outputs {
        let old = std::fs::read(old).unwrap();
        let p = part(name).unwrap();
        let fresh = || {
            let mut flash = SimFlash::new(p);
            flash.preload(layout.spec().primary.start, &old).unwrap();
            flash
        };
        let primary = Trailer::primary(&layout).unwrap();
        let secondary = Trailer::staging(&layout).unwrap();

        // Row 2: `--pad` leaves image_ok erased: a test swap.
        let test = std::fs::read(test).unwrap();
        assert_eq!(
            test.len() as u32,
            layout.staging().size,
            "{name}: padded to the slot"
        );
        let mut flash = fresh();
        upload(&mut flash, layout.staging().start, &test);
        let asked = secondary.read(&mut flash);
        assert_eq!(
            (asked.magic, asked.image_ok),
            (Magic::Good, Flag::Unset),
            "{name}"
        );
        let t = boot(&mut flash, layout, &keys);
        assert!(runs(&flash, &t, &test), "{name}: the trial runs the update");
        assert_eq!(
            (t.trial, t.event),
            (true, BootEvent::TrialStarted),
            "{name}"
        );
        assert!(!trailer::is_confirmed(&primary.read(&mut flash)), "{name}");
        assert_ne!(
            secondary.read(&mut flash).magic,
            Magic::Good,
            "{name}: taken"
        );
        // Unconfirmed: reverted at the next reset, then nothing more happens.
        let mut reverting = flash.clone();
        let t = boot(&mut reverting, layout, &keys);
        assert_eq!(t.event, BootEvent::Reverted, "{name}");
        assert!(runs(&reverting, &t, &old), "{name}");
        let ops = reverting.op_count();
        let t = boot(&mut reverting, layout, &keys);
        assert!(
            t.event == BootEvent::None && runs(&reverting, &t, &old),
            "{name}"
        );
        assert_eq!(reverting.op_count(), ops, "{name}: settled");
        // Confirmed the way `boot_set_confirmed` does it: kept.
        primary
            .write_byte(&mut flash, primary.image_ok(), trailer::FLAG_SET)
            .unwrap();
        let t = boot(&mut flash, layout, &keys);
        assert!(!t.trial && runs(&flash, &t, &test), "{name}: kept");

        // Row 3: `--pad --confirm` sets image_ok: a permanent swap.
        let perm = std::fs::read(perm).unwrap();
        let mut flash = fresh();
        upload(&mut flash, layout.staging().start, &perm);
        let asked = secondary.read(&mut flash);
        assert_eq!(
            (asked.magic, asked.image_ok),
            (Magic::Good, Flag::Set),
            "{name}"
        );
        let t = boot(&mut flash, layout, &keys);
        assert!(runs(&flash, &t, &perm), "{name}: installed");
        assert_eq!((t.trial, t.event), (false, BootEvent::Installed), "{name}");
        assert!(trailer::is_confirmed(&primary.read(&mut flash)), "{name}");
        assert_ne!(
            secondary.read(&mut flash).magic,
            Magic::Good,
            "{name}: taken"
        );
        let ops = flash.op_count();
        let t = boot(&mut flash, layout, &keys);
        assert!(
            t.event == BootEvent::None && runs(&flash, &t, &perm),
            "{name}"
        );
        assert_eq!(flash.op_count(), ops, "{name}: settled");
    }
}
