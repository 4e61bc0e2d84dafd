//! How an update moves into the primary slot: the [`Strategy`] trait, one file per strategy,
//! and the one registration list ([`StrategyKind`]) the layout and both sides dispatch on.
//!
//! Every strategy decides what is left to do from flash *content*, never from per-step
//! progress records: a unit is done when it holds the bytes it should (compared with its
//! source, or with a digest recorded before the first destructive operation). Redoing a step
//! is always safe because a step never destroys data that is not also somewhere else. So a
//! cut anywhere, torn writes and half-erased units included, is repaired by re-running, and
//! an update costs only the erases and writes of the data plus a few state records.
//!
//! Adding a strategy: a new file here implementing [`Strategy`], its `mod` line below, and
//! its line in the `strategies!` list at the end of this file. (The `mod` lines stay plain,
//! outside the macro, so tools that read the module tree, `cargo mutants` among them, see
//! the strategy files.)
use crate::layout::{Layout, LayoutError, LayoutSpec, Region, DIGEST_LEN};
use crate::state::{flash_error, StateStore};
use crate::{Error, ImageInfo, Platform};
use brickless_flash::{BankSwap as BankSwapFlash, Geometry};
use embedded_storage::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

/// The bank-swap controls of a flash that has them ([`brickless_flash::BankSwap`]), kept as
/// function pointers so the engine's types need no extra bound for flashes without them.
pub struct BankOps<F> {
    swapped: fn(&mut F) -> Result<bool, Error>,
    at_reset: fn(&mut F) -> Result<bool, Error>,
    set: fn(&mut F, bool) -> Result<(), Error>,
}

impl<F> Clone for BankOps<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for BankOps<F> {}

impl<F: BankSwapFlash> BankOps<F> {
    /// The controls of `F`.
    pub fn of() -> Self {
        BankOps {
            swapped: |f| f.banks_swapped().map_err(flash_error),
            at_reset: |f| f.swap_at_reset().map_err(flash_error),
            set: |f, on| f.set_swap_at_reset(on).map_err(flash_error),
        }
    }
}

impl<F> BankOps<F> {
    /// Whether bank 2 is mapped at the base now.
    pub fn swapped(&self, flash: &mut F) -> Result<bool, Error> {
        (self.swapped)(flash)
    }
    /// Whether the option bytes select bank 2 for the next reset.
    pub fn swap_at_reset(&self, flash: &mut F) -> Result<bool, Error> {
        (self.at_reset)(flash)
    }
    /// Programs the option bytes for the next reset.
    pub fn set_swap_at_reset(&self, flash: &mut F, on: bool) -> Result<(), Error> {
        (self.set)(flash, on)
    }
}

/// Flash, layout, copy buffer and platform hooks, borrowed for one piece of work.
pub struct Ctx<'a, F, P> {
    /// The flash holding the slots and the state (addressed by `NorFlash` offset).
    pub flash: &'a mut F,
    /// The checked layout.
    pub layout: &'a Layout,
    /// The copy buffer: at least two write units and a multiple of the write unit.
    pub buf: &'a mut [u8],
    /// Board hooks, called before every erase and copied unit.
    pub platform: &'a mut P,
    /// The flash's bank-swap controls, when it has them.
    pub banks: Option<BankOps<F>>,
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
        self.copy_span(src, dst, self.unit(), len.min(self.unit()))
    }

    /// Erases `erase` bytes (whole sectors) at `dst` and copies `len` bytes from `src` there.
    pub fn copy_span(&mut self, src: u32, dst: u32, erase: u32, len: u32) -> Result<(), Error> {
        self.platform.tick();
        self.flash.erase(dst, dst + erase).map_err(flash_error)?;
        let chunk = self.chunk();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk as u32) as usize;
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
        self.same_span(a, b, len.min(self.unit()))
    }

    /// Whether `len` bytes at `a` and `b` are the same (unreadable counts as different).
    pub fn same_span(&mut self, a: u32, b: u32, len: u32) -> bool {
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

    /// Copies the first `size` bytes of the secondary slot over the primary slot, unit by
    /// unit, skipping units that already match: the secondary slot is only read, so the copy
    /// resumes from content.
    pub fn copy_secondary_to_primary(&mut self, size: u32) -> Result<(), Error> {
        for i in 0..self.units(size).min(self.layout.primary_units()) {
            let (p, s, len) = (self.primary(i), self.secondary(i), self.span(size, i));
            if !self.same(p, s, len) {
                self.copy_unit(s, p, len)?;
            }
        }
        Ok(())
    }
}

