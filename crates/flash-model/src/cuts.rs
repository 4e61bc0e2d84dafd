//! Cut-point enumeration and deterministic replay for power-cut campaigns.
//!
//! A *run* is a closure that drives a [`SimFlash`] the way a device does (boot, update,
//! recover), stopping when a call returns [`SimFlashError::PowerLost`](super::SimFlashError).
//! [`cut_points`] lists every point at which a run can lose power; [`replay`] runs it with a
//! given sequence of cuts (a cut, then power back on and the run again, possibly cut again).
//! Runs are replayed on clones, which are cheap (copy-on-write chunks), and the outcome of a
//! cut depends only on the model's seed, state and the point: same seed + same points = same
//! bytes.

use std::ops::Range;

use super::SimFlash;

/// When, relative to its operation, power is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CutPhase {
    /// The operation never starts.
    Before,
    /// Inside the operation: a torn unit (program) or a partly erased sector (erase).
    Torn,
    /// The operation completes, then power is lost before anything else runs.
    After,
}

impl CutPhase {
    /// All phases, in time order.
    pub const ALL: [CutPhase; 3] = [CutPhase::Before, CutPhase::Torn, CutPhase::After];
}

/// A power cut at operation number `op` (see [`SimFlash::op_count`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CutPoint {
    /// The operation number the cut hits.
    pub op: u64,
    /// Whether power goes before, during or after that operation.
    pub phase: CutPhase,
}

impl CutPoint {
    /// A cut at operation `op`, in `phase`.
    pub fn new(op: u64, phase: CutPhase) -> Self {
        CutPoint { op, phase }
    }
}

impl std::fmt::Display for CutPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "op {} {:?}", self.op, self.phase)
    }
}

/// The operation numbers `run` uses when started from `model`'s state (run on a clone with
/// no cut armed; `model` is untouched).
pub fn op_range<R>(model: &SimFlash, run: impl FnOnce(&mut SimFlash) -> R) -> Range<u64> {
    let mut probe = model.clone();
    probe.disarm_cut();
    probe.power_cycle();
    let start = probe.op_count();
    run(&mut probe);
    start..probe.op_count()
}

/// Every cut point of `run` from `model`'s state: each operation × Before/Torn/After, in time
/// order.
pub fn cut_points<R>(model: &SimFlash, run: impl FnOnce(&mut SimFlash) -> R) -> Vec<CutPoint> {
    op_range(model, run)
        .flat_map(|op| CutPhase::ALL.map(|phase| CutPoint { op, phase }))
        .collect()
}

/// [`cut_points`] without the redundant ones: `Before` of operation k > first leaves the same
/// flash as `After` of operation k - 1 (reads change nothing), so only the first `Before` is
/// kept. 2n + 1 points instead of 3n; what a campaign needs for full coverage.
pub fn essential_cut_points<R>(
    model: &SimFlash,
    run: impl FnOnce(&mut SimFlash) -> R,
) -> Vec<CutPoint> {
    let ops = op_range(model, run);
    let first = (!ops.is_empty()).then(|| CutPoint::new(ops.start, CutPhase::Before));
    first
        .into_iter()
        .chain(ops.flat_map(|op| {
            [
                CutPoint::new(op, CutPhase::Torn),
                CutPoint::new(op, CutPhase::After),
            ]
        }))
        .collect()
}

/// Replays `run` on a clone of `model` once per cut in `cuts`: arm the cut, run, power-cycle.
/// Returns the model powered on after the last cut, ready for a final (uncut) run. A cut whose
/// operation number the run never reaches does not fire (check [`SimFlash::last_cut`]).
pub fn replay(model: &SimFlash, cuts: &[CutPoint], mut run: impl FnMut(&mut SimFlash)) -> SimFlash {
    let mut m = model.clone();
    m.power_cycle();
    for cut in cuts {
        m.arm_cut(*cut);
        run(&mut m);
        m.disarm_cut();
        m.power_cycle();
    }
    m
}
