//! One test per flash rule per family, against the reference-manual behaviour.

use brickless_flash::HwFlag;
use brickless_flash_model::{SimFlash, SimFlashError, UnitState};
use brickless_test_support::flash_part;

/// One part per family, with the flags its reference manual names.
struct Case {
    part: &'static str,
    misaligned: HwFlag,
    short: HwFlag,
    second_program: Second,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Second {
    /// Refused with this flag, data unchanged.
    Refused(HwFlag),
    /// Accepted silently; the unit then faults on read (H7/H5).
    Poisons,
    /// Accepted, bits only go 1 -> 0 (F4/F7).
    AndsBits,
}

const CASES: &[Case] = &[
    Case {
        part: "stm32h753zi",
        misaligned: HwFlag::Incerr,
        short: HwFlag::Incerr,
        second_program: Second::Poisons,
    },
    Case {
        part: "stm32h723zg",
        misaligned: HwFlag::Incerr,
        short: HwFlag::Incerr,
        second_program: Second::Poisons,
    },
    Case {
        part: "stm32h7a3zi",
        misaligned: HwFlag::Incerr,
        short: HwFlag::Incerr,
        second_program: Second::Poisons,
    },
    Case {
        part: "stm32h563zi",
        misaligned: HwFlag::Incerr,
        short: HwFlag::Incerr,
        second_program: Second::Poisons,
    },
    Case {
        part: "stm32l475vg",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Sizerr,
        second_program: Second::Refused(HwFlag::Progerr),
    },
    Case {
        part: "stm32l4r5zi",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Sizerr,
        second_program: Second::Refused(HwFlag::Progerr),
    },
    Case {
        part: "stm32l073rz",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Sizerr,
        second_program: Second::Refused(HwFlag::Notzeroerr),
    },
    Case {
        part: "stm32f407vg",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Pgperr,
        second_program: Second::AndsBits,
    },
    Case {
        part: "stm32f767zi",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Pgperr,
        second_program: Second::AndsBits,
    },
    Case {
        part: "stm32g071rb",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Sizerr,
        second_program: Second::Refused(HwFlag::Progerr),
    },
    Case {
        part: "stm32g474re",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Sizerr,
        second_program: Second::Refused(HwFlag::Progerr),
    },
    Case {
        part: "stm32u585ai",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Sizerr,
        second_program: Second::Refused(HwFlag::Progerr),
    },
    Case {
        part: "stm32l552ze",
        misaligned: HwFlag::Pgaerr,
        short: HwFlag::Sizerr,
        second_program: Second::Refused(HwFlag::Progerr),
    },
];

fn read(f: &SimFlash, addr: u32, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.read_abs(addr, &mut buf)
        .unwrap_or_else(|e| panic!("read {addr:#x}: {e}"));
    buf
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(37) ^ salt | 1)
        .collect()
}

#[test]
fn misaligned_write_is_refused_with_the_family_flag_and_changes_nothing() {
    for c in CASES {
        let mut f = SimFlash::new(flash_part(c.part));
        let g = *f.geometry();
        // Aligned to 2 bytes but not to the unit, a whole unit long.
        let addr = g.base() + 2;
        let err = f
            .program_abs(addr, &pattern(g.write_unit as usize, 1))
            .unwrap_err();
        assert_eq!(
            err,
            SimFlashError::Program {
                flag: c.misaligned,
                addr
            },
            "{}",
            c.part
        );
        assert_eq!(read(&f, g.base(), 64), vec![g.erased; 64], "{}", c.part);
        assert_eq!(
            f.unit_state(g.base()),
            Some(UnitState::Erased),
            "{}",
            c.part
        );
    }
}

#[test]
fn short_write_is_refused_with_the_family_flag_and_changes_nothing() {
    for c in CASES {
        let mut f = SimFlash::new(flash_part(c.part));
        let g = *f.geometry();
        let unit = g.write_unit as usize;
        // One and a half units: even the whole first unit must not be programmed.
        let err = f
            .program_abs(g.base(), &pattern(unit + unit / 2, 2))
            .unwrap_err();
        assert_eq!(
            err,
            SimFlashError::Program {
                flag: c.short,
                addr: g.base() + unit as u32
            },
            "{}",
            c.part
        );
        assert_eq!(
            read(&f, g.base(), 2 * unit),
            vec![g.erased; 2 * unit],
            "{}",
            c.part
        );
        // A sub-unit write (a single byte) too.
        let err = f.program_abs(g.base(), &[0x12]).unwrap_err();
        assert_eq!(
            err,
            SimFlashError::Program {
                flag: c.short,
                addr: g.base()
            },
            "{}",
            c.part
        );
    }
}

