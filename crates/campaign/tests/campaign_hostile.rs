//! Hostile state: random garbage, torn units and well-formed records with random fields in the
//! state area and the slot trailers never brick the device: it boots a verified image (or, when
//! no slot holds one, says recovery), and updates still work afterwards.
use brickless_boot::layout::DIGEST_LEN;
use brickless_boot::state::{BootState, Phase, StateStore};
use brickless_boot::{BootLoader, StrategyKind};
use brickless_campaign::{run_flow, settle, Flow, Scenario, Which, CAMPAIGN_PARTS};
use brickless_flash::part;
use brickless_flash_model::{CutPhase, CutPoint, SimFlash};
use embedded_storage::nor_flash::NorFlash;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Programs `len` random bytes at `addr` (absolute), tearing the write with probability 1/2.
fn scribble(flash: &mut SimFlash, rng: &mut Rng, addr: u32, len: u32) {
    let unit = flash.geometry().write_unit;
    let len = len.div_ceil(unit) * unit;
    let data = rng.bytes(len as usize);
    if rng.next() % 2 == 0 {
        flash.arm_cut(CutPoint::new(flash.op_count(), CutPhase::Torn));
    }
    let off = addr - flash.geometry().base();
    let _ = flash.write(off, &data); // may refuse a second program: that is part of the game
    flash.disarm_cut();
    flash.power_cycle();
}

fn hostile(scn: &Scenario, seed: u64) -> SimFlash {
    let mut rng = Rng(seed);
    let mut flash = scn.initial_flash();
    let spec = *scn.layout.spec();
    let unit = flash.geometry().write_unit;
    for copy in spec.state {
        // Raw garbage, preloaded (random length, random place) and torn writes.
        let at = copy.start + (rng.next() as u32 % (copy.size / unit)) * unit;
        let len = (rng.next() as u32 % 512).min(copy.end() - at);
        flash.preload(at, &rng.bytes(len as usize)).unwrap();
        for _ in 0..3 {
            let at = copy.start + (rng.next() as u32 % (copy.size / unit)) * unit;
            let len = (rng.next() as u32 % 96 + 1).min(copy.end() - at);
            scribble(&mut flash, &mut rng, at, len);
        }
    }
    // Slot trailers: the last units of both slots (beyond the images).
    for slot in [spec.primary, spec.secondary] {
        scribble(&mut flash, &mut rng, slot.end() - 4 * unit, 4 * unit);
    }
    flash
}

/// A well-formed record (valid CRC) with random phase and fields, and random digests.
fn forged_record(scn: &Scenario, flash: &mut SimFlash, rng: &mut Rng) {
    let mut store = StateStore::load(&mut *flash, &scn.layout);
    let phases = [Phase::Idle, Phase::Pending, Phase::Swapping, Phase::Trial];
    let state = BootState {
        seq: store.state.seq.wrapping_add(1 + rng.next() as u32 % 5),
        phase: phases[(rng.next() % 4) as usize],
        permanent: rng.next() % 2 == 0,
        reverted: rng.next() % 4 == 0,
        image: 0,
        banks_swapped: rng.next() % 2 == 0,
        floor_counter: (rng.next() % 3) as u32,
        floor_version: 0,
        old_size: (rng.next() % (5 * u64::from(scn.layout.unit()))) as u32,
        new_size: (rng.next() % (5 * u64::from(scn.layout.unit()))) as u32,
        installed: brickless_boot::state::InstalledImage::NONE,
    };
    let digests = rng.bytes(4096);
    let _ = store.write(&mut *flash, &scn.layout, state, |_, _, i| {
        let mut d = [0u8; DIGEST_LEN];
        let at = (i as usize * DIGEST_LEN) % 4000;
        d.copy_from_slice(&digests[at..at + DIGEST_LEN]);
        Ok(d)
    });
}

#[test]
fn garbage_and_torn_units_never_brick() {
    let mut torn_units = 0;
    for name in CAMPAIGN_PARTS {
        let p = part(name).unwrap();
        for strategy in brickless_campaign::strategies_for(p) {
            for seed in 0..6 {
                let scn = Scenario::new(p, strategy, Flow::Permanent).unwrap();
                let mut flash = hostile(&scn, seed * 7919 + 1);
                let spec = scn.layout.spec();
                torn_units += flash
                    .scan_torn(spec.state[0].start..spec.state[1].end())
                    .len();
                // The old image is intact: it must be what boots.
                assert_eq!(
                    settle(&scn, &mut flash),
                    Ok(Which::Old),
                    "{name} {strategy:?} seed {seed}"
                );
                // And an update still goes through, on top of the garbage.
                assert_eq!(
                    run_flow(&scn, &mut flash),
                    Ok(Which::New),
                    "{name} {strategy:?} seed {seed}"
                );
            }
        }
    }
    assert!(
        torn_units > 10,
        "the test must really tear units ({torn_units})"
    );
}

