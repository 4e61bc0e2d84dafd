//! MCUboot's image trailer: the second way an application asks for an update and confirms
//! itself, so an MCUboot-built application (Zephyr's `boot_request_upgrade`,
//! `boot_write_img_confirmed`, `boot_is_img_confirmed`) runs unchanged on brickless.
//!
//! Only the fields those calls use are read or written: magic, image_ok, copy_done and
//! swap_info, at the end of a slot, with `A` = BOOT_MAX_ALIGN = the write unit but at least 8
//! (MCUboot's swap modes need 8..=32):
//!
//! | field | offset in a slot of `S` bytes | written |
//! |---|---|---|
//! | magic | `S - 16` | a chunk of `align_up(16, A)` at `align_down(S - 16, A)`, erased value first |
//! | image_ok | `align_down(S - 16 - A, A)` | 1 byte + erased value to the write unit |
//! | copy_done | image_ok - A | likewise |
//! | swap_info | copy_done - A | likewise: swap type in the low nibble, image number high |
//!
//! A flag is set (0x01), unset (the erased value) or bad (anything else, or unreadable). The
//! MCUboot secondary slot is the layout's staging area ([`Layout::staging`]), the primary slot
//! the layout's primary. The state log (`state.rs`) stays the source of truth: a request in
//! the staging trailer becomes an ordinary `Pending` record, a trial confirmed in the primary
//! trailer is kept like [`crate::Updater::confirm`] keeps it, and after an install the primary
//! trailer is written as MCUboot leaves it, for the application to read.
//!
//! An image that reaches [`Trailer::start`] has no trailer: its bytes there are never read as
//! one (only a good magic counts, and the primary trailer is neither written nor read when the
//! installed image reaches it). Reads never fail: an unreadable (torn, ECC-faulting) field is
//! bad, never good.
use crate::layout::Layout;
use crate::slots::Slots;
use crate::state::{flash_error, BootState, Phase, StateStore};
use crate::strategy::Strategy;
use crate::{Error, ImageCheck};
use brickless_image::trailer::{boot_magic, swap_type as code, TrailerOffsets};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

/// Bytes of the magic.
pub const MAGIC_LEN: u32 = 16;

/// A flag's "set" value.
pub const FLAG_SET: u8 = 0x01;

/// The largest BOOT_MAX_ALIGN MCUboot accepts (and the largest write unit handled here).
pub const MAX_ALIGN: u32 = 32;

/// BOOT_MAX_ALIGN for a write unit: the write unit, at least 8.
pub fn max_align(write_unit: u32) -> u32 {
    write_unit.max(8)
}

/// The magic as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// The magic for this alignment.
    Good,
    /// All erased.
    Unset,
    /// Anything else, or unreadable.
    Bad,
}

/// A one-byte flag as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// 0x01.
    Set,
    /// The erased value.
    Unset,
    /// Anything else, or unreadable.
    Bad,
}

/// MCUboot's swap types (the values swap_info carries in its low nibble).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapType {
    /// Nothing to do.
    None,
    /// Install for one trial boot (2).
    Test,
    /// Install for good (3).
    Perm,
    /// Put the previous image back (4).
    Revert,
}

impl SwapType {
    /// The value swap_info carries in its low nibble (`None` has none).
    pub fn code(self) -> Option<u8> {
        match self {
            SwapType::None => None,
            SwapType::Test => Some(code::TEST),
            SwapType::Perm => Some(code::PERM),
            SwapType::Revert => Some(code::REVERT),
        }
    }

    /// The swap_info byte for this type and image number (`None` for [`SwapType::None`]).
    pub fn swap_info(self, image: u8) -> Option<u8> {
        Some(self.code()? | (image << 4))
    }
}

