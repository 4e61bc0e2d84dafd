//! Multi-image: images updated together, all or nothing.
//!
//! The images of a group share one slot pair, each at its own fixed offset: its execution
//! address relative to the primary slot's start (on an STM32H755 the Cortex-M7 image at the
//! primary's start in bank 1, the Cortex-M4 image at the start of bank 2, where the M4
//! boots). The engine moves the slot as one update: one plan, one trial, one revert, one
//! confirmation, with any strategy, so a power cut anywhere leaves every image old or every
//! image new, never a mix. [`GroupCheck`] is what makes the group one image to the engine:
//! every image must verify on its own (hash, signature, where it runs), every DEPENDENCY the
//! images carry must be met by the group's other images, and each image's security counter
//! keeps its own anti-rollback floor (a lane of the recorded floor).
//!
//! This is not a strategy of its own: it composes with swap and overwrite (bank swap needs
//! mirrored banks, which a group spanning both banks is not).
use crate::layout::{plan_record_len, Layout, LayoutError, LayoutSpec, Region};
use crate::strategy::{Strategy, StrategyKind};
use crate::{ImageCheck, ImageInfo};
use brickless_flash::Geometry;
use embedded_storage::nor_flash::ReadNorFlash;

/// One image of a group: where it starts relative to the slot's start, and the most bytes
/// it may take there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupImage {
    /// Offset of the image's header from the slot's start.
    pub offset: u32,
    /// Bytes set aside for it from there.
    pub size: u32,
}

/// The image check of a group of `N` images (1 to 4) in one slot, over the check of one
/// image. What it reports to the engine: image 0's version, hash and execution rule; the
/// bytes up to the end of the last image; and a security counter packing each image's
/// counter in a lane of `32 / N` bits (an image whose counter does not fit is refused).
#[derive(Clone, Copy, Debug)]
pub struct GroupCheck<C, const N: usize> {
    /// The check of each image.
    pub check: C,
    /// Where each image sits; image `i` is the one DEPENDENCY TLVs call image `i`.
    pub images: [GroupImage; N],
    /// Absolute address of the primary slot: images after the first that are linked for a
    /// fixed address (MCUboot `ROM_FIXED`) must be linked for `primary + offset`.
    pub primary: u32,
}

impl<C, const N: usize> GroupCheck<C, N> {
    const LANE: u32 = if N == 0 { 32 } else { 32 / N as u32 };

    fn lane(value: u32, i: usize) -> u32 {
        if Self::LANE >= 32 {
            value
        } else {
            (value >> (Self::LANE * i as u32)) & ((1 << Self::LANE) - 1)
        }
    }

    /// Packs one counter per image into the group's counter.
    pub fn pack(counters: [u32; N]) -> Option<u32> {
        let mut packed = 0u32;
        for (i, c) in counters.into_iter().enumerate() {
            if Self::LANE < 32 && c >> Self::LANE != 0 {
                return None;
            }
            packed |= c.checked_shl(Self::LANE * i as u32).unwrap_or(0);
        }
        Some(packed)
    }

    /// Image `i`'s counter inside a packed group counter.
    pub fn unpack(packed: u32, i: usize) -> u32 {
        Self::lane(packed, i)
    }
}

impl<F: ReadNorFlash, C: ImageCheck<F>, const N: usize> ImageCheck<F> for GroupCheck<C, N> {
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo> {
        if N == 0 || N > 4 {
            return None;
        }
        let mut found: [Option<ImageInfo>; N] = [None; N];
        let mut counters = [0u32; N];
        let mut end = 0u32;
        for (i, g) in self.images.iter().enumerate() {
            if g.offset.checked_add(g.size)? > max_size {
                return None;
            }
            let info = self.check.check(flash, offset + g.offset, g.size)?;
            if i > 0
                && info
                    .exec
                    .runs_at(self.primary.checked_add(g.offset)?)
                    .is_err()
            {
                return None;
            }
            counters[i] = info.security_counter;
            end = end.max(g.offset + info.size);
            found[i] = Some(info);
        }
        for g in self.images {
            let mut met = true;
            let read = self
                .check
                .dependencies(flash, offset + g.offset, g.size, &mut |id, min| {
                    met &= found
                        .get(usize::from(id))
                        .copied()
                        .flatten()
                        .is_some_and(|img| img.version.packed() >= min.packed());
                });
            if !(read && met) {
                return None;
            }
        }
        let first = found[0]?;
        Some(ImageInfo {
            security_counter: Self::pack(counters)?,
            size: end,
            ..first
        })
    }

    fn counter_passes(&self, counter: u32, floor: u32) -> bool {
        (0..N).all(|i| Self::lane(counter, i) >= Self::lane(floor, i))
    }

    fn raise_floor(&self, floor: u32, counter: u32) -> u32 {
        let mut out = [0u32; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = Self::lane(floor, i).max(Self::lane(counter, i));
        }
        Self::pack(out).unwrap_or(floor.max(counter))
    }
}

