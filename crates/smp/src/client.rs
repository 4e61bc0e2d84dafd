//! The host side: requests over any [`Transport`], typed answers, and an upload that
//! survives disconnects (it re-opens the link and the server answers where to resume).
use std::time::Duration;

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use sha2::{Digest, Sha256};

use crate::header::{brickless, group, image, os, Header, Op, Version, HEADER_LEN};
use crate::transport::Transport;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The link failed (and re-opening it did not help).
    #[error("the link failed")]
    Io(#[from] std::io::Error),
    /// No answer within the timeout, after every retry.
    #[error("no answer from the device after {tries} tries ({timeout:?} each)")]
    Timeout {
        /// Requests sent.
        tries: u32,
        /// The wait for each.
        timeout: Duration,
    },
    /// The device answered with an SMP error.
    #[error("the device refused: {}", describe(*group, *rc, *v2))]
    Device {
        /// The group the error belongs to (the request's group for SMP-level errors).
        group: u16,
        /// The error code.
        rc: u16,
        /// A v2 group error (`{"err": …}`) rather than an SMP-level `{"rc": …}`.
        v2: bool,
    },
    /// The answer is not what the protocol allows.
    #[error("the device's answer is malformed: {0}")]
    Malformed(String),
    /// The image to upload is empty or larger than 4 GiB.
    #[error("the image is empty or too large to upload")]
    BadImage,
    /// The caller cancelled the work ([`Client::set_cancel`]).
    #[error("cancelled")]
    Cancelled,
}

/// A version as mcumgr tools show it ("1.2.3", "1.2.3.4" with a build number).
pub fn version_text(v: brickless_image::ImageVersion) -> String {
    let mut s = String::new();
    let _ = crate::server::write_version(&mut s, v);
    s
}

/// Words for an error code, as mcumgr tools name them.
pub fn describe(group: u16, rc: u16, v2: bool) -> String {
    let name = if v2 && group == group::IMAGE {
        match rc {
            3 => "no image",
            8 => "hash not found (no image on the device has that hash)",
            9 => "no free slot: the staging slot holds the running trial's revert image; confirm the running image first",
            12 => "flash write failed",
            13 => "flash erase failed",
            14 => "invalid slot",
            20 => "invalid offset",
            21 => "invalid length",
            22 => "invalid image header (not an MCUboot image)",
            27 => "the running image is newer",
            28 => "an image is already pending; reset the device to install it first",
            30 => "the image is larger than the slot",
            33 => "the running image cannot be set for test",
            _ => "image management error",
        }
    } else {
        match rc {
            1 => "unknown error",
            2 => "out of memory",
            3 => "invalid argument (malformed request)",
            5 => "no such entry",
            6 => "bad state (an update is pending or a trial runs)",
            7 => "message too large",
            8 => "not supported",
            9 => "corrupt: the image does not verify (hash or signature) or cannot run here",
            10 => "busy",
            _ => "error",
        }
    };
    format!("{name} (group {group}, rc {rc})")
}

/// One image slot as the device reports it (image state read).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageState {
    /// Image number.
    pub image: u32,
    /// Slot: 0 runs, 1 is staging (or, during a trial, the revert image).
    pub slot: u32,
    /// Version text ("1.2.3").
    pub version: String,
    /// The image's SHA-256 (its hash TLV), hex.
    #[serde(serialize_with = "hex")]
    pub hash: Vec<u8>,
    /// Verifies and may boot.
    pub bootable: bool,
    /// Requested for the next boot.
    pub pending: bool,
    /// Kept for good.
    pub confirmed: bool,
    /// Running now.
    pub active: bool,
    /// The pending request is permanent (no trial).
    pub permanent: bool,
}

fn hex<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    let mut out = String::new();
    for x in b {
        out.push_str(&format!("{x:02x}"));
    }
    s.serialize_str(&out)
}

