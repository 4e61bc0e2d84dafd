//! brickless's raw serial framing: the fast path's wire form, negotiated through the
//! brickless group (a stock peer never sees it).
//!
//! `SYNC (B5 1C) || LEN (u16 BE) || LEN_CHECK || PACKET || CRC16 (u16 BE)`, CRC-16/XMODEM
//! over PACKET, `LEN_CHECK` the xor of the length bytes and 0x5A: 7 bytes per packet instead
//! of base64's third and the per-line markers. The length check catches a damaged length at
//! once, so a bit error there cannot swallow the next frame's sync. Unlike Zephyr's
//! raw UART mode it keeps a CRC, so a bit error costs a resend, never a corrupt write. The
//! sync bytes are not ASCII, so a receiver tells a raw frame from console lines (and
//! console text) by its first byte, and one receiver takes both ([`AnyDecoder`]).
use crate::serial::{self, crc16, FrameError};

/// The two bytes opening a raw frame.
pub const SYNC: [u8; 2] = [0xB5, 0x1C];
/// Bytes a raw frame adds to its packet.
pub const OVERHEAD: usize = 7;

fn len_check(len: [u8; 2]) -> u8 {
    len[0] ^ len[1] ^ 0x5A
}

/// Which framing a packet came in (and its answer goes out in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The console framing every mcumgr tool speaks ([`crate::serial`]).
    Console,
    /// brickless's raw framing (this module).
    Raw,
}

/// Writes one packet as a raw frame into `out`; returns bytes written.
pub fn encode(packet: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    let len = u16::try_from(packet.len()).map_err(|_| FrameError::PacketTooLong {
        len: packet.len(),
        max: u16::MAX as usize,
    })?;
    if packet.is_empty() {
        return Err(FrameError::EmptyPacket);
    }
    let total = packet.len() + OVERHEAD;
    let out = out
        .get_mut(..total)
        .ok_or(FrameError::OutputTooSmall { needed: total })?;
    out[..2].copy_from_slice(&SYNC);
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out[4] = len_check(len.to_be_bytes());
    out[5..5 + packet.len()].copy_from_slice(packet);
    out[5 + packet.len()..].copy_from_slice(&crc16(packet).to_be_bytes());
    Ok(total)
}

/// Writes one packet in `framing` into `out`; returns bytes written.
pub fn encode_as(framing: Framing, packet: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    match framing {
        Framing::Console => serial::encode(packet, out),
        Framing::Raw => encode(packet, out),
    }
}

/// Bytes [`encode_as`] writes for a packet of `len` bytes.
pub fn encoded_len(framing: Framing, len: usize) -> usize {
    match framing {
        Framing::Console => serial::encoded_len(len),
        Framing::Raw => len.saturating_add(OVERHEAD),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Hunt,
    Sync1,
    Len0,
    Len1(u8),
    Check(u8, u8),
    Body,
    Crc0,
    Crc1(u8),
}

/// Receiver of raw frames; `N` is the largest packet it takes.
#[derive(Clone, Debug)]
pub struct RawDecoder<const N: usize> {
    state: State,
    len: usize,
    got: usize,
    buf: [u8; N],
    ready: Option<usize>,
}

impl<const N: usize> Default for RawDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RawDecoder<N> {
    /// A receiver hunting for [`SYNC`].
    pub const fn new() -> Self {
        RawDecoder {
            state: State::Hunt,
            len: 0,
            got: 0,
            buf: [0; N],
            ready: None,
        }
    }

    /// Whether it is inside a frame (past both sync bytes).
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, State::Hunt | State::Sync1)
    }

    /// Feeds one byte: `Some(Ok(len))` when a packet is complete ([`packet`](Self::packet)
    /// gives it until the next push), `Some(Err(_))` when a frame was dropped.
    pub fn push(&mut self, byte: u8) -> Option<Result<usize, FrameError>> {
        self.ready = None;
        match self.state {
            State::Hunt | State::Sync1 if byte == SYNC[0] => self.state = State::Sync1,
            State::Sync1 if byte == SYNC[1] => self.state = State::Len0,
            State::Hunt | State::Sync1 => self.state = State::Hunt,
            State::Len0 => self.state = State::Len1(byte),
            State::Len1(hi) => self.state = State::Check(hi, byte),
            State::Check(hi, lo) => {
                self.state = State::Hunt;
                if byte != len_check([hi, lo]) {
                    return Some(Err(FrameError::BadLength {
                        len: u16::from_be_bytes([hi, lo]),
                    }));
                }
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len == 0 {
                    return Some(Err(FrameError::BadLength { len: 0 }));
                }
                if len > N {
                    return Some(Err(FrameError::PacketTooLong { len, max: N }));
                }
                (self.len, self.got) = (len, 0);
                self.state = State::Body;
            }
            State::Body => {
                if let Some(slot) = self.buf.get_mut(self.got) {
                    *slot = byte;
                }
                self.got += 1;
                if self.got == self.len {
                    self.state = State::Crc0;
                }
            }
            State::Crc0 => self.state = State::Crc1(byte),
            State::Crc1(hi) => {
                self.state = State::Hunt;
                let received = u16::from_be_bytes([hi, byte]);
                let computed = crc16(self.buf.get(..self.len).unwrap_or(&[]));
                if received != computed {
                    return Some(Err(FrameError::Crc { received, computed }));
                }
                self.ready = Some(self.len);
                return Some(Ok(self.len));
            }
        }
        None
    }

    /// The packet completed by the last push (empty if none).
    pub fn packet(&self) -> &[u8] {
        self.ready.and_then(|n| self.buf.get(..n)).unwrap_or(&[])
    }

    /// Forgets a partial frame.
    pub fn reset(&mut self) {
        self.state = State::Hunt;
        self.ready = None;
    }
}

