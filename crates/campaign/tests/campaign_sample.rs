//! The CI sample of the power-cut campaign: every part × strategy × flow, cut at a sample of
//! operations (each before, torn and after), plus the full cut set on the smallest parts.
use brickless_boot::StrategyKind;
use brickless_campaign::{run_row, CutPlan, Flow, RowReport, Scenario, CAMPAIGN_PARTS};
use brickless_flash::part;

fn check(row: &RowReport) {
    println!("{row}");
    assert_eq!(row.bricks, 0, "{row:#?}");
    assert_eq!(row.unverified_boots, 0, "{row:#?}");
    // Overwrite refuses test (revertible) upgrades up front: nothing is written, nothing to cut.
    let refused = row.strategy == "overwrite" && row.flow != "permanent" && row.flow != "downgrade";
    assert_eq!(row.cut_points == 0, refused, "{row:#?}");
}

#[test]
fn every_part_strategy_and_flow_survives_sampled_cuts() {
    for name in CAMPAIGN_PARTS {
        let p = part(name).unwrap();
        for strategy in brickless_campaign::strategies_for(p) {
            for flow in Flow::ALL {
                let scn = Scenario::new(p, strategy, flow).unwrap();
                let row = run_row(&scn, CutPlan::Sample { ops: 8, offset: 1 }, &mut |_, _| {});
                check(&row);
            }
        }
    }
}

#[test]
fn recorded_hash_policy_survives_every_cut() {
    // Signatures checked once, then the recorded SHA-256 of the image bytes: every cut point.
    for name in ["stm32g071rb", "stm32u585ai"] {
        let p = part(name).unwrap();
        for strategy in brickless_campaign::strategies_for(p) {
            for flow in [Flow::TestConfirm, Flow::TestRevert, Flow::Permanent] {
                if strategy == StrategyKind::Overwrite && flow != Flow::Permanent {
                    continue;
                }
                let mut scn = Scenario::new(p, strategy, flow).unwrap();
                scn.policy = brickless_boot::VerifyPolicy::RecordedHash;
                check(&run_row(&scn, CutPlan::Every, &mut |_, _| {}));
            }
        }
    }
}
