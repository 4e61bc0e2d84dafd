//! The boot decision and the application-side operations (request an upgrade, confirm).
use crate::layout::{Layout, StrategyKind};
use crate::state::{BootState, InstalledImage, Phase, StateStore};
use crate::strategy::{Ctx, Overwrite, Strategy, Swap};
use crate::{Error, ImageCheck, ImageInfo, NoPlatform, Platform};
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
    /// A trial boot: unless the image calls [`Engine::confirm`], the next reset reverts it.
    pub trial: bool,
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

    /// Erases the staging area, ready for [`Engine::write_staged`].
    pub fn erase_staging(&mut self) -> Result<(), Error> {
        let r = self.layout.staging();
        let start = self.layout.offset(r.start);
        self.flash
            .erase(start, start + r.size)
            .map_err(|_| Error::Flash)
    }

    /// Writes update bytes at `offset` inside the staging area (write-unit aligned).
    pub fn write_staged(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        let r = self.layout.staging();
        let len = u32::try_from(data.len()).map_err(|_| Error::InvalidImage)?;
        if offset.checked_add(len).is_none_or(|end| end > r.size) {
            return Err(Error::InvalidImage);
        }
        self.flash
            .write(self.layout.offset(r.start) + offset, data)
            .map_err(|_| Error::Flash)
    }

    /// Application side: ask for the staged image at the next boot. Verifies it first and
    /// refuses downgrades, so a bad request changes nothing.
    pub fn request_upgrade(&mut self, mode: UpgradeMode) -> Result<ImageInfo, Error> {
        let mut store = StateStore::load(&mut self.flash, &self.layout);
        if store.state.phase != Phase::Idle {
            return Err(Error::Busy);
        }
        if mode == UpgradeMode::Test && self.layout.strategy() == StrategyKind::Overwrite {
            return Err(Error::RevertUnsupported);
        }
        let new = self.check_staged().ok_or(Error::InvalidImage)?;
        let primary = self.check_primary();
        if !acceptable(&new, primary.as_ref(), &store.state) {
            return Err(Error::Downgrade);
        }
        let next = BootState {
            permanent: mode == UpgradeMode::Permanent,
            ..store.state.next(Phase::Pending)
        };
        store.write(&mut self.flash, &self.layout, next, no_digests)?;
        Ok(new)
    }

    /// Application side, for applications without the image checker (no crypto in the app):
    /// records the request without verifying the staged image. The bootloader still
    /// verifies it and refuses a downgrade, dropping the request.
    pub fn request_upgrade_unverified(&mut self, mode: UpgradeMode) -> Result<(), Error> {
        let mut store = StateStore::load(&mut self.flash, &self.layout);
        if store.state.phase != Phase::Idle {
            return Err(Error::Busy);
        }
        if mode == UpgradeMode::Test && self.layout.strategy() == StrategyKind::Overwrite {
            return Err(Error::RevertUnsupported);
        }
        let next = BootState {
            permanent: mode == UpgradeMode::Permanent,
            ..store.state.next(Phase::Pending)
        };
        store.write(&mut self.flash, &self.layout, next, no_digests)
    }

    /// Application side: keep the running trial image. Raises the anti-rollback floor to its
    /// version and security counter. A no-op when nothing awaits confirmation.
    pub fn confirm(&mut self) -> Result<(), Error> {
        let mut store = StateStore::load(&mut self.flash, &self.layout);
        match store.state.phase {
            Phase::Idle => Ok(()),
            Phase::Trial => {
                let running = self.check_primary().ok_or(Error::InvalidImage)?;
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
        let mut store = StateStore::load(&mut self.flash, &self.layout);
        for _ in 0..MAX_PASSES {
            match store.state.phase {
                Phase::Idle => {
                    let recorded = store.state.installed;
                    if self.policy == VerifyPolicy::RecordedHash
                        && recorded.size > 0
                        && recorded.security_counter >= store.state.floor_counter
                        && self.primary_sha256(recorded.size) == Some(recorded.sha256)
                    {
                        let image = ImageInfo {
                            version: recorded.version,
                            security_counter: recorded.security_counter,
                            size: recorded.size,
                            hash: recorded.sha256,
                        };
                        return Ok(self.target(image, false));
                    }
                    if let Some(p) = self.check_primary() {
                        if p.security_counter >= store.state.floor_counter {
                            if self.policy == VerifyPolicy::RecordedHash {
                                // Record it once; later boots only hash.
                                let installed = self.installed(&p);
                                if installed != recorded {
                                    let next = BootState {
                                        installed,
                                        ..store.state.next(Phase::Idle)
                                    };
                                    store.write(&mut self.flash, &self.layout, next, no_digests)?;
                                }
                            }
                            return Ok(self.target(p, false));
                        }
                    }
                    // The primary slot is empty or damaged: install a good staged image if any.
                    match self.check_staged() {
                        Some(s) if acceptable(&s, None, &store.state) => {
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
                        Some(s) if acceptable(&s, primary.as_ref(), &store.state) => s,
                        _ => {
                            // Nothing acceptable to install: drop the request.
                            store.write(
                                &mut self.flash,
                                &self.layout,
                                store.state.next(Phase::Idle),
                                no_digests,
                            )?;
                            continue;
                        }
                    };
                    let old = primary.filter(|p| p.security_counter >= store.state.floor_counter);
                    let result =
                        self.with_strategy(|s, ctx| s.install(ctx, &mut store, &new, old.as_ref()));
                    if let Some(d) = self.after_install(&mut store, result)? {
                        return Ok(d);
                    }
                }
                Phase::Swapping => {
                    let result = self.with_strategy(|s, ctx| s.resume(ctx, &mut store));
                    if let Some(d) = self.after_install(&mut store, result)? {
                        return Ok(d);
                    }
                }
                Phase::Trial => {
                    // The trial image did not confirm itself: put the old one back, if it is
                    // still intact (the revert source is never modified, so a resumed revert
                    // finds it intact too).
                    if store.state.old_units > 0 && self.check_revert_source() {
                        let result = self.with_strategy(|s, ctx| s.revert(ctx, &store));
                        match result {
                            Ok(()) | Err(Error::Corrupt) | Err(Error::RevertUnsupported) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    let next = BootState {
                        old_units: 0,
                        new_units: 0,
                        ..store.state.next(Phase::Idle)
                    };
                    store.write(&mut self.flash, &self.layout, next, no_digests)?;
                }
            }
        }
        Ok(BootDecision::Recovery(RecoveryReason::Unsettled))
    }

    /// After an install attempt: record the outcome and boot, or fall through to another pass.
    fn after_install(
        &mut self,
        store: &mut StateStore,
        result: Result<(), Error>,
    ) -> Result<Option<BootDecision>, Error> {
        match result {
            Ok(()) => {}
            Err(Error::Corrupt) => {
                // Flash contradicts the plan (hostile or damaged content): give up on the
                // update; the Idle pass boots whatever still verifies.
                let next = BootState {
                    old_units: 0,
                    new_units: 0,
                    ..store.state.next(Phase::Idle)
                };
                store.write(&mut self.flash, &self.layout, next, no_digests)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let installed = self.check_primary();
        let trial = self.layout.strategy() == StrategyKind::Swap
            && !store.state.permanent
            && store.state.phase == Phase::Swapping
            && store.state.old_units > 0;
        match installed {
            Some(img) if trial => {
                store.write(
                    &mut self.flash,
                    &self.layout,
                    store.state.next(Phase::Trial),
                    no_digests,
                )?;
                Ok(Some(self.target(img, true)))
            }
            Some(img) => {
                let installed = self.installed(&img);
                let next = settled(&store.state, Some(&img), installed);
                store.write(&mut self.flash, &self.layout, next, no_digests)?;
                Ok(Some(self.target(img, false)))
            }
            None => {
                // The copy did not produce a valid image: undo if possible, then re-decide.
                if store.state.phase == Phase::Swapping && store.state.old_units > 0 {
                    store.write(
                        &mut self.flash,
                        &self.layout,
                        store.state.next(Phase::Trial),
                        no_digests,
                    )?;
                } else {
                    let next = BootState {
                        old_units: 0,
                        new_units: 0,
                        ..store.state.next(Phase::Idle)
                    };
                    store.write(&mut self.flash, &self.layout, next, no_digests)?;
                }
                Ok(None)
            }
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
            },
            None => InstalledImage::NONE,
        }
    }

    /// The old image a revert copies back must verify where it sits (secondary, offset 0).
    fn check_revert_source(&mut self) -> bool {
        let r = self.layout.spec();
        let at = self.layout.offset(r.secondary.start);
        self.check
            .check(&mut self.flash, at, r.primary.size)
            .is_some()
    }

    fn target(&self, image: ImageInfo, trial: bool) -> BootDecision {
        BootDecision::Boot(BootTarget {
            address: self.layout.spec().primary.start,
            image,
            trial,
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
        old_units: 0,
        new_units: 0,
        permanent: false,
        installed,
        ..state.next(Phase::Idle)
    };
    if let Some(img) = image {
        next.floor_counter = next.floor_counter.max(img.security_counter);
        next.floor_version = next.floor_version.max(img.version.packed());
    }
    next
}

/// Whether `new` may replace what runs now: not below the recorded floor, and not older than
/// the verified primary image.
fn acceptable(new: &ImageInfo, primary: Option<&ImageInfo>, state: &BootState) -> bool {
    let mut min_counter = state.floor_counter;
    let mut min_version = state.floor_version;
    if let Some(p) = primary.filter(|p| p.security_counter >= state.floor_counter) {
        min_counter = min_counter.max(p.security_counter);
        min_version = min_version.max(p.version.packed());
    }
    new.security_counter >= min_counter && new.version.packed() >= min_version
}

fn no_digests<F>(
    _: &mut F,
    _: crate::state::DigestSet,
    _: u32,
) -> Result<[u8; crate::layout::DIGEST_LEN], Error> {
    Err(Error::Corrupt)
}
