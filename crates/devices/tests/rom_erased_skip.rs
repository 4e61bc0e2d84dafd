//! Blocks holding only the erased value are not programmed by our hosts: a merged image whose
//! gap or state area is filled with the erased value leaves those write units erased in the
//! faithful flash model (`SimFlash`), so they can still be programmed later (on L4/G4/U5 a
//! programmed unit refuses a second program; on H7 a second program poisons its ECC). Over
//! AN4221 (the shared `program` loop) and DfuSe (`.dfu` files), on L475, H753 and L073 (whose
//! flash erases to 0x00). Also: a `.dfu` file with nothing in it is refused before any erase.

use brickless_devices::clock::{SimClock, SimDelay};
use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::dfuse::{DfuServer, SimDfuUsb};
use brickless_devices::rom::i2c::{I2cServer, I2cServerOptions, SimI2cBus};
use brickless_flash_model::SimFlash;
use brickless_rom::an4221::I2cHost;
use brickless_rom::dfu_file::{DfuFile, DfuSeBuilder, TargetSpec};
use brickless_rom::dfuse::{DfuseError, DfuseHost, DfuseTarget};
use brickless_rom::program::{self, Layout};
use brickless_test_support::{assert_fill_units_erased, flash_part, rom_device};

/// (flash model part, product ID).
const PARTS: [(&str, u16); 3] = [
    ("stm32l475vg", 0x415),
    ("stm32h753zi", 0x450),
    ("stm32l073rz", 0x447),
];

fn core(name: &str, pid: u16) -> RomCore {
    RomCore::new(rom_device(pid), SimFlash::new(flash_part(name)))
}

/// `code` bytes, then `fill` × `fill_len` (a state area in a merged image), then `code` again.
fn merged_image(fill: u8, fill_len: usize) -> Vec<u8> {
    let code = |seed: u8| -> Vec<u8> {
        (0..1000u32)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 0x01)
            .collect()
    };
    let mut image = code(3);
    image.extend(std::iter::repeat_n(fill, fill_len));
    image.extend(code(9));
    image
}

/// The fill's address range in [`merged_image`] at `addr`.
fn fill_range(addr: u32, fill_len: usize) -> (u32, u32) {
    (addr + 1000, addr + 1000 + fill_len as u32)
}

/// New data for a unit-aligned place in the fill, as the firmware (or a later update) writes.
fn later_data() -> Vec<u8> {
    (0..64u8).map(|i| i ^ 0x5A).collect()
}

fn i2c_host(name: &str, pid: u16) -> I2cHost<SimI2cBus, SimDelay> {
    let clock = SimClock::new();
    let opts = I2cServerOptions::for_device(rom_device(pid));
    let server = I2cServer::new(core(name, pid), opts, clock.clone());
    let mut host = I2cHost::new(SimI2cBus::new(server), clock.delay(), opts.address).unwrap();
    host.connect().unwrap();
    host
}

#[test]
fn program_leaves_erased_value_units_erased_and_programmable() {
    for (name, pid) in PARTS {
        let d = rom_device(pid);
        let erased = d.geometry.erased;
        let mut host = i2c_host(name, pid);
        let addr = d.page(1).unwrap().addr;
        let fill_len = 4096 + 44;
        let image = merged_image(erased, fill_len);
        let mut last = (0, 0);
        let skipped = program::program(&mut host, d, addr, &image, true, &mut |ph, done, total| {
            if ph == program::Phase::Write {
                last = (done, total);
            }
        })
        .unwrap();
        assert_eq!(last, (image.len() as u32, image.len() as u32), "{name}");
        let unit = d.write_unit();
        let (from, to) = fill_range(addr, fill_len);
        assert_eq!(
            skipped,
            to / unit * unit - from.div_ceil(unit) * unit,
            "{name}"
        );
        assert_fill_units_erased(host.bus_mut().server.core.flash(), from, to, name);

        // Later, without an erase, the units of the fill take data (a state record).
        let at = from.div_ceil(unit) * unit + 2 * 256;
        let new = later_data();
        let again = program::write(
            &mut host,
            at,
            &new,
            Layout::for_device(d),
            &mut |_, _, _| {},
        );
        assert_eq!(again, Ok(0), "{name}: the fill's units can be programmed");
        program::verify(&mut host, at, &new, &mut |_, _, _| {}).unwrap();
        let mut expected = image.clone();
        let off = (at - addr) as usize;
        expected[off..off + new.len()].copy_from_slice(&new);
        program::verify(&mut host, addr, &expected, &mut |_, _, _| {}).unwrap();
    }
}

