//! Power cuts: torn programs, partly erased sectors, ECC faults exactly where they belong,
//! and deterministic replay of cut points.

use brickless_flash_model::{
    cut_points, essential_cut_points, op_range, replay, CutPhase, CutPoint, SimFlash,
    SimFlashError, TearAt, UnitState,
};
use brickless_test_support::flash_part;

const ECC_PARTS: &[&str] = &[
    "stm32h753zi",
    "stm32h723zg",
    "stm32h7a3zi",
    "stm32h563zi",
    "stm32l475vg",
    "stm32l4r5zi",
    "stm32g071rb",
    "stm32g474re",
    "stm32u585ai",
    "stm32l552ze",
];
const NO_DED_PARTS: &[&str] = &[
    "stm32f407vg",
    "stm32f429zi",
    "stm32f767zi",
    "stm32f746zg",
    "stm32l073rz",
];

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29) ^ salt | 0x01)
        .collect()
}

fn peek(f: &SimFlash, addr: u32, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.peek(addr, &mut buf).unwrap();
    buf
}

/// Programs 8 units with a Torn cut and returns (model, index of the torn unit).
fn torn_program(name: &str, seed: u64) -> (SimFlash, usize, Vec<u8>) {
    let mut f = SimFlash::with_seed(flash_part(name), seed);
    let g = *f.geometry();
    let unit = g.write_unit as usize;
    let data = pattern(8 * unit, 0x30);
    f.arm_cut(CutPoint::new(0, CutPhase::Torn));
    assert_eq!(
        f.program_abs(g.base(), &data),
        Err(SimFlashError::PowerLost)
    );
    assert!(!f.is_powered());
    f.power_cycle();
    let states: Vec<UnitState> = (0..8)
        .map(|i| f.unit_state(g.base() + (i * unit) as u32).unwrap())
        .collect();
    let torn = states
        .iter()
        .position(|s| *s != UnitState::Programmed)
        .expect("one unit must be left unfinished");
    (f, torn, data)
}

#[test]
fn torn_program_faults_exactly_on_the_torn_unit_on_ecc_families() {
    for name in ECC_PARTS {
        for seed in 0..6 {
            let (f, torn, data) = torn_program(name, seed);
            let g = *f.geometry();
            let unit = g.write_unit as usize;
            for i in 0..8 {
                let addr = g.base() + (i * unit) as u32;
                let mut buf = vec![0u8; unit];
                let r = f.read_abs(addr, &mut buf);
                if i < torn {
                    assert_eq!(r, Ok(()), "{name}: unit {i} before the tear");
                    assert_eq!(
                        buf,
                        data[i * unit..(i + 1) * unit],
                        "{name}: unit {i} programmed"
                    );
                } else if i == torn {
                    assert_eq!(r, Err(SimFlashError::Ecc { addr }), "{name} seed {seed}");
                    assert_eq!(f.unit_state(addr), Some(UnitState::Torn));
                } else {
                    assert_eq!(r, Ok(()), "{name}: unit {i} after the tear");
                    assert_eq!(buf, vec![g.erased; unit], "{name}: unit {i} untouched");
                    assert_eq!(f.unit_state(addr), Some(UnitState::Erased));
                }
            }
            let torn_addr = g.base() + (torn * unit) as u32;
            assert_eq!(f.scan_torn(g.base()..g.end()), vec![torn_addr], "{name}");
            // A read spanning the torn unit fails; a read ending just before it works.
            let mut big = vec![0u8; 8 * unit];
            assert_eq!(
                f.read_abs(g.base(), &mut big),
                Err(SimFlashError::Ecc { addr: torn_addr })
            );
            let mut head = vec![0u8; torn * unit];
            f.read_abs(g.base(), &mut head).unwrap();
        }
    }
}

