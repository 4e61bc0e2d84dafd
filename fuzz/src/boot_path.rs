//! `boot_path`: the update engine's boot path over arbitrary flash content.
//!
//! The input picks a reduced part of one of the campaign's families (write unit, erased value,
//! ECC and rewrite rules of the real part, 16 small sectors), a strategy, an image kit, a
//! verify policy and a copy buffer; which valid images sit in the primary slot, the staging
//! area and (swap) the secondary slot's first unit; then garbage in the state copies and the
//! slots (factory-preloaded, or programmed through `NorFlash::write`, some torn), partly
//! erased sectors, well-formed state records with arbitrary fields (through the engine's own
//! `StateStore::write`, or `state::encode_record` with odd fields written over it and a CRC
//! that is right or one bit off); then a device
//! life: boots (some cut at a chosen operation, inside it or around it), application calls
//! (`request_upgrade`, `confirm`, `erase_staging`, `write_staged`, some cut) and, during a
//! swap trial, damage to the saved old image; finally uncut boots until the device is stable.
//!
//! What must hold (each a `panic!` naming the guarantee):
//! - nothing panics; with power on, `BootLoader::boot` returns `Ok`, never
//!   `Recovery(Unsettled)`;
//! - `Boot(t)`: `t.address` is the primary slot and the `t.image.size` bytes there are exactly
//!   one of the valid images the input placed, described exactly (`ImageInfo` equal to what
//!   the check says of it, on every verify policy), or, with the hash-only kit, bytes that
//!   verify on their own and are described as their header says (the input can write a whole
//!   valid hash-kit image; it cannot forge a signed one); the image's real security counter
//!   is not below the recorded floor; `trial` exactly when the event is `TrialStarted` or
//!   `RevertImpossible`, and with overwrite only the latter (a forged `Trial` record);
//!   `RevertImpossible` only from a recorded trial, and (swap) only when no image of the
//!   recorded old size at or above the floor is intact at the start of the secondary slot;
//! - `Recovery(NoValidImage)` only when neither the primary slot holds a placed image at or
//!   above the floor nor the staging area an acceptable one (the latter is excused once, in
//!   a boot that started with work in flight and gave it up: the engine tries one install
//!   per boot);
//! - an unconfirmed trial is reverted: when the image that ran before the update is intact
//!   where the swap saved it (the secondary slot's start), the next completed boot starts it;
//!   otherwise the trial image comes back, still a trial, with `BootEvent::RevertImpossible`
//!   (never as a confirmed image); a confirmed trial image keeps booting until the
//!   application asks for another update;
//! - after the life, uncut boots become quiet (a boot with no flash operation) within
//!   [`SETTLE_BOOTS`], and the boots after a quiet one are quiet too and decide the same.
use std::sync::OnceLock;

use brickless_boot::layout::{DIGEST_LEN, RECORD_FIXED_LEN};
use brickless_boot::state::{encode_record, DigestSet, InstalledImage, StateStore};
use brickless_boot::{
    BootDecision, BootEvent, BootLoader, BootState, Error, Exec, ImageCheck, ImageInfo,
    ImageVersion, Layout, Phase, RecoveryReason, StrategyKind, Updater, UpgradeMode, VerifyPolicy,
};
use brickless_campaign::kit::{build_image, Checker, McubootKit};
use brickless_campaign::{reduced_layout, reduced_part, CAMPAIGN_PARTS};
use brickless_flash::Part;
use brickless_flash_model::{CutPhase, CutPoint, SimFlash, TearAt};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use sha2::{Digest, Sha256};

use crate::input::Input;
use crate::{relax_from_env, trace};

/// Uncut boots after the life within which one must make no flash operation.
pub const SETTLE_BOOTS: u32 = 6;
/// Quiet boots checked after the first quiet one.
const QUIET_CHECKS: u32 = 2;

/// A valid image the input may place, and what the engine's check says about it.
pub struct PoolImage {
    pub bytes: Vec<u8>,
    pub info: ImageInfo,
    /// SHA-256 of the image's bytes (what `VerifyPolicy::RecordedHash` records).
    pub sha256: [u8; 32],
}

/// One reduced part with its two layouts and image pools.
pub struct Family {
    pub part: &'static Part,
    /// Swap, overwrite.
    pub layouts: [Layout; 2],
    /// Hash-kit images, MCUboot (ed25519) images.
    pub pools: [Vec<PoolImage>; 2],
    pub mcuboot: Checker,
}

/// (major, minor, security counter, size in quarter units, extra bytes, payload seed)
const POOL: [(u8, u8, u32, u32, i32, u64); 6] = [
    (1, 2, 2, 6, 0, 1),   // the "old" image of the campaign: 1.5 units
    (1, 3, 3, 9, 0, 2),   // the "new" one: 2.25 units
    (1, 1, 1, 4, 0, 3),   // an older one filling exactly one unit
    (2, 0, 5, 16, 0, 4),  // the whole slot
    (1, 3, 2, 12, -4, 5), // ends 4 bytes before a unit boundary
    (1, 2, 2, 0, 100, 6), // tiny, same version as the old one
];

/// A flash over a byte slice, to ask the engine's own checker about a pool image.
struct Slice<'a>(&'a [u8]);

