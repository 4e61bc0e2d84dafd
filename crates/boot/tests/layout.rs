//! Default layouts fit every modelled part; bad specs get errors that name the fix.
use brickless_boot::layout::{plan_record_len, DEFAULT_MIN_UNIT, DIGEST_LEN, RECORD_FIXED_LEN};
use brickless_boot::{default_layout, Layout, LayoutError, LayoutSpec, Region, StrategyKind};
use brickless_flash::{part, Bank, Geometry, SectorRun, PARTS};

#[test]
fn default_layouts_validate_on_every_part() {
    for p in PARTS {
        for strategy in StrategyKind::ALL {
            if !strategy.available_on(&p.geometry) {
                assert_eq!(
                    default_layout(&p.geometry, strategy),
                    Err(LayoutError::NoBankSwap),
                    "{}",
                    p.name
                );
                continue;
            }
            let layout = default_layout(&p.geometry, strategy)
                .unwrap_or_else(|e| panic!("{} {}: {e}", p.name, strategy.name()));
            let s = layout.spec();
            println!(
                "{:20} {:9} unit {:6} boot {:#x}+{:#x} state {:#x}+{:#x},{:#x}+{:#x} primary {:#x}+{:#x} secondary {:#x}+{:#x}",
                p.name, strategy.name(), s.unit, s.bootloader.start, s.bootloader.size, s.state[0].start,
                s.state[0].size, s.state[1].start, s.state[1].size, s.primary.start, s.primary.size,
                s.secondary.start, s.secondary.size
            );
            assert!(layout.primary_units() >= 1, "{}: empty primary", p.name);
            assert!(s.bootloader.size >= 32 * 1024);
            assert!(s.unit >= DEFAULT_MIN_UNIT, "{}: unit {}", p.name, s.unit);
            assert_state_fits_its_plan(&p.geometry, &layout);
        }
    }
}

fn h7_spec() -> LayoutSpec {
    let k = 128 * 1024;
    LayoutSpec {
        bootloader: Region::new(0x0800_0000, k),
        state: [Region::new(0x0802_0000, k), Region::new(0x0804_0000, k)],
        primary: Region::new(0x0806_0000, 4 * k),
        secondary: Region::new(0x080E_0000, 5 * k),
        unit: k,
        strategy: StrategyKind::Swap,
    }
}

#[test]
fn hand_written_h7_layout_is_accepted() {
    let g = &part("stm32h753zi").unwrap().geometry;
    Layout::new(h7_spec(), g).unwrap();
}

#[test]
fn errors_say_what_to_change() {
    let g = &part("stm32h753zi").unwrap().geometry;
    let mut spec = h7_spec();
    spec.primary.start += 0x400;
    let e = Layout::new(spec, g).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::NotSectorAligned {
                below: 0x0806_0000,
                above: 0x0808_0000,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("0x08060000"), "{e}");

    let mut spec = h7_spec();
    spec.secondary.size = 4 * 128 * 1024;
    let e = Layout::new(spec, g).unwrap_err();
    assert!(matches!(e, LayoutError::SecondaryTooSmall { .. }), "{e:?}");
    spec.strategy = StrategyKind::Overwrite;
    Layout::new(spec, g).unwrap();

    let mut spec = h7_spec();
    spec.unit = 64 * 1024;
    assert!(matches!(
        Layout::new(spec, g).unwrap_err(),
        LayoutError::BadUnit { .. }
    ));

    let mut spec = h7_spec();
    spec.state[1] = spec.state[0];
    assert!(matches!(
        Layout::new(spec, g).unwrap_err(),
        LayoutError::Overlap { .. }
    ));

    let mut spec = h7_spec();
    spec.secondary.size = 64 * 128 * 1024;
    assert!(matches!(
        Layout::new(spec, g).unwrap_err(),
        LayoutError::OutsideFlash { .. }
    ));

    // F4: a 64 KiB unit cannot hold the 128 KiB sector 5.
    let f4 = &part("stm32f407vg").unwrap().geometry;
    let spec = LayoutSpec {
        bootloader: Region::new(0x0800_0000, 0x8000),
        state: [
            Region::new(0x0800_8000, 0x4000),
            Region::new(0x0800_C000, 0x4000),
        ],
        primary: Region::new(0x0801_0000, 0x50000),
        secondary: Region::new(0x0806_0000, 0x60000),
        unit: 0x10000,
        strategy: StrategyKind::Swap,
    };
    let e = Layout::new(spec, f4).unwrap_err();
    assert!(matches!(e, LayoutError::BadUnit { .. }), "{e:?}");
}

