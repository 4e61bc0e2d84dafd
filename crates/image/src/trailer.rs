//! The MCUboot trailer at the end of a slot: field offsets, magic values, and decoding
//! of the state flags.

/// Trailer magic used when `BOOT_MAX_ALIGN == 8`.
pub const BOOT_MAGIC_V1: [u8; 16] = [
    0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
];
/// The 14 bytes after the little-endian `u16` max-align in the align-encoded magic.
pub const BOOT_MAGIC_ALIGNED_TAIL: [u8; 14] = [
    0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a,
];
/// imgtool's default `--max-sectors`.
pub const DEFAULT_MAX_SECTORS: u32 = 128;
/// Swap types stored in the low nibble of `swap_info`.
pub mod swap_type {
    /// `BOOT_SWAP_TYPE_NONE`: no swap requested.
    pub const NONE: u8 = 1;
    /// `BOOT_SWAP_TYPE_TEST`: swap the secondary image in for a trial boot; it is swapped
    /// back at the next reset unless confirmed (`image_ok` set).
    pub const TEST: u8 = 2;
    /// `BOOT_SWAP_TYPE_PERM`: swap the secondary image in for good.
    pub const PERM: u8 = 3;
    /// `BOOT_SWAP_TYPE_REVERT`: swap the previous image back (an unconfirmed trial).
    pub const REVERT: u8 = 4;
}

/// The 16-byte trailer magic for a given `BOOT_MAX_ALIGN` (little-endian images).
pub fn boot_magic(max_align: u32) -> [u8; 16] {
    if max_align == 8 {
        return BOOT_MAGIC_V1;
    }
    let mut m = [0u8; 16];
    m[..2].copy_from_slice(&(max_align as u16).to_le_bytes());
    m[2..].copy_from_slice(&BOOT_MAGIC_ALIGNED_TAIL);
    m
}

const fn align_up(n: u32, a: u32) -> u32 {
    (n + a - 1) & !(a - 1)
}

/// Trailer size as imgtool computes it for `--pad` (no encryption):
/// `max_sectors * 3 * align + 4 * max_align + align_up(16, max_align)`, or
/// `2 * max_align + align_up(16, max_align)` for overwrite-only.
pub fn trailer_size(align: u32, max_align: u32, max_sectors: u32, overwrite_only: bool) -> u32 {
    let magic = align_up(16, max_align);
    if overwrite_only {
        2 * max_align + magic
    } else {
        max_sectors * 3 * align + 4 * max_align + magic
    }
}

/// Offsets of the trailer fields from the slot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerOffsets {
    /// The 16-byte magic: the last 16 bytes of the slot.
    pub magic: u32,
    /// The `image_ok` flag (`0x01` once the image is confirmed); each flag below takes
    /// `max_align` bytes, its value in the first.
    pub image_ok: u32,
    /// The `copy_done` flag (`0x01` once the bootloader finished moving the image in).
    pub copy_done: u32,
    /// The `swap_info` byte: swap type in the low nibble (see [`swap_type`]), image number
    /// in the high nibble.
    pub swap_info: u32,
    /// The `swap_size` field: `u32` size of the region being swapped, written when a swap
    /// starts.
    pub swap_size: u32,
}

impl TrailerOffsets {
    /// `None` if the slot is too small or `max_align` is not 8, 16 or 32.
    pub fn new(slot_size: u32, max_align: u32) -> Option<Self> {
        if !matches!(max_align, 8 | 16 | 32) {
            return None;
        }
        let magic = slot_size.checked_sub(16)?;
        let image_ok = slot_size.checked_sub(align_up(16, max_align) + max_align)?;
        let copy_done = image_ok.checked_sub(max_align)?;
        let swap_info = copy_done.checked_sub(max_align)?;
        let swap_size = swap_info.checked_sub(max_align)?;
        Some(Self {
            magic,
            image_ok,
            copy_done,
            swap_info,
            swap_size,
        })
    }
}

/// State of the trailer magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagicState {
    /// The expected magic for this max-align.
    Good,
    /// All erased.
    Unset,
    /// Anything else.
    Bad,
}

/// State of a one-byte trailer flag (`boot_flag_decode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagState {
    /// `0x01`.
    Set,
    /// The erased value.
    Unset,
    /// Any other value.
    Bad(u8),
}

impl FlagState {
    /// Decode one flag byte: `0x01` is set, `erased_val` (the flash's erased byte) is
    /// unset, anything else is bad.
    pub fn decode(byte: u8, erased_val: u8) -> Self {
        match byte {
            0x01 => Self::Set,
            b if b == erased_val => Self::Unset,
            b => Self::Bad(b),
        }
    }
}

