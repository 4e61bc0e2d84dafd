//! The SMP server on the engine's application side: OS group (echo, reset, parameters,
//! bootloader info) and image group (state read, test and confirm by hash, upload with
//! resume and erase-as-you-go, erase, slot info), over an [`Updater`].
//!
//! It never allocates and never panics on a request: a malformed packet or body gets an SMP
//! error and changes nothing. What would lose a revert (an upload or erase while a trial
//! runs, or over a pending update) is refused by the engine and answered with the error
//! mcumgr tools name ("no free slot", "image already pending").

use brickless_boot::{Error as EngineError, ImageCheck, ImageInfo, Phase, Updater, UpgradeMode};
use brickless_image::{ImageHeader, ImageVersion};
use embedded_storage::nor_flash::NorFlash;
use minicbor::encode::write::Cursor;
use minicbor::Encoder;
use sha2::{Digest, Sha256};

use crate::header::{
    brickless, group, image, os, Header, ImgErr, MgmtErr, Op, Version, HEADER_LEN,
};
use crate::request::{self, BodyError, Resume, StateWrite, Upload};

/// Whether the device runs its application or the bootloader's recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The application serves updates into the staging slot.
    Application,
    /// No image verifies: the bootloader serves so a first image can be installed.
    Recovery,
}

/// What the server tells clients about itself.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Largest SMP packet (header and body) a request may be: `buf_size` of OS command 6.
    pub buf_size: u32,
    /// Requests the server buffers at once: `buf_count` of OS command 6.
    pub buf_count: u32,
    /// Application or recovery.
    pub mode: Mode,
}

/// What the caller does after sending a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes of the response packet in the response buffer.
    pub len: usize,
    /// Reset the device once the response is out (OS reset).
    pub reset: bool,
}

/// Write protection of a flash range, as a device reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteProtection {
    /// No sector of the range is write-protected.
    None,
    /// Some sectors are.
    Partial,
    /// Every sector is.
    Full,
}

impl WriteProtection {
    /// The word the protect command uses: `none`, `partial` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteProtection::None => "none",
            WriteProtection::Partial => "partial",
            WriteProtection::Full => "full",
        }
    }
}

/// The device's self-protection: read-out level and its bootloader's write protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectionStatus {
    /// Read-out protection level: 0, 1 or 2.
    pub readout_level: u8,
    /// Write protection of the bootloader's own sectors.
    pub bootloader: WriteProtection,
}

/// What only the device itself can do, for the commands that need it (today: protection).
/// [`NoBoard`] for servers with none.
pub trait Board {
    /// The current protection, or `None` when the device cannot tell.
    fn protection(&mut self) -> Option<ProtectionStatus>;
    /// Write-protects the bootloader's sectors. `Ok(true)` when it takes effect only after a
    /// reset (the server answers, then resets).
    fn protect_bootloader(&mut self) -> Result<bool, ProtectFailure>;
}

/// Why write protection was not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectFailure {
    /// This device cannot set it (answered ENOTSUP).
    Unsupported,
    /// The flash controller refused or the option bytes did not take (answered EUNKNOWN).
    Failed,
}

/// A server without board services: the protect command answers ENOTSUP.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBoard;

impl Board for NoBoard {
    fn protection(&mut self) -> Option<ProtectionStatus> {
        None
    }
    fn protect_bootloader(&mut self) -> Result<bool, ProtectFailure> {
        Err(ProtectFailure::Unsupported)
    }
}

/// An upload in progress (lost at reset, as RAM is).
#[derive(Clone, Debug)]
struct Session {
    len: u32,
    next: u32,
    erased_to: u32,
    sha: Option<[u8; 32]>,
    hasher: Sha256,
}

impl Session {
    /// `{"off": next}`, with `"match"` once the upload is complete and its sha was given.
    fn answer(&self, enc: &mut Enc<'_>) -> EncResult {
        match self.sha.filter(|_| self.next == self.len) {
            Some(sha) => {
                let digest: [u8; 32] = self.hasher.clone().finalize().into();
                enc.map(2)?
                    .str("off")?
                    .u32(self.next)?
                    .str("match")?
                    .bool(sha == digest)?;
            }
            None => {
                enc.map(1)?.str("off")?.u32(self.next)?;
            }
        }
        Ok(())
    }
}

