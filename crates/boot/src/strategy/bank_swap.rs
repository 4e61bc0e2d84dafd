//! Bank swap: flip which bank the chip maps at the base, no copying.
use super::{Ctx, Strategy};
use crate::layout::{LayoutError, LayoutSpec, Region};
use crate::slots::no_digests;
use crate::state::{BootState, Phase, StateStore};
use crate::{Error, ImageInfo, Platform};
use brickless_flash::Geometry;
use embedded_storage::nor_flash::NorFlash;

/// Bank swap (dual-bank parts: H74x/H75x SWAP_BANK, L4/G4/F42x BFB2): each bank holds the
/// bootloader, a state copy and an image slot at the same place, so the layout maps onto
/// itself when the banks swap. The application stages the update in the other bank (the
/// secondary slot, the primary's twin); installing it records the mapping wanted, programs
/// the option bytes and resets: the new image then runs at the primary's address with
/// nothing copied, and the old one sits untouched in the other bank. A revert records the old
/// mapping and flips back. Every sector of the new image is erased once (by the
/// application's staging), none of the old one.
///
/// Before the first flip the bootloader makes sure the other bank starts with a copy of
/// itself, so whichever bank the chip maps, the same bootloader runs first.
///
/// Plan record (phase `Swapping`): the image sizes and the wanted mapping; no digests (the
/// option bit is the progress).
#[derive(Clone, Copy, Debug, Default)]
pub struct BankSwap;

impl Strategy for BankSwap {
    fn name(&self) -> &'static str {
        "bank-swap"
    }
    fn code(&self) -> u8 {
        3
    }
    fn plan_digests(&self) -> bool {
        false
    }
    /// Bank 1 holds the bootloader (at the base), state copy 0 and the primary slot; bank 2
    /// holds their twins at the same offsets: the bootloader's copy, state copy 1 and the
    /// secondary slot, each of the same size.
    fn check_layout(&self, spec: &LayoutSpec, geometry: &Geometry) -> Result<(), LayoutError> {
        let mirror = geometry.bank_mirror().ok_or(LayoutError::NoBankSwap)?;
        let bank1 = geometry.banks[0];
        if spec.bootloader.start != bank1.base {
            return Err(LayoutError::NotMirrored {
                region: "bootloader",
                start: spec.bootloader.start,
                expected: bank1.base,
            });
        }
        for (name, a, twin_name, b) in [
            ("primary", spec.primary, "secondary", spec.secondary),
            ("state 0", spec.state[0], "state 1", spec.state[1]),
            ("bootloader", spec.bootloader, "bootloader", spec.bootloader),
        ] {
            if a.end() > bank1.end() {
                return Err(LayoutError::NotMirrored {
                    region: name,
                    start: a.start,
                    expected: bank1.base,
                });
            }
            if name == twin_name {
                continue;
            }
            if b.start != a.start + mirror || b.size != a.size {
                return Err(LayoutError::NotMirrored {
                    region: twin_name,
                    start: b.start,
                    expected: a.start + mirror,
                });
            }
        }
        Ok(())
    }
    fn can_revert(&self) -> bool {
        true
    }
    fn staging(&self, spec: &LayoutSpec) -> Region {
        Region::new(spec.secondary.start, spec.primary.size)
    }
    /// The primary's twin in the other bank.
    fn secondary_size(&self, primary: u32, _unit: u32) -> u32 {
        primary
    }
    /// After a flip the old image is where the update was staged.
    fn revert_source(&self, spec: &LayoutSpec) -> Option<Region> {
        Some(Region::new(spec.secondary.start, spec.primary.size))
    }

    fn install<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
        new: &ImageInfo,
        old: Option<&ImageInfo>,
    ) -> Result<(), Error> {
        let banks = ctx.banks.ok_or(Error::BankSwapUnavailable)?;
        let swapped = banks.swapped(ctx.flash)?;
        mirror_bootloader(ctx)?;
        let plan = BootState {
            old_size: old.map_or(0, |o| o.size),
            new_size: new.size,
            banks_swapped: !swapped,
            ..store.state.next(Phase::Swapping)
        };
        // The caller programs the option bytes and resets (the mapping now differs).
        store.write(ctx.flash, ctx.layout, plan, no_digests)
    }

    /// Nothing to move: the caller resumes a bank-swap plan by making the chip's mapping the
    /// one the plan records (programming the option and resetting) before it gets here, so
    /// the flip is done.
    fn resume<F: NorFlash, P: Platform>(
        &self,
        _ctx: &mut Ctx<'_, F, P>,
        _store: &mut StateStore,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Records `Idle` with the old mapping; the caller flips the banks back.
    fn revert<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
    ) -> Result<(), Error> {
        let next = BootState {
            banks_swapped: !store.state.banks_swapped,
            reverted: true,
            ..store.state.idle()
        };
        store.write(ctx.flash, ctx.layout, next, no_digests)
    }
}

/// Makes every sector of the bootloader's twin in the other bank equal to the running one's,
/// rewriting only sectors that differ. The twin is never mapped at the base while this runs,
/// so a cut only leaves work for the next try.
fn mirror_bootloader<F: NorFlash, P: Platform>(ctx: &mut Ctx<'_, F, P>) -> Result<(), Error> {
    let layout = ctx.layout;
    let geometry = layout.geometry();
    let mirror = geometry.bank_mirror().ok_or(Error::BankSwapUnavailable)?;
    let boot = layout.spec().bootloader;
    for s in geometry
        .sectors()
        .filter(|s| s.addr >= boot.start && s.end() <= boot.end())
    {
        let (src, dst) = (layout.offset(s.addr), layout.offset(s.addr + mirror));
        if !ctx.same_span(src, dst, s.size) {
            ctx.copy_span(src, dst, s.size, s.size)?;
        }
    }
    Ok(())
}
