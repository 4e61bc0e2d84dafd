//! `brickless sim campaign`: cut power at every flash operation of an update, on the flash
//! model of each part, and prove the device still boots a verified image.
use super::campaign_print as print;
use brickless_boot::StrategyKind;
use brickless_campaign::bench::{bank_swap_comparison, bench_report};
use brickless_campaign::history::{
    History, HistoryOptions, DEFAULT_HORIZON, DEFAULT_STEPS, FLOW_NAME,
};
use brickless_campaign::layout_file::parse_layout;
use brickless_campaign::rows::{Row, Totals};
use brickless_campaign::{
    reduced_scenario, CutPlan, Flow, Kit, RowReport, Scenario, CAMPAIGN_PARTS, DEFAULT_BUFFER,
};
use brickless_flash_model::{CutPhase, CutPoint};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use miette::{miette, IntoDiagnostic};

/// Arguments of `brickless sim campaign`.
#[derive(Args, Debug)]
pub struct CampaignArgs {
    /// Parts to test (repeat or comma-separate). Default: stm32h753zi, stm32h7a3zi,
    /// stm32l475vg, stm32f407vg, stm32g071rb, stm32l073rz, stm32u585ai.
    #[arg(long, value_delimiter = ',')]
    pub part: Vec<String>,
    /// Update strategies to test: `swap` (trial boot with revert, copies), `overwrite`
    /// (no revert) and `bank-swap` (dual-bank parts: flips the banks, no copies).
    /// Default: every strategy the part can run.
    #[arg(long, value_delimiter = ',')]
    pub strategy: Vec<String>,
    /// Flows to test: test-confirm, test-revert, permanent, confirm-cut, downgrade (one
    /// update from a fresh device each), and history (one device through `--steps` updates of
    /// every kind: test + confirm, test never confirmed, permanent, downgrades by version and
    /// by security counter, tampered images, staging during an unconfirmed trial; on the
    /// reduced geometry, so the state log compacts many times). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub flow: Vec<String>,
    /// Cut at every operation of each flow, each before, torn and after (the full set; for a
    /// history, every operation of every step, each cut followed by the recovery, the rest
    /// of the step and one more step, all checked against the reference).
    /// Without it a sample of about `--sample` operations per flow is cut.
    #[arg(long, conflicts_with_all = ["pairs", "random"])]
    pub exhaustive: bool,
    /// Operations sampled per flow when not exhaustive. A history samples 8 times as many,
    /// plus every compaction of its state log, plus `--sample` random pairs of cuts.
    #[arg(long, default_value_t = 16)]
    pub sample: u64,
    /// Every pair of cuts (a cut in the flow, then a cut in the recovery), on a reduced
    /// geometry with the family's rules and small sectors. For a history: every cut of every
    /// step, then every cut in the rest of that step (long: minutes per row).
    #[arg(long, conflicts_with = "random")]
    pub pairs: bool,
    /// This many random sequences of 1 to 5 cuts per row.
    #[arg(long, value_name = "RUNS")]
    pub random: Option<u32>,
    /// Update steps of a history (the flow `history`).
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    pub steps: usize,
    /// Images of a history: `fast` (hash only) or `mcuboot` (ed25519-signed, verified by
    /// the real check; adds images signed with a wrong key).
    #[arg(long, default_value = "fast", value_name = "KIT")]
    pub history_kit: String,
    /// History rows: torn units read unstably (a half-programmed cell reads differently on
    /// each read; on ECC families it faults on some reads and returns a value on others).
    #[arg(long)]
    pub unstable_torn: bool,
    /// History rows: leave out the steps that stage an image during an unconfirmed trial
    /// (to exercise the rest of a swap history on an engine that mishandles them).
    #[arg(long)]
    pub no_staging_during_trial: bool,
    /// History rows: instead of a plan, replay one cut sequence as a failure names it
    /// (`OP:PHASE`, phase before, torn or after; comma-separated for several cuts) and print
    /// a trace of every boot and application call, with the torn units left after each step.
    #[arg(long, value_name = "OP:PHASE", value_delimiter = ',')]
    pub replay: Vec<String>,
    /// Seed for random cut sequences and the model's torn contents.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Copy buffer given to the engine, in bytes (a multiple of the write unit).
    #[arg(long, default_value_t = DEFAULT_BUFFER)]
    pub buffer: usize,
    /// A layout TOML file to use instead of the part's default layout (needs one `--part`;
    /// its `strategy` replaces `--strategy`).
    #[arg(long, value_name = "FILE")]
    pub layout: Option<std::path::PathBuf>,
    /// Print one JSON object per row (fields part, strategy, flow, cut_points, bricks,
    /// unverified_boots, ops, max_boots, max_wear, updates, compactions, and failures when
    /// there are any) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print the upgrade benchmark instead: flash operations, erases per sector and modelled
    /// time of a full-slot upgrade per part and strategy, against the physical minimum and
    /// MCUboot's figures on a k64f-shaped geometry; on dual-bank parts, bank swap against
    /// swap with staging included.
    #[arg(long, conflicts_with_all = ["exhaustive", "pairs", "random"])]
    pub bench: bool,
    /// Update a two-image group (a dual-core part's Cortex-M7 and Cortex-M4 images, each
    /// requiring the other's release) as one: any boot that runs a mix of old and new
    /// counts as an unverified boot. Default part with it: stm32h755zi.
    #[arg(long, conflicts_with = "layout")]
    pub group: bool,
}