/// Each default state copy holds the two plan records its primary needs, and is not larger
/// than that (or 4 KiB) by more than two sectors (the size is guessed before the slots are
/// placed, then rounded up to sectors): the rest of the flash goes to the slots.
fn assert_state_fits_its_plan(g: &Geometry, layout: &Layout) {
    let s = layout.spec();
    let needed = 2 * plan_record_len(layout.primary_units(), g.write_unit);
    let largest_sector = g.sectors().map(|x| x.size).max().unwrap_or(0);
    for r in s.state {
        assert!(r.size >= needed, "state {r:?} below {needed}");
        assert!(
            r.size <= needed.max(4096) + 2 * largest_sector,
            "state {r:?} much larger than {needed}"
        );
    }
}

#[test]
fn a_plan_record_is_the_fixed_part_and_two_digests_a_unit_in_whole_write_units() {
    let digest = DIGEST_LEN as u32;
    assert_eq!(plan_record_len(0, 8), RECORD_FIXED_LEN);
    assert_eq!(plan_record_len(239, 8), RECORD_FIXED_LEN + 2 * 239 * digest);
    assert_eq!(plan_record_len(3, 32), RECORD_FIXED_LEN + 2 * 3 * digest);
    // Rounded up to the write unit: 128 + 32 = 160 bytes take one 256-byte unit.
    assert_eq!(plan_record_len(1, 256), 256);
    assert_eq!(plan_record_len(5, 256), 512);
}

#[test]
fn a_state_copy_must_hold_two_plans_of_the_primary() {
    // L475: 2 KiB pages, 8-byte write unit; a primary of 100 one-page units needs
    // 2 × (128 + 100 × 32) = 6656 bytes per state copy: 3 pages are too few, 4 enough.
    let g = &part("stm32l475vg").unwrap().geometry;
    let page = 2048;
    let spec = |state_pages: u32| {
        let s0 = 0x0800_8000;
        let s1 = s0 + state_pages * page;
        let primary = s1 + state_pages * page;
        LayoutSpec {
            bootloader: Region::new(0x0800_0000, 0x8000),
            state: [
                Region::new(s0, state_pages * page),
                Region::new(s1, state_pages * page),
            ],
            primary: Region::new(primary, 100 * page),
            secondary: Region::new(primary + 100 * page, 101 * page),
            unit: page,
            strategy: StrategyKind::Swap,
        }
    };
    assert_eq!(
        Layout::new(spec(3), g).unwrap_err(),
        LayoutError::StateTooSmall {
            index: 0,
            size: 3 * page,
            needed: 6656
        }
    );
    Layout::new(spec(4), g).unwrap();
}

/// 2 MiB of 1 KiB pages in one bank (an F1/F0-like part, not in the table).
static SMALL_PAGES: [Bank; 1] = [Bank {
    base: 0x0800_0000,
    sectors: &[SectorRun {
        size: 1024,
        count: 2048,
    }],
}];

/// 2 MiB + 32 KiB of 1 KiB pages: exactly 256 units of 4 KiB in each slot's guess.
static SMALL_PAGES_256: [Bank; 1] = [Bank {
    base: 0x0800_0000,
    sectors: &[SectorRun {
        size: 1024,
        count: 2080,
    }],
}];

#[test]
fn default_units_stop_growing_at_256_a_slot() {
    let g = Geometry {
        banks: &SMALL_PAGES_256,
        ..part("stm32l475vg").unwrap().geometry
    };
    let layout = default_layout(&g, StrategyKind::Overwrite).unwrap();
    assert_eq!(layout.spec().unit, 4096);
}

/// Three banks with holes between them: after the bootloader and the state, runs of 4, 40
/// and 10 pages of 2 KiB.
static THREE_BANKS: [Bank; 3] = [
    Bank {
        base: 0x0800_0000,
        sectors: &[SectorRun {
            size: 2048,
            count: 24,
        }],
    },
    Bank {
        base: 0x0802_0000,
        sectors: &[SectorRun {
            size: 2048,
            count: 40,
        }],
    },
    Bank {
        base: 0x0804_0000,
        sectors: &[SectorRun {
            size: 2048,
            count: 10,
        }],
    },
];