#[test]
fn torn_program_never_faults_on_f4_f7_l0_but_leaves_partial_bits() {
    for name in NO_DED_PARTS {
        let mut partial = 0;
        for seed in 0..6 {
            let mut f = SimFlash::with_seed(flash_part(name), seed);
            let g = *f.geometry();
            let unit = g.write_unit as usize;
            let data = pattern(8 * unit, 0x30);
            f.arm_cut(CutPoint::new(0, CutPhase::Torn));
            assert_eq!(
                f.program_abs(g.base(), &data),
                Err(SimFlashError::PowerLost)
            );
            f.power_cycle();
            let mut all = vec![0u8; 8 * unit];
            f.read_abs(g.base(), &mut all).unwrap();
            assert!(f.scan_torn(g.base()..g.end()).is_empty(), "{name}");
            let unfinished =
                (0..8).find(|u| all[u * unit..(u + 1) * unit] != data[u * unit..(u + 1) * unit]);
            if let Some(u) = unfinished {
                let torn_unit = &all[u * unit..(u + 1) * unit];
                if torn_unit != vec![g.erased; unit].as_slice() {
                    partial += 1;
                }
            }
            for (i, (now, new)) in all.iter().zip(&data).enumerate() {
                // Only bits the program was changing may differ from the erased value.
                if g.erased == 0xFF {
                    // Programming only clears bits: a 1 in the new data is still 1.
                    assert_eq!(now & new, *new, "{name} byte {i}");
                } else {
                    assert_eq!(
                        now & !new,
                        0,
                        "{name} byte {i}: L0 sets only programmed bits"
                    );
                }
            }
        }
        assert!(
            partial > 0,
            "{name}: torn units hold a mix of old and new bits"
        );
    }
}

#[test]
fn reprogramming_a_torn_unit_is_a_second_program() {
    // L4: PROGERR; then the ST scrub (all zeros) clears the ECC error.
    let (mut f, torn, _) = torn_program("stm32l475vg", 3);
    let addr = 0x0800_0000 + 8 * torn as u32;
    assert!(matches!(
        f.program_abs(addr, &[0x11; 8]),
        Err(SimFlashError::Program { .. })
    ));
    f.program_abs(addr, &[0u8; 8]).unwrap();
    let mut buf = [0xAAu8; 8];
    f.read_abs(addr, &mut buf).unwrap();
    assert_eq!(buf, [0u8; 8]);
    assert!(f.scan_torn(0x0800_0000..0x0810_0000).is_empty());
    // H7: accepted, still faults.
    let (mut f, torn, _) = torn_program("stm32h753zi", 3);
    let addr = 0x0800_0000 + 32 * torn as u32;
    f.program_abs(addr, &[0x11; 32]).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(f.read_abs(addr, &mut buf), Err(SimFlashError::Ecc { addr }));
}

/// Fills a sector, then erases it with a Torn cut.
fn partly_erased(name: &str, seed: u64) -> (SimFlash, u32, u32, Vec<u8>) {
    let mut f = SimFlash::with_seed(flash_part(name), seed);
    let g = *f.geometry();
    // Use the second sector (the first is often special on F4).
    let s = g.sector_at(g.sector_at(g.base()).unwrap().end()).unwrap();
    let old = pattern(s.size as usize, 0x42);
    f.program_abs(s.addr, &old).unwrap();
    f.arm_cut(CutPoint::new(1, CutPhase::Torn));
    assert_eq!(f.erase_abs(s.addr, s.end()), Err(SimFlashError::PowerLost));
    f.power_cycle();
    assert_eq!(f.wear(s.addr), Some(1));
    (f, s.addr, s.size, old)
}

