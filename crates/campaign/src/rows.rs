//! The rows of a campaign run: each a single-update flow or a history, run under one cut
//! plan, and the totals the run reports at the end.
use super::history::{History, HistoryPlan, DEFAULT_HORIZON, FLOW_NAME};
use super::{run_row, CutPlan, RowReport, Scenario};
use brickless_boot::StrategyKind;

/// One row to run: a single-update flow or a history.
pub enum Row {
    /// One update from a fresh device.
    Flow(Box<Scenario>),
    /// One device through many updates.
    History(Box<History>),
}

impl Row {
    /// The part, strategy and flow names the row's report carries.
    pub fn label(&self) -> (&'static str, StrategyKind, &'static str) {
        match self {
            Row::Flow(scn) => (scn.part.name, scn.layout.strategy(), scn.flow.name()),
            Row::History(h) => (h.part.name, h.layout.strategy(), FLOW_NAME),
        }
    }

    /// Runs the row: a flow with `plan`, a history with its counterpart
    /// ([`HistoryPlan::from`]) over [`DEFAULT_HORIZON`] steps. `progress(done, total)` is
    /// called as sequences finish.
    pub fn run(&self, plan: CutPlan, progress: &mut dyn FnMut(u64, u64)) -> RowReport {
        match self {
            Row::Flow(scn) => run_row(scn, plan, progress),
            Row::History(h) => h.run(plan.into(), DEFAULT_HORIZON, progress).row,
        }
    }
}

impl From<CutPlan> for HistoryPlan {
    /// The history plan that matches a flow's plan. A history holds many updates, so a sample
    /// cuts 8 times as many operations, plus as many random pairs of cuts as the flow samples.
    fn from(plan: CutPlan) -> HistoryPlan {
        match plan {
            CutPlan::Every => HistoryPlan::Every,
            CutPlan::Pairs => HistoryPlan::Pairs,
            CutPlan::Random {
                runs,
                max_cuts,
                seed,
            } => HistoryPlan::Random {
                runs,
                max_cuts,
                seed,
            },
            CutPlan::Sample { ops, offset } => HistoryPlan::Sample {
                ops: ops * 8,
                offset,
                pairs: ops as u32,
            },
        }
    }
}

/// What a campaign found, summed over its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Rows run.
    pub rows: usize,
    /// Cut sequences tried.
    pub cut_points: u64,
    /// Sequences after which a device did not boot an allowed image stably.
    pub bricks: u64,
    /// Boots of an image that was not one the flow allows.
    pub unverified_boots: u64,
}

impl Totals {
    /// The sums over `rows`.
    pub fn of(rows: &[RowReport]) -> Totals {
        Totals {
            rows: rows.len(),
            cut_points: rows.iter().map(|r| r.cut_points).sum(),
            bricks: rows.iter().map(|r| r.bricks).sum(),
            unverified_boots: rows.iter().map(|r| r.unverified_boots).sum(),
        }
    }

    /// Whether any row bricked a device or booted an unverified image.
    pub fn failed(&self) -> bool {
        self.bricks > 0 || self.unverified_boots > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(cut_points: u64, bricks: u64, unverified_boots: u64) -> RowReport {
        RowReport {
            part: "stm32g071rb".into(),
            strategy: "swap".into(),
            flow: "permanent".into(),
            cut_points,
            bricks,
            unverified_boots,
            ops: 0,
            max_boots: 0,
            max_wear: 0,
            failures: Vec::new(),
            updates: 1,
            compactions: 0,
        }
    }

    #[test]
    fn totals_sum_the_rows_and_fail_on_any_brick_or_unverified_boot() {
        let clean = Totals::of(&[report(10, 0, 0), report(5, 0, 0)]);
        assert_eq!(
            clean,
            Totals {
                rows: 2,
                cut_points: 15,
                bricks: 0,
                unverified_boots: 0
            }
        );
        assert!(!clean.failed());
        assert!(Totals::of(&[report(1, 1, 0)]).failed());
        assert!(Totals::of(&[report(1, 0, 1)]).failed());
    }

    #[test]
    fn a_history_samples_eight_times_the_operations_plus_as_many_pairs() {
        let plan = HistoryPlan::from(CutPlan::Sample { ops: 16, offset: 3 });
        assert_eq!(
            plan,
            HistoryPlan::Sample {
                ops: 128,
                offset: 3,
                pairs: 16
            }
        );
        assert_eq!(HistoryPlan::from(CutPlan::Every), HistoryPlan::Every);
        assert_eq!(HistoryPlan::from(CutPlan::Pairs), HistoryPlan::Pairs);
    }
}
