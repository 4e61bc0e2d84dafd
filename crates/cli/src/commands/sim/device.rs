//! `brickless sim --rom --part NAME --flash FILE …`: a virtual STM32 in system-memory boot
//! mode, answering the ST ROM bootloader's AN3155 protocol on a pty and/or a TCP port.
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

    /// Part to emulate: stm32h753zi, stm32h743vg, stm32h7a3zi, stm32l475vg, stm32f407vg,
    /// stm32f429zi, stm32l073rz, stm32g071rb, stm32g474re, stm32u585ai, … (the flash model's
    /// part names; its product ID must be in the ROM device table).
    #[arg(long, value_name = "NAME")]
    pub part: Option<String>,

    /// Flash contents file: created erased on first use, reused (and checked to hold the same
    /// part) on later runs.
    #[arg(long, value_name = "FILE")]
    pub flash: Option<PathBuf>,

    /// Create a symlink to the pty at PATH (e.g. ./ttyROM) so tools get a fixed name.
    #[arg(long, value_name = "PATH")]
    pub link: Option<PathBuf>,

    /// Also serve the raw byte stream on TCP (e.g. 127.0.0.1:4000; port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT")]
    pub tcp: Option<String>,

    /// Serve TCP only, without a pty.
    #[arg(long, requires = "tcp")]
    pub no_pty: bool,

    /// Device latency before each answer, in milliseconds (models a USB-UART and the ROM).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub turnaround_ms: u64,

    /// Model the serial line rate: each byte costs 10 (8N1) or 11 (8E1) bit times. On the pty
    /// the client's own baud and parity settings are used; on TCP, --baud and 8E1.
    #[arg(long)]
    pub line_rate: bool,

    /// Baud rate modelled on TCP, and on a pty whose client set no rate.
    #[arg(long, value_name = "BAUD", default_value_t = 115_200)]
    pub baud: u32,

    /// Offer the Get Checksum command (0xA1), as newer ROM bootloaders do.
    #[arg(long)]
    pub checksum: bool,
}

/// Runs the virtual device until interrupted.
pub fn run(args: DeviceArgs) -> miette::Result<()> {
    if !args.rom {
        return Err(miette!(
            help = "start the ST ROM bootloader model with `brickless sim --rom --part stm32h753zi --flash h7.flash`",
            "no virtual device selected"
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
