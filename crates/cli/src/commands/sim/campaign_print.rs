//! What `brickless sim campaign` prints: the row table (or JSON lines), the totals and
//! failures, and the upgrade benchmark.
use brickless_campaign::bench::{engine_ram, BenchRow};
use brickless_campaign::rows::Totals;
use brickless_campaign::RowReport;
use miette::IntoDiagnostic;

pub(super) fn table_header() {
    println!("{}", RowReport::table_header());
}

pub(super) fn row(row: &RowReport, json: bool) {
    if json {
        match serde_json::to_string(row) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode row: {e}"),
        }
    } else {
        println!("{row}");
    }
}

/// The closing line, on stderr so a JSON stream stays clean.
pub(super) fn totals(t: &Totals) {
    eprintln!(
        "{} rows, {} cut sequences, {} bricks, {} unverified boots",
        t.rows, t.cut_points, t.bricks, t.unverified_boots
    );
}

pub(super) fn failures(rows: &[RowReport]) {
    for r in rows {
        for f in &r.failures {
            eprintln!("  {} {} {}: {f}", r.part, r.strategy, r.flow);
        }
    }
}

/// The benchmark table and the engine's RAM, or one JSON object per row.
pub(super) fn bench(rows: &[BenchRow], json: bool) -> miette::Result<()> {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r).into_diagnostic()?);
        }
        return Ok(());
    }
    println!(
        "{:22} {:9} {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>9} {:>11} {:>11} {:>6}  vs MCUboot",
        "part",
        "strategy",
        "buffer",
        "units",
        "ops",
        "writes",
        "erases",
        "min op",
        "max e/sec",
        "time ms",
        "min ms",
        "ratio",
    );
    for r in rows {
        println!(
            "{:22} {:9} {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>9} {:>11.1} {:>11.1} {:>6.2}  {}",
            r.part,
            r.strategy,
            r.buffer,
            r.units,
            r.ops,
            r.writes,
            r.erases,
            r.min_ops,
            r.max_erases_per_sector,
            r.time_ms,
            r.min_time_ms,
            r.time_ratio,
            r.mcuboot.as_deref().unwrap_or("")
        );
    }
    let ram = engine_ram();
    println!(
        "engine RAM (host build): engine struct {} B (layout {} B) + copy buffer (the --buffer value); \
         fixed stack buffers {} B (state scan block, record writer, CRC and SHA-256 state)",
        ram.engine_struct, ram.layout, ram.stack_buffers
    );
    Ok(())
}
