//! Cut sequences beyond the CI sample: every pair of cuts on reduced geometries (each
//! family's rules on small sectors), random sequences of 1-5 cuts, and (ignored, run by
//! `brickless sim campaign --exhaustive`) every single cut point on the real geometries.
use brickless_boot::StrategyKind;
use brickless_campaign::{
    reduced_scenario, run_row, CutPlan, Flow, RowReport, Scenario, CAMPAIGN_PARTS,
};
use brickless_flash::part;

fn check(row: &RowReport) {
    println!("{row}");
    assert_eq!(row.bricks, 0, "{row:#?}");
    assert_eq!(row.unverified_boots, 0, "{row:#?}");
}

const CUT_FLOWS: [Flow; 3] = [Flow::TestConfirm, Flow::TestRevert, Flow::Permanent];

#[test]
fn every_pair_of_cuts_on_reduced_geometries() {
    for name in CAMPAIGN_PARTS {
        let p = part(name).unwrap();
        for strategy in StrategyKind::ALL {
            for flow in CUT_FLOWS {
                if strategy == StrategyKind::Overwrite && flow != Flow::Permanent {
                    continue; // refused up front, nothing to cut
                }
                let scn = reduced_scenario(p, strategy, flow).unwrap();
                let row = run_row(&scn, CutPlan::Pairs, &mut |_, _| {});
                assert!(row.cut_points > 100, "{row:#?}");
                check(&row);
            }
        }
    }
}

#[test]
fn random_sequences_of_one_to_five_cuts() {
    for (i, name) in CAMPAIGN_PARTS.iter().enumerate() {
        let p = part(name).unwrap();
        for strategy in brickless_campaign::strategies_for(p) {
            let flow = if strategy.can_revert() {
                Flow::TestRevert
            } else {
                Flow::Permanent
            };
            let scn = Scenario::new(p, strategy, flow).unwrap();
            let row = run_row(
                &scn,
                CutPlan::Random {
                    runs: 40,
                    max_cuts: 5,
                    seed: i as u64,
                },
                &mut |_, _| {},
            );
            assert_eq!(row.cut_points, 40);
            check(&row);
        }
    }
}

#[test]
#[ignore = "exhaustive: run with --ignored or `brickless sim campaign --exhaustive`"]
fn every_cut_point_on_every_part() {
    for name in CAMPAIGN_PARTS {
        let p = part(name).unwrap();
        for strategy in brickless_campaign::strategies_for(p) {
            for flow in Flow::ALL {
                let scn = Scenario::new(p, strategy, flow).unwrap();
                check(&run_row(&scn, CutPlan::Every, &mut |_, _| {}));
            }
        }
    }
}

#[test]
fn every_cut_through_a_state_compaction() {
    // A nearly full first state copy: the flow's records spill into the second copy (erase,
    // then write), and every cut point of that is tried.
    for name in ["stm32g071rb", "stm32l073rz", "stm32h7a3zi"] {
        let p = part(name).unwrap();
        for (strategy, flow) in [
            (StrategyKind::Swap, Flow::TestConfirm),
            (StrategyKind::Overwrite, Flow::Permanent),
        ] {
            let mut scn = Scenario::new(p, strategy, flow).unwrap();
            scn.aged_state = true;
            let row = run_row(&scn, CutPlan::Every, &mut |_, _| {});
            check(&row);
            // The compaction erased the second copy: one more erase than a fresh device.
            let fresh = run_row(
                &Scenario::new(p, strategy, flow).unwrap(),
                CutPlan::Sample { ops: 1, offset: 0 },
                &mut |_, _| {},
            );
            assert_eq!(row.ops, fresh.ops + 1, "{row:#?}");
            assert_eq!((row.compactions, fresh.compactions), (1, 0), "{row:#?}");
            assert_eq!((row.updates, fresh.updates), (1, 1), "{row:#?}");
        }
    }
}