/// One receiver for both framings: raw frames and console lines, told apart by their first
/// byte; the bytes of a raw frame never reach the console decoder.
#[derive(Clone, Debug, Default)]
pub struct AnyDecoder<const N: usize> {
    console: serial::Decoder<N>,
    raw: RawDecoder<N>,
    last: Option<Framing>,
}

impl<const N: usize> AnyDecoder<N> {
    /// A receiver waiting for either framing.
    pub const fn new() -> Self {
        AnyDecoder {
            console: serial::Decoder::new(),
            raw: RawDecoder::new(),
            last: None,
        }
    }

    /// Feeds one byte: `Some(Ok((len, framing)))` when a packet is complete.
    pub fn push(&mut self, byte: u8) -> Option<Result<(usize, Framing), FrameError>> {
        self.last = None;
        if self.raw.in_frame() {
            return match self.raw.push(byte)? {
                Ok(n) => {
                    self.last = Some(Framing::Raw);
                    Some(Ok((n, Framing::Raw)))
                }
                Err(e) => Some(Err(e)),
            };
        }
        // Outside a raw frame both look at the byte: the sync bytes are not ASCII, so the
        // console decoder ignores them (or drops a broken line), and console bytes never
        // start a raw frame.
        let _ = self.raw.push(byte);
        match self.console.push(byte)? {
            Ok(n) => {
                self.last = Some(Framing::Console);
                Some(Ok((n, Framing::Console)))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// The packet completed by the last push (empty if none).
    pub fn packet(&self) -> &[u8] {
        match self.last {
            Some(Framing::Raw) => self.raw.packet(),
            Some(Framing::Console) => self.console.packet(),
            None => &[],
        }
    }

    /// Forgets partial frames.
    pub fn reset(&mut self) {
        self.console.reset();
        self.raw.reset();
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_console_frames_interleave_on_one_receiver() {
        let a = [
            0x0a, 0, 0, 6, 0, 0, 0, 0, 0xa1, 0x61, 0x64, 0x62, 0x68, 0x69,
        ];
        let b: [u8; 300] = core::array::from_fn(|i| (i * 7) as u8 ^ 0xB5);
        let mut wire = [0u8; 2048];
        let mut n = encode(&b, &mut wire).unwrap();
        n += serial::encode(&a, &mut wire[n..]).unwrap();
        n += encode(&a, &mut wire[n..]).unwrap();
        let mut d: AnyDecoder<512> = AnyDecoder::new();
        let mut got = [0usize; 2];
        let mut seen = 0;
        for &byte in &wire[..n] {
            if let Some(r) = d.push(byte) {
                let (len, f) = r.unwrap();
                let want: &[u8] = if seen == 0 { &b } else { &a };
                assert_eq!(d.packet(), want);
                assert_eq!(len, want.len());
                got[usize::from(f == Framing::Raw)] += 1;
                seen += 1;
            }
        }
        assert_eq!(got, [1, 2], "one console packet and two raw ones");
    }

    #[test]
    fn a_flipped_bit_drops_the_raw_frame_and_the_next_one_still_arrives() {
        let p: [u8; 64] = core::array::from_fn(|i| i as u8);
        let mut one = [0u8; 128];
        let n = encode(&p, &mut one).unwrap();
        for bit in 0..n * 8 {
            let mut wire = [0u8; 256];
            wire[..n].copy_from_slice(&one[..n]);
            wire[bit / 8] ^= 1 << (bit % 8);
            wire[n..2 * n].copy_from_slice(&one[..n]);
            let mut d: RawDecoder<128> = RawDecoder::new();
            let mut good = 0;
            for &byte in &wire[..2 * n] {
                if let Some(Ok(len)) = d.push(byte) {
                    assert_eq!(
                        &d.packet()[..len],
                        &p[..],
                        "bit {bit}: only the original is accepted"
                    );
                    good += 1;
                }
            }
            assert!(
                good >= 1,
                "bit {bit}: the clean frame after the damaged one arrives"
            );
        }
    }
}
