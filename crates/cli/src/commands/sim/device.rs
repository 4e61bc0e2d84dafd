//! `brickless sim [--part NAME] [--flash FILE] …`: a virtual STM32 running brickless (the
//! engine's bootloader at every reset, then the application model serving SMP on UDP and a
//! pty); with `--rom`, the same part in system-memory boot mode, answering the ST ROM
//! bootloader's AN3155 protocol on a pty and/or a TCP port.
//!
//! The flash is the faithful model (`brickless_flash_model::SimFlash`) of the named part, kept
//! in FILE across runs (created erased on first use); read-out and write protection are kept
//! next to it in FILE.options. The first line on stdout says where it serves; it runs until
//! killed. Serving and persistence are `brickless_devices::rom::serve`'s; this file parses
//! and prints.
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use brickless_devices::rom::serve::{RomService, ServeOptions};
use brickless_devices::rom::usart::LogFn;
use clap::Args;
use miette::{miette, IntoDiagnostic};

/// Flags of `brickless sim` without a subcommand: which virtual device, where it listens.
#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// Emulate the ST ROM bootloader (BOOT0 high, system memory boot).
    #[arg(long)]
    pub rom: bool,

    /// Part to emulate: stm32h753zi (the default), stm32h743vg, stm32h7a3zi, stm32l475vg,
    /// stm32f407vg, stm32f429zi, stm32l073rz, stm32g071rb, stm32g474re, stm32u585ai, … (the
    /// flash model's part names; with --rom its product ID must be in the ROM device table).
    #[arg(long, value_name = "NAME")]
    pub part: Option<String>,

    /// How the MCU installs updates: `swap` (the default: trial boot, revert by copying back),
    /// `overwrite` (no revert) or `bank-swap` (dual-bank parts: the update is staged in the
    /// other bank and the option bytes flip the banks at reset; nothing is copied). Use the
    /// same strategy with the same flash file: records of another strategy are not read.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "swap",
        conflicts_with = "rom"
    )]
    pub strategy: String,

    /// Flash contents file: created erased on first use, reused (and checked to hold the same
    /// part) on later runs. Default: PART.flash in the current directory.
    #[arg(long, value_name = "FILE")]
    pub flash: Option<PathBuf>,

    /// Serve SMP over UDP at this address (not with --rom).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:1337")]
    pub udp: String,

    /// Public or private key PEM the device trusts (repeat for several). Default: the
    /// development key in the repository (keys/insecure-dev-ed25519.pem): anyone can sign
    /// with it, so never put it on a real device.
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,

    /// The application model never confirms a trial boot itself: a test upgrade is reverted
    /// at the next reset unless confirmed over SMP (`brickless smp image confirm`).
    #[arg(long)]
    pub no_self_confirm: bool,

    /// Charge flash erases and programs the part's typical times (an H7 sector erase takes
    /// about a second); the device buffers upload chunks, so programming overlaps the
    /// transfer.
    #[arg(long)]
    pub flash_time: bool,

    /// Cut power at a random flash operation within the next N, after every power-up
    /// (reproducible with --fault-seed); the device restarts from its flash each time.
    #[arg(long, value_name = "N")]
    pub cut_random: Option<u64>,

    /// Probability that a byte (or datagram byte) the device receives has a bit flipped.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub bit_error_rate: f64,

    /// Probability that a request the device receives is lost.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub drop_rate: f64,

    /// Probability that a request the device receives arrives twice.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub duplicate_rate: f64,

    /// Every N requests the link goes down for three requests (a pulled cable).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub disconnect_every: u32,

    /// Seed of the injected faults and random cuts.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub fault_seed: u64,

    /// Cut power inside the Nth flash operation from start (a torn write or a partly erased
    /// sector); the device restarts from its flash.
    #[arg(long, value_name = "N")]
    pub cut_at_op: Option<u64>,

    /// Create a symlink to the pty at PATH (e.g. ./ttyROM) so tools get a fixed name.
    #[arg(long, value_name = "PATH")]
    pub link: Option<PathBuf>,

    /// Also serve the raw byte stream on TCP (e.g. 127.0.0.1:4000; port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT")]
    pub tcp: Option<String>,

    /// Serve without a pty (TCP with --rom, UDP otherwise).
    #[arg(long)]
    pub no_pty: bool,

    /// Device latency before each answer, in milliseconds (models a USB-UART and the ROM).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub turnaround_ms: u64,

    /// Model the serial line rate: each byte costs 10 (8N1) or 11 (8E1) bit times. With --rom
    /// the pty client's own baud and parity settings are used, on TCP --baud and 8E1;
    /// otherwise the pty runs at --baud, 8N1.
    #[arg(long)]
    pub line_rate: bool,

    /// Baud rate modelled with --line-rate (with --rom: on TCP, and on a pty whose client
    /// set no rate).
    #[arg(long, value_name = "BAUD", default_value_t = 115_200)]
    pub baud: u32,

    /// Offer the Get Checksum command (0xA1), as newer ROM bootloaders do.
    #[arg(long)]
    pub checksum: bool,
}

/// The development key a virtual device trusts when no --key is given.
pub const DEV_KEY_PEM: &str = include_str!("../../../../../keys/insecure-dev-ed25519.pem");

