//! `brickless sim …`: virtual devices (`--rom` for the ST ROM bootloader) and `campaign`.
use clap::{Args, Subcommand};

pub mod campaign;
pub mod device;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    #[command(flatten)]
    pub device: device::DeviceArgs,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Cut power at every flash operation of an update and prove the device still boots.
    Campaign(campaign::CampaignArgs),
}

pub fn run(args: SimArgs) -> miette::Result<()> {
    match args.command {
        Some(SimCommand::Campaign(c)) => campaign::run(c),
        None => device::run(args.device),
    }
}
