//! Erase, program and verify loops over any [`RomTarget`], with a progress callback.
//!
//! `no_std`, no allocation: blocks go through a 256-byte stack buffer. Writes are aligned to
//! the part's flash write unit and padded with the erased value, so each write unit is
//! programmed exactly once (32 B flash words on H74x/H75x, 16 B on H7A3/U5, 8 B on L4/G0/G4).

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
}

impl Layout {
    pub fn for_device(device: &RomDevice) -> Self {
        Layout {
            write_unit: device.write_unit().clamp(4, BLOCK as u32),
            erased: device.geometry.erased,
        }
    }
}

impl Default for Layout {
    /// Word writes padded with 0xFF: what stm32flash does for an unknown part.
    fn default() -> Self {
        Layout {
            write_unit: 4,
            erased: 0xFF,
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

/// Writes `data` at `addr` (flash or RAM), padding the first and last write unit with the
/// erased value. The flash must have been erased.
pub fn write<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    layout: Layout,
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<(), ProgramError<T::Error>> {
    let total = data.len() as u32;
    let block_size = target.max_transfer();
    progress(Phase::Write, 0, total);
    for_each_block(addr, data, layout, block_size, |block_addr, block| {
        target.write_memory(block_addr, block)?;
        let done = (block_addr + block.len() as u32)
            .saturating_sub(addr)
            .min(total);
        progress(Phase::Write, done, total);
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

/// Erases the pages `data` touches, writes it and verifies it.
pub fn program<T: RomTarget + ?Sized>(
    target: &mut T,
    device: &RomDevice,
    addr: u32,
    data: &[u8],
    verify_after: bool,
    progress: &mut dyn FnMut(Phase, u32, u32),
) -> Result<(), ProgramError<T::Error>> {
    let layout = Layout::for_device(device);
    let unit = layout.write_unit;
    let start = addr / unit * unit;
    let end = (u64::from(addr) + data.len() as u64).div_ceil(u64::from(unit)) * u64::from(unit);
    let len = u32::try_from(end - u64::from(start)).map_err(|_| ProgramError::OutsideFlash {
        addr,
        len: u32::MAX,
    })?;
    erase_range(target, device, start, len, progress)?;
    write(target, addr, data, layout, progress)?;
    if verify_after {
        verify(target, addr, data, progress)?;
    }
    Ok(())
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
}
