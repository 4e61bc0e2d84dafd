//! `brickless rom …`
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum RomCommand {}

pub fn run(cmd: RomCommand) -> miette::Result<()> {
    match cmd {}
}