fn parse_list<T>(
    values: &[String],
    default: Vec<T>,
    what: &str,
    known: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> miette::Result<Vec<T>> {
    if values.is_empty() {
        return Ok(default);
    }
    values
        .iter()
        .map(|v| {
            parse(v).ok_or_else(|| {
                miette!(
                    help = format!("known {what}s: {known}"),
                    "unknown {what} `{v}`"
                )
            })
        })
        .collect()
}

/// Runs `brickless sim campaign`: the rows asked for, or the benchmark, or a replay; fails
/// when any row bricked a device or booted an unverified image.
pub fn run(args: CampaignArgs) -> miette::Result<()> {
    let part_names: Vec<String> = if args.part.is_empty() && args.group {
        vec!["stm32h755zi".to_string()]
    } else if args.part.is_empty() {
        CAMPAIGN_PARTS.iter().map(|s| s.to_string()).collect()
    } else {
        args.part.clone()
    };
    let parts = part_names
        .iter()
        .map(|n| {
            brickless_flash::part(n).ok_or_else(|| {
                let known: Vec<&str> = brickless_flash::PARTS.iter().map(|p| p.name).collect();
                miette!(
                    help = format!("known parts: {}", known.join(", ")),
                    "unknown part `{n}`"
                )
            })
        })
        .collect::<miette::Result<Vec<_>>>()?;
    let strategies = parse_list(
        &args.strategy,
        StrategyKind::ALL.to_vec(),
        "strategy",
        "swap, overwrite, bank-swap",
        StrategyKind::from_name,
    )?;
    let mut default_flows: Vec<Option<Flow>> = Flow::ALL.into_iter().map(Some).collect();
    if args.layout.is_none() {
        default_flows.push(None);
    }
    // `None` stands for the history flow.
    let flows = parse_list(
        &args.flow,
        default_flows,
        "flow",
        "test-confirm, test-revert, permanent, confirm-cut, downgrade, history",
        |name| {
            if name.eq_ignore_ascii_case(FLOW_NAME) {
                Some(None)
            } else {
                Flow::from_name(name).map(Some)
            }
        },
    )?;
    if args.layout.is_some() && flows.contains(&None) {
        return Err(miette!(
            help = "drop --layout, or pick the single-update flows with --flow",
            "a history runs on the reduced geometry of each part, not on a layout file"
        ));
    }
    let kit = match args.history_kit.to_ascii_lowercase().as_str() {
        "fast" => Kit::Fast,
        "mcuboot" => Kit::Mcuboot,
        other => {
            return Err(miette!(
                help = "known kits: fast, mcuboot",
                "unknown history kit `{other}`"
            ))
        }
    };

    if args.bench {
        let rows = bench_report(&parts, args.buffer).map_err(|e| miette!("{e}"))?;
        let banks = bank_swap_comparison(&parts).map_err(|e| miette!("{e}"))?;
        return print::bench(&rows, &banks, args.json);
    }

    let file_layout = match &args.layout {
        None => None,
        Some(path) => {
            let [p] = parts.as_slice() else {
                return Err(miette!(
                    help = "pass exactly one --part with --layout",
                    "a layout file fits one part"
                ));
            };
            let text = std::fs::read_to_string(path)
                .into_diagnostic()
                .map_err(|e| miette!("cannot read layout file {}: {e}", path.display()))?;
            let layout = parse_layout(&text, &p.geometry).map_err(|e| {
                miette!(
                    help = "fix the layout file",
                    "layout file {}: {e}",
                    path.display()
                )
            })?;
            Some(layout)
        }
    };

    let plan = if args.exhaustive {
        CutPlan::Every
    } else if args.pairs {
        CutPlan::Pairs
    } else if let Some(runs) = args.random {
        CutPlan::Random {
            runs,
            max_cuts: 5,
            seed: args.seed,
        }
    } else {
        CutPlan::Sample {
            ops: args.sample,
            offset: args.seed,
        }
    };

    let mut scenarios = Vec::new();
    for p in &parts {
        let strategies = match &file_layout {
            Some(l) => vec![l.strategy()],
            // By default, only what the part can run (bank swap needs two swappable banks).
            None if args.strategy.is_empty() => strategies
                .iter()
                .copied()
                .filter(|s| s.available_on(&p.geometry))
                // A group spans both banks: nothing to mirror.
                .filter(|s| !(args.group && *s == StrategyKind::BankSwap))
                .collect(),
            None => strategies.clone(),
        };
        for strategy in strategies {
            for &flow in &flows {
                let Some(flow) = flow else {
                    let opts = HistoryOptions {
                        steps: args.steps,
                        kit,
                        seed: args.seed,
                        unstable_torn: args.unstable_torn,
                        staging_during_trial: !args.no_staging_during_trial,
                        group: args.group,
                    };
                    let mut h = History::generate(p, strategy, &opts)
                        .map_err(|e| miette!("{}: reduced layout: {e}", p.name))?;
                    if !args.replay.is_empty() {
                        h.trace = true;
                        let cuts = parse_cuts(&args.replay)?;
                        match h.replay(&cuts, DEFAULT_HORIZON) {
                            Ok(()) => println!(
                                "{} {}: the sequence passes every check",
                                h.part.name,
                                strategy.name()
                            ),
                            Err(why) => println!("{} {}: {why}", h.part.name, strategy.name()),
                        }
                        continue;
                    }
                    scenarios.push(Row::History(Box::new(h)));
                    continue;
                };
                let mut scn = match (&file_layout, plan) {
                    (Some(l), _) => Scenario::with_layout(p, *l, flow),
                    (None, _) if args.group => Scenario::group(p, strategy, flow).map_err(|e| {
                        miette!(
                            help = "--group needs a dual-bank part such as stm32h755zi",
                            "{}: group layout: {e}",
                            p.name
                        )
                    })?,
                    (None, CutPlan::Pairs) => reduced_scenario(p, strategy, flow)
                        .map_err(|e| miette!("{}: reduced layout: {e}", p.name))?,
                    (None, _) => Scenario::new(p, strategy, flow).map_err(|e| {
                        miette!(
                            help = "pass --layout with a layout file that fits",
                            "{}: default layout: {e}",
                            p.name
                        )
                    })?,
                };
                if plan != CutPlan::Pairs {
                    scn.buffer = args.buffer;
                }
                scn.seed = args.seed;
                let wu = scn.layout.write_unit() as usize;
                if scn.buffer < 2 * wu || scn.buffer % wu != 0 {
                    return Err(miette!(
                        help = format!("use a multiple of {wu} bytes, at least {}", 2 * wu),
                        "--buffer {} does not fit {}'s write unit",
                        scn.buffer,
                        p.name
                    ));
                }
                scenarios.push(Row::Flow(Box::new(scn)));
            }
        }
    }

    if !args.replay.is_empty() {
        if !flows.contains(&None) {
            return Err(miette!(
                help = "add --flow history",
                "--replay re-runs a history's cut sequence"
            ));
        }
        return Ok(());
    }

    let bar = ProgressBar::new(scenarios.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} rows  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !args.json {
        print::table_header();
    }
    let mut rows: Vec<RowReport> = Vec::new();
    for row in &scenarios {
        let (part, strategy, flow) = row.label();
        bar.set_message(format!("{part} {} {flow}", strategy.name()));
        let mut progress = |done: u64, total: u64| {
            if total > 0 && done % 64 == 0 {
                bar.set_message(format!("{part} {} {flow} {done}/{total}", strategy.name()));
            }
        };
        let report = row.run(plan, &mut progress);
        bar.suspend(|| print::row(&report, args.json));
        rows.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let totals = Totals::of(&rows);
    print::totals(&totals);
    if totals.failed() {
        print::failures(&rows);
        return Err(miette!(
            help = "re-run the failing row with --part/--strategy/--flow; the failures above name the cut points",
            "{} bricks and {} unverified boots",
            totals.bricks,
            totals.unverified_boots
        ));
    }
    Ok(())
}

/// Parses `OP:PHASE` cut points (`1030:torn`).
fn parse_cuts(values: &[String]) -> miette::Result<Vec<CutPoint>> {
    values
        .iter()
        .map(|v| {
            let bad = || {
                miette!(
                    help = "write OP:PHASE, e.g. 1030:torn (phases: before, torn, after)",
                    "bad cut point `{v}`"
                )
            };
            let (op, phase) = v.split_once(':').ok_or_else(bad)?;
            let op = op.trim().parse().map_err(|_| bad())?;
            let phase = match phase.trim().to_ascii_lowercase().as_str() {
                "before" => CutPhase::Before,
                "torn" => CutPhase::Torn,
                "after" => CutPhase::After,
                _ => return Err(bad()),
            };
            Ok(CutPoint::new(op, phase))
        })
        .collect()
}