#[test]
fn forged_records_never_brick() {
    for name in CAMPAIGN_PARTS {
        let p = part(name).unwrap();
        for strategy in brickless_campaign::strategies_for(p) {
            for seed in 0..12u64 {
                let scn = Scenario::new(p, strategy, Flow::Permanent).unwrap();
                let mut rng = Rng(seed + 99);
                let mut flash = hostile(&scn, seed);
                forged_record(&scn, &mut flash, &mut rng);
                // Old intact, new staged: either may boot, nothing else, never recovery.
                let which = settle(&scn, &mut flash);
                assert!(which.is_ok(), "{name} {strategy:?} seed {seed}: {which:?}");
            }
        }
    }
}

#[test]
fn no_valid_image_anywhere_means_recovery_not_a_crash() {
    for name in CAMPAIGN_PARTS {
        let p = part(name).unwrap();
        for strategy in brickless_campaign::strategies_for(p) {
            let scn = Scenario::new(p, strategy, Flow::Permanent).unwrap();
            let mut flash = hostile(&scn, 5);
            let mut rng = Rng(3);
            let spec = *scn.layout.spec();
            // Damage one unit in the middle of both images.
            for at in [spec.primary.start + 64, scn.layout.staging().start + 64] {
                flash.preload(at, &rng.bytes(16)).unwrap();
            }
            let mut buf = vec![0u8; 4096];
            let mut engine = BootLoader::with_bank_swap(
                &mut flash,
                scn.layout,
                scn.check,
                brickless_boot::NoPlatform,
                &mut buf,
            )
            .unwrap();
            for _ in 0..3 {
                let d = engine.boot().unwrap();
                assert!(
                    matches!(d, brickless_boot::BootDecision::Recovery(_)),
                    "{name}: {d:?}"
                );
            }
        }
    }
}

struct CountingCheck<'a> {
    inner: brickless_campaign::kit::Checker,
    calls: &'a std::cell::Cell<u32>,
}

impl<F: embedded_storage::nor_flash::ReadNorFlash> brickless_boot::ImageCheck<F>
    for CountingCheck<'_>
{
    fn check(
        &mut self,
        flash: &mut F,
        offset: u32,
        max_size: u32,
    ) -> Option<brickless_boot::ImageInfo> {
        self.calls.set(self.calls.get() + 1);
        self.inner.check(flash, offset, max_size)
    }
}

#[test]
fn recorded_hash_skips_signatures_but_never_boots_a_changed_image() {
    use brickless_boot::{BootDecision, VerifyPolicy};
    let p = part("stm32g071rb").unwrap();
    let scn = Scenario::new(p, StrategyKind::Swap, Flow::Permanent).unwrap();
    let mut flash = scn.initial_flash();
    let calls = std::cell::Cell::new(0);
    let mut buf = vec![0u8; 2048];
    let boot = |flash: &mut SimFlash, buf: &mut Vec<u8>| {
        let check = CountingCheck {
            inner: scn.check,
            calls: &calls,
        };
        let mut e = BootLoader::new(&mut *flash, scn.layout, check, buf).unwrap();
        e.set_verify_policy(VerifyPolicy::RecordedHash);
        e.boot().unwrap()
    };
    // First boot: full verification, then the hash is recorded.
    assert!(matches!(boot(&mut flash, &mut buf), BootDecision::Boot(_)));
    assert!(calls.get() >= 1);
    // Later boots: no signature check at all.
    calls.set(0);
    assert!(matches!(boot(&mut flash, &mut buf), BootDecision::Boot(_)));
    assert_eq!(calls.get(), 0);
    // One changed byte in the image: back to full verification, which fails; the staged
    // update (valid) is installed instead of booting the changed image.
    let at = scn.layout.spec().primary.start + 100;
    let mut byte = [0u8; 1];
    flash.read_abs(at, &mut byte).unwrap();
    let unit = flash.geometry().write_unit as usize;
    let mut unit_bytes = vec![0u8; unit];
    let unit_at = at - (at % unit as u32);
    flash.read_abs(unit_at, &mut unit_bytes).unwrap();
    unit_bytes[(at - unit_at) as usize] ^= 0x01;
    flash.preload(unit_at, &unit_bytes).unwrap();
    calls.set(0);
    match boot(&mut flash, &mut buf) {
        BootDecision::Boot(t) => {
            assert!(calls.get() >= 1);
            let mut got = vec![0u8; t.image.size as usize];
            flash
                .read_abs(scn.layout.spec().primary.start, &mut got)
                .unwrap();
            assert_eq!(got, scn.new, "only the verified staged image may boot");
        }
        d => panic!("{d:?}"),
    }
}