/// Smallest response buffer [`Server::handle`] needs for everything but echo: a state read
/// with two images.
pub const MIN_RESPONSE: usize = 320;

/// The server: configuration and the upload session.
pub struct Server {
    config: ServerConfig,
    upload: Option<Session>,
}

/// An error answer: SMP-level, or an image group error (v2 form for v2 requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fail {
    Mgmt(MgmtErr),
    Image(ImgErr),
}

impl From<BodyError> for Fail {
    fn from(_: BodyError) -> Self {
        Fail::Mgmt(MgmtErr::Inval)
    }
}

impl ImgErr {
    /// The SMP v1 code a v1 client gets for this image error.
    pub fn legacy(self) -> MgmtErr {
        match self {
            ImgErr::NoFreeSlot | ImgErr::ImageAlreadyPending => MgmtErr::BadState,
            ImgErr::HashNotFound => MgmtErr::NoEnt,
            ImgErr::InvalidImageTooLarge | ImgErr::InvalidLength | ImgErr::InvalidOffset => {
                MgmtErr::Inval
            }
            ImgErr::InvalidImageHeader | ImgErr::CurrentVersionIsNewer => MgmtErr::Inval,
            ImgErr::SettingTestToActiveDenied | ImgErr::InvalidSlot => MgmtErr::Inval,
            _ => MgmtErr::Unknown,
        }
    }
}

type Enc<'o> = Encoder<Cursor<&'o mut [u8]>>;
type EncResult = Result<(), minicbor::encode::Error<minicbor::encode::write::EndOfSlice>>;

impl Server {
    /// A server with no upload in progress.
    pub fn new(config: ServerConfig) -> Self {
        Server {
            config,
            upload: None,
        }
    }

    /// The upload in progress: (bytes received, total), `None` when there is none.
    pub fn upload_progress(&self) -> Option<(u32, u32)> {
        self.upload.as_ref().map(|s| (s.next, s.len))
    }

    /// The configuration it advertises.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Answers one SMP packet (header and body). `None` when `packet` is not an SMP request
    /// at all (too short, a response, reserved bits): nothing to answer. `response` must hold
    /// at least [`MIN_RESPONSE`] bytes (echo answers need room for the echoed text).
    pub fn handle<F: NorFlash, C: ImageCheck<F>>(
        &mut self,
        updater: &mut Updater<F, C>,
        packet: &[u8],
        response: &mut [u8],
    ) -> Option<Outcome> {
        self.handle_with(updater, &mut NoBoard, packet, response)
    }

    /// Like [`Server::handle`], with the device's own services (protection) from `board`.
    pub fn handle_with<F: NorFlash, C: ImageCheck<F>>(
        &mut self,
        updater: &mut Updater<F, C>,
        board: &mut dyn Board,
        packet: &[u8],
        response: &mut [u8],
    ) -> Option<Outcome> {
        let req = Header::parse(packet).ok()?;
        let rsp_op = req.op.response()?;
        if response.len() < HEADER_LEN + 16 {
            return None;
        }
        let body = &packet[HEADER_LEN..];
        let (head, out) = response.split_at_mut(HEADER_LEN);
        let mut reset = false;
        let result = if usize::from(req.len) != body.len() {
            Err(Fail::Mgmt(MgmtErr::Inval))
        } else {
            let mut enc = Encoder::new(Cursor::new(&mut *out));
            match self.dispatch(updater, board, &req, body, &mut enc, &mut reset) {
                Ok(()) => Ok(enc.into_writer().position()),
                Err(f) => Err(f),
            }
        };
        let len = match result {
            Ok(n) => n,
            Err(fail) => {
                reset = false;
                encode_error(out, req.version, req.group, fail)
            }
        };
        let rsp = Header {
            op: rsp_op,
            len: u16::try_from(len).unwrap_or(u16::MAX),
            ..req
        };
        head.copy_from_slice(&rsp.to_bytes());
        Some(Outcome {
            len: HEADER_LEN + len,
            reset,
        })
    }

