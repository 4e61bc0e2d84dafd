//! `brickless smp …` and `brickless upgrade`: manage a device over SMP (mcumgr's protocol)
//! on UDP or a serial port, as mcumgr and smpmgr do. Any MCUboot/Zephyr device answers,
//! and so does brickless's virtual device (`brickless sim`).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brickless_host::smp::{Session, SmpOptions, Upgraded};
use brickless_host::target::Target;
use brickless_smp::client::{Client, ClientError, ImageState, UploadReport};
use brickless_smp::transport::Transport;

use crate::commands::gang::to_report;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use miette::{miette, Result};

/// Where the device is.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The device's UDP address (port 1337, mcumgr's, when not given). `upgrade` takes
    /// several (with --port too) and updates them at once.
    #[arg(long, value_name = "HOST[:PORT]", global = true)]
    pub udp: Vec<String>,
    /// The device's serial port (SMP console framing, 8N1), e.g. /dev/ttyACM0 or a
    /// `brickless sim --link` path. `upgrade` takes several.
    #[arg(long, value_name = "PATH", global = true)]
    pub port: Vec<String>,
    /// A file listing devices for `upgrade` to update at once, one per line:
    /// `udp:HOST[:PORT]` or `serial:PATH[@BAUD]` (`#` starts a comment).
    #[arg(long, value_name = "FILE", global = true)]
    pub targets: Option<PathBuf>,
    /// Serial baud rate.
    #[arg(long, value_name = "BAUD", default_value_t = 115_200, global = true)]
    pub baud: u32,
    /// Seconds to wait for each answer.
    #[arg(long, value_name = "S", default_value_t = 5.0, global = true)]
    pub timeout: f64,
    /// UDP payload limit, bytes (the device's advertised buffer also limits each request).
    #[arg(long, value_name = "BYTES", default_value_t = 1472, global = true)]
    pub mtu: usize,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Upload as a stock mcumgr client does (one request at a time, console framing), even
    /// when the device offers brickless's fast path (requests in flight, raw framing,
    /// resume from flash).
    #[arg(long, global = true)]
    pub standard: bool,
}

/// `brickless smp` subcommands.
#[derive(Subcommand, Debug)]
pub enum SmpCommand {
    /// Send text and print what the device echoes.
    Echo {
        /// The text.
        text: String,
    },
    /// Image management: list, upload, test, confirm, erase.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Reset the device (it answers first).
    Reset,
    /// Print the device's request buffer size and count, and its bootloader.
    Info,
    /// Show the device's read-out protection and its bootloader's write protection, or with
    /// --set, write-protect the bootloader's own sectors (a brickless device only).
    ///
    /// Write protection stops anything (a bug, a hostile image) from erasing the
    /// bootloader; removing it takes the chip's option bytes (e.g. STM32CubeProgrammer).
    /// The device may reset to apply it.
    Protect {
        /// Write-protect the bootloader's sectors (asks nothing: this flag is the request).
        #[arg(long)]
        set: bool,
    },
}

/// `brickless smp image` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List the images in the slots: version, hash, flags (like `mcumgr image list`).
    List,
    /// Upload a signed image into the staging slot (it resumes after a dropped link).
    Upload {
        /// The signed image (BIN, as `brickless image sign` or imgtool writes it).
        file: PathBuf,
    },
    /// Mark the uploaded image with HASH for one test boot at the next reset.
    Test {
        /// The image's SHA-256 (64 hex digits, as `image list` shows).
        hash: String,
    },
    /// Confirm the running image, or (with HASH) request that image for good.
    Confirm {
        /// The image's SHA-256; omit to confirm the running image.
        hash: Option<String>,
    },
    /// Erase the staging slot.
    Erase,
}

/// Arguments of `brickless smp`.
#[derive(Args, Debug)]
pub struct SmpArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SmpCommand,
    /// The device.
    #[command(flatten)]
    pub conn: Connection,
}

/// Arguments of `brickless upgrade`.
#[derive(Args, Debug)]
pub struct UpgradeArgs {
    /// The signed image.
    pub file: PathBuf,
    /// The device.
    #[command(flatten)]
    pub conn: Connection,
    /// Leave the new image as a trial: it is reverted at the next reset unless something
    /// confirms it (the application itself, or `brickless smp image confirm`).
    #[arg(long)]
    pub no_confirm: bool,
    /// Seconds to wait for the device to come back with the new image.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub wait: f64,
}

