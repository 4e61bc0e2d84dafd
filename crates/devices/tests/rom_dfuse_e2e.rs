//! The DfuSe host (brickless-rom) against the virtual DFU bootloader (brickless-devices), end to
//! end over an in-process USB control interface: program, read back, verify, erase and leave
//! on H753, L475, F407 and L073; `.dfu` files; and injected faults.

use brickless_devices::clock::{SimClock, SimDelay};
use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::dfuse::{memory_layout, DfuServer, SimDfuUsb};
use brickless_rom::dfu_file::{DfuContents, DfuFile, DfuSeBuilder};
use brickless_rom::dfuse::{
    guess_device, DfuOp, DfuStatusCode, DfuTimeouts, DfuseError, DfuseHost, DfuseTarget,
    MemoryLayout, UsbError,
};
use brickless_rom::program;
use brickless_rom::target::{Erase, RomTarget};
use brickless_test_support::{pseudo_random_bytes, rom_device};

type Target = DfuseTarget<SimDfuUsb, SimDelay>;

const PARTS: [u16; 4] = [0x450, 0x415, 0x413, 0x447]; // H753, L475, F407, L073

fn setup(pid: u16) -> (Target, SimClock) {
    let d = rom_device(pid);
    let clock = SimClock::new();
    let server = DfuServer::new(RomCore::erased(d), 2048, clock.clone());
    let layout = server.layout().to_string();
    let usb = SimDfuUsb::new(server);
    let host = DfuseHost::new(usb, clock.delay(), 0, 2048);
    // No part given: it must be recognised from the layout string.
    let target = DfuseTarget::new(host, &layout, None).unwrap();
    (target, clock)
}

fn server(t: &mut Target) -> &mut DfuServer {
    &mut t.host.transport_mut().server
}

fn flash_bytes(t: &mut Target, addr: u32, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    server(t).core.read(addr, &mut buf).unwrap();
    buf
}

#[test]
fn layout_strings_match_the_rom_and_name_the_part() {
    assert_eq!(
        memory_layout(rom_device(0x413)),
        "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
    );
    for pid in PARTS {
        let text = memory_layout(rom_device(pid));
        let layout = MemoryLayout::parse(&text).unwrap();
        assert_eq!(layout.name(), "Internal Flash");
        assert_eq!(
            layout.total_size(),
            u64::from(rom_device(pid).geometry.total_size()),
            "{text}"
        );
        assert_eq!(guess_device(&text).map(|d| d.pid), Some(pid), "{text}");
    }
    assert!(memory_layout(rom_device(0x447)).ends_with("*128 g"));
}

#[test]
fn program_read_verify_erase_leave_on_four_parts() {
    for pid in PARTS {
        let d = rom_device(pid);
        let (mut t, clock) = setup(pid);
        assert_eq!(t.info().pid, pid);
        let erased = d.geometry.erased;
        let addr = d.page(1).unwrap().addr;
        let data = pseudo_random_bytes(5 * 1024 + 3, u64::from(pid));

        // The layout-only path: erase touched pages, write 2 KiB blocks, read back.
        let t0 = clock.now_ns();
        t.program_with_layout(addr, &data, &mut |_, _, _| {})
            .unwrap();
        assert!(clock.now_ns() > t0);
        assert_eq!(flash_bytes(&mut t, addr, data.len()), data, "{pid:#x}");
        let mut back = vec![0u8; data.len()];
        program::read(&mut t, addr, &mut back, &mut |_, _, _| {}).unwrap();
        assert_eq!(back, data, "{pid:#x}: upload");

        // The shared RomTarget path the other transports use.
        let other = d.page(0).unwrap().addr;
        let small = pseudo_random_bytes(700, 7);
        program::program(&mut t, d, other, &small, true, &mut |_, _, _| {}).unwrap();
        assert_eq!(flash_bytes(&mut t, other, small.len()), small, "{pid:#x}");

        // Page erase, then mass erase (L0 has none: a named device error).
        let page = d.page_index(addr).unwrap();
        t.erase(Erase::Pages(&[page])).unwrap();
        let p = d.page(page).unwrap();
        assert!(flash_bytes(&mut t, p.addr, p.size as usize)
            .iter()
            .all(|&b| b == erased));
        if pid == 0x447 {
            let err = t.erase(Erase::Mass).unwrap_err();
            assert_eq!(
                err,
                DfuseError::Device {
                    op: DfuOp::MassErase,
                    status: DfuStatusCode::Target
                }
            );
        } else {
            t.erase(Erase::Mass).unwrap();
            assert!(flash_bytes(&mut t, other, small.len())
                .iter()
                .all(|&b| b == erased));
            assert_eq!(server(&mut t).stats.mass_erases, 1);
        }
        assert!(server(&mut t).stats.pages_erased > 0);

        // Leave: the device jumps to the given address and leaves the bus.
        t.go(d.flash().start).unwrap();
        assert_eq!(server(&mut t).left_to, Some(d.flash().start));
        assert!(server(&mut t).gone);
    }
}