#[test]
fn partial_erase_faults_exactly_on_torn_units_on_ecc_families() {
    for name in ECC_PARTS.iter().chain(NO_DED_PARTS) {
        let (f, start, size, old) = partly_erased(name, 7);
        let g = *f.geometry();
        let unit = g.write_unit as usize;
        let detects = g.ecc.detects_double_errors();
        let (mut erased, mut kept, mut torn) = (0, 0, 0);
        let torn_list = f.scan_torn(start..start + size);
        for i in 0..size as usize / unit {
            let addr = start + (i * unit) as u32;
            let mut buf = vec![0u8; unit];
            let r = f.read_abs(addr, &mut buf);
            let old_unit = &old[i * unit..(i + 1) * unit];
            match f.unit_state(addr).unwrap() {
                UnitState::Torn => {
                    assert!(detects);
                    assert_eq!(r, Err(SimFlashError::Ecc { addr }), "{name}");
                    assert!(torn_list.contains(&addr));
                    torn += 1;
                }
                UnitState::Erased => {
                    assert_eq!(r, Ok(()));
                    assert_eq!(buf, vec![g.erased; unit], "{name}");
                    erased += 1;
                }
                UnitState::Programmed => {
                    assert_eq!(r, Ok(()), "{name}: no fault outside torn units");
                    if buf == old_unit {
                        kept += 1;
                    } else {
                        assert!(!detects, "{name}: changed data without an ECC error");
                        torn += 1;
                    }
                }
            }
        }
        assert_eq!(torn_list.len(), if detects { torn } else { 0 }, "{name}");
        assert!(
            erased > 0 && kept > 0 && torn > 0,
            "{name}: a seeded mix ({erased}/{kept}/{torn})"
        );
        // The neighbouring sectors are untouched.
        assert_eq!(
            f.unit_state(start - g.write_unit),
            Some(UnitState::Erased),
            "{name}"
        );
        // Re-erasing recovers the sector.
        let mut f = f;
        f.erase_abs(start, start + size).unwrap();
        assert!(f.scan_torn(start..start + size).is_empty());
        assert_eq!(f.wear(start), Some(2));
    }
}

#[test]
fn a_multi_sector_erase_cut_inside_erases_the_sectors_before_the_torn_one() {
    let mut f = SimFlash::with_seed(flash_part("stm32l475vg"), 11);
    f.fill(0x0800_0000, 8 * 2048, 0x00).unwrap();
    f.arm_cut(CutPoint::new(0, CutPhase::Torn));
    assert_eq!(
        f.erase_abs(0x0800_0000, 0x0800_4000),
        Err(SimFlashError::PowerLost)
    );
    let sector_states: Vec<bool> = (0..8)
        .map(|s| {
            let base = 0x0800_0000 + s * 2048;
            (0..256).all(|u| f.unit_state(base + u * 8) == Some(UnitState::Erased))
        })
        .collect();
    let first_not_erased = sector_states
        .iter()
        .position(|e| !e)
        .expect("one sector partly erased");
    assert!(sector_states[..first_not_erased].iter().all(|e| *e));
    for s in first_not_erased + 1..8 {
        let base = 0x0800_0000 + s as u32 * 2048;
        assert!(
            (0..256).all(|u| f.unit_state(base + u * 8) == Some(UnitState::Programmed)),
            "sector {s} untouched"
        );
        assert_eq!(f.wear(base), Some(0));
    }
}

#[test]
fn after_a_cut_everything_fails_until_power_cycle() {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    for phase in CutPhase::ALL {
        let mut f = SimFlash::new(flash_part("stm32u585ai"));
        f.arm_cut(CutPoint::new(1, phase));
        f.write(0, &[1u8; 16]).unwrap();
        assert_eq!(f.write(16, &[2u8; 16]), Err(SimFlashError::PowerLost));
        assert_eq!(f.last_cut(), Some(CutPoint::new(1, phase)));
        let mut buf = [0u8; 16];
        assert_eq!(f.read(0, &mut buf), Err(SimFlashError::PowerLost));
        assert_eq!(f.write(32, &[3u8; 16]), Err(SimFlashError::PowerLost));
        assert_eq!(f.erase(0, 8192), Err(SimFlashError::PowerLost));
        assert_eq!(f.op_count(), 2, "calls while unpowered are not operations");
        f.power_cycle();
        f.read(0, &mut buf).unwrap();
        assert_eq!(buf, [1u8; 16]);
        let second = f.unit_state(0x0800_0010).unwrap();
        let expect = match phase {
            CutPhase::Before => UnitState::Erased,
            CutPhase::Torn => UnitState::Torn,
            CutPhase::After => UnitState::Programmed,
        };
        assert_eq!(second, expect, "{phase:?}");
        // Nothing after the cut happened.
        assert_eq!(f.unit_state(0x0800_0020), Some(UnitState::Erased));
        f.write(32, &[3u8; 16]).unwrap();
        assert_eq!(f.op_count(), 3);
    }
}