/// The devices `conn` names, flags first, then the lines of --targets.
pub fn targets(conn: &Connection) -> Result<Vec<Target>> {
    let flags = conn
        .udp
        .iter()
        .map(|a| {
            Target::Udp(brickless_host::target::with_port(
                a,
                brickless_host::target::SMP_UDP_PORT,
            ))
        })
        .chain(conn.port.iter().map(|p| Target::Serial {
            path: p.clone(),
            baud: conn.baud,
        }));
    crate::commands::gang::collect(flags, conn.targets.as_ref(), conn.baud)
}

fn options(conn: &Connection) -> SmpOptions {
    SmpOptions {
        timeout: conn.timeout.max(0.05),
        mtu: conn.mtu,
        fast: !conn.standard,
    }
}

/// The one device `conn` names.
fn one_target(conn: &Connection) -> Result<Target> {
    let mut all = targets(conn)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(miette!(
            help = "start a virtual device with `brickless sim` (it serves UDP 127.0.0.1:1337)",
            "say where the device is: --udp HOST[:PORT] or --port PATH"
        )),
        n => Err(miette!(
            help = "`brickless upgrade` updates several devices at once",
            "this command talks to one device, and {n} are named"
        )),
    }
}

/// Opens a session with the one device `conn` names.
pub fn session(conn: &Connection) -> Result<Session> {
    Session::connect(&one_target(conn)?, &options(conn)).map_err(to_report)
}

/// Opens the link to the one device `conn` names.
pub fn connect(conn: &Connection) -> Result<Client<Box<dyn Transport>>> {
    let target = one_target(conn)?;
    Ok(Session::connect(&target, &options(conn))
        .map_err(to_report)?
        .into_client())
}

/// An SMP error with the hint the shared jobs give it.
fn device_error(e: ClientError) -> miette::Report {
    to_report(e.into())
}

/// Parses a hash given in hex.
fn parse_hash(text: &str) -> Result<Vec<u8>> {
    brickless_host::smp::parse_hash(text).map_err(to_report)
}

fn hex(b: &[u8]) -> String {
    base16ct::lower::encode_string(b)
}

fn print_images(images: &[ImageState], json: bool) {
    if json {
        println!("{}", serde_json::to_string(images).unwrap_or_default());
        return;
    }
    if images.is_empty() {
        println!("no image in any slot");
    }
    for s in images {
        let mut flags = Vec::new();
        for (on, name) in [
            (s.bootable, "bootable"),
            (s.pending, "pending"),
            (s.confirmed, "confirmed"),
            (s.active, "active"),
            (s.permanent, "permanent"),
        ] {
            if on {
                flags.push(name);
            }
        }
        println!(
            "image {} slot {}: version {}  {}\n    hash {}",
            s.image,
            s.slot,
            s.version,
            flags.join(" "),
            hex(&s.hash)
        );
    }
}

/// Reads an image file, refusing what is not a signed MCUboot image before connecting.
fn read_image(file: &Path) -> Result<(Vec<u8>, brickless_image::inspect::ImageInfo)> {
    brickless_host::image::read_signed(file).map_err(to_report)
}

