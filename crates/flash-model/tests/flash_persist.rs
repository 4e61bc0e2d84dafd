//! Saving and loading a model: the virtual device keeps its flash across runs.

use brickless_flash::part;
use brickless_flash_model::{CutPhase, CutPoint, PersistError, SimFlash, UnitState};

fn snapshot(f: &SimFlash) -> Vec<u8> {
    let g = f.geometry();
    let mut out = Vec::new();
    for bank in g.banks {
        let mut buf = vec![0u8; bank.size() as usize];
        f.peek(bank.base, &mut buf).unwrap();
        out.extend(buf);
    }
    out
}

#[test]
fn save_then_load_restores_contents_torn_units_wear_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h743vg.flash");
    let p = part("stm32h743vg").unwrap();
    let mut f = SimFlash::with_seed(p, 99);
    f.program_abs(0x0800_0000, &[0x11; 64]).unwrap();
    f.program_abs(0x0810_0020, &[0x22; 32]).unwrap();
    f.erase_abs(0x0802_0000, 0x0804_0000).unwrap();
    f.arm_cut(CutPoint::new(3, CutPhase::Torn));
    let _ = f.program_abs(0x0810_1000, &[0x33; 96]);
    f.power_cycle();
    f.save(&path).unwrap();

    let mut g = SimFlash::new(p);
    g.load(&path).unwrap();
    assert_eq!(snapshot(&g), snapshot(&f));
    assert_eq!(
        g.scan_torn(0x0800_0000..0x0818_0000),
        f.scan_torn(0x0800_0000..0x0818_0000)
    );
    assert_eq!(g.scan_torn(0x0800_0000..0x0818_0000).len(), 1);
    assert_eq!(g.op_count(), 4);
    assert_eq!(g.seed(), 99);
    assert_eq!(g.wear(0x0802_0000), Some(1));
    assert_eq!(g.elapsed_us(), f.elapsed_us());
    assert_eq!(g.elapsed_max_us(), f.elapsed_max_us());
    assert_eq!(g.unit_state(0x0810_0020), Some(UnitState::Programmed));
    // Rules survive the round trip: a programmed unit is still programmed.
    assert_eq!(g.unit_state(0x0810_0040), Some(UnitState::Erased));

    let h = SimFlash::open(&path).unwrap();
    assert_eq!(h.part().name, "stm32h743vg");
    assert_eq!(snapshot(&h), snapshot(&f));
}

#[test]
fn loading_another_parts_file_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l475.flash");
    SimFlash::new(part("stm32l475vg").unwrap())
        .save(&path)
        .unwrap();
    let mut f = SimFlash::new(part("stm32l476rg").unwrap());
    f.program_abs(0x0800_0000, &[7; 8]).unwrap();
    let err = f.load(&path).unwrap_err();
    match &err {
        PersistError::WrongPart {
            file_part,
            model_part,
            ..
        } => {
            assert_eq!(file_part, "stm32l475vg");
            assert_eq!(*model_part, "stm32l476rg");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("stm32l475vg"), "{err}");
    let mut buf = [0u8; 8];
    f.read_abs(0x0800_0000, &mut buf).unwrap();
    assert_eq!(buf, [7; 8]);
}

#[test]
fn damaged_files_get_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = part("stm32g071rb").unwrap();
    let path = dir.path().join("g0.flash");
    let mut f = SimFlash::new(p);
    f.program_abs(0x0800_0000, &[1; 8]).unwrap();
    f.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    let bad = dir.path().join("bad.flash");
    std::fs::write(&bad, b"hello").unwrap();
    assert!(matches!(
        SimFlash::open(&bad),
        Err(PersistError::NotAFlashFile { .. })
    ));
    std::fs::write(&bad, &good[..good.len() - 3]).unwrap();
    assert!(matches!(
        SimFlash::open(&bad),
        Err(PersistError::Corrupt { .. })
    ));
    let mut versioned = good.clone();
    versioned[8] = 9;
    std::fs::write(&bad, &versioned).unwrap();
    assert!(matches!(
        SimFlash::open(&bad),
        Err(PersistError::UnsupportedVersion { version: 9, .. })
    ));
    // An unprogrammed unit holding data breaks the model's invariant.
    let header = 8 + 4 + 1 + p.name.len() + 8 * 4 + 4 * 3;
    let mut dirty = good.clone();
    dirty[header + 100] = 0x00;
    std::fs::write(&bad, &dirty).unwrap();
    let mut g = SimFlash::new(p);
    assert!(matches!(g.load(&bad), Err(PersistError::Corrupt { .. })));
    assert_eq!(
        g.unit_state(0x0800_0000),
        Some(UnitState::Erased),
        "a refused load changes nothing"
    );
    assert!(matches!(
        SimFlash::open(dir.path().join("missing")),
        Err(PersistError::Io { .. })
    ));
    let mut unknown = good[..13].to_vec();
    unknown[12] = 3;
    unknown.extend_from_slice(b"abc");
    std::fs::write(&bad, &unknown).unwrap();
    assert!(matches!(
        SimFlash::open(&bad),
        Err(PersistError::UnknownPart { .. })
    ));
    // The good file still loads and keeps its program.
    let g = SimFlash::open(&path).unwrap();
    assert_eq!(g.unit_state(0x0800_0000), Some(UnitState::Programmed));
    let mut buf = [0u8; 8];
    assert_eq!(g.read_abs(0x0800_0000, &mut buf), Ok(()));
    assert_eq!(buf, [1; 8]);
}