/// How an upload went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadReport {
    /// Image bytes.
    pub len: u32,
    /// Requests sent (retries included).
    pub requests: u32,
    /// Times the link was re-opened and the upload resumed.
    pub resumes: u32,
    /// For each resume, the offset the device said to carry on from (0: from the start).
    pub resumed_from: Vec<u32>,
    /// The device's `match` (its SHA-256 of the upload equals ours), if it said.
    pub matched: Option<bool>,
    /// The serial link ran brickless's raw framing.
    pub raw: bool,
    /// Upload requests kept in flight.
    pub window: u32,
}

/// An SMP client over a transport.
pub struct Client<T> {
    link: T,
    seq: u8,
    timeout: Duration,
    retries: u32,
    buf_size: Option<usize>,
    fast: bool,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Bytes an upload request spends on CBOR around its data: a first request carries
/// `image`, `len`, `sha` (34) and `upgrade` too.
const FIRST_OVERHEAD: usize = 80;
const NEXT_OVERHEAD: usize = 24;

impl<T: Transport> Client<T> {
    /// A client with a 2 s answer timeout and 3 retries.
    pub fn new(link: T) -> Self {
        Client {
            link,
            seq: 0,
            timeout: Duration::from_secs(2),
            retries: 3,
            buf_size: None,
            fast: true,
            cancel: None,
        }
    }

    /// Gives the client a flag another thread may set: requests and uploads then stop with
    /// [`ClientError::Cancelled`] at the next request or answer.
    pub fn set_cancel(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.cancel = Some(flag);
    }

    fn check_cancel(&self) -> Result<(), ClientError> {
        match &self.cancel {
            Some(f) if f.load(std::sync::atomic::Ordering::Relaxed) => Err(ClientError::Cancelled),
            _ => Ok(()),
        }
    }

    /// Sets how long to wait for each answer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sets how many times a request is re-sent (re-opening the link) before giving up.
    pub fn set_retries(&mut self, retries: u32) {
        self.retries = retries;
    }

    /// The transport.
    pub fn link_mut(&mut self) -> &mut T {
        &mut self.link
    }

    /// Sends one request and returns the answer's body; an SMP error answer is
    /// [`ClientError::Device`]. Lost answers are re-asked (the link re-opened) up to the
    /// retry count; answers to older requests are ignored.
    pub fn request(
        &mut self,
        op: Op,
        grp: u16,
        cmd: u8,
        body: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let len = u16::try_from(body.len())
            .map_err(|_| ClientError::Malformed("request too large".into()))?;
        let mut last_io = None;
        for attempt in 0..=self.retries {
            self.check_cancel()?;
            if attempt > 0 {
                if let Err(e) = self.link.reconnect() {
                    last_io = Some(e);
                    std::thread::sleep(self.timeout.min(Duration::from_millis(500)));
                    continue;
                }
            }
            let h = match self.send_request(op, grp, cmd, body) {
                Ok(seq) => Header {
                    op,
                    version: Version::V2,
                    flags: 0,
                    len,
                    group: grp,
                    seq,
                    command: cmd,
                },
                Err(e) => {
                    last_io = Some(e);
                    continue;
                }
            };
            match self.answer(&h) {
                Ok(Some(body)) => return check_error(grp, body),
                Ok(None) => {}
                Err(e) => last_io = Some(e),
            }
        }
        match last_io {
            Some(e) if e.kind() != std::io::ErrorKind::TimedOut => Err(ClientError::Io(e)),
            _ => Err(ClientError::Timeout {
                tries: self.retries + 1,
                timeout: self.timeout,
            }),
        }
    }

    /// Waits for the answer to `req`: `None` on timeout.
    fn answer(&mut self, req: &Header) -> std::io::Result<Option<Vec<u8>>> {
        let timeout = self.timeout;
        let wanted = |h: &Header| {
            h.seq == req.seq
                && h.group == req.group
                && h.command == req.command
                && Some(h.op) == req.op.response()
        };
        Ok(self.next_answer(timeout, wanted)?.map(|(_, body)| body))
    }

