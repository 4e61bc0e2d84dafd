//! `brickless demo`: the product end to end with no board. A key and three signed versions
//! of a stand-in application; a virtual STM32 running the real engine, served on a pty with
//! the serial line modelled; our SMP client installs, updates and reverts over that line
//! while power is cut mid-upload and mid-swap. Every outcome is checked, so the demo fails
//! (exit 1) when the product misbehaves: it doubles as a test.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use brickless_boot::{BootEvent, StrategyKind};
use brickless_devices::link::faults::FaultSpec;
use brickless_devices::mcu::serve::{describe_boot, McuOptions, McuService};
use brickless_devices::mcu::{Booted, SelfConfirm, VirtualMcu};
use brickless_devices::rom::usart::LogFn;
use brickless_flash_model::SimFlash;
use brickless_image::keys::{KeyType, SigningKey};
use brickless_image::sign::{sign_image, SignOptions};
use brickless_image::{ImageVersion, PublicKey};
use brickless_smp::client::{Client, ClientError, ImageState, UploadReport};
use brickless_smp::transport::{SerialTransport, Transport, SERIAL_RECV_MAX};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use miette::{miette, Result};

/// What `brickless demo --help` teaches after the options.
const STEPS: &str = "\
What it does, step by step (each outcome is checked; any surprise exits 1):
  1. Makes an ed25519 signing key and signs v1 (24 KiB), v2 (64 KiB) and v3 (24 KiB) of a
     stand-in application as MCUboot images (header 0x400, align 32).
  2. Starts a virtual STM32 in this process: the faithful flash model of the part (its
     erase and program times too), the real update engine at every reset, SMP served on a
     pty whose serial line is modelled at --baud, 8N1. It trusts only the new key. Our SMP
     client opens the pty, as it would a USB-UART.
  3. The device is blank, so its bootloader serves recovery: upload v1, reset: v1 runs.
  4. Uploads v2 and cuts the power halfway. The device restarts from its flash, its upload
     session lost; the client's answers stop, it asks where to carry on and resumes.
  5. Marks v2 for a test boot, arms a power cut in the middle of the swap and resets: the
     boot loses power. The next request powers the device up again: the engine resumes
     the swap and boots v2 as a trial, which confirms itself.
  6. v3 never confirms itself: upload, test, reset: v3 runs as a trial; reset again: the
     engine reverts to v2.
At the end: v2's upload rate as a share of the line rate, and the total time.

Examples:
  brickless demo                 keys and images in a new temporary folder
  brickless demo --dir demo      keep them in ./demo
  brickless demo --fast          no timing model: the same steps in about a second";

/// Arguments of `brickless demo`.
#[derive(Args, Debug)]
#[command(after_long_help = STEPS)]
pub struct DemoArgs {
    /// Folder for the demo's key and images [default: a new temporary folder].
    ///
    /// Created if missing; the demo's own files in it (demo-signing-key.pem,
    /// app-vN.bin, app-vN.signed.bin) are replaced.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Serial line rate modelled on the pty (8N1: 10 bits per byte).
    #[arg(long, value_name = "BAUD", default_value_t = 115_200)]
    pub baud: u32,
    /// Part to emulate (a flash model part name; `brickless sim --help` lists some).
    #[arg(long, value_name = "NAME", default_value = "stm32h753zi")]
    pub part: String,
    /// No timing model: bytes and flash work take no modelled time (about a second in all).
    #[arg(long)]
    pub fast: bool,
}

/// The stand-in application's versions: (major, payload bytes).
const VERSIONS: [(u8, usize); 3] = [(1, 24 * 1024), (2, 64 * 1024), (3, 24 * 1024)];

/// Short, so the demo gets over a lost answer quickly.
const TIMEOUT: Duration = Duration::from_secs(1);

/// The wait for a reset's answer.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a boot may keep the device silent.
const BOOT_WAIT: Duration = Duration::from_secs(30);

/// One signed version.
struct Signed {
    version: String,
    bytes: Vec<u8>,
    hash: [u8; 32],
}

/// Device log lines, printed between the client's steps (the device logs from its own
/// thread; printing there would tear the progress bar).
#[derive(Clone, Default)]
struct DeviceLog(Arc<Mutex<Vec<String>>>);

impl DeviceLog {
    fn log_fn(&self) -> LogFn {
        let lines = self.0.clone();
        Arc::new(move |l: &str| lock(&lines).push(l.to_string()))
    }

    fn pending(&self) -> bool {
        !lock(&self.0).is_empty()
    }

