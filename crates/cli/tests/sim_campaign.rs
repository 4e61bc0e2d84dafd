//! `brickless sim campaign` as a user runs it: rows with the documented JSON fields, no brick,
//! a history row (many updates, compactions counted), a named error for an unknown part, and
//! the benchmark against MCUboot's k64f figures.
use std::process::Command;

fn brickless(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_brickless"))
        .args(args)
        .output()
        .expect("run brickless")
}

#[test]
fn json_rows_have_the_documented_fields_and_no_brick() {
    let out = brickless(&[
        "sim",
        "campaign",
        "--part",
        "stm32g071rb",
        "--flow",
        "test-confirm,test-revert,permanent,confirm-cut,downgrade",
        "--sample",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    // 2 strategies x 5 flows.
    assert_eq!(rows.len(), 10, "{text}");
    let mut cut_total = 0;
    for row in &rows {
        for field in [
            "part",
            "strategy",
            "flow",
            "cut_points",
            "bricks",
            "unverified_boots",
            "ops",
            "max_boots",
            "max_wear",
            "updates",
            "compactions",
        ] {
            assert!(row.get(field).is_some(), "missing {field} in {row}");
        }
        assert_eq!(row["part"], "stm32g071rb");
        // One update from a fresh device: the state log never compacts.
        assert_eq!(row["updates"], 1, "{row}");
        assert_eq!(row["compactions"], 0, "{row}");
        assert_eq!(row["bricks"], 0, "{row}");
        assert_eq!(row["unverified_boots"], 0, "{row}");
        cut_total += row["cut_points"].as_u64().unwrap();
    }
    assert!(cut_total > 0, "the sample cut nothing: {text}");
}

#[test]
fn history_row_counts_updates_and_compactions() {
    // Overwrite, the quicker of the two strategies here.
    let out = brickless(&[
        "sim",
        "campaign",
        "--part",
        "stm32l073rz",
        "--strategy",
        "overwrite",
        "--flow",
        "history",
        "--sample",
        "4",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    let row = &rows[0];
    assert_eq!(row["flow"], "history");
    assert_eq!(row["part"], "stm32l073rz-reduced");
    assert_eq!(row["updates"], 64, "{row}");
    assert!(row["compactions"].as_u64().unwrap() >= 4, "{row}");
    assert!(row["ops"].as_u64().unwrap() > 1000, "{row}");
    // 8 x 4 sampled operations plus the compactions, 3 phases each, plus 4 pairs.
    assert!(row["cut_points"].as_u64().unwrap() >= 3 * 32, "{row}");
    assert_eq!(row["bricks"], 0, "{row}");
    assert_eq!(row["unverified_boots"], 0, "{row}");
}

#[test]
fn replay_traces_one_cut_sequence() {
    let out = brickless(&[
        "sim",
        "campaign",
        "--flow",
        "history",
        "--part",
        "stm32l073rz",
        "--strategy",
        "overwrite",
        "--replay",
        "300:torn,320:after",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("passes every check"), "{text}");
    let out = brickless(&[
        "sim",
        "campaign",
        "--flow",
        "history",
        "--replay",
        "12:sideways",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad cut point `12:sideways`"), "{err}");
}

#[test]
fn help_explains_the_history_flow() {
    let out = brickless(&["sim", "campaign", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "history",
        "--steps",
        "--unstable-torn",
        "compacts",
        "unconfirmed trial never survives a reset",
        "updates, compactions",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn unknown_part_is_a_named_error() {
    let out = brickless(&["sim", "campaign", "--part", "stm32x999"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown part `stm32x999`"), "{err}");
    assert!(
        err.contains("stm32h753zi"),
        "the help lists known parts: {err}"
    );
}

#[test]
fn bench_compares_with_mcuboot_and_the_physical_minimum() {
    let out = brickless(&["sim", "campaign", "--bench"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let k64f_swap = text
        .lines()
        .find(|l| l.starts_with("k64f-shaped") && l.contains("swap-offset 368"))
        .unwrap_or_else(|| panic!("no k64f swap row: {text}"));
    // Columns: part strategy buffer units ops writes erases min_ops max_e time min ratio.
    let cols: Vec<&str> = k64f_swap.split_whitespace().collect();
    let ops: u64 = cols[4].parse().unwrap();
    assert!(
        ops < 368,
        "swap with revert must beat MCUboot swap-offset: {k64f_swap}"
    );
    let (table, banks) = text
        .split_once("bank swap against swap")
        .unwrap_or_else(|| panic!("no bank-swap comparison: {text}"));
    for line in table.lines().skip(1).filter(|l| l.starts_with("stm32")) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let ratio: f64 = cols[11].parse().unwrap();
        assert!(
            ratio >= 0.99,
            "modelled time below the physical minimum: {line}"
        );
    }
    // Every dual-bank part of the default set: no copies, one erase per image sector.
    let verdicts: Vec<&str> = banks
        .lines()
        .filter(|l| l.contains("bank swap / swap"))
        .collect();
    assert!(verdicts.len() >= 4, "{banks}");
    for line in verdicts {
        assert!(line.trim_end().ends_with(": met)"), "{line}");
    }
}