/// Decoded trailer of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerState {
    /// Whether the slot ends with the magic for the `max_align` it was read with.
    pub magic: MagicState,
    /// The `image_ok` flag: set once the image is confirmed (imgtool `--confirm` sets it).
    pub image_ok: FlagState,
    /// The `copy_done` flag: set by the bootloader once it finished moving the image in.
    pub copy_done: FlagState,
    /// Raw `swap_info` byte; `None` when erased. Low nibble swap type, high nibble
    /// image number.
    pub swap_info: Option<u8>,
}

impl TrailerState {
    /// Decode the trailer of `slot` (the whole slot's bytes). `None` if the slot is too
    /// small for a trailer or `max_align` is invalid.
    pub fn read(slot: &[u8], max_align: u32, erased_val: u8) -> Option<Self> {
        let size = u32::try_from(slot.len()).ok()?;
        let off = TrailerOffsets::new(size, max_align)?;
        let magic_bytes = slot.get(off.magic as usize..)?;
        let magic = if magic_bytes == boot_magic(max_align) {
            MagicState::Good
        } else if magic_bytes.iter().all(|&b| b == erased_val) {
            MagicState::Unset
        } else {
            MagicState::Bad
        };
        let byte = |o: u32| slot.get(o as usize).copied();
        let swap_info = byte(off.swap_info)?;
        Some(Self {
            magic,
            image_ok: FlagState::decode(byte(off.image_ok)?, erased_val),
            copy_done: FlagState::decode(byte(off.copy_done)?, erased_val),
            swap_info: (swap_info != erased_val).then_some(swap_info),
        })
    }

    /// Find the max-align a slot's magic was written for (8, 16 or 32), if any.
    pub fn detect_max_align(slot: &[u8]) -> Option<u32> {
        let tail = slot.get(slot.len().checked_sub(16)?..)?;
        [8, 16, 32].into_iter().find(|&a| tail == boot_magic(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_sizes_match_the_reference_examples() {
        // max-align 8, write size 8, 128 sectors: 3120-byte trailer.
        assert_eq!(trailer_size(8, 8, 128, false), 3120);
        let o = TrailerOffsets::new(0x20000, 8).unwrap();
        assert_eq!(
            (o.magic, o.image_ok, o.copy_done, o.swap_info, o.swap_size),
            (
                0x20000 - 16,
                0x20000 - 24,
                0x20000 - 32,
                0x20000 - 40,
                0x20000 - 48
            )
        );
        // STM32H7: max-align 32, write size 32: 12448 bytes, 928 with 8 sectors.
        assert_eq!(trailer_size(32, 32, 128, false), 12448);
        assert_eq!(trailer_size(32, 32, 8, false), 928);
        let o = TrailerOffsets::new(0x20000, 32).unwrap();
        assert_eq!(
            (o.image_ok, o.copy_done, o.swap_info, o.swap_size),
            (0x20000 - 64, 0x20000 - 96, 0x20000 - 128, 0x20000 - 160)
        );
        assert_eq!(trailer_size(8, 8, 128, true), 32);
        assert!(TrailerOffsets::new(0x20000, 4).is_none());
        assert!(TrailerOffsets::new(40, 8).is_none());
    }

    #[test]
    fn magic_and_flag_decoding() {
        assert_eq!(boot_magic(8), BOOT_MAGIC_V1);
        assert_eq!(&boot_magic(32)[..4], &[0x20, 0x00, 0x2d, 0xe1]);
        let mut slot = [0xffu8; 256];
        assert_eq!(
            TrailerState::read(&slot, 8, 0xff).unwrap().magic,
            MagicState::Unset
        );
        slot[240..].copy_from_slice(&boot_magic(32));
        assert_eq!(TrailerState::detect_max_align(&slot), Some(32));
        let s = TrailerState::read(&slot, 8, 0xff).unwrap();
        assert_eq!(s.magic, MagicState::Bad);
        slot[256 - 64] = 0x01;
        slot[256 - 96] = 0x07;
        slot[256 - 128] = 0x13;
        let s = TrailerState::read(&slot, 32, 0xff).unwrap();
        assert_eq!(s.magic, MagicState::Good);
        assert_eq!(s.image_ok, FlagState::Set);
        assert_eq!(s.copy_done, FlagState::Bad(0x07));
        assert_eq!(s.swap_info, Some(0x13));
        assert_eq!(FlagState::decode(0, 0), FlagState::Unset);
    }
}
