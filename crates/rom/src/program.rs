//! The programming loop over any [`RomTarget`]: [`program_segments`] erases what the segments
//! need, writes them and verifies them (by the device's CRC where it offers one, else by
//! reading back), reporting through one [`Progress`] trait. AN3155, AN4221 and DfuSe (see
//! [`crate::dfuse::DfuseTarget::program_dfu_file`]) and the CLI all program through it.
//!
//! `no_std`, no allocation: blocks go through a caller's buffer (256 bytes on the stack for
//! the single-range helpers). Writes are aligned to
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
    /// Erasing pages (progress counts pages).
    Erase,
    /// Writing (progress counts bytes).
    Write,
    /// Verifying or reading (progress counts bytes).
    Verify,
}

/// Where the loops report how far they are: `done` of `total` in `phase`.
pub trait Progress {
    /// One report; `done` grows within a phase.
    fn report(&mut self, phase: Phase, done: u32, total: u32);
}

impl<F: FnMut(Phase, u32, u32) + ?Sized> Progress for F {
    fn report(&mut self, phase: Phase, done: u32, total: u32) {
        self(phase, done, total)
    }
}

/// One erasable page as the loop sees it: its erase number and its extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashPage {
    /// The number [`Erase::Pages`] takes for it.
    pub index: u16,
    /// First address.
    pub start: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Where a target's flash pages are and how it is written: a device-table part, or a DfuSe
/// memory layout.
pub trait FlashMap {
    /// The page holding `addr`, if `addr` is in flash.
    fn page_at(&self, addr: u32) -> Option<FlashPage>;
    /// The page numbered `index`.
    fn page(&self, index: u16) -> Option<FlashPage>;
    /// How many page numbers one erase command may carry (1..=64).
    fn pages_per_erase(&self) -> usize;
    /// Write unit and erased value of the flash.
    fn layout(&self) -> Layout;
}

impl FlashMap for RomDevice {
    fn page_at(&self, addr: u32) -> Option<FlashPage> {
        self.page_index(addr).and_then(|i| FlashMap::page(self, i))
    }
    fn page(&self, index: u16) -> Option<FlashPage> {
        RomDevice::page(self, index).map(|s| FlashPage {
            index,
            start: s.addr,
            size: s.size,
        })
    }
    fn pages_per_erase(&self) -> usize {
        if self
            .quirks
            .contains(crate::device::Quirks::ERASE_ONE_PAGE_PER_COMMAND)
        {
            1
        } else {
            usize::from(self.max_erase_pages).clamp(1, 64)
        }
    }
    fn layout(&self) -> Layout {
        Layout::for_device(self)
    }
}

/// What [`program_segments`] erases first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EraseMode {
    /// The pages the segments in flash touch, each once.
    Touched,
    /// The whole flash (mass erase).
    Mass,
    /// Nothing: the flash must already be erased.
    None,
}

/// How [`program_segments`] programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// What to erase first.
    pub erase: EraseMode,
    /// Verify every segment afterwards (CRC where offered, else read-back).
    pub verify: bool,
    /// Write segments that start outside flash (RAM) in full, without erasing; when false
    /// they are refused with [`ProgramError::OutsideFlash`] before anything is erased.
    pub outside_flash: bool,
}

/// What [`program_segments`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Programmed {
    /// Non-empty segments programmed.
    pub segments: usize,
    /// Bytes of the segments.
    pub bytes: u64,
    /// Of those, bytes not written because their write units hold only the erased value.
    pub skipped: u64,
}

/// Why an erase, program or verify failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgramError<E> {
    /// The host (link or protocol) failed.
    Target(E),
    /// `[addr, addr + len)` is not inside the device's flash.
    OutsideFlash {
        /// Absolute start address of the range.
        addr: u32,
        /// Its length in bytes.
        len: u32,
    },
    /// Read-back differs from what was written: the first differing byte.
    Mismatch {
        /// Address of the byte.
        addr: u32,
        /// What was written.
        expected: u8,
        /// What reads back.
        found: u8,
    },
    /// The device's checksum differs and the read-back found no differing byte (an unstable
    /// read or a device checksum bug): the result cannot be trusted.
    ChecksumMismatch {
        /// First address checked.
        addr: u32,
        /// Bytes checked.
        len: u32,
        /// CRC of the data.
        expected: u32,
        /// CRC the device computed.
        found: u32,
    },
}

