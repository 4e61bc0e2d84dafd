//! Modelled write throughput of the AN4221 and DfuSe hosts against the virtual devices, as a
//! ratio to the link's raw limit (not a timed test: virtual time, deterministic).
//! Run: `cargo test -p brickless-devices --test rom_i2c_dfuse_throughput -- --ignored --nocapture`

use brickless_devices::clock::SimClock;
use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::dfuse::{DfuServer, SimDfuUsb};
use brickless_devices::rom::i2c::{I2cServer, I2cServerOptions, SimI2cBus};
use brickless_rom::an4221::I2cHost;
use brickless_rom::dfuse::{DfuseHost, DfuseTarget};
use brickless_rom::program;
use brickless_rom::target::Erase;
use brickless_rom::RomTarget;
use brickless_test_support::rom_device;

const LEN: usize = 64 * 1024;

#[test]
#[ignore]
fn modelled_write_throughput() {
    let d = rom_device(0x415); // L475
    let data = vec![0x5Au8; LEN];

    let clock = SimClock::new();
    let opts = I2cServerOptions::for_device(d);
    let server = I2cServer::new(RomCore::erased(d), opts, clock.clone());
    let mut host = I2cHost::new(SimI2cBus::new(server), clock.delay(), opts.address).unwrap();
    host.connect().unwrap();
    host.erase(Erase::Mass).unwrap();
    let t0 = clock.now_ns();
    program::write(
        &mut host,
        0x0800_0000,
        &data,
        program::Layout::for_device(d),
        &mut |_, _, _| {},
    )
    .unwrap();
    let secs = (clock.now_ns() - t0) as f64 / 1e9;
    // Raw limit: 400 kHz, 9 clocks per byte.
    let limit = 400_000.0 / 9.0;
    let rate = LEN as f64 / secs;
    println!(
        "I2C 400 kHz, L475, 64 KiB write: {:.1} KiB/s = {:.2} of the {:.1} KiB/s bus limit",
        rate / 1024.0,
        rate / limit,
        limit / 1024.0
    );
    assert!(rate < limit);

    let clock = SimClock::new();
    let server = DfuServer::new(RomCore::erased(d), 2048, clock.clone());
    let layout = server.layout().to_string();
    let host = DfuseHost::new(SimDfuUsb::new(server), clock.delay(), 0, 2048);
    let mut t = DfuseTarget::new(host, &layout, None).unwrap();
    t.erase(Erase::Mass).unwrap();
    let t0 = clock.now_ns();
    let layout = t.write_layout();
    program::write_with(
        &mut t,
        0x0800_0000,
        &data,
        layout,
        &mut [0; 2048],
        &mut |_, _, _| {},
    )
    .unwrap();
    let secs = (clock.now_ns() - t0) as f64 / 1e9;
    let rate = LEN as f64 / secs;
    println!(
        "DfuSe (1 ms per control transfer), L475, 64 KiB write: {:.1} KiB/s",
        rate / 1024.0
    );
}
