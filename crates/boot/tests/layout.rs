//! Default layouts fit every modelled part; bad specs get errors that name the fix.
use brickless_boot::{default_layout, Layout, LayoutError, LayoutSpec, Region, StrategyKind};
use brickless_flash::{part, PARTS};

#[test]
fn default_layouts_validate_on_every_part() {
    for p in PARTS {
        for strategy in StrategyKind::ALL {
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