impl<E: crate::target::TargetError> crate::target::TargetError for ProgramError<E> {
    fn kind(&self) -> crate::target::ErrorKind {
        use crate::target::ErrorKind as K;
        match self {
            ProgramError::Target(e) => e.kind(),
            ProgramError::OutsideFlash { .. } => K::OutsideFlash,
            ProgramError::Mismatch { .. } | ProgramError::ChecksumMismatch { .. } => K::Verify,
        }
    }
}

impl<E: core::fmt::Display> core::fmt::Display for ProgramError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProgramError::Target(e) => e.fmt(f),
            ProgramError::OutsideFlash { addr, len } => write!(
                f,
                "{addr:#010x}..{:#010x} is not in the device's flash",
                u64::from(*addr) + u64::from(*len)
            ),
            ProgramError::Mismatch { addr, expected, found } => write!(
                f,
                "verify failed at {addr:#010x}: expected {expected:#04x}, device has {found:#04x}"
            ),
            ProgramError::ChecksumMismatch { addr, len, expected, found } => write!(
                f,
                "device checksum of {addr:#010x}+{len:#x} is {found:#010x}, expected {expected:#010x}, but a read-back matched: unstable flash or link"
            ),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for ProgramError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ProgramError::Target(e) => Some(e),
            _ => None,
        }
    }
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

/// The first and last page of `[addr, addr + len)` (`len > 0`), refused when any byte is
/// outside flash (including a hole between banks).
fn page_span<M: FlashMap + ?Sized>(map: &M, addr: u32, len: u32) -> Option<(u16, u16)> {
    let last = addr.checked_add(len.checked_sub(1)?)?;
    let (first, last) = (map.page_at(addr)?, map.page_at(last)?);
    let covered: u64 = (first.index..=last.index)
        .filter_map(|p| map.page(p))
        .map(|p| u64::from(p.size))
        .sum();
    let span = u64::from(last.start) + u64::from(last.size) - u64::from(first.start);
    (covered == span).then_some((first.index, last.index))
}

/// Erases the pages for which `wanted(page)` holds, in increasing order, `map`'s batch size
/// per command; `total` is how many there are (for progress).
fn erase_pages<T: RomTarget + ?Sized, M: FlashMap + ?Sized>(
    target: &mut T,
    map: &M,
    (from, to): (u16, u16),
    total: u32,
    wanted: impl Fn(u16) -> bool,
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    let per_command = map.pages_per_erase().clamp(1, 64);
    let mut list = [0u16; 64];
    let mut n = 0;
    let mut done = 0u32;
    progress.report(Phase::Erase, 0, total);
    for page in (from..=to).filter(|&p| wanted(p)) {
        list[n] = page;
        n += 1;
        if n == per_command {
            target.erase(Erase::Pages(&list[..n]))?;
            done += n as u32;
            progress.report(Phase::Erase, done, total);
            n = 0;
        }
    }
    if n > 0 {
        target.erase(Erase::Pages(&list[..n]))?;
        done += n as u32;
        progress.report(Phase::Erase, done, total);
    }
    Ok(())
}

/// Erases every page that `[addr, addr + len)` touches, batching page numbers.
pub fn erase_range<T: RomTarget + ?Sized, M: FlashMap + ?Sized>(
    target: &mut T,
    map: &M,
    addr: u32,
    len: u32,
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    if len == 0 {
        return Ok(());
    }
    let (first, last) =
        page_span(map, addr, len).ok_or(ProgramError::OutsideFlash { addr, len })?;
    let total = u32::from(last - first) + 1;
    erase_pages(target, map, (first, last), total, |_| true, progress)
}