#[test]
fn second_program_of_a_unit_behaves_as_the_family_does() {
    for c in CASES {
        let mut f = SimFlash::new(flash_part(c.part));
        let g = *f.geometry();
        let unit = g.write_unit as usize;
        let at = g.base() + 4 * unit as u32;
        let first = pattern(unit, 0x40);
        f.program_abs(at, &first).unwrap();
        let second: Vec<u8> = first.iter().map(|b| b ^ 0xF0 | 0x01).collect();
        let result = f.program_abs(at, &second);
        match c.second_program {
            Second::Refused(flag) => {
                assert_eq!(
                    result,
                    Err(SimFlashError::Program { flag, addr: at }),
                    "{}",
                    c.part
                );
                assert_eq!(
                    read(&f, at, unit),
                    first,
                    "{}: data must be unchanged",
                    c.part
                );
            }
            Second::Poisons => {
                assert_eq!(result, Ok(()), "{}: no hardware check", c.part);
                let mut buf = vec![0u8; unit];
                assert_eq!(
                    f.read_abs(at, &mut buf),
                    Err(SimFlashError::Ecc { addr: at }),
                    "{}",
                    c.part
                );
                assert_eq!(f.scan_torn(g.base()..g.end()), vec![at], "{}", c.part);
                // Neighbours are unaffected.
                read(&f, at - unit as u32, unit);
                read(&f, at + unit as u32, unit);
            }
            Second::AndsBits => {
                assert_eq!(result, Ok(()), "{}", c.part);
                let expect: Vec<u8> = first.iter().zip(&second).map(|(a, b)| a & b).collect();
                assert_eq!(read(&f, at, unit), expect, "{}", c.part);
            }
        }
    }
}

#[test]
fn programming_the_erased_value_still_uses_the_unit_up() {
    for name in ["stm32l475vg", "stm32g474re", "stm32u585ai"] {
        let mut f = SimFlash::new(flash_part(name));
        let g = *f.geometry();
        let unit = g.write_unit as usize;
        f.program_abs(g.base(), &vec![0xFF; unit]).unwrap();
        let err = f.program_abs(g.base(), &pattern(unit, 3)).unwrap_err();
        assert_eq!(
            err,
            SimFlashError::Program {
                flag: HwFlag::Progerr,
                addr: g.base()
            },
            "{name}"
        );
    }
}

#[test]
fn all_zeros_overwrite_is_allowed_on_l4_g4_u5_and_their_kin() {
    for name in [
        "stm32l475vg",
        "stm32l4r5zi",
        "stm32g474re",
        "stm32g071rb",
        "stm32u585ai",
        "stm32l552ze",
    ] {
        let mut f = SimFlash::new(flash_part(name));
        let g = *f.geometry();
        let unit = g.write_unit as usize;
        f.program_abs(g.base(), &pattern(unit, 9)).unwrap();
        f.program_abs(g.base(), &vec![0u8; unit])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read(&f, g.base(), unit), vec![0u8; unit], "{name}");
        // Still no non-zero rewrite afterwards.
        assert!(
            f.program_abs(g.base(), &pattern(unit, 4)).is_err(),
            "{name}"
        );
    }
}

#[test]
fn all_zeros_overwrite_poisons_an_h7_flash_word() {
    let mut f = SimFlash::new(flash_part("stm32h753zi"));
    f.program_abs(0x0800_0000, &pattern(32, 5)).unwrap();
    f.program_abs(0x0800_0000, &[0u8; 32]).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(
        f.read_abs(0x0800_0000, &mut buf),
        Err(SimFlashError::Ecc { addr: 0x0800_0000 })
    );
}

#[test]
fn f4_and_f7_bits_only_go_from_one_to_zero() {
    for name in ["stm32f407vg", "stm32f429zi", "stm32f767zi", "stm32f746zg"] {
        let mut f = SimFlash::new(flash_part(name));
        let base = f.geometry().base();
        f.program_abs(base, &[0xF0, 0x0F, 0xAA, 0xFF]).unwrap();
        f.program_abs(base, &[0xCC, 0xFF, 0x0F, 0x7E]).unwrap();
        assert_eq!(read(&f, base, 4), vec![0xC0, 0x0F, 0x0A, 0x7E], "{name}");
        // Writing ones back does not set bits.
        f.program_abs(base, &[0xFF; 4]).unwrap();
        assert_eq!(read(&f, base, 4), vec![0xC0, 0x0F, 0x0A, 0x7E], "{name}");
        assert!(
            f.scan_torn(base..base + 4).is_empty(),
            "{name}: no ECC on F4/F7"
        );
    }
}

