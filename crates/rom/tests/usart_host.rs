//! The AN3155 host against the virtual ROM bootloader (in-process, over TCP), on several part
//! profiles, with a fault-injecting link between them.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::usart::{serve, Session, UsartOptions};
use brickless_rom::an3155::{Config, Error, SerialLink, Step, Usart};
use brickless_rom::link::TcpLink;
use brickless_rom::program::{self, Phase, ProgramError};
use brickless_rom::{Erase, RomTarget};

type Core = Arc<Mutex<RomCore>>;

/// Starts a virtual ROM for `pid` on an ephemeral port; returns its address and core.
fn device(pid: u16, checksum: bool) -> (String, Core) {
    let d = brickless_rom::by_pid(pid).unwrap();
    let core = Arc::new(Mutex::new(RomCore::erased(d)));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let served = core.clone();
    thread::spawn(move || {
        let session = Mutex::new(Session::default());
        let opts = UsartOptions {
            checksum,
            ..UsartOptions::default()
        };
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream.set_nodelay(true).ok();
            // A new connection is a freshly reset device.
            session.lock().unwrap().synced = false;
            serve(&served, &session, &mut stream, &opts);
        }
    });
    (addr, core)
}

fn fast_config() -> Config {
    Config {
        ack_timeout_ms: 200,
        ..Config::default()
    }
}

fn firmware(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn no_progress() -> impl FnMut(Phase, u32, u32) {
    |_, _, _| {}
}

#[test]
fn program_and_verify_on_each_profile() {
    for (pid, addr) in [
        (0x450u16, 0x0810_0000u32),
        (0x415, 0x0807_F800),
        (0x413, 0x0800_C000),
        (0x447, 0x0801_7F00),
    ] {
        let (ep, core) = device(pid, false);
        let link = TcpLink::connect(&ep).unwrap();
        let mut host = Usart::connect(link, fast_config()).unwrap();
        assert_eq!(host.info().pid, pid);
        let d = host.info().device.unwrap();
        // An odd length that crosses a page (and on L4 a bank) boundary.
        let fw = firmware(5 * 1024 + 13, pid as u8);
        let mut phases = Vec::new();
        program::program(&mut host, d, addr, &fw, true, &mut |p, done, total| {
            assert!(done <= total);
            phases.push(p)
        })
        .unwrap();
        assert!(
            phases.contains(&Phase::Erase)
                && phases.contains(&Phase::Write)
                && phases.contains(&Phase::Verify)
        );
        let mut back = vec![0u8; fw.len()];
        core.lock().unwrap().read(addr, &mut back).unwrap();
        assert_eq!(back, fw, "pid {pid:#x}");
    }
}

#[test]
fn checksum_verify_and_mismatch_detection() {
    let (ep, core) = device(0x450, true);
    let mut host = Usart::connect(TcpLink::connect(&ep).unwrap(), fast_config()).unwrap();
    assert!(host.commands().contains(0xA1));
    let d = host.info().device.unwrap();
    let fw = firmware(4096, 7);
    program::program(&mut host, d, 0x0800_0000, &fw, true, &mut no_progress()).unwrap();
    let crc = host.checksum(0x0800_0000, 4096).unwrap().unwrap();
    assert_eq!(crc, brickless_rom::target::stm32_crc32(0xFFFF_FFFF, &fw));
    // Flash that differs from the file is caught and located.
    let mut other = fw.clone();
    other[1000] ^= 0x10;
    match program::verify(&mut host, 0x0800_0000, &other, &mut no_progress()) {
        Err(ProgramError::Mismatch { addr, .. }) => assert_eq!(addr, 0x0800_0000 + 1000),
        r => panic!("expected a mismatch, got {r:?}"),
    }
    drop(core);
}

#[test]
fn erase_variants_and_protection() {
    let (ep, core) = device(0x415, false);
    let mut host = Usart::connect(TcpLink::connect(&ep).unwrap(), fast_config()).unwrap();
    let d = host.info().device.unwrap();
    program::program(
        &mut host,
        d,
        0x0808_0000,
        &[0x11; 64],
        false,
        &mut no_progress(),
    )
    .unwrap();
    host.erase(Erase::Bank(1)).unwrap();
    let mut b = [0u8; 4];
    core.lock().unwrap().read(0x0808_0000, &mut b).unwrap();
    assert_eq!(b, [0xFF; 4]);
    program::program(
        &mut host,
        d,
        0x0800_0000,
        &[0x22; 64],
        false,
        &mut no_progress(),
    )
    .unwrap();
    host.erase(Erase::Mass).unwrap();
    core.lock().unwrap().read(0x0800_0000, &mut b).unwrap();
    assert_eq!(b, [0xFF; 4]);

    // A write-protected page: the write is refused with a NACK at the data step.
    host.write_protect(&[3]).unwrap();
    let err = host.write_memory(0x0800_1800, &[0; 8]).unwrap_err();
    assert!(matches!(err, Error::Nack(Step::Data(0x31))), "{err:?}");
    host.write_unprotect().unwrap();
    host.write_memory(0x0800_1800, &[0; 8]).unwrap();

    // Read-out protection: reads are refused with a named error, unprotect mass-erases.
    host.readout_protect().unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(
        host.read_memory(0x0800_0000, &mut buf),
        Err(Error::ReadProtected)
    ));
    host.readout_unprotect().unwrap();
    host.read_memory(0x0800_1800, &mut buf).unwrap();
    assert_eq!(buf, [0xFF; 16]);
}

