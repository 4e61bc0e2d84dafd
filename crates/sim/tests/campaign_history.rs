use brickless_boot::StrategyKind;
use brickless_flash::part;
use brickless_sim::campaign::history::{History, HistoryOptions, HistoryPlan};

#[test]
fn explore() {
    for name in ["stm32g071rb", "stm32f407vg", "stm32l073rz", "stm32h753zi", "stm32u585ai", "stm32l475vg"] {
        for strategy in StrategyKind::ALL {
            for (unstable, std) in [(false, true), (false, false), (true, false)] {
                let opts = HistoryOptions { unstable_torn: unstable, staging_during_trial: std, ..Default::default() };
                let h = History::generate(part(name).unwrap(), strategy, &opts).unwrap();
                let t = std::time::Instant::now();
                let out = h.run(HistoryPlan::Sample { ops: 40, offset: 1, pairs: 10 }, 1, &mut |_, _| {});
                let r = &out.reference;
                println!("{name} {} unstable {unstable} std {std}: steps done {} ops {} compactions {} state_erases {} refused {} accepted {} cuts {} bricks {} {:?} in {:?}",
                    strategy.name(), r.steps_done(), out.row.ops, out.row.compactions, r.state_erases, r.staging_refused, r.staging_accepted,
                    out.row.cut_points, out.row.bricks, out.row.failures.iter().take(3).collect::<Vec<_>>(), t.elapsed());
            }
        }
    }
}

#[test]
fn explore_one() {
    let opts = HistoryOptions { staging_during_trial: false, ..Default::default() };
    let h = History::generate(part("stm32u585ai").unwrap(), StrategyKind::Swap, &opts).unwrap();
    let r = h.reference();
    println!("step 12 ops {}..{} step {:?}", r.step_ops[12], r.step_ops[13], h.steps[12]);
    let out = h.run(HistoryPlan::Sample { ops: 40, offset: 1, pairs: 0 }, 1, &mut |_, _| {});
    println!("{:?}", out.row.failures);
}
