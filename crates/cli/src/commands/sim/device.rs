//! `brickless sim --rom --part NAME --flash FILE …`: a virtual STM32 in system-memory boot
//! mode, answering the ST ROM bootloader's AN3155 protocol on a pty and/or a TCP port.
//!
//! The flash is the faithful model (`brickless_flash_model::SimFlash`) of the named part, kept
//! in FILE across runs (created erased on first use); read-out and write protection are kept
//! next to it in FILE.options. The first line on stdout says where it serves; it runs until
//! killed.
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brickless_devices::rom::core::RomCore;
use brickless_devices::rom::usart::{self, LineParams, Session, UsartOptions};
use brickless_flash_model::SimFlash;
use clap::Args;
use miette::{miette, IntoDiagnostic, WrapErr};

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

type Core = Arc<Mutex<RomCore>>;

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
    let flash = open_flash(part, &flash_path)?;
    let mut core = RomCore::new(device, flash);
    let options_path = options_path(&flash_path);
    if let Some((rdp, wrp)) = load_options(&options_path) {
        core.restore_protection(rdp, &wrp);
    }
    let core: Core = Arc::new(Mutex::new(core));

    let log: usart::LogFn = Arc::new(|line: &str| eprintln!("[rom] {line}"));
    let turnaround = Duration::from_millis(args.turnaround_ms);
    let mut places = Vec::new();

    let mut pty_thread = None;
    if !args.no_pty {
        let pty = pty::open()
            .into_diagnostic()
            .wrap_err("could not open a pty")?;
        let mut shown = pty.slave_path.display().to_string();
        if let Some(link) = &args.link {
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(&pty.slave_path, link)
                .into_diagnostic()
                .wrap_err_with(|| format!("could not create the link {}", link.display()))?;
            shown = format!("{shown} (link {})", link.display());
        }
        places.push(shown);
        let line: Option<usart::LineFn> = if args.line_rate {
            let probe = pty.line_probe(args.baud).into_diagnostic()?;
            Some(Arc::new(move || probe.params()))
        } else {
            None
        };
        let opts = UsartOptions {
            turnaround,
            line,
            checksum: args.checksum,
            log: Some(log.clone()),
        };
        let core = core.clone();
        pty_thread = Some(std::thread::spawn(move || {
            let session = Mutex::new(Session::default());
            let mut master = pty.master;
            // The pty stays open (we hold its slave side), so clients come and go freely.
            loop {
                usart::serve(&core, &session, &mut master, &opts);
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }

    if let Some(addr) = &args.tcp {
        let listener = TcpListener::bind(addr)
            .into_diagnostic()
            .wrap_err_with(|| format!("could not listen on {addr}"))?;
        places.push(format!("tcp {}", listener.local_addr().into_diagnostic()?));
        let line: Option<usart::LineFn> = if args.line_rate {
            let p = LineParams {
                baud: args.baud,
                bits_per_byte: 11,
            };
            Some(Arc::new(move || p))
        } else {
            None
        };
        let opts = UsartOptions {
            turnaround,
            line,
            checksum: args.checksum,
            log: Some(log.clone()),
        };
        let core = core.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                let core = core.clone();
                let opts = opts.clone();
                std::thread::spawn(move || {
                    // Each connection is a freshly reset device (stm32loader syncs first).
                    let session = Mutex::new(Session::default());
                    usart::serve(&core, &session, &mut stream, &opts);
                });
            }
        });
    }

    println!(
        "serving AN3155 on {} as {} ({}, product ID {:#05x})",
        places.join(" and "),
        part.name,
        device.name,
        device.pid
    );
    let _ = std::io::stdout().flush();

    // Persist changes shortly after they happen.
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let snapshot = {
            let mut c = core.lock().unwrap_or_else(|p| p.into_inner());
            c.take_dirty()
                .then(|| (c.flash().clone(), c.protection_state()))
        };
        if let Some((flash, (rdp, wrp))) = snapshot {
            if let Err(e) = flash.save(&flash_path) {
                eprintln!("[rom] could not save {}: {e}", flash_path.display());
            }
            save_options(&options_path, rdp, &wrp);
        }
        if pty_thread.as_ref().is_some_and(|t| t.is_finished()) {
            return Err(miette!("the pty server stopped"));
        }
    }
}