/// The fields of one slot's trailer, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    /// The magic.
    pub magic: Magic,
    /// The image is confirmed (primary) or the request is permanent (secondary).
    pub image_ok: Flag,
    /// The bootloader finished copying an image into this slot.
    pub copy_done: Flag,
    /// The swap_info byte; `None` when erased or unreadable.
    pub swap_info: Option<u8>,
    /// Every write unit of these four fields reads back erased.
    pub blank: bool,
}

/// What the application-facing calls would see: Zephyr's `boot_is_img_confirmed()` on the
/// primary trailer. An unset magic counts as confirmed (a factory-programmed image).
pub fn is_confirmed(primary: &Fields) -> bool {
    primary.magic == Magic::Unset || primary.image_ok == Flag::Set
}

/// What the secondary trailer asks for: table rows 2 (magic good, image_ok unset: `Test`)
/// and 3 (magic good, image_ok set: `Perm`); anything else asks for nothing.
pub fn request(secondary: &Fields) -> SwapType {
    match (secondary.magic, secondary.image_ok) {
        (Magic::Good, Flag::Unset) => SwapType::Test,
        (Magic::Good, Flag::Set) => SwapType::Perm,
        _ => SwapType::None,
    }
}

/// MCUboot's swap-type table (rows 2 to 5, in order; row 1 is swap-offset's own).
pub fn swap_type(primary: &Fields, secondary: &Fields) -> SwapType {
    match request(secondary) {
        SwapType::None => {}
        asked => return asked,
    }
    // Row 4: primary magic good, image_ok unset, copy_done set. Else row 5.
    if primary.magic == Magic::Good
        && primary.image_ok == Flag::Unset
        && primary.copy_done == Flag::Set
    {
        SwapType::Revert
    } else {
        SwapType::None
    }
}

/// Where a slot's trailer fields sit (`NorFlash` offsets) and how they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    start: u32,
    size: u32,
    write_unit: u32,
    align: u32,
    erased: u8,
    offsets: TrailerOffsets,
}

impl Trailer {
    /// The trailer of the slot of `size` bytes at flash offset `start`. `None` when MCUboot
    /// has no trailer for it: a write unit above 32 (or not a power of two), or a slot that is
    /// not a whole number of `A`-byte blocks or too small for the four fields.
    pub fn new(start: u32, size: u32, write_unit: u32, erased: u8) -> Option<Trailer> {
        let align = max_align(write_unit);
        if !write_unit.is_power_of_two() || size % align != 0 {
            return None;
        }
        // Checks the alignment (8, 16 or 32) and that the fields fit.
        let offsets = TrailerOffsets::new(size, align)?;
        Some(Trailer {
            start,
            size,
            write_unit,
            align,
            erased,
            offsets,
        })
    }

    /// The primary slot's trailer (what an MCUboot-built application reads and confirms in).
    pub fn primary(layout: &Layout) -> Option<Trailer> {
        let r = layout.spec().primary;
        Trailer::new(
            layout.offset(r.start),
            r.size,
            layout.write_unit(),
            layout.erased(),
        )
    }

    /// The staging area's trailer: the MCUboot secondary slot, where an application asks for
    /// an update.
    pub fn staging(layout: &Layout) -> Option<Trailer> {
        let r = layout.staging();
        Trailer::new(
            layout.offset(r.start),
            r.size,
            layout.write_unit(),
            layout.erased(),
        )
    }

    /// BOOT_MAX_ALIGN.
    pub fn max_align(&self) -> u32 {
        self.align
    }

    /// The magic this trailer carries when good.
    pub fn magic(&self) -> [u8; 16] {
        boot_magic(self.align)
    }

    /// Offset of the magic's write chunk (the magic ends the slot; the chunk starts with the
    /// erased value when A is 32).
    pub fn magic_chunk(&self) -> u32 {
        self.start + self.offsets.magic / self.align * self.align
    }

    /// Length of the magic's write chunk: 16 rounded up to A.
    pub fn magic_chunk_len(&self) -> u32 {
        MAGIC_LEN.next_multiple_of(self.align)
    }