#[test]
fn l0_mass_erase_falls_back_to_pages() {
    let (ep, core) = device(0x447, false);
    let mut host = Usart::connect(TcpLink::connect(&ep).unwrap(), fast_config()).unwrap();
    let d = host.info().device.unwrap();
    program::program(
        &mut host,
        d,
        0x0802_FF00,
        &[0x5A; 256],
        false,
        &mut no_progress(),
    )
    .unwrap();
    host.erase(Erase::Mass).unwrap();
    let mut b = [0u8; 4];
    core.lock().unwrap().read(0x0802_FF00, &mut b).unwrap();
    assert_eq!(b, [0; 4], "L0 erased value is 0x00");
}

#[test]
fn go_and_bad_addresses() {
    let (ep, _core) = device(0x413, false);
    let mut host = Usart::connect(TcpLink::connect(&ep).unwrap(), fast_config()).unwrap();
    let mut buf = [0u8; 4];
    // Unmapped address: NACK at the address step, no retry loop forever.
    assert!(matches!(
        host.read_memory(0x6000_0000, &mut buf),
        Err(Error::Nack(Step::Address(0x11)))
    ));
    // Reads of the system words tools use.
    let mut size = [0u8; 2];
    host.read_memory(0x1FFF_7A22, &mut size).unwrap();
    assert_eq!(u16::from_le_bytes(size), 1024);
    host.go(0x0800_0000).unwrap();
}

#[test]
fn a_missing_device_is_no_sync() {
    // A listener that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ep = listener.local_addr().unwrap().to_string();
    let hold = thread::spawn(move || {
        listener.accept().map(|(s, _)| {
            thread::sleep(std::time::Duration::from_secs(3));
            drop(s)
        })
    });
    let cfg = Config {
        ack_timeout_ms: 100,
        ..Config::default()
    };
    let err = Usart::connect(TcpLink::connect(&ep).unwrap(), cfg)
        .err()
        .unwrap();
    assert!(matches!(err, Error::NoSync), "{err:?}");
    drop(hold);
}

/// A link that injects faults on the way to and from the device.
struct Faulty {
    inner: TcpLink,
    /// Flip a bit in the n-th byte the host writes (counting from 0).
    corrupt_write_at: Option<usize>,
    /// Insert a noise byte before the n-th byte the host reads.
    noise_read_at: Option<usize>,
    /// Swallow the n-th byte the host would read (a lost ACK).
    drop_read_at: Option<usize>,
    /// After this many written bytes, nothing reaches the device any more.
    dead_after_writes: Option<usize>,
    written: usize,
    read: usize,
}

impl Faulty {
    fn new(inner: TcpLink) -> Self {
        Faulty {
            inner,
            corrupt_write_at: None,
            noise_read_at: None,
            drop_read_at: None,
            dead_after_writes: None,
            written: 0,
            read: 0,
        }
    }
}

impl SerialLink for Faulty {
    type Error = std::io::Error;

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut out = data.to_vec();
        for (i, b) in out.iter_mut().enumerate() {
            if self.corrupt_write_at == Some(self.written + i) {
                *b ^= 0x04;
            }
        }
        let start = self.written;
        self.written += data.len();
        match self.dead_after_writes {
            Some(limit) if start >= limit => Ok(()),
            Some(limit) if self.written > limit => self.inner.write_all(&out[..limit - start]),
            _ => self.inner.write_all(&out),
        }
    }

    fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            if self.noise_read_at == Some(self.read) {
                self.noise_read_at = None;
                buf[got] = 0xE3;
                got += 1;
                continue;
            }
            let mut b = [0u8];
            if self.inner.read(&mut b, timeout_ms)? == 0 {
                break;
            }
            let index = self.read;
            self.read += 1;
            if self.drop_read_at == Some(index) {
                continue;
            }
            buf[got] = b[0];
            got += 1;
        }
        Ok(got)
    }

    fn discard_input(&mut self) -> std::io::Result<()> {
        self.inner.discard_input()
    }

    fn delay_ms(&mut self, ms: u32) {
        self.inner.delay_ms(ms)
    }
}

