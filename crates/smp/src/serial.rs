//! SMP over a serial console: the framing mcumgr, MCUboot's serial recovery and Zephyr's
//! SMP shell use.
//!
//! A packet goes on the wire as `LEN(u16 BE) || BODY || CRC16(u16 BE)`, where BODY is the SMP
//! packet (8-byte header and CBOR), `LEN = len(BODY) + 2` and CRC16 is CRC-16/XMODEM of BODY.
//! That is base64-encoded (standard alphabet, `=` padding) and cut into lines of at most
//! [`LINE_MAX`] bytes: the first starts with [`FIRST_MARKER`], the others with
//! [`NEXT_MARKER`], each ends with `\n`, and each line's base64 decodes on its own.
//!
//! Everything here is `no_std` and allocation-free: [`encode`] writes into a caller's
//! buffer, [`Decoder`] reassembles into fixed buffers.

use base64ct::{Base64, Encoding};
use core::fmt;
use crc::{Crc, CRC_16_XMODEM};

/// Bytes per line, including the 2-byte marker and the newline.
pub const LINE_MAX: usize = 127;
/// Marker opening the first line of a packet.
pub const FIRST_MARKER: [u8; 2] = [0x06, 0x09];
/// Marker opening each following line of a packet.
pub const NEXT_MARKER: [u8; 2] = [0x04, 0x14];

/// Base64 characters per line: what fits between marker and newline, rounded down to whole
/// 4-character groups so each line decodes on its own.
const CHUNK_CHARS: usize = (LINE_MAX - 3) / 4 * 4;
/// Packet bytes (length field, body, CRC) carried by one full line.
const CHUNK_BYTES: usize = CHUNK_CHARS / 4 * 3;
/// Largest body whose `LEN` fits the 16-bit length field.
const BODY_MAX: usize = u16::MAX as usize - 2;

const XMODEM: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no final xor) of `data`.
pub fn crc16(data: &[u8]) -> u16 {
    XMODEM.checksum(data)
}

/// Bytes `encode` writes for an SMP packet of `packet_len` bytes (saturating for lengths no
/// frame can carry).
pub fn encoded_len(packet_len: usize) -> usize {
    let raw = packet_len.saturating_add(4);
    let chars = raw.div_ceil(3).saturating_mul(4);
    let lines = chars.div_ceil(CHUNK_CHARS);
    chars.saturating_add(lines.saturating_mul(3))
}

/// Writes the framed lines of one SMP packet into `out`, returns bytes written.
///
/// Fails for an empty packet (a receiver drops `LEN <= 2`), a packet over 65533 bytes (its
/// `LEN` would not fit 16 bits) and an `out` shorter than [`encoded_len`].
pub fn encode(packet: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    if packet.is_empty() {
        return Err(FrameError::EmptyPacket);
    }
    if packet.len() > BODY_MAX {
        return Err(FrameError::PacketTooLong {
            len: packet.len(),
            max: BODY_MAX,
        });
    }
    let needed = encoded_len(packet.len());
    if out.len() < needed {
        return Err(FrameError::OutputTooSmall { needed });
    }
    // Fits: checked against BODY_MAX above.
    let len = ((packet.len() + 2) as u16).to_be_bytes();
    let crc = crc16(packet).to_be_bytes();
    let raw_len = packet.len() + 4;
    // Byte `i` of LEN || BODY || CRC, without copying the whole packet.
    let raw = |i: usize| match i {
        0 | 1 => len[i],
        _ if i < raw_len - 2 => packet[i - 2],
        _ => crc[i + 2 - raw_len],
    };
    let mut chunk = [0u8; CHUNK_BYTES];
    let mut at = 0;
    let mut pos = 0;
    while pos < raw_len {
        let n = CHUNK_BYTES.min(raw_len - pos);
        for (k, b) in chunk[..n].iter_mut().enumerate() {
            *b = raw(pos + k);
        }
        let marker = if pos == 0 { FIRST_MARKER } else { NEXT_MARKER };
        out[at..at + 2].copy_from_slice(&marker);
        at += 2;
        let text = Base64::encode(&chunk[..n], &mut out[at..])
            .map_err(|_| FrameError::OutputTooSmall { needed })?;
        at += text.len();
        out[at] = b'\n';
        at += 1;
        pos += n;
    }
    Ok(at)
}