impl ErrorType for Slice<'_> {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Slice<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        let at = offset as usize;
        let src = self
            .0
            .get(at..at + out.len())
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn families() -> &'static [Family] {
    static FAMILIES: OnceLock<Vec<Family>> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        let kit = McubootKit::new();
        let mcuboot = Checker::Mcuboot(kit.keys);
        CAMPAIGN_PARTS
            .iter()
            .map(|name| {
                let real = brickless_flash::part(name).expect("campaign part");
                let part = reduced_part(real);
                let layouts = [
                    reduced_layout(part, StrategyKind::Swap).expect("reduced swap layout"),
                    reduced_layout(part, StrategyKind::Overwrite)
                        .expect("reduced overwrite layout"),
                ];
                let unit = layouts[0].unit();
                let wu = part.geometry.write_unit;
                let max = layouts[0].max_image_size();
                let mut fast = Vec::new();
                let mut signed = Vec::new();
                for (major, minor, counter, quarters, extra, seed) in POOL {
                    let size = (unit * quarters / 4).saturating_add_signed(extra).min(max);
                    let version = ImageVersion {
                        major,
                        minor,
                        revision: 0,
                        build: seed as u32,
                    };
                    for (checker, bytes, pool) in [
                        (
                            Checker::Hash,
                            build_image(version, counter, size, seed),
                            &mut fast,
                        ),
                        (
                            mcuboot,
                            kit.build(version, counter, size, seed, wu),
                            &mut signed,
                        ),
                    ] {
                        let mut check = checker;
                        // In an erased slot: the verifier may read past the image's end.
                        let mut slot = bytes.clone();
                        slot.resize(max as usize, part.geometry.erased);
                        let info = check.check(&mut Slice(&slot), 0, max).unwrap_or_else(|| {
                            panic!("{name}: pool image {size} bytes ({checker:?}) does not verify")
                        });
                        assert!(info.size as usize <= bytes.len());
                        let sha256 = sha256(&bytes[..info.size as usize]);
                        pool.push(PoolImage {
                            bytes,
                            info,
                            sha256,
                        });
                    }
                }
                Family {
                    part,
                    layouts,
                    pools: [fast, signed],
                    mcuboot,
                }
            })
            .collect()
    })
}

/// Independent check of a hash-kit image (magic, length, SHA-256 of everything before the
/// last 32 bytes), written here rather than borrowed from the kit.
fn fast_kit_valid(bytes: &[u8]) -> bool {
    if bytes.len() < 52 || &bytes[..4] != b"BLTI" {
        return false;
    }
    let size = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
    if size != bytes.len() {
        return false;
    }
    sha256(&bytes[..size - 32])[..] == bytes[size - 32..]
}

/// The security counter a hash-kit image's header states (`fast_kit_valid` images only).
fn fast_kit_counter(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]])
}

/// What a boot started, as far as the harness can tell from the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ident {
    /// Pool image index.
    Pool(usize),
    /// A hash-kit image the input wrote itself: its size, the security counter its header
    /// states, the SHA-256 of its bytes.
    Forged {
        size: u32,
        counter: u32,
        sha256: [u8; 32],
    },
}

/// What the application has been promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A trial was not confirmed: the next completed boot starts this (the image before it).
    Revert(Ident),
    /// A trial was confirmed: this keeps booting until another update is requested.
    Keep(Ident),
}

/// Garbage bytes as written: raw, or (under `RecordedHash`) masked with a fixed keystream so
/// the fuzzer cannot steer a CRC or hash comparison by copying the value it saw compared.
struct Masker {
    on: bool,
    state: u64,
}

impl Masker {
    fn apply(&mut self, data: &mut [u8]) {
        if !self.on {
            return;
        }
        for b in data {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b ^= (self.state >> 56) as u8;
        }
    }
}

struct Device<'f> {
    fam: &'f Family,
    pool: &'f [PoolImage],
    mcuboot: bool,
    layout: Layout,
    check: Checker,
    policy: VerifyPolicy,
    flash: SimFlash,
    buf: Vec<u8>,
    /// Pool images the input placed somewhere (only these may boot).
    placed: Vec<usize>,
    /// Pool image placed in the primary / staging area at the start, if any.
    primary_img: Option<usize>,
    staged_img: Option<usize>,
    /// The last image a completed boot started outside a trial.
    last_booted: Option<Ident>,
    /// The trial image running (and its real security counter), if the last completed boot
    /// was a trial.
    trial_running: Option<(Ident, u32)>,
    expect: Option<Expect>,
    masker: Masker,
    /// Checks switched off for engine bugs found earlier (see [`KNOWN_ENGINE_BUGS`]; none by
    /// default).
    relax: &'f [&'f str],
    /// Set when a relaxed check met its known bug: the rest of the input is skipped.
    stop: bool,
    /// An application is running: the last thing that happened was a completed boot (or an
    /// application call with power kept). After a power loss, only the bootloader runs.
    app_running: bool,
}

