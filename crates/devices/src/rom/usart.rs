//! The AN3155 (USART) server of the virtual ROM bootloader, over any byte stream (a pty
//! master, a TCP connection, an in-memory pipe).
//!
//! It answers as the real ROM does: 0x7F autobaud first, then command frames checked by
//! their complement, XOR-checked address and data frames, ACK/NACK per step, the Get list of
//! the part (0x44 Extended Erase; 0xA1 Get Checksum only when enabled). It models the line:
//! each byte costs `bits / baud` seconds each way and each answer waits a turnaround, so
//! tools see realistic timing.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brickless_rom::an3155::{cmd, ACK, NACK, SYNC};

use super::core::{GoTarget, RomCore, BASE_COMMANDS};

/// Line settings at a given moment (a pty client may change them at any time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineParams {
    /// Bits per second.
    pub baud: u32,
    /// 10 for 8N1, 11 for 8E1.
    pub bits_per_byte: u32,
}

/// Reports the line settings in force (baud and bits per byte).
pub type LineFn = Arc<dyn Fn() -> LineParams + Send + Sync>;
/// Receives one log line per notable event.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// How a server behaves.
#[derive(Clone)]
pub struct UsartOptions {
    /// Device latency before each answer.
    pub turnaround: Duration,
    /// Line model: `None` delivers bytes instantly.
    pub line: Option<LineFn>,
    /// List Get Checksum (0xA1) in Get and answer it.
    pub checksum: bool,
    /// Called with one line per notable event (go, protect, reset).
    pub log: Option<LogFn>,
}

impl Default for UsartOptions {
    fn default() -> Self {
        UsartOptions {
            turnaround: Duration::ZERO,
            line: None,
            checksum: false,
            log: None,
        }
    }
}

/// Session state that survives across connections on one port (the real device does not
/// notice a host closing its port).
#[derive(Debug, Default)]
pub struct Session {
    /// True once 0x7F autobaud was answered; a command that resets the device clears it.
    pub synced: bool,
}

struct Conn<'a, S: Read + Write> {
    stream: &'a mut S,
    opts: &'a UsartOptions,
    /// When the last received byte finished arriving on the modelled line.
    rx_done: Instant,
    /// When the bytes in `inbuf` were handed to us (their earliest possible arrival).
    chunk_at: Instant,
    /// When our last transmission finished on the modelled line.
    tx_free: Instant,
    /// Byte time, refreshed once per received chunk.
    bt: Duration,
    inbuf: [u8; 512],
    in_pos: usize,
    in_len: usize,
}

/// Ends a command: the peer closed the stream.
struct Closed;

impl From<io::Error> for Closed {
    fn from(_: io::Error) -> Self {
        Closed
    }
}

impl<S: Read + Write> Conn<'_, S> {
    fn byte_time(&self) -> Duration {
        match &self.opts.line {
            Some(line) => {
                let p = line();
                Duration::from_nanos(
                    u64::from(p.bits_per_byte) * 1_000_000_000 / u64::from(p.baud.max(1)),
                )
            }
            None => Duration::ZERO,
        }
    }

    fn byte(&mut self) -> Result<u8, Closed> {
        if self.in_pos == self.in_len {
            let n = loop {
                match self.stream.read(&mut self.inbuf) {
                    Ok(0) => return Err(Closed),
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    Err(_) => return Err(Closed),
                }
            };
            self.in_pos = 0;
            self.in_len = n;
            self.chunk_at = Instant::now();
            self.bt = self.byte_time();
        }
        let b = self.inbuf[self.in_pos];
        self.in_pos += 1;
        // Bytes queue on the line one after another from when they were handed over.
        self.rx_done = self.rx_done.max(self.chunk_at) + self.bt;
        Ok(b)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Closed> {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte()?;
        }
        Ok(out)
    }

    /// Sends a turnaround after the request's last byte arrived, once the line is free,
    /// delivering the reply when its last byte would have arrived.
    fn send(&mut self, data: &[u8]) -> Result<(), Closed> {
        let tx = self.byte_time() * data.len() as u32;
        let at = (self.rx_done + self.opts.turnaround).max(self.tx_free) + tx;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        self.stream.write_all(data)?;
        self.stream.flush()?;
        self.tx_free = at.max(now);
        Ok(())
    }

    fn ack(&mut self) -> Result<(), Closed> {
        self.send(&[ACK])
    }

    fn nack(&mut self) -> Result<(), Closed> {
        self.send(&[NACK])
    }

    fn log(&self, msg: &str) {
        if let Some(log) = &self.opts.log {
            log(msg);
        }
    }

    /// Reads an address frame; `None` on a bad checksum.
    fn address(&mut self) -> Result<Option<u32>, Closed> {
        let a: [u8; 5] = self.bytes()?;
        if a[0] ^ a[1] ^ a[2] ^ a[3] != a[4] {
            return Ok(None);
        }
        Ok(Some(u32::from_be_bytes([a[0], a[1], a[2], a[3]])))
    }
}

