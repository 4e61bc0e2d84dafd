//! What `brickless sim campaign` prints: the row table (or JSON lines), the totals and
//! failures, and the upgrade benchmark.
use brickless_campaign::bench::{engine_ram, BenchRow, UpgradeCost};
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
pub(super) fn bench(
    rows: &[BenchRow],
    banks: &[(UpgradeCost, UpgradeCost)],
    json: bool,
) -> miette::Result<()> {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r).into_diagnostic()?);
        }
        for (swap, bank) in banks {
            println!("{}", serde_json::to_string(swap).into_diagnostic()?);
            println!("{}", serde_json::to_string(bank).into_diagnostic()?);
        }
        return Ok(());
    }
    bench_table(rows);
    if !banks.is_empty() {
        bank_swap_table(banks);
    }
    engine_ram_lines();
    Ok(())
}

/// Bank swap against swap, staging included: the limits are no copies by the bootloader and
/// at most one erase per sector of the new image.
fn bank_swap_table(banks: &[(UpgradeCost, UpgradeCost)]) {
    println!();
    println!("bank swap against swap, one full-slot test upgrade, staging and confirm included:");
    println!(
        "{:22} {:9} {:>9} {:>8} {:>12} {:>11} {:>9} {:>8} {:>10} {:>10}",
        "part",
        "strategy",
        "image KiB",
        "sectors",
        "copied KiB",
        "slot erases",
        "max e/sec",
        "options",
        "time ms",
        "boot ms"
    );
    for (swap, bank) in banks {
        for c in [swap, bank] {
            println!(
                "{:22} {:9} {:>9} {:>8} {:>12} {:>11} {:>9} {:>8} {:>10.1} {:>10.1}",
                c.part,
                c.strategy,
                c.image_bytes / 1024,
                c.image_sectors,
                c.bootloader_copied_bytes / 1024,
                c.slot_erases,
                c.max_erases_per_sector,
                c.option_programs,
                c.time_ms,
                c.bootloader_time_ms
            );
        }
        println!(
            "{:22} bank swap / swap: time {:.3}, boot time {:.4}, slot erases {:.2} \
             (limit: 0 bytes copied, erases <= {} sectors: {})",
            "",
            bank.time_ms / swap.time_ms.max(f64::MIN_POSITIVE),
            bank.bootloader_time_ms / swap.bootloader_time_ms.max(f64::MIN_POSITIVE),
            bank.slot_erases as f64 / swap.slot_erases.max(1) as f64,
            bank.image_sectors,
            if bank.bootloader_copied_bytes == 0
                && bank.slot_erases <= u64::from(bank.image_sectors)
            {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

fn bench_table(rows: &[BenchRow]) {
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
}

fn engine_ram_lines() {
    let ram = engine_ram();
    println!(
        "engine RAM (host build): engine struct {} B (layout {} B) + copy buffer (the --buffer value); \
         fixed stack buffers {} B (state scan block, record writer, CRC and SHA-256 state)",
        ram.engine_struct, ram.layout, ram.stack_buffers
    );
}
