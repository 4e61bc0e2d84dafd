//! Erase, program and verify loops over any [`RomTarget`], with a progress callback.
//!
//! `no_std`, no allocation: blocks go through a 256-byte stack buffer. Writes are aligned to
//! the part's flash write unit and padded with the erased value, so each write unit is
//! programmed exactly once (32 B flash words on H74x/H75x, 16 B on H7A3/U5, 8 B on L4/G0/G4).
//!
//! Write units that hold only the erased value are not programmed at all (see
//! [`Layout::skip_erased`]): on ECC parts (L4/G0/G4/U5/H7) a unit programmed with 0xFF reads
//! as erased but can never be programmed again before an erase, which would make e.g. a
//! bootloader's state area, filled with 0xFF in a merged factory image, unwritable.

use crate::device::RomDevice;
use crate::target::{stm32_crc32, Erase, RomTarget, STM32_CRC_INIT};

/// Largest block these loops move per command (the AN3155/AN4221 maximum).
pub const BLOCK: usize = 256;

/// Which step a progress report belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Erase,
    Write,
    Verify,
}

/// Why an erase, program or verify failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramError<E> {
    /// The host (link or protocol) failed.
    Target(E),
    /// `[addr, addr + len)` is not inside the device's flash.
    OutsideFlash { addr: u32, len: u32 },
    /// Read-back differs from what was written: the first differing byte.
    Mismatch { addr: u32, expected: u8, found: u8 },
    /// The device's checksum differs and the read-back found no differing byte (an unstable
    /// read or a device checksum bug): the result cannot be trusted.
    ChecksumMismatch {
        addr: u32,
        len: u32,
        expected: u32,
        found: u32,
    },
}

impl<E> From<E> for ProgramError<E> {
    fn from(e: E) -> Self {
        ProgramError::Target(e)
    }
}

/// How to lay blocks out: write unit and erased value of the part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Flash write unit (bytes, a power of two up to [`BLOCK`]).
    pub write_unit: u32,
    /// Erased byte value used for padding.
    pub erased: u8,
    /// Do not program write units that hold only `erased`: the flash there must already be
    /// erased, so it reads back the same. Only for flash whose erased value is known (RAM
    /// must get every byte).
    pub skip_erased: bool,
}

impl Layout {
    /// The part's write unit and erased value; write units holding only the erased value are
    /// skipped (this layout is for the part's flash).
    pub fn for_device(device: &RomDevice) -> Self {
        Layout {
            write_unit: device.write_unit().clamp(4, BLOCK as u32),
            erased: device.geometry.erased,
            skip_erased: true,
        }
    }
}

impl Default for Layout {
    /// Word writes padded with 0xFF, every unit written: what stm32flash does for an unknown
    /// part (whose erased value is only a guess).
    fn default() -> Self {
        Layout {
            write_unit: 4,
            erased: 0xFF,
            skip_erased: false,
        }
    }
}