    fn dispatch<F: NorFlash, C: ImageCheck<F>>(
        &mut self,
        updater: &mut Updater<F, C>,
        board: &mut dyn Board,
        req: &Header,
        body: &[u8],
        enc: &mut Enc<'_>,
        reset: &mut bool,
    ) -> Result<(), Fail> {
        let full = |_| Fail::Mgmt(MgmtErr::MsgSize);
        let write = req.op == Op::Write;
        match (req.group, req.command) {
            (group::OS, os::ECHO) => {
                let text = request::echo(body)?;
                enc.map(1)
                    .and_then(|e| e.str("r"))
                    .and_then(|e| e.str(text))
                    .map_err(full)?;
            }
            (group::OS, os::RESET) if write => {
                request::any_map(body)?;
                enc.map(0).map_err(full)?;
                *reset = true;
            }
            (group::OS, os::MCUMGR_PARAMS) if !write => {
                request::any_map(body)?;
                let c = &self.config;
                enc.map(2)
                    .and_then(|e| e.str("buf_size")?.u32(c.buf_size))
                    .and_then(|e| e.str("buf_count")?.u32(c.buf_count))
                    .map_err(full)?;
            }
            (group::OS, os::BOOTLOADER_INFO) if !write => {
                let query = request::bootloader_query(body)?;
                self.bootloader_info(updater, query, enc).map_err(full)?;
            }
            (group::IMAGE, image::STATE) if !write => {
                request::any_map(body)?;
                self.state_read(updater, enc).map_err(full)?;
            }
            (group::IMAGE, image::STATE) => {
                let r = StateWrite::decode(body)?;
                self.state_write(updater, &r)?;
                self.state_read(updater, enc).map_err(full)?;
            }
            (group::IMAGE, image::UPLOAD) if write => {
                let r = Upload::decode(body)?;
                self.upload(updater, &r, enc)?;
            }
            (group::IMAGE, image::ERASE) if write => {
                let slot = request::erase_slot(body)?;
                if slot != 1 {
                    return Err(Fail::Image(ImgErr::InvalidSlot));
                }
                self.upload = None;
                updater
                    .erase_staging()
                    .map_err(|e| engine_fail(e, updater, ImgErr::FlashEraseFailed))?;
                enc.map(0).map_err(full)?;
            }
            (group::IMAGE, image::SLOT_INFO) if !write => {
                request::any_map(body)?;
                slot_info(updater, enc).map_err(full)?;
            }
            (group::BRICKLESS, brickless::CAPS) if !write => {
                request::any_map(body)?;
                enc.map(4)
                    .and_then(|e| e.str("raw")?.bool(true))
                    .and_then(|e| e.str("resume")?.bool(true))
                    .and_then(|e| e.str("window")?.u32(self.config.buf_count))
                    .and_then(|e| e.str("block")?.u32(brickless::BLOCK))
                    .map_err(full)?;
            }
            (group::BRICKLESS, brickless::PROTECT) => {
                let mut after_reset = false;
                if write {
                    request::protect(body)?;
                } else {
                    request::any_map(body)?;
                }
                let mut status = board.protection().ok_or(Fail::Mgmt(MgmtErr::NotSup))?;
                if write {
                    // Asked explicitly: set it, then report what the registers say now.
                    after_reset = board.protect_bootloader().map_err(|f| {
                        Fail::Mgmt(match f {
                            ProtectFailure::Unsupported => MgmtErr::NotSup,
                            ProtectFailure::Failed => MgmtErr::Unknown,
                        })
                    })?;
                    status = board.protection().ok_or(Fail::Mgmt(MgmtErr::NotSup))?;
                }
                enc.map(if write { 3 } else { 2 })
                    .and_then(|e| e.str("rdp")?.u8(status.readout_level))
                    .and_then(|e| e.str("wrp")?.str(status.bootloader.as_str()))
                    .map_err(full)?;
                if write {
                    enc.str("reset")
                        .and_then(|e| e.bool(after_reset))
                        .map_err(full)?;
                    *reset = after_reset;
                }
            }
            (group::BRICKLESS, brickless::RESUME) if write => {
                let r = Resume::decode(body)?;
                self.resume(updater, &r)?;
                if let Some(session) = &self.upload {
                    session.answer(enc).map_err(full)?;
                }
            }
            _ => return Err(Fail::Mgmt(MgmtErr::NotSup)),
        }
        Ok(())
    }