/// Why a frame could not be encoded, or why the receiver dropped one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// `encode` was given an empty packet.
    EmptyPacket,
    /// The packet is longer than the frame's length field (encoding) or the receiver's
    /// buffer (decoding) allows.
    PacketTooLong {
        /// The packet's body length in bytes.
        len: usize,
        /// The largest body length allowed.
        max: usize,
    },
    /// The output buffer given to `encode` is too short.
    OutputTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
    /// A line was longer than [`LINE_MAX`] bytes.
    LineTooLong,
    /// A line was not valid padded base64.
    Base64,
    /// The length field was below 3 (a packet needs a body and its CRC).
    BadLength {
        /// The length field's value.
        len: u16,
    },
    /// The CRC at the end of the frame does not match its body.
    Crc {
        /// The CRC the frame carried.
        received: u16,
        /// The CRC of the body received.
        computed: u16,
    },
    /// A line decoded to bytes past the end the length field announced.
    TrailingData,
    /// A new frame line began before the packet (or the line) being received was complete.
    Truncated,
    /// A continuation line arrived with no packet started.
    NoStart,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyPacket => f.write_str("empty SMP packet: nothing to frame"),
            Self::PacketTooLong { len, max } => {
                write!(
                    f,
                    "SMP packet of {len} bytes is longer than the {max} allowed"
                )
            }
            Self::OutputTooSmall { needed } => {
                write!(f, "output buffer too small: the frame needs {needed} bytes")
            }
            Self::LineTooLong => write!(f, "frame line longer than {LINE_MAX} bytes"),
            Self::Base64 => f.write_str("frame line is not valid base64"),
            Self::BadLength { len } => write!(f, "frame length field {len} is below 3"),
            Self::Crc { received, computed } => write!(
                f,
                "frame CRC mismatch: received {received:#06x}, body has {computed:#06x}"
            ),
            Self::TrailingData => f.write_str("frame carries bytes past its length field's end"),
            Self::Truncated => {
                f.write_str("frame cut short: a new frame line began before it was complete")
            }
            Self::NoStart => f.write_str("frame continuation line without a start line"),
        }
    }
}

impl core::error::Error for FrameError {}

/// Where the receiver is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Outside a frame line (console text); `prev` is the last byte seen, to spot a marker.
    Outside { prev: u8 },
    /// Inside a frame line after its marker; `first` for a [`FIRST_MARKER`] line.
    In { first: bool },
}

/// What the receiver knows of the packet being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packet {
    /// None started (or the last one completed).
    Idle,
    /// Started by a first line; collecting bytes.
    Receiving,
    /// Dropped after an error: its remaining continuation lines are ignored quietly.
    Dropped,
}

/// Line bytes kept: a full chunk plus a `\r` before the newline.
const LINE_BUF: usize = CHUNK_CHARS + 1;

