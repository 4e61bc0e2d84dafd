#![doc = include_str!("../README.md")]
#![no_std]
// Unsafe code only in `mailbox::target` (volatile access to the linker-placed mailbox).
#![deny(unsafe_code)]

pub mod mailbox;

use brickless_boot::Updater;
use brickless_flash::MAX_WRITE_UNIT;
use embedded_storage::nor_flash::NorFlash;

pub use brickless_boot::{
    BootState, Error, ImageCheck, ImageInfo, ImageVersion, Layout, NoCheck, Phase, UpgradeMode,
};

/// Where the staging stream stands: bytes accepted so far, the staging offset erased up to,
/// and the start of a write unit still waiting for the rest of its bytes.
#[derive(Clone, Copy)]
struct Stream {
    /// Bytes accepted (written, or waiting in `pending`): the offset the next chunk must have.
    next: u32,
    /// Staging offset up to which this stream has erased the area (a sector edge).
    erased_to: u32,
    pending: [u8; MAX_WRITE_UNIT],
    pending_len: usize,
}

impl Stream {
    const START: Stream = Stream {
        next: 0,
        erased_to: 0,
        pending: [0; MAX_WRITE_UNIT],
        pending_len: 0,
    };
}

/// The application's side of brickless over one flash array: a thin layer over
/// [`brickless_boot::Updater`] that stages an update arriving in chunks of any size, asks the
/// bootloader for it and confirms a trial. Every decision (staging lock, verification,
/// downgrade refusal, what the next boot does) stays in the engine.
///
/// `C` is the image check: with one ([`App::new`]) requests are verified before they are
/// recorded and a trial can be confirmed; without ([`App::unverified`], `C` =
/// [`NoCheck`]) only unverified requests exist and the bootloader verifies at the next reset.
pub struct App<F, C = NoCheck> {
    updater: Updater<F, C>,
    stream: Stream,
}

impl<F: NorFlash> App<F, NoCheck> {
    /// An application without the image checker (no crypto linked): it stages and records
    /// unverified requests ([`App::request_upgrade_unverified`],
    /// [`App::stage_finish_unverified`]); the bootloader still verifies before installing.
    /// It cannot confirm a trial (confirming verifies the running image).
    pub fn unverified(flash: F, layout: Layout) -> Self {
        App::from_updater(Updater::unverified(flash, layout))
    }
}

impl<F: NorFlash, C> App<F, C> {
    /// An application that verifies what it requests and confirms with `check` (e.g.
    /// `brickless_boot::mcuboot::McubootCheck`, feature `mcuboot`).
    pub fn new(flash: F, layout: Layout, check: C) -> Self {
        App::from_updater(Updater::new(flash, layout, check))
    }

    /// Wraps an engine updater (no staging stream open).
    pub fn from_updater(updater: Updater<F, C>) -> Self {
        App {
            updater,
            stream: Stream::START,
        }
    }

    /// The engine updater underneath (its own staging calls bypass this stream: do not mix
    /// them with [`App::stage_write`] in one upload).
    pub fn updater(&mut self) -> &mut Updater<F, C> {
        &mut self.updater
    }

    /// Gives the engine updater back.
    pub fn into_updater(self) -> Updater<F, C> {
        self.updater
    }

    /// The recorded state (`Idle`, `Pending`, `Swapping`, `Trial`; the anti-rollback floor).
    pub fn state(&mut self) -> BootState {
        self.updater.state()
    }

    /// Bytes accepted by [`App::stage_write`] since the stream started: the offset the next
    /// chunk must carry.
    pub fn staged_len(&self) -> u32 {
        self.stream.next
    }

