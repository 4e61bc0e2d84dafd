//! How an update moves into the primary slot: one [`Strategy`] implementation each.
//!
//! Both strategies decide what is left to do from flash *content*, never from per-step
//! progress records: a unit is done when it holds the bytes it should (compared with its
//! source, or with a digest recorded before the first destructive operation). Redoing a step
//! is always safe because a step never destroys data that is not also somewhere else. So a
//! cut anywhere, torn writes and half-erased units included, is repaired by re-running, and
//! an update costs only the erases and writes of the data plus a few state records.
use crate::layout::{Layout, StrategyKind, DIGEST_LEN};
use crate::state::{BootState, DigestSet, Phase, StateStore};
use crate::{Error, ImageInfo, Platform};
use embedded_storage::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

/// Flash, layout, copy buffer and platform hooks, borrowed for one piece of work.
pub struct Ctx<'a, F, P> {
    pub flash: &'a mut F,
    pub layout: &'a Layout,
    pub buf: &'a mut [u8],
    pub platform: &'a mut P,
}

impl<F: NorFlash, P: Platform> Ctx<'_, F, P> {
    fn unit(&self) -> u32 {
        self.layout.unit()
    }
    /// Flash offset of primary unit `i`.
    pub fn primary(&self, i: u32) -> u32 {
        self.layout.offset(self.layout.spec().primary.start) + i * self.unit()
    }
    /// Flash offset of secondary unit `i`.
    pub fn secondary(&self, i: u32) -> u32 {
        self.layout.offset(self.layout.spec().secondary.start) + i * self.unit()
    }
    /// Units an image of `size` bytes occupies.
    pub fn units(&self, size: u32) -> u32 {
        size.div_ceil(self.unit())
    }

    fn chunk(&self) -> usize {
        let wu = self.layout.write_unit() as usize;
        (self.buf.len().min(self.unit() as usize) / wu) * wu
    }

    /// Erases the unit at `dst` and copies the unit at `src` into it.
    pub fn copy_unit(&mut self, src: u32, dst: u32) -> Result<(), Error> {
        self.platform.tick();
        let unit = self.unit();
        self.flash
            .erase(dst, dst + unit)
            .map_err(|_| Error::Flash)?;
        let chunk = self.chunk();
        let mut done = 0;
        while done < unit {
            let n = (unit - done).min(chunk as u32) as usize;
            // The source is intact by construction; a read error means damaged flash.
            self.flash
                .read(src + done, &mut self.buf[..n])
                .map_err(|_| Error::Corrupt)?;
            self.flash
                .write(dst + done, &self.buf[..n])
                .map_err(|_| Error::Flash)?;
            done += n as u32;
        }
        Ok(())
    }

    /// Truncated SHA-256 of the unit at `at`; `None` if any part of it is unreadable.
    pub fn digest(&mut self, at: u32) -> Option<[u8; DIGEST_LEN]> {
        let unit = self.unit();
        let chunk = self.chunk();
        let mut h = Sha256::new();
        let mut done = 0;
        while done < unit {
            let n = (unit - done).min(chunk as u32) as usize;
            self.flash.read(at + done, &mut self.buf[..n]).ok()?;
            h.update(&self.buf[..n]);
            done += n as u32;
        }
        let full = h.finalize();
        let mut d = [0u8; DIGEST_LEN];
        d.copy_from_slice(&full[..DIGEST_LEN]);
        Some(d)
    }

    /// Whether the units at `a` and `b` hold the same bytes (unreadable counts as different).
    pub fn same(&mut self, a: u32, b: u32) -> bool {
        let unit = self.unit();
        let wu = self.layout.write_unit() as usize;
        let half = (self.buf.len() / 2 / wu) * wu;
        let mut done = 0;
        while done < unit {
            let n = (unit - done).min(half as u32) as usize;
            let (x, y) = self.buf.split_at_mut(half);
            if self.flash.read(a + done, &mut x[..n]).is_err()
                || self.flash.read(b + done, &mut y[..n]).is_err()
            {
                return false;
            }
            if x[..n] != y[..n] {
                return false;
            }
            done += n as u32;
        }
        true
    }
}