    fn bootloader_info<F: NorFlash, C>(
        &self,
        updater: &Updater<F, C>,
        query: Option<&str>,
        enc: &mut Enc<'_>,
    ) -> EncResult {
        match query {
            None => {
                enc.map(1)?.str("bootloader")?.str("brickless")?;
            }
            Some("mode") => {
                // MCUboot's mode numbers: 3 (swap without scratch) is how clients recognise
                // a revertible swap; 2 is overwrite-only.
                let mode = if updater.layout().strategy().can_revert() {
                    3
                } else {
                    2
                };
                enc.map(3)?
                    .str("mode")?
                    .u8(mode)?
                    .str("no-downgrade")?
                    .bool(true)?
                    .str("recovery")?
                    .bool(self.config.mode == Mode::Recovery)?;
            }
            Some(_) => {
                // Unknown queries get an empty answer, as MCUboot's does.
                enc.map(0)?;
            }
        }
        Ok(())
    }

    fn state_read<F: NorFlash, C: ImageCheck<F>>(
        &self,
        updater: &mut Updater<F, C>,
        enc: &mut Enc<'_>,
    ) -> EncResult {
        let state = updater.state();
        let running = updater.check_primary();
        let other = if state.phase == Phase::Trial {
            updater.check_revert_image()
        } else {
            // After an install the staging area may still hold a copy of the running image:
            // only an image one could test or install is listed.
            updater
                .check_staged()
                .filter(|s| running.is_none_or(|r| r.hash != s.hash))
        };
        let n = u64::from(running.is_some()) + u64::from(other.is_some());
        enc.map(2)?.str("images")?.array(n)?;
        if let Some(img) = running {
            let trial = state.phase == Phase::Trial;
            let flags = Flags {
                active: self.config.mode == Mode::Application,
                confirmed: !trial,
                ..Flags::default()
            };
            slot_entry(enc, 0, &img, flags)?;
        }
        if let Some(img) = other {
            let pending = state.phase == Phase::Pending;
            let flags = Flags {
                pending,
                permanent: pending && state.permanent,
                confirmed: state.phase == Phase::Trial,
                ..Flags::default()
            };
            slot_entry(enc, 1, &img, flags)?;
        }
        enc.str("splitStatus")?.u8(0)?;
        Ok(())
    }

    fn state_write<F: NorFlash, C: ImageCheck<F>>(
        &mut self,
        updater: &mut Updater<F, C>,
        r: &StateWrite<'_>,
    ) -> Result<(), Fail> {
        let is = |img: Option<ImageInfo>, h: &[u8]| img.is_some_and(|i| i.hash[..] == *h);
        match (r.hash, r.confirm) {
            (None, false) => Err(Fail::Mgmt(MgmtErr::Inval)),
            (None, true) => updater
                .confirm()
                .map_err(|e| engine_fail(e, updater, ImgErr::FlashWriteFailed)),
            (Some(h), confirm) => {
                if is(updater.check_primary(), h) {
                    if !confirm {
                        return Err(Fail::Image(ImgErr::SettingTestToActiveDenied));
                    }
                    return updater
                        .confirm()
                        .map_err(|e| engine_fail(e, updater, ImgErr::FlashWriteFailed));
                }
                if updater.state().phase != Phase::Idle || !is(updater.check_staged(), h) {
                    return Err(match updater.state().phase {
                        Phase::Pending if is(updater.check_staged(), h) => {
                            Fail::Image(ImgErr::ImageAlreadyPending)
                        }
                        _ => Fail::Image(ImgErr::HashNotFound),
                    });
                }
                let mode = if confirm {
                    UpgradeMode::Permanent
                } else {
                    UpgradeMode::Test
                };
                self.upload = None;
                updater
                    .request_upgrade(mode)
                    .map(|_| ())
                    .map_err(|e| engine_fail(e, updater, ImgErr::FlashWriteFailed))
            }
        }
    }

