//! Power-safe boot state: a log of self-checking snapshot records in two state copies.
//!
//! Rules that make every cut safe:
//! - a record is a full snapshot with a sequence number and a CRC-32; the valid record with
//!   the highest sequence number is the state. A torn record (bad CRC, or a unit that reads
//!   back as an ECC error) is "not written": the previous record still stands;
//! - records are appended after the last unit that is not erased, so each write unit is
//!   programmed once between erases, even after garbage or a torn write;
//! - when the copy holding the newest record is full, the *other* copy is erased and the new
//!   record goes there: the newest record is never erased.
//!
//! - every record written is read back; a record that does not read back (a unit that was
//!   already programmed, e.g. with the erased value by a factory tool, or that reads back
//!   ECC-poisoned) leaves its units used and the record goes to a freshly erased other copy.
//!
//! Record layout (little-endian): magic u32, seq u32, len u16, format u8, phase u8,
//! flags u8 (bit 0 permanent, bit 1 reverted), image u8, strategy u8, banks u8 (1 = bank 2 mapped at the base), floor_counter u32, floor_version u64,
//! old_units u16, new_units u16, unit u32, old_size u32, new_size u32, then the installed
//! image's record (size u32, version [u8; 8], security counter u32, SHA-256 of its bytes
//! [u8; 32], its SHA256 TLV [u8; 32]; size 0 = none), digests (`Swapping` records of
//! strategies with a digest plan only: old units then new units, 16 bytes each), crc32 u32; padded with the
//! erased value to the write unit. The strategy code is [`crate::strategy::Strategy::code`].
use crate::layout::{Layout, Region, DIGEST_LEN, RECORD_FIXED_LEN};
use crate::Error;
use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

const MAGIC: u32 = 0x7453_4C42; // "BLSt"
const FORMAT: u8 = 2;
const HEADER_LEN: usize = (RECORD_FIXED_LEN - 4) as usize;
/// CRC-32 (ISO-HDLC) of state records and of the handoff mailbox: one table in flash.
pub(crate) static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What the engine is doing, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing in flight: boot the primary slot.
    Idle,
    /// The application staged an update and asked for it; nothing moved yet (overwrite
    /// resumes from here too: its source stays intact until the copy is verified).
    Pending,
    /// A swap plan is recorded; units are being exchanged.
    Swapping,
    /// The update was swapped in and handed one trial boot; if this phase is still recorded at
    /// the next boot, the application never confirmed it and the engine reverts.
    Trial,
}

impl Phase {
    fn code(self) -> u8 {
        match self {
            Phase::Idle => 1,
            Phase::Pending => 2,
            Phase::Swapping => 3,
            Phase::Trial => 4,
        }
    }
    fn from_code(c: u8) -> Option<Phase> {
        Some(match c {
            1 => Phase::Idle,
            2 => Phase::Pending,
            3 => Phase::Swapping,
            4 => Phase::Trial,
            _ => return None,
        })
    }
}

/// One state snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    /// Sequence number: the valid record with the highest one is the state.
    pub seq: u32,
    /// What is in flight.
    pub phase: Phase,
    /// Pending/Swapping: install without a trial boot.
    pub permanent: bool,
    /// Idle, written by a bank-swap revert before its flip: the boot after the reset reports
    /// [`crate::BootEvent::Reverted`] (and records that it did, clearing this).
    pub reverted: bool,
    /// Image index, for multi-image layouts (0 today).
    pub image: u8,
    /// Bank-swap layouts: the bank mapping this state wants in effect (bank 2 at the base).
    /// The bootloader programs the option bytes and resets until the mapping matches; the
    /// other strategies keep it `false`.
    pub banks_swapped: bool,
    /// Lowest security counter an image may carry (raised when an image is confirmed).
    pub floor_counter: u32,
    /// Lowest version (packed, see [`crate::ImageVersion::packed`]) an update may carry.
    pub floor_version: u64,
    /// Swapping/Trial: bytes of the old image kept for a revert (0 = no old image to keep).
    pub old_size: u32,
    /// Swapping/Trial: bytes of the new image being installed.
    pub new_size: u32,
    /// The image in the primary slot as last fully verified (for
    /// [`crate::VerifyPolicy::RecordedHash`]); `size == 0` means none.
    pub installed: InstalledImage,
}

