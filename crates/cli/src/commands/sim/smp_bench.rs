//! `brickless sim smp-bench`: upload rates over SMP against one virtual STM32 on a modelled
//! serial line, for our client's fast path, our client as a stock mcumgr client, and smpmgr;
//! and the end-to-end time of an upgrade against what the line and the flash allow.
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brickless_boot::{default_layout, StrategyKind};
use brickless_devices::mcu::serve::{McuOptions, McuService};
use brickless_devices::mcu::{SelfConfirm, VirtualMcu};
use brickless_flash_model::SimFlash;
use brickless_smp::client::Client;
use brickless_smp::transport::{SerialTransport, Transport, SERIAL_RECV_MAX};
use clap::Args;
use miette::{miette, IntoDiagnostic, Result};

/// Arguments of `brickless sim smp-bench`.
#[derive(Args, Debug)]
pub struct SmpBenchArgs {
    /// Part to model.
    #[arg(long, default_value = "stm32h753zi")]
    pub part: String,
    /// Image size in bytes (default: the largest the part's default layout stages).
    #[arg(long, value_name = "BYTES")]
    pub size: Option<u32>,
    /// Baud rates to model (8N1), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "115200,921600")]
    pub baud: Vec<u32>,
    /// Device turnaround per answer, ms.
    #[arg(long, default_value_t = 2)]
    pub turnaround_ms: u64,
    /// Skip smpmgr (it is the slowest run).
    #[arg(long)]
    pub no_smpmgr: bool,
}

/// A signed stand-in image of about `size` bytes; distinct seeds give distinct images (and
/// so distinct uploads).
fn sign(
    key: &brickless_image::keys::LoadedKey,
    major: u8,
    size: u32,
    seed: u64,
) -> Result<Vec<u8>> {
    let key = key
        .signing_key()
        .ok_or_else(|| miette!("the development key has no private half"))?;
    let raw = crate::commands::demo::payload(size.saturating_sub(0x400 + 512) as usize, seed);
    crate::commands::demo::sign_stand_in(key, major, &raw).map_err(|e| miette!("signing: {e}"))
}

fn client(svc: &McuService, baud: u32) -> Result<Client<Box<dyn Transport>>> {
    let path = pty_path(svc)?;
    let t = SerialTransport::open(&path, baud)
        .into_diagnostic()?
        .with_mtu(SERIAL_RECV_MAX);
    let mut c = Client::new(Box::new(t) as Box<dyn Transport>);
    c.set_timeout(Duration::from_secs(30));
    Ok(c)
}