fn workload(f: &mut SimFlash) {
    // A small "update": erase two sectors, copy a header and a body, write a trailer.
    let _ = (|| -> Result<(), SimFlashError> {
        f.erase_abs(0x0810_0000, 0x0814_0000)?;
        f.program_abs(0x0810_0000, &pattern(64, 1))?;
        f.program_abs(0x0810_0040, &pattern(4096, 2))?;
        f.program_abs(0x0813_FFE0, &pattern(32, 3))?;
        Ok(())
    })();
}

#[test]
fn cut_points_cover_every_operation_and_phase() {
    let base = SimFlash::with_seed(flash_part("stm32h753zi"), 5);
    let points = cut_points(&base, workload);
    assert_eq!(points.len(), 4 * 3);
    assert_eq!(points[0], CutPoint::new(0, CutPhase::Before));
    assert_eq!(points[11], CutPoint::new(3, CutPhase::After));
    assert_eq!(base.op_count(), 0, "enumeration runs on a clone");
    // Each point fires in replay; After of the last op equals the uncut run.
    let mut full = base.clone();
    workload(&mut full);
    for point in &points {
        let m = replay(&base, &[*point], workload);
        assert_eq!(m.last_cut(), Some(*point));
        assert!(m.is_powered());
        if *point == CutPoint::new(3, CutPhase::After) {
            assert_eq!(
                peek(&m, 0x0810_0000, 0x4_0000),
                peek(&full, 0x0810_0000, 0x4_0000)
            );
        }
    }
    let essential = essential_cut_points(&base, workload);
    assert_eq!(essential.len(), 2 * 4 + 1);
    assert_eq!(essential[0], CutPoint::new(0, CutPhase::Before));
    assert!(essential.iter().all(|p| points.contains(p)));
    // Before op k leaves what After op k-1 leaves (why essential_cut_points drops it).
    for op in 1..4 {
        let a = replay(&base, &[CutPoint::new(op, CutPhase::Before)], workload);
        let b = replay(&base, &[CutPoint::new(op - 1, CutPhase::After)], workload);
        assert_eq!(
            peek(&a, 0x0810_0000, 0x4_0000),
            peek(&b, 0x0810_0000, 0x4_0000)
        );
    }
}

#[test]
fn same_seed_and_cut_point_give_the_same_bytes() {
    for name in ["stm32h753zi", "stm32l475vg", "stm32f407vg", "stm32l073rz"] {
        let g = flash_part(name).geometry;
        let region = (g.banks[0].base, 0x4000usize);
        let run = |f: &mut SimFlash| {
            let _ = f.program_abs(region.0, &pattern(region.1, 9));
            let _ = f.erase_abs(region.0, g.sector_at(region.0).unwrap().end());
        };
        let base = SimFlash::with_seed(flash_part(name), 1234);
        for point in cut_points(&base, run) {
            let a = replay(&base, &[point], run);
            let b = replay(&base, &[point], run);
            assert_eq!(
                peek(&a, region.0, region.1),
                peek(&b, region.0, region.1),
                "{name} {point}"
            );
            assert_eq!(
                a.scan_torn(g.base()..g.end()),
                b.scan_torn(g.base()..g.end())
            );
        }
        // A different seed tears differently (checked on the torn program).
        let point = CutPoint::new(0, CutPhase::Torn);
        let a = replay(&base, &[point], run);
        let other = SimFlash::with_seed(flash_part(name), 4321);
        let c = replay(&other, &[point], run);
        assert_ne!(
            peek(&a, region.0, region.1),
            peek(&c, region.0, region.1),
            "{name}"
        );
    }
}