/// Serves one connection until the peer closes it.
pub fn serve<S>(
    core: &Mutex<RomCore>,
    session: &Mutex<Session>,
    stream: &mut S,
    opts: &UsartOptions,
) where
    S: Read + Write,
{
    let now = Instant::now();
    let mut conn = Conn {
        stream,
        opts,
        rx_done: now,
        chunk_at: now,
        tx_free: now,
        bt: Duration::ZERO,
        inbuf: [0; 512],
        in_pos: 0,
        in_len: 0,
    };
    let _ = serve_inner(core, session, &mut conn);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve_inner<S>(
    core: &Mutex<RomCore>,
    session: &Mutex<Session>,
    c: &mut Conn<'_, S>,
) -> Result<(), Closed>
where
    S: Read + Write,
{
    loop {
        let first = c.byte()?;
        if !lock(session).synced {
            // Before autobaud the ROM ignores everything but 0x7F.
            if first == SYNC {
                lock(session).synced = true;
                c.ack()?;
            }
            continue;
        }
        let complement = c.byte()?;
        if complement != first ^ 0xFF {
            c.nack()?;
            continue;
        }
        let reset = handle(core, c, first)?;
        if reset {
            lock(session).synced = false;
        }
    }
}

/// Runs one command; returns true when the device resets afterwards.
fn handle<S>(core: &Mutex<RomCore>, c: &mut Conn<'_, S>, code: u8) -> Result<bool, Closed>
where
    S: Read + Write,
{
    let checksum_enabled = c.opts.checksum;
    match code {
        cmd::GET => {
            let mut reply = Vec::with_capacity(16);
            let version = lock(core).device.usart_protocol_version;
            let count = BASE_COMMANDS.len() + usize::from(checksum_enabled);
            reply.push(ACK);
            reply.push(count as u8);
            reply.push(version);
            reply.extend_from_slice(&BASE_COMMANDS);
            if checksum_enabled {
                reply.push(cmd::GET_CHECKSUM);
            }
            reply.push(ACK);
            c.send(&reply)?;
        }
        cmd::GET_VERSION => {
            let version = lock(core).device.usart_protocol_version;
            c.send(&[ACK, version, 0, 0, ACK])?;
        }
        cmd::GET_ID => {
            let pid = lock(core).pid().to_be_bytes();
            c.send(&[ACK, 1, pid[0], pid[1], ACK])?;
        }
        cmd::READ_MEMORY => {
            if lock(core).is_read_protected() {
                c.nack()?;
                return Ok(false);
            }
            c.ack()?;
            let Some(addr) = c.address()? else {
                return c.nack().map(|_| false);
            };
            if !lock(core).is_readable(addr) {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let [n, check] = c.bytes()?;
            if n ^ check != 0xFF {
                return c.nack().map(|_| false);
            }
            let mut data = vec![0u8; usize::from(n) + 1];
            match lock(core).read(addr, &mut data) {
                Ok(()) => {
                    let mut reply = Vec::with_capacity(data.len() + 1);
                    reply.push(ACK);
                    reply.extend_from_slice(&data);
                    c.send(&reply)?;
                }
                Err(_) => c.nack()?,
            }
        }
        cmd::GO => {
            if lock(core).is_read_protected() {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let Some(addr) = c.address()? else {
                return c.nack().map(|_| false);
            };
            let target = lock(core).go(addr);
            match target {
                Ok(GoTarget::Flash { sp, pc }) => {
                    c.ack()?;
                    c.log(&format!("go {addr:#010x}: application starts (sp {sp:#010x}, pc {pc:#010x}); back in the ROM after its reset"));
                    return Ok(true);
                }
                Ok(GoTarget::Ram) => {
                    c.ack()?;
                    c.log(&format!("go {addr:#010x} (RAM code): system reset"));
                    return Ok(true);
                }
                Err(_) => c.nack()?,
            }
        }
        cmd::WRITE_MEMORY => {
            if lock(core).is_read_protected() {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let Some(addr) = c.address()? else {
                return c.nack().map(|_| false);
            };
            if !lock(core).is_writable(addr) {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let n = c.byte()?;
            let mut data = vec![0u8; usize::from(n) + 1];
            let mut x = n;
            for b in &mut data {
                *b = c.byte()?;
                x ^= *b;
            }
            let check = c.byte()?;
            if x != check {
                return c.nack().map(|_| false);
            }
            let ok = lock(core).write(addr, &data).is_ok();
            if ok {
                c.ack()?
            } else {
                c.nack()?
            }
        }
        cmd::EXTENDED_ERASE => {
            if lock(core).is_read_protected() {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let [hi, lo] = c.bytes()?;
            let n = u16::from_be_bytes([hi, lo]);
            if n >= 0xFFF0 {
                let check = c.byte()?;
                if hi ^ lo != check {
                    return c.nack().map(|_| false);
                }
                let result = match n {
                    0xFFFF => lock(core).mass_erase(),
                    0xFFFE => lock(core).erase_bank(0),
                    0xFFFD => lock(core).erase_bank(1),
                    _ => return c.nack().map(|_| false),
                };
                if result.is_ok() {
                    c.ack()?
                } else {
                    c.nack()?
                }
            } else {
                // More pages than the part has: refused at the count (no 128 KiB wait).
                if n >= lock(core).device.page_count() {
                    return c.nack().map(|_| false);
                }
                let mut pages = Vec::with_capacity(usize::from(n) + 1);
                let mut x = hi ^ lo;
                for _ in 0..=n {
                    let [ph, pl] = c.bytes()?;
                    x ^= ph ^ pl;
                    pages.push(u16::from_be_bytes([ph, pl]));
                }
                let check = c.byte()?;
                if x != check {
                    return c.nack().map(|_| false);
                }
                let ok = lock(core).erase_pages(&pages).is_ok();
                if ok {
                    c.ack()?
                } else {
                    c.nack()?
                }
            }
        }
        cmd::WRITE_PROTECT => {
            if lock(core).is_read_protected() {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let n = c.byte()?;
            let mut x = n;
            let mut pages = Vec::with_capacity(usize::from(n) + 1);
            for _ in 0..=n {
                let p = c.byte()?;
                x ^= p;
                pages.push(u16::from(p));
            }
            if c.byte()? != x {
                return c.nack().map(|_| false);
            }
            let ok = lock(core).write_protect(&pages).is_ok();
            if ok {
                c.ack()?;
                c.log(&format!(
                    "write protect {pages:?}: option bytes reloaded (reset)"
                ));
                return Ok(true);
            }
            c.nack()?;
        }
        cmd::WRITE_UNPROTECT => {
            if lock(core).is_read_protected() {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let ok = lock(core).write_unprotect().is_ok();
            if ok {
                c.ack()?;
                c.log("write unprotect: reset");
                return Ok(true);
            }
            c.nack()?;
        }
        cmd::READOUT_PROTECT => {
            if lock(core).is_read_protected() {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let _ = lock(core).readout_protect();
            c.ack()?;
            c.log("readout protect: RDP level 1, reset");
            return Ok(true);
        }
        cmd::READOUT_UNPROTECT => {
            c.ack()?;
            // The second ACK comes before the mass erase (the ROM loses its RAM after it).
            c.ack()?;
            let _ = lock(core).readout_unprotect();
            c.log("readout unprotect: flash mass-erased, RDP level 0, reset");
            return Ok(true);
        }
        cmd::GET_CHECKSUM if checksum_enabled => {
            if lock(core).is_read_protected() {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let Some(addr) = c.address()? else {
                return c.nack().map(|_| false);
            };
            if addr % 4 != 0 || !lock(core).is_readable(addr) {
                return c.nack().map(|_| false);
            }
            c.ack()?;
            let Some(len) = c.address()? else {
                return c.nack().map(|_| false);
            };
            let crc = lock(core).checksum(addr, len);
            match crc {
                Ok(crc) => {
                    let b = crc.to_be_bytes();
                    c.send(&[ACK, ACK, b[0], b[1], b[2], b[3], b[0] ^ b[1] ^ b[2] ^ b[3]])?;
                }
                Err(_) => c.nack()?,
            }
        }
        _ => c.nack()?,
    }
    Ok(false)
}