    fn print(&self) {
        let lines = std::mem::take(&mut *lock(&self.0));
        for l in lines {
            println!("  device: {l}");
        }
    }
}

/// Locks, even after a panic elsewhere (the data stays usable for the demo).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The device's flash work so far: (operations, modelled µs).
fn flash_work(device: &Mutex<VirtualMcu>) -> (u64, u64) {
    let d = lock(device);
    (d.flash().op_count(), d.flash().elapsed_us())
}

/// Says what flash work happened since `before`, if any.
fn print_work(device: &Mutex<VirtualMcu>, before: (u64, u64), what: &str) {
    let (ops, us) = flash_work(device);
    let ops = ops.saturating_sub(before.0);
    if ops > 0 {
        println!(
            "  {what}: {} flash operations, {:.1} s of flash work on this part",
            num(ops),
            us.saturating_sub(before.1) as f64 / 1e6
        );
    }
}

/// A failed step: the demo is also a test, so this is a product bug, not a user error.
fn fail(step: &str, what: String) -> miette::Report {
    miette!(
        help = "the demo checks every outcome; this one is not what the update flow allows",
        "step {step}: {what}"
    )
}

fn check(ok: bool, step: &str, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(fail(step, what()))
    }
}

fn heading(text: &str) {
    println!("\n== {text}");
}

/// `n` with thousands separators.
fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn short_hash(h: &[u8]) -> String {
    let hex = base16ct::lower::encode_string(h);
    format!("{}…", &hex[..hex.len().min(12)])
}

/// A pseudo-random payload (an LCG: reproducible, incompressible enough).
/// Signs a stand-in application as version `major.0.0` (header 0x400, padded; align 32, so
/// every STM32 write unit fits).
pub(crate) fn sign_stand_in(
    key: &SigningKey,
    major: u8,
    raw: &[u8],
) -> std::result::Result<Vec<u8>, brickless_image::sign::SignError> {
    let opts = SignOptions {
        version: ImageVersion::new(major, 0, 0, 0),
        header_size: 0x400,
        pad_header: true,
        align: 32,
        ..SignOptions::default()
    };
    sign_image(raw, Some(key), &opts)
}

pub(crate) fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as u8
        })
        .collect()
}

fn demo_dir(arg: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = arg {
        std::fs::create_dir_all(d)
            .map_err(|e| miette!("cannot create the folder {}: {e}", d.display()))?;
        return Ok(d.to_path_buf());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("brickless-demo-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir(&d).map_err(|e| {
        miette!(
            help = "pass --dir DIR",
            "cannot create a temporary folder {}: {e}",
            d.display()
        )
    })?;
    Ok(d)
}

fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    o.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| miette!("cannot write {}: {e}", path.display()))
}

/// Step 1: the key and the three signed versions, written to `dir`.
fn sign_versions(dir: &Path, max_image: u32) -> Result<(PublicKey, Vec<Signed>)> {
    heading("1. Make a signing key and sign three versions of an application");
    let key: SigningKey = brickless_image::keys::generate(KeyType::Ed25519);
    let key_path = dir.join("demo-signing-key.pem");
    write(&key_path, key.to_pem().as_bytes(), true)?;
    println!("ed25519 key: {}", key_path.display());
    let mut out = Vec::new();
    for (major, len) in VERSIONS {
        let raw = payload(len, u64::from(major));
        let bytes = sign_stand_in(&key, major, &raw)
            .map_err(|e| miette!("cannot sign version {major}: {e}"))?;
        let info = brickless_image::inspect::inspect(&bytes, 0xff)
            .map_err(|e| fail("1", format!("the signed v{major} does not parse: {e}")))?;
        check(info.hash_matches, "1", || {
            format!("v{major}'s SHA256 TLV does not match")
        })?;
        let name = format!("app-v{major}.signed.bin");
        write(&dir.join(format!("app-v{major}.bin")), &raw, false)?;
        write(&dir.join(&name), &bytes, false)?;
        let version = format!("{major}.0.0");
        println!(
            "v{version}: {} B of code -> {name}, {} B signed, SHA-256 {}",
            num(len as u64),
            num(bytes.len() as u64),
            short_hash(&info.computed_hash)
        );
        if bytes.len() as u64 > u64::from(max_image) {
            return Err(miette!(
                help = "pick a part with larger slots, e.g. --part stm32h753zi",
                "v{version} ({} B) does not fit this part's slots ({} B)",
                num(bytes.len() as u64),
                num(u64::from(max_image))
            ));
        }
        out.push(Signed {
            version,
            bytes,
            hash: info.computed_hash,
        });
    }
    Ok((key.public_key(), out))
}

