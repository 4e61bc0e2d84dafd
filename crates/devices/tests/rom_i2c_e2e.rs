//! The AN4221 host (brickless-rom) against the virtual I2C bootloader (brickless-devices), end to
//! end over an in-process embedded-hal I2C bus: program, read back, verify, erase on H753,
//! L475, F407 and L073; every I2C protocol version; and injected faults.

use brickless_devices::clock::{SimClock, SimDelay};
use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::i2c::{I2cServer, I2cServerOptions, SimI2cBus};
use brickless_rom::an4221::{cmd, I2cError, I2cHost, I2cTimeouts, Phase};
use brickless_rom::program::{self, ProgramError};
use brickless_rom::target::{stm32_crc32, Erase, RomTarget, STM32_CRC_INIT};
use brickless_test_support::{pseudo_random_bytes, rom_device};
use embedded_hal::i2c::ErrorKind;

type Host = I2cHost<SimI2cBus, SimDelay>;

const PARTS: [u16; 4] = [0x450, 0x415, 0x413, 0x447]; // H753, L475, F407, L073

fn setup(pid: u16, version: u8) -> (Host, SimClock) {
    let d = rom_device(pid);
    let clock = SimClock::new();
    let mut opts = I2cServerOptions::for_device(d);
    opts.version = version;
    let server = I2cServer::new(RomCore::erased(d), opts, clock.clone());
    let host = I2cHost::new(SimI2cBus::new(server), clock.delay(), opts.address).unwrap();
    (host, clock)
}

fn connected(pid: u16, version: u8) -> (Host, SimClock) {
    let (mut host, clock) = setup(pid, version);
    let info = host.connect().unwrap();
    assert_eq!(info.pid, pid);
    assert_eq!(info.protocol_version, version);
    assert_eq!(info.device.map(|d| d.pid), Some(pid));
    (host, clock)
}

fn flash_bytes(host: &mut Host, addr: u32, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    host.bus_mut().server.core.read(addr, &mut buf).unwrap();
    buf
}

#[test]
fn program_read_verify_erase_on_four_parts() {
    for pid in PARTS {
        let d = rom_device(pid);
        let (mut host, clock) = connected(pid, 0x12);
        let base = d.flash().start;
        // Start inside the second page so the erase must pick the right pages.
        let addr = d.page(1).unwrap().addr + 0x40;
        let data = pseudo_random_bytes(3 * 1024 + 7, u64::from(pid));
        let t0 = clock.now_ns();
        program::program(&mut host, d, addr, &data, true, &mut |_, _, _| {}).unwrap();
        assert!(clock.now_ns() > t0, "{pid:#x}: work takes virtual time");
        assert_eq!(
            flash_bytes(&mut host, addr, data.len()),
            data,
            "{pid:#x}: flash holds it"
        );

        let mut back = vec![0u8; data.len()];
        program::read(&mut host, addr, &mut back, &mut |_, _, _| {}).unwrap();
        assert_eq!(back, data, "{pid:#x}: read back over I2C");

        let stats = host.bus_mut().server.stats;
        assert_eq!(stats.violations, 0, "{pid:#x}: host kept the phase rules");
        assert!(
            stats.busy_bytes > 0,
            "{pid:#x}: no-stretch commands polled through BUSY"
        );

        // Erase the first touched page; the bytes there go back to the erased value.
        let page = d.page_index(addr).unwrap();
        host.erase(Erase::Pages(&[page])).unwrap();
        let erased = d.geometry.erased;
        let p = d.page(page).unwrap();
        assert!(flash_bytes(&mut host, p.addr, p.size as usize)
            .iter()
            .all(|&b| b == erased));
        let next = d.page(page + 1).unwrap();
        if let Some(rest) = data.get((next.addr - addr) as usize..) {
            let n = rest.len().min(16);
            assert_eq!(
                flash_bytes(&mut host, next.addr, n),
                rest[..n],
                "{pid:#x}: the next page is untouched"
            );
        }

        if pid == 0x447 {
            // L0 has no mass erase: the device refuses and the host says so.
            assert!(matches!(
                host.erase(Erase::Mass),
                Err(I2cError::Nack {
                    phase: Phase::Completion,
                    ..
                })
            ));
        } else {
            host.erase(Erase::Mass).unwrap();
            assert!(flash_bytes(&mut host, base, 64)
                .iter()
                .all(|&b| b == erased));
            assert!(flash_bytes(&mut host, addr, data.len())
                .iter()
                .all(|&b| b == erased));
        }
    }
}