fn open_flash(part: &'static brickless_flash::Part, path: &Path) -> miette::Result<SimFlash> {
    if path.exists() {
        let mut flash = SimFlash::new(part);
        flash
            .load(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("could not use the flash file {}", path.display()))?;
        Ok(flash)
    } else {
        let flash = SimFlash::new(part);
        flash
            .save(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("could not create the flash file {}", path.display()))?;
        Ok(flash)
    }
}

fn options_path(flash: &Path) -> PathBuf {
    let mut p = flash.as_os_str().to_owned();
    p.push(".options");
    PathBuf::from(p)
}

/// `rdp=1` and `wrp=3,4` lines; a missing or unreadable file means no protection.
fn load_options(path: &Path) -> Option<(bool, Vec<u16>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut rdp = false;
    let mut wrp = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("rdp=") {
            rdp = v.trim() == "1";
        } else if let Some(v) = line.strip_prefix("wrp=") {
            wrp = v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        }
    }
    Some((rdp, wrp))
}

fn save_options(path: &Path, rdp: bool, wrp: &[u16]) {
    let list: Vec<String> = wrp.iter().map(u16::to_string).collect();
    let _ = std::fs::write(
        path,
        format!("rdp={}\nwrp={}\n", u8::from(rdp), list.join(",")),
    );
}

mod pty {
    use std::fs::File;
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::path::PathBuf;

    use brickless_devices::rom::usart::LineParams;
    use nix::pty::openpty;
    use nix::sys::termios::{self, SetArg};

    pub struct Pty {
        pub master: File,
        /// Held open so the master never sees a hang-up between clients.
        slave: OwnedFd,
        pub slave_path: PathBuf,
    }

    /// Reads the client's line settings from the slave side.
    pub struct LineProbe {
        slave: OwnedFd,
        default_baud: u32,
    }

    pub fn open() -> std::io::Result<Pty> {
        let pair = openpty(None, None).map_err(std::io::Error::from)?;
        // SAFETY: openpty just returned these two descriptors and nothing else owns them.
        let (master, slave) = unsafe {
            (
                OwnedFd::from_raw_fd(pair.master),
                OwnedFd::from_raw_fd(pair.slave),
            )
        };
        let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))?;
        let mut t = termios::tcgetattr(slave.as_raw_fd()).map_err(std::io::Error::from)?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(slave.as_raw_fd(), SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
        Ok(Pty {
            master: File::from(master),
            slave,
            slave_path,
        })
    }

    impl Pty {
        pub fn line_probe(&self, default_baud: u32) -> std::io::Result<LineProbe> {
            Ok(LineProbe {
                slave: self.slave.as_fd().try_clone_to_owned()?,
                default_baud,
            })
        }
    }

    impl LineProbe {
        /// Baud and bits per byte the client set. Read with TCGETS2: serialport-based clients
        /// set arbitrary rates (BOTHER), which the classic termios speed codes cannot express.
        pub fn params(&self) -> LineParams {
            // SAFETY: TCGETS2 fills a `termios2` we own; the descriptor is open for our life.
            let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
            let r = unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TCGETS2, &mut t) };
            if r != 0 {
                return LineParams {
                    baud: self.default_baud,
                    bits_per_byte: 11,
                };
            }
            let mut bits = 10;
            if t.c_cflag & libc::PARENB != 0 {
                bits += 1;
            }
            if t.c_cflag & libc::CSTOPB != 0 {
                bits += 1;
            }
            let baud = if t.c_ospeed > 0 {
                t.c_ospeed
            } else {
                self.default_baud
            };
            LineParams {
                baud,
                bits_per_byte: bits,
            }
        }
    }
}
