//! Outside data never panics the AN4221 host: a device that answers with random bytes, NACKs
//! and bus errors.

use brickless_rom::an4221::{I2cHost, ACK};
use brickless_rom::target::{Erase, RomTarget};
use brickless_test_support::XorShift64;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

#[derive(Debug)]
struct BusError(ErrorKind);
impl embedded_hal::i2c::Error for BusError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// Answers reads with ACK-heavy random bytes; sometimes fails a transfer.
struct RandomBus {
    rng: XorShift64,
}

impl ErrorType for RandomBus {
    type Error = BusError;
}

impl I2c for RandomBus {
    fn transaction(&mut self, _: u8, ops: &mut [Operation<'_>]) -> Result<(), BusError> {
        match self.rng.below(20) {
            0 => {
                return Err(BusError(ErrorKind::NoAcknowledge(
                    NoAcknowledgeSource::Address,
                )))
            }
            1 => return Err(BusError(ErrorKind::Other)),
            _ => {}
        }
        for op in ops {
            if let Operation::Read(buf) = op {
                for b in buf.iter_mut() {
                    *b = match self.rng.below(4) {
                        0 | 1 => ACK,
                        2 => self.rng.below(20) as u8,
                        _ => self.rng.next_u64() as u8,
                    };
                }
            }
        }
        Ok(())
    }
}

struct NoDelay;
impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

#[test]
fn random_replies_never_panic() {
    let mut connected = 0;
    for seed in 1..2_000u64 {
        let bus = RandomBus {
            rng: XorShift64::new(seed),
        };
        let mut host = I2cHost::new(bus, NoDelay, 0x42).unwrap();
        if host.connect().is_err() {
            continue;
        }
        connected += 1;
        let mut buf = [0u8; 256];
        let _ = host.read_memory(0x0800_0000, &mut buf);
        let _ = host.write_memory(0x0800_0000, &[1; 256]);
        let _ = host.erase(Erase::Pages(&[0, 1, 2]));
        let _ = host.erase(Erase::Mass);
        let _ = host.checksum(0x0800_0000, 1024);
        let _ = host.write_protect(&[1, 2]);
        let _ = host.go(0x0800_0000);
    }
    assert!(connected > 0, "some random devices got through connect");
}

#[test]
fn nothing_is_sent_before_connect() {
    struct CountingBus {
        transfers: u32,
    }
    impl ErrorType for CountingBus {
        type Error = BusError;
    }
    impl I2c for CountingBus {
        fn transaction(&mut self, _: u8, _: &mut [Operation<'_>]) -> Result<(), BusError> {
            self.transfers += 1;
            Ok(())
        }
    }
    let mut host = I2cHost::new(CountingBus { transfers: 0 }, NoDelay, 0x42).unwrap();
    // The command set is unknown until Get: writes and erases are refused without traffic.
    assert!(host.write_memory(0x0800_0000, &[1; 4]).is_err());
    assert!(host.erase(Erase::Mass).is_err());
    assert_eq!(host.bus_mut().transfers, 0);
}

#[test]
fn errors_are_std_errors_for_the_cli() {
    fn is_error<T: std::error::Error + Send + Sync + 'static>() {}
    is_error::<brickless_rom::an4221::I2cError<BusError>>();
    is_error::<brickless_rom::dfuse::DfuseError>();
    is_error::<brickless_rom::dfu_file::DfuFileError>();
    is_error::<brickless_rom::dfuse::LayoutError>();
    let e = brickless_rom::an4221::I2cError::<BusError>::BusyTimeout {
        cmd: 0x45,
        waited_ms: 10_000,
    };
    assert_eq!(e.to_string(), "command 0x45: still BUSY after 10000 ms");
}