#[test]
fn erase_of_a_non_sector_range_is_refused() {
    for c in CASES {
        let mut f = SimFlash::new(flash_part(c.part));
        let g = *f.geometry();
        let s0 = g.sector_at(g.base()).unwrap();
        let unit = g.write_unit;
        f.program_abs(g.base(), &pattern(unit as usize, 6)).unwrap();
        let before = read(&f, g.base(), unit as usize);
        // Start inside a sector.
        let err = f.erase_abs(g.base() + unit, s0.end()).unwrap_err();
        assert!(
            matches!(err, SimFlashError::EraseNotSectorAligned { .. }),
            "{}: {err}",
            c.part
        );
        // End inside a sector.
        let err = f.erase_abs(g.base(), s0.end() - unit).unwrap_err();
        assert!(
            matches!(err, SimFlashError::EraseNotSectorAligned { .. }),
            "{}: {err}",
            c.part
        );
        assert_eq!(
            read(&f, g.base(), unit as usize),
            before,
            "{}: refused erase changed data",
            c.part
        );
        assert_eq!(f.wear(g.base()), Some(0), "{}", c.part);
        // The real sector works.
        f.erase_abs(s0.addr, s0.end()).unwrap();
        assert_eq!(
            read(&f, g.base(), unit as usize),
            vec![g.erased; unit as usize],
            "{}",
            c.part
        );
    }
}

#[test]
fn f4_erase_follows_the_non_uniform_sector_map() {
    let mut f = SimFlash::new(flash_part("stm32f407vg"));
    // Sector 4 is 64 KiB at 0x0801_0000, sector 5 is 128 KiB at 0x0802_0000.
    assert!(f.erase_abs(0x0801_0000, 0x0802_0000).is_ok());
    assert!(matches!(
        f.erase_abs(0x0801_0000, 0x0801_4000),
        Err(SimFlashError::EraseNotSectorAligned { .. })
    ));
    assert!(matches!(
        f.erase_abs(0x0802_0000, 0x0803_0000),
        Err(SimFlashError::EraseNotSectorAligned { .. })
    ));
    // Several whole sectors in one call: 16 KiB sectors 0-3 and the 64 KiB sector 4.
    f.preload(0x0800_0000, &[0u8; 16]).unwrap();
    f.preload(0x0801_FFF0, &[0u8; 16]).unwrap();
    f.erase_abs(0x0800_0000, 0x0802_0000).unwrap();
    assert_eq!(read(&f, 0x0800_0000, 16), vec![0xFF; 16]);
    assert_eq!(read(&f, 0x0801_FFF0, 16), vec![0xFF; 16]);
    assert_eq!(f.wear(0x0800_4000), Some(1));
    assert_eq!(f.wear(0x0801_0000), Some(2));
}

#[test]
fn h753_bank2_write_and_erase_never_touch_bank1() {
    let mut f = SimFlash::new(flash_part("stm32h753zi"));
    let bank1 = pattern(64, 0x11);
    f.program_abs(0x0800_0000, &bank1).unwrap();
    let bank2 = pattern(64, 0x22);
    f.program_abs(0x0810_0000, &bank2).unwrap();
    assert_eq!(read(&f, 0x0800_0000, 64), bank1);
    assert_eq!(read(&f, 0x0810_0000, 64), bank2);
    // Bank-2 sector 0 (sector 8 overall) erase leaves bank 1 intact.
    f.erase_abs(0x0810_0000, 0x0812_0000).unwrap();
    assert_eq!(read(&f, 0x0800_0000, 64), bank1);
    assert_eq!(read(&f, 0x0810_0000, 64), vec![0xFF; 64]);
    assert_eq!(f.wear(0x0800_0000), Some(0));
    assert_eq!(f.wear(0x0810_0000), Some(1));
    // A refused program in bank 2 raises bank 2's flag only (SR2, not SR1).
    assert!(f.program_abs(0x0810_0010, &[0u8; 32]).is_err());
    assert_eq!(f.bank_flag(1), Some(brickless_flash::HwFlag::Incerr));
    assert_eq!(f.bank_flag(0), None);
    f.clear_flags();
    assert_eq!(f.bank_flag(1), None);
    // The NorFlash offset of bank 2 is 1 MiB.
    let s = f.geometry().sector_at(0x0810_0000).unwrap();
    assert_eq!((s.bank, s.index), (1, 0));
}

