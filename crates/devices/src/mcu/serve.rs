//! The virtual MCU on links: SMP over UDP (one packet per datagram) and over a pty (the
//! console framing mcumgr tools use), the flash saved to its file shortly after each change.
//!
//! The pty models the serial line when asked: each byte costs 10 bit times at the modelled
//! baud in each direction (the two directions run at once, as on a UART), and each answer
//! leaves a turnaround after its request arrived.
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brickless_smp::raw::{self, AnyDecoder};

use super::{Booted, VirtualMcu};
use crate::link::faults::{Delivery, FaultSpec, Faults};
use crate::link::pty;
use crate::rom::serve::ServeError;
use crate::rom::usart::LogFn;

/// Largest decoded SMP packet the serial link reassembles (the advertised `buf_size`, with
/// room for a client that rounds up).
const SERIAL_PACKET_MAX: usize = super::BUF_SIZE as usize + 64;

/// How to serve.
#[derive(Clone)]
pub struct McuOptions {
    /// Serve SMP over UDP at this address (e.g. 127.0.0.1:1337).
    pub udp: Option<String>,
    /// Serve SMP's console framing on a pty.
    pub pty: bool,
    /// A symlink to create to the pty.
    pub link: Option<PathBuf>,
    /// Model the pty's line rate at this baud (8N1); `None`: bytes move instantly.
    pub baud: Option<u32>,
    /// Device latency before each answer.
    pub turnaround: Duration,
    /// Charge flash work its modelled time (erases and programs of the part), with the
    /// device's buffers letting programming overlap the transfer.
    pub flash_time: bool,
    /// Faults injected on what the device receives (UDP and pty).
    pub faults: FaultSpec,
    /// One line per notable event (boot, reset, power cut).
    pub log: LogFn,
}

/// A virtual MCU being served.
pub struct McuService {
    device: Arc<Mutex<VirtualMcu>>,
    flash_path: Option<PathBuf>,
    places: Vec<String>,
    pty_path: Option<PathBuf>,
    pty_thread: Option<JoinHandle<()>>,
    log: LogFn,
}

fn lock(m: &Mutex<VirtualMcu>) -> MutexGuard<'_, VirtualMcu> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Describes a boot for the log.
pub fn describe_boot(b: &Booted) -> String {
    match b {
        Booted::App {
            image,
            trial,
            event,
            confirmed_now,
        } => {
            let mut s = format!(
                "booted {}",
                brickless_smp::client::version_text(image.version)
            );
            s.push_str(match event {
                brickless_boot::BootEvent::None => "",
                brickless_boot::BootEvent::Installed => " (installed)",
                brickless_boot::BootEvent::TrialStarted => " (trial boot of the update)",
                brickless_boot::BootEvent::Reverted => " (the unconfirmed trial was reverted)",
                brickless_boot::BootEvent::RevertImpossible => {
                    " (revert impossible: the old image no longer verifies; trial again)"
                }
            });
            if *confirmed_now {
                s.push_str(", the application confirmed itself");
            } else if *trial {
                s.push_str(", running as an unconfirmed trial");
            }
            s
        }
        Booted::Recovery => "no image verifies: serving recovery SMP".into(),
        Booted::PowerLost => "power lost during boot".into(),
        Booted::Failed(e) => format!("boot failed: {e}"),
    }
}

impl McuService {
    /// Boots `mcu` and serves it as `opts` says; with `flash_path`, changes are saved there.
    pub fn start(
        mcu: VirtualMcu,
        flash_path: Option<PathBuf>,
        opts: &McuOptions,
    ) -> Result<McuService, ServeError> {
        let mut mcu = mcu;
        mcu.set_flash_time(opts.flash_time);
        let device = Arc::new(Mutex::new(mcu));
        {
            let mut d = lock(&device);
            let b = d.reset().clone();
            (opts.log)(&describe_boot(&b));
        }
        let mut places = Vec::new();
        if let Some(addr) = &opts.udp {
            let sock = UdpSocket::bind(addr).map_err(|source| ServeError::Listen {
                addr: addr.clone(),
                source,
            })?;
            places.push(format!("udp {}", sock.local_addr()?));
            let device = device.clone();
            let log = opts.log.clone();
            let turnaround = opts.turnaround;
            let faults = Faults::new(opts.faults);
            std::thread::spawn(move || serve_udp(sock, &device, turnaround, faults, &log));
        }
        let mut pty_thread = None;
        let mut pty_path = None;
        if opts.pty {
            let p = pty::open().map_err(ServeError::Pty)?;
            pty_path = Some(p.slave_path.clone());
            let mut shown = p.slave_path.display().to_string();
            if let Some(link) = &opts.link {
                let _ = std::fs::remove_file(link);
                std::os::unix::fs::symlink(&p.slave_path, link).map_err(|source| {
                    ServeError::Link {
                        path: link.clone(),
                        source,
                    }
                })?;
                shown = format!("{shown} (link {})", link.display());
            }
            places.push(format!("serial {shown}"));
            let device = device.clone();
            let opts = opts.clone();
            pty_thread = Some(std::thread::spawn(move || serve_serial(p, &device, &opts)));
        }
        Ok(McuService {
            device,
            flash_path,
            places,
            pty_path,
            pty_thread,
            log: opts.log.clone(),
        })
    }

    /// Where it serves: `udp ADDR:PORT`, `serial PATH (link L)`.
    pub fn places(&self) -> &[String] {
        &self.places
    }

    /// The pty's path (what a client opens as its serial port), when serving one.
    pub fn pty_path(&self) -> Option<&std::path::Path> {
        self.pty_path.as_deref()
    }