/// Erases every page that `[addr, addr + len)` touches, batching page numbers.
pub fn erase_range<T: RomTarget + ?Sized>(
    target: &mut T,
    device: &RomDevice,
    addr: u32,
    len: u32,
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<(), ProgramError<T::Error>> {
    if len == 0 {
        return Ok(());
    }
    let last = addr
        .checked_add(len - 1)
        .ok_or(ProgramError::OutsideFlash { addr, len })?;
    let (Some(first_page), Some(last_page)) = (device.page_index(addr), device.page_index(last))
    else {
        return Err(ProgramError::OutsideFlash { addr, len });
    };
    // A bank hole between the two would make the range partly outside flash.
    let covered: u64 = (first_page..=last_page)
        .filter_map(|p| device.page(p))
        .map(|s| u64::from(s.size))
        .sum();
    let span_start = device.page(first_page).map_or(addr, |s| s.addr);
    let span_end = device
        .page(last_page)
        .map_or(addr, |s| s.addr + (s.size - 1));
    if covered != u64::from(span_end - span_start) + 1 {
        return Err(ProgramError::OutsideFlash { addr, len });
    }
    let total = u32::from(last_page - first_page) + 1;
    let per_command = if device
        .quirks
        .contains(crate::device::Quirks::ERASE_ONE_PAGE_PER_COMMAND)
    {
        1
    } else {
        usize::from(device.max_erase_pages).clamp(1, 64)
    };
    let mut list = [0u16; 64];
    let mut next = first_page;
    let mut done = 0u32;
    progress(Phase::Erase, 0, total);
    loop {
        let mut n = 0;
        while n < per_command && next <= last_page {
            list[n] = next;
            n += 1;
            if next == last_page {
                next = next.wrapping_add(1);
                break;
            }
            next += 1;
        }
        if n == 0 {
            break;
        }
        target.erase(Erase::Pages(&list[..n]))?;
        done += n as u32;
        progress(Phase::Erase, done, total);
        if done >= total {
            break;
        }
    }
    Ok(())
}

/// Calls `f(block_addr, block)` for each padded, unit-aligned block covering `data` at `addr`.
fn for_each_block<E>(
    addr: u32,
    data: &[u8],
    layout: Layout,
    block_size: usize,
    mut f: impl FnMut(u32, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let unit = layout.write_unit.max(1);
    let block_size = block_size.clamp(unit as usize, BLOCK) as u32 / unit * unit;
    let end = u64::from(addr) + data.len() as u64;
    let start = addr / unit * unit;
    let padded_end = end.div_ceil(u64::from(unit)) * u64::from(unit);
    let mut buf = [0u8; BLOCK];
    let mut block_start = u64::from(start);
    while block_start < padded_end {
        // Blocks end on multiples of the block size so a long write stays aligned.
        let next_boundary = (block_start / u64::from(block_size) + 1) * u64::from(block_size);
        let block_end = next_boundary.min(padded_end);
        let n = (block_end - block_start) as usize;
        let block = &mut buf[..n];
        block.fill(layout.erased);
        let copy_from = block_start.max(u64::from(addr));
        let copy_to = block_end.min(end);
        if copy_to > copy_from {
            let src = (copy_from - u64::from(addr)) as usize..(copy_to - u64::from(addr)) as usize;
            let dst = (copy_from - block_start) as usize..(copy_to - block_start) as usize;
            if let (Some(d), Some(s)) = (block.get_mut(dst), data.get(src)) {
                d.copy_from_slice(s);
            }
        }
        f(block_start as u32, block)?;
        block_start = block_end;
    }
    Ok(())
}

/// Splits `block` (at `block_addr`) where it crosses a multiple of `unit` and calls
/// `f(run_addr, run, all_erased)` for each maximal run of pieces that all hold only `erased`
/// (`all_erased` true) or that each hold something else. With `erased` `None` the whole block
/// is one run that is not erased.
pub(crate) fn for_each_run<E>(
    block_addr: u32,
    block: &[u8],
    unit: u32,
    erased: Option<u8>,
    mut f: impl FnMut(u32, &[u8], bool) -> Result<(), E>,
) -> Result<(), E> {
    let Some(erased) = erased else {
        return if block.is_empty() {
            Ok(())
        } else {
            f(block_addr, block, false)
        };
    };
    let unit = u64::from(unit.max(1));
    let base = u64::from(block_addr);
    // (start offset, erased?) of the run being gathered.
    let mut run: Option<(usize, bool)> = None;
    let mut at = 0usize;
    while at < block.len() {
        let abs = base + at as u64;
        let piece_end = (((abs / unit) + 1) * unit - base).min(block.len() as u64) as usize;
        let piece_erased = block[at..piece_end].iter().all(|&b| b == erased);
        match run {
            Some((start, kind)) if kind != piece_erased => {
                f(
                    block_addr.wrapping_add(start as u32),
                    &block[start..at],
                    kind,
                )?;
                run = Some((at, piece_erased));
            }
            Some(_) => {}
            None => run = Some((at, piece_erased)),
        }
        at = piece_end;
    }
    if let Some((start, kind)) = run {
        f(block_addr.wrapping_add(start as u32), &block[start..], kind)?;
    }
    Ok(())
}

/// Bytes of `[run_addr, run_addr + run_len)` that lie in `[addr, addr + len)`.
fn overlap(run_addr: u32, run_len: usize, addr: u32, len: u32) -> u32 {
    let start = u64::from(run_addr).max(u64::from(addr));
    let end = (u64::from(run_addr) + run_len as u64).min(u64::from(addr) + u64::from(len));
    end.saturating_sub(start) as u32
}

/// Writes `data` at `addr` (flash or RAM), padding the first and last write unit with the
/// erased value. The flash must have been erased: with [`Layout::skip_erased`], write units
/// holding only the erased value are not written (they already read as erased). Returns how
/// many bytes of `data` were skipped that way.
pub fn write<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    layout: Layout,
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<u32, ProgramError<T::Error>> {
    let total = data.len() as u32;
    let block_size = target.max_transfer();
    let skip = layout.skip_erased.then_some(layout.erased);
    let mut skipped = 0u32;
    progress(Phase::Write, 0, total);
    for_each_block::<ProgramError<T::Error>>(
        addr,
        data,
        layout,
        block_size,
        |block_addr, block| {
            for_each_run(
                block_addr,
                block,
                layout.write_unit,
                skip,
                |run_addr, run, erased| {
                    if erased {
                        skipped += overlap(run_addr, run.len(), addr, total);
                        Ok(())
                    } else {
                        target.write_memory(run_addr, run)
                    }
                },
            )?;
            let done = (block_addr + block.len() as u32)
                .saturating_sub(addr)
                .min(total);
            progress(Phase::Write, done, total);
            Ok(())
        },
    )?;
    Ok(skipped)
}

/// Checks that the write units [`write`] would skip for `data` at `addr` (those holding only
/// the erased value) read back as erased. For writes into flash that was not erased first
/// and is not verified afterwards: nothing else would prove those units hold the image.
pub fn check_skipped_erased<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    layout: Layout,
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<(), ProgramError<T::Error>> {
    if !layout.skip_erased {
        return Ok(());
    }
    let total = data.len() as u32;
    let step = target.max_transfer().clamp(1, BLOCK);
    let block_size = target.max_transfer();
    let mut buf = [0u8; BLOCK];
    progress(Phase::Verify, 0, total);
    for_each_block(addr, data, layout, block_size, |block_addr, block| {
        for_each_run(
            block_addr,
            block,
            layout.write_unit,
            Some(layout.erased),
            |run_addr, run, erased| {
                if !erased {
                    return Ok(());
                }
                let mut offset = 0usize;
                while offset < run.len() {
                    let n = step.min(run.len() - offset);
                    let at = run_addr.wrapping_add(offset as u32);
                    let got = &mut buf[..n];
                    target.read_memory(at, got)?;
                    if let Some(i) = got.iter().position(|&b| b != layout.erased) {
                        return Err(ProgramError::Mismatch {
                            addr: at.wrapping_add(i as u32),
                            expected: layout.erased,
                            found: got[i],
                        });
                    }
                    offset += n;
                }
                Ok(())
            },
        )?;
        let done = (block_addr + block.len() as u32)
            .saturating_sub(addr)
            .min(total);
        progress(Phase::Verify, done, total);
        Ok(())
    })
}

/// Checks that flash at `addr` holds `data`: with one device-side checksum when the target
/// offers it (the cheapest verify), else (or on a checksum mismatch, to name the first bad
/// byte) by reading back.
pub fn verify<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<(), ProgramError<T::Error>> {
    let total = data.len() as u32;
    progress(Phase::Verify, 0, total);
    if data.is_empty() {
        return Ok(());
    }
    // The checksum covers the exact range when it is word-aligned; otherwise read back.
    let mut checksum_failed = None;
    if addr % 4 == 0 && data.len() % 4 == 0 {
        if let Some(found) = target.checksum(addr, total)? {
            let expected = stm32_crc32(STM32_CRC_INIT, data);
            if found == expected {
                progress(Phase::Verify, total, total);
                return Ok(());
            }
            checksum_failed = Some((expected, found));
        }
    }
    read_back_compare(target, addr, data, progress)?;
    if let Some((expected, found)) = checksum_failed {
        return Err(ProgramError::ChecksumMismatch {
            addr,
            len: total,
            expected,
            found,
        });
    }
    Ok(())
}

fn read_back_compare<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<(), ProgramError<T::Error>> {
    let total = data.len() as u32;
    let block = target.max_transfer().clamp(1, BLOCK);
    let mut buf = [0u8; BLOCK];
    let mut offset = 0usize;
    for chunk in data.chunks(block) {
        let got = &mut buf[..chunk.len()];
        let chunk_addr = addr.wrapping_add(offset as u32);
        target.read_memory(chunk_addr, got)?;
        if chunk != &got[..] {
            // Read data carries no checksum: read once more before blaming the flash.
            target.read_memory(chunk_addr, got)?;
        }
        if let Some(i) = chunk.iter().zip(got.iter()).position(|(a, b)| a != b) {
            return Err(ProgramError::Mismatch {
                addr: chunk_addr.wrapping_add(i as u32),
                expected: chunk[i],
                found: got[i],
            });
        }
        offset += chunk.len();
        progress(Phase::Verify, offset as u32, total);
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `addr` in transfer-sized blocks.
pub fn read<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    buf: &mut [u8],
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<(), ProgramError<T::Error>> {
    let total = buf.len() as u32;
    let block = target.max_transfer().clamp(1, BLOCK);
    let mut offset = 0usize;
    for chunk in buf.chunks_mut(block) {
        target.read_memory(addr.wrapping_add(offset as u32), chunk)?;
        offset += chunk.len();
        progress(Phase::Verify, offset as u32, total);
    }
    Ok(())
}

/// Erases the pages `data` touches, writes it (skipping write units that hold only the
/// erased value: the erase left them so) and verifies it. Returns the bytes skipped.
pub fn program<T: RomTarget + ?Sized>(
    target: &mut T,
    device: &RomDevice,
    addr: u32,
    data: &[u8],
    verify_after: bool,
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<u32, ProgramError<T::Error>> {
    let layout = Layout::for_device(device);
    let unit = layout.write_unit;
    let start = addr / unit * unit;
    let end = (u64::from(addr) + data.len() as u64).div_ceil(u64::from(unit)) * u64::from(unit);
    let len = u32::try_from(end - u64::from(start)).map_err(|_| ProgramError::OutsideFlash {
        addr,
        len: u32::MAX,
    })?;
    erase_range(target, device, start, len, progress)?;
    let skipped = write(target, addr, data, layout, progress)?;
    if verify_after {
        verify(target, addr, data, progress)?;
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_unit_aligned_and_padded() {
        let data = [0xAAu8; 300];
        let layout = Layout {
            write_unit: 32,
            erased: 0xFF,
            skip_erased: true,
        };
        let mut seen: [(u32, usize); 4] = [(0, 0); 4];
        let mut n = 0;
        for_each_block::<()>(0x0800_0010, &data, layout, 256, |a, b| {
            seen[n] = (a, b.len());
            if n == 0 {
                assert!(b[..16].iter().all(|&x| x == 0xFF));
                assert!(b[16..].iter().all(|&x| x == 0xAA));
            }
            n += 1;
            Ok(())
        })
        .unwrap();
        // 0x08000000..0x08000100, then 0x08000100..0x08000140 (300+16 = 316 -> 320).
        assert_eq!(&seen[..n], &[(0x0800_0000, 256), (0x0800_0100, 64)]);
    }

    /// A scripted target: records every Write Memory, answers reads from `memory`.
    struct Recorder {
        writes: [(u32, usize); 32],
        count: usize,
        memory: [u8; 2048],
        base: u32,
    }

    impl Recorder {
        fn new(base: u32, fill: u8) -> Self {
            Recorder {
                writes: [(0, 0); 32],
                count: 0,
                memory: [fill; 2048],
                base,
            }
        }
        fn writes(&self) -> &[(u32, usize)] {
            &self.writes[..self.count]
        }
    }

    impl RomTarget for Recorder {
        type Error = ();
        fn info(&self) -> crate::target::TargetInfo {
            unimplemented!()
        }
        fn max_transfer(&self) -> usize {
            BLOCK
        }
        fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), ()> {
            let off = (addr - self.base) as usize;
            buf.copy_from_slice(&self.memory[off..off + buf.len()]);
            Ok(())
        }
        fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), ()> {
            self.writes[self.count] = (addr, data.len());
            self.count += 1;
            let off = (addr - self.base) as usize;
            self.memory[off..off + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn erase(&mut self, _: Erase<'_>) -> Result<(), ()> {
            unimplemented!()
        }
        fn go(&mut self, _: u32) -> Result<(), ()> {
            unimplemented!()
        }
        fn write_protect(&mut self, _: &[u16]) -> Result<(), ()> {
            unimplemented!()
        }
        fn write_unprotect(&mut self) -> Result<(), ()> {
            unimplemented!()
        }
        fn readout_protect(&mut self) -> Result<(), ()> {
            unimplemented!()
        }
        fn readout_unprotect(&mut self) -> Result<(), ()> {
            unimplemented!()
        }
    }

    /// 100 bytes of code, 700 bytes of `fill`, 60 bytes of code at 0x08000000.
    fn image_with_fill(fill: u8) -> [u8; 860] {
        let mut data = [0u8; 860];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7) | 0x11;
        }
        data[100..800].fill(fill);
        data
    }

    fn overlaps(w: (u32, usize), from: u32, to: u32) -> bool {
        w.0 < to && w.0 + w.1 as u32 > from
    }

    #[test]
    fn write_units_holding_only_the_erased_value_are_not_written() {
        for (part, fill) in [("stm32l475vg", 0xFF), ("stm32l073rz", 0x00)] {
            let device = crate::by_part_name(part).unwrap();
            assert_eq!(device.geometry.erased, fill);
            let unit = device.write_unit();
            let base = 0x0800_0000;
            let data = image_with_fill(fill);
            let mut t = Recorder::new(base, fill);
            let mut last = (0, 0);
            let layout = Layout::for_device(device);
            let skipped = write(&mut t, base, &data, layout, &mut |ph, done, total| {
                assert_eq!(ph, Phase::Write);
                last = (done, total);
            })
            .unwrap();
            // The fill's whole units: from the first unit after byte 100 to the last before 800.
            let from = base + 100u32.div_ceil(unit) * unit;
            let to = base + 800 / unit * unit;
            for &w in t.writes() {
                assert!(!overlaps(w, from, to), "{part}: write {w:x?} into the fill");
                assert_eq!(w.0 % unit, 0, "{part}: unaligned write {w:x?}");
            }
            // The 256-byte blocks wholly inside the fill got no command at all.
            assert!(t
                .writes()
                .iter()
                .all(|w| w.0 != base + 0x100 && w.0 != base + 0x200));
            assert_eq!(skipped, to - from, "{part}");
            assert_eq!(last, (860, 860), "{part}: progress reaches the end");
            // What the target holds is the image (skipped units read as erased).
            assert_eq!(&t.memory[..860], &data[..], "{part}");
            verify(&mut t, base, &data, &mut |_, _, _| {}).unwrap();
            check_skipped_erased(&mut t, base, &data, layout, &mut |_, _, _| {}).unwrap();
        }
    }

    #[test]
    fn without_skip_every_unit_is_written_and_a_dirty_skipped_unit_is_found() {
        let device = crate::by_part_name("stm32l475vg").unwrap();
        let base = 0x0800_0000;
        let data = image_with_fill(0xFF);
        // RAM (or an unknown part): every byte goes out.
        let mut t = Recorder::new(base, 0xFF);
        let all = Layout {
            skip_erased: false,
            ..Layout::for_device(device)
        };
        assert_eq!(write(&mut t, base, &data, all, &mut |_, _, _| {}), Ok(0));
        let sent: usize = t.writes().iter().map(|w| w.1).sum();
        assert_eq!(sent, 864, "860 bytes padded to the 8-byte unit");
        // Flash that was not erased: the units a write would skip are checked.
        let mut t = Recorder::new(base, 0xFF);
        t.memory[0x180] = 0x42;
        let err = check_skipped_erased(
            &mut t,
            base,
            &data,
            Layout::for_device(device),
            &mut |_, _, _| {},
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProgramError::Mismatch {
                addr: base + 0x180,
                expected: 0xFF,
                found: 0x42
            }
        );
        assert!(t.writes().is_empty());
    }
}
