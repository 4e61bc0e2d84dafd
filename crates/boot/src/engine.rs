//! The boot decision and the application-side operations (request an upgrade, confirm).
use crate::layout::{Layout, StrategyKind};
use crate::state::{flash_error, BootState, InstalledImage, Phase, StateStore};
use crate::strategy::{Ctx, Overwrite, Strategy, Swap};
use crate::{Error, Exec, ImageCheck, ImageInfo, NoPlatform, Platform};
use embedded_storage::nor_flash::NorFlash;

/// What the bootloader should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDecision {
    /// Jump to the verified image in the primary slot.
    Boot(BootTarget),
    /// No slot holds a bootable image: stay in the bootloader's recovery mode.
    Recovery(RecoveryReason),
}

/// A verified image to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootTarget {
    /// Absolute address of the slot (the image header).
    pub address: u32,
    pub image: ImageInfo,
    /// A trial boot: unless the image calls [`Engine::confirm`], the next reset reverts it
    /// (or, when [`BootEvent::RevertImpossible`], boots it again as a trial).
    pub trial: bool,
    /// What this boot did before choosing the image (for the boot log and the application).
    pub event: BootEvent,
}

/// What a boot did before it chose the image to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootEvent {
    /// Nothing: the installed image starts.
    None,
    /// An update was installed for good (a permanent request, or a first image).
    Installed,
    /// An update was installed and starts its trial boot.
    TrialStarted,
    /// The last trial was not confirmed: the old image was put back.
    Reverted,
    /// The last trial was not confirmed, but the old image it would revert to no longer
    /// verifies (damaged flash): the trial image starts again, still a trial, the
    /// anti-rollback floor not raised. Confirming it keeps it.
    RevertImpossible,
}

/// Why the engine chose recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryReason {
    /// No slot holds an image that verifies and passes the anti-rollback floor.
    NoValidImage,
    /// The state kept changing without settling (should not happen; a safety net).
    Unsettled,
}

/// How an application asks for its staged update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeMode {
    /// Boot it once; revert at the next reset unless it confirms.
    Test,
    /// Install it for good.
    Permanent,
}

/// When the bootloader checks the signature of the image it boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VerifyPolicy {
    /// Hash and signature before every boot.
    #[default]
    EveryBoot,
    /// Full verification once (after an update, or on the first boot of a factory image);
    /// later boots compare the SHA-256 of the image bytes with the one recorded then, and
    /// fall back to full verification on any mismatch.
    RecordedHash,
}

/// The update engine over one flash array.
pub struct Engine<'b, F, C, P = NoPlatform> {
    flash: F,
    layout: Layout,
    check: C,
    platform: P,
    buf: &'b mut [u8],
    policy: VerifyPolicy,
    /// The state was seen `Idle` since this engine last changed it: staging is allowed.
    staging_unlocked: bool,
}

/// Boots the decision loop may take before it must have settled: every pass either returns
/// or moves the phase forward (Pending -> Swapping -> Trial/Idle, Trial -> Idle).
const MAX_PASSES: usize = 8;

impl<'b, F: NorFlash, C: ImageCheck<F>> Engine<'b, F, C, NoPlatform> {
    /// `buf` is the copy buffer: at least two write units, a multiple of the write unit
    /// (larger means fewer, longer writes).
    pub fn new(flash: F, layout: Layout, check: C, buf: &'b mut [u8]) -> Result<Self, Error> {
        Engine::with_platform(flash, layout, check, NoPlatform, buf)
    }
}

impl<'b, F: NorFlash, C: ImageCheck<F>, P: Platform> Engine<'b, F, C, P> {
    pub fn with_platform(
        flash: F,
        layout: Layout,
        check: C,
        platform: P,
        buf: &'b mut [u8],
    ) -> Result<Self, Error> {
        let wu = layout.write_unit() as usize;
        if buf.len() < 2 * wu || buf.len() % wu != 0 {
            return Err(Error::BufferSize);
        }
        Ok(Engine {
            flash,
            layout,
            check,
            platform,
            buf,
            policy: VerifyPolicy::EveryBoot,
            staging_unlocked: false,
        })
    }