impl Device<'_> {
    fn relaxed(&self, name: &str) -> bool {
        self.relax.contains(&name)
    }

    fn wu(&self) -> u32 {
        self.layout.write_unit()
    }

    fn erased(&self) -> u8 {
        self.layout.erased()
    }

    fn base(&self) -> u32 {
        self.fam.part.geometry.base()
    }

    fn end(&self) -> u32 {
        self.fam.part.geometry.end()
    }

    fn sector(&self) -> u32 {
        self.fam.part.geometry.max_sector_size()
    }

    fn bootloader(&mut self) -> BootLoader<'_, &mut SimFlash, Checker> {
        let mut e = BootLoader::new(&mut self.flash, self.layout, self.check, &mut self.buf)
            .expect("the harness's buffer sizes are valid");
        e.set_verify_policy(self.policy);
        e
    }

    fn updater(&mut self) -> Updater<&mut SimFlash, Checker> {
        Updater::new(&mut self.flash, self.layout, self.check)
    }

    fn state(&mut self) -> BootState {
        StateStore::load(&mut self.flash, &self.layout).state
    }

    /// Arms a cut chosen by the input at `op_count() + 0..span`, or none.
    fn maybe_cut(&mut self, inp: &mut Input, one_in: u32, span: u32) -> Option<CutPoint> {
        if !inp.one_in(one_in) {
            return None;
        }
        let op = self.flash.op_count() + u64::from(inp.below(span));
        let phase = CutPhase::ALL[inp.below(3) as usize];
        let cut = CutPoint::new(op, phase);
        self.flash.arm_cut(cut);
        Some(cut)
    }

    /// Power back on after something that may have been cut; true if power had been lost.
    fn restore_power(&mut self) -> bool {
        self.flash.disarm_cut();
        let lost = !self.flash.is_powered();
        self.flash.power_cycle();
        lost
    }

    /// An absolute, write-unit aligned address somewhere interesting.
    fn spot(&mut self, inp: &mut Input) -> u32 {
        let spec = *self.layout.spec();
        let staging = self.layout.staging();
        let wu = self.wu();
        let within =
            |inp: &mut Input, start: u32, size: u32| start + inp.below((size / wu).max(1)) * wu;
        let after = |img: Option<usize>, start: u32, pool: &[PoolImage], k: u32| match img {
            Some(i) => start + pool[i].info.size.div_ceil(wu) * wu + k * wu,
            None => start + k * wu,
        };
        match inp.below(9) {
            0 => within(inp, spec.state[0].start, spec.state[0].size),
            1 => within(inp, spec.state[1].start, spec.state[1].size),
            2 => spec.primary.end() - (1 + inp.below(16)) * wu,
            3 => staging.end() - (1 + inp.below(16)) * wu,
            4 => {
                let k = inp.below(8);
                after(self.primary_img, spec.primary.start, self.pool, k)
            }
            5 => {
                let k = inp.below(8);
                after(self.staged_img, staging.start, self.pool, k)
            }
            6 => within(inp, spec.secondary.start, spec.secondary.size),
            7 => within(inp, spec.primary.start, spec.primary.size),
            _ => spec.secondary.end() - (1 + inp.below(16)) * wu,
        }
    }

    /// Garbage for `units` write units: input bytes (masked under `RecordedHash`), with no
    /// unit left holding only the erased value (see the README: a unit programmed with the
    /// erased value cannot be told from an erased one, and the hardware refuses or poisons
    /// its next program; nothing in a real device writes such units where the engine appends).
    fn garbage(&mut self, inp: &mut Input, units: u32) -> Vec<u8> {
        let wu = self.wu() as usize;
        let mut data = inp.bytes_padded(units as usize * wu);
        self.masker.apply(&mut data);
        let erased = self.erased();
        for unit in data.chunks_mut(wu) {
            if unit.iter().all(|&b| b == erased) {
                unit[0] = erased ^ 0x5A;
            }
        }
        data
    }

    fn clamp_len(&self, at: u32, len: usize) -> usize {
        len.min(self.end().saturating_sub(at) as usize)
    }

    fn preload_garbage(&mut self, inp: &mut Input) {
        let at = self.spot(inp);
        let units = 1 + inp.below(8);
        let data = self.garbage(inp, units);
        let n = self.clamp_len(at, data.len());
        trace!("preload {n} garbage bytes at {at:#x}");
        let _ = self.flash.preload(at, &data[..n]);
    }

    fn write_garbage(&mut self, inp: &mut Input) {
        let at = self.spot(inp);
        let units = 1 + inp.below(8);
        let data = self.garbage(inp, units);
        let n = self.clamp_len(at, data.len());
        if inp.one_in(3) {
            let op = self.flash.op_count();
            self.flash.arm_cut(CutPoint::new(op, CutPhase::Torn));
        }
        let off = at - self.base();
        let cut = self.flash.armed_cut();
        let r = self.flash.write(off, &data[..n]);
        trace!("write {n} garbage bytes at {at:#x} (cut {cut:?}): {r:?}");
        self.restore_power();
    }

    /// Flash damage during a trial (worn-out cells, a stray debugger write): garbage
    /// preloaded over part of the saved old image at the start of the secondary slot. Only
    /// while a swap trial is recorded, so no other promise is affected; the next boot must
    /// then bring the trial back with `RevertImpossible` instead of reverting. If a cut boot
    /// had already started the revert (the primary no longer holds the trial image), this is
    /// a second fault: neither image may survive whole, and nothing is promised.
    fn damage_trial_source(&mut self, inp: &mut Input) {
        let st = self.state();
        let wu = self.wu();
        let off = inp.below(st.old_size.div_ceil(wu).max(1)) * wu;
        let units = 1 + inp.below(4);
        let data = self.garbage(inp, units);
        if st.phase != Phase::Trial || self.layout.strategy() != StrategyKind::Swap {
            return;
        }
        let at = self.layout.spec().secondary.start + off;
        let n = self.clamp_len(at, data.len());
        let primary = self.layout.spec().primary.start;
        let untouched = self
            .trial_running
            .is_some_and(|(id, _)| self.holds_ident(primary, id));
        trace!("damage {n} bytes of the trial's revert source at {at:#x} (trial image untouched: {untouched})");
        let _ = self.flash.preload(at, &data[..n]);
        if !untouched {
            self.expect = None;
        }
    }

    fn erase_sector(&mut self, inp: &mut Input) {
        let at = self.spot(inp);
        let s = self.sector();
        let start = at - (at - self.base()) % s;
        if inp.bool() {
            let op = self.flash.op_count();
            self.flash.arm_cut(CutPoint::new(op, CutPhase::Torn));
        }
        let off = start - self.base();
        let r = self.flash.erase(off, off + s);
        trace!("erase sector {start:#x}: {r:?}");
        self.restore_power();
    }

    fn installed(&mut self, inp: &mut Input) -> InstalledImage {
        let pick = inp.below(4);
        if pick == 0 && self.policy == VerifyPolicy::EveryBoot {
            // Anything: under EveryBoot the record is written, never trusted.
            return InstalledImage {
                size: inp.u32() % (self.layout.max_image_size() + 64),
                version: ImageVersion {
                    major: inp.byte(),
                    minor: inp.byte(),
                    revision: inp.u16(),
                    build: inp.u32(),
                },
                security_counter: inp.u32() % 8,
                sha256: inp.bytes_padded(32).try_into().unwrap_or([0; 32]),
                hash: inp.bytes_padded(32).try_into().unwrap_or([0; 32]),
            };
        }
        if pick == 1 && !self.placed.is_empty() {
            // The record the engine would write for a placed image.
            let i = self.placed[inp.below(self.placed.len() as u32) as usize];
            let img = &self.pool[i];
            return InstalledImage {
                size: img.info.size,
                version: img.info.version,
                security_counter: img.info.security_counter,
                sha256: img.sha256,
                hash: img.info.hash,
            };
        }
        InstalledImage::NONE
    }

    /// An image size for a record, from one input byte: a whole number of units (up to
    /// `max_units`; bytes below `max_units + 1` mean just that), a pool image's size (what a
    /// plan for it records), or a size that ends inside its last unit.
    fn image_size(&self, inp: &mut Input, max_units: u32) -> u32 {
        let unit = self.layout.unit();
        let b = u32::from(inp.byte());
        let (units, variant) = (b % (max_units + 1), b / (max_units + 1));
        match variant % 4 {
            0 => units * unit,
            1 => {
                self.pool[(variant / 4) as usize % self.pool.len()]
                    .info
                    .size
            }
            _ => (units * unit).saturating_sub((variant * 37 + 3) % unit),
        }
    }

    fn arbitrary_state(&mut self, inp: &mut Input, prev: &BootState, max_units: u32) -> BootState {
        let seq = match inp.below(4) {
            0 | 1 => prev.seq.wrapping_add(1),
            2 => prev.seq.wrapping_sub(inp.below(3)),
            // Sequence numbers far from the previous record (engine finding seq-order, fixed:
            // numbers past 2^31 are renumbered); relaxed, stay near the previous record.
            _ if self.relaxed("seq-order") => prev.seq.wrapping_add(inp.below(1 << 16)),
            _ => inp.u32(),
        };
        let phase =
            [Phase::Idle, Phase::Pending, Phase::Swapping, Phase::Trial][inp.below(4) as usize];
        let floor_counter = if inp.one_in(8) {
            inp.u32()
        } else {
            inp.below(7)
        };
        let floor_version = match inp.below(4) {
            0 | 1 => 0,
            2 => {
                let v = self.pool[inp.below(self.pool.len() as u32) as usize]
                    .info
                    .version;
                v.packed()
            }
            _ => inp.u64(),
        };
        BootState {
            seq,
            phase,
            permanent: inp.bool(),
            reverted: inp.one_in(8),
            image: if inp.one_in(8) { inp.byte() } else { 0 },
            banks_swapped: inp.one_in(8),
            floor_counter,
            floor_version,
            old_size: self.image_size(inp, max_units),
            new_size: self.image_size(inp, max_units),
            installed: self.installed(inp),
        }
    }

    /// Bytes of unit `i` an image of `size` bytes covers, rounded up to the write unit (what
    /// a swap plan digests and a swap copies of that unit).
    fn span(&self, size: u32, i: u32) -> u32 {
        let unit = self.layout.unit();
        let wu = self.wu();
        let rest = size.saturating_sub(i * unit);
        (rest.div_ceil(wu) * wu).min(unit)
    }

    /// Truncated SHA-256 of `len` bytes at absolute `at`, as a swap plan records a unit
    /// (zeros when they do not read).
    fn unit_digest(&self, at: u32, len: u32) -> [u8; DIGEST_LEN] {
        let mut buf = vec![0u8; len as usize];
        let mut d = [0u8; DIGEST_LEN];
        if self.flash.read_abs(at, &mut buf).is_ok() {
            d.copy_from_slice(&sha256(&buf)[..DIGEST_LEN]);
        }
        d
    }

    /// Digests for a plan: the true ones of the current units (so the plan is one the engine
    /// could have made) or arbitrary.
    fn plan_digests(&mut self, inp: &mut Input, st: &BootState) -> Vec<[u8; DIGEST_LEN]> {
        let spec = *self.layout.spec();
        let unit = self.layout.unit();
        let truthful = !inp.one_in(4);
        let mut out = Vec::new();
        for (set, size) in [(DigestSet::Old, st.old_size), (DigestSet::New, st.new_size)] {
            for i in 0..size.div_ceil(unit) {
                let at = match set {
                    DigestSet::Old => spec.primary.start + i * unit,
                    DigestSet::New => spec.secondary.start + (i + 1) * unit,
                };
                let len = self.span(size, i);
                let d = if truthful && at.saturating_add(len) <= self.end() {
                    self.unit_digest(at, len)
                } else {
                    inp.bytes_padded(DIGEST_LEN)
                        .try_into()
                        .unwrap_or([0; DIGEST_LEN])
                };
                out.push(d);
            }
        }
        out
    }

    /// A record through the engine's own writer (possibly cut).
    fn store_record(&mut self, inp: &mut Input) {
        let mut store = StateStore::load(&mut self.flash, &self.layout);
        let units = self.layout.primary_units();
        let st = self.arbitrary_state(inp, &store.state, units);
        let digests = self.plan_digests(inp, &st);
        let old = st.old_units(self.layout.unit());
        let cut = self.maybe_cut(inp, 3, 4);
        trace!("store record {st:?} (cut {cut:?})");
        let _ = store.write(&mut self.flash, &self.layout, st, |_, set, i| {
            let k = match set {
                DigestSet::Old => i,
                DigestSet::New => old + i,
            };
            digests.get(k as usize).copied().ok_or(Error::Corrupt)
        });
        self.restore_power();
    }

    /// A record as the engine encodes it (`state::encode_record`), any field, then (one in
    /// six) odd header fields written over it; a correct CRC unless the input flips a bit;
    /// factory-preloaded or programmed (possibly torn) at any aligned place of a state copy.
    fn raw_record(&mut self, inp: &mut Input) {
        let spec = *self.layout.spec();
        let copy = spec.state[inp.below(2) as usize];
        let wu = self.wu();
        let unit = self.layout.unit();
        let mut st = self.arbitrary_state(inp, &BootState::FACTORY, self.layout.primary_units());
        // Sizes beyond the slot: any number of units for phases without digests, a few dozen
        // (so the record still fits a copy) for a plan.
        if inp.one_in(4) {
            if st.phase == Phase::Swapping {
                st.old_size = inp.below(40) * unit;
                st.new_size = inp.below(20) * unit;
            } else {
                st.old_size = u32::from(inp.u16()) * unit;
                st.new_size = u32::from(inp.u16()) * unit;
            }
        }
        let digests = if st.phase == Phase::Swapping {
            self.plan_digests(inp, &st)
        } else {
            Vec::new()
        };
        let mut rec = vec![0u8; RECORD_FIXED_LEN as usize + digests.len() * DIGEST_LEN];
        let len = encode_record(&st, &self.layout, &digests, &mut rec)
            .expect("the buffer fits the record and the digest count matches");
        rec.truncate(len);
        // Odd fields, each at its offset in the record's header.
        let odd = inp.one_in(6);
        if odd && inp.bool() {
            let v = inp.u16();
            rec[8..10].copy_from_slice(&v.to_le_bytes());
        }
        for at in [10, 11, 12, 14] {
            // format, phase, permanent, strategy
            if odd && inp.one_in(4) {
                rec[at] = inp.byte();
            }
        }
        if odd && inp.one_in(4) {
            let v = inp.u32();
            rec[32..36].copy_from_slice(&v.to_le_bytes());
        }
        brickless_boot::state::seal_record(&mut rec[..len]);
        if inp.one_in(8) {
            let bit = inp.below(32);
            rec[len - 4 + (bit / 8) as usize] ^= 1 << (bit % 8);
        }
        let padded = len.div_ceil(wu as usize) * wu as usize;
        rec.resize(padded, self.erased());
        let at = copy.start + inp.below(copy.size / wu) * wu;
        let n = rec.len().min((copy.end() - at) as usize);
        trace!(
            "raw record at {at:#x} ({n} of {} bytes, len field {}, odd {odd}): {st:?}",
            rec.len(),
            u16::from_le_bytes([rec[8], rec[9]])
        );
        if inp.bool() {
            let _ = self.flash.preload(at, &rec[..n]);
        } else {
            self.maybe_cut(inp, 3, 1);
            let off = at - self.base();
            let _ = self.flash.write(off, &rec[..n]);
            self.restore_power();
        }
    }

    /// Whether pool image `i` sits intact (every byte readable and equal) at `addr`.
    fn holds(&self, addr: u32, i: usize) -> bool {
        let img = &self.pool[i];
        let mut got = vec![0u8; img.info.size as usize];
        self.flash.read_abs(addr, &mut got).is_ok() && got[..] == img.bytes[..got.len()]
    }

    /// Which image the `size` bytes at `addr` are; panics if they are not a valid image.
    fn identify(&self, what: &str, addr: u32, info: &ImageInfo) -> Ident {
        let mut got = vec![0u8; info.size as usize];
        if let Err(e) = self.flash.read_abs(addr, &mut got) {
            panic!(
                "{what}: the {} bytes at {addr:#x} do not read back: {e}",
                info.size
            );
        }
        for &i in &self.placed {
            let img = &self.pool[i];
            if img.info.size == info.size && got[..] == img.bytes[..got.len()] {
                // Every path (full check or recorded hash) reports the image's own fields,
                // its SHA256 TLV as `hash` included.
                let same = *info == img.info;
                assert!(
                    same,
                    "{what}: image {i} is described as {info:?}, its check says {:?}",
                    img.info
                );
                return Ident::Pool(i);
            }
        }
        if !self.mcuboot && fast_kit_valid(&got) {
            let n = got.len();
            let stated = ImageInfo {
                version: ImageVersion {
                    major: got[4],
                    minor: got[5],
                    revision: u16::from_le_bytes([got[6], got[7]]),
                    build: u32::from_le_bytes([got[8], got[9], got[10], got[11]]),
                },
                security_counter: fast_kit_counter(&got),
                size: info.size,
                hash: got[n - 32..].try_into().expect("32 bytes"),
                exec: Exec::InPlace,
            };
            assert_eq!(
                *info, stated,
                "{what}: a hash-kit image the input wrote is described otherwise than its header"
            );
            return Ident::Forged {
                size: info.size,
                counter: fast_kit_counter(&got),
                sha256: sha256(&got),
            };
        }
        panic!(
            "{what}: the {} bytes at {addr:#x} are not a valid image the input placed \
             (placed: {:?}, info {info:?})",
            info.size, self.placed
        );
    }

    /// Engine bug readahead (fixed), when relaxed: with the MCUboot kit, a unit that faults
    /// on read within 256 bytes after image `i` at `addr` makes its check fail.
    fn readahead_known(&self, addr: u32, i: usize) -> bool {
        let end = addr + self.pool[i].info.size;
        self.mcuboot
            && self.relaxed("readahead")
            && !self.flash.scan_torn(end..end + 256).is_empty()
    }

    /// Engine bug unsettled (fixed), when relaxed: a placed image is intact in the staging
    /// area and a unit after it, inside its last copy unit, faults on read.
    fn unreadable_in_last_staged_unit(&self) -> bool {
        let start = self.layout.staging().start;
        let unit = self.layout.unit();
        self.placed.iter().any(|&i| {
            let size = self.pool[i].info.size;
            let end = start + size.div_ceil(unit) * unit;
            self.holds(start, i) && !self.flash.scan_torn(start + size..end).is_empty()
        })
    }

    /// Whether image `id` sits intact (every byte readable and equal) at `addr`.
    fn holds_ident(&self, addr: u32, id: Ident) -> bool {
        match id {
            Ident::Pool(i) => self.holds(addr, i),
            Ident::Forged {
                size, sha256: want, ..
            } => {
                let mut got = vec![0u8; size as usize];
                self.flash.read_abs(addr, &mut got).is_ok() && sha256(&got) == want
            }
        }
    }

    /// Whether `id` sits intact at the start of the secondary slot (where a swap saves the
    /// old image) with a security counter not below `floor`: a revert to it must happen.
    fn saved_intact(&self, id: Ident, floor: u32) -> bool {
        self.real_counter(id) >= floor && self.holds_ident(self.layout.spec().secondary.start, id)
    }

    /// Whether some image a revert could put back verifies at the start of the secondary
    /// slot: `size` bytes (the recorded old size), a placed pool image or (hash kit) a valid
    /// image the input wrote, with a security counter not below `floor`.
    fn revert_source_ok(&self, size: u32, floor: u32) -> bool {
        let at = self.layout.spec().secondary.start;
        if size == 0 || size > self.layout.spec().primary.size {
            return false;
        }
        let placed = self.placed.iter().any(|&i| {
            let info = self.pool[i].info;
            info.size == size && info.security_counter >= floor && self.holds(at, i)
        });
        if placed || self.mcuboot {
            return placed;
        }
        let mut got = vec![0u8; size as usize];
        self.flash.read_abs(at, &mut got).is_ok()
            && fast_kit_valid(&got)
            && fast_kit_counter(&got) >= floor
    }

    fn real_counter(&self, id: Ident) -> u32 {
        match id {
            Ident::Pool(i) => self.pool[i].info.security_counter,
            Ident::Forged { counter, .. } => counter,
        }
    }

    /// One boot, possibly cut; checks the decision when power stayed on.
    fn boot(&mut self, cut: Option<CutPoint>) -> Option<BootDecision> {
        let before = self.state();
        if let Some(c) = cut {
            self.flash.arm_cut(c);
        }
        let ops = self.flash.op_count();
        let r = self.bootloader().boot();
        trace!(
            "boot (cut {cut:?}) from {:?}: {r:?}, {} ops, power {}",
            before.phase,
            self.flash.op_count() - ops,
            self.flash.is_powered()
        );
        if self.restore_power() {
            // Power was lost: whatever the engine said, the device is off.
            self.app_running = false;
            return None;
        }
        let d = match r {
            Ok(d) => d,
            Err(e) => panic!("boot returned Err({e:?}) with power on"),
        };
        let after = self.state();
        match d {
            BootDecision::Reset => panic!("a swap or overwrite layout asked for a reset"),
            BootDecision::Recovery(RecoveryReason::Unsettled) => {
                if !(self.relaxed("unsettled") && self.unreadable_in_last_staged_unit()) {
                    panic!("boot ended in Recovery(Unsettled): the state never settled");
                }
                // Engine bug unsettled (Pending/Idle loop, fixed), relaxed: nothing more to
                // check on this input.
                self.stop = true;
            }
            BootDecision::Recovery(RecoveryReason::NoValidImage) => {
                let floor_c = before.floor_counter.max(after.floor_counter);
                let floor_v = before.floor_version.max(after.floor_version);
                let primary = self.layout.spec().primary.start;
                let staging = self.layout.staging().start;
                // The engine tries one install per boot: a boot that started with work in
                // flight (a request, a plan, a trial) and gave it up (back to `Idle`, nothing
                // bootable) leaves a good staged image for the next boot. Checked strictly
                // then: that boot starts `Idle`.
                let gave_up = before.phase != Phase::Idle
                    && after.phase == Phase::Idle
                    && self.flash.op_count() != ops;
                for &i in &self.placed {
                    let info = self.pool[i].info;
                    if info.security_counter >= floor_c
                        && self.holds(primary, i)
                        && !self.readahead_known(primary, i)
                    {
                        panic!("recovery although the primary slot holds valid image {i} (floor {floor_c})");
                    }
                    if info.security_counter >= floor_c
                        && info.version.packed() >= floor_v
                        && self.holds(staging, i)
                        && !self.readahead_known(staging, i)
                        && !gave_up
                    {
                        panic!("recovery although acceptable image {i} is staged");
                    }
                }
                if let Some(e) = self.expect {
                    panic!("recovery although {e:?} was promised");
                }
                self.last_booted = None;
                self.trial_running = None;
                self.app_running = false;
            }
            BootDecision::Boot(t) => {
                let spec = *self.layout.spec();
                assert_eq!(
                    t.address, spec.primary.start,
                    "boot target is not the primary slot"
                );
                assert!(
                    t.image.size > 0 && t.image.size <= spec.primary.size,
                    "boot target size {} outside the slot",
                    t.image.size
                );
                // Overwrite never starts a trial; a `Trial` record it did not write (forged)
                // cannot be reverted, so the image comes back as a trial, saying so.
                let swap = self.layout.strategy() == StrategyKind::Swap;
                assert!(
                    !t.trial || swap || t.event == BootEvent::RevertImpossible,
                    "a trial boot with the overwrite strategy ({:?})",
                    t.event
                );
                let id = self.identify("boot", t.address, &t.image);
                let counter = self.real_counter(id);
                assert!(
                    counter >= before.floor_counter
                        || (before.phase == Phase::Swapping && self.relaxed("floor-after-plan")),
                    "booted {id:?} with security counter {counter} below the floor {}",
                    before.floor_counter
                );
                assert_eq!(
                    t.trial,
                    matches!(
                        t.event,
                        BootEvent::TrialStarted | BootEvent::RevertImpossible
                    ),
                    "trial flag and boot event disagree ({:?})",
                    t.event
                );
                if t.event == BootEvent::RevertImpossible {
                    assert_eq!(
                        after.phase,
                        Phase::Trial,
                        "RevertImpossible without a trial recorded"
                    );
                    assert!(
                        !swap || !self.revert_source_ok(after.old_size, after.floor_counter),
                        "RevertImpossible although an image of the recorded old size \
                         ({} bytes) at or above the floor sits intact in the secondary slot",
                        after.old_size
                    );
                }
                match self.expect {
                    Some(Expect::Revert(old)) => {
                        if self.saved_intact(old, before.floor_counter) {
                            assert!(
                                id == old && !t.trial,
                                "unconfirmed trial not reverted although its saved old image \
                                 is intact: booted {id:?} (trial {}, {:?}), expected {old:?}",
                                t.trial,
                                t.event
                            );
                            self.expect = None;
                        } else {
                            // The saved old image is damaged: the trial image must come back,
                            // still a trial, and say so; never as a confirmed image. Unless the
                            // primary slot already holds the old image (the engine recognises a
                            // finished revert from the recorded image hash).
                            let running = self.trial_running.map(|(r, _)| r);
                            let back_to_old =
                                id == old && !t.trial && t.event == BootEvent::Reverted;
                            assert!(
                                back_to_old
                                    || (Some(id) == running
                                        && t.trial
                                        && t.event == BootEvent::RevertImpossible),
                                "unconfirmed trial {running:?} whose saved old image {old:?} is \
                                 damaged: booted {id:?} (trial {}, {:?}) instead of the trial \
                                 again with RevertImpossible",
                                t.trial,
                                t.event
                            );
                            if back_to_old {
                                self.expect = None;
                            }
                        }
                    }
                    Some(Expect::Keep(kept)) => assert!(
                        id == kept && !t.trial,
                        "confirmed image {kept:?} lost: booted {id:?} (trial {})",
                        t.trial
                    ),
                    None => {}
                }
                trace!("  booted {id:?} trial {}; state after {after:?}", t.trial);
                if t.trial {
                    if let Some(old) = self.last_booted {
                        self.expect = Some(Expect::Revert(old));
                    }
                    self.trial_running = Some((id, counter));
                } else {
                    self.last_booted = Some(id);
                    self.trial_running = None;
                }
                self.app_running = true;
            }
        }
        Some(d)
    }

    fn app_call(&mut self, inp: &mut Input) {
        let kind = inp.below(6);
        let phase_before = self.state().phase;
        let cut = self.maybe_cut(inp, 4, 4);
        let mode = if inp.bool() {
            UpgradeMode::Test
        } else {
            UpgradeMode::Permanent
        };
        let staging = self.layout.staging();
        let mut requested = false;
        let mut confirmed = false;
        match kind {
            0 => {
                let r = self.updater().request_upgrade(mode);
                if let (Ok(info), true) = (&r, self.flash.is_powered()) {
                    self.identify("request_upgrade", staging.start, info);
                }
                requested = r.is_ok();
            }
            1 => requested = self.updater().request_upgrade_unverified(mode).is_ok(),
            2 => confirmed = self.updater().confirm().is_ok(),
            3 => {
                let _ = self.updater().erase_staging();
            }
            4 => {
                let i = inp.below(self.pool.len() as u32) as usize;
                if !self.placed.contains(&i) {
                    self.placed.push(i);
                }
                let bytes = &self.fam.pools[usize::from(self.mcuboot)][i].bytes;
                let wu = self.wu() as usize;
                let mut data = bytes.clone();
                data.resize(data.len().div_ceil(wu) * wu, self.erased());
                let _ = self.updater().write_staged(0, &data);
            }
            _ => {
                let wu = self.wu();
                let off = inp.below((staging.size / wu).max(1)) * wu;
                let units = 1 + inp.below(4);
                let data = self.garbage(inp, units);
                let _ = self.updater().write_staged(off, &data);
            }
        }
        trace!(
            "app call {kind} in {phase_before:?} (cut {cut:?}): requested {requested}, confirmed {confirmed}, power {}",
            self.flash.is_powered()
        );
        let lost = self.restore_power();
        if !self.app_running {
            // No application runs now (no boot since power returned): the call exercises the
            // engine on whatever state is there, but no real device gets here, so nothing is
            // promised about what follows.
            self.expect = None;
            self.trial_running = None;
            if kind == 2 {
                // It may have confirmed whatever the primary slot holds.
                self.last_booted = None;
            }
            return;
        }
        if lost {
            self.app_running = false;
        }
        if lost && matches!(kind, 0..=2) {
            // Whether the call took effect is unknown: no promise either way, and after a
            // confirmation that may or may not have landed, which image an update would
            // revert to is unknown too.
            self.expect = None;
            self.trial_running = None;
            if kind == 2 {
                self.last_booted = None;
            }
            return;
        }
        if matches!(kind, 3..=5)
            && phase_before == Phase::Trial
            && matches!(self.expect, Some(Expect::Revert(_)))
            && self.relaxed("trial-staging")
        {
            // Engine bug trial-staging (fixed: staging is refused outside Idle), relaxed.
            self.expect = None;
        }
        if requested && matches!(self.expect, Some(Expect::Keep(_))) {
            // Another update may replace the confirmed image.
            self.expect = None;
        }
        if confirmed && phase_before == Phase::Trial {
            let floor = self.state().floor_counter;
            // A trial image below the floor only runs through the floor-after-plan bug; the
            // engine then rightly refuses it after the confirmation.
            self.expect = self
                .trial_running
                .filter(|&(_, counter)| counter >= floor)
                .map(|(id, _)| Expect::Keep(id));
            // The confirmed image is now the one a later update reverts to.
            if let Some((id, _)) = self.trial_running.take() {
                self.last_booted = Some(id);
            }
        }
    }

    /// Uncut boots until quiet, then quiet boots that decide the same.
    fn settle(&mut self) {
        let mut quiet = None;
        for _ in 0..SETTLE_BOOTS {
            let ops = self.flash.op_count();
            let d = self.boot(None).expect("an uncut boot keeps power");
            if self.stop {
                return;
            }
            if self.flash.op_count() == ops {
                quiet = Some(d);
                break;
            }
        }
        let Some(first) = quiet else {
            panic!("not settled: every one of {SETTLE_BOOTS} uncut boots changed flash");
        };
        for _ in 0..QUIET_CHECKS {
            let ops = self.flash.op_count();
            let d = self.boot(None).expect("an uncut boot keeps power");
            if self.stop {
                return;
            }
            assert_eq!(
                self.flash.op_count(),
                ops,
                "a boot after a quiet one wrote flash"
            );
            assert_eq!(d, first, "quiet boots flip-flop");
        }
    }
}

