//! The application side: stage an update, ask for it, confirm the running trial image, read
//! the state. No copy buffer; the image check only for the requests that verify.
use crate::layout::Layout;
use crate::slots::{slot_accessors, Slots};
use crate::state::{flash_error, BootState, Phase, StateStore};
use crate::strategy::Strategy;
use crate::{Error, ImageCheck, ImageInfo};
use embedded_storage::nor_flash::NorFlash;

/// How an application asks for its staged update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeMode {
    /// Boot it once; revert at the next reset unless it confirms.
    Test,
    /// Install it for good.
    Permanent,
}

/// The image check of an [`Updater`] built without one ([`Updater::unverified`]): it can
/// stage and request unverified only.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCheck;

/// Bytes hashed per read when confirming (the application side has no copy buffer).
const HASH_BLOCK: usize = 256;

/// The application's side of the engine over one flash array: it writes the update into
/// the staging area, asks the bootloader for it and confirms a trial. It never moves images
/// (that is [`crate::BootLoader`]'s job, at the next reset).
pub struct Updater<F, C = NoCheck> {
    slots: Slots<F, C>,
    /// The state was seen `Idle` since this updater last changed it: staging is allowed.
    staging_unlocked: bool,
}

impl<F: NorFlash> Updater<F, NoCheck> {
    /// An updater without the image checker (no crypto in the application): it stages and
    /// records unverified requests; the bootloader still verifies before installing.
    pub fn unverified(flash: F, layout: Layout) -> Self {
        Updater::new(flash, layout, NoCheck)
    }
}

impl<F: NorFlash, C> Updater<F, C> {
    /// An updater that verifies what it requests and confirms with `check`.
    pub fn new(flash: F, layout: Layout, check: C) -> Self {
        Updater {
            slots: Slots {
                flash,
                layout,
                check,
            },
            staging_unlocked: false,
        }
    }

    slot_accessors!();

    /// Erases the staging area, ready for [`Updater::write_staged`]. Refused with
    /// [`Error::StagingLocked`] unless the state is `Idle`: during a trial the staging area
    /// holds the image a revert needs, and after a request it holds the requested update.
    pub fn erase_staging(&mut self) -> Result<(), Error> {
        self.unlock_staging()?;
        let r = self.slots.layout.staging();
        let start = self.slots.layout.offset(r.start);
        self.slots
            .flash
            .erase(start, start + r.size)
            .map_err(flash_error)
    }

    /// Erases the sectors of the staging area holding staging offsets `from..to` (rounded out
    /// to sector edges, clipped to the area), so an upload can erase as its data arrives.
    /// Returns the staging offset up to which the area is now erased. Refused like
    /// [`Updater::erase_staging`] outside `Idle`.
    pub fn erase_staged(&mut self, from: u32, to: u32) -> Result<u32, Error> {
        let r = self.slots.layout.staging();
        if from >= to || to > r.size {
            return Err(Error::OutOfRange);
        }
        self.unlock_staging()?;
        let (lo, hi) = (r.start + from, r.start + to);
        let mut span: Option<(u32, u32)> = None;
        for s in self.slots.layout.geometry().sectors() {
            if s.addr < hi && lo < s.end() {
                let start = span.map_or(s.addr, |(a, _)| a);
                span = Some((start.max(r.start), s.end().min(r.end())));
            }
        }
        let (start, end) = span.ok_or(Error::OutOfRange)?;
        self.slots
            .flash
            .erase(
                self.slots.layout.offset(start),
                self.slots.layout.offset(end),
            )
            .map_err(flash_error)?;
        Ok(end - r.start)
    }

    /// Writes update bytes at `offset` inside the staging area (write-unit aligned).
    /// Refused like [`Updater::erase_staging`] outside `Idle`; [`Error::OutOfRange`] past the
    /// staging area.
    pub fn write_staged(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        let r = self.slots.layout.staging();
        let len = u32::try_from(data.len()).map_err(|_| Error::OutOfRange)?;
        if offset.checked_add(len).is_none_or(|end| end > r.size) {
            return Err(Error::OutOfRange);
        }
        self.unlock_staging()?;
        let at = self.slots.layout.offset(r.start) + offset;
        self.slots.flash.write(at, data).map_err(flash_error)
    }

