//! Many devices at once (`rom write` and `upgrade` with several targets): one progress line
//! per device, a result table (or JSON) at the end, and an exit status that counts failures.
use std::io::Write as _;
use std::path::PathBuf;

use brickless_host::gang::{self, Outcome, Step};
use brickless_host::target::Target;
use brickless_host::{Cancel, Error};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use miette::{miette, Result};

/// The targets a gang command names: its repeated flags, then the lines of `--targets`.
pub fn collect(
    flags: impl IntoIterator<Item = Target>,
    file: Option<&PathBuf>,
    default_baud: u32,
) -> Result<Vec<Target>> {
    let mut targets: Vec<Target> = flags.into_iter().collect();
    if let Some(path) = file {
        targets.extend(Target::read_list(path, default_baud).map_err(to_report)?);
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = targets.iter().find(|t| !seen.insert((*t).clone())) {
        return Err(miette!(
            help = "each device may appear once: two jobs on one port would corrupt each other",
            "{dup} is named twice"
        ));
    }
    Ok(targets)
}

/// A host error as a miette report, with its hint.
pub fn to_report(e: Error) -> miette::Report {
    match e.help {
        Some(h) => miette!(help = h, "{}", e.message),
        None => miette!("{}", e.message),
    }
}

/// Runs `job` on every target at once with a progress line each, prints a table (or JSON)
/// of the outcomes, and exits with the number of devices that failed (0: all succeeded).
pub fn run<R: serde::Serialize + Send>(
    what: &str,
    targets: &[Target],
    json: bool,
    job: impl Fn(&Target, &mut dyn FnMut(Step), &Cancel) -> std::result::Result<R, Error> + Sync,
    describe: impl Fn(&R) -> String,
) -> Result<()> {
    let multi = MultiProgress::with_draw_target(if json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let width = targets
        .iter()
        .map(|t| t.to_string().len())
        .max()
        .unwrap_or(0);
    let style = ProgressStyle::with_template(
        "{prefix} {msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bars: Vec<ProgressBar> = targets
        .iter()
        .map(|t| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(style.clone());
            bar.set_prefix(format!("{:<width$}", t.to_string()));
            bar.set_message("connecting");
            bar
        })
        .collect();
    if !json {
        eprintln!("{what} on {} devices at once", targets.len());
    }
    let outcomes = gang::run(targets, &Cancel::new(), job, |i, step: Step| {
        let bar = &bars[i];
        if bar.message() != step.phase {
            bar.set_message(step.phase);
            bar.set_length(step.total);
        }
        bar.set_position(step.done);
    });
    for (bar, o) in bars.iter().zip(&outcomes) {
        bar.finish_with_message(if o.result.is_ok() { "done" } else { "FAILED" });
    }
    let _ = multi.clear();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if json {
        println!(
            "{}",
            serde_json::to_string(&json_of(&outcomes)).unwrap_or_default()
        );
    } else {
        print_table(&outcomes, &describe);
        println!(
            "{} of {} devices succeeded{}",
            outcomes.len() - failed,
            outcomes.len(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
    let _ = std::io::stdout().flush();
    if failed > 0 {
        // The exit status is the number of failed devices (capped: statuses are one byte).
        std::process::exit(failed.min(255) as i32);
    }
    Ok(())
}

fn json_of<R: serde::Serialize>(outcomes: &[Outcome<R>]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(r) => serde_json::json!({
                "target": o.target.to_string(), "ok": true,
                "seconds": (o.seconds * 1000.0).round() / 1000.0, "result": r,
            }),
            Err(e) => serde_json::json!({
                "target": o.target.to_string(), "ok": false,
                "seconds": (o.seconds * 1000.0).round() / 1000.0,
                "error": { "kind": e.kind.name(), "code": e.kind as i32, "message": e.message },
            }),
        })
        .collect();
    serde_json::Value::Array(rows)
}

fn print_table<R>(outcomes: &[Outcome<R>], describe: &impl Fn(&R) -> String) {
    let rows: Vec<[String; 4]> = outcomes
        .iter()
        .map(|o| {
            let (status, detail) = match &o.result {
                Ok(r) => ("ok".to_string(), describe(r)),
                Err(e) => (format!("FAILED ({})", e.kind.name()), e.message.clone()),
            };
            [
                o.target.to_string(),
                status,
                format!("{:.1} s", o.seconds),
                detail,
            ]
        })
        .collect();
    let head = ["device", "result", "time", "detail"];
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(3) {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |r: [&str; 4]| {
        println!(
            "{:<a$}  {:<b$}  {:>c$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            a = w[0],
            b = w[1],
            c = w[2]
        )
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
}