/// Programs `segments` (address, bytes; each call of the closure yields them again, empty
/// ones are ignored): erases as `options` say (the pages every segment in flash touches,
/// each once, so segments sharing a page do not erase each other), writes each segment
/// (write units in flash holding only the erased value are not programmed: the erase left
/// them so) and verifies each (CRC where the target offers it, else read-back). Segments
/// are checked against `map` before anything is erased. Blocks go through `buf` (its size
/// and [`RomTarget::max_transfer`] bound them).
pub fn program_segments<'d, T, M, I>(
    target: &mut T,
    map: &M,
    segments: impl Fn() -> I,
    options: Options,
    buf: &mut [u8],
    progress: &mut dyn Progress,
) -> Result<Programmed, ProgramError<T::Error>>
where
    T: RomTarget + ?Sized,
    M: FlashMap + ?Sized,
    I: Iterator<Item = (u32, &'d [u8])>,
{
    let all = || segments().filter(|(_, d)| !d.is_empty());
    let len_of = |data: &[u8], addr: u32| {
        u32::try_from(data.len()).map_err(|_| ProgramError::OutsideFlash {
            addr,
            len: u32::MAX,
        })
    };
    let in_flash = |addr: u32| map.page_at(addr).is_some();
    // Check everything first: nothing is erased for a file that cannot be written whole.
    let mut span: Option<(u16, u16)> = None;
    let mut done = Programmed::default();
    for (addr, data) in all() {
        let len = len_of(data, addr)?;
        done.segments += 1;
        done.bytes += u64::from(len);
        if !in_flash(addr) {
            if options.outside_flash {
                continue;
            }
            return Err(ProgramError::OutsideFlash { addr, len });
        }
        if options.erase == EraseMode::Touched {
            let (a, b) =
                page_span(map, addr, len).ok_or(ProgramError::OutsideFlash { addr, len })?;
            span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
    }
    let layout_of = |addr: u32| Layout {
        skip_erased: map.layout().skip_erased && in_flash(addr),
        ..map.layout()
    };
    match options.erase {
        EraseMode::Mass => target.erase(Erase::Mass)?,
        EraseMode::None => {}
        EraseMode::Touched => {
            if let Some(range) = span {
                // A page is erased when any flash segment touches it (union, each once).
                let touched = |page: u16| {
                    all().any(|(addr, data)| {
                        in_flash(addr)
                            && len_of(data, addr)
                                .ok()
                                .and_then(|len| page_span(map, addr, len))
                                .is_some_and(|(a, b)| (a..=b).contains(&page))
                    })
                };
                let total = (range.0..=range.1).filter(|&p| touched(p)).count() as u32;
                erase_pages(target, map, range, total, touched, progress)?;
            }
        }
    }
    if options.erase == EraseMode::None && !options.verify {
        // Units the write skips are trusted to be erased: without erase or verify, check them.
        for (addr, data) in all() {
            check_skipped_erased_with(target, addr, data, layout_of(addr), buf, progress)?;
        }
    }
    for (addr, data) in all() {
        done.skipped += u64::from(write_with(
            target,
            addr,
            data,
            layout_of(addr),
            buf,
            progress,
        )?);
    }
    if options.verify {
        // Covers the skipped units too: they must read back as the erased value they hold.
        for (addr, data) in all() {
            verify_with(target, addr, data, buf, progress)?;
        }
    }
    Ok(done)
}

/// Calls `f(block_addr, block)` for each padded, unit-aligned block covering `data` at `addr`;
/// blocks are at most `block_size` (and `buf`) long.
fn for_each_block<E>(
    addr: u32,
    data: &[u8],
    layout: Layout,
    block_size: usize,
    buf: &mut [u8],
    mut f: impl FnMut(u32, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let unit = layout.write_unit.max(1);
    let max = buf.len().max(unit as usize);
    let block_size = block_size.clamp(unit as usize, max) as u32 / unit * unit;
    let end = u64::from(addr) + data.len() as u64;
    let start = addr / unit * unit;
    let padded_end = end.div_ceil(u64::from(unit)) * u64::from(unit);
    let mut block_start = u64::from(start);
    while block_start < padded_end {
        // Blocks end on multiples of the block size so a long write stays aligned.
        let next_boundary = (block_start / u64::from(block_size) + 1) * u64::from(block_size);
        let block_end = next_boundary.min(padded_end);
        let n = (block_end - block_start) as usize;
        let Some(block) = buf.get_mut(..n) else {
            // A buffer smaller than one write unit: nothing sensible can be sent.
            return Ok(());
        };
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
    progress: &mut dyn Progress,
) -> Result<u32, ProgramError<T::Error>> {
    write_with(target, addr, data, layout, &mut [0u8; BLOCK], progress)
}

/// [`write()`] in blocks of up to `buf.len()` bytes (DfuSe moves 2048 per transfer).
pub fn write_with<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    layout: Layout,
    buf: &mut [u8],
    progress: &mut dyn Progress,
) -> Result<u32, ProgramError<T::Error>> {
    let total = data.len() as u32;
    let block_size = target.max_transfer();
    let skip = layout.skip_erased.then_some(layout.erased);
    let mut skipped = 0u32;
    progress.report(Phase::Write, 0, total);
    for_each_block::<ProgramError<T::Error>>(
        addr,
        data,
        layout,
        block_size,
        buf,
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
            progress.report(Phase::Write, done, total);
            Ok(())
        },
    )?;
    Ok(skipped)
}

/// Checks that the write units [`write()`] would skip for `data` at `addr` (those holding only
/// the erased value) read back as erased. For writes into flash that was not erased first
/// and is not verified afterwards: nothing else would prove those units hold the image.
pub fn check_skipped_erased<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    layout: Layout,
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    check_skipped_erased_with(target, addr, data, layout, &mut [0u8; BLOCK], progress)
}

fn check_skipped_erased_with<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    layout: Layout,
    buf: &mut [u8],
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    if !layout.skip_erased {
        return Ok(());
    }
    let total = data.len() as u32;
    let step = target.max_transfer().clamp(1, BLOCK);
    let block_size = target.max_transfer();
    let mut read = [0u8; BLOCK];
    progress.report(Phase::Verify, 0, total);
    for_each_block(addr, data, layout, block_size, buf, |block_addr, block| {
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
                    let got = &mut read[..n];
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
        progress.report(Phase::Verify, done, total);
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
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    verify_with(target, addr, data, &mut [0u8; BLOCK], progress)
}

fn verify_with<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    data: &[u8],
    buf: &mut [u8],
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    let total = data.len() as u32;
    progress.report(Phase::Verify, 0, total);
    if data.is_empty() {
        return Ok(());
    }
    // The checksum covers the exact range when it is word-aligned; otherwise read back.
    let mut checksum_failed = None;
    if addr % 4 == 0 && data.len() % 4 == 0 {
        if let Some(found) = target.checksum(addr, total)? {
            let expected = stm32_crc32(STM32_CRC_INIT, data);
            if found == expected {
                progress.report(Phase::Verify, total, total);
                return Ok(());
            }
            checksum_failed = Some((expected, found));
        }
    }
    read_back_compare(target, addr, data, buf, progress)?;
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
    buf: &mut [u8],
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    let total = data.len() as u32;
    let block = target.max_transfer().clamp(1, buf.len().max(1));
    let mut offset = 0usize;
    for chunk in data.chunks(block) {
        let Some(got) = buf.get_mut(..chunk.len()) else {
            break;
        };
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
        progress.report(Phase::Verify, offset as u32, total);
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `addr` in transfer-sized blocks.
pub fn read<T: RomTarget + ?Sized>(
    target: &mut T,
    addr: u32,
    buf: &mut [u8],
    progress: &mut dyn Progress,
) -> Result<(), ProgramError<T::Error>> {
    let total = buf.len() as u32;
    let block = target.max_transfer().clamp(1, BLOCK);
    let mut offset = 0usize;
    for chunk in buf.chunks_mut(block) {
        target.read_memory(addr.wrapping_add(offset as u32), chunk)?;
        offset += chunk.len();
        progress.report(Phase::Verify, offset as u32, total);
    }
    Ok(())
}

/// Erases the pages `data` touches, writes it (skipping write units that hold only the
/// erased value: the erase left them so) and verifies it: [`program_segments`] for one
/// segment. Returns the bytes skipped.
pub fn program<T: RomTarget + ?Sized, M: FlashMap + ?Sized>(
    target: &mut T,
    map: &M,
    addr: u32,
    data: &[u8],
    verify_after: bool,
    progress: &mut dyn Progress,
) -> Result<u32, ProgramError<T::Error>> {
    let options = Options {
        erase: EraseMode::Touched,
        verify: verify_after,
        outside_flash: false,
    };
    let done = program_segments(
        target,
        map,
        || core::iter::once((addr, data)),
        options,
        &mut [0u8; BLOCK],
        progress,
    )?;
    Ok(done.skipped as u32)
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
        for_each_block::<()>(
            0x0800_0010,
            &data,
            layout,
            256,
            &mut [0u8; BLOCK],
            |a, b| {
                seen[n] = (a, b.len());
                if n == 0 {
                    assert!(b[..16].iter().all(|&x| x == 0xFF));
                    assert!(b[16..].iter().all(|&x| x == 0xAA));
                }
                n += 1;
                Ok(())
            },
        )
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
