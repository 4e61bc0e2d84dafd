//! The bootloader side: the decision at reset, and the moves it makes (install, resume,
//! revert). Needs the image check and the copy buffer.
use crate::layout::Layout;
use crate::slots::{slot_accessors, Slots};
use crate::state::{BootState, Phase, StateStore};
use crate::strategy::{BankOps, Ctx, Strategy, StrategyKind};
use crate::trailer;
use crate::{Error, Exec, ImageCheck, ImageInfo, NoPlatform, Platform};
use brickless_flash::BankSwap;
use embedded_storage::nor_flash::NorFlash;

/// What the bootloader should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDecision {
    /// Jump to the verified image in the primary slot.
    Boot(BootTarget),
    /// No slot holds a bootable image: stay in the bootloader's recovery mode.
    Recovery(RecoveryReason),
    /// Bank swap: the option bytes now select another bank mapping, which takes effect at
    /// reset. Reset the chip (a system reset), then call [`BootLoader::boot`] again.
    Reset,
}

/// A verified image to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootTarget {
    /// Absolute address of the slot (the image header).
    pub address: u32,
    /// What the image check reported about the image to start.
    pub image: ImageInfo,
    /// A trial boot: unless the image calls [`crate::Updater::confirm`], the next reset reverts it
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

/// The bootloader's side of the engine over one flash array: it decides what boots and
/// moves images between the slots. The application uses [`crate::Updater`].
pub struct BootLoader<'b, F, C, P = NoPlatform> {
    slots: Slots<F, C>,
    platform: P,
    buf: &'b mut [u8],
    policy: VerifyPolicy,
    banks: Option<BankOps<F>>,
}

/// Boots the decision loop may take before it must have settled: every pass either returns
/// or moves the phase forward (Pending -> Swapping -> Trial/Idle, Trial -> Idle).
const MAX_PASSES: usize = 8;

impl<'b, F: NorFlash, C: ImageCheck<F>> BootLoader<'b, F, C, NoPlatform> {
    /// `buf` is the copy buffer: at least two write units, a multiple of the write unit
    /// (larger means fewer, longer writes).
    pub fn new(flash: F, layout: Layout, check: C, buf: &'b mut [u8]) -> Result<Self, Error> {
        BootLoader::with_platform(flash, layout, check, NoPlatform, buf)
    }
}

impl<'b, F: NorFlash + BankSwap, C: ImageCheck<F>, P: Platform> BootLoader<'b, F, C, P> {
    /// Like [`BootLoader::with_platform`], over a dual-bank flash whose option bytes the engine
    /// may program: what a bank-swap layout needs (other layouts ignore the control).
    pub fn with_bank_swap(
        flash: F,
        layout: Layout,
        check: C,
        platform: P,
        buf: &'b mut [u8],
    ) -> Result<Self, Error> {
        Self::build(flash, layout, check, platform, buf, Some(BankOps::of()))
    }
}

impl<'b, F: NorFlash, C: ImageCheck<F>, P: Platform> BootLoader<'b, F, C, P> {
    /// Like [`BootLoader::new`], with board hooks called during long work.
    pub fn with_platform(
        flash: F,
        layout: Layout,
        check: C,
        platform: P,
        buf: &'b mut [u8],
    ) -> Result<Self, Error> {
        if layout.strategy() == StrategyKind::BankSwap {
            return Err(Error::BankSwapUnavailable);
        }
        Self::build(flash, layout, check, platform, buf, None)
    }

    fn build(
        flash: F,
        layout: Layout,
        check: C,
        platform: P,
        buf: &'b mut [u8],
        banks: Option<BankOps<F>>,
    ) -> Result<Self, Error> {
        let wu = layout.write_unit() as usize;
        if buf.len() < 2 * wu || buf.len() % wu != 0 {
            return Err(Error::BufferSize);
        }
        Ok(BootLoader {
            slots: Slots {
                flash,
                layout,
                check,
            },
            platform,
            buf,
            policy: VerifyPolicy::EveryBoot,
            banks,
        })
    }

    /// Chooses when signatures are checked (default: every boot).
    pub fn set_verify_policy(&mut self, policy: VerifyPolicy) {
        self.policy = policy;
    }

    slot_accessors!();

    /// Verifies the image in the primary slot.
    pub fn check_primary(&mut self) -> Option<ImageInfo> {
        self.slots.check_primary()
    }

    /// Verifies the image staged for an update.
    pub fn check_staged(&mut self) -> Option<ImageInfo> {
        self.slots.check_staged()
    }

