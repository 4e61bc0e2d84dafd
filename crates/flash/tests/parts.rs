//! The part table is consistent and matches the reference facts.

use brickless_flash::{part, parts_with_pid, Ecc, EccFault, Family, RewriteRule, PARTS};

#[test]
fn every_geometry_is_well_formed() {
    let mut names = std::collections::HashSet::new();
    for p in PARTS {
        assert!(names.insert(p.name), "{} twice", p.name);
        assert_eq!(p.name, p.name.to_lowercase());
        let g = &p.geometry;
        assert_eq!(g.base(), 0x0800_0000, "{}", p.name);
        assert!(
            g.write_unit.is_power_of_two() && (4..=32).contains(&g.write_unit),
            "{}",
            p.name
        );
        // Banks in order, not overlapping.
        for pair in g.banks.windows(2) {
            assert!(pair[0].end() <= pair[1].base, "{}", p.name);
        }
        // Sectors tile each bank, every sector is a multiple of the write unit.
        let mut expect = g.base();
        let mut bank = 0;
        let mut count = 0;
        for s in g.sectors() {
            if s.bank != bank {
                bank = s.bank;
                expect = g.banks[bank as usize].base;
            }
            assert_eq!(s.addr, expect, "{}", p.name);
            assert_eq!(s.size % g.write_unit, 0, "{}", p.name);
            assert_eq!(g.sector_at(s.addr), Some(s), "{}", p.name);
            assert_eq!(g.sector_at(s.end() - 1), Some(s), "{}", p.name);
            expect = s.end();
            count += 1;
        }
        assert_eq!(count, g.sector_count(), "{}", p.name);
        assert_eq!(g.sector_at(g.end()), None);
        assert_eq!(g.sector_at(g.base() - 1), None);
        assert!(p.ram_size > 0 && p.ram_base >= 0x2000_0000, "{}", p.name);
        assert!(p.is_valid_stack_pointer(p.ram_base + p.ram_size));
        assert!(!p.is_valid_stack_pointer(p.ram_base + p.ram_size + 4));
        assert!(g.timing.erase_per_kib_typ_us <= g.timing.erase_per_kib_max_us);
        assert!(g.timing.program_unit_typ_us <= g.timing.program_unit_max_us);
        assert!(g.endurance_cycles >= 1_000);
        // 256 KiB-aligned ranges are erasable wherever the flash is that big (SimFlash's
        // NorFlash::ERASE_SIZE promise).
        for bank in g.banks {
            let mut at = bank.base;
            while at + 256 * 1024 <= bank.end() {
                assert!(
                    g.is_erasable_range(at, at + 256 * 1024),
                    "{} {at:#x}",
                    p.name
                );
                at += 256 * 1024;
            }
        }
    }
}