    /// The next well-formed answer `wanted` accepts (others are dropped: answers to
    /// requests given up on), `None` on timeout.
    fn next_answer(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Header) -> bool,
    ) -> std::io::Result<Option<(Header, Vec<u8>)>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let packet = match self.link.recv(left) {
                Ok(p) => p,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(None),
                Err(e) => return Err(e),
            };
            let Ok(h) = Header::parse(&packet) else {
                continue;
            };
            let body = &packet[HEADER_LEN..];
            if usize::from(h.len) == body.len() && wanted(&h) {
                return Ok(Some((h, body.to_vec())));
            }
        }
    }

    /// OS echo.
    pub fn echo(&mut self, text: &str) -> Result<String, ClientError> {
        let body = encode(|e| {
            e.map(1)?.str("d")?.str(text)?;
            Ok(())
        });
        let r = self.request(Op::Write, group::OS, os::ECHO, &body)?;
        text_field(&r, "r")?.ok_or_else(|| ClientError::Malformed("echo answer without `r`".into()))
    }

    /// The device's `buf_size` and `buf_count` (OS command 6).
    pub fn params(&mut self) -> Result<(u32, u32), ClientError> {
        let r = self.request(Op::Read, group::OS, os::MCUMGR_PARAMS, &[0xa0])?;
        let size = uint_field(&r, "buf_size")?
            .ok_or_else(|| ClientError::Malformed("no buf_size".into()))?;
        let count = uint_field(&r, "buf_count")?.unwrap_or(1);
        self.buf_size = usize::try_from(size).ok();
        let clip = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok((clip(size), clip(count)))
    }

    /// The bootloader's name (OS command 8).
    pub fn bootloader(&mut self) -> Result<String, ClientError> {
        let r = self.request(Op::Read, group::OS, os::BOOTLOADER_INFO, &[0xa0])?;
        Ok(text_field(&r, "bootloader")?.unwrap_or_default())
    }

    /// Resets the device (it answers first).
    pub fn reset(&mut self) -> Result<(), ClientError> {
        self.request(Op::Write, group::OS, os::RESET, &[0xa0])
            .map(|_| ())
    }

    /// Image state read.
    pub fn images(&mut self) -> Result<Vec<ImageState>, ClientError> {
        let r = self.request(Op::Read, group::IMAGE, image::STATE, &[0xa0])?;
        parse_images(&r)
    }

    /// Marks the image with `hash` for a test boot at the next reset.
    pub fn test(&mut self, hash: &[u8]) -> Result<Vec<ImageState>, ClientError> {
        self.state_write(Some(hash), false)
    }

    /// Confirms the running image (`None`) or requests the image with `hash` for good.
    pub fn confirm(&mut self, hash: Option<&[u8]>) -> Result<Vec<ImageState>, ClientError> {
        self.state_write(hash, true)
    }

    fn state_write(
        &mut self,
        hash: Option<&[u8]>,
        confirm: bool,
    ) -> Result<Vec<ImageState>, ClientError> {
        let body = encode(|e| {
            e.map(1 + u64::from(hash.is_some()))?;
            if let Some(h) = hash {
                e.str("hash")?.bytes(h)?;
            }
            e.str("confirm")?.bool(confirm)?;
            Ok(())
        });
        let r = self.request(Op::Write, group::IMAGE, image::STATE, &body)?;
        parse_images(&r)
    }

    /// Erases the staging slot (waiting at least 40 s for the answer: whole-slot erases are
    /// slow, seconds per sector on F4/F7/H7).
    pub fn erase(&mut self) -> Result<(), ClientError> {
        let normal = self.timeout;
        self.timeout = normal.max(Duration::from_secs(40));
        let r = self.request(Op::Write, group::IMAGE, image::ERASE, &[0xa0]);
        self.timeout = normal;
        r.map(|_| ())
    }

    /// Largest data chunk per request for this link and device, a multiple of 32 bytes so
    /// every write unit stays whole.
    fn chunk(&mut self, first: bool) -> usize {
        let limit = self.buf_size.unwrap_or(512).min(self.link.mtu());
        let overhead = HEADER_LEN + if first { FIRST_OVERHEAD } else { NEXT_OVERHEAD };
        (limit.saturating_sub(overhead) / 32 * 32).max(32)
    }

    /// What the device offers beyond stock SMP (brickless group), `None` from a stock server.
    pub fn caps(&mut self) -> Result<Option<Caps>, ClientError> {
        match self.request(Op::Read, group::BRICKLESS, brickless::CAPS, &[0xa0]) {
            Ok(r) => Ok(Some(Caps {
                raw: bool_field(&r, "raw")?.unwrap_or(false),
                resume: bool_field(&r, "resume")?.unwrap_or(false),
                window: uint_field(&r, "window")?.map_or(1, |w| w.clamp(1, 16) as u32),
            })),
            Err(ClientError::Device { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The device's read-out protection level and its bootloader's write protection
    /// (brickless group). A device that cannot tell answers with an error.
    pub fn protection(&mut self) -> Result<Protection, ClientError> {
        let r = self.request(Op::Read, group::BRICKLESS, brickless::PROTECT, &[0xa0])?;
        protection_of(&r)
    }

    /// Write-protects the device's bootloader sectors (option bytes) and returns the new
    /// state. When `reset` is true in the answer, the device resets to apply it.
    pub fn protect(&mut self) -> Result<Protection, ClientError> {
        // {"wrp": true}
        let body = [0xa1, 0x63, b'w', b'r', b'p', 0xf5];
        let r = self.request(Op::Write, group::BRICKLESS, brickless::PROTECT, &body)?;
        protection_of(&r)
    }

    /// Whether uploads use the fast path with a brickless device (default: yes). Off, they
    /// run as a stock mcumgr client does: one request at a time, console framing.
    pub fn set_fast(&mut self, fast: bool) {
        self.fast = fast;
    }

    /// Sends a request without waiting; returns its sequence number.
    fn send_request(&mut self, op: Op, grp: u16, cmd: u8, body: &[u8]) -> std::io::Result<u8> {
        let len = u16::try_from(body.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "request body over 64 KiB")
        })?;
        self.seq = self.seq.wrapping_add(1);
        let h = Header {
            op,
            version: Version::V2,
            flags: 0,
            len,
            group: grp,
            seq: self.seq,
            command: cmd,
        };
        let mut packet = h.to_bytes().to_vec();
        packet.extend_from_slice(body);
        self.link.send(&packet)?;
        Ok(self.seq)
    }

    /// The next answer to an upload request, `None` on timeout.
    fn upload_answer(&mut self, timeout: Duration) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        let wanted = |h: &Header| {
            h.group == group::IMAGE && h.command == image::UPLOAD && h.op == Op::WriteRsp
        };
        Ok(self
            .next_answer(timeout, wanted)?
            .map(|(h, body)| (h.seq, body)))
    }

    /// Asks a brickless device where an interrupted upload of `data` carries on.
    fn resume_point(
        &mut self,
        data: &[u8],
        sha: &[u8; 32],
    ) -> Result<(u32, Option<bool>), ClientError> {
        let len = data.len() as u32;
        let mut digests = Vec::with_capacity(data.len() / brickless::BLOCK as usize * 8 + 8);
        for block in data.chunks(brickless::BLOCK as usize) {
            digests.extend_from_slice(&Sha256::digest(block)[..brickless::DIGEST]);
        }
        let body = encode(|e| {
            e.map(3)?
                .str("len")?
                .u32(len)?
                .str("sha")?
                .bytes(sha)?
                .str("digests")?
                .bytes(&digests)?;
            Ok(())
        });
        let r = self.request(Op::Write, group::BRICKLESS, brickless::RESUME, &body)?;
        let off = uint_field(&r, "off")?
            .filter(|o| *o <= u64::from(len))
            .ok_or_else(|| ClientError::Malformed("resume answer without a valid `off`".into()))?;
        Ok((off as u32, bool_field(&r, "match")?))
    }

    /// Uploads `data` to the staging slot; `progress(done, total)` is called as the device
    /// acknowledges bytes.
    ///
    /// With a brickless device (and [`set_fast`](Self::set_fast) on) it keeps the device's
    /// `buf_count` requests in flight, so the link never idles, switches a serial link to the
    /// raw framing, and after a power cut or a dropped link resumes from what the device's
    /// flash holds. With any other device it works as mcumgr does; an interrupted upload
    /// restarts with the same `sha`, which resumes it while the device kept its session.
    pub fn upload(
        &mut self,
        data: &[u8],
        mut progress: impl FnMut(u32, u32),
    ) -> Result<UploadReport, ClientError> {
        let len = u32::try_from(data.len()).map_err(|_| ClientError::BadImage)?;
        if len == 0 {
            return Err(ClientError::BadImage);
        }
        if self.buf_size.is_none() {
            // Older servers lack command 6: keep the conservative default.
            let _ = self.params();
        }
        let caps = if self.fast { self.caps()? } else { None };
        let want_raw = caps.is_some_and(|c| c.raw);
        // A serial link says whether it switched; back to console framing when not wanted.
        let raw = self.link.set_raw(want_raw) && want_raw;
        let resumable = caps.is_some_and(|c| c.resume);
        let window = caps.map_or(1, |c| c.window as usize);
        let sha: [u8; 32] = Sha256::digest(data).into();
        let mut report = UploadReport {
            len,
            requests: 0,
            resumes: 0,
            resumed_from: Vec::new(),
            matched: None,
            raw,
            window: window as u32,
        };
        // `acked`: what the device confirmed; requests in flight cover `acked..sent_to`.
        let (mut acked, mut sent_to) = (0u32, 0u32);
        let mut inflight: std::collections::VecDeque<(u8, u32)> = Default::default();
        let mut failures = 0u32;
        loop {
            self.check_cancel()?;
            // The first request starts the session (and may erase): it goes alone.
            let limit = if acked == 0 { 1 } else { window };
            while inflight.len() < limit && sent_to < len {
                let first = sent_to == 0;
                let n = self.chunk(first).min((len - sent_to) as usize);
                let chunk = &data[sent_to as usize..sent_to as usize + n];
                let off = sent_to;
                let body = encode(|e| {
                    e.map(if first { 6 } else { 2 })?;
                    if first {
                        e.str("image")?.u8(0)?.str("len")?.u32(len)?;
                        e.str("sha")?.bytes(&sha)?.str("upgrade")?.bool(false)?;
                    }
                    e.str("off")?.u32(off)?.str("data")?.bytes(chunk)?;
                    Ok(())
                });
                report.requests += 1;
                match self.send_request(Op::Write, group::IMAGE, image::UPLOAD, &body) {
                    Ok(seq) => inflight.push_back((seq, off + n as u32)),
                    Err(_) => break,
                }
                sent_to = off + n as u32;
            }
            let answer = if inflight.is_empty() {
                None
            } else {
                self.upload_answer(self.timeout)?
            };
            let Some((seq, body)) = answer else {
                // Nothing came back: the link dropped, the device lost power or a frame was
                // lost. Re-open if it keeps happening, then ask where to carry on.
                failures += 1;
                if failures > self.retries + 2 {
                    return Err(ClientError::Timeout {
                        tries: failures,
                        timeout: self.timeout,
                    });
                }
                inflight.clear();
                if failures > 1 {
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = self.link.reconnect();
                }
                report.resumes += 1;
                if resumable {
                    match self.resume_point(data, &sha) {
                        Ok((off, matched)) => {
                            report.resumed_from.push(off);
                            (acked, sent_to) = (off, off);
                            if off == len {
                                report.matched = matched;
                                progress(len, len);
                                return Ok(report);
                            }
                        }
                        Err(ClientError::Timeout { .. } | ClientError::Io(_)) => {
                            (acked, sent_to) = (0, 0);
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    // A stock device resumes an upload restarted with the same sha.
                    report.resumed_from.push(0);
                    (acked, sent_to) = (0, 0);
                }
                continue;
            };
            // Answers come in order: those before this one were lost.
            let Some(pos) = inflight.iter().position(|(s, _)| *s == seq) else {
                continue;
            };
            let (_, end) = inflight[pos];
            inflight.drain(..=pos);
            let r = check_error(group::IMAGE, body)?;
            failures = 0;
            let next = uint_field(&r, "off")?
                .ok_or_else(|| ClientError::Malformed("upload answer without `off`".into()))?;
            if next > u64::from(len) {
                return Err(ClientError::Malformed(format!(
                    "the device asks for offset {next}, past the image's {len} bytes"
                )));
            }
            let next = next as u32;
            if next == len {
                // Complete: with this chunk, or already (the same upload done before).
                progress(len, len);
                report.matched = bool_field(&r, "match")?;
                return Ok(report);
            }
            if next == end {
                acked = end;
                progress(acked, len);
                continue;
            }
            // The device wants another offset: a chunk was lost or cut to whole write
            // units, or the device restarted and lost its session (it says 0).
            inflight.clear();
            if next == 0 && acked > 0 && resumable {
                report.resumes += 1;
                let (off, matched) = self.resume_point(data, &sha)?;
                report.resumed_from.push(off);
                (acked, sent_to) = (off, off);
                if off == len {
                    report.matched = matched;
                    progress(len, len);
                    return Ok(report);
                }
            } else {
                (acked, sent_to) = (next, next);
            }
            progress(acked, len);
        }
    }
}

/// What a brickless device offers beyond stock SMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// It takes the raw serial framing.
    pub raw: bool,
    /// It resumes an upload from its flash content.
    pub resume: bool,
    /// Upload requests it buffers: the window a client may keep in flight.
    pub window: u32,
}

/// A device's self-protection, as the protect command reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Protection {
    /// Read-out protection level (0, 1 or 2).
    pub rdp: u8,
    /// Write protection of the bootloader's sectors: `none`, `partial` or `full`.
    pub wrp: String,
    /// The device resets to apply a change (only in a protect answer).
    pub reset: bool,
}