/// Receiver: fed bytes one at a time (from a UART or a pty), yields whole packets.
///
/// `N` is the largest packet body (SMP header and CBOR) it reassembles; a frame announcing
/// more is dropped with [`FrameError::PacketTooLong`].
///
/// Like MCUboot and Zephyr: a [`FIRST_MARKER`] starts a new packet (dropping a partial one),
/// a [`NEXT_MARKER`] continues it, and bytes outside frame lines are console text and
/// ignored. A marker is recognised anywhere, even inside a line whose newline was lost, so
/// the receiver resynchronises on the next frame whatever came before.
#[derive(Debug, Clone)]
pub struct Decoder<const N: usize> {
    line: Line,
    line_buf: [u8; LINE_BUF],
    line_len: usize,
    packet: Packet,
    /// The length field's bytes, then `LEN` once both are in.
    len_bytes: [u8; 2],
    /// Packet bytes decoded so far, the length field included.
    got: usize,
    body: [u8; N],
    crc: [u8; 2],
    /// Body length of the packet completed by the last `push`, if it completed one.
    ready: Option<usize>,
}

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Decoder<N> {
    /// A receiver waiting for a first line.
    pub const fn new() -> Self {
        Self {
            line: Line::Outside { prev: 0 },
            line_buf: [0; LINE_BUF],
            line_len: 0,
            packet: Packet::Idle,
            len_bytes: [0; 2],
            got: 0,
            body: [0; N],
            crc: [0; 2],
            ready: None,
        }
    }

    /// Forgets any partial line and packet.
    pub fn reset(&mut self) {
        self.line = Line::Outside { prev: 0 };
        self.line_len = 0;
        self.packet = Packet::Idle;
        self.got = 0;
        self.ready = None;
    }

    /// The packet (SMP header and CBOR) completed by the last [`push`](Self::push), or an
    /// empty slice if that push completed none.
    pub fn packet(&self) -> &[u8] {
        match self.ready {
            Some(len) => self.body.get(..len).unwrap_or(&[]),
            None => &[],
        }
    }

    /// The CRC16 field of the packet completed by the last [`push`](Self::push) (equal to
    /// `crc16(packet())`: the receiver checked it), or `None` if that push completed none.
    pub fn frame_crc(&self) -> Option<u16> {
        self.ready.map(|_| u16::from_be_bytes(self.crc))
    }

    /// Feeds one received byte.
    ///
    /// Returns `Some(Ok(len))` when a packet of `len` body bytes is complete (then
    /// [`packet`](Self::packet) gives it until the next push), `Some(Err(e))` when a frame
    /// was dropped (bad base64, CRC mismatch, too long, line too long, continuation without
    /// start, cut short by a new frame), `None` otherwise.
    pub fn push(&mut self, byte: u8) -> Option<Result<usize, FrameError>> {
        self.ready = None;
        match self.line {
            Line::Outside { prev } => {
                if let Some(first) = marker(prev, byte) {
                    return self.begin_line(first);
                }
                self.line = Line::Outside { prev: byte };
                None
            }
            Line::In { first } => {
                let last = match self.line_len {
                    0 => 0,
                    n => self.line_buf[n - 1],
                };
                if let Some(next_first) = marker(last, byte) {
                    // The line lost its newline: it and its packet are gone.
                    let cut = self.abort_line(first);
                    let begun = self.begin_line(next_first);
                    return cut.or(begun);
                }
                if byte == b'\n' {
                    let mut n = self.line_len;
                    if n > 0 && self.line_buf[n - 1] == b'\r' {
                        n -= 1;
                    }
                    self.line = Line::Outside { prev: byte };
                    self.line_len = 0;
                    if n > CHUNK_CHARS {
                        return self.fail(FrameError::LineTooLong, first);
                    }
                    return self.end_line(n, first);
                }
                if self.line_len == LINE_BUF {
                    // Keep the byte as `prev`: it may open the next frame's marker.
                    self.line = Line::Outside { prev: byte };
                    self.line_len = 0;
                    return self.fail(FrameError::LineTooLong, first);
                }
                self.line_buf[self.line_len] = byte;
                self.line_len += 1;
                None
            }
        }
    }

    /// Enters a line after its marker; a first line drops any partial packet.
    fn begin_line(&mut self, first: bool) -> Option<Result<usize, FrameError>> {
        self.line = Line::In { first };
        self.line_len = 0;
        if !first {
            return None;
        }
        let dropped = self.packet == Packet::Receiving;
        self.packet = Packet::Receiving;
        self.got = 0;
        dropped.then_some(Err(FrameError::Truncated))
    }

    /// A line ended without its newline.
    fn abort_line(&mut self, first: bool) -> Option<Result<usize, FrameError>> {
        self.line_len = 0;
        self.fail(FrameError::Truncated, first)
    }

    /// Drops the packet the current line belongs to, reporting `e` unless the packet was
    /// already dropped.
    fn fail(&mut self, e: FrameError, first: bool) -> Option<Result<usize, FrameError>> {
        match self.packet {
            Packet::Receiving => {
                self.packet = Packet::Dropped;
                Some(Err(e))
            }
            // A continuation line nothing started: that is the error to report.
            Packet::Idle if !first => Some(Err(FrameError::NoStart)),
            Packet::Idle | Packet::Dropped => None,
        }
    }

    /// A whole line of `n` base64 characters is in `line_buf`: decode and append it.
    fn end_line(&mut self, n: usize, first: bool) -> Option<Result<usize, FrameError>> {
        match self.packet {
            Packet::Receiving => {}
            Packet::Idle => return (!first).then_some(Err(FrameError::NoStart)),
            Packet::Dropped => return None,
        }
        let mut bytes = [0u8; CHUNK_BYTES];
        let decoded = match Base64::decode(&self.line_buf[..n], &mut bytes) {
            Ok(d) => d.len(),
            Err(_) => return self.fail(FrameError::Base64, first),
        };
        for &b in &bytes[..decoded] {
            if let Err(e) = self.append(b) {
                return self.fail(e, first);
            }
        }
        if self.got < 2 || self.got < 2 + usize::from(u16::from_be_bytes(self.len_bytes)) {
            return None;
        }
        // Complete: BODY || CRC must check.
        self.packet = Packet::Idle;
        let body_len = self.got - 4;
        let received = u16::from_be_bytes(self.crc);
        let computed = crc16(&self.body[..body_len]);
        if received != computed {
            self.packet = Packet::Dropped;
            return Some(Err(FrameError::Crc { received, computed }));
        }
        self.ready = Some(body_len);
        Some(Ok(body_len))
    }

    /// Adds one decoded packet byte.
    fn append(&mut self, b: u8) -> Result<(), FrameError> {
        let at = self.got;
        if at < 2 {
            self.len_bytes[at] = b;
            self.got += 1;
            if self.got == 2 {
                let len = u16::from_be_bytes(self.len_bytes);
                if len <= 2 {
                    return Err(FrameError::BadLength { len });
                }
                let body = usize::from(len) - 2;
                if body > N {
                    return Err(FrameError::PacketTooLong { len: body, max: N });
                }
            }
            return Ok(());
        }
        let end = 2 + usize::from(u16::from_be_bytes(self.len_bytes));
        if at >= end {
            return Err(FrameError::TrailingData);
        }
        if at < end - 2 {
            self.body[at - 2] = b;
        } else {
            self.crc[at + 2 - end] = b;
        }
        self.got += 1;
        Ok(())
    }
}