/// A fully verified image and the SHA-256 of its bytes in the primary slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstalledImage {
    /// Bytes the image occupies from the primary slot's start (header, payload, TLVs);
    /// 0 = no image recorded.
    pub size: u32,
    /// The image's version.
    pub version: crate::ImageVersion,
    /// The image's security counter (0 when it has none).
    pub security_counter: u32,
    /// SHA-256 of the `size` bytes in the primary slot (what later boots compare).
    pub sha256: [u8; 32],
    /// The image's SHA256 TLV (what [`crate::ImageInfo::hash`] reports).
    pub hash: [u8; 32],
}

impl InstalledImage {
    /// No image recorded (`size == 0`, every other field zero).
    pub const NONE: InstalledImage = InstalledImage {
        size: 0,
        version: crate::ImageVersion::new(0, 0, 0, 0),
        security_counter: 0,
        sha256: [0; 32],
        hash: [0; 32],
    };
}

impl BootState {
    /// The state of a device with no valid record: a factory-programmed primary slot.
    pub const FACTORY: BootState = BootState {
        seq: 0,
        phase: Phase::Idle,
        permanent: false,
        reverted: false,
        image: 0,
        banks_swapped: false,
        floor_counter: 0,
        floor_version: 0,
        old_size: 0,
        new_size: 0,
        installed: InstalledImage::NONE,
    };

    /// The next snapshot: same fields, next sequence number, new phase (and no longer the
    /// record of a revert).
    pub fn next(&self, phase: Phase) -> BootState {
        BootState {
            seq: self.seq.wrapping_add(1),
            phase,
            reverted: false,
            ..*self
        }
    }

    /// The next snapshot in `Idle`: nothing in flight, so no plan sizes and no mode.
    pub fn idle(&self) -> BootState {
        BootState {
            old_size: 0,
            new_size: 0,
            permanent: false,
            ..self.next(Phase::Idle)
        }
    }

    /// Units (of `unit` bytes) the old image occupies.
    pub fn old_units(&self, unit: u32) -> u32 {
        self.old_size.div_ceil(unit.max(1))
    }

    /// Units (of `unit` bytes) the new image occupies.
    pub fn new_units(&self, unit: u32) -> u32 {
        self.new_size.div_ceil(unit.max(1))
    }

    fn digest_count(&self, unit: u32, strategy: u8) -> u32 {
        if self.phase == Phase::Swapping && plan_digests(strategy) {
            self.old_units(unit) + self.new_units(unit)
        } else {
            0
        }
    }

    fn record_len(&self, unit: u32, strategy: u8) -> u32 {
        RECORD_FIXED_LEN + self.digest_count(unit, strategy) * DIGEST_LEN as u32
    }