fn protection_of(body: &[u8]) -> Result<Protection, ClientError> {
    let missing = |what: &str| ClientError::Malformed(format!("no \"{what}\" in the answer"));
    let rdp = uint_field(body, "rdp")?.ok_or_else(|| missing("rdp"))?;
    Ok(Protection {
        rdp: u8::try_from(rdp)
            .map_err(|_| ClientError::Malformed(format!("\"rdp\" {rdp} is not a level")))?,
        wrp: text_field(body, "wrp")?.ok_or_else(|| missing("wrp"))?,
        reset: bool_field(body, "reset")?.unwrap_or(false),
    })
}

/// Encodes a request body (a few hundred bytes at most, but for upload data).
fn encode(
    f: impl FnOnce(
        &mut Encoder<&mut Vec<u8>>,
    ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    // Writing into a Vec cannot fail.
    let _ = f(&mut e);
    out
}

/// An answer's top-level map entries, each value handed to `f` (which returns whether it
/// consumed it).
fn fields<'b>(
    body: &'b [u8],
    mut f: impl FnMut(&'b str, &mut Decoder<'b>) -> Result<bool, minicbor::decode::Error>,
) -> Result<(), ClientError> {
    let bad = |e: minicbor::decode::Error| ClientError::Malformed(e.to_string());
    let mut d = Decoder::new(body);
    let n = d.map().map_err(bad)?;
    let mut i = 0u64;
    loop {
        match n {
            Some(n) if i == n => return Ok(()),
            None if d.datatype().map_err(bad)? == Type::Break => return Ok(()),
            _ => {}
        }
        let key = match d.datatype().map_err(bad)? {
            Type::String => d.str().map_err(bad)?,
            _ => {
                d.skip().map_err(bad)?;
                d.skip().map_err(bad)?;
                i += 1;
                continue;
            }
        };
        if !f(key, &mut d).map_err(bad)? {
            d.skip().map_err(bad)?;
        }
        i += 1;
    }
}