    fn upload<F: NorFlash, C: ImageCheck<F>>(
        &mut self,
        updater: &mut Updater<F, C>,
        r: &Upload<'_>,
        enc: &mut Enc<'_>,
    ) -> Result<(), Fail> {
        let full = |_| Fail::Mgmt(MgmtErr::MsgSize);
        if r.image.is_some_and(|i| i > 1) {
            return Err(Fail::Image(ImgErr::InvalidSlot));
        }
        if r.off == 0 {
            let len = r.len.ok_or(Fail::Image(ImgErr::InvalidLength))?;
            if let Some(s) = self.resumable(r, len) {
                // The same upload again: carry on where it stopped (or say it is complete).
                s.answer(enc).map_err(full)?;
                return Ok(());
            }
            self.start(updater, r, len)?;
        }
        let Some(s) = self.upload.as_mut() else {
            // No upload in progress: ask for the start (the client re-sends `len`, `sha`).
            enc.map(1).and_then(|e| e.str("off")?.u8(0)).map_err(full)?;
            return Ok(());
        };
        if r.off != s.next || s.next == s.len {
            // Out of order or a duplicate: say where we are, write nothing.
            s.answer(enc).map_err(full)?;
            return Ok(());
        }
        let room = s.len - s.next;
        let data_len =
            u32::try_from(r.data.len()).map_err(|_| Fail::Image(ImgErr::InvalidLength))?;
        if data_len > room {
            return Err(Fail::Image(ImgErr::InvalidLength));
        }
        let wu = updater.layout().write_unit();
        let last = data_len == room;
        // Whole write units only, but for the image's last bytes (padded with the erased
        // value); the client re-sends a cut tail from the offset we answer.
        let take = if last {
            data_len
        } else {
            data_len - data_len % wu
        };
        if take > 0 {
            let padded_end = (s.next + take).div_ceil(wu) * wu;
            if padded_end > s.erased_to {
                s.erased_to = updater
                    .erase_staged(s.erased_to, padded_end)
                    .map_err(|e| engine_fail(e, updater, ImgErr::FlashEraseFailed))?;
            }
            let data = &r.data[..take as usize];
            let whole = take - take % wu;
            updater
                .write_staged(s.next, &data[..whole as usize])
                .map_err(|e| engine_fail(e, updater, ImgErr::FlashWriteFailed))?;
            if whole < take {
                // Write units are at most 32 bytes (STM32H74x/H75x).
                let mut tail = [updater.layout().erased(); 32];
                let rest = &data[whole as usize..];
                let unit = tail
                    .get_mut(..wu as usize)
                    .ok_or(Fail::Mgmt(MgmtErr::Unknown))?;
                unit[..rest.len()].copy_from_slice(rest);
                updater
                    .write_staged(s.next + whole, unit)
                    .map_err(|e| engine_fail(e, updater, ImgErr::FlashWriteFailed))?;
            }
            s.hasher.update(data);
            s.next += take;
        }
        if s.next == s.len && self.config.mode == Mode::Recovery {
            // Recovery takes an image as MCUboot's serial recovery does (upload, reset),
            // but through the engine: verified now, installed at the next reset.
            updater
                .request_upgrade(UpgradeMode::Permanent)
                .map_err(|e| engine_fail(e, updater, ImgErr::FlashWriteFailed))?;
        }
        s.answer(enc).map_err(full)
    }