    /// Offset of image_ok.
    pub fn image_ok(&self) -> u32 {
        self.start + self.offsets.image_ok
    }

    /// Offset of copy_done.
    pub fn copy_done(&self) -> u32 {
        self.start + self.offsets.copy_done
    }

    /// Offset of swap_info: the trailer's first byte as far as this engine is concerned.
    pub fn swap_info(&self) -> u32 {
        self.start + self.offsets.swap_info
    }

    /// The first byte of the trailer (swap_info).
    pub fn start(&self) -> u32 {
        self.swap_info()
    }

    /// One past the slot's last byte.
    pub fn end(&self) -> u32 {
        self.start + self.size
    }

    /// Whether an image of `size` bytes at the slot's start (rounded up to the write unit, as
    /// it is programmed) ends before the trailer. One that does not has no trailer.
    pub fn clear_of(&self, size: u32) -> bool {
        size.div_ceil(self.write_unit)
            .checked_mul(self.write_unit)
            .is_some_and(|end| end <= self.start() - self.start)
    }

    /// Reads the four fields. Never fails: unreadable means bad.
    pub fn read<F: ReadNorFlash>(&self, flash: &mut F) -> Fields {
        let mut blank = true;
        let mut chunk = [0u8; MAX_ALIGN as usize];
        let len = self.magic_chunk_len() as usize;
        let magic = match flash.read(self.magic_chunk(), &mut chunk[..len]) {
            Ok(()) => {
                blank &= chunk[..len].iter().all(|&b| b == self.erased);
                let m = &chunk[len - MAGIC_LEN as usize..len];
                if m == self.magic() {
                    Magic::Good
                } else if m.iter().all(|&b| b == self.erased) {
                    Magic::Unset
                } else {
                    Magic::Bad
                }
            }
            Err(_) => {
                blank = false;
                Magic::Bad
            }
        };
        let mut byte = |at: u32| {
            let unit = &mut chunk[..self.write_unit as usize];
            match flash.read(at, unit) {
                Ok(()) => {
                    blank &= unit.iter().all(|&b| b == self.erased);
                    Some(unit[0])
                }
                Err(_) => {
                    blank = false;
                    None
                }
            }
        };
        let image_ok = self.flag(byte(self.image_ok()));
        let copy_done = self.flag(byte(self.copy_done()));
        let swap_info = byte(self.swap_info()).filter(|&b| b != self.erased);
        Fields {
            magic,
            image_ok,
            copy_done,
            swap_info,
            blank,
        }
    }

    fn flag(&self, byte: Option<u8>) -> Flag {
        match byte {
            Some(FLAG_SET) => Flag::Set,
            Some(b) if b == self.erased => Flag::Unset,
            _ => Flag::Bad,
        }
    }

    /// Writes the magic as MCUboot does: one chunk of `align_up(16, A)` bytes, the erased
    /// value first. The chunk's units must be erased.
    pub fn write_magic<F: NorFlash>(&self, flash: &mut F) -> Result<(), F::Error> {
        let len = self.magic_chunk_len() as usize;
        let mut chunk = [self.erased; MAX_ALIGN as usize];
        chunk[len - MAGIC_LEN as usize..len].copy_from_slice(&self.magic());
        flash.write(self.magic_chunk(), &chunk[..len])
    }

    /// Writes one byte at a field's offset (`image_ok`, `copy_done`, `swap_info`), padded
    /// with the erased value to the write unit, as MCUboot does. Its unit must be erased.
    pub fn write_byte<F: NorFlash>(
        &self,
        flash: &mut F,
        at: u32,
        value: u8,
    ) -> Result<(), F::Error> {
        let mut unit = [self.erased; MAX_ALIGN as usize];
        unit[0] = value;
        flash.write(at, &unit[..self.write_unit as usize])
    }

