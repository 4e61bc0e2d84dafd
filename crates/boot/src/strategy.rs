//! How an update moves into the primary slot: one [`Strategy`] implementation each.
//!
//! Both strategies decide what is left to do from flash *content*, never from per-step
//! progress records: a unit is done when it holds the bytes it should (compared with its
//! source, or with a digest recorded before the first destructive operation). Redoing a step
//! is always safe because a step never destroys data that is not also somewhere else. So a
//! cut anywhere, torn writes and half-erased units included, is repaired by re-running, and
//! an update costs only the erases and writes of the data plus a few state records.
use crate::layout::{Layout, StrategyKind, DIGEST_LEN};
use crate::state::{flash_error, BootState, DigestSet, Phase, StateStore};
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

    /// Bytes of unit `i` an image of `size` bytes uses, rounded up to the write unit: the
    /// only bytes of that unit the strategies read, compare and copy. Whatever follows an
    /// image inside its last unit (a trailer, garbage, a unit that faults on read) is never
    /// touched.
    pub fn span(&self, size: u32, i: u32) -> u32 {
        let wu = self.layout.write_unit();
        let rest = size.saturating_sub(i * self.unit());
        rest.div_ceil(wu).saturating_mul(wu).min(self.unit())
    }

    fn chunk(&self) -> usize {
        let wu = self.layout.write_unit() as usize;
        (self.buf.len().min(self.unit() as usize) / wu) * wu
    }

    /// Erases the unit at `dst` and copies the first `len` bytes of the unit at `src` into it.
    pub fn copy_unit(&mut self, src: u32, dst: u32, len: u32) -> Result<(), Error> {
        self.platform.tick();
        let unit = self.unit();
        self.flash.erase(dst, dst + unit).map_err(flash_error)?;
        let chunk = self.chunk();
        let mut done = 0;
        while done < len.min(unit) {
            let n = (len.min(unit) - done).min(chunk as u32) as usize;
            // The source is intact by construction; a read error means damaged flash.
            self.flash
                .read(src + done, &mut self.buf[..n])
                .map_err(|_| Error::Corrupt)?;
            self.flash
                .write(dst + done, &self.buf[..n])
                .map_err(flash_error)?;
            done += n as u32;
        }
        Ok(())
    }

    /// Truncated SHA-256 of the first `len` bytes of the unit at `at`; `None` if any of
    /// them is unreadable.
    pub fn digest(&mut self, at: u32, len: u32) -> Option<[u8; DIGEST_LEN]> {
        let len = len.min(self.unit());
        let chunk = self.chunk();
        let mut h = Sha256::new();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk as u32) as usize;
            self.flash.read(at + done, &mut self.buf[..n]).ok()?;
            h.update(&self.buf[..n]);
            done += n as u32;
        }
        let full = h.finalize();
        let mut d = [0u8; DIGEST_LEN];
        d.copy_from_slice(&full[..DIGEST_LEN]);
        Some(d)
    }

    /// Whether the first `len` bytes of the units at `a` and `b` are the same (unreadable
    /// counts as different).
    pub fn same(&mut self, a: u32, b: u32, len: u32) -> bool {
        let len = len.min(self.unit());
        let wu = self.layout.write_unit() as usize;
        let half = (self.buf.len() / 2 / wu) * wu;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(half as u32) as usize;
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
            };
            let len = sub.span(size, i);
            sub.digest(at, len).ok_or(Error::Corrupt)
        })?;
        self.resume(ctx, store)
    }

    fn resume(&self, ctx: &mut Ctx<'_, F, P>, store: &mut StateStore) -> Result<(), Error> {
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

    fn revert(&self, ctx: &mut Ctx<'_, F, P>, store: &StateStore) -> Result<(), Error> {
        let old_size = store.state.old_size;
        for i in 0..ctx.units(old_size).min(ctx.layout.primary_units()) {
            let (p, s, len) = (ctx.primary(i), ctx.secondary(i), ctx.span(old_size, i));
            if !ctx.same(p, s, len) {
                ctx.copy_unit(s, p, len)?;
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
            let (p, s, len) = (ctx.primary(i), ctx.secondary(i), ctx.span(new.size, i));
            if !ctx.same(p, s, len) {
                ctx.copy_unit(s, p, len)?;
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