#[test]
fn default_slots_take_the_longest_run_between_holes() {
    let g = Geometry {
        banks: &THREE_BANKS,
        ..part("stm32l475vg").unwrap().geometry
    };
    // Swap: the secondary is one unit larger, so 19 + 20 of the 40 units.
    for (strategy, units) in [(StrategyKind::Swap, 19), (StrategyKind::Overwrite, 20)] {
        let layout = default_layout(&g, strategy).unwrap();
        let s = layout.spec();
        assert_eq!(s.unit, 2048);
        assert_eq!(
            s.primary,
            Region::new(0x0802_0000, units * 2048),
            "{}",
            strategy.name()
        );
        assert!(s.secondary.end() <= 0x0802_0000 + 40 * 2048);
    }
}

#[test]
fn default_units_grow_until_a_slot_has_at_most_256() {
    // 1 KiB pages would make 1000 units a slot; the default layout doubles its unit from
    // 2 KiB until the plan stays short.
    let g = Geometry {
        banks: &SMALL_PAGES,
        ..part("stm32l475vg").unwrap().geometry
    };
    for strategy in [StrategyKind::Swap, StrategyKind::Overwrite] {
        let layout = default_layout(&g, strategy).unwrap();
        let s = layout.spec();
        assert_eq!(s.unit, 4096, "{}", strategy.name());
        assert!(
            (200..=256).contains(&layout.primary_units()),
            "{}: {} units",
            strategy.name(),
            layout.primary_units()
        );
        assert_state_fits_its_plan(&g, &layout);
    }
}

#[test]
fn bank_swap_layouts_mirror_every_region_into_bank_2() {
    let mut dual = 0;
    for p in PARTS {
        let g = &p.geometry;
        let Some(mirror) = g.bank_mirror() else {
            continue;
        };
        dual += 1;
        let layout =
            default_layout(g, StrategyKind::BankSwap).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let s = layout.spec();
        let bank1 = g.banks[0];
        assert_eq!(s.bootloader.start, bank1.base, "{}", p.name);
        assert_eq!(s.secondary.start, s.primary.start + mirror, "{}", p.name);
        assert_eq!(s.secondary.size, s.primary.size, "{}", p.name);
        assert_eq!(s.state[1].start, s.state[0].start + mirror, "{}", p.name);
        assert!(s.primary.end() <= bank1.end() && s.primary.size >= s.unit);
        assert_eq!(
            layout.staging(),
            Region::new(s.secondary.start, s.primary.size)
        );
        assert_state_fits_its_plan(g, &layout);
    }
    assert!(dual >= 8, "only {dual} dual-bank parts");
}

#[test]
fn bank_swap_layouts_that_do_not_mirror_name_the_region_and_its_place() {
    let g = &part("stm32h753zi").unwrap().geometry;
    let good = default_layout(g, StrategyKind::BankSwap).unwrap();
    let spec = *good.spec();
    let moved = LayoutSpec {
        secondary: Region::new(
            spec.secondary.start + 128 * 1024,
            spec.secondary.size - 128 * 1024,
        ),
        ..spec
    };
    let err = Layout::new(moved, g).unwrap_err();
    assert_eq!(
        err,
        LayoutError::NotMirrored {
            region: "secondary",
            start: spec.secondary.start + 128 * 1024,
            expected: spec.primary.start + 0x10_0000,
        }
    );
    let place = format!("must start at {:#010x}", spec.primary.start + 0x10_0000);
    assert!(err.to_string().contains(&place), "{err}");
    // In place but not the primary's size: still not its twin.
    let short = LayoutSpec {
        secondary: Region::new(spec.secondary.start, spec.secondary.size - 128 * 1024),
        ..spec
    };
    assert!(matches!(
        Layout::new(short, g),
        Err(LayoutError::NotMirrored {
            region: "secondary",
            ..
        })
    ));
    let swapped_states = LayoutSpec {
        state: [spec.state[1], spec.state[0]],
        ..spec
    };
    assert!(matches!(
        Layout::new(swapped_states, g),
        Err(LayoutError::NotMirrored {
            region: "state 0",
            ..
        })
    ));
    let f407 = &part("stm32f407vg").unwrap().geometry;
    let swap = default_layout(f407, StrategyKind::Swap).unwrap();
    let err = Layout::new(
        LayoutSpec {
            strategy: StrategyKind::BankSwap,
            ..*swap.spec()
        },
        f407,
    )
    .unwrap_err();
    assert_eq!(err, LayoutError::NoBankSwap);
    assert!(err.to_string().contains("use the swap strategy"));
}