/// The upload's progress bar (rate and ETA); hidden for --json.
fn upload_bar(json: bool, len: u64) -> ProgressBar {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "uploading [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Uploads with a progress bar (rate and ETA); prints the achieved rate.
fn upload_with_progress(
    c: &mut Client<Box<dyn Transport>>,
    bytes: &[u8],
    json: bool,
) -> Result<UploadReport> {
    let bar = upload_bar(json, bytes.len() as u64);
    let t0 = Instant::now();
    let report = c
        .upload(bytes, |done, _| bar.set_position(u64::from(done)))
        .map_err(device_error);
    bar.finish_and_clear();
    let report = brickless_host::smp::check_upload(report?).map_err(to_report)?;
    let secs = t0.elapsed().as_secs_f64().max(1e-6);
    if !json {
        println!(
            "uploaded {} bytes in {:.1} s ({:.0} B/s, {} requests, {} in flight, {} framing{})",
            report.len,
            secs,
            f64::from(report.len) / secs,
            report.requests,
            report.window,
            if report.raw { "raw" } else { "standard" },
            if report.resumes > 0 {
                format!(", resumed {} times", report.resumes)
            } else {
                String::new()
            }
        );
    }
    Ok(report)
}

/// Runs `brickless smp`.
pub fn run(args: SmpArgs) -> Result<()> {
    let json = args.conn.json;
    let mut c = connect(&args.conn)?;
    match args.command {
        SmpCommand::Echo { text } => {
            let r = c.echo(&text).map_err(device_error)?;
            if json {
                println!("{}", serde_json::json!({ "r": r }));
            } else {
                println!("{r}");
            }
        }
        SmpCommand::Reset => {
            c.reset().map_err(device_error)?;
            if !json {
                println!("reset");
            }
        }
        SmpCommand::Info => {
            let (size, count) = c.params().map_err(device_error)?;
            let name = c.bootloader().unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "buf_size": size, "buf_count": count, "bootloader": name })
                );
            } else {
                println!("buffer: {size} bytes x {count}\nbootloader: {name}");
            }
        }
        SmpCommand::Protect { set } => {
            let p = if set {
                c.protect().map_err(device_error)?
            } else {
                c.protection().map_err(device_error)?
            };
            if json {
                println!("{}", serde_json::json!(p));
            } else {
                let wrp = match p.wrp.as_str() {
                    "full" => "write-protected",
                    "partial" => "partly write-protected",
                    "none" => "not write-protected",
                    other => other,
                };
                println!(
                    "read-out protection: level {}
bootloader sectors: {wrp}",
                    p.rdp
                );
                if p.reset {
                    println!("the device resets to apply the change");
                }
            }
        }
        SmpCommand::Image(cmd) => match cmd {
            ImageCommand::List => print_images(&c.images().map_err(device_error)?, json),
            ImageCommand::Upload { file } => {
                let (bytes, _) = read_image(&file)?;
                upload_with_progress(&mut c, &bytes, json)?;
            }
            ImageCommand::Test { hash } => {
                let h = parse_hash(&hash)?;
                print_images(&c.test(&h).map_err(device_error)?, json);
            }
            ImageCommand::Confirm { hash } => {
                let h = hash.as_deref().map(parse_hash).transpose()?;
                print_images(&c.confirm(h.as_deref()).map_err(device_error)?, json);
            }
            ImageCommand::Erase => {
                c.erase().map_err(device_error)?;
                if !json {
                    println!("erased the staging slot");
                }
            }
        },
    }
    Ok(())
}

/// Runs `brickless upgrade`: upload, mark for test, reset, wait for the new image, confirm;
/// on every device named, at once when there are several.
pub fn upgrade(args: UpgradeArgs) -> Result<()> {
    let json = args.conn.json;
    // Refuse a bad image before any device is touched.
    brickless_host::image::read_signed(&args.file).map_err(to_report)?;
    let targets = targets(&args.conn)?;
    let opts = options(&args.conn);
    let wait = Duration::from_secs_f64(args.wait.max(0.0));
    let confirm = !args.no_confirm;
    if targets.len() > 1 || args.conn.targets.is_some() {
        return crate::commands::gang::run(
            &format!("upgrading to {}", args.file.display()),
            &targets,
            json,
            |target, step, cancel| {
                let mut s = Session::connect(target, &opts)?.with_cancel(cancel);
                s.upgrade(&args.file, confirm, wait, &mut |done, total| {
                    step(brickless_host::gang::Step {
                        phase: "uploading",
                        done,
                        total,
                    })
                })
            },
            describe_upgrade,
        );
    }
    let target = one_target(&args.conn)?;
    let mut s = Session::connect(&target, &opts).map_err(to_report)?;
    let bar = upload_bar(json, 0);
    let t0 = Instant::now();
    let done = s
        .upgrade(&args.file, confirm, wait, &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .map_err(to_report);
    bar.finish_and_clear();
    let u = done?;
    if json {
        println!("{}", serde_json::to_string(&u).unwrap_or_default());
    } else {
        if !u.already_running {
            println!(
                "uploaded {} bytes ({} requests{}) and test-booted {} in {:.1} s",
                u.bytes,
                u.requests,
                if u.resumes > 0 {
                    format!(", resumed {} times", u.resumes)
                } else {
                    String::new()
                },
                u.version,
                t0.elapsed().as_secs_f64()
            );
        }
        println!("{}", describe_upgrade(&u));
    }
    Ok(())
}

fn describe_upgrade(u: &Upgraded) -> String {
    let state = if u.confirmed {
        "runs and is confirmed"
    } else {
        "runs as a trial: it is reverted at the next reset unless confirmed"
    };
    if u.already_running {
        format!("{} already {state}", u.version)
    } else {
        format!("{} {state}", u.version)
    }
}