    /// The bootloader's decision at reset: finishes (or undoes) interrupted work, then names a
    /// verified image to start, or recovery. `Err` only for a failing flash operation (on
    /// the model, a power cut); calling again after power returns resumes safely.
    pub fn boot(&mut self) -> Result<BootDecision, Error> {
        let mut store = self.slots.load();
        let strategy = self.slots.layout.strategy();
        // An install from the staged image that failed in this boot is not tried again (it
        // would fail the same way): the next decision is between what verifies and recovery.
        let mut install_failed = false;
        let mut event = BootEvent::None;
        // MCUboot trailer requests: taken once per boot, none while an update is in flight or
        // right after a revert (a bank flip maps the rejected trial's trailer into staging).
        let mut mcuboot_taken = store.state.phase != Phase::Idle || store.state.reverted;
        for _ in 0..MAX_PASSES {
            if let Some(d) = self.settle_banks(&mut store)? {
                return Ok(d);
            }
            match store.state.phase {
                Phase::Idle => {
                    // An MCUboot-built application's request (trailer.rs).
                    if trailer::take_request(&mut self.slots, &mut store, &mut mcuboot_taken)? {
                        continue;
                    }
                    if store.state.reverted {
                        // A bank-swap revert flipped back before this boot's reset.
                        let next = store.state.idle();
                        self.slots.record(&mut store, next)?;
                        event = BootEvent::Reverted;
                    }
                    if let Some(d) = self.boot_installed(&mut store, event)? {
                        return Ok(d);
                    }
                    // The primary slot is empty or damaged: install a good staged image if any.
                    let staged = self.slots.check_staged();
                    match staged {
                        Some(s)
                            if !install_failed
                                && self.slots.acceptable(&s, None, &store.state).is_ok() =>
                        {
                            let next = BootState {
                                permanent: true,
                                ..store.state.next(Phase::Pending)
                            };
                            self.slots.record(&mut store, next)?;
                        }
                        _ => return Ok(BootDecision::Recovery(RecoveryReason::NoValidImage)),
                    }
                }
                Phase::Pending => {
                    let primary = self.slots.check_primary();
                    let new = match self.slots.check_staged() {
                        Some(s)
                            if self
                                .slots
                                .acceptable(&s, primary.as_ref(), &store.state)
                                .is_ok() =>
                        {
                            s
                        }
                        _ => {
                            // Nothing acceptable to install: drop the request.
                            let next = store.state.idle();
                            self.slots.record(&mut store, next)?;
                            continue;
                        }
                    };
                    let old = primary.filter(|p| self.slots.bootable(p, &store.state));
                    let result =
                        self.moving(|ctx| strategy.install(ctx, &mut store, &new, old.as_ref()));
                    if result.is_ok() {
                        // Bank swap: the plan wants the other mapping; flip and reset.
                        if let Some(d) = self.settle_banks(&mut store)? {
                            return Ok(d);
                        }
                    }
                    match self.after_install(&mut store, result)? {
                        Some(d) => return Ok(d),
                        None => install_failed = true,
                    }
                }
                Phase::Swapping => {
                    // A plan that cannot be finished (damaged or forged) is given up; the staged
                    // image may still be installed afresh, once.
                    let result = self.moving(|ctx| strategy.resume(ctx, &mut store));
                    if let Some(d) = self.after_install(&mut store, result)? {
                        return Ok(d);
                    }
                }
                Phase::Trial => {
                    // An MCUboot-built trial image confirms itself in the trailer (trailer.rs).
                    if trailer::confirmed(&mut self.slots, &mut store, self.buf)? {
                        continue;
                    }
                    // The trial image did not confirm itself: put the old one back. The revert
                    // source is never modified (and staging is refused during a trial), so a
                    // resumed revert finds it intact too.
                    if self.revert_source_intact(&store.state) {
                        trailer::mark_reverted(&mut self.slots, &store.state)?;
                        match self.moving(|ctx| strategy.revert(ctx, &mut store)) {
                            Ok(()) => {
                                if store.state.phase != Phase::Idle {
                                    let next = store.state.idle();
                                    self.slots.record(&mut store, next)?;
                                }
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
                    if prior.size > 0
                        && self.slots.primary_sha256(prior.size, self.buf) == Some(prior.sha256)
                    {
                        let next = store.state.idle();
                        self.slots.record(&mut store, next)?;
                        event = BootEvent::Reverted;
                        continue;
                    }
                    // Never pretend the trial was kept: it starts again as a trial, the floor
                    // untouched, and says so.
                    let running = self
                        .check_primary()
                        .filter(|p| self.slots.bootable(p, &store.state));
                    if let Some(img) = running {
                        return Ok(self.target(img, true, BootEvent::RevertImpossible));
                    }
                    let next = store.state.idle();
                    self.slots.record(&mut store, next)?;
                }
            }
        }
        Ok(BootDecision::Recovery(RecoveryReason::Unsettled))
    }

    /// Bank swap: makes the chip's bank mapping the one the state wants. `Some(Reset)` after
    /// programming the option bytes (the mapping changes at reset); `None` when it matches
    /// (or for other strategies).
    fn settle_banks(&mut self, store: &mut StateStore) -> Result<Option<BootDecision>, Error> {
        if self.slots.layout.strategy() != StrategyKind::BankSwap {
            return Ok(None);
        }
        let banks = self.banks.ok_or(Error::BankSwapUnavailable)?;
        let flash = &mut self.slots.flash;
        let actual = banks.swapped(flash)?;
        if !store.found {
            // No record yet: the mapping the device came with is the state's. Recorded when it
            // is not the factory default, so an application's first record inherits it.
            if actual {
                let next = BootState {
                    banks_swapped: true,
                    ..store.state.idle()
                };
                self.slots.record(store, next)?;
            }
            return Ok(None);
        }
        let wanted = store.state.banks_swapped;
        if wanted == actual {
            return Ok(None);
        }
        if banks.swap_at_reset(flash)? == wanted {
            // Programmed, yet not in effect after a reset: the chip refused the mapping (BFB2
            // when bank 2 does not start with a stack pointer). Adopt the mapping in effect
            // and decide afresh from what it shows, rather than reset forever.
            let next = BootState {
                banks_swapped: actual,
                ..store.state.idle()
            };
            self.slots.record(store, next)?;
            return Ok(None);
        }
        banks.set_swap_at_reset(flash, wanted)?;
        Ok(Some(BootDecision::Reset))
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
            && self
                .slots
                .check
                .counter_passes(recorded.security_counter, store.state.floor_counter)
            && self.slots.primary_sha256(recorded.size, self.buf) == Some(recorded.sha256)
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
        let Some(p) = self.slots.check_primary() else {
            return Ok(None);
        };
        if !self.slots.bootable(&p, &store.state) {
            return Ok(None);
        }
        if self.policy == VerifyPolicy::RecordedHash {
            // Record it once; later boots only hash.
            let installed = self.slots.installed(&p, self.buf);
            if installed != recorded {
                let next = BootState {
                    installed,
                    ..store.state.idle()
                };
                self.slots.record(store, next)?;
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
                self.slots.record(store, store.state.idle())?;
                return Ok(None);
            }
        }
        let installed = self
            .slots
            .check_primary()
            .filter(|p| self.slots.bootable(p, &store.state));
        let trial = self.slots.layout.strategy().can_revert()
            && !store.state.permanent
            && store.state.phase == Phase::Swapping
            && store.state.old_size > 0;
        if let Some(img) = &installed {
            // The primary trailer an MCUboot-built application reads (trailer.rs); `false`:
            // it erased under the image's end, the recorded install runs again first.
            if !trailer::mark_installed(&mut self.slots, store, img.size, trial)? {
                return Ok(None);
            }
        }
        match installed {
            Some(img) if trial => {
                self.slots.record(store, store.state.next(Phase::Trial))?;
                Ok(Some(self.target(img, true, BootEvent::TrialStarted)))
            }
            Some(img) => {
                self.slots.keep(store, &img, self.buf)?;
                trailer::retire_request(&mut self.slots, store)?;
                Ok(Some(self.target(img, false, BootEvent::Installed)))
            }
            None => {
                // The copy did not produce a bootable image: undo if possible, then re-decide.
                let next = if store.state.phase == Phase::Swapping && store.state.old_size > 0 {
                    store.state.next(Phase::Trial)
                } else {
                    store.state.idle()
                };
                self.slots.record(store, next)?;
                Ok(None)
            }
        }
    }

    /// The old image a revert copies back must be the one the plan saved (same size), verify
    /// where the strategy keeps it and be bootable.
    fn revert_source_intact(&mut self, state: &BootState) -> bool {
        let layout = &self.slots.layout;
        match layout.strategy().revert_source(layout.spec()) {
            Some(region) if state.old_size > 0 => self
                .slots
                .check_at(region)
                .is_some_and(|img| img.size == state.old_size && self.slots.bootable(&img, state)),
            _ => false,
        }
    }

    fn target(&self, image: ImageInfo, trial: bool, event: BootEvent) -> BootDecision {
        BootDecision::Boot(BootTarget {
            address: self.slots.layout.spec().primary.start,
            image,
            trial,
            event,
        })
    }

    /// Runs `f` with the layout's strategy over this side's flash, buffer and platform.
    fn moving<R>(&mut self, f: impl FnOnce(&mut Ctx<'_, F, P>) -> R) -> R {
        f(&mut Ctx {
            flash: &mut self.slots.flash,
            layout: &self.slots.layout,
            buf: &mut *self.buf,
            platform: &mut self.platform,
            banks: self.banks,
        })
    }
}