/// One way of installing an update: where the application stages it, how much room it
/// needs, what it records while it moves, how it resumes and how it reverts. The layout
/// names one ([`StrategyKind`]); the bootloader runs it, the application side only asks
/// where to stage and whether a trial is possible.
pub trait Strategy {
    /// Lower-case name used on the command line, in TOML and in JSON.
    fn name(&self) -> &'static str;
    /// The code state records carry (a record of another strategy is not this layout's).
    /// Never reuse one: it is part of the on-flash format.
    fn code(&self) -> u8;
    /// Whether its `Swapping` records carry a digest per unit (part of the record format).
    fn plan_digests(&self) -> bool;
    /// Rules of its own a layout must follow, beyond the common ones.
    fn check_layout(&self, spec: &LayoutSpec, geometry: &Geometry) -> Result<(), LayoutError>;
    /// Whether an install can be undone (trial boots and reverts).
    fn can_revert(&self) -> bool;
    /// Where the application stages an update (absolute region).
    fn staging(&self, spec: &LayoutSpec) -> Region;
    /// The space rule: the smallest secondary slot that lets an image fill a primary slot
    /// of `primary` bytes, with units of `unit` bytes.
    fn secondary_size(&self, primary: u32, unit: u32) -> u32;
    /// Where a revert copies the old image from (its header at the region's start), or
    /// `None` when this strategy keeps no old image.
    fn revert_source(&self, spec: &LayoutSpec) -> Option<Region>;
    /// From `Phase::Pending`: bring the verified staged image `new` into the primary slot.
    /// `old` is the verified image in the primary slot, if any. Records the plan resuming
    /// needs (phase `Swapping`) before the first destructive operation, if it needs one.
    fn install<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
        new: &ImageInfo,
        old: Option<&ImageInfo>,
    ) -> Result<(), Error>;
    /// Continue an install from the plan it recorded (`Phase::Swapping`).
    fn resume<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
    ) -> Result<(), Error>;
    /// From `Phase::Trial`: put the old image back into the primary slot. It may record the
    /// `Idle` state itself (bank swap: the mapping to restore); otherwise the caller does.
    fn revert<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        store: &mut StateStore,
    ) -> Result<(), Error>;
}

/// Declares the strategy modules and builds [`StrategyKind`] from them: one line per
/// strategy, `module::Type`, the type implementing [`Strategy`] as a unit struct.
macro_rules! strategies {
    ($($module:ident::$ty:ident),+ $(,)?) => {
        $(pub use $module::$ty;)+

        /// The strategies a layout can name (the registration list: one variant per file
        /// in `strategy/`). Each method hands over to the strategy's own file.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum StrategyKind {
            $(#[doc = concat!("[`", stringify!($ty), "`]")] $ty,)+
        }

        impl StrategyKind {
            /// Every registered strategy, in registration order.
            pub const ALL: [StrategyKind; [$(stringify!($ty)),+].len()] =
                [$(StrategyKind::$ty),+];
        }

        impl Strategy for StrategyKind {
            fn name(&self) -> &'static str {
                match self { $(StrategyKind::$ty => $ty.name(),)+ }
            }
            fn code(&self) -> u8 {
                match self { $(StrategyKind::$ty => $ty.code(),)+ }
            }
            fn plan_digests(&self) -> bool {
                match self { $(StrategyKind::$ty => $ty.plan_digests(),)+ }
            }
            fn check_layout(&self, spec: &LayoutSpec, geometry: &Geometry) -> Result<(), LayoutError> {
                match self { $(StrategyKind::$ty => $ty.check_layout(spec, geometry),)+ }
            }
            fn can_revert(&self) -> bool {
                match self { $(StrategyKind::$ty => $ty.can_revert(),)+ }
            }
            fn staging(&self, spec: &LayoutSpec) -> Region {
                match self { $(StrategyKind::$ty => $ty.staging(spec),)+ }
            }
            fn secondary_size(&self, primary: u32, unit: u32) -> u32 {
                match self { $(StrategyKind::$ty => $ty.secondary_size(primary, unit),)+ }
            }
            fn revert_source(&self, spec: &LayoutSpec) -> Option<Region> {
                match self { $(StrategyKind::$ty => $ty.revert_source(spec),)+ }
            }
            fn install<F: NorFlash, P: Platform>(
                &self,
                ctx: &mut Ctx<'_, F, P>,
                store: &mut StateStore,
                new: &ImageInfo,
                old: Option<&ImageInfo>,
            ) -> Result<(), Error> {
                match self { $(StrategyKind::$ty => $ty.install(ctx, store, new, old),)+ }
            }
            fn resume<F: NorFlash, P: Platform>(
                &self,
                ctx: &mut Ctx<'_, F, P>,
                store: &mut StateStore,
            ) -> Result<(), Error> {
                match self { $(StrategyKind::$ty => $ty.resume(ctx, store),)+ }
            }
            fn revert<F: NorFlash, P: Platform>(
                &self,
                ctx: &mut Ctx<'_, F, P>,
                store: &mut StateStore,
            ) -> Result<(), Error> {
                match self { $(StrategyKind::$ty => $ty.revert(ctx, store),)+ }
            }
        }
    };
}

impl StrategyKind {
    /// Lower-case name used on the command line, in TOML and in JSON (callers need not
    /// import [`Strategy`]).
    pub fn name(self) -> &'static str {
        Strategy::name(&self)
    }

    /// Parses [`StrategyKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Whether this strategy can give an update a trial boot and revert it.
    pub fn can_revert(self) -> bool {
        Strategy::can_revert(&self)
    }

    /// Whether a part with this geometry can run the strategy (bank swap needs two banks it
    /// can swap; the others run anywhere).
    pub fn available_on(self, geometry: &Geometry) -> bool {
        self != StrategyKind::BankSwap || geometry.bank_mirror().is_some()
    }

    /// Whether its `Swapping` records carry unit digests.
    pub fn plan_digests(self) -> bool {
        Strategy::plan_digests(&self)
    }
}

mod bank_swap;
mod overwrite;
mod swap;

// The registration list.
strategies! {
    swap::Swap,
    overwrite::Overwrite,
    bank_swap::BankSwap,
}

#[cfg(test)]
mod tests {
    use super::{Strategy, StrategyKind};

    #[test]
    fn names_and_record_codes_are_unique() {
        for (i, a) in StrategyKind::ALL.iter().enumerate() {
            for b in &StrategyKind::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(Strategy::code(a), Strategy::code(b));
            }
            assert_eq!(StrategyKind::from_name(a.name()), Some(*a));
        }
    }
}