#[test]
fn bank2_bases_match_the_reference() {
    for (name, bank2) in [
        ("stm32h753zi", 0x0810_0000),
        ("stm32h743vg", 0x0810_0000),
        ("stm32h7a3zi", 0x0810_0000),
        ("stm32l475vg", 0x0808_0000),
        ("stm32l4r5zi", 0x0810_0000),
        ("stm32l073rz", 0x0801_8000),
        ("stm32f429zi", 0x0810_0000),
        ("stm32f767zi-dual", 0x0810_0000),
        ("stm32g474re", 0x0804_0000),
        ("stm32g474cc", 0x0804_0000),
        ("stm32g0b1re", 0x0804_0000),
        ("stm32u585ai", 0x0810_0000),
        ("stm32l552ze", 0x0804_0000),
    ] {
        let mut f = SimFlash::new(flash_part(name));
        let g = *f.geometry();
        assert_eq!(g.banks[1].base, bank2, "{name}");
        let s = g.sector_at(bank2).unwrap();
        assert_eq!((s.bank, s.index, s.addr), (1, 0, bank2), "{name}");
        // Programming the first bank-2 unit leaves the last bank-1 unit alone.
        let unit = g.write_unit;
        let last1 = g.banks[0].end() - unit;
        f.program_abs(bank2, &pattern(unit as usize, 7)).unwrap();
        assert_eq!(f.unit_state(last1), Some(UnitState::Erased), "{name}");
    }
}

#[test]
fn h743vg_hole_between_banks_is_not_flash() {
    let mut f = SimFlash::new(flash_part("stm32h743vg"));
    let g = *f.geometry();
    assert_eq!(g.total_size(), 1024 * 1024);
    assert_eq!(g.span(), 0x18_0000, "bank 2 ends at 0x0818_0000");
    for addr in [0x0808_0000, 0x080C_0000, 0x080F_FFE0] {
        assert_eq!(
            f.program_abs(addr, &[0u8; 32]),
            Err(SimFlashError::Unmapped { addr, len: 32 }),
            "{addr:#x}"
        );
        let mut buf = [0u8; 4];
        assert!(matches!(
            f.read_abs(addr, &mut buf),
            Err(SimFlashError::Unmapped { .. })
        ));
        assert!(g.sector_at(addr).is_none());
    }
    assert!(matches!(
        f.erase_abs(0x0808_0000, 0x080A_0000),
        Err(SimFlashError::Unmapped { .. })
    ));
    // A write straddling the end of bank 1 into the hole is refused whole.
    assert!(matches!(
        f.program_abs(0x0807_FFE0, &[0u8; 64]),
        Err(SimFlashError::Unmapped { .. })
    ));
    assert_eq!(f.unit_state(0x0807_FFE0), Some(UnitState::Erased));
    // An erase spanning the hole too.
    assert!(f.erase_abs(0x0806_0000, 0x0812_0000).is_err());
    // Both banks work.
    f.program_abs(0x0807_FFE0, &[0u8; 32]).unwrap();
    f.program_abs(0x0810_0000, &[0u8; 32]).unwrap();
    assert_eq!(f.op_count(), 8, "refused calls count as operations too");
}

#[test]
fn g4_256k_hole_before_bank2_is_not_flash() {
    let mut f = SimFlash::new(flash_part("stm32g474cc"));
    assert!(matches!(
        f.program_abs(0x0802_0000, &[0u8; 8]),
        Err(SimFlashError::Unmapped { .. })
    ));
    assert!(matches!(
        f.erase_abs(0x0802_0000, 0x0802_0800),
        Err(SimFlashError::Unmapped { .. })
    ));
    f.program_abs(0x0801_FFF8, &[0u8; 8]).unwrap();
    f.program_abs(0x0804_0000, &[0u8; 8]).unwrap();
}