/// Engine bugs this harness found, by the name `BRICKLESS_FUZZ_RELAX` (or [`run_with`]) uses
/// to step around each (see the README). All are fixed in the engine: nothing is relaxed
/// unless asked, and the inputs in `seeds/boot_path/` named after them are regression seeds.
pub const KNOWN_ENGINE_BUGS: [&str; 5] = [
    "unsettled",
    "readahead",
    "trial-staging",
    "floor-after-plan",
    "seq-order",
];

/// One input, with the checks named in `BRICKLESS_FUZZ_RELAX` relaxed.
pub fn run(data: &[u8]) {
    run_with(data, relax_from_env());
}

/// One input, with the checks named in `relax` relaxed (each stays on unless its known bug
/// is what the input meets).
pub fn run_with(data: &[u8], relax: &[&str]) {
    let mut inp = Input::new(data);
    let fams = families();
    let fam = &fams[inp.below(fams.len() as u32) as usize];
    let strategy = inp.below(2) as usize;
    let layout = fam.layouts[strategy];
    let mcuboot = inp.one_in(8);
    let pool = &fam.pools[usize::from(mcuboot)][..];
    let check = if mcuboot { fam.mcuboot } else { Checker::Hash };
    let policy = if inp.one_in(4) {
        VerifyPolicy::RecordedHash
    } else {
        VerifyPolicy::EveryBoot
    };
    let mut flash = SimFlash::with_seed(fam.part, u64::from(inp.u16()));
    flash.set_tear_at([TearAt::Seeded, TearAt::First, TearAt::Last][inp.below(3) as usize]);
    let unit = layout.unit() as usize;
    let buf_len = [unit / 4, unit / 2, unit][inp.below(3) as usize];
    let mut dev = Device {
        fam,
        pool,
        mcuboot,
        layout,
        check,
        policy,
        flash,
        buf: vec![0; buf_len],
        placed: Vec::new(),
        primary_img: None,
        staged_img: None,
        last_booted: None,
        trial_running: None,
        expect: None,
        masker: Masker {
            on: policy == VerifyPolicy::RecordedHash,
            state: 0x5EED,
        },
        relax,
        stop: false,
        app_running: false,
    };

    // Valid images: primary, secondary unit 0 (swap: a revert source), staging.
    let pick = |inp: &mut Input| {
        let i = inp.below(pool.len() as u32 + 1) as usize;
        (i < pool.len()).then_some(i)
    };
    let primary = pick(&mut inp);
    let secondary0 = if strategy == 0 && inp.one_in(4) {
        pick(&mut inp)
    } else {
        None
    };
    let staged = pick(&mut inp);
    let spec = *layout.spec();
    for (img, at) in [
        (primary, spec.primary.start),
        (secondary0, spec.secondary.start),
        (staged, layout.staging().start),
    ] {
        if let Some(i) = img {
            dev.flash
                .preload(at, &pool[i].bytes)
                .expect("pool images fit their slots");
            if !dev.placed.contains(&i) {
                dev.placed.push(i);
            }
        }
    }
    trace!(
        "{} {:?} {} {:?} buffer {buf_len}; primary {primary:?}, secondary {secondary0:?}, staged {staged:?}",
        fam.part.name,
        layout.strategy(),
        if mcuboot { "mcuboot" } else { "hash" },
        policy
    );
    trace!(
        "slots: primary {:#x}, secondary {:#x}, staging {:#x}, unit {:#x}; pool sizes {:?}",
        spec.primary.start,
        spec.secondary.start,
        layout.staging().start,
        layout.unit(),
        pool.iter().map(|p| p.info.size).collect::<Vec<_>>()
    );
    dev.primary_img = primary;
    dev.staged_img = staged;

    // Damage and records before the first boot.
    for _ in 0..inp.below(8) {
        match inp.below(6) {
            0 => dev.preload_garbage(&mut inp),
            1 => dev.write_garbage(&mut inp),
            2 => dev.erase_sector(&mut inp),
            3 => dev.store_record(&mut inp),
            4 => dev.raw_record(&mut inp),
            _ => {}
        }
    }

    // A life: boots (some cut) and application calls (some cut).
    let mut steps = 0;
    while !inp.is_empty() && steps < 16 && !dev.stop {
        steps += 1;
        match inp.below(8) {
            0..=2 => {
                // Three boots in four are cut (a zero byte: not cut).
                let cut = if inp.below(4) == 0 {
                    None
                } else {
                    let op = dev.flash.op_count() + u64::from(inp.byte());
                    Some(CutPoint::new(op, CutPhase::ALL[inp.below(3) as usize]))
                };
                dev.boot(cut);
            }
            7 => dev.damage_trial_source(&mut inp),
            _ => dev.app_call(&mut inp),
        }
    }

    if !dev.stop {
        dev.settle();
    }
}