    /// Chooses when signatures are checked (default: every boot).
    pub fn set_verify_policy(&mut self, policy: VerifyPolicy) {
        self.policy = policy;
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn flash(&self) -> &F {
        &self.flash
    }
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }
    pub fn checker_mut(&mut self) -> &mut C {
        &mut self.check
    }
    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// The recorded state (factory default when no valid record exists).
    pub fn state(&mut self) -> BootState {
        StateStore::load(&mut self.flash, &self.layout).state
    }

    /// Verifies the image in the primary slot.
    pub fn check_primary(&mut self) -> Option<ImageInfo> {
        let r = self.layout.spec().primary;
        self.check
            .check(&mut self.flash, self.layout.offset(r.start), r.size)
    }

    /// Verifies the image staged for an update.
    pub fn check_staged(&mut self) -> Option<ImageInfo> {
        let r = self.layout.staging();
        self.check
            .check(&mut self.flash, self.layout.offset(r.start), r.size)
    }

    /// Erases the staging area, ready for [`Engine::write_staged`]. Refused with
    /// [`Error::StagingLocked`] unless the state is `Idle`: during a trial the staging area
    /// holds the image a revert needs, and after a request it holds the requested update.
    pub fn erase_staging(&mut self) -> Result<(), Error> {
        self.unlock_staging()?;
        let r = self.layout.staging();
        let start = self.layout.offset(r.start);
        self.flash.erase(start, start + r.size).map_err(flash_error)
    }

    /// Writes update bytes at `offset` inside the staging area (write-unit aligned).
    /// Refused like [`Engine::erase_staging`] outside `Idle`; [`Error::OutOfRange`] past the
    /// staging area.
    pub fn write_staged(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        let r = self.layout.staging();
        let len = u32::try_from(data.len()).map_err(|_| Error::OutOfRange)?;
        if offset.checked_add(len).is_none_or(|end| end > r.size) {
            return Err(Error::OutOfRange);
        }
        self.unlock_staging()?;
        self.flash
            .write(self.layout.offset(r.start) + offset, data)
            .map_err(flash_error)
    }

    /// Staging is allowed only while `Idle`. Checked once from flash, then remembered until
    /// this engine changes the phase (only the application side writes while it runs).
    fn unlock_staging(&mut self) -> Result<(), Error> {
        if !self.staging_unlocked {
            if StateStore::load(&mut self.flash, &self.layout).state.phase != Phase::Idle {
                return Err(Error::StagingLocked);
            }
            self.staging_unlocked = true;
        }
        Ok(())
    }

    /// Application side: ask for the staged image at the next boot. Verifies it first and
    /// refuses downgrades and images that cannot run here, so a bad request changes nothing.
    pub fn request_upgrade(&mut self, mode: UpgradeMode) -> Result<ImageInfo, Error> {
        let mut store = self.request_store(mode)?;
        let new = self.check_staged().ok_or(Error::InvalidImage)?;
        let primary = self.check_primary();
        self.acceptable(&new, primary.as_ref(), &store.state)?;
        self.record_request(&mut store, mode)?;
        Ok(new)
    }

    /// Application side, for applications without the image checker (no crypto in the app):
    /// records the request without verifying the staged image. The bootloader still
    /// verifies it and refuses a downgrade, dropping the request.
    pub fn request_upgrade_unverified(&mut self, mode: UpgradeMode) -> Result<(), Error> {
        let mut store = self.request_store(mode)?;
        self.record_request(&mut store, mode)
    }