    fn header(&self, unit: u32, strategy: u8) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&self.seq.to_le_bytes());
        h[8..10].copy_from_slice(&(self.record_len(unit, strategy) as u16).to_le_bytes());
        h[10] = FORMAT;
        h[11] = self.phase.code();
        h[12] = u8::from(self.permanent) | u8::from(self.reverted) << 1;
        h[13] = self.image;
        h[14] = strategy;
        h[15] = u8::from(self.banks_swapped);
        h[16..20].copy_from_slice(&self.floor_counter.to_le_bytes());
        h[20..28].copy_from_slice(&self.floor_version.to_le_bytes());
        h[28..30].copy_from_slice(&(self.old_units(unit) as u16).to_le_bytes());
        h[30..32].copy_from_slice(&(self.new_units(unit) as u16).to_le_bytes());
        h[32..36].copy_from_slice(&unit.to_le_bytes());
        h[36..40].copy_from_slice(&self.old_size.to_le_bytes());
        h[40..44].copy_from_slice(&self.new_size.to_le_bytes());
        let i = &self.installed;
        h[44..48].copy_from_slice(&i.size.to_le_bytes());
        h[48..56].copy_from_slice(&i.version.to_bytes());
        h[56..60].copy_from_slice(&i.security_counter.to_le_bytes());
        h[60..92].copy_from_slice(&i.sha256);
        h[92..124].copy_from_slice(&i.hash);
        h
    }

    fn parse(h: &[u8; HEADER_LEN], unit: u32, strategy: u8) -> Option<(BootState, u32)> {
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        if u32_at(0) != MAGIC
            || h[10] != FORMAT
            || h[14] != strategy
            || u32_at(32) != unit
            || h[12] > 3
            || h[15] > 1
            || unit == 0
        {
            return None;
        }
        let mut fv = [0u8; 8];
        fv.copy_from_slice(&h[20..28]);
        let state = BootState {
            seq: u32_at(4),
            phase: Phase::from_code(h[11])?,
            permanent: h[12] & 1 == 1,
            reverted: h[12] & 2 == 2,
            image: h[13],
            banks_swapped: h[15] == 1,
            floor_counter: u32_at(16),
            floor_version: u64::from_le_bytes(fv),
            old_size: u32_at(36),
            new_size: u32_at(40),
            installed: InstalledImage {
                size: u32_at(44),
                version: {
                    let mut v = [0u8; 8];
                    v.copy_from_slice(&h[48..56]);
                    crate::ImageVersion::from_bytes(&v)
                },
                security_counter: u32_at(56),
                sha256: {
                    let mut d = [0u8; 32];
                    d.copy_from_slice(&h[60..92]);
                    d
                },
                hash: {
                    let mut d = [0u8; 32];
                    d.copy_from_slice(&h[92..124]);
                    d
                },
            },
        };
        // The unit counts are redundant with the sizes, plan sizes exist only while an update
        // moves (`Swapping`, `Trial`) and the mode only while one is in flight: a record that
        // breaks these is not one this code wrote.
        let moving = matches!(state.phase, Phase::Swapping | Phase::Trial);
        let consistent = u32::from(u16_at(28)) == state.old_units(unit)
            && u32::from(u16_at(30)) == state.new_units(unit)
            && (moving || (state.old_size == 0 && state.new_size == 0))
            && (!state.permanent || state.phase != Phase::Idle)
            && (!state.reverted || state.phase == Phase::Idle);
        let len = u32::from(u16_at(8));
        (consistent && len == state.record_len(unit, strategy)).then_some((state, len))
    }
}

/// Encodes `state` as the record [`StateStore::write`] would write for `layout`, with the
/// plan's `digests` (old units then new units; none unless the phase is `Swapping`), into
/// `out`, unpadded. Returns the record's length, or `None` when `out` is too small or the
/// digest count does not match. For tools and tests that plant records (old, forged) without
/// the store's rules.
pub fn encode_record(
    state: &BootState,
    layout: &Layout,
    digests: &[[u8; DIGEST_LEN]],
    out: &mut [u8],
) -> Option<usize> {
    let unit = layout.unit();
    let strategy = strategy_code(layout);
    if digests.len() != state.digest_count(unit, strategy) as usize {
        return None;
    }
    let len = state.record_len(unit, strategy) as usize;
    let out = out.get_mut(..len)?;
    let header = state.header(unit, strategy);
    out[..HEADER_LEN].copy_from_slice(&header);
    for (i, d) in digests.iter().enumerate() {
        let at = HEADER_LEN + i * DIGEST_LEN;
        out[at..at + DIGEST_LEN].copy_from_slice(d);
    }
    seal_record(out);
    Some(len)
}