fn show_slots(images: &[ImageState]) {
    if images.is_empty() {
        println!("  slots: empty");
    }
    for s in images {
        let flags: Vec<&str> = [
            (s.active, "active"),
            (s.confirmed, "confirmed"),
            (s.pending, "pending"),
            (s.permanent, "permanent"),
            (s.bootable, "bootable"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        println!(
            "  slot {}: {:<6} {:<28} {}",
            s.slot,
            s.version,
            flags.join(" "),
            short_hash(&s.hash)
        );
    }
}

/// The device's slots, waiting while it boots (a swap's flash work can outlast the
/// client's retries on slow parts).
fn images(c: &mut Client<impl Transport>, step: &str) -> Result<Vec<ImageState>> {
    let deadline = Instant::now() + BOOT_WAIT;
    loop {
        match c.images() {
            Ok(images) => return Ok(images),
            Err(ClientError::Timeout { .. }) if Instant::now() < deadline => {}
            Err(e) => return Err(fail(step, format!("image list: {e}"))),
        }
    }
}

/// Lists and prints the device's slots.
fn slots(c: &mut Client<impl Transport>, step: &str) -> Result<Vec<ImageState>> {
    let images = images(c, step)?;
    show_slots(&images);
    Ok(images)
}

fn slot(images: &[ImageState], n: u32) -> Option<&ImageState> {
    images.iter().find(|s| s.image == 0 && s.slot == n)
}

/// Slot `n` holds `version`, with `active` and `confirmed` as given.
fn expect_slot(
    images: &[ImageState],
    n: u32,
    version: &str,
    active: bool,
    confirmed: bool,
    step: &str,
) -> Result<()> {
    let ok = slot(images, n)
        .is_some_and(|s| s.version == version && s.active == active && s.confirmed == confirmed);
    check(ok, step, || {
        format!(
            "slot {n} should hold {version}{}{}, the device reports {:?}",
            if active { ", active" } else { "" },
            if confirmed {
                ", confirmed"
            } else {
                ", unconfirmed"
            },
            slot(images, n)
        )
    })
}

/// What booted: (version text, event, trial, confirmed at boot).
fn booted_app(b: &Booted) -> Option<(String, BootEvent, bool, bool)> {
    match b {
        Booted::App {
            image,
            trial,
            event,
            confirmed_now,
        } => Some((
            brickless_smp::client::version_text(image.version),
            *event,
            *trial,
            *confirmed_now,
        )),
        _ => None,
    }
}

fn expect_boot(
    device: &Mutex<VirtualMcu>,
    step: &str,
    want: impl FnOnce(&(String, BootEvent, bool, bool)) -> bool,
    what: &str,
) -> Result<()> {
    let b = lock(device).booted().clone();
    let ok = booted_app(&b).as_ref().is_some_and(want);
    check(ok, step, || {
        format!("expected {what}; the device {}", describe_boot(&b))
    })
}

/// An upload with a progress bar; `cut_at` (a share of the image) cuts the power once the
/// device has that much. Returns the report and the seconds it took.
fn upload(
    c: &mut Client<impl Transport>,
    img: &Signed,
    device: &Arc<Mutex<VirtualMcu>>,
    log: &DeviceLog,
    cut_at: Option<f64>,
    step: &str,
) -> Result<(UploadReport, f64)> {
    let bar = ProgressBar::new(img.bytes.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "  uploading v{msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(img.version.clone());
    let len = img.bytes.len() as u64;
    let mut cut = false;
    let t0 = Instant::now();
    let report = c
        .upload(&img.bytes, |done, _| {
            bar.set_position(u64::from(done));
            if log.pending() {
                bar.suspend(|| log.print());
            }
            if !cut && cut_at.is_some_and(|f| u64::from(done) as f64 >= len as f64 * f) {
                lock(device).cut_now();
                cut = true;
                bar.suspend(|| {
                    println!(
                        "  POWER CUT with {} of {} B acknowledged: the device loses its RAM, \
                         the upload session with it",
                        num(u64::from(done)),
                        num(len)
                    )
                });
            }
        })
        .map_err(|e| fail(step, format!("upload of v{}: {e}", img.version)))?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64().max(1e-6);
    log.print();
    check(report.matched == Some(true), step, || {
        format!(
            "the device's SHA-256 of v{} does not match ({:?})",
            img.version, report.matched
        )
    })?;
    if cut_at.is_some() {
        check(cut && report.resumes > 0, step, || {
            format!(
                "the upload should have been cut and resumed (cut: {cut}, resumes: {})",
                report.resumes
            )
        })?;
        let from: Vec<String> = report
            .resumed_from
            .iter()
            .map(|o| num(u64::from(*o)))
            .collect();
        println!(
            "  client: answers stopped, so it asked the device where to carry on and resumed \
             {}{}",
            match report.resumes {
                1 => "once".to_string(),
                n => format!("{n} times"),
            },
            if from.is_empty() {
                String::new()
            } else {
                format!(", from byte {}", from.join(", then "))
            }
        );
    }
    println!(
        "  uploaded v{}: {} B in {secs:.1} s ({} B/s, {} requests)",
        img.version,
        num(u64::from(report.len)),
        num((f64::from(report.len) / secs) as u64),
        report.requests,
    );
    Ok((report, secs))
}

/// Resets the device over SMP; the device reboots before its answer leaves.
fn reset(
    c: &mut Client<impl Transport>,
    device: &Mutex<VirtualMcu>,
    log: &DeviceLog,
    step: &str,
) -> Result<()> {
    reset_as(c, device, log, step, "the boot")
}

/// [`reset`], naming the boot's flash work `what`.
fn reset_as(
    c: &mut Client<impl Transport>,
    device: &Mutex<VirtualMcu>,
    log: &DeviceLog,
    step: &str,
    what: &str,
) -> Result<()> {
    println!("  client: reset");
    let before = flash_work(device);
    // A reset sent twice (its answer late) would boot twice: wait longer for this one.
    c.set_timeout(RESET_TIMEOUT);
    let r = c.reset();
    c.set_timeout(TIMEOUT);
    r.map_err(|e| fail(step, format!("reset: {e}")))?;
    log.print();
    print_work(device, before, what);
    Ok(())
}

fn mark_test(c: &mut Client<impl Transport>, img: &Signed, step: &str) -> Result<()> {
    println!(
        "  client: test {} (v{})",
        short_hash(&img.hash),
        img.version
    );
    let images = c
        .test(&img.hash)
        .map_err(|e| fail(step, format!("test v{}: {e}", img.version)))?;
    show_slots(&images);
    check(
        slot(&images, 1).is_some_and(|s| s.pending && s.version == img.version),
        step,
        || format!("v{} is not pending in slot 1", img.version),
    )
}

/// Where the demo cuts the power during the swap.
struct SwapCut {
    /// Flash operations the whole swap makes.
    ops: u64,
    /// How many of them are sector erases.
    erases: usize,
    /// The operation to cut inside, counted from the boot's first (0-based).
    at: u64,
    /// That operation in words.
    what: String,
}

/// Counts the flash operations the next boot makes, on a copy of the device, and picks one
/// in the middle of the swap (an erase when there is one: a partly erased sector is the
/// hardest cut).
fn mid_swap_cut(device: &Mutex<VirtualMcu>, key: &PublicKey) -> SwapCut {
    let (mut flash, layout) = {
        let d = lock(device);
        (d.flash().clone(), *d.layout())
    };
    flash.record_ops(true);
    let mut copy = VirtualMcu::new(flash, layout, vec![*key], SelfConfirm::Never);
    let before = copy.flash().op_count();
    copy.reset();
    let ops: Vec<_> = copy
        .flash()
        .op_log()
        .iter()
        .filter(|o| o.op >= before)
        .copied()
        .collect();
    let erases: Vec<_> = ops.iter().filter(|o| o.erase).collect();
    let chosen = erases
        .get(erases.len() / 2)
        .copied()
        .or_else(|| ops.get(ops.len() / 2));
    let spec = layout.spec();
    let region = |addr: u32| {
        let inside = |r: &brickless_boot::Region| (r.start..r.end()).contains(&addr);
        if inside(&spec.primary) {
            "in the primary slot"
        } else if inside(&spec.secondary) {
            "in the staging slot"
        } else if spec.state.iter().any(inside) {
            "in the engine's state"
        } else {
            ""
        }
    };
    let total = copy.flash().op_count() - before;
    match chosen {
        Some(o) => SwapCut {
            ops: total,
            erases: erases.len(),
            at: o.op - before,
            what: format!(
                "{} {} B at {:#010x} {}",
                if o.erase {
                    "the erase of"
                } else {
                    "a write of"
                },
                num(u64::from(o.len)),
                o.addr,
                region(o.addr)
            )
            .trim_end()
            .to_string(),
        },
        None => SwapCut {
            ops: total,
            erases: 0,
            at: total / 2,
            what: "an operation".into(),
        },
    }
}

/// Runs `brickless demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let part = brickless_flash::part(&args.part).ok_or_else(|| {
        let names: Vec<&str> = brickless_flash::PARTS.iter().map(|p| p.name).collect();
        miette!(
            help = format!("known parts: {}", names.join(", ")),
            "unknown part `{}`",
            args.part
        )
    })?;
    let layout = brickless_boot::default_layout(&part.geometry, StrategyKind::Swap)
        .map_err(|e| miette!("no default layout for {}: {e}", part.name))?;
    let dir = demo_dir(args.dir.as_deref())?;
    let baud = (!args.fast).then_some(args.baud.max(1));
    println!(
        "brickless demo: updates that survive power cuts, on a virtual {} (no board needed)",
        part.name.to_uppercase()
    );
    println!("files: {}", dir.display());

    let (key, signed) = sign_versions(&dir, layout.max_image_size())?;
    let [v1, v2, v3] = &signed[..] else {
        return Err(miette!("three versions were signed"));
    };

    heading(&format!(
        "2. Start a virtual {} running brickless",
        part.name.to_uppercase()
    ));
    let spec = layout.spec();
    println!(
        "flash: {} KiB; bootloader {} KiB, two slots of {} KiB swapped in units of {} KiB",
        part.geometry.span() / 1024,
        spec.bootloader.size / 1024,
        spec.primary.size / 1024,
        layout.unit() / 1024
    );
    let log = DeviceLog::default();
    let mcu = VirtualMcu::new(SimFlash::new(part), layout, vec![key], SelfConfirm::Always);
    let service = McuService::start(
        mcu,
        None,
        &McuOptions {
            udp: None,
            pty: true,
            link: None,
            baud,
            turnaround: Duration::from_millis(2),
            // The part's erase and program times, as the line: what a real board would show.
            flash_time: !args.fast,
            faults: FaultSpec::default(),
            log: log.log_fn(),
        },
    )
    .map_err(|e| miette!("cannot start the virtual device: {e}"))?;
    let device = service.device();
    let pty = service
        .pty_path()
        .ok_or_else(|| miette!("the virtual device serves no pty"))?
        .display()
        .to_string();
    match baud {
        Some(b) => println!(
            "serial line: {pty}, modelled at {b} baud 8N1 ({} B/s each way)",
            num(u64::from(b / 10))
        ),
        None => println!("serial line: {pty}, not modelled (--fast)"),
    }
    println!("the device trusts one key: the public half of the new one");
    log.print();
    let link = SerialTransport::open(&pty, args.baud)
        .map_err(|e| miette!("cannot open the device's pty {pty}: {e}"))?
        .with_mtu(SERIAL_RECV_MAX);
    let mut c = Client::new(link);
    c.set_timeout(TIMEOUT);
    check(*lock(&device).booted() == Booted::Recovery, "2", || {
        "a blank device should serve recovery".into()
    })?;

    heading("3. The device is blank: install v1 through the bootloader's recovery");
    upload(&mut c, v1, &device, &log, None, "3")?;
    reset(&mut c, &device, &log, "3")?;
    expect_boot(
        &device,
        "3",
        |(v, e, trial, _)| v == "1.0.0" && *e == BootEvent::Installed && !trial,
        "v1 installed",
    )?;
    let s = slots(&mut c, "3")?;
    expect_slot(&s, 0, "1.0.0", true, true, "3")?;
    println!("ok: v1 runs, installed for good");

    heading("4. Upload v2 while v1 runs, and cut the power halfway");
    let (r2, secs2) = upload(&mut c, v2, &device, &log, Some(0.5), "4")?;
    let staging = layout.staging().start;
    let sector = part
        .geometry
        .sectors()
        .find(|s| s.addr <= staging && staging < s.end())
        .map_or(0, |s| s.size);
    if r2.resumed_from.iter().all(|o| *o == 0) && u64::from(sector) >= u64::from(r2.len) / 2 {
        // Why nothing was kept: worth saying, or the resume looks like a restart.
        println!(
            "  (a resume keeps whole sectors only: the one being written may hold a torn \
             unit; this part's {} KiB sector held all that was sent, so it started over)",
            sector / 1024
        );
    }
    let s = slots(&mut c, "4")?;
    expect_slot(&s, 0, "1.0.0", true, true, "4")?;
    check(
        slot(&s, 1).is_some_and(|x| x.version == "2.0.0" && x.hash == v2.hash),
        "4",
        || "v2 is not in slot 1".into(),
    )?;
    println!("ok: v2 is in slot 1, intact (the device's SHA-256 matches); v1 still runs");

    heading("5. Test-boot v2, with a power cut in the middle of the swap");
    mark_test(&mut c, v2, "5")?;
    let cut = mid_swap_cut(&device, &key);
    check(cut.ops > 2 && cut.at < cut.ops, "5", || {
        format!("the swap should take flash operations, counted {}", cut.ops)
    })?;
    println!(
        "  the swap takes {} flash operations ({} sector erases); power will fail inside \
         operation {}: {}",
        num(cut.ops),
        cut.erases,
        num(cut.at + 1),
        cut.what
    );
    lock(&device).cut_after_ops(cut.at);
    reset_as(&mut c, &device, &log, "5", "the boot, until power failed")?;
    let b = lock(&device).booted().clone();
    check(b == Booted::PowerLost, "5", || {
        format!(
            "the boot should have lost power; the device {}",
            describe_boot(&b)
        )
    })?;
    println!("  the device is dead, mid-swap; the client asks for the slots");
    let t_lost = Instant::now();
    let before = flash_work(&device);
    let s = images(&mut c, "5")?;
    log.print();
    print_work(&device, before, "the boot that finished the swap");
    println!(
        "  client: its first request powered the device up but got no answer; it asked \
         again every {} s until the device, booted, answered ({:.1} s)",
        TIMEOUT.as_secs_f64(),
        t_lost.elapsed().as_secs_f64()
    );
    show_slots(&s);
    expect_boot(
        &device,
        "5",
        |(v, _, trial, confirmed_now)| v == "2.0.0" && *confirmed_now && !trial,
        "v2 booted as a trial that confirmed itself",
    )?;
    expect_slot(&s, 0, "2.0.0", true, true, "5")?;
    println!("ok: the engine finished the swap after the cut; v2 runs and confirmed itself");

    heading("6. v3 never confirms itself: the next reset reverts it");
    lock(&device).set_self_confirm(SelfConfirm::Never);
    println!(
        "  (from now on the application never confirms itself: a v3 that fails its self-test)"
    );
    let (r3, secs3) = upload(&mut c, v3, &device, &log, None, "6")?;
    mark_test(&mut c, v3, "6")?;
    reset(&mut c, &device, &log, "6")?;
    expect_boot(
        &device,
        "6",
        |(v, e, trial, _)| v == "3.0.0" && *e == BootEvent::TrialStarted && *trial,
        "v3 booted as an unconfirmed trial",
    )?;
    let s = slots(&mut c, "6")?;
    expect_slot(&s, 0, "3.0.0", true, false, "6")?;
    expect_slot(&s, 1, "2.0.0", false, true, "6")?;
    println!("  v3 runs as a trial and does not confirm; reset again:");
    reset(&mut c, &device, &log, "6")?;
    expect_boot(
        &device,
        "6",
        |(v, e, _, _)| v == "2.0.0" && *e == BootEvent::Reverted,
        "v2 back after the revert",
    )?;
    let s = slots(&mut c, "6")?;
    expect_slot(&s, 0, "2.0.0", true, true, "6")?;
    println!("ok: the unconfirmed v3 was reverted; v2 runs, confirmed");

    heading("Done: every step passed");
    let rate = f64::from(r2.len) / secs2;
    match baud {
        Some(b) => {
            let line = f64::from(b) / 10.0;
            println!(
                "v2 upload: {} B in {secs2:.1} s = {} B/s, {:.0}% of the line's {} B/s \
                 (8N1 at {b} baud), power cut and resume included",
                num(u64::from(r2.len)),
                num(rate as u64),
                100.0 * rate / line,
                num(line as u64)
            );
            let rate3 = f64::from(r3.len) / secs3;
            println!(
                "v3 upload, uninterrupted: {} B/s, {:.0}% of the line",
                num(rate3 as u64),
                100.0 * rate3 / line
            );
        }
        None => println!(
            "v2 upload: {} B in {secs2:.1} s = {} B/s (no line model)",
            num(u64::from(r2.len)),
            num(rate as u64)
        ),
    }
    println!("total: {:.1} s", t0.elapsed().as_secs_f64());
    println!(
        "the key and images are in {}; try `brickless image inspect {}`",
        dir.display(),
        dir.join("app-v2.signed.bin").display()
    );
    Ok(())
}