#[test]
fn every_protocol_version_reads_get_with_its_own_length() {
    for (version, count, no_stretch) in
        [(0x10u8, 11usize, false), (0x11, 17, true), (0x12, 18, true)]
    {
        let (mut host, _) = connected(0x450, version);
        let set = host.commands();
        assert_eq!(set.contains(cmd::NS_WRITE_MEMORY), no_stretch);
        assert_eq!(set.contains(cmd::GET_CHECKSUM), version == 0x12);
        let listed = (0u8..=255).filter(|&c| set.contains(c)).count();
        assert_eq!(listed, count, "version {version:#x}");
        // A stretching (v1.0) write still completes: the device holds the bus instead.
        let data = pseudo_random_bytes(256, 3);
        host.erase(Erase::Pages(&[0])).unwrap();
        host.write_memory(0x0800_0000, &data).unwrap();
        assert_eq!(flash_bytes(&mut host, 0x0800_0000, 256), data);
        let stats = host.bus_mut().server.stats;
        assert_eq!(stats.violations, 0);
        assert_eq!(stats.busy_bytes > 0, no_stretch, "version {version:#x}");
    }
}

#[test]
fn device_checksum_matches_the_stm32_crc() {
    let (mut host, _) = connected(0x415, 0x12);
    let data = pseudo_random_bytes(1024, 9);
    host.erase(Erase::Pages(&[0])).unwrap();
    program::write(
        &mut host,
        0x0800_0000,
        &data,
        program::Layout::for_device(rom_device(0x415)),
        &mut |_, _, _| {},
    )
    .unwrap();
    let crc = host.checksum(0x0800_0000, 1024).unwrap();
    assert_eq!(crc, Some(stm32_crc32(STM32_CRC_INIT, &data)));
    // Verify takes the checksum path and agrees.
    program::verify(&mut host, 0x0800_0000, &data, &mut |_, _, _| {}).unwrap();
}

#[test]
fn busy_forever_is_a_bounded_named_timeout() {
    let (mut host, clock) = connected(0x450, 0x12);
    host.bus_mut().server.opts_mut().busy_forever = true;
    let t0 = clock.now_ns();
    let err = host.erase(Erase::Pages(&[2, 3])).unwrap_err();
    let I2cError::BusyTimeout { cmd: c, waited_ms } = err else {
        panic!("expected BusyTimeout, got {err:?}");
    };
    assert_eq!(c, cmd::NS_EXTENDED_ERASE);
    // Budget scales with the work: 2 pages x 5 s.
    let budget = I2cTimeouts::default().erase_page_ms * 2;
    assert!(
        waited_ms >= budget && waited_ms <= budget + 10,
        "waited {waited_ms} ms"
    );
    let elapsed_ms = (clock.now_ns() - t0) / 1_000_000;
    assert!(
        elapsed_ms < u64::from(budget) * 2,
        "gave up in bounded time ({elapsed_ms} ms)"
    );
}

#[test]
fn a_device_that_stops_answering_is_no_answer() {
    let (mut host, _) = connected(0x413, 0x12);
    host.erase(Erase::Pages(&[0])).unwrap();
    host.bus_mut().faults.vanish_after = Some(3); // command, its ACK, the address
    let err = host.write_memory(0x0800_0000, &[1, 2, 3, 4]).unwrap_err();
    assert!(
        matches!(
            err,
            I2cError::NoAnswer {
                cmd: cmd::NS_WRITE_MEMORY,
                ..
            }
        ),
        "{err:?}"
    );
    // Nothing was written.
    assert_eq!(flash_bytes(&mut host, 0x0800_0000, 4), [0xFF; 4]);
}

