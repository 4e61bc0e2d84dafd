//! First-cut checks: every named part builds a model that programs, reads back and erases.

use brickless_flash::{part, PARTS};
use brickless_flash_model::SimFlash;
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

#[test]
fn every_part_programs_reads_and_erases_its_first_sector() {
    for p in PARTS {
        let mut f = SimFlash::new(p);
        let g = *f.geometry();
        let data: Vec<u8> = (0..g.write_unit * 4).map(|i| i as u8 ^ 0x5A).collect();
        f.write(0, &data)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let mut back = vec![0u8; data.len()];
        f.read(0, &mut back).unwrap();
        assert_eq!(back, data, "{}", p.name);
        let first = g.sector_at(g.base()).unwrap();
        f.erase(0, first.size).unwrap();
        f.read(0, &mut back).unwrap();
        assert!(back.iter().all(|b| *b == g.erased), "{}", p.name);
        assert_eq!(f.op_count(), 2);
        assert_eq!(f.wear(g.base()), Some(1));
    }
}

#[test]
fn required_parts_exist() {
    for name in [
        "stm32h753zi",
        "stm32h743zi",
        "stm32h743vg",
        "stm32h723zg",
        "stm32h7a3zi",
        "stm32h563zi",
        "stm32l475vg",
        "stm32l476rg",
        "stm32l4r5zi",
        "stm32l073rz",
        "stm32l053r8",
        "stm32f407vg",
        "stm32f429zi",
        "stm32f767zi",
        "stm32f746zg",
        "stm32g071rb",
        "stm32g0b1re",
        "stm32g474re",
        "stm32g431kb",
        "stm32u585ai",
        "stm32l552ze",
    ] {
        assert!(part(name).is_some(), "{name} missing");
        assert!(
            part(&name.to_uppercase()).is_some(),
            "{name} case-insensitive lookup"
        );
    }
}

#[test]
fn aligned_writer_and_tolerant_read_work_on_the_model() {
    use brickless_flash::{read_tolerant, AlignedWriter, ReadFault};
    use brickless_flash_model::{CutPhase, CutPoint, UnitState};
    for p in PARTS {
        let mut f = SimFlash::new(p);
        let g = *f.geometry();
        let image: Vec<u8> = (0..1001u32).map(|i| (i % 251) as u8 | 1).collect();
        let mut w = AlignedWriter::for_geometry(&mut f, 0, &g).unwrap();
        for piece in image.chunks(7) {
            w.write(piece)
                .unwrap_or_else(|e| panic!("{}: {e:?}", p.name));
        }
        let end = w.finish().unwrap();
        assert_eq!(
            end,
            1001u32.div_ceil(g.write_unit) * g.write_unit,
            "{}",
            p.name
        );
        let mut back = vec![0u8; 1001];
        read_tolerant(&mut f, 0, &mut back).unwrap();
        assert_eq!(back, image, "{}", p.name);
        // The padded tail unit is used up.
        assert_eq!(
            f.unit_state(g.base() + end - 1),
            Some(UnitState::Programmed),
            "{}",
            p.name
        );
        assert_eq!(
            f.unit_state(g.base() + end),
            Some(UnitState::Erased),
            "{}",
            p.name
        );

        // A torn unit reads as an error value through the tolerant path.
        f.arm_cut(CutPoint::new(f.op_count(), CutPhase::Torn));
        assert!(f.write(end, &vec![0x11; g.write_unit as usize]).is_err());
        f.power_cycle();
        let mut unit = vec![0u8; g.write_unit as usize];
        let r = read_tolerant(&mut f, end, &mut unit);
        if g.ecc.detects_double_errors() {
            assert_eq!(
                r,
                Err(ReadFault::Ecc {
                    addr: g.base() + end
                }),
                "{}",
                p.name
            );
        } else {
            assert_eq!(r, Ok(()), "{}", p.name);
        }
    }
}
