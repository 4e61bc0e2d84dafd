//! `brickless image …`
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {}

pub fn run(cmd: ImageCommand) -> miette::Result<()> {
    match cmd {}
}