fn connect_faulty(pid: u16) -> (Usart<Faulty>, Core) {
    let (ep, core) = device(pid, false);
    let link = Faulty::new(TcpLink::connect(&ep).unwrap());
    (Usart::connect(link, fast_config()).unwrap(), core)
}

#[test]
fn corrupted_write_frame_is_nacked_and_retried() {
    let (mut host, core) = connect_faulty(0x450);
    let n = host.link_mut().written;
    // Byte 100 of the next write: inside the data frame (2 cmd + 5 addr + 1 len come first).
    host.link_mut().corrupt_write_at = Some(n + 100);
    let data = firmware(256, 3);
    host.write_memory(0x0800_0000, &data).unwrap();
    let mut back = vec![0u8; 256];
    core.lock().unwrap().read(0x0800_0000, &mut back).unwrap();
    assert_eq!(back, data, "the retried write landed intact");
}

#[test]
fn line_noise_before_an_ack_is_recovered() {
    let (mut host, _core) = connect_faulty(0x413);
    let r = host.link_mut().read;
    host.link_mut().noise_read_at = Some(r);
    let mut buf = [0u8; 8];
    host.read_memory(0x1FFF_7A10, &mut buf).unwrap();
    assert_eq!(buf, {
        let mut b = [0u8; 8];
        _core.lock().unwrap().read(0x1FFF_7A10, &mut b).unwrap();
        b
    });
}

#[test]
fn a_lost_final_ack_is_resolved_by_reading_back() {
    let (mut host, core) = connect_faulty(0x450);
    // The write's replies are: ACK (cmd), ACK (addr), ACK (programmed). Lose the third.
    let r = host.link_mut().read;
    host.link_mut().drop_read_at = Some(r + 2);
    let data = firmware(256, 9);
    // Reported done only because the read-back proves it; no second program of the H7 words.
    host.write_memory(0x0800_0000, &data).unwrap();
    let mut back = vec![0u8; 256];
    core.lock().unwrap().read(0x0800_0000, &mut back).unwrap();
    assert_eq!(back, data);
}

#[test]
fn a_device_that_stops_answering_is_a_timeout_not_success() {
    let (mut host, core) = connect_faulty(0x415);
    let d = host.info().device.unwrap();
    // Erase first, then the device dies in the middle of the second block's data frame.
    program::erase_range(&mut host, d, 0x0800_0000, 2048, &mut no_progress()).unwrap();
    let w = host.link_mut().written;
    host.link_mut().dead_after_writes = Some(w + 265 + 100);
    let fw = firmware(1024, 1);
    let err = program::write(
        &mut host,
        0x0800_0000,
        &fw,
        program::Layout::for_device(d),
        &mut no_progress(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ProgramError::Target(Error::Timeout(_))),
        "got {err:?}"
    );
    // The first block is there, the second is not: a partial write was reported as a failure.
    let mut b = [0u8; 4];
    core.lock().unwrap().read(0x0800_0100, &mut b).unwrap();
    assert_eq!(b, [0xFF; 4]);
}

#[test]
fn pipelined_mode_gives_the_same_flash() {
    let (ep, core) = device(0x469, false);
    let cfg = Config {
        pipeline: true,
        ..fast_config()
    };
    let mut host = Usart::connect(TcpLink::connect(&ep).unwrap(), cfg).unwrap();
    let d = host.info().device.unwrap();
    let fw = firmware(3000, 5);
    program::program(&mut host, d, 0x0804_0000, &fw, true, &mut no_progress()).unwrap();
    let mut back = vec![0u8; fw.len()];
    core.lock().unwrap().read(0x0804_0000, &mut back).unwrap();
    assert_eq!(back, fw);
    // A NACKed pipelined read (unmapped address) leaves the session usable.
    let mut buf = [0u8; 4];
    assert!(host.read_memory(0x6000_0000, &mut buf).is_err());
    host.read_memory(0x0804_0000, &mut buf).unwrap();
    assert_eq!(&buf, &fw[..4]);
}

#[allow(dead_code)]
fn _unused(_: TcpStream) {}