    /// Picks up an interrupted upload from what the staging slot holds: the blocks whose
    /// digests match, rounded down to a sector edge (the sector after it may hold a torn
    /// write and is erased again). Starts a session there and answers its offset.
    fn resume<F: NorFlash, C: ImageCheck<F>>(
        &mut self,
        updater: &mut Updater<F, C>,
        r: &Resume<'_>,
    ) -> Result<u32, Fail> {
        if let Some(s) = &self.upload {
            if s.len == r.len && s.sha.as_ref().map(|h| &h[..]) == Some(r.sha) {
                return Ok(s.next);
            }
        }
        let capacity = updater
            .layout()
            .staging()
            .size
            .min(updater.layout().max_image_size());
        if r.len == 0 || r.len > capacity {
            return Err(Fail::Image(ImgErr::InvalidImageTooLarge));
        }
        match updater.state().phase {
            Phase::Idle => {}
            Phase::Trial => return Err(Fail::Image(ImgErr::NoFreeSlot)),
            Phase::Pending | Phase::Swapping => {
                return Err(Fail::Image(ImgErr::ImageAlreadyPending))
            }
        }
        let staging = updater.layout().staging();
        let at = updater.layout().offset(staging.start);
        let mut buf = [0u8; 256];
        // Blocks that hold exactly the upload's bytes.
        let mut good = 0u32;
        for want in r.digests.chunks(brickless::DIGEST) {
            let end = (good + brickless::BLOCK).min(r.len);
            let mut h = Sha256::new();
            if !hash_flash(updater, at + good, end - good, &mut buf, &mut h) {
                break;
            }
            let digest: [u8; 32] = h.finalize().into();
            if digest[..brickless::DIGEST] != *want {
                break;
            }
            good = end;
        }
        let off = if good == r.len {
            good
        } else {
            // The start of the sector holding the first byte not known good.
            let abs = staging.start + good;
            updater
                .layout()
                .geometry()
                .sectors()
                .find(|s| s.addr <= abs && abs < s.end())
                .map_or(0, |s| s.addr.max(staging.start) - staging.start)
        };
        let mut hasher = Sha256::new();
        if !hash_flash(updater, at, off, &mut buf, &mut hasher) {
            return Err(Fail::Image(ImgErr::FlashReadFailed));
        }
        let mut sha = [0u8; 32];
        sha.copy_from_slice(r.sha);
        self.upload = Some(Session {
            len: r.len,
            next: off,
            // A resumed sector is erased again before its first write.
            erased_to: off,
            sha: Some(sha),
            hasher,
        });
        Ok(off)
    }

    /// The session `r` restarts, if it is the upload in progress (or just completed).
    fn resumable(&self, r: &Upload<'_>, len: u32) -> Option<&Session> {
        let s = self.upload.as_ref()?;
        let same = s.len == len && r.sha.is_some() && s.sha.as_ref().map(|h| &h[..]) == r.sha;
        (same && s.next > 0).then_some(s)
    }

    fn start<F: NorFlash, C: ImageCheck<F>>(
        &mut self,
        updater: &mut Updater<F, C>,
        r: &Upload<'_>,
        len: u32,
    ) -> Result<(), Fail> {
        self.upload = None;
        let capacity = updater
            .layout()
            .staging()
            .size
            .min(updater.layout().max_image_size());
        if len == 0 {
            return Err(Fail::Image(ImgErr::InvalidLength));
        }
        if len > capacity {
            return Err(Fail::Image(ImgErr::InvalidImageTooLarge));
        }
        // The first chunk must start with an MCUboot header: nothing else could boot, so
        // refuse it before erasing anything.
        let header = r.data.get(..32).and_then(|h| ImageHeader::parse(h).ok());
        let Some(header) = header else {
            return Err(Fail::Image(ImgErr::InvalidImageHeader));
        };
        if r.upgrade {
            let running = updater.check_primary().map(|i| i.version);
            if running.is_some_and(|v: ImageVersion| header.version.packed() <= v.packed()) {
                return Err(Fail::Image(ImgErr::CurrentVersionIsNewer));
            }
        }
        match updater.state().phase {
            Phase::Idle => {}
            Phase::Trial => return Err(Fail::Image(ImgErr::NoFreeSlot)),
            Phase::Pending | Phase::Swapping => {
                return Err(Fail::Image(ImgErr::ImageAlreadyPending))
            }
        }
        let mut sha = None;
        if let Some(s) = r.sha {
            let mut h = [0u8; 32];
            h.copy_from_slice(s);
            sha = Some(h);
        }
        self.upload = Some(Session {
            len,
            next: 0,
            erased_to: 0,
            sha,
            hasher: Sha256::new(),
        });
        Ok(())
    }
}

/// Feeds `len` bytes of flash from `at` into `h`; `false` if any read fails (a torn unit).
fn hash_flash<F: NorFlash, C>(
    updater: &mut Updater<F, C>,
    at: u32,
    len: u32,
    buf: &mut [u8],
    h: &mut Sha256,
) -> bool {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u32) as usize;
        if updater.flash_mut().read(at + done, &mut buf[..n]).is_err() {
            return false;
        }
        h.update(&buf[..n]);
        done += n as u32;
    }
    true
}