/// A layout for a dual-core part (STM32H745/H747/H755/H757) whose two images form a group:
/// bootloader and state copies at the start of bank 1, then a primary slot that spans the
/// edge between the banks, so image 0 (Cortex-M7) starts at the primary's start and image 1
/// (Cortex-M4) at the start of bank 2, the M4's default boot address (BOOT_CM4_ADD0); the
/// secondary slot follows. Returns the layout and the group's images (image 1 gets what the
/// primary holds past bank 2's start, at least one unit).
pub fn dual_core_layout(
    geometry: &Geometry,
    strategy: StrategyKind,
    bootloader: u32,
) -> Result<(Layout, [GroupImage; 2]), LayoutError> {
    let (Some(bank1), Some(bank2)) = (geometry.banks.first(), geometry.banks.get(1)) else {
        return Err(LayoutError::NeedsTwoBanks);
    };
    let edge = |addr: u32| {
        geometry
            .sectors()
            .map(|s| s.end())
            .find(|&e| e >= addr)
            .unwrap_or(geometry.end())
    };
    let boot_end = edge(bank1.base.saturating_add(bootloader));
    let unit = geometry
        .sectors()
        .filter(|s| s.addr >= boot_end)
        .map(|s| s.size)
        .max()
        .unwrap_or(0);
    let rest = geometry.end().saturating_sub(boot_end) / unit.max(1);
    let state_need = (2 * plan_record_len(rest, geometry.write_unit)).max(4096);
    let s0_end = edge(boot_end + state_need);
    let s1_end = edge(s0_end + state_need);
    let units = geometry.end().saturating_sub(s1_end) / unit.max(1);
    let fits = |p: u32| {
        let size = p * unit;
        size.saturating_add(strategy.secondary_size(size, unit)) <= units * unit
    };
    let p = (0..=units).rev().find(|&p| fits(p)).unwrap_or(0);
    let before_bank2 = bank2.base.saturating_sub(s1_end) / unit.max(1);
    let m7 = before_bank2.min(p.saturating_sub(1));
    let primary = Region::new(bank2.base - m7 * unit, p * unit);
    let spec = LayoutSpec {
        bootloader: Region::new(bank1.base, boot_end - bank1.base),
        state: [
            Region::new(boot_end, s0_end - boot_end),
            Region::new(s0_end, s1_end - s0_end),
        ],
        primary,
        secondary: Region::new(primary.end(), strategy.secondary_size(primary.size, unit)),
        unit,
        strategy,
    };
    let layout = Layout::new(spec, geometry)?;
    let images = [
        GroupImage {
            offset: 0,
            size: m7 * unit,
        },
        GroupImage {
            offset: m7 * unit,
            size: (p - m7) * unit,
        },
    ];
    Ok((layout, images))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exec, ImageVersion};
    use brickless_flash_model::SimFlash;

    /// Says every offset holds a 16-byte image whose security counter is its offset / 0x100.
    struct Fixed;

    impl<F: ReadNorFlash> ImageCheck<F> for Fixed {
        fn check(&mut self, _: &mut F, offset: u32, _: u32) -> Option<ImageInfo> {
            Some(ImageInfo {
                version: ImageVersion::new(1, 0, 0, 0),
                security_counter: offset / 0x100,
                size: 16,
                hash: [0; 32],
                exec: Exec::InPlace,
            })
        }
    }

    fn group<const N: usize>() -> GroupCheck<Fixed, N> {
        GroupCheck {
            check: Fixed,
            images: core::array::from_fn(|i| GroupImage {
                offset: i as u32 * 0x100,
                size: 0x100,
            }),
            primary: 0x0800_0000,
        }
    }

    fn flash() -> SimFlash {
        SimFlash::new(brickless_flash::part("stm32l475vg").expect("in the table"))
    }

    #[test]
    fn one_to_four_images_pack_their_counters_and_more_are_refused() {
        let mut f = flash();
        let one = group::<1>().check(&mut f, 0, 0x1000).expect("one image");
        assert_eq!((one.security_counter, one.size), (0, 16));
        assert_eq!(GroupCheck::<(), 1>::pack([u32::MAX]), Some(u32::MAX));
        let three = group::<3>().check(&mut f, 0, 0x1000).expect("three images");
        assert_eq!(three.security_counter, (2 << 20) | (1 << 10));
        assert_eq!(three.size, 0x200 + 16);
        let four = group::<4>().check(&mut f, 0, 0x1000).expect("four images");
        assert_eq!(four.security_counter, 0x0302_0100);
        assert_eq!(
            GroupCheck::<(), 4>::pack([0x100, 0, 0, 0]),
            None,
            "8-bit lanes"
        );
        assert!(group::<5>().check(&mut f, 0, 0x1000).is_none());
        // An image that does not fit the slot refuses the group; one that just fits does not.
        assert!(group::<4>().check(&mut f, 0, 0x3FF).is_none());
        assert!(group::<4>().check(&mut f, 0, 0x400).is_some());
    }
}