/// Runs `brickless sim smp-bench`.
pub fn run(args: SmpBenchArgs) -> Result<()> {
    let part =
        brickless_flash::part(&args.part).ok_or_else(|| miette!("unknown part `{}`", args.part))?;
    let layout = default_layout(&part.geometry, StrategyKind::Swap).map_err(|e| miette!("{e}"))?;
    let room = layout.staging().size.min(layout.max_image_size());
    let size = args.size.unwrap_or(room - 4096).min(room);
    let key =
        brickless_image::keys::load_pem(super::device::DEV_KEY_PEM).map_err(|e| miette!("{e}"))?;
    let dir = tempfile::tempdir().into_diagnostic()?;
    println!(
        "SMP upload of a {size}-byte image to a virtual {} over a modelled serial line (8N1, {} ms turnaround, flash time modelled)",
        part.name, args.turnaround_ms
    );
    println!(
        "{:>8}  {:<34} {:>10} {:>9} {:>12}",
        "baud", "client", "B/s", "of line", "vs smpmgr"
    );
    let mut seed = 1u64;
    for &baud in &args.baud {
        let line = f64::from(baud) / 10.0;
        let mcu = VirtualMcu::new(
            SimFlash::new(part),
            layout,
            vec![key.public_key()],
            SelfConfirm::Always,
        );
        let opts = McuOptions {
            udp: None,
            pty: true,
            link: None,
            baud: Some(baud),
            turnaround: Duration::from_millis(args.turnaround_ms),
            flash_time: true,
            faults: Default::default(),
            log: Arc::new(|l: &str| {
                if std::env::var_os("BRICKLESS_BENCH_LOG").is_some() {
                    eprintln!("[device] {l}")
                }
            }),
        };
        let svc = McuService::start(mcu, None, &opts).into_diagnostic()?;
        let mut c = client(&svc, baud)?;
        // A first image through recovery, so the uploads below go to the staging slot.
        let v1 = sign(&key, 1, 16 * 1024, 99)?;
        c.upload(&v1, |_, _| {}).map_err(|e| miette!("{e}"))?;
        c.reset().map_err(|e| miette!("{e}"))?;
        let mut rows: Vec<(&str, f64)> = Vec::new();
        for (name, fast) in [
            ("brickless (fast path)", true),
            ("brickless --standard", false),
        ] {
            seed += 1;
            let img = sign(&key, 2, size, seed)?;
            c.set_fast(fast);
            // Timed from an idle device: the reset's flash work and the last upload's are done.
            c.params().map_err(|e| miette!("{e}"))?;
            let t0 = Instant::now();
            let r = c.upload(&img, |_, _| {}).map_err(|e| miette!("{e}"))?;
            let rate = f64::from(r.len) / t0.elapsed().as_secs_f64();
            rows.push((name, rate));
        }
        if !args.no_smpmgr {
            seed += 1;
            let img = sign(&key, 2, size, seed)?;
            let file = dir.path().join(format!("smpmgr-{baud}.bin"));
            std::fs::write(&file, &img).into_diagnostic()?;
            let path = pty_path(&svc)?;
            c.params().map_err(|e| miette!("{e}"))?;
            let t0 = Instant::now();
            let ok = smpmgr_upload(&path, baud, &file);
            let secs = t0.elapsed().as_secs_f64();
            if ok {
                rows.push((
                    "smpmgr (includes its ~1 s start-up)",
                    img.len() as f64 / secs,
                ));
            } else {
                println!("{baud:>8}  smpmgr did not run (install it: pip install smpmgr)");
            }
        }
        let smpmgr = rows.iter().find(|r| r.0.starts_with("smpmgr")).map(|r| r.1);
        for (name, rate) in &rows {
            let vs = smpmgr.map_or("-".to_string(), |s| format!("{:.2}x", rate / s));
            println!(
                "{baud:>8}  {name:<34} {rate:>10.0} {:>8.1}% {vs:>12}",
                100.0 * rate / line
            );
        }
        // End to end: upload (fast path), mark for test, reset (the swap), back up, confirm.
        seed += 1;
        let img = sign(&key, 3, size, seed)?;
        let hash = brickless_image::inspect::inspect(&img, 0xff)
            .map_err(|e| miette!("{e}"))?
            .computed_hash;
        c.set_fast(true);
        c.params().map_err(|e| miette!("{e}"))?;
        let busy0 = svc.device().lock().map(|d| d.flash_busy_us()).unwrap_or(0);
        let t0 = Instant::now();
        c.upload(&img, |_, _| {}).map_err(|e| miette!("{e}"))?;
        c.test(&hash).map_err(|e| miette!("{e}"))?;
        c.reset().map_err(|e| miette!("{e}"))?;
        c.confirm(None).map_err(|e| miette!("{e}"))?;
        let total = t0.elapsed().as_secs_f64();
        let busy = svc.device().lock().map(|d| d.flash_busy_us()).unwrap_or(0) - busy0;
        let transfer = img.len() as f64 / line;
        let flash = busy as f64 / 1e6;
        let bound = transfer.max(flash);
        println!(
            "{baud:>8}  upgrade end to end: {total:.1} s; transfer {transfer:.1} s, erase+program {flash:.1} s: {:.2}x max(transfer, flash) (goal <= 1.10x)",
            total / bound
        );
    }
    Ok(())
}

fn pty_path(svc: &McuService) -> Result<String> {
    svc.pty_path()
        .map(|p| p.display().to_string())
        .ok_or_else(|| miette!("the device has no pty"))
}

fn smpmgr_upload(port: &str, baud: u32, file: &Path) -> bool {
    Command::new("smpmgr")
        .args([
            "--port",
            port,
            "--baudrate",
            &baud.to_string(),
            "--timeout",
            "30",
            "image",
            "upload",
        ])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