type Target = DfuseTarget<SimDfuUsb, SimDelay>;

fn dfu_target(name: &str, pid: u16) -> Target {
    let clock = SimClock::new();
    let server = DfuServer::new(core(name, pid), 2048, clock.clone());
    let layout = server.layout().to_string();
    let host = DfuseHost::new(SimDfuUsb::new(server), clock.delay(), 0, 2048);
    DfuseTarget::new(host, &layout, None).unwrap()
}

fn flash(t: &mut Target) -> &SimFlash {
    t.host.transport_mut().server.core.flash()
}

#[test]
fn dfu_file_leaves_erased_value_units_erased_and_programmable() {
    for (name, pid) in PARTS {
        let d = rom_device(pid);
        let erased = d.geometry.erased;
        let mut t = dfu_target(name, pid);
        let addr = d.page(2).unwrap().addr;
        let fill_len = 6000;
        let image = merged_image(erased, fill_len);
        let file = DfuSeBuilder::single(addr, &image).build().unwrap();
        let mut last = (0, 0);
        let written = t
            .program_dfu_file(
                &DfuFile::parse(&file).unwrap(),
                0,
                None,
                &mut |ph, done, total| {
                    if ph == program::Phase::Write {
                        last = (done, total);
                    }
                },
            )
            .unwrap();
        assert_eq!(last, (image.len() as u32, image.len() as u32), "{name}");
        assert_eq!(written.elements, 1);
        assert_eq!(written.bytes, image.len() as u64);
        let (from, to) = fill_range(addr, fill_len);
        assert!(
            written.skipped > 4096 && written.skipped <= fill_len as u64,
            "{name}: {written:?}"
        );
        assert_fill_units_erased(flash(&mut t), from, to, name);

        let unit = d.write_unit().max(8);
        let at = from.div_ceil(unit) * unit + 1024;
        let new = later_data();
        let layout = t.write_layout();
        program::write_with(&mut t, at, &new, layout, &mut [0; 2048], &mut |_, _, _| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut back = vec![0u8; new.len()];
        program::read(&mut t, at, &mut back, &mut |_, _, _| {})
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(back, new, "{name}");
    }
}

#[test]
fn dfu_file_without_data_is_refused_before_any_erase() {
    let d = rom_device(0x415);
    let empty_target = |alt: u8, elements: Vec<(u32, Vec<u8>)>| TargetSpec {
        alt_setting: alt,
        name: Some("Internal Flash".into()),
        elements,
    };
    let files = [
        // A target without elements.
        vec![empty_target(0, vec![])],
        // Elements of zero size.
        vec![empty_target(
            0,
            vec![(0x0800_0000, vec![]), (0x0800_4000, vec![])],
        )],
        // Data only for another alternate setting.
        vec![
            empty_target(0, vec![]),
            empty_target(1, vec![(0x1FFF_7800, vec![1; 8])]),
        ],
    ];
    for targets in files {
        let bytes = DfuSeBuilder {
            targets,
            ..DfuSeBuilder::default()
        }
        .build()
        .unwrap();
        let mut t = dfu_target("stm32l475vg", d.pid);
        let err = t
            .program_dfu_file(&DfuFile::parse(&bytes).unwrap(), 0, None, &mut |_, _, _| {})
            .unwrap_err();
        assert_eq!(err, DfuseError::NoData { alt_setting: 0 });
        let stats = t.host.transport_mut().server.stats;
        assert_eq!((stats.pages_erased, stats.blocks_written), (0, 0));
        assert_eq!(flash(&mut t).op_count(), 0, "nothing erased or written");
    }
    // A raw file (suffix only): no payload.
    let raw = brickless_rom::dfu_file::append_suffix(&[], 0x0483, 0xDF11, 0, 0x0100);
    let mut t = dfu_target("stm32l475vg", d.pid);
    let err = t
        .program_dfu_file(
            &DfuFile::parse(&raw).unwrap(),
            0,
            Some(0x0800_0000),
            &mut |_, _, _| {},
        )
        .unwrap_err();
    assert_eq!(err, DfuseError::NoData { alt_setting: 0 });
    assert_eq!(flash(&mut t).op_count(), 0);
}
