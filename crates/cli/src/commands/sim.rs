//! `brickless sim …`: virtual devices (the MCU running brickless; `--rom` for the ST ROM
//! bootloader), `campaign`, `cut` and `smp-bench`.
use clap::{Args, Subcommand};

pub mod campaign;
mod campaign_print;
pub mod device;
pub mod smp_bench;

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
    /// Cut the power of a running virtual device (`brickless sim`) on command.
    ///
    /// The device answers, then loses power inside the Nth flash operation from now (0: the
    /// next one): a torn write or a partly erased sector, as a pulled cable leaves it. It
    /// restarts from its flash at the next request. Only virtual devices take this command.
    #[command(after_help = "Examples:
  brickless sim cut --udp 127.0.0.1:1337                 inside the next flash operation
  brickless sim cut --udp 127.0.0.1:1337 --after-ops 40  40 operations from now")]
    Cut(CutArgs),
    /// Measure SMP upload rates against a virtual device on a modelled serial line.
    ///
    /// For each baud rate: one virtual STM32 (flash time modelled), our client's fast path
    /// (requests in flight, raw framing), our client as a stock mcumgr client (one request at
    /// a time, console framing) and smpmgr, each uploading an image of the same size; the
    /// payload rate as a share of the line rate (baud / 10 bytes per second at 8N1) and
    /// against smpmgr. Then one upgrade end to end (upload, test, reset and swap, confirm)
    /// against max(transfer time, modelled erase + program time).
    #[command(after_help = "Examples:
  brickless sim smp-bench                          115200 and 921600 baud, largest image
  brickless sim smp-bench --baud 115200 --size 262144 --no-smpmgr")]
    SmpBench(smp_bench::SmpBenchArgs),
}

/// Arguments of `brickless sim cut`.
#[derive(Args, Debug)]
pub struct CutArgs {
    /// Flash operations to let through first.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub after_ops: u64,
    /// The virtual device.
    #[command(flatten)]
    pub conn: crate::commands::smp::Connection,
}

/// Runs `brickless sim`.
pub fn run(args: SimArgs) -> miette::Result<()> {
    match args.command {
        Some(SimCommand::Campaign(c)) => campaign::run(c),
        Some(SimCommand::Cut(c)) => cut(c),
        Some(SimCommand::SmpBench(a)) => smp_bench::run(a),
        None => device::run(args.device),
    }
}

/// Sends the virtual device its power-cut command.
fn cut(args: CutArgs) -> miette::Result<()> {
    use brickless_smp::header::group;
    use brickless_smp::Op;
    let mut c = crate::commands::smp::connect(&args.conn)?;
    let body = brickless_devices::mcu::sim_cut_body(args.after_ops);
    c.request(
        Op::Write,
        group::BRICKLESS,
        brickless_devices::mcu::SIM_CUT_POWER,
        &body,
    )
    .map_err(|e| {
        miette::miette!(
            help = "only `brickless sim` devices take this command",
            "{e}"
        )
    })?;
    println!(
        "power will be cut inside flash operation {} from now",
        args.after_ops
    );
    Ok(())
}
