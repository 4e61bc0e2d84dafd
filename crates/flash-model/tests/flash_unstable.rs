//! Unstable torn units (`SimFlash::set_unstable_torn`): a unit left half-programmed or
//! half-erased by a cut reads differently from one read to the next, only in the bits the
//! interrupted operation was changing; on SEC/DED families it sometimes faults, sometimes
//! returns a value. Off by default, reproducible, and gone after an erase or a repairing
//! program.
use std::collections::BTreeSet;

use brickless_flash_model::{CutPhase, CutPoint, SimFlash, SimFlashError, TearAt};
use brickless_test_support::flash_part;

fn data(unit: usize, salt: u8) -> Vec<u8> {
    (0..unit)
        .map(|i| (i as u8).wrapping_mul(37) ^ salt | 0x10)
        .collect()
}

/// Programs one unit at the start of the second sector with a torn cut; returns its address.
fn torn_unit(f: &mut SimFlash, salt: u8) -> (u32, Vec<u8>) {
    let unit = f.geometry().write_unit as usize;
    let addr = f.geometry().sectors().nth(1).unwrap().addr;
    let new = data(unit, salt);
    f.set_tear_at(TearAt::First);
    f.arm_cut(CutPoint::new(f.op_count(), CutPhase::Torn));
    assert_eq!(f.program_abs(addr, &new), Err(SimFlashError::PowerLost));
    f.power_cycle();
    (addr, new)
}

/// Bits the program was changing: those that differ between the erased value and the data.
fn changing(erased: u8, new: &[u8]) -> Vec<u8> {
    new.iter().map(|n| n ^ erased).collect()
}

fn reads(f: &SimFlash, addr: u32, len: usize, n: usize) -> Vec<Result<Vec<u8>, SimFlashError>> {
    (0..n)
        .map(|_| {
            let mut b = vec![0u8; len];
            f.read_abs(addr, &mut b).map(|()| b)
        })
        .collect()
}

#[test]
fn torn_units_without_ecc_read_differently_only_in_changing_bits() {
    for name in ["stm32f407vg", "stm32f767zi", "stm32l073rz"] {
        let mut f = SimFlash::with_seed(flash_part(name), 11);
        let unit = f.geometry().write_unit as usize;
        let erased = f.geometry().erased;
        let (addr, new) = torn_unit(&mut f, 3);
        assert_eq!(f.marginal_units(addr..addr + unit as u32), vec![addr]);
        let mut stored = vec![0u8; unit];
        f.peek(addr, &mut stored).unwrap();

        // Off (the default): every read returns the same torn bytes.
        assert!(!f.unstable_torn());
        for r in reads(&f, addr, unit, 16) {
            assert_eq!(r.unwrap(), stored, "{name}: stable read changed");
        }

        f.set_unstable_torn(true);
        let mask = changing(erased, &new);
        let mut seen = BTreeSet::new();
        for r in reads(&f, addr, unit, 64) {
            let r = r.expect("no ECC on this family: reads never fault");
            for ((got, st), m) in r.iter().zip(&stored).zip(&mask) {
                assert_eq!(
                    (got ^ st) & !m,
                    0,
                    "{name}: a bit the program was not changing moved"
                );
            }
            seen.insert(r);
        }
        assert!(seen.len() > 8, "{name}: only {} distinct reads", seen.len());

        // A read that only partly covers the unit varies too, and neighbours stay put.
        let mut wide = vec![0u8; 3 * unit];
        f.read_abs(addr - unit as u32, &mut wide).unwrap();
        assert!(wide[..unit].iter().all(|b| *b == erased));
        assert!(wide[2 * unit..].iter().all(|b| *b == erased));

        // Erasing the sector makes it stable (and erased) again.
        let sector = f.geometry().sectors().nth(1).unwrap();
        f.erase_abs(sector.addr, sector.end()).unwrap();
        assert!(f.marginal_units(sector.addr..sector.end()).is_empty());
        for r in reads(&f, addr, unit, 8) {
            assert!(r.unwrap().iter().all(|b| *b == erased), "{name}");
        }
    }
}