    /// The sectors holding the trailer's fields, as one erasable range of flash offsets.
    fn sectors(&self, layout: &Layout) -> (u32, u32) {
        let first = layout
            .geometry()
            .sectors()
            .map(|s| (layout.offset(s.addr), s.size))
            .find(|&(at, size)| at <= self.start() && self.start() < at + size)
            .map_or(self.start(), |(at, _)| at);
        (first, self.end())
    }

    /// Writes `want` into a blank trailer, most telling field first: with the magic written,
    /// an unfinished trailer still reads "not confirmed" and takes the application's confirm.
    fn program<F: NorFlash>(&self, flash: &mut F, want: &Fields) {
        // Refusals are ignored here and caught by reading back (a unit programmed with the
        // erased value by a factory tool reads blank but refuses, or poisons, a second program).
        let _ = self.write_magic(flash);
        if want.image_ok == Flag::Set {
            let _ = self.write_byte(flash, self.image_ok(), FLAG_SET);
        }
        if want.copy_done == Flag::Set {
            let _ = self.write_byte(flash, self.copy_done(), FLAG_SET);
        }
        if let Some(info) = want.swap_info {
            let _ = self.write_byte(flash, self.swap_info(), info);
        }
    }
}

/// Whether `fields` say what the application and the engine read in `want`: a good magic
/// and image_ok (copy_done and swap_info are MCUboot's own bookkeeping).
fn reads_right(fields: &Fields, want: &Fields) -> bool {
    fields.magic == Magic::Good && fields.image_ok == want.image_ok
}

/// Whether the flash offsets `a` and `b` (half-open ranges) share a byte.
fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn erase<F: NorFlash>(flash: &mut F, (from, to): (u32, u32)) -> Result<(), Error> {
    flash.erase(from, to).map_err(flash_error)
}

// ---- engine hooks (called by `bootloader.rs`) ---------------------------------------------

/// `Phase::Idle`: an MCUboot request in the staging trailer (table rows 2 and 3) becomes a
/// `Pending` record, then is handled like [`crate::Updater::request_upgrade`]. Returns whether
/// it recorded one. `taken` says a request already ran (or was refused) in this boot, or an
/// update was in flight when it started: a staging trailer still holding a good magic then
/// belongs to that request, and is erased so it cannot run again (in `Idle` nothing in flight
/// needs the staging area).
///
/// A test request on a strategy that cannot revert is installed for good, as MCUboot's
/// overwrite-only build does with it.
pub(crate) fn take_request<F: NorFlash, C>(
    slots: &mut Slots<F, C>,
    store: &mut StateStore,
    taken: &mut bool,
) -> Result<bool, Error> {
    let Some(t) = Trailer::staging(&slots.layout) else {
        return Ok(false);
    };
    let fields = t.read(&mut slots.flash);
    if fields.magic != Magic::Good {
        return Ok(false);
    }
    if *taken {
        erase(&mut slots.flash, t.sectors(&slots.layout))?;
        return Ok(false);
    }
    if fields.copy_done == Flag::Set {
        // No application writes copy_done: this is a primary trailer a bank flip mapped into
        // the staging area (MCUboot's swap-offset table reads it so too).
        return Ok(false);
    }
    let permanent = match request(&fields) {
        SwapType::Perm => true,
        SwapType::Test => !slots.layout.strategy().can_revert(),
        // A good magic with a garbled image_ok asks for nothing (row 5).
        _ => return Ok(false),
    };
    *taken = true;
    let next = BootState {
        permanent,
        ..store.state.next(Phase::Pending)
    };
    slots.record(store, next)?;
    Ok(true)
}