/// `Some(true)` if `prev, byte` is [`FIRST_MARKER`], `Some(false)` if [`NEXT_MARKER`].
fn marker(prev: u8, byte: u8) -> Option<bool> {
    match [prev, byte] {
        FIRST_MARKER => Some(true),
        NEXT_MARKER => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; encoded_len(body.len())];
        let n = encode(body, &mut out).expect("encode");
        assert_eq!(n, out.len(), "encoded_len is exact");
        out
    }

    /// Every result `push` gave while feeding `bytes`, with the packet of each success.
    fn feed<const N: usize>(d: &mut Decoder<N>, bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut results = Vec::new();
        for &b in bytes {
            match d.push(b) {
                Some(Ok(len)) => {
                    assert_eq!(d.packet().len(), len);
                    assert_eq!(d.frame_crc(), Some(crc16(d.packet())));
                    results.push(Ok(d.packet().to_vec()));
                }
                Some(Err(e)) => {
                    assert!(d.packet().is_empty());
                    results.push(Err(e));
                }
                None => assert!(d.packet().is_empty()),
            }
        }
        results
    }

    const ECHO_HI: [u8; 14] = [
        0x0a, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0xa1, 0x61, 0x64, 0x62, 0x68, 0x69,
    ];

    #[test]
    fn crc16_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(&ECHO_HI), 0xE27C);
    }

    #[test]
    fn echo_vector() {
        let wire = frame(&ECHO_HI);
        let mut expect = Vec::new();
        expect.extend_from_slice(&[0x06, 0x09]);
        expect.extend_from_slice(b"ABAKAAAGAAAAAKFhZGJoaeJ8");
        expect.push(0x0a);
        assert_eq!(wire, expect);
        // LEN = 0x0010 and the CRC, as the base64 carries them.
        let mut raw = [0u8; 18];
        let raw = Base64::decode(&wire[2..wire.len() - 1], &mut raw).expect("base64");
        assert_eq!(&raw[..2], &[0x00, 0x10]);
        assert_eq!(&raw[16..], &[0xE2, 0x7C]);
        let mut d = Decoder::<64>::new();
        assert_eq!(feed(&mut d, &wire), [Ok(ECHO_HI.to_vec())]);
    }

    #[test]
    fn smp_python_hello_vector() {
        assert_eq!(frame(b"Hello, world!"), b"\x06\tAA9IZWxsbywgd29ybGQhet4=\n");
        let mut d = Decoder::<64>::new();
        let got = feed(&mut d, b"\x06\tAA9IZWxsbywgd29ybGQhet4=\n");
        assert_eq!(got, [Ok(b"Hello, world!".to_vec())]);
    }

    #[test]
    fn long_packet_lines() {
        let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let wire = frame(&body);
        let lines: Vec<&[u8]> = wire.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 1004usize.div_ceil(93));
        for (i, line) in lines.iter().enumerate() {
            assert!(line.len() <= LINE_MAX);
            let marker = if i == 0 { FIRST_MARKER } else { NEXT_MARKER };
            assert_eq!(line[..2], marker);
            assert_eq!((line.len() - 3) % 4, 0);
            if i + 1 < lines.len() {
                assert_eq!(line.len(), LINE_MAX);
            }
        }
        let mut d = Decoder::<1000>::new();
        assert_eq!(feed(&mut d, &wire), [Ok(body.clone())]);
        // One byte short of room: dropped, and so are its continuation lines (quietly).
        let mut small = Decoder::<999>::new();
        assert_eq!(
            feed(&mut small, &wire),
            [Err(FrameError::PacketTooLong {
                len: 1000,
                max: 999
            })]
        );
    }

    #[test]
    fn encode_errors() {
        let mut out = [0u8; 64];
        assert_eq!(encode(&[], &mut out), Err(FrameError::EmptyPacket));
        let need = encoded_len(ECHO_HI.len());
        assert_eq!(
            encode(&ECHO_HI, &mut out[..need - 1]),
            Err(FrameError::OutputTooSmall { needed: need })
        );
        let big = std::vec![0u8; 65534];
        let mut out = std::vec![0u8; encoded_len(big.len())];
        assert_eq!(
            encode(&big, &mut out),
            Err(FrameError::PacketTooLong {
                len: 65534,
                max: 65533
            })
        );
        assert!(encode(&big[..65533], &mut out).is_ok());
    }

    #[test]
    fn console_text_crlf_and_split_lines() {
        let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let wire = frame(&body);
        let mut stream = Vec::new();
        stream.extend_from_slice(b"boot: banner\r\n\x04 text \x06 more\n");
        for line in wire.split_inclusive(|&b| b == b'\n') {
            stream.extend_from_slice(&line[..line.len() - 1]);
            stream.extend_from_slice(b"\r\n[log] interleaved\r\n");
        }
        let mut d = Decoder::<512>::new();
        assert_eq!(feed(&mut d, &stream), [Ok(body)]);
    }

    #[test]
    fn frame_errors() {
        let mut d = Decoder::<64>::new();
        // Continuation with nothing started.
        assert_eq!(feed(&mut d, b"\x04\x14AAAA\n"), [Err(FrameError::NoStart)]);
        // Bad base64 (length not a multiple of 4, bad character).
        assert_eq!(feed(&mut d, b"\x06\x09ABC\n"), [Err(FrameError::Base64)]);
        assert_eq!(feed(&mut d, b"\x06\x09AB*=\n"), [Err(FrameError::Base64)]);
        // The rest of a dropped packet is ignored quietly.
        assert!(feed(&mut d, b"\x04\x14AAAA\n").is_empty());
        // LEN of 2: no body.
        let mut raw = [0u8; 4];
        raw[..2].copy_from_slice(&2u16.to_be_bytes());
        let mut text = [0u8; 8];
        let t = Base64::encode(&raw, &mut text).expect("b64");
        let mut line = std::vec![0x06, 0x09];
        line.extend_from_slice(t.as_bytes());
        line.push(b'\n');
        assert_eq!(feed(&mut d, &line), [Err(FrameError::BadLength { len: 2 })]);
        // CRC mismatch: the echo frame with its CRC's last byte changed.
        let mut raw = [0u8; 18];
        raw[..2].copy_from_slice(&16u16.to_be_bytes());
        raw[2..16].copy_from_slice(&ECHO_HI);
        raw[16..].copy_from_slice(&[0xE2, 0x7D]);
        let mut text = [0u8; 24];
        let t = Base64::encode(&raw, &mut text).expect("b64");
        let mut line = std::vec![0x06, 0x09];
        line.extend_from_slice(t.as_bytes());
        line.push(b'\n');
        assert_eq!(
            feed(&mut d, &line),
            [Err(FrameError::Crc {
                received: 0xE27D,
                computed: 0xE27C
            })]
        );
        // Bytes past LEN.
        let mut raw = [0u8; 21];
        raw[..2].copy_from_slice(&16u16.to_be_bytes());
        raw[2..16].copy_from_slice(&ECHO_HI);
        raw[16..18].copy_from_slice(&[0xE2, 0x7C]);
        let mut text = [0u8; 28];
        let t = Base64::encode(&raw, &mut text).expect("b64");
        let mut line = std::vec![0x06, 0x09];
        line.extend_from_slice(t.as_bytes());
        line.push(b'\n');
        assert_eq!(feed(&mut d, &line), [Err(FrameError::TrailingData)]);
        // Line too long (125 characters, no '\r'), then recovery.
        let mut line = std::vec![0x06, 0x09];
        line.extend_from_slice(&[b'A'; 125]);
        line.push(b'\n');
        assert_eq!(feed(&mut d, &line), [Err(FrameError::LineTooLong)]);
        let mut line = std::vec![0x06, 0x09];
        line.extend_from_slice(&[b'A'; 300]);
        line.push(b'\n');
        assert_eq!(feed(&mut d, &line), [Err(FrameError::LineTooLong)]);
        assert_eq!(feed(&mut d, &frame(&ECHO_HI)), [Ok(ECHO_HI.to_vec())]);
        // A first line dropping a partial packet; a lost newline.
        let mut d = Decoder::<512>::new();
        let long = frame(&[0x55; 200]);
        let first_line = long.split_inclusive(|&b| b == b'\n').next().expect("line");
        let mut stream = first_line.to_vec();
        stream.extend_from_slice(&frame(&ECHO_HI));
        assert_eq!(
            feed(&mut d, &stream),
            [Err(FrameError::Truncated), Ok(ECHO_HI.to_vec())]
        );
        let mut stream = first_line[..first_line.len() - 1].to_vec();
        stream.extend_from_slice(&frame(&ECHO_HI));
        assert_eq!(
            feed(&mut d, &stream),
            [Err(FrameError::Truncated), Ok(ECHO_HI.to_vec())]
        );
    }

    #[test]
    fn packet_is_cleared_by_next_push_and_reset() {
        let mut d = Decoder::<64>::new();
        let wire = frame(&ECHO_HI);
        for &b in &wire {
            d.push(b);
        }
        assert_eq!(d.packet(), ECHO_HI);
        assert_eq!(d.push(b'x'), None);
        assert!(d.packet().is_empty());
        assert_eq!(d.frame_crc(), None);
        // A reset mid-packet forgets it.
        feed(&mut d, &wire[..10]);
        d.reset();
        assert!(feed(&mut d, &wire[10..]).is_empty());
        assert_eq!(feed(&mut d, &wire), [Ok(ECHO_HI.to_vec())]);
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        use std::string::ToString;
        let e = FrameError::Crc {
            received: 0x1234,
            computed: 0xabcd,
        };
        assert_eq!(
            e.to_string(),
            "frame CRC mismatch: received 0x1234, body has 0xabcd"
        );
        assert!(FrameError::LineTooLong.to_string().contains("127"));
    }

    /// Every single-bit flip of the frame of `body`: never the original length with other
    /// contents.
    fn check_flips(body: &[u8], positions: impl Iterator<Item = usize>) {
        let wire = frame(body);
        for pos in positions {
            for bit in 0..8 {
                let mut bad = wire.clone();
                bad[pos] ^= 1 << bit;
                let mut d = Decoder::<2048>::new();
                for r in feed(&mut d, &bad).into_iter().flatten() {
                    assert!(
                        r.len() != body.len() || r == body,
                        "bit {bit} of byte {pos} flipped gave a wrong packet"
                    );
                }
            }
        }
    }

    #[test]
    fn bit_flips_exhaustive() {
        for len in [1usize, 2, 3, 14, 90, 91, 92, 93, 200] {
            let body: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            check_flips(&body, 0..encoded_len(len));
        }
    }

    proptest! {
        #[test]
        fn round_trip(body in proptest::collection::vec(any::<u8>(), 0..=2048)) {
            let mut out = std::vec![0u8; encoded_len(body.len())];
            if body.is_empty() {
                prop_assert_eq!(encode(&body, &mut out), Err(FrameError::EmptyPacket));
                return Ok(());
            }
            let n = encode(&body, &mut out).expect("encode");
            prop_assert_eq!(n, out.len());
            for line in out.split_inclusive(|&b| b == b'\n') {
                prop_assert!(line.len() <= LINE_MAX);
                prop_assert_eq!((line.len() - 3) % 4, 0);
            }
            let mut d = Decoder::<2048>::new();
            prop_assert_eq!(feed(&mut d, &out), std::vec![Ok(body)]);
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    Just(0x06u8), Just(0x09), Just(0x04), Just(0x14), Just(b'\n'),
                    Just(b'A'), Just(b'='),
                ],
                0..4096,
            )
        ) {
            let mut d = Decoder::<256>::new();
            for r in feed(&mut d, &bytes).into_iter().flatten() {
                prop_assert!(!r.is_empty() && r.len() <= 256);
            }
        }

        #[test]
        fn resyncs_after_garbage(
            garbage in proptest::collection::vec(any::<u8>(), 0..600),
            body in proptest::collection::vec(any::<u8>(), 1..300),
        ) {
            let mut d = Decoder::<512>::new();
            feed(&mut d, &garbage);
            let got = feed(&mut d, &frame(&body));
            prop_assert_eq!(got.last(), Some(&Ok(body)));
        }

        #[test]
        fn bit_flip_never_gives_wrong_packet(
            body in proptest::collection::vec(any::<u8>(), 1..=2048),
            pos in any::<prop::sample::Index>(),
        ) {
            let len = encoded_len(body.len());
            let p = pos.index(len);
            check_flips(&body, p..p + 1);
        }
    }
}
