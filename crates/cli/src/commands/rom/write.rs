//! `brickless rom write` and `verify`: load the file, run the library's programming loop,
//! print what happened.
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use brickless_rom::device::RomDevice;
use brickless_rom::dfu_file::DfuFile;
use brickless_rom::program::{self, Phase, ProgramError};
use brickless_rom::RomTarget;

use super::ops::{connect, device_of, dfu_vid_pid, finish, Progress};
use super::*;
use crate::firmware_file::Segment;

/// Reads and parses a `.dfu` file, then calls `f` with it.
fn with_dfu<R>(
    file: &Path,
    f: impl FnOnce(&DfuFile<'_>) -> Result<R, RomError>,
) -> Result<R, RomError> {
    let bytes = std::fs::read(file).map_err(|source| RomError::Open {
        what: file.display().to_string(),
        source,
    })?;
    let dfu = DfuFile::parse(&bytes).map_err(|e| RomError::BadDfu {
        path: file.into(),
        reason: e.to_string(),
    })?;
    f(&dfu)
}

/// A `.dfu` file's suffix must name the device it goes to (or "any").
fn check_dfu_suffix(t: &Transport, file: &Path) -> Result<(), RomError> {
    let Some(arg) = &t.dfu else { return Ok(()) };
    if !is_dfu_file(file) {
        return Ok(());
    }
    let (vid, pid) = dfu_vid_pid(arg)?;
    with_dfu(file, |dfu| {
        if dfu.suffix.matches_device(vid, pid) {
            return Ok(());
        }
        Err(RomError::DfuFileForOtherDevice {
            path: file.into(),
            file_vid: dfu.suffix.vendor_id,
            file_pid: dfu.suffix.product_id,
            vid,
            pid,
        })
    })
}

/// The file's segments, joined across small gaps (the erased value fills them) so no flash
/// write unit is programmed twice. A file without data is refused.
fn load_image(
    file: &Path,
    address: Option<u32>,
    d: Option<&RomDevice>,
) -> Result<Vec<Segment>, RomError> {
    let base = d.map_or(0x0800_0000, |d| d.flash().start);
    let erased = d.map_or(0xFF, |d| d.geometry.erased);
    Ok(brickless_host::rom::load_segments(
        file, address, base, erased,
    )?)
}

/// A `.dfu` file over DFU, the way DfuSe tools do it: every element of alt setting 0 is
/// checked against the device's own memory layout, then erased, written and read back (no
/// device-table entry needed).
fn write_dfu_file(a: &WriteArgs, vid: u16, pid: u16) -> Result<(), RomError> {
    let bytes = std::fs::read(&a.file).map_err(|source| RomError::Open {
        what: a.file.display().to_string(),
        source,
    })?;
    let file = DfuFile::parse(&bytes).map_err(|e| RomError::BadDfu {
        path: a.file.clone(),
        reason: e.to_string(),
    })?;
    // Alt setting 0 (the internal flash) is what gets programmed: refuse before any USB work.
    if let Some(reason) = file.no_data(Some(0)) {
        return Err(RomError::BadDfu {
            path: a.file.clone(),
            reason,
        });
    }
    let mut target = brickless_rom::open::open_dfu(vid, pid)?;
    let start = target.layout().start();
    let raw_address = a.address.or(start);
    let mut p = Progress::new();
    let t0 = Instant::now();
    let written = target.program_dfu_file(&file, 0, raw_address, &mut |ph, done, total| {
        p.update(ph, done, total)
    })?;
    p.done();
    println!(
        "wrote {} bytes{} and verified {} element(s) of {} in {:.1} s",
        written.bytes,
        skipped_note(written.skipped),
        written.elements,
        a.file.display(),
        t0.elapsed().as_secs_f64()
    );
    if a.go {
        let at = a.address.or(start).ok_or_else(|| {
            RomError::Usage("the device's layout has no start address: give --address".into())
        })?;
        target.go(at)?;
        println!("started the firmware at {at:#010x}");
    }
    Ok(())
}

/// " (N bytes of erased value skipped)" when some were, for the final line of a write.
fn skipped_note(skipped: u64) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} bytes of erased value skipped)")
    }
}

fn is_dfu_file(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dfu"))
}

/// Several boards (repeated --port/--tcp, --targets) or --json: the same write on each at
/// once, through the library's job.
fn is_gang(a: &WriteArgs) -> bool {
    a.transport.port.len() + a.transport.tcp.len() > 1 || a.transport.targets.is_some() || a.json
}