/// After an install, before its outcome is recorded: writes the primary trailer as MCUboot
/// leaves it (magic, copy_done, swap_info TEST or PERM, and image_ok for a permanent
/// install), then, for a trial, retires the staging request, so the revert cannot meet it
/// again. Returns `false` when the install must run again first (see below). Nothing here
/// stops the boot but a failing erase: a refused program leaves the trailer as it is, and
/// the record that follows reports a power loss.
///
/// A trailer that already reads right for the application (a good magic, image_ok as
/// wanted: what `boot_is_img_confirmed` and the trial's confirmation look at) is left as it
/// is. Otherwise the trailer goes only into units the engine erased. When the installed
/// image does not reach the trailer's sector, that sector holds nothing the engine still
/// needs (the old image is in the revert source) and is erased here if not blank. When the
/// image reaches it, the copy erased the image's last unit and programmed only the image's
/// bytes, so the trailer is blank, unless a cut tore the trailer's write or the copy skipped
/// that unit as identical (the same image again, under a trailer saying confirmed): then the
/// sector is erased and `false` returned, and the install, still recorded, puts the image's
/// bytes back from the staging area (which is why the request is retired only afterwards).
/// A strategy that copies nothing (bank swap: the staged bank is mapped in, trailer and all)
/// could not put them back: there the trailer is left as it is.
pub(crate) fn mark_installed<F: NorFlash, C>(
    slots: &mut Slots<F, C>,
    store: &StateStore,
    size: u32,
    trial: bool,
) -> Result<bool, Error> {
    if let Some(t) = Trailer::primary(&slots.layout).filter(|t| t.clear_of(size)) {
        let swap = if trial {
            SwapType::Test
        } else {
            SwapType::Perm
        };
        let want = Fields {
            magic: Magic::Good,
            image_ok: if trial { Flag::Unset } else { Flag::Set },
            copy_done: Flag::Set,
            swap_info: swap.swap_info(store.state.image),
            blank: false,
        };
        // Whether the recorded install, run again, copies the image's end back from the
        // staging area: `Pending` copies afresh (overwrite), a plan with unit digests resumes
        // from content (swap); a bank flip copies nothing.
        let strategy = slots.layout.strategy();
        let recopies = match store.state.phase {
            Phase::Pending => true,
            Phase::Swapping => strategy.plan_digests(),
            _ => false,
        };
        if !write_primary(slots, &t, size, &want, recopies)? {
            return Ok(false);
        }
    }
    if trial {
        retire_request(slots, store)?;
    }
    Ok(true)
}

/// Writes `want` into the primary trailer (see [`mark_installed`]); `false`: the sector was
/// erased under the image's end, the install must run again (only when it `recopies`).
fn write_primary<F: NorFlash, C>(
    slots: &mut Slots<F, C>,
    t: &Trailer,
    size: u32,
    want: &Fields,
    recopies: bool,
) -> Result<bool, Error> {
    let sectors = t.sectors(&slots.layout);
    let flash = &mut slots.flash;
    let fields = t.read(flash);
    if reads_right(&fields, want) {
        return Ok(true); // written before a cut, or by the application itself
    }
    let erasable = sectors.0 >= t.start + size;
    if !fields.blank {
        if !erasable && !recopies {
            return Ok(true);
        }
        erase(flash, sectors)?;
        if !erasable {
            return Ok(false);
        }
    }
    t.program(flash, want);
    if erasable && !reads_right(&t.read(flash), want) {
        // A unit refused or was poisoned (programmed before by a factory tool): once more,
        // freshly erased.
        erase(flash, sectors)?;
        t.program(flash, want);
    }
    Ok(true)
}

/// After a permanent install is recorded (or whenever the staging area is no longer needed):
/// erases the sectors holding the staging trailer if it still carries a good magic, so the
/// request does not run again. Never erases the old image a revert needs.
pub(crate) fn retire_request<F: NorFlash, C>(
    slots: &mut Slots<F, C>,
    store: &StateStore,
) -> Result<(), Error> {
    let layout = slots.layout;
    let Some(t) = Trailer::staging(&layout) else {
        return Ok(());
    };
    if t.read(&mut slots.flash).magic != Magic::Good {
        return Ok(());
    }
    let sectors = t.sectors(&layout);
    if let Some(r) = layout.strategy().revert_source(layout.spec()) {
        let start = layout.offset(r.start);
        if store.state.old_size > 0 && overlaps(sectors, (start, start + store.state.old_size)) {
            return Ok(());
        }
    }
    erase(&mut slots.flash, sectors)
}