#[test]
fn a_dfu_file_programs_every_element() {
    let d = rom_device(0x413);
    let a = pseudo_random_bytes(3000, 1);
    let b = pseudo_random_bytes(100, 2);
    let file = DfuSeBuilder {
        targets: vec![brickless_rom::dfu_file::TargetSpec {
            alt_setting: 0,
            name: Some("Internal Flash".into()),
            elements: vec![(0x0800_0000, a.clone()), (0x0800_C000, b.clone())],
        }],
        ..DfuSeBuilder::default()
    }
    .build()
    .unwrap();
    let parsed = DfuFile::parse(&file).unwrap();
    assert!(parsed.suffix.matches_device(0x0483, 0xDF11));
    let DfuContents::DfuSe(image) = parsed.contents else {
        panic!("DfuSe expected")
    };
    assert_eq!(image.targets().count(), 1);
    let (mut t, _) = setup(d.pid);
    let written = t
        .program_dfu_file(&parsed, 0, None, &mut |_, _, _| {})
        .unwrap();
    assert_eq!(written.elements, 2);
    assert_eq!(written.bytes, (a.len() + b.len()) as u64);
    assert_eq!(flash_bytes(&mut t, 0x0800_0000, a.len()), a);
    assert_eq!(flash_bytes(&mut t, 0x0800_C000, b.len()), b);

    // Two elements in one page: the second must not erase the first.
    let shared = DfuSeBuilder {
        targets: vec![brickless_rom::dfu_file::TargetSpec {
            alt_setting: 0,
            name: None,
            elements: vec![(0x0800_0000, b.clone()), (0x0800_0400, a.clone())],
        }],
        ..DfuSeBuilder::default()
    }
    .build()
    .unwrap();
    let (mut t, _) = setup(d.pid);
    t.program_dfu_file(
        &DfuFile::parse(&shared).unwrap(),
        0,
        None,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(flash_bytes(&mut t, 0x0800_0000, b.len()), b);
    assert_eq!(flash_bytes(&mut t, 0x0800_0400, a.len()), a);

    // One element outside the flash: refused before anything is erased.
    let bad = DfuSeBuilder {
        targets: vec![brickless_rom::dfu_file::TargetSpec {
            alt_setting: 0,
            name: None,
            elements: vec![(0x0800_0000, a.clone()), (0x0900_0000, b.clone())],
        }],
        ..DfuSeBuilder::default()
    }
    .build()
    .unwrap();
    let (mut t, _) = setup(d.pid);
    let err = t
        .program_dfu_file(&DfuFile::parse(&bad).unwrap(), 0, None, &mut |_, _, _| {})
        .unwrap_err();
    assert_eq!(
        err,
        DfuseError::OutsideLayout {
            address: 0x0900_0000
        }
    );
    assert_eq!(server(&mut t).stats.pages_erased, 0);
}

#[test]
fn a_device_error_is_named_cleared_and_never_success() {
    let (mut t, _) = setup(0x415);
    server(&mut t).faults.fail_next_write = Some(DfuStatusCode::Prog);
    let err = t
        .program_with_layout(
            0x0800_0000,
            &pseudo_random_bytes(4096, 3),
            &mut |_, _, _| {},
        )
        .unwrap_err();
    assert_eq!(
        err,
        DfuseError::Device {
            op: DfuOp::Download(0x0800_0000),
            status: DfuStatusCode::Prog
        }
    );
    // The host cleared dfuERROR: the next command works.
    t.host.ensure_idle().unwrap();
    t.host.set_address(0x0800_0000).unwrap();
}

#[test]
fn busy_forever_is_a_bounded_timeout() {
    let (mut t, clock) = setup(0x413);
    server(&mut t).faults.busy_forever = true;
    let t0 = clock.now_ns();
    let err = t.erase(Erase::Pages(&[5])).unwrap_err(); // a 128 KiB sector
    let DfuseError::Timeout {
        op: DfuOp::ErasePage(0x0802_0000),
        waited_ms,
    } = err
    else {
        panic!("expected a page-erase timeout, got {err:?}");
    };
    let budget = 128 * DfuTimeouts::default().erase_per_kib_ms;
    assert!(waited_ms >= budget, "waited {waited_ms} of {budget} ms");
    let elapsed_ms = (clock.now_ns() - t0) / 1_000_000;
    assert!(elapsed_ms < u64::from(budget) * 3, "{elapsed_ms} ms");
}

#[test]
fn stalled_status_polls_are_retried_a_bounded_number_of_times() {
    let (mut t, _) = setup(0x415);
    server(&mut t).faults.stall_busy_polls = 2;
    t.erase(Erase::Pages(&[0])).unwrap();

    server(&mut t).faults.stall_busy_polls = 50;
    let err = t.erase(Erase::Pages(&[1])).unwrap_err();
    assert_eq!(
        err,
        DfuseError::Usb {
            op: DfuOp::ErasePage(0x0800_0800),
            error: UsbError::Stall
        }
    );
}

#[test]
fn a_vanishing_device_fails_the_write() {
    let (mut t, _) = setup(0x450);
    server(&mut t).faults.vanish_after = Some(40);
    let data = pseudo_random_bytes(64 * 1024, 4);
    let err = t
        .program_with_layout(0x0800_0000, &data, &mut |_, _, _| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            DfuseError::Usb {
                error: UsbError::Disconnected,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn short_uploads_and_read_protection_are_named() {
    let (mut t, _) = setup(0x415);
    server(&mut t).faults.short_next_upload = 10;
    let mut buf = [0u8; 64];
    let err = t.read_memory(0x0800_0000, &mut buf).unwrap_err();
    assert_eq!(
        err,
        DfuseError::ShortUpload {
            address: 0x0800_0000,
            expected: 64,
            got: 54
        }
    );

    server(&mut t).core.set_read_protected(true);
    let err = t.read_memory(0x0800_0000, &mut buf).unwrap_err();
    assert_eq!(
        err,
        DfuseError::Device {
            op: DfuOp::Upload(0x0800_0000),
            status: DfuStatusCode::Vendor
        }
    );
}

#[test]
fn ranges_outside_the_layout_change_nothing() {
    let (mut t, _) = setup(0x415);
    let end = 0x0810_0000 - 1024;
    let err = t
        .program_with_layout(end, &pseudo_random_bytes(4096, 5), &mut |_, _, _| {})
        .unwrap_err();
    assert_eq!(
        err,
        DfuseError::OutsideLayout {
            address: 0x0810_0000
        }
    );
    assert_eq!(
        server(&mut t).stats.pages_erased,
        0,
        "nothing erased before the check"
    );
    assert_eq!(server(&mut t).stats.blocks_written, 0);
}

#[test]
fn read_unprotect_erases_and_resets() {
    let (mut t, _) = setup(0x413);
    t.program_with_layout(0x0800_0000, &[0x42; 64], &mut |_, _, _| {})
        .unwrap();
    server(&mut t).core.set_read_protected(true);
    t.readout_unprotect().unwrap();
    assert!(!server(&mut t).core.is_read_protected());
    assert!(server(&mut t).gone, "the device reset");
    assert_eq!(flash_bytes(&mut t, 0x0800_0000, 64), [0xFF; 64]);
}

#[test]
fn get_commands_lists_the_rom_commands() {
    let (mut t, _) = setup(0x450);
    let mut buf = [0u8; 16];
    let list = t.host.get_commands(&mut buf).unwrap();
    assert_eq!(list, [0x00, 0x21, 0x41, 0x92]);
}

#[test]
fn a_device_silent_during_mass_erase_is_waited_for() {
    // F427/F429 (2 MiB) mass erase takes ~16 s here; the device answers nothing meanwhile.
    let (mut t, clock) = setup(0x413);
    t.program_with_layout(0x0800_0000, &[0x42; 64], &mut |_, _, _| {})
        .unwrap();
    server(&mut t).faults.silent_while_busy = true;
    let t0 = clock.now_ns();
    t.erase(Erase::Mass).unwrap();
    assert!(
        clock.now_ns() - t0 > 1_000_000_000,
        "the erase took modelled seconds"
    );
    assert_eq!(flash_bytes(&mut t, 0x0800_0000, 64), [0xFF; 64]);

    // A page erase gets only a few quick retries: a device that never answers again is a
    // named USB timeout.
    server(&mut t).faults.busy_forever = true;
    let err = t.erase(Erase::Pages(&[0])).unwrap_err();
    assert_eq!(
        err,
        DfuseError::Usb {
            op: DfuOp::ErasePage(0x0800_0000),
            error: UsbError::Timeout
        }
    );
}

#[test]
fn the_last_block_is_padded_with_the_erased_value() {
    // L0 flash erases to 0x00: padding must not program 0xFF past the image.
    let (mut t, _) = setup(0x447);
    t.program_with_layout(0x0800_0000, &[0xAB; 13], &mut |_, _, _| {})
        .unwrap();
    let bytes = flash_bytes(&mut t, 0x0800_0000, 32);
    assert_eq!(&bytes[..13], &[0xAB; 13]);
    assert!(bytes[13..].iter().all(|&b| b == 0x00), "{bytes:02x?}");
}