    /// Writes update bytes that arrive in order, in chunks of any size, from any transport:
    /// `data` are the image's bytes at `offset`. Offset 0 starts a new upload; any other
    /// offset must equal [`App::staged_len`]. The staging area is erased sector by sector
    /// just ahead of the data ([`Updater::erase_staged`]); whole write units go to the flash
    /// at once ([`Updater::write_staged`]) and a partial last unit waits for the next chunk
    /// or for [`App::stage_finish`].
    ///
    /// Errors: [`Error::OutOfRange`] when `offset` is not where the stream stands or the
    /// bytes would pass the staging area (nothing changes, the stream stays where it was);
    /// [`Error::StagingLocked`] outside `Idle` (a trial runs, or an update is requested:
    /// nothing is erased or written); [`Error::BufferSize`] for a write unit above
    /// [`MAX_WRITE_UNIT`]; [`Error::Flash`] for a failing erase or write. Any error but
    /// `OutOfRange` ends the stream: start again at offset 0.
    pub fn stage_write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        if offset == 0 {
            self.stream = Stream::START;
        }
        if offset != self.stream.next {
            return Err(Error::OutOfRange);
        }
        let len = u32::try_from(data.len()).map_err(|_| Error::OutOfRange)?;
        let size = self.updater.layout().staging().size;
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= size)
            .ok_or(Error::OutOfRange)?;
        let result = self.stage_chunk(end, data);
        if result.is_err() {
            self.stream = Stream::START;
        }
        result
    }

    fn stage_chunk(&mut self, end: u32, mut data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        let unit = self.unit()?;
        let wu = unit as u32;
        let padded_end = end.div_ceil(wu) * wu;
        if padded_end > self.stream.erased_to {
            self.stream.erased_to = self
                .updater
                .erase_staged(self.stream.erased_to, padded_end)?;
        }
        let s = &mut self.stream;
        // Offset of `pending[0]`: always on a write unit.
        let mut at = s.next - s.pending_len as u32;
        if s.pending_len > 0 {
            let take = (unit - s.pending_len).min(data.len());
            let (head, rest) = data.split_at(take);
            s.pending[s.pending_len..s.pending_len + take].copy_from_slice(head);
            s.pending_len += take;
            data = rest;
            if s.pending_len == unit {
                self.updater.write_staged(at, &s.pending[..unit])?;
                at += wu;
                s.pending_len = 0;
            }
        }
        let whole = data.len() - data.len() % unit;
        if whole > 0 {
            self.updater.write_staged(at, &data[..whole])?;
        }
        let rest = &data[whole..];
        // `rest` is non-empty only when `pending` was emptied above.
        s.pending[s.pending_len..s.pending_len + rest.len()].copy_from_slice(rest);
        s.pending_len += rest.len();
        s.next = end;
        Ok(())
    }

    /// The write unit, if the stream's buffer holds one.
    fn unit(&self) -> Result<usize, Error> {
        let unit = self.updater.layout().write_unit() as usize;
        if unit == 0 || unit > MAX_WRITE_UNIT {
            return Err(Error::BufferSize);
        }
        Ok(unit)
    }

    /// Writes the stream's partial last unit, padded with the erased value, and ends the
    /// stream (whatever the outcome: its last unit is programmed).
    fn end_stream(&mut self) -> Result<(), Error> {
        let s = self.stream;
        self.stream = Stream::START;
        if s.pending_len == 0 {
            return Ok(());
        }
        let unit = self.unit()?;
        let mut last = s.pending;
        last[s.pending_len..unit].fill(self.updater.layout().erased());
        let at = s.next - s.pending_len as u32;
        self.updater.write_staged(at, &last[..unit])
    }

    /// Asks for the staged image at the next reset without verifying it (for applications
    /// without the image checker). Writes the stream's last partial unit first. The
    /// bootloader verifies the image, refuses a downgrade and drops a bad request then.
    /// [`Error::Busy`] when an update is already requested or a trial runs;
    /// [`Error::RevertUnsupported`] for a test request on the overwrite strategy.
    pub fn request_upgrade_unverified(&mut self, mode: UpgradeMode) -> Result<(), Error> {
        self.end_stream()?;
        self.updater.request_upgrade_unverified(mode)
    }

    /// Ends an upload made with [`App::stage_write`] and asks for it unverified: the same as
    /// [`App::request_upgrade_unverified`].
    pub fn stage_finish_unverified(&mut self, mode: UpgradeMode) -> Result<(), Error> {
        self.request_upgrade_unverified(mode)
    }
}

impl<F: NorFlash, C: ImageCheck<F>> App<F, C> {
    /// Asks for the staged image at the next reset, verified first: writes the stream's last
    /// partial unit, then the engine checks hash and signature, refuses downgrades
    /// ([`Error::Downgrade`]) and images that cannot run here, and records the request only
    /// if all pass. [`Error::InvalidImage`] when the staged image does not verify (nothing
    /// recorded, the next boot changes nothing); [`Error::Busy`],
    /// [`Error::RevertUnsupported`] as for [`App::request_upgrade_unverified`].
    pub fn request_upgrade(&mut self, mode: UpgradeMode) -> Result<ImageInfo, Error> {
        self.end_stream()?;
        self.updater.request_upgrade(mode)
    }

    /// Ends an upload made with [`App::stage_write`] and asks for it: the same as
    /// [`App::request_upgrade`] (verified).
    pub fn stage_finish(&mut self, mode: UpgradeMode) -> Result<ImageInfo, Error> {
        self.request_upgrade(mode)
    }

    /// Keeps the running trial image: verifies it and raises the anti-rollback floor to its
    /// version and security counter. A no-op when nothing awaits confirmation;
    /// [`Error::Busy`] while an update is requested.
    pub fn confirm(&mut self) -> Result<(), Error> {
        self.updater.confirm()
    }
}
