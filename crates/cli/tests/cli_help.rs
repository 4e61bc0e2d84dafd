//! The command line is an interface: the help of every command and subcommand is pinned in
//! `tests/fixtures/help.txt`, so a changed flag, default or description fails here until the
//! fixture is regenerated on purpose (`BRICKLESS_BLESS=1 cargo test -p brickless --test
//! cli_help`) and the diff reviewed.
mod common;

use common::{brickless, run_ok};
use std::path::Path;

/// `--help` of `args`, then of each subcommand it lists, depth first.
fn collect(args: &mut Vec<String>, out: &mut String) {
    let help = run_ok(brickless().args(args.iter()).arg("--help"));
    let text = String::from_utf8(help.stdout).expect("help is UTF-8");
    out.push_str(&format!("=== brickless {}\n{text}", args.join(" ")));
    let subcommands: Vec<String> = text
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    for name in subcommands {
        args.push(name);
        collect(args, out);
        args.pop();
    }
}

#[test]
fn every_commands_help_is_what_the_fixture_says() {
    let mut help = String::new();
    collect(&mut Vec::new(), &mut help);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/help.txt");
    if std::env::var_os("BRICKLESS_BLESS").is_some() {
        std::fs::write(&fixture, &help).expect("write the fixture");
        return;
    }
    let expected = std::fs::read_to_string(&fixture).expect("tests/fixtures/help.txt");
    assert!(
        help.matches("=== brickless").count() >= 20,
        "the walk missed subcommands"
    );
    if help != expected {
        let first = help
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(help.lines().count().min(expected.lines().count()));
        panic!(
            "help differs from tests/fixtures/help.txt at line {}:\n  now:     {:?}\n  fixture: {:?}\n\
             regenerate with BRICKLESS_BLESS=1 if the change is meant",
            first + 1,
            help.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}