/// Writes the CRC a record ends with over everything before it (`record` is one unpadded
/// record, as [`encode_record`] returns it), e.g. after a tool changed a field. Records shorter
/// than the CRC are left alone.
pub fn seal_record(record: &mut [u8]) {
    if let Some(body) = record.len().checked_sub(4) {
        let crc = CRC32.checksum(&record[..body]);
        record[body..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Which half of a swap plan a digest belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestSet {
    /// The old image's units, as they sit in the primary slot before the swap.
    Old,
    /// The new image's units, as they sit in the secondary slot (staged).
    New,
}

/// The loaded state and where to append the next record.
#[derive(Clone, Copy, Debug)]
pub struct StateStore {
    /// The current state: the newest valid record, or [`BootState::FACTORY`] if none.
    pub state: BootState,
    /// Absolute offset (flash offset space) of the newest record, if any.
    record_at: Option<u32>,
    /// Copy holding the newest record (appends go there while it has room).
    current: usize,
    /// Flash offset of the first byte after the last non-erased unit, per copy.
    append_at: [u32; 2],
    /// Whether the state was loaded from a valid record (false: factory default).
    pub found: bool,
}

fn strategy_code(layout: &Layout) -> u8 {
    crate::strategy::Strategy::code(&layout.strategy())
}

/// Whether `Swapping` records of the strategy with this code carry unit digests.
fn plan_digests(strategy: u8) -> bool {
    use crate::strategy::{Strategy, StrategyKind};
    StrategyKind::ALL
        .iter()
        .find(|k| Strategy::code(*k) == strategy)
        .is_some_and(|k| k.plan_digests())
}

impl StateStore {
    /// Scans both copies. Never fails: unreadable or garbled units are skipped.
    pub fn load<F: NorFlash>(flash: &mut F, layout: &Layout) -> StateStore {
        let mut best: Option<(BootState, u32, usize)> = None;
        let mut append_at = [0u32; 2];
        for (copy, region) in layout.spec().state.iter().enumerate() {
            let region_off = layout.offset(region.start);
            append_at[copy] = region_off;
            scan_copy(flash, layout, *region, |found| match found {
                Scanned::Record(state, at, end) => {
                    append_at[copy] = end;
                    let newer = best.is_none_or(|(b, _, _)| state.seq > b.seq);
                    if newer {
                        best = Some((state, at, copy));
                    }
                }
                Scanned::Used(end) => append_at[copy] = end,
            });
        }
        match best {
            Some((state, at, copy)) => StateStore {
                state,
                record_at: Some(at),
                current: copy,
                append_at,
                found: true,
            },
            None => StateStore {
                state: BootState::FACTORY,
                record_at: None,
                current: 0,
                append_at,
                found: false,
            },
        }
    }

    /// Reads digest `index` of `set` from the newest record (a swap plan).
    pub fn digest<F: NorFlash>(
        &self,
        flash: &mut F,
        layout: &Layout,
        set: DigestSet,
        index: u32,
    ) -> Result<[u8; DIGEST_LEN], Error> {
        let at = self.record_at.ok_or(Error::Corrupt)?;
        let unit = layout.unit();
        let (count, base) = match set {
            DigestSet::Old => (self.state.old_units(unit), 0),
            DigestSet::New => (self.state.new_units(unit), self.state.old_units(unit)),
        };
        if self.state.phase != Phase::Swapping
            || index >= count
            || !plan_digests(strategy_code(layout))
        {
            return Err(Error::Corrupt);
        }
        let mut d = [0u8; DIGEST_LEN];
        let off = at + HEADER_LEN as u32 + (base + index) * DIGEST_LEN as u32;
        flash.read(off, &mut d).map_err(|_| Error::Corrupt)?;
        Ok(d)
    }

    /// Appends `state` (with digests from `digests` when it is a swap plan) and reads it
    /// back. `digests(set, index)` is asked for each digest in record order.
    ///
    /// A record that fails to write or to read back (units programmed earlier, e.g. with the
    /// erased value by a factory tool; a unit that reads back ECC-poisoned) leaves its units
    /// used; the record then goes to the start of the other copy, erased first. That copy
    /// never holds the newest record (it is in `current`, or nowhere), so the erase is safe at
    /// any cut, and a state area that holds no valid record at all is recovered the same way.
    pub fn write<F: NorFlash>(
        &mut self,
        flash: &mut F,
        layout: &Layout,
        state: BootState,
        mut digests: impl FnMut(&mut F, DigestSet, u32) -> Result<[u8; DIGEST_LEN], Error>,
    ) -> Result<(), Error> {
        let wu = layout.write_unit();
        let padded = state
            .record_len(layout.unit(), strategy_code(layout))
            .div_ceil(wu)
            * wu;
        let regions = layout.spec().state;
        let fits = |copy: usize, at: u32| at + padded <= layout.offset(regions[copy].end());
        if (self.found && self.state.seq >= SEQ_REBASE_AT) || state.seq >= SEQ_REBASE_AT {
            return self.rebase(flash, layout, state, &mut digests);
        }
        let mut failure = None;
        if fits(self.current, self.append_at[self.current]) {
            let at = self.append_at[self.current];
            match self.write_at(flash, layout, state, self.current, at, &mut digests) {
                Ok(()) => return Ok(()),
                Err(e) => failure = Some(e),
            }
        }
        // The current copy is full, or refused the record: compact into the other copy.
        let other = 1 - self.current;
        let start = layout.offset(regions[other].start);
        flash
            .erase(start, start + regions[other].size)
            .map_err(flash_error)?;
        self.append_at[other] = start;
        if !fits(other, start) {
            return Err(failure.unwrap_or(Error::Corrupt));
        }
        self.write_at(flash, layout, state, other, start, &mut digests)
    }

    /// Renumbers from 1 after forged sequence numbers: the record goes to the freshly erased
    /// other copy, then the copy that held the forged ones is erased. A cut before that erase
    /// leaves the old newest record in place (and the next write rebases again).
    fn rebase<F: NorFlash>(
        &mut self,
        flash: &mut F,
        layout: &Layout,
        state: BootState,
        digests: &mut impl FnMut(&mut F, DigestSet, u32) -> Result<[u8; DIGEST_LEN], Error>,
    ) -> Result<(), Error> {
        let regions = layout.spec().state;
        let (old, other) = (self.current, 1 - self.current);
        let start = layout.offset(regions[other].start);
        flash
            .erase(start, start + regions[other].size)
            .map_err(flash_error)?;
        self.append_at[other] = start;
        let state = BootState { seq: 1, ..state };
        self.write_at(flash, layout, state, other, start, digests)?;
        let start = layout.offset(regions[old].start);
        flash
            .erase(start, start + regions[old].size)
            .map_err(flash_error)?;
        self.append_at[old] = start;
        Ok(())
    }

    fn write_at<F: NorFlash>(
        &mut self,
        flash: &mut F,
        layout: &Layout,
        state: BootState,
        copy: usize,
        at: u32,
        digests: &mut impl FnMut(&mut F, DigestSet, u32) -> Result<[u8; DIGEST_LEN], Error>,
    ) -> Result<(), Error> {
        let wu = layout.write_unit();
        let unit = layout.unit();
        let strategy = strategy_code(layout);
        let len = state.record_len(unit, strategy);
        // Mark the cached position used before writing: a torn or refused write still burns
        // the units.
        self.append_at[copy] = at + len.div_ceil(wu) * wu;
        let mut w = RecordWriter::new(at, layout.erased());
        w.push(flash, &state.header(unit, strategy))?;
        for (set, count) in [
            (DigestSet::Old, state.old_units(unit)),
            (DigestSet::New, state.new_units(unit)),
        ] {
            if state.digest_count(unit, strategy) == 0 {
                break;
            }
            for i in 0..count {
                let d = digests(flash, set, i)?;
                w.push(flash, &d)?;
            }
        }
        w.finish(flash, wu)?;
        // Read it back: a unit that was programmed before (PROGERR on some parts, silently
        // poisoned on others) must not leave a record that is not there.
        let end = layout.offset(layout.spec().state[copy].end());
        match try_record(flash, layout, at, end) {
            Some((back, back_len)) if back == state && back_len == len => {}
            _ => return Err(Error::Flash(NorFlashErrorKind::Other)),
        }
        self.state = state;
        self.record_at = Some(at);
        self.current = copy;
        self.found = true;
        Ok(())
    }
}

/// The engine's error for a failed flash operation, keeping the driver's kind.
pub(crate) fn flash_error<E: NorFlashError>(e: E) -> Error {
    Error::Flash(e.kind())
}

/// Sequence numbers are compared as plain integers (a total order, so the newest record is
/// the same whatever the scan order). They never get near wrapping in use: 2^31 records is
/// far beyond any state area's endurance. A record numbered this high was forged; the next
/// write renumbers from 1 (see [`StateStore::write`]).
pub const SEQ_REBASE_AT: u32 = 0x8000_0000;

enum Scanned {
    /// A valid record at offset, ending (padded) at offset.
    Record(BootState, u32, u32),
    /// A non-erased or unreadable unit ending at offset.
    Used(u32),
}

const SCAN_BLOCK: usize = 256;

fn scan_copy<F: NorFlash>(
    flash: &mut F,
    layout: &Layout,
    region: Region,
    mut found: impl FnMut(Scanned),
) {
    let wu = layout.write_unit();
    let erased = layout.erased();
    let start = layout.offset(region.start);
    let end = start + region.size;
    let mut pos = start;
    let mut block = [0u8; SCAN_BLOCK];
    while pos < end {
        // Fast path: a whole block reads and is erased.
        let n = (end - pos).min(SCAN_BLOCK as u32);
        if flash.read(pos, &mut block[..n as usize]).is_ok()
            && block[..n as usize].iter().all(|&b| b == erased)
        {
            pos += n;
            continue;
        }
        let block_end = pos + n;
        while pos < block_end {
            match try_record(flash, layout, pos, end) {
                Some((state, len)) => {
                    let padded = len.div_ceil(wu) * wu;
                    found(Scanned::Record(state, pos, pos + padded));
                    pos += padded;
                }
                None => {
                    let mut unit = [0u8; 32];
                    let u = &mut unit[..wu.min(32) as usize];
                    let blank = flash.read(pos, u).is_ok() && u.iter().all(|&b| b == erased);
                    pos += wu;
                    if !blank {
                        found(Scanned::Used(pos));
                    }
                }
            }
        }
    }
}

fn try_record<F: NorFlash>(
    flash: &mut F,
    layout: &Layout,
    pos: u32,
    end: u32,
) -> Option<(BootState, u32)> {
    if end - pos < RECORD_FIXED_LEN {
        return None;
    }
    let mut h = [0u8; HEADER_LEN];
    flash.read(pos, &mut h).ok()?;
    let (state, len) = BootState::parse(&h, layout.unit(), strategy_code(layout))?;
    if len > end - pos {
        return None;
    }
    let mut digest = CRC32.digest();
    digest.update(&h);
    let mut off = pos + HEADER_LEN as u32;
    let crc_at = pos + len - 4;
    let mut buf = [0u8; 64];
    while off < crc_at {
        let n = (crc_at - off).min(64) as usize;
        flash.read(off, &mut buf[..n]).ok()?;
        digest.update(&buf[..n]);
        off += n as u32;
    }
    let mut crc = [0u8; 4];
    flash.read(crc_at, &mut crc).ok()?;
    (u32::from_le_bytes(crc) == digest.finalize()).then_some((state, len))
}

/// Streams a record to flash through a small buffer, computing the CRC as it goes.
struct RecordWriter {
    at: u32,
    buf: [u8; 256],
    fill: usize,
    crc: crc::Digest<'static, u32>,
    erased: u8,
}

impl RecordWriter {
    fn new(at: u32, erased: u8) -> Self {
        RecordWriter {
            at,
            buf: [0; 256],
            fill: 0,
            crc: CRC32.digest(),
            erased,
        }
    }

    fn push<F: NorFlash>(&mut self, flash: &mut F, mut data: &[u8]) -> Result<(), Error> {
        self.crc.update(data);
        self.raw(flash, &mut data)
    }

    fn raw<F: NorFlash>(&mut self, flash: &mut F, data: &mut &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let n = (self.buf.len() - self.fill).min(data.len());
            self.buf[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            *data = &data[n..];
            if self.fill == self.buf.len() {
                flash.write(self.at, &self.buf).map_err(flash_error)?;
                self.at += self.buf.len() as u32;
                self.fill = 0;
            }
        }
        Ok(())
    }

    fn finish<F: NorFlash>(mut self, flash: &mut F, write_unit: u32) -> Result<(), Error> {
        let crc = self.crc.clone().finalize().to_le_bytes();
        self.raw(flash, &mut &crc[..])?;
        if self.fill > 0 {
            let padded = (self.fill as u32).div_ceil(write_unit) as usize * write_unit as usize;
            let erased = self.erased;
            self.buf[self.fill..padded].fill(erased);
            flash
                .write(self.at, &self.buf[..padded])
                .map_err(flash_error)?;
        }
        Ok(())
    }
}