/// `Phase::Trial`: the trial image confirmed itself in the primary trailer (MCUboot's
/// `boot_set_confirmed` writes image_ok). Kept like [`crate::Updater::confirm`] keeps it (the
/// floor raised); returns whether it was. Counts only with a good magic, in a trailer the
/// trial image does not reach, and while the primary slot holds the trial image (verified,
/// bootable, of the recorded size).
pub(crate) fn confirmed<F: NorFlash, C: ImageCheck<F>>(
    slots: &mut Slots<F, C>,
    store: &mut StateStore,
    buf: &mut [u8],
) -> Result<bool, Error> {
    let Some(t) = Trailer::primary(&slots.layout) else {
        return Ok(false);
    };
    let state = store.state;
    if !t.clear_of(state.new_size) {
        return Ok(false);
    }
    let fields = t.read(&mut slots.flash);
    if fields.magic != Magic::Good || fields.image_ok != Flag::Set {
        return Ok(false);
    }
    let running = slots
        .check_primary()
        .filter(|p| p.size == state.new_size && slots.bootable(p, &state));
    match running {
        Some(img) => {
            slots.keep(store, &img, buf)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Before a revert: the primary trailer of the rejected trial is erased when the image the
/// revert restores does not reach its sector, so neither the restored image nor, after a
/// bank swap flips back, the staging area carries it (an unset magic reads as confirmed, as
/// for a factory image). Where the restored image reaches it, the revert's copy rewrites it.
pub(crate) fn mark_reverted<F: NorFlash, C>(
    slots: &mut Slots<F, C>,
    state: &BootState,
) -> Result<(), Error> {
    let Some(t) = Trailer::primary(&slots.layout) else {
        return Ok(());
    };
    let sectors = t.sectors(&slots.layout);
    if sectors.0 < t.start + state.old_size || t.read(&mut slots.flash).blank {
        return Ok(());
    }
    erase(&mut slots.flash, sectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(magic: Magic, image_ok: Flag, copy_done: Flag) -> Fields {
        Fields {
            magic,
            image_ok,
            copy_done,
            swap_info: None,
            blank: false,
        }
    }

    #[test]
    fn offsets_follow_the_reference_examples() {
        // A = 8: magic S-16, image_ok S-24, copy_done S-32, swap_info S-40.
        let t = Trailer::new(0x1000, 0x800, 8, 0xFF).unwrap();
        let s = 0x1800;
        assert_eq!(
            (t.magic_chunk(), t.magic_chunk_len(), t.image_ok()),
            (s - 16, 16, s - 24)
        );
        assert_eq!((t.copy_done(), t.swap_info()), (s - 32, s - 40));
        // A = 32 (H7): the magic chunk is the flash word S-32..S, then S-64, S-96, S-128.
        let t = Trailer::new(0, 0x2_0000, 32, 0xFF).unwrap();
        let s = 0x2_0000;
        assert_eq!((t.magic_chunk(), t.magic_chunk_len()), (s - 32, 32));
        assert_eq!(
            (t.image_ok(), t.copy_done(), t.swap_info()),
            (s - 64, s - 96, s - 128)
        );
        // A = 16.
        let t = Trailer::new(0, 0x2000, 16, 0xFF).unwrap();
        assert_eq!(
            (t.magic_chunk(), t.image_ok(), t.copy_done(), t.swap_info()),
            (0x2000 - 16, 0x2000 - 32, 0x2000 - 48, 0x2000 - 64)
        );
        // A write unit of 4 still uses A = 8.
        let t = Trailer::new(0, 0x800, 4, 0x00).unwrap();
        assert_eq!((t.max_align(), t.swap_info()), (8, 0x800 - 40));
    }

    #[test]
    fn the_magic_follows_the_alignment() {
        let m = |wu| Trailer::new(0, 0x800, wu, 0xFF).unwrap().magic();
        assert_eq!(m(4)[..4], [0x77, 0xc2, 0x95, 0xf3]);
        assert_eq!(m(8), m(4));
        assert_eq!(m(16)[..4], [0x10, 0x00, 0x2d, 0xe1]);
        assert_eq!(m(32)[..4], [0x20, 0x00, 0x2d, 0xe1]);
        assert_eq!(m(32)[2..], m(16)[2..]);
    }

    #[test]
    fn slots_mcuboot_cannot_describe_have_no_trailer() {
        assert!(Trailer::new(0, 0x800, 64, 0xFF).is_none());
        assert!(Trailer::new(0, 0x800, 12, 0xFF).is_none());
        assert!(Trailer::new(0, 0x804, 8, 0xFF).is_none());
        assert!(Trailer::new(0, 40, 8, 0xFF).is_none());
        assert!(Trailer::new(0, 48, 8, 0xFF).is_some());
    }

    #[test]
    fn an_image_must_end_before_swap_info() {
        let t = Trailer::new(0x100, 0x800, 8, 0xFF).unwrap();
        assert!(t.clear_of(0x800 - 40));
        assert!(!t.clear_of(0x800 - 39));
        assert!(!t.clear_of(u32::MAX));
    }

    #[test]
    fn the_swap_type_table_in_order() {
        let none = fields(Magic::Unset, Flag::Unset, Flag::Unset);
        let good = |ok| fields(Magic::Good, ok, Flag::Unset);
        let trial = fields(Magic::Good, Flag::Unset, Flag::Set);
        // Rows 2 and 3 win over row 4.
        assert_eq!(swap_type(&trial, &good(Flag::Unset)), SwapType::Test);
        assert_eq!(swap_type(&trial, &good(Flag::Set)), SwapType::Perm);
        assert_eq!(swap_type(&trial, &none), SwapType::Revert);
        assert_eq!(swap_type(&trial, &good(Flag::Bad)), SwapType::Revert);
        // Row 5: a confirmed trial, no copy_done, a bad magic.
        let kept = fields(Magic::Good, Flag::Set, Flag::Set);
        assert_eq!(swap_type(&kept, &none), SwapType::None);
        assert_eq!(
            swap_type(&fields(Magic::Good, Flag::Unset, Flag::Unset), &none),
            SwapType::None
        );
        let bad = fields(Magic::Bad, Flag::Unset, Flag::Set);
        assert_eq!(swap_type(&bad, &bad), SwapType::None);
        assert_eq!(swap_type(&none, &good(Flag::Bad)), SwapType::None);
    }

    #[test]
    fn zephyr_reads_an_unset_magic_as_confirmed() {
        assert!(is_confirmed(&fields(
            Magic::Unset,
            Flag::Unset,
            Flag::Unset
        )));
        assert!(!is_confirmed(&fields(Magic::Good, Flag::Unset, Flag::Set)));
        assert!(is_confirmed(&fields(Magic::Good, Flag::Set, Flag::Set)));
        assert!(!is_confirmed(&fields(Magic::Bad, Flag::Bad, Flag::Set)));
    }

    #[test]
    fn swap_info_carries_type_and_image() {
        assert_eq!(SwapType::Test.swap_info(0), Some(0x02));
        assert_eq!(SwapType::Perm.swap_info(1), Some(0x13));
        assert_eq!(SwapType::Revert.swap_info(0), Some(0x04));
        assert_eq!(SwapType::None.swap_info(0), None);
    }
}
