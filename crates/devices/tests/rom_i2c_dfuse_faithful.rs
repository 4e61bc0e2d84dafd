//! Both ROM hosts over the faithful flash model of a real part (`SimFlash`: write-once units,
//! ECC, timing): program, read back and verify on H753, L475, F407
//! and L073 over AN4221 and DfuSe.

use brickless_devices::clock::SimClock;
use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::dfuse::{DfuServer, SimDfuUsb};
use brickless_devices::rom::i2c::{I2cServer, I2cServerOptions, SimI2cBus};
use brickless_flash_model::SimFlash;
use brickless_rom::an4221::I2cHost;
use brickless_rom::dfuse::{DfuseHost, DfuseTarget};
use brickless_rom::program;
use brickless_rom::target::Erase;
use brickless_rom::RomTarget;
use brickless_test_support::{flash_part, rom_device};

const PARTS: [(&str, u16); 4] = [
    ("stm32h753zi", 0x450),
    ("stm32l475vg", 0x415),
    ("stm32f407vg", 0x413),
    ("stm32l073rz", 0x447),
];

fn core(name: &str, pid: u16) -> RomCore {
    RomCore::new(rom_device(pid), SimFlash::new(flash_part(name)))
}

fn firmware(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

#[test]
fn i2c_programs_the_faithful_model() {
    for (name, pid) in PARTS {
        let d = rom_device(pid);
        let clock = SimClock::new();
        let opts = I2cServerOptions::for_device(d);
        let server = I2cServer::new(core(name, pid), opts, clock.clone());
        let mut host = I2cHost::new(SimI2cBus::new(server), clock.delay(), opts.address).unwrap();
        host.connect().unwrap();
        let data = firmware(4000, pid as u8);
        let addr = d.flash().start + 0x100;
        program::program(&mut host, d, addr, &data, true, &mut |_, _, _| {}).unwrap();
        let mut back = vec![0u8; data.len()];
        program::read(&mut host, addr, &mut back, &mut |_, _, _| {}).unwrap();
        assert_eq!(back, data, "{name}");
        host.erase(Erase::Pages(&[0])).unwrap();
        // A second program of the same place works only because the erase really happened.
        program::program(&mut host, d, addr, &data, true, &mut |_, _, _| {}).unwrap();
        let flash = &host.bus_mut().server.core;
        let mut check = vec![0u8; 64];
        flash.read(addr, &mut check).unwrap();
        assert_eq!(check, data[..64], "{name}");
    }
}

#[test]
fn dfuse_programs_the_faithful_model() {
    for (name, pid) in PARTS {
        let d = rom_device(pid);
        let clock = SimClock::new();
        let server = DfuServer::new(core(name, pid), 2048, clock.clone());
        let layout = server.layout().to_string();
        let host = DfuseHost::new(SimDfuUsb::new(server), clock.delay(), 0, 2048);
        let mut target = DfuseTarget::new(host, &layout, None).unwrap();
        assert_eq!(
            target.info().pid,
            pid,
            "{name}: part recognised from the layout"
        );
        let data = firmware(6000, pid as u8);
        let addr = d.flash().start;
        target
            .program_with_layout(addr, &data, &mut |_, _, _| {})
            .unwrap();
        // The model did the work (and counted its modelled time).
        let model = &target.host.transport_mut().server.core.flash();
        assert!(model.op_count() > 0 && model.elapsed_us() > 0, "{name}");
        target
            .program_with_layout(addr, &data, &mut |_, _, _| {})
            .unwrap();
        let mut back = vec![0u8; data.len()];
        program::read(&mut target, addr, &mut back, &mut |_, _, _| {}).unwrap();
        assert_eq!(back, data, "{name}");
    }
}