    fn request_store(&mut self, mode: UpgradeMode) -> Result<StateStore, Error> {
        let store = StateStore::load(&mut self.flash, &self.layout);
        if store.state.phase != Phase::Idle {
            return Err(Error::Busy);
        }
        if mode == UpgradeMode::Test && self.layout.strategy() == StrategyKind::Overwrite {
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
        store.write(&mut self.flash, &self.layout, next, no_digests)
    }

    /// Application side: keep the running trial image. Raises the anti-rollback floor to its
    /// version and security counter. A no-op when nothing awaits confirmation.
    pub fn confirm(&mut self) -> Result<(), Error> {
        let mut store = StateStore::load(&mut self.flash, &self.layout);
        match store.state.phase {
            Phase::Idle => Ok(()),
            Phase::Trial => {
                let running = self
                    .check_primary()
                    .filter(|p| self.bootable(p, &store.state))
                    .ok_or(Error::InvalidImage)?;
                let installed = self.installed(&running);
                let next = settled(&store.state, Some(&running), installed);
                store.write(&mut self.flash, &self.layout, next, no_digests)
            }
            Phase::Pending | Phase::Swapping => Err(Error::Busy),
        }
    }

    /// The bootloader's decision at reset: finishes (or undoes) interrupted work, then names a
    /// verified image to start, or recovery. `Err` only for a failing flash operation (on
    /// the model, a power cut); calling again after power returns resumes safely.
    pub fn boot(&mut self) -> Result<BootDecision, Error> {
        self.staging_unlocked = false;
        let mut store = StateStore::load(&mut self.flash, &self.layout);
        // An install from the staged image that failed in this boot is not tried again (it
        // would fail the same way): the next decision is between what verifies and recovery.
        let mut install_failed = false;
        let mut event = BootEvent::None;
        for _ in 0..MAX_PASSES {
            match store.state.phase {
                Phase::Idle => {
                    if let Some(d) = self.boot_installed(&mut store, event)? {
                        return Ok(d);
                    }
                    // The primary slot is empty or damaged: install a good staged image if any.
                    let staged = self.check_staged();
                    match staged {
                        Some(s)
                            if !install_failed
                                && self.acceptable(&s, None, &store.state).is_ok() =>
                        {
                            let next = BootState {
                                permanent: true,
                                ..store.state.next(Phase::Pending)
                            };
                            store.write(&mut self.flash, &self.layout, next, no_digests)?;
                        }
                        _ => return Ok(BootDecision::Recovery(RecoveryReason::NoValidImage)),
                    }
                }
                Phase::Pending => {
                    let primary = self.check_primary();
                    let new = match self.check_staged() {
                        Some(s) if self.acceptable(&s, primary.as_ref(), &store.state).is_ok() => s,
                        _ => {
                            // Nothing acceptable to install: drop the request.
                            let next = store.state.idle();
                            store.write(&mut self.flash, &self.layout, next, no_digests)?;
                            continue;
                        }
                    };
                    let old = primary.filter(|p| self.bootable(p, &store.state));
                    let result =
                        self.with_strategy(|s, ctx| s.install(ctx, &mut store, &new, old.as_ref()));
                    match self.after_install(&mut store, result)? {
                        Some(d) => return Ok(d),
                        None => install_failed = true,
                    }
                }
                Phase::Swapping => {
                    // A plan that cannot be finished (damaged or forged) is given up; the staged
                    // image may still be installed afresh, once.
                    let result = self.with_strategy(|s, ctx| s.resume(ctx, &mut store));
                    if let Some(d) = self.after_install(&mut store, result)? {
                        return Ok(d);
                    }
                }
                Phase::Trial => {
                    // The trial image did not confirm itself: put the old one back. The revert
                    // source is never modified (and staging is refused during a trial), so a
                    // resumed revert finds it intact too.
                    if self.revert_source_intact(&store.state) {
                        match self.with_strategy(|s, ctx| s.revert(ctx, &store)) {
                            Ok(()) => {
                                let next = store.state.idle();
                                store.write(&mut self.flash, &self.layout, next, no_digests)?;
                                event = BootEvent::Reverted;
                                continue;
                            }
                            Err(Error::Flash(kind)) => return Err(Error::Flash(kind)),
                            Err(_) => {}
                        }
                    }
                    // Nothing intact to revert from. If the primary slot already holds the
                    // image the trial replaced (a revert finished just before a cut), the
                    // revert is done.
                    let prior = store.state.installed;
                    if prior.size > 0 && self.primary_sha256(prior.size) == Some(prior.sha256) {
                        let next = store.state.idle();
                        store.write(&mut self.flash, &self.layout, next, no_digests)?;
                        event = BootEvent::Reverted;
                        continue;
                    }
                    // Never pretend the trial was kept: it starts again as a trial, the floor
                    // untouched, and says so.
                    let running = self
                        .check_primary()
                        .filter(|p| self.bootable(p, &store.state));
                    if let Some(img) = running {
                        return Ok(self.target(img, true, BootEvent::RevertImpossible));
                    }
                    let next = store.state.idle();
                    store.write(&mut self.flash, &self.layout, next, no_digests)?;
                }
            }
        }
        Ok(BootDecision::Recovery(RecoveryReason::Unsettled))
    }

    /// The Idle decision: the installed image, if it verifies (or matches its recorded hash)
    /// and passes the floor.
    fn boot_installed(
        &mut self,
        store: &mut StateStore,
        event: BootEvent,
    ) -> Result<Option<BootDecision>, Error> {
        let recorded = store.state.installed;
        if self.policy == VerifyPolicy::RecordedHash
            && recorded.size > 0
            && recorded.security_counter >= store.state.floor_counter
            && self.primary_sha256(recorded.size) == Some(recorded.sha256)
        {
            // Recorded only after a full check that it runs here.
            let image = ImageInfo {
                version: recorded.version,
                security_counter: recorded.security_counter,
                size: recorded.size,
                hash: recorded.hash,
                exec: Exec::InPlace,
            };
            return Ok(Some(self.target(image, false, event)));
        }
        let Some(p) = self.check_primary() else {
            return Ok(None);
        };
        if !self.bootable(&p, &store.state) {
            return Ok(None);
        }
        if self.policy == VerifyPolicy::RecordedHash {
            // Record it once; later boots only hash.
            let installed = self.installed(&p);
            if installed != recorded {
                let next = BootState {
                    installed,
                    ..store.state.idle()
                };
                store.write(&mut self.flash, &self.layout, next, no_digests)?;
            }
        }
        Ok(Some(self.target(p, false, event)))
    }

    /// After an install attempt: record the outcome and boot, or fall through to another pass
    /// (`None`: the install did not produce a bootable image).
    fn after_install(
        &mut self,
        store: &mut StateStore,
        result: Result<(), Error>,
    ) -> Result<Option<BootDecision>, Error> {
        match result {
            Ok(()) => {}
            Err(Error::Flash(kind)) => return Err(Error::Flash(kind)),
            Err(_) => {
                // Flash contradicts the plan (hostile or damaged content): give up on the
                // update; the Idle pass boots whatever still verifies.
                let next = store.state.idle();
                store.write(&mut self.flash, &self.layout, next, no_digests)?;
                return Ok(None);
            }
        }
        let installed = self
            .check_primary()
            .filter(|p| self.bootable(p, &store.state));
        let trial = self.layout.strategy() == StrategyKind::Swap
            && !store.state.permanent
            && store.state.phase == Phase::Swapping
            && store.state.old_size > 0;
        match installed {
            Some(img) if trial => {
                store.write(
                    &mut self.flash,
                    &self.layout,
                    store.state.next(Phase::Trial),
                    no_digests,
                )?;
                Ok(Some(self.target(img, true, BootEvent::TrialStarted)))
            }
            Some(img) => {
                let installed = self.installed(&img);
                let next = settled(&store.state, Some(&img), installed);
                store.write(&mut self.flash, &self.layout, next, no_digests)?;
                Ok(Some(self.target(img, false, BootEvent::Installed)))
            }
            None => {
                // The copy did not produce a bootable image: undo if possible, then re-decide.
                if store.state.phase == Phase::Swapping && store.state.old_size > 0 {
                    store.write(
                        &mut self.flash,
                        &self.layout,
                        store.state.next(Phase::Trial),
                        no_digests,
                    )?;
                } else {
                    let next = store.state.idle();
                    store.write(&mut self.flash, &self.layout, next, no_digests)?;
                }
                Ok(None)
            }
        }
    }

    /// Whether a verified primary image may start: it runs from the primary slot and its
    /// security counter is not below the floor.
    fn bootable(&self, img: &ImageInfo, state: &BootState) -> bool {
        img.security_counter >= state.floor_counter
            && img.exec.runs_at(self.layout.spec().primary.start).is_ok()
    }

    /// Whether `new` may replace what runs now: it runs from the primary slot, it is not below
    /// the recorded floor, and not older than the bootable primary image.
    fn acceptable(
        &self,
        new: &ImageInfo,
        primary: Option<&ImageInfo>,
        state: &BootState,
    ) -> Result<(), Error> {
        new.exec.runs_at(self.layout.spec().primary.start)?;
        let mut min_counter = state.floor_counter;
        let mut min_version = state.floor_version;
        if let Some(p) = primary.filter(|p| self.bootable(p, state)) {
            min_counter = min_counter.max(p.security_counter);
            min_version = min_version.max(p.version.packed());
        }
        if new.security_counter >= min_counter && new.version.packed() >= min_version {
            Ok(())
        } else {
            Err(Error::Downgrade)
        }
    }

    /// SHA-256 of the first `size` bytes of the primary slot (`None` if unreadable).
    fn primary_sha256(&mut self, size: u32) -> Option<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let start = self.layout.offset(self.layout.spec().primary.start);
        if size > self.layout.spec().primary.size {
            return None;
        }
        let mut h = Sha256::new();
        let mut done = 0;
        while done < size {
            let n = (size - done).min(self.buf.len() as u32) as usize;
            self.flash.read(start + done, &mut self.buf[..n]).ok()?;
            h.update(&self.buf[..n]);
            done += n as u32;
        }
        Some(h.finalize().into())
    }

