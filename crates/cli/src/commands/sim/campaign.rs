//! `brickless sim campaign`
use clap::Args;

#[derive(Args, Debug)]
pub struct CampaignArgs {}

pub fn run(_args: CampaignArgs) -> miette::Result<()> {
    Err(miette::miette!("the campaign is not built yet"))
}