fn gang_write(a: WriteArgs) -> miette::Result<()> {
    use brickless_host::target::Target;
    let t = &a.transport;
    if t.i2c.is_some() || t.dfu.is_some() {
        return Err(miette::miette!(
            "several boards are programmed over --port or --tcp; I2C and DFU take one at a time"
        ));
    }
    if t.entry.is_some() || t.exit.is_some() || a.erase != EraseMode::Auto {
        return Err(miette::miette!(
            help = "program several boards with the default erase, and put them in their bootloader beforehand",
            "--entry, --exit and --erase take one board at a time"
        ));
    }
    let flags = t
        .port
        .iter()
        .map(|p| Target::Serial {
            path: p.display().to_string(),
            baud: t.baud,
        })
        .chain(t.tcp.iter().map(|a| Target::Tcp(a.clone())));
    let targets = super::super::gang::collect(flags, t.targets.as_ref(), t.baud)?;
    if let Some(udp) = targets.iter().find(|t| matches!(t, Target::Udp(_))) {
        return Err(miette::miette!(
            "{udp}: ROM bootloaders are reached over serial:PATH or tcp:HOST:PORT"
        ));
    }
    // Refuse a bad file before any board is touched.
    brickless_host::rom::load_segments(&a.file, a.address, 0x0800_0000, 0xff)
        .map_err(super::super::gang::to_report)?;
    let opts = brickless_host::rom::RomOptions {
        baud: t.baud,
        parity_even: t.parity == Parity::Even,
        timeout_ms: t.timeout_ms,
        retries: t.retries,
        verify: !a.no_verify,
        address: a.address,
        go: a.go,
    };
    super::super::gang::run(
        &format!("writing {}", a.file.display()),
        &targets,
        a.json,
        |target, step, cancel| {
            brickless_host::rom::write_file(
                target,
                &a.file,
                &opts,
                &mut |ph, done, total| {
                    step(brickless_host::gang::Step {
                        phase: match ph {
                            Phase::Erase => "erasing",
                            Phase::Write => "writing",
                            Phase::Verify => "verifying",
                        },
                        done: u64::from(done),
                        total: u64::from(total),
                    })
                },
                cancel,
            )
        },
        |w| {
            format!(
                "{}: {} bytes{}{}",
                w.device,
                w.bytes,
                if w.verified { ", verified" } else { "" },
                skipped_note(w.skipped)
            )
        },
    )
}

/// `brickless rom write`.
pub(super) fn write_command(a: WriteArgs) -> miette::Result<()> {
    if is_gang(&a) {
        gang_write(a)
    } else {
        Ok(write(a)?)
    }
}

pub(super) fn write(a: WriteArgs) -> Result<(), RomError> {
    check_dfu_suffix(&a.transport, &a.file)?;
    if let Some(arg) = &a.transport.dfu {
        if is_dfu_file(&a.file) && a.erase == EraseMode::Auto && !a.no_verify {
            let (vid, pid) = dfu_vid_pid(arg)?;
            return write_dfu_file(&a, vid, pid);
        }
    }
    let mut t = connect(&a.transport)?;
    let d = device_of(&t)?;
    let segments = load_image(&a.file, a.address, Some(d))?;
    let total: usize = segments.iter().map(|s| s.data.len()).sum();
    let t0 = Instant::now();
    let mut p = Progress::new();
    let options = program::Options {
        erase: match a.erase {
            EraseMode::Auto => program::EraseMode::Touched,
            EraseMode::Mass => program::EraseMode::Mass,
            EraseMode::None => program::EraseMode::None,
        },
        verify: !a.no_verify,
        // RAM segments are written in full, without erasing.
        outside_flash: true,
    };
    let mut buf = vec![0u8; t.max_transfer().clamp(program::BLOCK, 4096)];
    let done = program::program_segments(
        &mut *t,
        d,
        || segments.iter().map(|s| (s.address, &s.data[..])),
        options,
        &mut buf,
        &mut |ph, done, tot| p.update(ph, done, tot),
    )
    .map_err(|e| match e {
        ProgramError::OutsideFlash { addr, len } => RomError::OutsideFlash {
            addr,
            len,
            device: d.name.into(),
        },
        e => e.into(),
    })?;
    let skipped = done.skipped;
    p.done();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "wrote {total} bytes{} in {} segment(s) to {} {}in {secs:.1} s ({:.1} KiB/s)",
        skipped_note(skipped),
        segments.len(),
        d.name,
        if a.no_verify { "" } else { "and verified " },
        total as f64 / 1024.0 / secs.max(1e-9)
    );
    if a.go {
        let start = segments.first().map_or(d.flash().start, |s| s.address);
        t.go(start)?;
        println!("started the firmware at {start:#010x}");
    }
    let _ = std::io::stdout().flush();
    finish(&a.transport, t)
}

pub(super) fn verify(a: VerifyArgs) -> Result<(), RomError> {
    check_dfu_suffix(&a.transport, &a.file)?;
    let mut t = connect(&a.transport)?;
    let d = device_of(&t).ok();
    let segments = load_image(&a.file, a.address, d)?;
    let mut p = Progress::new();
    for s in &segments {
        program::verify(&mut *t, s.address, &s.data, &mut |ph, done, tot| {
            p.update(ph, done, tot)
        })?;
    }
    p.done();
    let total: usize = segments.iter().map(|s| s.data.len()).sum();
    println!(
        "verified {total} bytes: the device matches {}",
        a.file.display()
    );
    finish(&a.transport, t)
}
