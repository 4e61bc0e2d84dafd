//! `brickless` subcommands. Each group lives in its own module with an `Args` type and a `run`.
use clap::{Parser, Subcommand};

pub mod image;
pub mod keys;
pub mod rom;
pub mod sim;
pub mod smp;

/// Firmware updates for STM32 that never brick a device.
#[derive(Parser, Debug)]
#[command(name = "brickless", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand given.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a signing key (PEM, as imgtool writes it).
    Keygen(keys::KeygenArgs),
    /// Print the public half of a key (C array, Rust array, PEM or raw).
    Getpub(keys::GetpubArgs),
    /// Build, sign, verify, inspect and merge MCUboot-format images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Program an STM32 through its ROM bootloader (USART, I2C, USB DFU).
    #[command(subcommand)]
    Rom(rom::RomCommand),
    /// Manage a device over SMP (mcumgr): echo, image list/upload/test/confirm, reset.
    Smp(smp::SmpArgs),
    /// Upload a signed image, test-boot it, wait for it and confirm it (over SMP).
    Upgrade(smp::UpgradeArgs),
    /// Virtual devices and the power-cut campaign.
    Sim(sim::SimArgs),
}

/// Parses the command line and runs it.
pub fn run() -> miette::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen(args) => keys::keygen(args),
        Command::Getpub(args) => keys::getpub(args),
        Command::Image(cmd) => image::run(cmd),
        Command::Rom(cmd) => rom::run(cmd),
        Command::Smp(args) => smp::run(args),
        Command::Upgrade(args) => smp::upgrade(args),
        Command::Sim(args) => sim::run(args),
    }
}