fn uint_field(body: &[u8], name: &str) -> Result<Option<u64>, ClientError> {
    let mut v = None;
    fields(body, |k, d| {
        if k == name && matches!(d.datatype()?, Type::U8 | Type::U16 | Type::U32 | Type::U64) {
            v = Some(d.u64()?);
            return Ok(true);
        }
        Ok(false)
    })?;
    Ok(v)
}

fn int_field(body: &[u8], name: &str) -> Result<Option<i64>, ClientError> {
    let mut v = None;
    fields(body, |k, d| {
        if k == name
            && matches!(
                d.datatype()?,
                Type::U8
                    | Type::U16
                    | Type::U32
                    | Type::U64
                    | Type::I8
                    | Type::I16
                    | Type::I32
                    | Type::I64
            )
        {
            v = Some(d.i64()?);
            return Ok(true);
        }
        Ok(false)
    })?;
    Ok(v)
}

fn bool_field(body: &[u8], name: &str) -> Result<Option<bool>, ClientError> {
    let mut v = None;
    fields(body, |k, d| {
        if k == name && d.datatype()? == Type::Bool {
            v = Some(d.bool()?);
            return Ok(true);
        }
        Ok(false)
    })?;
    Ok(v)
}

fn text_field(body: &[u8], name: &str) -> Result<Option<String>, ClientError> {
    let mut v = None;
    fields(body, |k, d| {
        if k == name && d.datatype()? == Type::String {
            v = Some(d.str()?.to_string());
            return Ok(true);
        }
        Ok(false)
    })?;
    Ok(v)
}

