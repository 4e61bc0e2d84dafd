//! Swap with revert, "offset" style.
use super::{Ctx, Strategy};
use crate::layout::{LayoutError, LayoutSpec, Region};
use crate::state::{BootState, DigestSet, Phase, StateStore};
use crate::{Error, ImageInfo, Platform};
use brickless_flash::Geometry;
use embedded_storage::nor_flash::NorFlash;

/// Swap with revert, "offset" style: the update is staged one unit into the secondary slot,
/// so unit `i` of the update sits in secondary unit `i + 1`. Step `i` saves primary unit `i`
/// (old) into secondary unit `i` (whose update content already moved in step `i - 1`), then
/// copies secondary unit `i + 1` (new) into primary unit `i`. Every primary and secondary unit
/// is erased once per upgrade, no scratch sector is used, identical units are not rewritten,
/// and progress costs no flash writes: it is read back from digests recorded in the plan.
/// A revert copies the old image back from the secondary slot (which it never modifies), so
/// it too resumes from content.
///
/// Plan record (phase `Swapping`): the old and new image sizes, then a truncated SHA-256 of
/// each old unit as it sits in the primary slot and of each new unit as it sits in the
/// secondary slot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Swap;

impl Strategy for Swap {
    fn name(&self) -> &'static str {
        "swap"
    }
    fn code(&self) -> u8 {
        1
    }
    fn plan_digests(&self) -> bool {
        true
    }
    fn check_layout(&self, _spec: &LayoutSpec, _geometry: &Geometry) -> Result<(), LayoutError> {
        Ok(())
    }
    fn can_revert(&self) -> bool {
        true
    }
    fn staging(&self, spec: &LayoutSpec) -> Region {
        Region::new(spec.secondary.start + spec.unit, spec.primary.size)
    }
    /// The primary's size plus the spare unit the offset needs.
    fn secondary_size(&self, primary: u32, unit: u32) -> u32 {
        primary.saturating_add(unit)
    }
    /// After a swap the old image sits at the start of the secondary slot.
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
        let plan = BootState {
            old_size: old.map_or(0, |o| o.size),
            new_size: new.size,
            ..store.state.next(Phase::Swapping)
        };
        let layout = ctx.layout;
        let (p0, s0, unit) = (ctx.primary(0), ctx.secondary(0), layout.unit());
        store.write(ctx.flash, layout, plan, |flash, set, i| {
            let (at, size) = match set {
                DigestSet::Old => (p0 + i * unit, plan.old_size),
                DigestSet::New => (s0 + (i + 1) * unit, plan.new_size),
            };
            let mut sub = Ctx {
                flash,
                layout,
                buf: &mut *ctx.buf,
                platform: &mut *ctx.platform,
                banks: ctx.banks,
            };
            let len = sub.span(size, i);
            sub.digest(at, len).ok_or(Error::Corrupt)
        })?;
        self.resume(ctx, store)
    }

    fn resume<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
    ) -> Result<(), Error> {
        if store.state.phase != Phase::Swapping {
            return Err(Error::Corrupt);
        }
        let layout = ctx.layout;
        let (old_size, new_size) = (store.state.old_size, store.state.new_size);
        let k_old = ctx.units(old_size);
        let k_new = ctx.units(new_size);
        let k = k_old.max(k_new);
        if k_new > layout.primary_units() || k_old > layout.primary_units() {
            return Err(Error::Corrupt);
        }
        // First unit whose end state is not reached yet.
        let mut start = k;
        let (mut start_saved, mut start_placed) = (true, true);
        for i in 0..k {
            let saved = i >= k_old
                || ctx.digest(ctx.secondary(i), ctx.span(old_size, i))
                    == Some(store.digest(ctx.flash, layout, DigestSet::Old, i)?);
            let placed = i >= k_new
                || ctx.digest(ctx.primary(i), ctx.span(new_size, i))
                    == Some(store.digest(ctx.flash, layout, DigestSet::New, i)?);
            if !(saved && placed) {
                (start, start_saved, start_placed) = (i, saved, placed);
                break;
            }
        }
        for i in start..k {
            let (old_len, new_len) = (ctx.span(old_size, i), ctx.span(new_size, i));
            let old_d = if i < k_old {
                Some(store.digest(ctx.flash, layout, DigestSet::Old, i)?)
            } else {
                None
            };
            let new_d = if i < k_new {
                Some(store.digest(ctx.flash, layout, DigestSet::New, i)?)
            } else {
                None
            };
            let first = i == start;
            if i < k_old && !(first && start_saved) {
                // Saving the old unit needs it intact in the primary slot.
                if first && ctx.digest(ctx.primary(i), old_len) != old_d {
                    return Err(Error::Corrupt);
                }
                ctx.copy_unit(ctx.primary(i), ctx.secondary(i), old_len)?;
            }
            let place = if first {
                !start_placed
            } else {
                i < k_new && (old_d != new_d || old_len != new_len)
            };
            if place {
                ctx.copy_unit(ctx.secondary(i + 1), ctx.primary(i), new_len)?;
            }
        }
        Ok(())
    }

    fn revert<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
    ) -> Result<(), Error> {
        ctx.copy_secondary_to_primary(store.state.old_size)
    }
}