    /// The record of a just-verified primary image.
    fn installed(&mut self, img: &ImageInfo) -> InstalledImage {
        match self.primary_sha256(img.size) {
            Some(sha256) => InstalledImage {
                size: img.size,
                version: img.version,
                security_counter: img.security_counter,
                sha256,
                hash: img.hash,
            },
            None => InstalledImage::NONE,
        }
    }

    /// The old image a revert copies back must be the one the plan saved (same size), verify
    /// where it sits (secondary, offset 0) and be bootable.
    fn revert_source_intact(&mut self, state: &BootState) -> bool {
        if state.old_size == 0 {
            return false;
        }
        let r = self.layout.spec();
        let at = self.layout.offset(r.secondary.start);
        self.check
            .check(&mut self.flash, at, r.primary.size)
            .is_some_and(|img| img.size == state.old_size && self.bootable(&img, state))
    }

    fn target(&self, image: ImageInfo, trial: bool, event: BootEvent) -> BootDecision {
        BootDecision::Boot(BootTarget {
            address: self.layout.spec().primary.start,
            image,
            trial,
            event,
        })
    }

    fn with_strategy<R>(
        &mut self,
        f: impl FnOnce(&dyn Strategy<F, P>, &mut Ctx<'_, F, P>) -> R,
    ) -> R {
        let mut ctx = Ctx {
            flash: &mut self.flash,
            layout: &self.layout,
            buf: &mut *self.buf,
            platform: &mut self.platform,
        };
        match self.layout.strategy() {
            StrategyKind::Swap => f(&Swap, &mut ctx),
            StrategyKind::Overwrite => f(&Overwrite, &mut ctx),
        }
    }
}

/// The Idle state after an image is kept for good: the floor rises to it.
fn settled(state: &BootState, image: Option<&ImageInfo>, installed: InstalledImage) -> BootState {
    let mut next = BootState {
        installed,
        ..state.idle()
    };
    if let Some(img) = image {
        next.floor_counter = next.floor_counter.max(img.security_counter);
        next.floor_version = next.floor_version.max(img.version.packed());
    }
    next
}

fn no_digests<F>(
    _: &mut F,
    _: crate::state::DigestSet,
    _: u32,
) -> Result<[u8; crate::layout::DIGEST_LEN], Error> {
    Err(Error::Corrupt)
}