#[test]
fn l0_erased_value_is_zero_and_programs_need_zero_words() {
    for name in ["stm32l073rz", "stm32l053r8"] {
        let mut f = SimFlash::new(flash_part(name));
        let g = *f.geometry();
        assert_eq!(g.erased, 0x00);
        assert_eq!(
            read(&f, g.base(), 256),
            vec![0u8; 256],
            "{name}: fresh flash reads 0x00"
        );
        f.program_abs(g.base(), &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(
            f.program_abs(g.base() + 4, &[9, 9, 9, 9]),
            Err(SimFlashError::Program {
                flag: HwFlag::Notzeroerr,
                addr: g.base() + 4
            })
        );
        // 128-byte pages: erasing page 0 clears it to 0x00, page 1 is untouched.
        f.program_abs(g.base() + 128, &[0xAB; 4]).unwrap();
        f.erase_abs(g.base(), g.base() + 128).unwrap();
        assert_eq!(read(&f, g.base(), 8), vec![0u8; 8], "{name}");
        assert_eq!(read(&f, g.base() + 128, 4), vec![0xAB; 4], "{name}");
        assert!(
            f.erase_abs(g.base(), g.base() + 64).is_err(),
            "{name}: half a page"
        );
    }
}

#[test]
fn writes_and_erases_past_the_end_are_out_of_bounds() {
    use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
    let mut f = SimFlash::new(flash_part("stm32l475vg"));
    let cap = f.capacity() as u32;
    assert_eq!(cap, 1024 * 1024);
    assert_eq!(
        f.write(cap, &[0u8; 8]).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        f.write(cap - 8, &[0u8; 16]).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        f.write(u32::MAX - 3, &[0u8; 8]).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        f.erase(cap, cap + 2048).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        f.write(1, &[0u8; 8]).unwrap_err().kind(),
        NorFlashErrorKind::NotAligned
    );
    let mut buf = [0u8; 4];
    assert_eq!(
        f.read(cap - 2, &mut buf).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    f.write(cap - 8, &[0u8; 8]).unwrap();
}

#[test]
fn timing_and_wear_are_accounted() {
    let mut f = SimFlash::new(flash_part("stm32h753zi"));
    f.program_abs(0x0800_0000, &[0u8; 64]).unwrap();
    let t = f.geometry().timing;
    assert_eq!(f.elapsed_us(), 2 * u64::from(t.program_unit_typ_us));
    f.erase_abs(0x0800_0000, 0x0804_0000).unwrap();
    // Two 128 KiB sectors at 1.1 s typical each.
    let erase = f.elapsed_us() - 2 * u64::from(t.program_unit_typ_us);
    assert!((2_150_000..=2_250_000).contains(&erase), "{erase}");
    assert_eq!(f.wear(0x0800_0000), Some(1));
    assert_eq!(f.wear(0x0802_0000), Some(1));
    assert_eq!(f.wear(0x0804_0000), Some(0));
    assert_eq!(f.max_wear(), 1);
    assert!(f.worn_out_sectors().is_empty());
    // Worst case: 2.2 s max per sector.
    assert!(f.elapsed_max_us() >= 4_400_000 && f.elapsed_max_us() > f.elapsed_us());
}

#[test]
fn l0_half_page_programs_in_the_time_of_one_word() {
    let mut f = SimFlash::new(flash_part("stm32l073rz"));
    let word = u64::from(f.geometry().timing.program_unit_typ_us);
    f.program_abs(0x0800_0000, &[1u8; 4]).unwrap();
    assert_eq!(f.elapsed_us(), word);
    // An aligned half-page: one step.
    f.program_abs(0x0800_0040, &[1u8; 64]).unwrap();
    assert_eq!(f.elapsed_us(), 2 * word);
    // Unaligned 64 bytes: 16 words.
    f.program_abs(0x0800_0084, &[1u8; 64]).unwrap();
    assert_eq!(f.elapsed_us(), 18 * word);
}

#[test]
fn preload_is_not_an_operation_and_ignores_rules() {
    let mut f = SimFlash::new(flash_part("stm32l475vg"));
    f.preload(0x0800_0003, b"factory").unwrap();
    f.preload(0x0800_0003, b"FACTORY").unwrap();
    assert_eq!(f.op_count(), 0);
    assert_eq!(read(&f, 0x0800_0003, 7), b"FACTORY");
    // The touched units count as programmed.
    assert_eq!(f.unit_state(0x0800_0000), Some(UnitState::Programmed));
    assert_eq!(f.unit_state(0x0800_0008), Some(UnitState::Programmed));
    assert_eq!(f.unit_state(0x0800_0010), Some(UnitState::Erased));
    assert!(f.program_abs(0x0800_0000, &[1; 8]).is_err());
    assert!(matches!(
        f.preload(0x0810_0000, &[1]),
        Err(SimFlashError::Unmapped { .. })
    ));
    f.fill(0x0800_0800, 16, 0x5A).unwrap();
    assert_eq!(read(&f, 0x0800_0800, 16), vec![0x5A; 16]);
}

#[test]
fn empty_calls_at_the_end_are_fine_and_count_as_operations() {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    let mut f = SimFlash::new(flash_part("stm32g071rb"));
    let cap = f.capacity() as u32;
    f.read(cap, &mut []).unwrap();
    f.write(cap, &[]).unwrap();
    f.erase(cap, cap).unwrap();
    assert_eq!(f.op_count(), 2);
    assert!(f.read(cap + 1, &mut []).is_err());
}
