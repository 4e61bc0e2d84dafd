//! `brickless keygen` and `brickless getpub`.
use clap::Args;

#[derive(Args, Debug)]
pub struct KeygenArgs {}

#[derive(Args, Debug)]
pub struct GetpubArgs {}

pub fn keygen(_args: KeygenArgs) -> miette::Result<()> {
    Err(miette::miette!("keygen is not built yet"))
}

pub fn getpub(_args: GetpubArgs) -> miette::Result<()> {
    Err(miette::miette!("getpub is not built yet"))
}