    /// Staging is allowed only while `Idle`. Checked once from flash, then remembered until
    /// this updater changes the phase (only the application side writes while it runs).
    fn unlock_staging(&mut self) -> Result<(), Error> {
        if !self.staging_unlocked {
            if self.slots.load().state.phase != Phase::Idle {
                return Err(Error::StagingLocked);
            }
            self.staging_unlocked = true;
        }
        Ok(())
    }

    /// For applications without the image checker (no crypto in the app): records the
    /// request without verifying the staged image. The bootloader still verifies it and
    /// refuses a downgrade, dropping the request.
    pub fn request_upgrade_unverified(&mut self, mode: UpgradeMode) -> Result<(), Error> {
        let mut store = self.request_store(mode)?;
        self.record_request(&mut store, mode)
    }

    fn request_store(&mut self, mode: UpgradeMode) -> Result<StateStore, Error> {
        let store = self.slots.load();
        if store.state.phase != Phase::Idle {
            return Err(Error::Busy);
        }
        if mode == UpgradeMode::Test && !self.slots.layout.strategy().can_revert() {
            return Err(Error::RevertUnsupported);
        }
        Ok(store)
    }

    fn record_request(&mut self, store: &mut StateStore, mode: UpgradeMode) -> Result<(), Error> {
        let next = BootState {
            permanent: mode == UpgradeMode::Permanent,
            ..store.state.next(Phase::Pending)
        };
        // From here the staging area belongs to the request (even if the write is cut).
        self.staging_unlocked = false;
        self.slots.record(store, next)
    }
}

impl<F: NorFlash, C: ImageCheck<F>> Updater<F, C> {
    /// Asks for the staged image at the next boot. Verifies it first and refuses downgrades
    /// and images that cannot run here, so a bad request changes nothing.
    pub fn request_upgrade(&mut self, mode: UpgradeMode) -> Result<ImageInfo, Error> {
        let mut store = self.request_store(mode)?;
        let new = self.slots.check_staged().ok_or(Error::InvalidImage)?;
        let primary = self.slots.check_primary();
        self.slots
            .acceptable(&new, primary.as_ref(), &store.state)?;
        self.record_request(&mut store, mode)?;
        Ok(new)
    }

    /// Keeps the running trial image. Raises the anti-rollback floor to its version and
    /// security counter. A no-op when nothing awaits confirmation.
    pub fn confirm(&mut self) -> Result<(), Error> {
        let mut store = self.slots.load();
        match store.state.phase {
            Phase::Idle => Ok(()),
            Phase::Trial => {
                let running = self
                    .slots
                    .check_primary()
                    .filter(|p| self.slots.bootable(p, &store.state))
                    .ok_or(Error::InvalidImage)?;
                self.slots
                    .keep(&mut store, &running, &mut [0u8; HASH_BLOCK])
            }
            Phase::Pending | Phase::Swapping => Err(Error::Busy),
        }
    }

    /// Verifies the image staged for an update.
    pub fn check_staged(&mut self) -> Option<ImageInfo> {
        self.slots.check_staged()
    }

    /// Verifies the image in the primary slot (the one running).
    pub fn check_primary(&mut self) -> Option<ImageInfo> {
        self.slots.check_primary()
    }

    /// Verifies the old image a revert would put back (during a trial), where the layout's
    /// strategy keeps it; `None` when it keeps none or it does not verify.
    pub fn check_revert_image(&mut self) -> Option<ImageInfo> {
        let region = self
            .slots
            .layout
            .strategy()
            .revert_source(self.slots.layout.spec())?;
        self.slots.check_at(region)
    }
}
