//! `brickless` subcommands. Each group lives in its own module with an `Args` type and a `run`.
use clap::{Parser, Subcommand};

pub mod demo;
pub mod gang;
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
    /// See an update survive power cuts on a virtual STM32: no board needed (start here).
    Demo(demo::DemoArgs),
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
    #[command(after_help = "Examples:
  brickless smp --udp 192.0.2.7 image list            a Zephyr device on the network (port 1337)
  brickless smp --port /dev/ttyACM0 image upload app.signed.bin
  brickless smp --port /dev/ttyACM0 image test 3ea7bbda…   (the hash `image list` shows)
  brickless smp --port /dev/ttyACM0 reset
  brickless smp --port /dev/ttyACM0 image confirm     keep the running trial image")]
    Smp(smp::SmpArgs),
    /// Upload a signed image, test-boot it, wait for it and confirm it (over SMP).
    ///
    /// The one-shot update: upload into the staging slot (resuming after a dropped link),
    /// mark it for a test boot, reset, wait until the device runs it, then confirm it. If the
    /// device comes back with another image (it refused or reverted the update), it says so
    /// and exits 1. With --no-confirm the image is left as a trial: the next reset reverts it
    /// unless the application confirms itself.
    ///
    /// With several devices (repeated --udp/--port, or --targets FILE) they are updated at
    /// once, with a progress line each and a result table (or --json); a device that fails
    /// does not stop the others, and the exit status is the number that failed.
    #[command(after_help = "Examples:
  brickless upgrade --port /dev/ttyACM0 app-v2.signed.bin
  brickless upgrade --udp 10.0.0.11 --udp 10.0.0.12 --port /dev/ttyACM0 app-v2.signed.bin
  brickless upgrade --targets fleet.txt --json app-v2.signed.bin   (lines: udp:HOST[:PORT], serial:PATH[@BAUD])
  brickless upgrade --udp 127.0.0.1 --json app-v2.signed.bin
  brickless upgrade --port ./ttySMP --no-confirm app-v3.signed.bin")]
    Upgrade(smp::UpgradeArgs),
    /// Virtual devices and the power-cut campaign.
    Sim(Box<sim::SimArgs>),
}

/// Parses the command line and runs it.
pub fn run() -> miette::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Keygen(args) => keys::keygen(args),
        Command::Getpub(args) => keys::getpub(args),
        Command::Image(cmd) => image::run(cmd),
        Command::Rom(cmd) => rom::run(cmd),
        Command::Smp(args) => smp::run(args),
        Command::Upgrade(args) => smp::upgrade(args),
        Command::Sim(args) => sim::run(*args),
    }
}