#[test]
fn family_rules_match_the_reference_table() {
    let h753 = part("stm32h753zi").unwrap();
    assert_eq!(h753.geometry.write_unit, 32);
    assert_eq!(h753.geometry.rewrite, RewriteRule::OnceNoHwCheck);
    assert_eq!(h753.geometry.ecc, Ecc::SecDed(EccFault::BusFault));
    assert_eq!(h753.geometry.total_size(), 2 * 1024 * 1024);
    assert_eq!(h753.geometry.sector_count(), 16);
    assert_eq!(h753.pid, 0x450);

    let h7a3 = part("stm32h7a3zi").unwrap();
    assert_eq!(
        (h7a3.geometry.write_unit, h7a3.geometry.max_sector_size()),
        (16, 8192)
    );
    assert_eq!(h7a3.geometry.sector_count(), 256);

    let l475 = part("stm32l475vg").unwrap();
    assert_eq!(l475.geometry.write_unit, 8);
    assert_eq!(l475.geometry.rewrite, RewriteRule::OnceExceptAllZeros);
    assert_eq!(l475.geometry.ecc, Ecc::SecDed(EccFault::Nmi));
    assert_eq!(l475.pid, 0x415);
    // 24.47 ms max per 2 KiB page.
    assert_eq!(l475.geometry.timing.erase_max_us(2048), 24_470);

    let l073 = part("stm32l073rz").unwrap();
    assert_eq!(l073.geometry.erased, 0x00);
    assert_eq!(l073.geometry.rewrite, RewriteRule::NotZeroErr);
    assert_eq!(l073.geometry.ecc, Ecc::SecOnly);
    assert_eq!(l073.geometry.min_sector_size(), 128);
    assert_eq!(l073.geometry.total_size(), 192 * 1024);
    assert_eq!(l073.pid, 0x447);

    let f407 = part("stm32f407vg").unwrap();
    let sizes: Vec<u32> = f407.geometry.sectors().map(|s| s.size / 1024).collect();
    assert_eq!(
        sizes,
        [16, 16, 16, 16, 64, 128, 128, 128, 128, 128, 128, 128]
    );
    assert_eq!(f407.geometry.rewrite, RewriteRule::BitwiseAnd);
    assert_eq!(f407.geometry.ecc, Ecc::None);
    assert_eq!(f407.pid, 0x413);
    // 4 s max per 128 KiB sector.
    assert_eq!(f407.geometry.timing.erase_max_us(128 * 1024), 4_000_000);

    let f767 = part("stm32f767zi").unwrap();
    let sizes: Vec<u32> = f767.geometry.sectors().map(|s| s.size / 1024).collect();
    assert_eq!(
        sizes,
        [32, 32, 32, 32, 128, 256, 256, 256, 256, 256, 256, 256]
    );
    let dual = part("stm32f767zi-dual").unwrap();
    assert_eq!(dual.geometry.banks.len(), 2);
    assert_eq!(dual.geometry.sector_count(), 24);

    let g431 = part("stm32g431kb").unwrap();
    assert_eq!(g431.geometry.total_size(), 128 * 1024);
    assert_eq!(
        part("stm32g474re-single")
            .unwrap()
            .geometry
            .max_sector_size(),
        4096
    );
    assert_eq!(part("stm32u585ai").unwrap().geometry.write_unit, 16);
    assert_eq!(part("stm32l4r5zi").unwrap().geometry.family, Family::L4Plus);
}

#[test]
fn h743vg_has_a_hole_between_its_banks() {
    let g = part("stm32h743vg").unwrap().geometry;
    assert_eq!(g.total_size(), 1024 * 1024);
    assert_eq!(g.banks[0].end(), 0x0808_0000);
    assert_eq!(g.banks[1].base, 0x0810_0000);
    assert!(!g.contains(0x0808_0000));
    assert!(!g.contains_range(0x0807_FFF0, 32));
    assert!(g.contains_range(0x0807_FFE0, 32));
    assert!(!g.is_erasable_range(0x0806_0000, 0x0812_0000));
    assert_eq!(g.bank_at(0x0810_0000), Some(1));
}

#[test]
fn contiguous_banks_form_one_range() {
    let g = part("stm32h753zi").unwrap().geometry;
    assert!(g.contains_range(0x080F_FFE0, 64));
    assert!(g.is_erasable_range(0x080E_0000, 0x0812_0000));
    assert!(!g.contains_range(0x081F_FFE0, 64));
    assert!(!g.contains_range(u32::MAX - 4, 16));
}

#[test]
fn pids_map_back_to_parts() {
    let h7: Vec<&str> = parts_with_pid(0x450).map(|p| p.name).collect();
    assert_eq!(
        h7,
        ["stm32h753zi", "stm32h755zi", "stm32h743zi", "stm32h743vg"]
    );
    for p in PARTS {
        assert!(parts_with_pid(p.pid).any(|q| q.name == p.name));
    }
    assert_eq!(parts_with_pid(0x123).count(), 0);
}

#[test]
fn g4_bank2_is_at_0x0804_0000_even_on_256k_parts() {
    let g = part("stm32g474cc").unwrap().geometry;
    assert_eq!(g.total_size(), 256 * 1024);
    assert_eq!(g.banks[1].base, 0x0804_0000);
    assert!(!g.contains(0x0802_0000), "hole after the 128 KiB bank 1");
    assert!(!g.contains(0x0803_FFFF));
    assert_eq!(
        g.sector_at(0x0804_0000).map(|s| (s.bank, s.index)),
        Some((1, 0))
    );
    assert_eq!(
        part("stm32g474re").unwrap().geometry.banks[1].base,
        0x0804_0000
    );
}
