//! `brickless sim …`: virtual devices (`--rom` for the ST ROM bootloader) and `campaign`.
use clap::{Args, Subcommand};

pub mod campaign;
mod campaign_print;
pub mod device;

/// Arguments of `brickless sim`: a subcommand, or the flags of a virtual device.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    /// `campaign`, when given.
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    /// The virtual device to run when no subcommand is given.
    #[command(flatten)]
    pub device: device::DeviceArgs,
}

/// The `brickless sim` subcommands.
#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Cut power at every flash operation of an update and prove the device still boots.
    ///
    /// Each row runs the real update engine on the flash model of one part (write unit,
    /// erased value, ECC, rewrite rule, torn writes, partly erased sectors), cuts power at
    /// the chosen operations (before, inside or after each), boots until stable and checks:
    /// every boot starts exactly an image the flow allows (compared byte for byte), a
    /// confirmed image is never lost, an unconfirmed trial never survives a reset, the
    /// anti-rollback floor equals what was confirmed, nothing bricks.
    ///
    /// The single-update flows start from a fresh device. The `history` flow keeps one
    /// device through many updates of every kind, so the state log fills and compacts, the
    /// floor rises and refused images come and go; it runs on each part's reduced geometry
    /// (same rules, 1-2 KiB sectors) against a reference model of every step.
    #[command(after_help = "Examples:
  brickless sim campaign                                   sample of every part, strategy and flow
  brickless sim campaign --flow history --part stm32l073rz --exhaustive
                                                           every cut of a 64-step history
  brickless sim campaign --flow history --unstable-torn --random 200
  brickless sim campaign --exhaustive --json > rows.jsonl  one JSON object per row
  brickless sim campaign --bench                           flash ops and time vs MCUboot")]
    Campaign(campaign::CampaignArgs),
}

/// Runs `brickless sim`.
pub fn run(args: SimArgs) -> miette::Result<()> {
    match args.command {
        Some(SimCommand::Campaign(c)) => campaign::run(c),
        None => device::run(args.device),
    }
}
