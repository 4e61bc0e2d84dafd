//! `rom_frames`: the virtual ST ROM bootloader's frame handling, in process.
//!
//! The input picks a transport (USART/AN3155 byte stream, I2C/AN4221 transactions on the
//! in-process bus, USB DfuSe control requests), one of the campaign's parts (its ROM device
//! table entry, over the faithful flash model; usually on the reduced 16-sector array so
//! addresses and pages hit real flash often), read protection, protocol options and
//! injected faults, and a generation mode:
//! - raw: the input bytes are the stream / transactions / requests;
//! - framed: well-formed commands with fields from the input (addresses near flash, RAM,
//!   option bytes, system memory), some checksums wrong;
//! - framed, all bad: as framed, but every write and erase frame carries a wrong final
//!   checksum (USART, I2C), no Readout Unprotect is sent, and no DfuSe GETSTATUS follows a
//!   download that would write or erase.
//!
//! What must hold: nothing panics (servers, device core, flash model); and when the traffic,
//! scanned at *every* position (so whatever the device's framing turns out to be), contains
//! no complete write, erase or Readout Unprotect command that the device could accept, the
//! device made no program or erase call and every flash byte is unchanged.
use std::io::{self, Read, Write};
use std::sync::{Mutex, OnceLock};

use brickless_campaign::{reduced_part, CAMPAIGN_PARTS};
use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::dfuse::{DfuFaults, DfuServer, SimDfuUsb};
use brickless_devices::clock::SimClock;
use brickless_devices::rom::i2c::{BusFaults, I2cServer, I2cServerOptions, SimI2cBus};
use brickless_devices::rom::usart::{self, Session, UsartOptions};
use brickless_flash::Part;
use brickless_flash_model::SimFlash;
use brickless_rom::an3155::SYNC;
use brickless_rom::an4221::cmd;
use brickless_rom::dfuse::{command, request, DfuStatusCode, DfuTransport};
use brickless_rom::RomDevice;
use embedded_hal::i2c::{I2c, Operation};

use crate::input::Input;
use crate::trace;

/// A device table entry and the part its flash model follows: real, and reduced.
struct Target {
    real: (&'static RomDevice, &'static Part),
    reduced: (&'static RomDevice, &'static Part),
}

fn targets() -> &'static [Target] {
    static TARGETS: OnceLock<Vec<Target>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        CAMPAIGN_PARTS
            .iter()
            .map(|name| {
                let part = brickless_flash::part(name).expect("campaign part");
                let device = brickless_rom::by_pid(part.pid).expect("a ROM device per part");
                let small = reduced_part(part);
                let small_device: &'static RomDevice = Box::leak(Box::new(RomDevice {
                    geometry: &small.geometry,
                    ..*device
                }));
                Target {
                    real: (device, part),
                    reduced: (small_device, small),
                }
            })
            .collect()
    })
}

/// A flash with something in it: a pattern at the start of a few sectors, so erases and
/// second programs show.
fn initial_flash(part: &'static Part, seed: u8) -> SimFlash {
    let mut flash = SimFlash::with_seed(part, u64::from(seed));
    let sectors: Vec<_> = part.geometry.sectors().collect();
    let picks = [0, 1, sectors.len() / 2, sectors.len() - 1];
    for (k, &i) in picks.iter().enumerate() {
        let s = sectors[i];
        let len = s.size.min(1024) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|j| (j as u8).wrapping_mul(31).wrapping_add(seed ^ k as u8) | 1)
            .collect();
        flash.preload(s.addr, &bytes).expect("sectors are mapped");
    }
    flash
}

fn same_content(a: &SimFlash, b: &SimFlash) -> Option<u32> {
    let mut x = vec![0u8; 4096];
    let mut y = vec![0u8; 4096];
    for s in a.geometry().sectors() {
        let mut at = s.addr;
        while at < s.end() {
            let n = (s.end() - at).min(4096) as usize;
            a.peek(at, &mut x[..n]).expect("mapped");
            b.peek(at, &mut y[..n]).expect("mapped");
            if x[..n] != y[..n] {
                let i = x[..n]
                    .iter()
                    .zip(&y[..n])
                    .position(|(p, q)| p != q)
                    .unwrap_or(0);
                return Some(at + i as u32);
            }
            at += n as u32;
        }
    }
    None
}

fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |x, b| x ^ b)
}

/// Generation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Raw,
    Framed,
    AllBad,
}

/// An address the device cares about.
fn address(inp: &mut Input, d: &RomDevice) -> u32 {
    let flash = d.flash();
    let pages = u32::from(d.page_count().max(1));
    match inp.below(9) {
        0 | 1 => {
            let p = d
                .page(inp.below(pages) as u16)
                .map_or(flash.start, |s| s.addr);
            p + inp.below(64) * 4
        }
        2 => flash.start + inp.below(flash.len().max(1)),
        3 => d.ram.start + inp.below(d.ram.len().max(1)),
        4 => d
            .option_bytes
            .map_or(0, |r| r.start + inp.below(r.len().max(1))),
        5 => d.system_memory.start + inp.below(d.system_memory.len().max(1)),
        6 => [d.flash_size_addr, d.uid_addr][inp.below(2) as usize] + inp.below(16),
        7 => flash.end.wrapping_sub(inp.below(64)),
        _ => inp.u32(),
    }
}

/// A checksum byte, wrong when `bad`.
fn check(value: u8, bad: bool, inp: &mut Input) -> u8 {
    if bad {
        value ^ (1 + inp.below(255) as u8)
    } else {
        value
    }
}

/// Whether a frame's checksum is wrong: always in AllBad mode for final write/erase frames,
/// sometimes in Framed mode.
fn bad_final(mode: Mode, inp: &mut Input) -> bool {
    mode == Mode::AllBad || inp.one_in(8)
}

fn bad_other(inp: &mut Input) -> bool {
    inp.one_in(16)
}

// ---- USART ---------------------------------------------------------------------------------

/// One connection's bytes, read in input-chosen chunk sizes; replies are dropped.
struct Pipe<'a> {
    data: &'a [u8],
    chunks: u64,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.chunks = self.chunks.rotate_left(7) ^ 0x9E37_79B9;
        let want = 1 + (self.chunks % 97) as usize;
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn usart_frames(inp: &mut Input, d: &RomDevice, mode: Mode, out: &mut Vec<u8>) {
    let addr_frame = |inp: &mut Input, out: &mut Vec<u8>| {
        let a = address(inp, d).to_be_bytes();
        out.extend_from_slice(&a);
        let bad = bad_other(inp);
        out.push(check(xor(&a), bad, inp));
    };
    let command = |c: u8, out: &mut Vec<u8>| out.extend_from_slice(&[c, !c]);
    while !inp.is_empty() && out.len() < 8192 {
        match inp.below(16) {
            0 => out.push(SYNC),
            1 => command(
                [cmd::GET, cmd::GET_VERSION, cmd::GET_ID][inp.below(3) as usize],
                out,
            ),
            2 => {
                command(cmd::READ_MEMORY, out);
                addr_frame(inp, out);
                let n = inp.byte();
                out.extend_from_slice(&[n, check(!n, bad_other(inp), inp)]);
            }
            3 => {
                command(cmd::GO, out);
                addr_frame(inp, out);
            }
            4 | 5 => {
                command(cmd::WRITE_MEMORY, out);
                addr_frame(inp, out);
                let n = inp.below(64) as u8;
                let data = inp.bytes_padded(usize::from(n) + 1);
                out.push(n);
                out.extend_from_slice(&data);
                let bad = bad_final(mode, inp);
                out.push(check(n ^ xor(&data), bad, inp));
            }
            6 | 7 => {
                command(cmd::EXTENDED_ERASE, out);
                if inp.one_in(4) {
                    let n: u16 = [0xFFFF, 0xFFFE, 0xFFFD, 0xFFF0 | inp.below(16) as u16]
                        [inp.below(4) as usize];
                    let [hi, lo] = n.to_be_bytes();
                    let bad = bad_final(mode, inp);
                    out.extend_from_slice(&[hi, lo, check(hi ^ lo, bad, inp)]);
                } else {
                    let count = 1 + inp.below(4) as u16;
                    let [hi, lo] = (count - 1).to_be_bytes();
                    let mut frame = vec![hi, lo];
                    for _ in 0..count {
                        let p = inp.below(u32::from(d.page_count()) + 2) as u16;
                        frame.extend_from_slice(&p.to_be_bytes());
                    }
                    let bad = bad_final(mode, inp);
                    let ck = check(xor(&frame), bad, inp);
                    out.extend_from_slice(&frame);
                    out.push(ck);
                }
            }
            8 => {
                command(cmd::WRITE_PROTECT, out);
                let n = inp.below(4) as u8;
                let mut frame = vec![n];
                for _ in 0..=n {
                    frame.push(inp.below(u32::from(d.page_count()) + 2) as u8);
                }
                let ck = check(xor(&frame), bad_other(inp), inp);
                out.extend_from_slice(&frame);
                out.push(ck);
            }
            9 => command(
                [cmd::WRITE_UNPROTECT, cmd::READOUT_PROTECT][inp.below(2) as usize],
                out,
            ),
            10 if mode == Mode::Framed && inp.one_in(4) => command(cmd::READOUT_UNPROTECT, out),
            11 => {
                command(cmd::GET_CHECKSUM, out);
                addr_frame(inp, out);
                let len = (inp.below(4096) & !3).to_be_bytes();
                out.extend_from_slice(&len);
                let ck = check(xor(&len), bad_other(inp), inp);
                out.push(ck);
            }
            12 => {
                // A command with a wrong complement, or a code the ROM does not know.
                let c = inp.byte();
                out.extend_from_slice(&[c, if inp.bool() { !c ^ 0x10 } else { !c }]);
            }
            13 => {
                let n = inp.below(8) as usize;
                out.extend_from_slice(inp.bytes(n));
            }
            _ => {}
        }
    }
}