#[test]
fn sequences_of_cuts_replay_deterministically() {
    let base = SimFlash::with_seed(flash_part("stm32h753zi"), 77);
    let first = CutPoint::new(2, CutPhase::Torn);
    let after_first = replay(&base, &[first], workload);
    // The recovery run's own cut points start after the first run's operations.
    let next = op_range(&after_first, workload);
    assert_eq!(next.start, 3);
    let second = CutPoint::new(next.start + 1, CutPhase::Torn);
    let a = replay(&base, &[first, second], workload);
    let b = replay(&base, &[first, second], workload);
    assert_eq!(a.last_cut(), Some(second));
    assert_eq!(
        peek(&a, 0x0810_0000, 0x4_0000),
        peek(&b, 0x0810_0000, 0x4_0000)
    );
    assert_eq!(
        a.scan_torn(0x0800_0000..0x0820_0000),
        b.scan_torn(0x0800_0000..0x0820_0000)
    );
}

#[test]
fn clones_are_independent_and_cheap_to_diverge() {
    let mut a = SimFlash::new(flash_part("stm32h753zi"));
    a.fill(0x0800_0000, 2 * 1024 * 1024 - 0x10_0000, 0x00)
        .unwrap();
    let b = a.clone();
    a.erase_abs(0x0800_0000, 0x0802_0000).unwrap();
    let mut buf = [0xAAu8; 4];
    b.read_abs(0x0800_0000, &mut buf).unwrap();
    assert_eq!(buf, [0u8; 4], "the clone keeps its own copy");
    a.read_abs(0x0800_0000, &mut buf).unwrap();
    assert_eq!(buf, [0xFF; 4]);
}

#[test]
fn tear_position_can_be_pinned_to_the_first_or_last_unit() {
    for (tear, expect) in [(TearAt::First, 0u32), (TearAt::Last, 7)] {
        let mut f = SimFlash::new(flash_part("stm32l475vg"));
        f.set_tear_at(tear);
        f.arm_cut(CutPoint::new(0, CutPhase::Torn));
        let _ = f.program_abs(0x0800_0000, &[0x12; 64]);
        assert_eq!(
            f.scan_torn(0x0800_0000..0x0800_0040),
            vec![0x0800_0000 + 8 * expect],
            "{tear:?}"
        );
        // Multi-sector erase: the first/last sector is the partly erased one.
        let mut f = SimFlash::new(flash_part("stm32l475vg"));
        f.set_tear_at(tear);
        f.fill(0x0800_0000, 4 * 2048, 0).unwrap();
        f.arm_cut(CutPoint::new(0, CutPhase::Torn));
        let _ = f.erase_abs(0x0800_0000, 0x0800_2000);
        let torn_sector = 0x0800_0000 + 2048 * expect.min(3);
        let hits = f.scan_torn(0x0800_0000..0x0800_2000);
        assert!(
            !hits.is_empty()
                && hits
                    .iter()
                    .all(|a| (torn_sector..torn_sector + 2048).contains(a)),
            "{tear:?}"
        );
    }
}

#[test]
fn a_cut_during_a_refused_call_only_loses_power() {
    for phase in CutPhase::ALL {
        let mut f = SimFlash::new(flash_part("stm32l475vg"));
        f.program_abs(0x0800_0000, &[1; 8]).unwrap();
        f.arm_cut(CutPoint::new(1, phase));
        // Misaligned: refused before any cell changes, whatever the phase.
        assert_eq!(
            f.program_abs(0x0800_0004, &[2; 8]),
            Err(SimFlashError::PowerLost)
        );
        f.power_cycle();
        f.arm_cut(CutPoint::new(2, phase));
        // PROGERR on the only unit: the controller never starts programming it.
        assert_eq!(
            f.program_abs(0x0800_0000, &[3; 8]),
            Err(SimFlashError::PowerLost)
        );
        f.power_cycle();
        assert!(
            f.scan_torn(0x0800_0000..0x0800_0100).is_empty(),
            "{phase:?}"
        );
        let mut buf = [0u8; 16];
        f.read_abs(0x0800_0000, &mut buf).unwrap();
        assert_eq!(
            buf,
            [1, 1, 1, 1, 1, 1, 1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }
}

#[test]
fn a_cut_the_run_never_reaches_does_not_fire() {
    let base = SimFlash::new(flash_part("stm32h753zi"));
    let m = replay(&base, &[CutPoint::new(100, CutPhase::Torn)], workload);
    assert_eq!(m.last_cut(), None);
    assert!(m.is_powered());
    assert_eq!(m.op_count(), 4);
}