/// Turns an error answer into [`ClientError::Device`]; passes a success body through.
fn check_error(grp: u16, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
    if let Some(rc) = int_field(&body, "rc")? {
        if rc != 0 {
            return Err(ClientError::Device {
                group: grp,
                rc: u16::try_from(rc).unwrap_or(u16::MAX),
                v2: false,
            });
        }
    }
    let mut err = None;
    fields(&body, |k, d| {
        if k == "err" && d.datatype()? == Type::Map {
            let (mut g, mut rc) = (grp, 0u16);
            let n = d.map()?.unwrap_or(0);
            for _ in 0..n {
                match d.str()? {
                    "group" => g = d.u16()?,
                    "rc" => rc = d.u16()?,
                    _ => d.skip()?,
                }
            }
            err = Some((g, rc));
            return Ok(true);
        }
        Ok(false)
    })?;
    match err {
        Some((g, rc)) if rc != 0 => Err(ClientError::Device {
            group: g,
            rc,
            v2: true,
        }),
        _ => Ok(body),
    }
}

fn parse_images(body: &[u8]) -> Result<Vec<ImageState>, ClientError> {
    let mut out = Vec::new();
    fields(body, |k, d| {
        if k != "images" {
            return Ok(false);
        }
        let n = d.array()?.unwrap_or(0);
        for _ in 0..n {
            let mut s = ImageState::default();
            let m = d.map()?.unwrap_or(0);
            for _ in 0..m {
                let key = d.str()?;
                match key {
                    "image" => s.image = d.u32()?,
                    "slot" => s.slot = d.u32()?,
                    "version" => s.version = d.str()?.to_string(),
                    "hash" => s.hash = d.bytes()?.to_vec(),
                    "bootable" => s.bootable = d.bool()?,
                    "pending" => s.pending = d.bool()?,
                    "confirmed" => s.confirmed = d.bool()?,
                    "active" => s.active = d.bool()?,
                    "permanent" => s.permanent = d.bool()?,
                    _ => d.skip()?,
                }
            }
            out.push(s);
        }
        Ok(true)
    })?;
    Ok(out)
}