/// Runs the virtual device until interrupted.
pub fn run(args: DeviceArgs) -> miette::Result<()> {
    if !args.rom {
        return run_mcu(args);
    }
    if args.no_pty && args.tcp.is_none() {
        return Err(miette!(
            help = "add --tcp 127.0.0.1:4000",
            "--no-pty leaves the ROM device nowhere to serve"
        ));
    }
    let part_name = args
        .part
        .as_deref()
        .ok_or_else(|| miette!(help = "e.g. --part stm32h753zi", "--part is required"))?;
    let part = brickless_flash::part(part_name).ok_or_else(|| {
        let names: Vec<&str> = brickless_flash::PARTS
            .iter()
            .filter(|p| brickless_rom::by_pid(p.pid).is_some())
            .map(|p| p.name)
            .collect();
        miette!(
            help = format!("known parts: {}", names.join(", ")),
            "unknown part `{part_name}`"
        )
    })?;
    let device = brickless_rom::by_pid(part.pid).ok_or_else(|| {
        miette!(
            help = "the ROM device table covers H74x/H75x, H72x, H7A3, L47x, F40x, F42x, L07x, G07x, G47x, U575",
            "no ROM bootloader profile for {} (product ID {:#05x})",
            part.name,
            part.pid
        )
    })?;
    let flash_path = args
        .flash
        .clone()
        .ok_or_else(|| miette!(help = "e.g. --flash h7.flash", "--flash FILE is required"))?;
    let opts = ServeOptions {
        pty: !args.no_pty,
        link: args.link.clone(),
        tcp: args.tcp.clone(),
        turnaround: Duration::from_millis(args.turnaround_ms),
        line_rate: args.line_rate,
        baud: args.baud,
        checksum: args.checksum,
    };
    let log: LogFn = Arc::new(|line: &str| eprintln!("[rom] {line}"));
    let service = RomService::start(device, part, flash_path, &opts, log).into_diagnostic()?;

    println!(
        "serving AN3155 on {} as {} ({}, product ID {:#05x})",
        service.places().join(" and "),
        part.name,
        device.name,
        device.pid
    );
    let _ = std::io::stdout().flush();
    Err(service.run()).into_diagnostic()
}

/// Looks a part up by name, listing the known names when it is not one.
fn find_part(name: &str) -> miette::Result<&'static brickless_flash::Part> {
    brickless_flash::part(name).ok_or_else(|| {
        let names: Vec<&str> = brickless_flash::PARTS.iter().map(|p| p.name).collect();
        miette!(
            help = format!("known parts: {}", names.join(", ")),
            "unknown part `{name}`"
        )
    })
}

/// `brickless sim` without --rom: the MCU running brickless.
fn run_mcu(args: DeviceArgs) -> miette::Result<()> {
    use brickless_devices::mcu::serve::{McuOptions, McuService};
    use brickless_devices::mcu::{SelfConfirm, VirtualMcu};

    let part = find_part(args.part.as_deref().unwrap_or("stm32h753zi"))?;
    let flash_path = args
        .flash
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.flash", part.name)));
    let strategy = brickless_boot::StrategyKind::from_name(&args.strategy).ok_or_else(|| {
        miette!(
            help = "use swap, overwrite or bank-swap",
            "unknown strategy `{}`",
            args.strategy
        )
    })?;
    let layout = brickless_boot::default_layout(&part.geometry, strategy).map_err(|e| {
        miette!(
            help = "pick another --strategy or --part",
            "no {} layout for {}: {e}",
            strategy.name(),
            part.name
        )
    })?;
    let mut keys = Vec::new();
    for path in &args.keys {
        keys.push(crate::commands::keys::load_key(path)?.public_key());
    }
    let dev_key = keys.is_empty();
    if dev_key {
        let k = brickless_image::keys::load_pem(DEV_KEY_PEM)
            .map_err(|e| miette!("the built-in development key does not load: {e}"))?;
        keys.push(k.public_key());
    }
    let flash = brickless_devices::persist::open_flash(part, &flash_path).into_diagnostic()?;
    let confirm = if args.no_self_confirm {
        SelfConfirm::Never
    } else {
        SelfConfirm::Always
    };
    let mut mcu = VirtualMcu::new(flash, layout, keys, confirm);
    if let Some(n) = args.cut_at_op {
        mcu.cut_after_ops(n);
    }
    if let Some(span) = args.cut_random {
        mcu.set_random_cuts(span, args.fault_seed);
    }
    for (name, p) in [
        ("--bit-error-rate", args.bit_error_rate),
        ("--drop-rate", args.drop_rate),
        ("--duplicate-rate", args.duplicate_rate),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(miette!("{name} is a probability: between 0 and 1, not {p}"));
        }
    }
    let faults = brickless_devices::link::faults::FaultSpec {
        bit_error_rate: args.bit_error_rate,
        drop_rate: args.drop_rate,
        duplicate_rate: args.duplicate_rate,
        disconnect_every: args.disconnect_every,
        seed: args.fault_seed,
    };
    let opts = McuOptions {
        udp: Some(args.udp.clone()),
        pty: !args.no_pty,
        link: args.link.clone(),
        baud: args.line_rate.then_some(args.baud),
        turnaround: Duration::from_millis(args.turnaround_ms),
        flash_time: args.flash_time,
        faults,
        log: Arc::new(|line: &str| eprintln!("[device] {line}")),
    };
    let service = McuService::start(mcu, Some(flash_path.clone()), &opts).into_diagnostic()?;
    println!(
        "serving SMP on {} as {} (flash {}, trusting {})",
        service.places().join(" and "),
        part.name,
        flash_path.display(),
        if dev_key {
            "the INSECURE development key"
        } else {
            "the given keys"
        }
    );
    let _ = std::io::stdout().flush();
    Err(service.run()).into_diagnostic()
}