/// One way of installing an update. The engine picks the implementation from the layout;
/// a hardware bank swap or a multi-image variant is another implementation of this trait,
/// with its own record phases (the state format carries an image index and a strategy code).
pub trait Strategy<F: NorFlash, P: Platform> {
    fn kind(&self) -> StrategyKind;
    /// Whether an install can be undone (trial boots).
    fn can_revert(&self) -> bool;
    /// From `Phase::Pending`: bring the verified staged image `new` into the primary slot.
    /// `old` is the verified image in the primary slot, if any. Records what resuming needs
    /// before the first destructive operation.
    fn install(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
        new: &ImageInfo,
        old: Option<&ImageInfo>,
    ) -> Result<(), Error>;
    /// Continue an install from the phase it recorded (`Phase::Swapping`).
    fn resume(&self, ctx: &mut Ctx<'_, F, P>, store: &mut StateStore) -> Result<(), Error>;
    /// From `Phase::Trial`: put the old image back into the primary slot.
    fn revert(&self, ctx: &mut Ctx<'_, F, P>, store: &StateStore) -> Result<(), Error>;
}

/// Swap with revert, "offset" style: the update is staged one unit into the secondary slot,
/// so unit `i` of the update sits in secondary unit `i + 1`. Step `i` saves primary unit `i`
/// (old) into secondary unit `i` (whose update content already moved in step `i - 1`), then
/// copies secondary unit `i + 1` (new) into primary unit `i`. Every primary and secondary unit
/// is erased once per upgrade, no scratch sector is used, identical units are not rewritten,
/// and progress costs no flash writes: it is read back from digests recorded in the plan.
/// A revert copies the old image back from the secondary slot (which it never modifies), so
/// it too resumes from content.
#[derive(Clone, Copy, Debug, Default)]
pub struct Swap;

impl<F: NorFlash, P: Platform> Strategy<F, P> for Swap {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Swap
    }
    fn can_revert(&self) -> bool {
        true
    }

    fn install(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
        new: &ImageInfo,
        old: Option<&ImageInfo>,
    ) -> Result<(), Error> {
        let plan = BootState {
            old_units: old.map_or(0, |o| ctx.units(o.size)) as u16,
            new_units: ctx.units(new.size) as u16,
            ..store.state.next(Phase::Swapping)
        };
        let layout = ctx.layout;
        let (p0, s0, unit) = (ctx.primary(0), ctx.secondary(0), layout.unit());
        store.write(ctx.flash, layout, plan, |flash, set, i| {
            let at = match set {
                DigestSet::Old => p0 + i * unit,
                DigestSet::New => s0 + (i + 1) * unit,
            };
            let mut sub = Ctx {
                flash,
                layout,
                buf: &mut *ctx.buf,
                platform: &mut *ctx.platform,
            };
            sub.digest(at).ok_or(Error::Corrupt)
        })?;
        self.resume(ctx, store)
    }

    fn resume(&self, ctx: &mut Ctx<'_, F, P>, store: &mut StateStore) -> Result<(), Error> {
        if store.state.phase != Phase::Swapping {
            return Err(Error::Corrupt);
        }
        let k_old = u32::from(store.state.old_units);
        let k_new = u32::from(store.state.new_units);
        let k = k_old.max(k_new);
        if k_new > ctx.layout.primary_units() || k_old > ctx.layout.primary_units() {
            return Err(Error::Corrupt);
        }
        // First unit whose end state is not reached yet.
        let mut start = k;
        let (mut start_saved, mut start_placed) = (true, true);
        for i in 0..k {
            let saved = i >= k_old
                || ctx.digest(ctx.secondary(i))
                    == Some(store.digest(ctx.flash, DigestSet::Old, i)?);
            let placed = i >= k_new
                || ctx.digest(ctx.primary(i))
                    == Some(store.digest(ctx.flash, DigestSet::New, i)?);
            if !(saved && placed) {
                (start, start_saved, start_placed) = (i, saved, placed);
                break;
            }
        }
        for i in start..k {
            let old_d = if i < k_old {
                Some(store.digest(ctx.flash, DigestSet::Old, i)?)
            } else {
                None
            };
            let new_d = if i < k_new {
                Some(store.digest(ctx.flash, DigestSet::New, i)?)
            } else {
                None
            };
            let first = i == start;
            if i < k_old && !(first && start_saved) {
                // Saving the old unit needs it intact in the primary slot.
                if first && ctx.digest(ctx.primary(i)) != old_d {
                    return Err(Error::Corrupt);
                }
                ctx.copy_unit(ctx.primary(i), ctx.secondary(i))?;
            }
            let place = if first {
                !start_placed
            } else {
                i < k_new && old_d != new_d
            };
            if place {
                ctx.copy_unit(ctx.secondary(i + 1), ctx.primary(i))?;
            }
        }
        Ok(())
    }

    fn revert(&self, ctx: &mut Ctx<'_, F, P>, store: &StateStore) -> Result<(), Error> {
        for i in 0..u32::from(store.state.old_units).min(ctx.layout.primary_units()) {
            let (p, s) = (ctx.primary(i), ctx.secondary(i));
            if !ctx.same(p, s) {
                ctx.copy_unit(s, p)?;
            }
        }
        Ok(())
    }
}

/// Overwrite (no revert): the verified update in the secondary slot is copied over the
/// primary slot, unit by unit, skipping units that already match. The secondary slot is not
/// touched, so an interrupted copy resumes from content and the update stays available as a
/// backup until the copy is complete and verified (and after).
#[derive(Clone, Copy, Debug, Default)]
pub struct Overwrite;

impl<F: NorFlash, P: Platform> Strategy<F, P> for Overwrite {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Overwrite
    }
    fn can_revert(&self) -> bool {
        false
    }

    fn install(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        _store: &mut StateStore,
        new: &ImageInfo,
        _old: Option<&ImageInfo>,
    ) -> Result<(), Error> {
        for i in 0..ctx.units(new.size).min(ctx.layout.primary_units()) {
            let (p, s) = (ctx.primary(i), ctx.secondary(i));
            if !ctx.same(p, s) {
                ctx.copy_unit(s, p)?;
            }
        }
        Ok(())
    }

    fn resume(&self, _ctx: &mut Ctx<'_, F, P>, _store: &mut StateStore) -> Result<(), Error> {
        Err(Error::Corrupt)
    }

    fn revert(&self, _ctx: &mut Ctx<'_, F, P>, _store: &StateStore) -> Result<(), Error> {
        Err(Error::RevertUnsupported)
    }
}