/// Maps an engine refusal to the answer a client understands; a staging lock names what
/// holds the slot.
fn engine_fail<F: NorFlash, C>(e: EngineError, updater: &mut Updater<F, C>, flash: ImgErr) -> Fail {
    match e {
        EngineError::StagingLocked | EngineError::Busy => match updater.state().phase {
            Phase::Trial => Fail::Image(ImgErr::NoFreeSlot),
            _ => Fail::Image(ImgErr::ImageAlreadyPending),
        },
        EngineError::Flash(_) => Fail::Image(flash),
        EngineError::OutOfRange => Fail::Image(ImgErr::InvalidImageTooLarge),
        EngineError::Downgrade => Fail::Image(ImgErr::CurrentVersionIsNewer),
        EngineError::InvalidImage | EngineError::NotRunnable(_) => Fail::Mgmt(MgmtErr::Corrupt),
        EngineError::RevertUnsupported => Fail::Mgmt(MgmtErr::NotSup),
        _ => Fail::Mgmt(MgmtErr::Unknown),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    pending: bool,
    confirmed: bool,
    active: bool,
    permanent: bool,
}

fn slot_entry(enc: &mut Enc<'_>, slot: u8, img: &ImageInfo, f: Flags) -> EncResult {
    let set = [f.pending, f.confirmed, f.active, f.permanent];
    let n = 5 + set.iter().filter(|b| **b).count() as u64;
    let mut version = VersionText::default();
    let _ = write_version(&mut version, img.version);
    enc.map(n)?
        .str("image")?
        .u8(0)?
        .str("slot")?
        .u8(slot)?
        .str("version")?
        .str(version.as_str())?
        .str("hash")?
        .bytes(&img.hash)?
        .str("bootable")?
        .bool(true)?;
    for (on, key) in set
        .iter()
        .zip(["pending", "confirmed", "active", "permanent"])
    {
        if *on {
            enc.str(key)?.bool(true)?;
        }
    }
    Ok(())
}

fn slot_info<F: NorFlash, C>(updater: &Updater<F, C>, enc: &mut Enc<'_>) -> EncResult {
    let l = updater.layout();
    let max = l.staging().size.min(l.max_image_size());
    enc.map(1)?.str("images")?.array(1)?;
    enc.map(3)?.str("image")?.u8(0)?.str("slots")?.array(2)?;
    enc.map(2)?
        .str("slot")?
        .u8(0)?
        .str("size")?
        .u32(l.spec().primary.size)?;
    enc.map(3)?
        .str("slot")?
        .u8(1)?
        .str("size")?
        .u32(l.staging().size)?
        .str("upload_image_id")?
        .u8(0)?;
    enc.str("max_image_size")?.u32(max)?;
    Ok(())
}

/// Encodes an error body into `out` (at least 16 bytes); returns its length.
fn encode_error(out: &mut [u8], version: Version, grp: u16, fail: Fail) -> usize {
    let mut enc = Encoder::new(Cursor::new(out));
    let r = match (fail, version) {
        (Fail::Image(e), Version::V2) => enc
            .map(1)
            .and_then(|e| e.str("err"))
            .and_then(|e| e.map(2))
            .and_then(|e| e.str("group")?.u16(grp))
            .and_then(|x| x.str("rc")?.u16(e as u16))
            .map(|_| ()),
        (Fail::Image(e), Version::V1) => enc
            .map(1)
            .and_then(|x| x.str("rc")?.u16(e.legacy() as u16))
            .map(|_| ()),
        (Fail::Mgmt(e), _) => enc
            .map(1)
            .and_then(|x| x.str("rc")?.u16(e as u16))
            .map(|_| ()),
    };
    match r {
        Ok(()) => enc.into_writer().position(),
        Err(_) => 0,
    }
}

/// Writes a version as mcumgr tools show it: `major.minor.revision`, and `.build` when the
/// build number is not 0.
pub fn write_version(w: &mut impl core::fmt::Write, v: ImageVersion) -> core::fmt::Result {
    write!(w, "{}.{}.{}", v.major, v.minor, v.revision)?;
    if v.build != 0 {
        write!(w, ".{}", v.build)?;
    }
    Ok(())
}

/// A version string without allocation ("255.255.65535.4294967295" fits).
#[derive(Default)]
struct VersionText {
    buf: [u8; 28],
    len: usize,
}

impl VersionText {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for VersionText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