#[test]
fn torn_units_with_ecc_sometimes_fault_sometimes_return_a_value() {
    for name in ["stm32l475vg", "stm32h753zi", "stm32u585ai"] {
        let mut f = SimFlash::with_seed(flash_part(name), 5);
        let unit = f.geometry().write_unit as usize;
        let erased = f.geometry().erased;
        let (addr, new) = torn_unit(&mut f, 9);
        let mut stored = vec![0u8; unit];
        f.peek(addr, &mut stored).unwrap();
        // Off: a torn unit always faults.
        for r in reads(&f, addr, unit, 8) {
            assert_eq!(r, Err(SimFlashError::Ecc { addr }), "{name}");
        }
        f.set_unstable_torn(true);
        let mask = changing(erased, &new);
        let (mut faults, mut values) = (0, BTreeSet::new());
        for r in reads(&f, addr, unit, 64) {
            match r {
                Err(e) => {
                    assert_eq!(e, SimFlashError::Ecc { addr }, "{name}");
                    faults += 1;
                }
                Ok(v) => {
                    for ((got, st), m) in v.iter().zip(&stored).zip(&mask) {
                        assert_eq!((got ^ st) & !m, 0, "{name}: unchanged bit moved");
                    }
                    values.insert(v);
                }
            }
        }
        assert!(
            faults > 8 && values.len() > 8,
            "{name}: {faults} faults, {} values",
            values.len()
        );

        // L4/U5 repair a torn unit by programming zeros: stable zeros afterwards.
        if name != "stm32h753zi" {
            f.program_abs(addr, &vec![0u8; unit]).unwrap();
            assert!(f.marginal_units(addr..addr + 1).is_empty());
            for r in reads(&f, addr, unit, 8) {
                assert!(r.unwrap().iter().all(|b| *b == 0), "{name}");
            }
        }
    }
}

#[test]
fn partly_erased_units_are_unstable_toward_the_erased_value() {
    for name in ["stm32f407vg", "stm32l073rz", "stm32g071rb"] {
        let mut f = SimFlash::with_seed(flash_part(name), 21);
        let erased = f.geometry().erased;
        let unit = f.geometry().write_unit as usize;
        let sector = f.geometry().sectors().nth(1).unwrap();
        let content: Vec<u8> = (0..sector.size).map(|i| (i * 7 + 1) as u8).collect();
        f.preload(sector.addr, &content).unwrap();
        f.arm_cut(CutPoint::new(f.op_count(), CutPhase::Torn));
        assert_eq!(
            f.erase_abs(sector.addr, sector.end()),
            Err(SimFlashError::PowerLost)
        );
        f.power_cycle();
        let marked = f.marginal_units(sector.addr..sector.end());
        assert!(
            !marked.is_empty(),
            "{name}: a partial erase leaves torn units"
        );
        f.set_unstable_torn(true);
        for at in marked.into_iter().take(4) {
            let mut stored = vec![0u8; unit];
            f.peek(at, &mut stored).unwrap();
            let off = (at - sector.addr) as usize;
            let before = &content[off..off + unit];
            let mut seen = BTreeSet::new();
            for r in reads(&f, at, unit, 32).into_iter().flatten() {
                for ((got, st), old) in r.iter().zip(&stored).zip(before) {
                    // Only bits the erase was moving (programmed before it) may move.
                    let may_move = old ^ erased;
                    assert_eq!((got ^ st) & !may_move, 0, "{name}");
                }
                seen.insert(r);
            }
            assert!(seen.len() > 1, "{name}: unit {at:#x} read stably");
        }
    }
}

#[test]
fn unstable_reads_replay_identically_from_a_clone() {
    for name in ["stm32f407vg", "stm32l475vg"] {
        let mut f = SimFlash::with_seed(flash_part(name), 77);
        let unit = f.geometry().write_unit as usize;
        let (addr, _) = torn_unit(&mut f, 1);
        f.set_unstable_torn(true);
        let _ = reads(&f, addr, unit, 5); // the counter is part of the state a clone takes
        let g = f.clone();
        assert_eq!(
            reads(&f, addr, unit, 32),
            reads(&g, addr, unit, 32),
            "{name}"
        );
        // Another seed gives other values.
        let mut h = SimFlash::with_seed(flash_part(name), 78);
        let (addr_h, _) = torn_unit(&mut h, 1);
        h.set_unstable_torn(true);
        assert_ne!(
            reads(&f, addr, unit, 32),
            reads(&h, addr_h, unit, 32),
            "{name}"
        );
    }
}