    /// The device, for in-process control (tests, the demo).
    pub fn device(&self) -> Arc<Mutex<VirtualMcu>> {
        self.device.clone()
    }

    /// Saves the flash shortly after each change; returns only if the pty server stops.
    pub fn run(self) -> ServeError {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            self.save_if_changed();
            if self.pty_thread.as_ref().is_some_and(|t| t.is_finished()) {
                return ServeError::PtyStopped;
            }
        }
    }

    /// Writes the flash file now if the flash changed.
    pub fn save_if_changed(&self) {
        let Some(path) = &self.flash_path else { return };
        let snapshot = {
            let mut d = lock(&self.device);
            d.take_changed().then(|| d.flash().clone())
        };
        if let Some(flash) = snapshot {
            if let Err(e) = flash.save(path) {
                (self.log)(&format!("could not save {}: {e}", path.display()));
            }
        }
    }
}

/// Handles one packet; resets after the answer when asked to, and restarts a device whose
/// power was cut (it lost the request).
fn answer(
    device: &Mutex<VirtualMcu>,
    packet: &[u8],
    log: &LogFn,
) -> (Option<(Vec<u8>, Instant)>, bool) {
    let mut d = lock(device);
    let mut out = vec![0u8; super::BUF_SIZE as usize + 512];
    match d.handle_at(packet, &mut out, Instant::now()) {
        Some((o, ready)) => {
            out.truncate(o.len);
            (Some((out, ready)), o.reset)
        }
        None if !d.is_powered() => {
            log("power cut: the device restarts from its flash");
            let b = d.reset().clone();
            log(&describe_boot(&b));
            (None, false)
        }
        None => (None, false),
    }
}

fn reset(device: &Mutex<VirtualMcu>, log: &LogFn) {
    let mut d = lock(device);
    log("reset requested");
    let b = d.reset().clone();
    log(&describe_boot(&b));
}

fn serve_udp(
    sock: UdpSocket,
    device: &Mutex<VirtualMcu>,
    turnaround: Duration,
    mut faults: Faults,
    log: &LogFn,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        // UDP has no SMP-level check: a flipped bit reaches the server as sent.
        faults.corrupt(&mut buf[..n]);
        let times = match faults.deliver() {
            Delivery::Dropped => continue,
            Delivery::Once => 1,
            Delivery::Twice => 2,
        };
        for _ in 0..times {
            let (rsp, do_reset) = answer(device, &buf[..n], log);
            // The answer was made before the reset; sending it after the reboot is as if
            // the device restarted at once, and a client that sees it finds it back up.
            if do_reset {
                reset(device, log);
            }
            if let Some((rsp, ready)) = rsp {
                let at = ready.max(Instant::now() + turnaround);
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                let _ = sock.send_to(&rsp, peer);
            }
        }
    }
}

/// Time one byte takes on the line (8N1).
fn byte_time(baud: u32) -> Duration {
    Duration::from_nanos(10_000_000_000 / u64::from(baud.max(1)))
}

fn serve_serial(p: pty::Pty, device: &Mutex<VirtualMcu>, opts: &McuOptions) {
    let Ok(mut tx_port) = p.master.try_clone() else {
        return;
    };
    let mut rx_port = p.master;
    // Answers go out from their own thread, so the line carries both directions at once.
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let baud = opts.baud;
    std::thread::spawn(move || {
        let mut line_free = Instant::now();
        for (ready, bytes) in rx {
            let now = Instant::now();
            let start = ready.max(now).max(line_free);
            if let Some(b) = baud {
                line_free = start + byte_time(b) * bytes.len() as u32;
                std::thread::sleep(line_free.saturating_duration_since(now));
            } else if start > now {
                std::thread::sleep(start - now);
            }
            if tx_port.write_all(&bytes).is_err() {
                return;
            }
        }
    });
    let mut decoder: Box<AnyDecoder<SERIAL_PACKET_MAX>> = Box::default();
    let mut faults = Faults::new(opts.faults);
    let mut buf = [0u8; 4096];
    let mut line_t = Instant::now();
    loop {
        let n = match rx_port.read(&mut buf) {
            Ok(0) | Err(_) => {
                // No client has the pty open: wait for one.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Ok(n) => n,
        };
        if baud.is_some() {
            line_t = line_t.max(Instant::now() - byte_time(baud.unwrap_or(1)) * n as u32);
        }
        faults.corrupt(&mut buf[..n]);
        for &byte in &buf[..n] {
            if let Some(b) = baud {
                line_t += byte_time(b);
            }
            let Some(Ok((len, framing))) = decoder.push(byte) else {
                continue;
            };
            if baud.is_some() {
                // The packet's last byte has arrived only now on the modelled line.
                std::thread::sleep(line_t.saturating_duration_since(Instant::now()));
            }
            let packet = decoder.packet().to_vec();
            debug_assert_eq!(packet.len(), len);
            let times = match faults.deliver() {
                Delivery::Dropped => continue,
                Delivery::Once => 1,
                Delivery::Twice => 2,
            };
            for _ in 0..times {
                let (rsp, do_reset) = answer(device, &packet, &opts.log);
                if do_reset {
                    reset(device, &opts.log);
                }
                let Some((rsp, ready)) = rsp else { continue };
                // The answer goes out in the framing its request came in.
                let mut framed = vec![0u8; raw::encoded_len(framing, rsp.len())];
                if let Ok(m) = raw::encode_as(framing, &rsp, &mut framed) {
                    framed.truncate(m);
                    let _ = tx.send((ready.max(Instant::now() + opts.turnaround), framed));
                }
            }
        }
    }
}