#[test]
fn a_corrupted_ack_is_an_error_not_a_success() {
    let (mut host, _) = connected(0x415, 0x12);
    host.erase(Erase::Pages(&[0])).unwrap();
    host.bus_mut().faults.corrupt_next_read = true;
    let err = host.write_memory(0x0800_0000, &[1; 8]).unwrap_err();
    assert!(
        matches!(
            err,
            I2cError::UnexpectedByte {
                phase: Phase::Command,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_read_is_retried_after_a_corrupted_reply() {
    let (mut host, _) = connected(0x415, 0x12);
    host.erase(Erase::Pages(&[0])).unwrap();
    host.write_memory(0x0800_0000, &[0xA5; 16]).unwrap();
    // Corrupt the command ACK of the read: the host resyncs and reads again.
    host.bus_mut().faults.corrupt_next_read = true;
    let mut buf = [0u8; 16];
    host.read_memory(0x0800_0000, &mut buf).unwrap();
    assert_eq!(buf, [0xA5; 16]);
}

#[test]
fn bus_errors_are_named_with_their_kind() {
    let (mut host, _) = connected(0x450, 0x12);
    host.bus_mut().faults.lose_arbitration_once = true;
    let err = host.get_id().unwrap_err();
    assert!(
        matches!(
            err,
            I2cError::Bus {
                kind: ErrorKind::ArbitrationLoss,
                phase: Phase::Command,
                ..
            }
        ),
        "{err:?}"
    );
    // The link recovers for the next command.
    assert_eq!(host.get_id().unwrap(), 0x450);
}

#[test]
fn refusals_are_nacks_and_program_never_reports_a_partial_write() {
    let d = rom_device(0x415);
    let (mut host, _) = connected(0x415, 0x12);
    // Write-protect page 3, then program across pages 2..=4: the erase of page 3 fails.
    host.bus_mut().server.core.write_protect(&[3]).unwrap();
    let addr = d.page(2).unwrap().addr;
    let data = pseudo_random_bytes(3 * 2048, 5);
    let err = program::program(&mut host, d, addr, &data, true, &mut |_, _, _| {}).unwrap_err();
    assert!(
        matches!(err, ProgramError::Target(I2cError::Nack { .. })),
        "{err:?}"
    );

    // Read-out protection: reads are refused at the command byte.
    host.bus_mut().server.core.set_read_protected(true);
    let mut buf = [0u8; 4];
    let err = host.read_memory(0x0800_0000, &mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            I2cError::Nack {
                phase: Phase::Command,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn readout_unprotect_mass_erases() {
    let (mut host, _) = connected(0x450, 0x12);
    host.erase(Erase::Pages(&[0])).unwrap();
    host.write_memory(0x0800_0000, &[0x11; 32]).unwrap();
    host.bus_mut().server.core.set_read_protected(true);
    host.readout_unprotect().unwrap();
    assert!(!host.bus_mut().server.core.is_read_protected());
    assert_eq!(flash_bytes(&mut host, 0x0800_0000, 32), [0xFF; 32]);
}

#[test]
fn addresses_outside_seven_bits_are_refused() {
    let d = rom_device(0x450);
    let clock = SimClock::new();
    let opts = I2cServerOptions::for_device(d);
    let server = I2cServer::new(RomCore::erased(d), opts, clock.clone());
    let err = I2cHost::new(SimI2cBus::new(server), clock.delay(), 0x78)
        .err()
        .unwrap();
    assert!(matches!(err, I2cError::BadAddress(0x78)));
}

#[test]
fn a_wrong_address_gets_no_answer() {
    let d = rom_device(0x450);
    let clock = SimClock::new();
    let opts = I2cServerOptions::for_device(d);
    let server = I2cServer::new(RomCore::erased(d), opts, clock.clone());
    let mut host = I2cHost::new(SimI2cBus::new(server), clock.delay(), 0x33).unwrap();
    assert!(matches!(
        host.connect().unwrap_err(),
        I2cError::NoAnswer { .. }
    ));
}

#[test]
fn a_get_longer_than_the_version_says_is_read_again_at_its_length() {
    let d = rom_device(0x460);
    let clock = SimClock::new();
    let mut opts = I2cServerOptions::for_device(d);
    opts.vendor_commands = &[0x50, 0x51];
    let server = I2cServer::new(RomCore::erased(d), opts, clock.clone());
    let mut host = I2cHost::new(SimI2cBus::new(server), clock.delay(), 0x51).unwrap();
    let info = host.connect().unwrap();
    assert_eq!(info.pid, 0x460);
    assert!(host.commands().contains(0x51) && host.commands().contains(cmd::GET_CHECKSUM));
    // One resync (the cut-short first read), then clean phases.
    assert_eq!(host.bus_mut().server.stats.violations, 1);
    host.erase(Erase::Pages(&[4])).unwrap();
    assert_eq!(host.bus_mut().server.stats.violations, 1);
}

#[test]
fn a_stretched_erase_outlasting_the_adapter_timeout_is_waited_for() {
    // v1.0 (stretching only) on F407: a 128 KiB sector erase holds the bus for about a
    // second, longer than the adapter's 25 ms transfer limit.
    let (mut host, clock) = connected(0x413, 0x10);
    host.bus_mut().faults.adapter_timeout_ms = Some(25);
    let t0 = clock.now_ns();
    host.erase(Erase::Pages(&[5])).unwrap();
    assert!(
        clock.now_ns() - t0 > 100_000_000,
        "the erase took modelled time"
    );

    // With a budget shorter than the erase, the adapter's error is what the host reports.
    let timeouts = I2cTimeouts {
        erase_page_ms: 50,
        ..I2cTimeouts::default()
    };
    let mut host = host.with_timeouts(timeouts);
    let err = host.erase(Erase::Pages(&[6])).unwrap_err();
    assert!(
        matches!(
            err,
            I2cError::Bus {
                kind: ErrorKind::Other,
                phase: Phase::Completion,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn long_page_lists_are_split_and_oversized_ones_refused_before_any_traffic() {
    let (mut host, _) = connected(0x447, 0x12);
    let data = pseudo_random_bytes(600 * 128, 11);
    program::write(
        &mut host,
        0x0800_0000,
        &data,
        program::Layout::for_device(rom_device(0x447)),
        &mut |_, _, _| {},
    )
    .unwrap();
    let pages: Vec<u16> = (0..600).collect();
    host.erase(Erase::Pages(&pages)).unwrap();
    assert!(flash_bytes(&mut host, 0x0800_0000, data.len())
        .iter()
        .all(|&b| b == 0x00));

    let before = host.bus_mut().transactions;
    let err = host
        .erase_pages(&(0..512).collect::<Vec<u16>>())
        .unwrap_err();
    assert!(matches!(err, I2cError::BadLength { len: 512 }));
    assert!(matches!(
        host.write_memory(0x0800_0002, &[1; 4]),
        Err(I2cError::Unaligned { .. })
    ));
    assert_eq!(
        host.bus_mut().transactions,
        before,
        "refused before any transfer"
    );
}

#[test]
fn a_get_shorter_than_expected_is_taken_as_announced() {
    // An unknown version (0x0F): the host expects the longest list (18) and the device
    // sends 11 codes; the extra bytes read are idle-bus filler, the final ACK is its own read.
    let (mut host, _) = connected(0x450, 0x0F);
    let listed = (0u8..=255).filter(|&c| host.commands().contains(c)).count();
    assert_eq!(listed, 11);
    assert!(
        !host.commands().contains(0xFF),
        "filler bytes are not commands"
    );
    assert_eq!(host.bus_mut().server.stats.violations, 0);
    host.erase(Erase::Pages(&[1])).unwrap();
}