/// Whether a complete Write Memory, Extended Erase or Readout Unprotect the device could
/// accept starts anywhere in `s`.
fn usart_may_change(s: &[u8]) -> bool {
    for i in 0..s.len().saturating_sub(1) {
        if s[i + 1] != !s[i] {
            continue;
        }
        let at = |k: usize| s.get(i + k).copied();
        match s[i] {
            cmd::READOUT_UNPROTECT => return true,
            cmd::WRITE_MEMORY => {
                let Some(a) = s.get(i + 2..i + 7) else {
                    continue;
                };
                if xor(&a[..4]) != a[4] {
                    continue;
                }
                let Some(n) = at(7) else { continue };
                let len = usize::from(n) + 1;
                let (Some(data), Some(ck)) = (s.get(i + 8..i + 8 + len), at(8 + len)) else {
                    continue;
                };
                if n ^ xor(data) == ck {
                    return true;
                }
            }
            cmd::EXTENDED_ERASE => {
                let (Some(hi), Some(lo)) = (at(2), at(3)) else {
                    continue;
                };
                let n = u16::from_be_bytes([hi, lo]);
                if n >= 0xFFF0 {
                    if at(4) == Some(hi ^ lo) {
                        return true;
                    }
                    continue;
                }
                let len = 2 * (usize::from(n) + 1);
                let (Some(pages), Some(ck)) = (s.get(i + 4..i + 4 + len), at(4 + len)) else {
                    continue;
                };
                if hi ^ lo ^ xor(pages) == ck {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

fn run_usart(inp: &mut Input, d: &'static RomDevice, mode: Mode, core: RomCore) -> (bool, RomCore) {
    let opts = UsartOptions {
        checksum: inp.bool(),
        ..UsartOptions::default()
    };
    let mut stream = Vec::new();
    if mode == Mode::Raw {
        if inp.bool() {
            stream.push(SYNC);
        }
        let n = inp.below(4096) as usize;
        stream.extend_from_slice(inp.bytes(n));
    } else {
        stream.push(SYNC);
        usart_frames(inp, d, mode, &mut stream);
    }
    let may_change = usart_may_change(&stream);
    // Split into up to four connections (the session survives; a command does not).
    let mut cuts: Vec<usize> = (0..inp.below(4))
        .map(|_| inp.below(stream.len() as u32 + 1) as usize)
        .collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    let core = Mutex::new(core);
    let session = Mutex::new(Session::default());
    let mut from = 0;
    let chunking = u64::from(inp.u32());
    for to in cuts {
        let mut pipe = Pipe {
            data: &stream[from..to],
            chunks: chunking ^ to as u64,
        };
        usart::serve(&core, &session, &mut pipe, &opts);
        from = to;
    }
    (
        may_change,
        core.into_inner().unwrap_or_else(|p| p.into_inner()),
    )
}

// ---- I2C -----------------------------------------------------------------------------------

enum I2cOp {
    Write(Vec<u8>),
    Read(usize),
    WriteRead(Vec<u8>, usize),
    Advance(u64),
    /// A write to another device's address (must be ignored).
    Stray(Vec<u8>),
}

fn i2c_frames(inp: &mut Input, d: &RomDevice, mode: Mode, ops: &mut Vec<I2cOp>) {
    let ack = |ops: &mut Vec<I2cOp>| ops.push(I2cOp::Read(1));
    let command = |c: u8, ops: &mut Vec<I2cOp>| {
        ops.push(I2cOp::Write(vec![c, !c]));
        ops.push(I2cOp::Read(1));
    };
    let addr_frame = |inp: &mut Input, ops: &mut Vec<I2cOp>| {
        let a = address(inp, d).to_be_bytes();
        let mut f = a.to_vec();
        f.push(check(xor(&a), bad_other(inp), inp));
        ops.push(I2cOp::Write(f));
        ops.push(I2cOp::Read(1));
    };
    let write_codes = [cmd::WRITE_MEMORY, cmd::NS_WRITE_MEMORY];
    let erase_codes = [cmd::EXTENDED_ERASE, cmd::NS_EXTENDED_ERASE];
    while !inp.is_empty() && ops.len() < 512 {
        match inp.below(16) {
            0 => {
                let c = [cmd::GET, cmd::GET_VERSION, cmd::GET_ID][inp.below(3) as usize];
                command(c, ops);
                ops.push(I2cOp::Read(1 + inp.below(24) as usize));
                ack(ops);
            }
            1 => {
                command(cmd::READ_MEMORY, ops);
                addr_frame(inp, ops);
                let n = inp.byte();
                ops.push(I2cOp::Write(vec![n, check(!n, bad_other(inp), inp)]));
                ack(ops);
                ops.push(I2cOp::Read(usize::from(n) + 1));
            }
            2 => {
                command(cmd::GO, ops);
                addr_frame(inp, ops);
            }
            3 | 4 => {
                command(write_codes[inp.below(2) as usize], ops);
                addr_frame(inp, ops);
                let n = inp.below(64) as u8;
                let data = inp.bytes_padded(usize::from(n) + 1);
                let mut f = vec![n];
                f.extend_from_slice(&data);
                let bad = bad_final(mode, inp);
                f.push(check(n ^ xor(&data), bad, inp));
                ops.push(I2cOp::Write(f));
                ops.push(I2cOp::Advance(u64::from(inp.u32())));
                ack(ops);
            }
            5 | 6 => {
                command(erase_codes[inp.below(2) as usize], ops);
                if inp.one_in(4) {
                    let n: u16 = [0xFFFF, 0xFFFE, 0xFFFD, 0xFFF0 | inp.below(16) as u16]
                        [inp.below(4) as usize];
                    let [hi, lo] = n.to_be_bytes();
                    let bad = bad_final(mode, inp);
                    ops.push(I2cOp::Write(vec![hi, lo, check(hi ^ lo, bad, inp)]));
                } else {
                    let count = 1 + inp.below(4) as u16;
                    let [hi, lo] = (count - 1).to_be_bytes();
                    let bad_count = bad_other(inp);
                    ops.push(I2cOp::Write(vec![hi, lo, check(hi ^ lo, bad_count, inp)]));
                    ack(ops);
                    let mut f = Vec::new();
                    for _ in 0..count {
                        let p = inp.below(u32::from(d.page_count()) + 2) as u16;
                        f.extend_from_slice(&p.to_be_bytes());
                    }
                    let bad = bad_final(mode, inp);
                    let ck = check(xor(&f), bad, inp);
                    f.push(ck);
                    ops.push(I2cOp::Write(f));
                }
                ops.push(I2cOp::Advance(u64::from(inp.u32()) << inp.below(16)));
                ack(ops);
            }
            7 => {
                command(
                    [cmd::WRITE_PROTECT, cmd::NS_WRITE_PROTECT][inp.below(2) as usize],
                    ops,
                );
                let n = inp.below(4) as u8;
                ops.push(I2cOp::Write(vec![n, check(!n, bad_other(inp), inp)]));
                ack(ops);
                let mut f: Vec<u8> = (0..=n)
                    .map(|_| inp.below(u32::from(d.page_count()) + 2) as u8)
                    .collect();
                let ck = check(xor(&f), bad_other(inp), inp);
                f.push(ck);
                ops.push(I2cOp::Write(f));
                ack(ops);
            }
            8 => {
                let c = [
                    cmd::WRITE_UNPROTECT,
                    cmd::NS_WRITE_UNPROTECT,
                    cmd::READOUT_PROTECT,
                    cmd::NS_READOUT_PROTECT,
                ][inp.below(4) as usize];
                command(c, ops);
                ack(ops);
            }
            9 if mode == Mode::Framed && inp.one_in(4) => {
                let c = [cmd::READOUT_UNPROTECT, cmd::NS_READOUT_UNPROTECT][inp.below(2) as usize];
                command(c, ops);
                ack(ops);
            }
            10 => {
                command(cmd::GET_CHECKSUM, ops);
                addr_frame(inp, ops);
                let len = (inp.below(4096) & !3).to_be_bytes();
                let mut f = len.to_vec();
                f.push(check(xor(&len), bad_other(inp), inp));
                ops.push(I2cOp::Write(f));
                ack(ops);
                ops.push(I2cOp::Read(5));
            }
            11 => {
                let n = inp.below(8) as usize;
                ops.push(I2cOp::Write(inp.bytes(n).to_vec()));
            }
            12 => ops.push(I2cOp::Read(inp.below(8) as usize)),
            13 => ops.push(I2cOp::Advance(u64::from(inp.u32()) << inp.below(24))),
            14 => {
                let n = inp.below(4) as usize;
                let w = inp.bytes(n).to_vec();
                ops.push(I2cOp::WriteRead(w, 1 + inp.below(4) as usize));
            }
            15 => {
                let n = inp.below(8) as usize;
                ops.push(I2cOp::Stray(inp.bytes(n).to_vec()));
            }
            _ => {}
        }
    }
}

fn i2c_raw(inp: &mut Input, ops: &mut Vec<I2cOp>) {
    while !inp.is_empty() && ops.len() < 512 {
        match inp.below(5) {
            0 | 1 => {
                let n = inp.below(12) as usize;
                ops.push(I2cOp::Write(inp.bytes(n).to_vec()));
            }
            4 => {
                let n = inp.below(12) as usize;
                ops.push(I2cOp::Stray(inp.bytes(n).to_vec()));
            }
            2 => ops.push(I2cOp::Read(inp.below(8) as usize)),
            _ => ops.push(I2cOp::Advance(u64::from(inp.u32()) << inp.below(24))),
        }
    }
}

/// Whether the write transactions (to the device's address, in order) could complete a Write
/// Memory, Extended Erase or Readout Unprotect. The device takes each write as the next phase
/// of the command in progress (a write out of turn resets it), so a command's phases are
/// consecutive writes; any write is allowed to start one.
fn i2c_may_change(ws: &[&[u8]]) -> bool {
    let address = |a: &[u8]| a.len() == 5 && xor(&a[..4]) == a[4];
    let data = |d: &[u8]| {
        d.len() >= 3 && d.len() == usize::from(d[0]) + 3 && xor(&d[..d.len() - 1]) == d[d.len() - 1]
    };
    let count = |c: &[u8]| c.len() == 3 && c[0] ^ c[1] == c[2];
    let special = |c: &[u8]| u16::from_be_bytes([c[0], c[1]]) & 0xFFF0 == 0xFFF0;
    let pages = |c: &[u8], p: &[u8]| {
        p.len() == 2 * (usize::from(u16::from_be_bytes([c[0], c[1]])) + 1) + 1
            && xor(&p[..p.len() - 1]) == p[p.len() - 1]
    };
    for (i, w) in ws.iter().enumerate() {
        if w.len() != 2 || w[1] != !w[0] {
            continue;
        }
        let next = |k: usize| ws.get(i + k).copied();
        match w[0] {
            cmd::READOUT_UNPROTECT | cmd::NS_READOUT_UNPROTECT => return true,
            cmd::WRITE_MEMORY | cmd::NS_WRITE_MEMORY => {
                if let (Some(a), Some(d)) = (next(1), next(2)) {
                    if address(a) && data(d) {
                        return true;
                    }
                }
            }
            cmd::EXTENDED_ERASE | cmd::NS_EXTENDED_ERASE => {
                if let Some(c) = next(1).filter(|c| count(c)) {
                    if special(c) || next(2).is_some_and(|p| pages(c, p)) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

fn run_i2c(inp: &mut Input, d: &'static RomDevice, mode: Mode, core: RomCore) -> (bool, RomCore) {
    let mut opts = I2cServerOptions::for_device(d);
    opts.version = [0x10, 0x11, 0x12][inp.below(3) as usize];
    opts.busy_forever = inp.one_in(16);
    if inp.one_in(8) {
        opts.vendor_commands = &[0x50, 0x51];
    }
    let clock = SimClock::new();
    let mut bus = SimI2cBus::new(I2cServer::new(core, opts, clock.clone()));
    if inp.one_in(4) {
        bus.faults = BusFaults {
            vanish_after: inp.one_in(2).then(|| inp.below(64)),
            corrupt_next_read: inp.bool(),
            lose_arbitration_once: inp.bool(),
            adapter_timeout_ms: inp.one_in(2).then(|| inp.below(1000)),
        };
    }
    let mut ops = Vec::new();
    if mode == Mode::Raw {
        i2c_raw(inp, &mut ops);
    } else {
        i2c_frames(inp, d, mode, &mut ops);
    }
    let writes: Vec<&[u8]> = ops
        .iter()
        .filter_map(|op| match op {
            I2cOp::Write(w) | I2cOp::WriteRead(w, _) => Some(&w[..]),
            _ => None,
        })
        .collect();
    let may_change = i2c_may_change(&writes);
    let wrong = opts.address ^ 0x01;
    trace!(
        "i2c v{:#x}, faults {:?}, {} ops",
        opts.version,
        bus.faults,
        ops.len()
    );
    for op in &ops {
        let to = opts.address;
        let mut buf = [0u8; 260];
        let r = match op {
            I2cOp::Write(w) => bus.transaction(to, &mut [Operation::Write(w)]),
            I2cOp::Read(n) => bus.transaction(to, &mut [Operation::Read(&mut buf[..*n])]),
            I2cOp::WriteRead(w, n) => bus.transaction(
                to,
                &mut [Operation::Write(w), Operation::Read(&mut buf[..*n])],
            ),
            I2cOp::Advance(ns) => {
                clock.advance_ns(*ns);
                Ok(())
            }
            I2cOp::Stray(w) => bus.transaction(wrong, &mut [Operation::Write(w)]),
        };
        match op {
            I2cOp::Write(w) => trace!("  write {w:02x?}: {r:?}"),
            I2cOp::Read(n) => trace!("  read {n}: {r:?} {:02x?}", &buf[..(*n).min(8)]),
            I2cOp::WriteRead(w, n) => trace!(
                "  write {w:02x?} read {n}: {r:?} {:02x?}",
                &buf[..(*n).min(8)]
            ),
            I2cOp::Advance(ns) => trace!("  advance {ns} ns"),
            I2cOp::Stray(w) => trace!("  stray write {w:02x?}: {r:?}"),
        }
    }
    trace!("i2c stats {:?}", bus.server.stats);
    (may_change, bus.server.core)
}

// ---- DfuSe ---------------------------------------------------------------------------------

enum Req {
    Out {
        req: u8,
        value: u16,
        index: u16,
        data: Vec<u8>,
    },
    In {
        req: u8,
        value: u16,
        index: u16,
        len: usize,
    },
    Advance(u64),
}

fn dfu_changes(value: u16, data: &[u8]) -> bool {
    (value >= 2 && !data.is_empty())
        || (value == 0
            && matches!(
                data.first(),
                Some(&command::ERASE | &command::READ_UNPROTECT)
            ))
}

fn dfu_frames(inp: &mut Input, d: &RomDevice, mode: Mode, ts: u16, reqs: &mut Vec<Req>) {
    let mut armed = false; // a writing download is waiting for its GETSTATUS
    let status = |reqs: &mut Vec<Req>| {
        reqs.push(Req::In {
            req: request::GETSTATUS,
            value: 0,
            index: 0,
            len: 6,
        })
    };
    while !inp.is_empty() && reqs.len() < 512 {
        let index = if inp.one_in(32) {
            1 + inp.below(3) as u16
        } else {
            0
        };
        let (value, data): (u16, Vec<u8>) = match inp.below(12) {
            0 | 1 => {
                let a = address(inp, d).to_le_bytes();
                (0, vec![command::SET_ADDRESS, a[0], a[1], a[2], a[3]])
            }
            2 => {
                let a = address(inp, d).to_le_bytes();
                (0, vec![command::ERASE, a[0], a[1], a[2], a[3]])
            }
            3 if inp.one_in(4) => (0, vec![command::ERASE]),
            4 if mode == Mode::Framed && inp.one_in(8) => (0, vec![command::READ_UNPROTECT]),
            5 => {
                let n = 1 + inp.below(6) as usize;
                (0, inp.bytes(n).to_vec())
            }
            6 | 7 => {
                let block = 2 + inp.below(8) as u16;
                let n = 1 + inp.below(u32::from(ts.min(96))) as usize;
                (block, inp.bytes_padded(n))
            }
            8 => {
                reqs.push(Req::In {
                    req: request::UPLOAD,
                    value: inp.below(6) as u16,
                    index,
                    len: inp.below(u32::from(ts.min(256)) + 8) as usize,
                });
                continue;
            }
            9 => {
                let req = [
                    request::GETSTATE,
                    request::CLRSTATUS,
                    request::ABORT,
                    request::DETACH,
                    inp.byte(),
                ][inp.below(5) as usize];
                if req == request::GETSTATE || req == request::GETSTATUS {
                    if !(req == request::GETSTATUS && mode == Mode::AllBad && armed) {
                        reqs.push(Req::In {
                            req,
                            value: 0,
                            index,
                            len: 1 + inp.below(8) as usize,
                        });
                    }
                } else {
                    reqs.push(Req::Out {
                        req,
                        value: inp.u16(),
                        index,
                        data: Vec::new(),
                    });
                }
                continue;
            }
            10 => {
                reqs.push(Req::Advance(u64::from(inp.u32()) << inp.below(24)));
                continue;
            }
            _ => {
                // An empty download (leave), or a status poll.
                if inp.one_in(4) {
                    (0, Vec::new())
                } else {
                    if !(mode == Mode::AllBad && armed) {
                        status(reqs);
                    }
                    continue;
                }
            }
        };
        armed |= dfu_changes(value, &data);
        reqs.push(Req::Out {
            req: request::DNLOAD,
            value,
            index,
            data,
        });
        // What a host does next: poll until the work is done.
        for _ in 0..inp.below(3) {
            if mode == Mode::AllBad && armed {
                reqs.push(Req::In {
                    req: request::GETSTATE,
                    value: 0,
                    index: 0,
                    len: 1,
                });
            } else {
                status(reqs);
            }
            reqs.push(Req::Advance(u64::from(inp.u32()) << inp.below(16)));
        }
    }
}

fn dfu_raw(inp: &mut Input, reqs: &mut Vec<Req>) {
    while !inp.is_empty() && reqs.len() < 512 {
        let req = inp.below(8) as u8;
        let value = if inp.bool() {
            inp.below(4) as u16
        } else {
            inp.u16()
        };
        let index = if inp.one_in(16) { inp.u16() } else { 0 };
        match inp.below(3) {
            0 => {
                let n = inp.below(16) as usize;
                reqs.push(Req::Out {
                    req,
                    value,
                    index,
                    data: inp.bytes(n).to_vec(),
                })
            }
            1 => reqs.push(Req::In {
                req,
                value,
                index,
                len: inp.below(64) as usize,
            }),
            _ => reqs.push(Req::Advance(u64::from(inp.u32()) << inp.below(24))),
        }
    }
}

/// Whether some download that writes or erases is followed by a GETSTATUS (which runs it).
fn dfu_may_change(reqs: &[Req]) -> bool {
    let mut pending = false;
    for r in reqs {
        match r {
            Req::Out {
                req, value, data, ..
            } if *req == request::DNLOAD => {
                pending |= dfu_changes(*value, data);
            }
            Req::In { req, .. } if *req == request::GETSTATUS && pending => return true,
            _ => {}
        }
    }
    false
}

fn run_dfu(inp: &mut Input, d: &'static RomDevice, mode: Mode, core: RomCore) -> (bool, RomCore) {
    let ts = match inp.below(4) {
        0 => 1024,
        1 => 2048,
        2 => 64,
        _ => inp.u16(),
    };
    let clock = SimClock::new();
    let mut usb = SimDfuUsb::new(DfuServer::new(core, ts, clock.clone()));
    if inp.one_in(4) {
        usb.server.faults = DfuFaults {
            stall_busy_polls: inp.below(4),
            busy_forever: inp.one_in(8),
            fail_next_write: inp.one_in(4).then_some(DfuStatusCode::Prog),
            vanish_after: inp.one_in(4).then(|| inp.below(64)),
            short_next_upload: inp.below(4) as usize,
            silent_while_busy: inp.one_in(4),
        };
    }
    let ts = usb.server.transfer_size();
    let mut reqs = Vec::new();
    if mode == Mode::Raw {
        dfu_raw(inp, &mut reqs);
    } else {
        dfu_frames(inp, d, mode, ts, &mut reqs);
    }
    let may_change = dfu_may_change(&reqs);
    let mut buf = vec![0u8; 4096];
    for r in &reqs {
        let _ = match r {
            Req::Out {
                req,
                value,
                index,
                data,
            } => usb.control_out(*req, *value, *index, data).map(|_| 0),
            Req::In {
                req,
                value,
                index,
                len,
            } => {
                let n = (*len).min(buf.len());
                usb.control_in(*req, *value, *index, &mut buf[..n])
            }
            Req::Advance(ns) => {
                clock.advance_ns(*ns);
                Ok(0)
            }
        };
    }
    (may_change, usb.server.core)
}

/// What one input did (for tests that check the targets are not vacuous).
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// 0 USART, 1 I2C, 2 DfuSe.
    pub transport: u32,
    pub mode: Mode,
    /// The traffic could hold a complete write/erase command (else the flash was checked).
    pub may_change: bool,
    /// Program and erase calls that reached the flash.
    pub changes: u32,
}

pub fn run(data: &[u8]) {
    run_report(data);
}

pub fn run_report(data: &[u8]) -> Report {
    let mut inp = Input::new(data);
    let transport = inp.below(3);
    let ts = targets();
    let t = &ts[inp.below(ts.len() as u32) as usize];
    let (device, part) = if inp.one_in(4) { t.real } else { t.reduced };
    let mode = [Mode::Raw, Mode::Framed, Mode::AllBad][inp.below(3) as usize];
    let flash = initial_flash(part, inp.byte());
    let before = flash.clone();
    let mut core = RomCore::new(device, flash);
    if inp.one_in(8) {
        core.set_read_protected(true);
    }
    trace!("transport {transport}, {}, mode {mode:?}", device.name);
    let (may_change, core) = match transport {
        0 => run_usart(&mut inp, device, mode, core),
        1 => run_i2c(&mut inp, device, mode, core),
        _ => run_dfu(&mut inp, device, mode, core),
    };
    if !may_change {
        // Every program and erase call that reaches the model is one operation.
        let w = core.flash();
        assert_eq!(
            w.op_count(),
            0,
            "no complete write/erase command was sent, yet the device programmed or erased flash"
        );
        if let Some(at) = same_content(&before, w) {
            panic!("no complete write/erase command was sent, yet flash changed at {at:#010x}");
        }
    }
    Report {
        transport,
        mode,
        may_change,
        changes: core.flash().op_count() as u32,
    }
}
