//! `brickless rom` commands other than write/verify: connect, print, erase, protect.
use std::time::Instant;

use brickless_rom::an3155::Config;
use brickless_rom::device::RomDevice;
use brickless_rom::dfuse;
use brickless_rom::open::{self, AnyTarget, Link};
use brickless_rom::program::{self, Phase};
use brickless_rom::target::{Erase, ReadProtection};
use indicatif::{ProgressBar, ProgressStyle};

use super::*;
use crate::firmware_file::{self, FirmwareImage};

/// The library's transport description for the arguments.
pub(super) fn transport(t: &Transport) -> Result<open::Transport, RomError> {
    let named = t.port.len()
        + t.tcp.len()
        + usize::from(t.i2c.is_some())
        + usize::from(t.dfu.is_some())
        + usize::from(t.targets.is_some());
    if named > 1 {
        return Err(RomError::Usage(
            "name one bootloader (--port, --tcp, --i2c or --dfu); only `rom write` programs several at once".into(),
        ));
    }
    if t.targets.is_some() {
        return Err(RomError::Usage(
            "--targets names boards for `rom write`; other commands take one --port or --tcp"
                .into(),
        ));
    }
    if t.addr.is_some() && t.i2c.is_none() {
        return Err(RomError::Usage(
            "--addr is the I2C address: use it with --i2c".into(),
        ));
    }
    let link = if let Some(path) = &t.i2c {
        Link::I2c {
            path: path.display().to_string(),
            address: t.addr,
        }
    } else if let Some(arg) = &t.dfu {
        let (vid, pid) = dfu_vid_pid(arg)?;
        Link::Dfu { vid, pid }
    } else if let Some(addr) = t.tcp.first() {
        Link::Tcp(addr.clone())
    } else if let Some(path) = t.port.first() {
        Link::Serial {
            path: path.display().to_string(),
            parity_even: t.parity == Parity::Even,
        }
    } else {
        return Err(RomError::Usage(
            "give one of --port PATH, --tcp HOST:PORT, --i2c /dev/i2c-N, --dfu [VID:PID]".into(),
        ));
    };
    let serial = matches!(link, Link::Serial { .. });
    let lines = |seq: &Option<String>| -> Result<_, RomError> {
        match seq {
            Some(s) if serial => Ok(Some(s.parse::<open::LineSequence>()?)),
            _ => Ok(None),
        }
    };
    Ok(open::Transport {
        usart: Config {
            baud: t.baud,
            bits_per_byte: if t.parity == Parity::Even { 11 } else { 10 },
            ack_timeout_ms: t.timeout_ms,
            retries: t.retries,
            pipeline: t.pipeline,
            no_sync: t.no_sync,
        },
        entry: lines(&t.entry)?,
        exit: lines(&t.exit)?,
        link,
    })
}

/// Connects over the chosen transport.
pub fn connect(t: &Transport) -> Result<AnyTarget, RomError> {
    Ok(open::open(&transport(t)?)?)
}

/// Runs the exit line sequence, if any.
pub(super) fn finish(t: &Transport, target: AnyTarget) -> Result<(), RomError> {
    Ok(open::close(&transport(t)?, target)?)
}

pub(super) fn dfu_vid_pid(arg: &str) -> Result<(u16, u16), RomError> {
    dfuse::parse_vid_pid(Some(arg)).ok_or_else(|| RomError::BadVidPid(arg.into()))
}

pub(super) fn device_of(target: &AnyTarget) -> Result<&'static RomDevice, RomError> {
    let info = target.info();
    info.device.ok_or(RomError::UnknownDevice(info.pid))
}

/// A progress bar that follows the erase/write/verify phases.
pub(super) struct Progress {
    bar: ProgressBar,
    phase: Option<Phase>,
}

impl Progress {
    pub(super) fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress { bar, phase: None }
    }

    pub(super) fn update(&mut self, phase: Phase, done: u32, total: u32) {
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.bar.reset();
            self.bar.set_message(match phase {
                Phase::Erase => "erasing",
                Phase::Write => "writing",
                Phase::Verify => "verifying",
            });
            // Erase progress is counted in pages.
            self.bar.set_length(u64::from(total));
        }
        self.bar.set_position(u64::from(done));
    }

    pub(super) fn done(self) {
        self.bar.finish_and_clear();
    }
}

pub(super) fn go(a: GoArgs) -> Result<(), RomError> {
    let mut t = connect(&a.transport)?;
    let addr = match a.address {
        Some(a) => a,
        None => device_of(&t)?.flash().start,
    };
    t.go(addr)?;
    println!("started code at {addr:#010x}");
    finish(&a.transport, t)
}

pub(super) fn protect(a: ProtectArgs) -> Result<(), RomError> {
    let mut t = connect(&a.transport)?;
    match a.kind {
        Protection::Write => {
            let list = a
                .sectors
                .as_deref()
                .ok_or_else(|| RomError::Usage("give --sectors, e.g. --sectors 0-1".into()))?;
            t.write_protect(&parse_list(list)?)?;
            println!("write protection on for sectors {list}");
        }
        Protection::Readout => {
            t.readout_protect()?;
            println!("read-out protection on");
        }
    }
    finish(&a.transport, t)
}

pub(super) fn unprotect(a: UnprotectArgs) -> Result<(), RomError> {
    let mut t = connect(&a.transport)?;
    match a.kind {
        Protection::Write => {
            t.write_unprotect()?;
            println!("write protection removed");
        }
        Protection::Readout => {
            t.readout_unprotect()?;
            println!("read-out protection removed; the flash was mass-erased");
        }
    }
    finish(&a.transport, t)
}

pub(super) fn devices(json: bool) {
    let list: Vec<serde_json::Value> = brickless_rom::DEVICES
        .iter()
        .map(|d| {
            serde_json::json!({
                "pid": format!("{:#05x}", d.pid),
                "name": d.name,
                "flash_start": format!("{:#010x}", d.flash().start),
                "flash_max_bytes": d.geometry.total_size(),
                "pages": d.page_count(),
                "write_unit": d.write_unit(),
                "ram": format!("{:#010x}..{:#010x}", d.ram.start, d.ram.end),
                "i2c_address": d.i2c_address.map(|a| format!("{a:#04x}")),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    println!(
        "{:<6} {:<22} {:>9} {:>6} {:>5} {:>5}",
        "PID", "name", "flash", "pages", "unit", "i2c"
    );
    for d in brickless_rom::DEVICES {
        println!(
            "{:#05x}  {:<22} {:>7}Ki {:>6} {:>5} {:>5}",
            d.pid,
            d.name,
            d.geometry.total_size() / 1024,
            d.page_count(),
            d.write_unit(),
            d.i2c_address
                .map_or("-".to_string(), |a| format!("{a:#04x}"))
        );
    }
}

fn read_flash_size(t: &mut AnyTarget, d: &RomDevice) -> Option<u32> {
    let mut b = [0u8; 2];
    t.read_memory(d.flash_size_addr, &mut b).ok()?;
    let kib = u16::from_le_bytes(b);
    (kib != 0 && kib != 0xFFFF).then_some(u32::from(kib) * 1024)
}

pub(super) fn info(a: InfoArgs) -> Result<(), RomError> {
    let mut t = connect(&a.transport)?;
    let i = t.info();
    let (flash_size, uid) = match i.device {
        Some(d) => {
            let size = read_flash_size(&mut t, d);
            let mut uid = [0u8; 12];
            let uid = t.read_memory(d.uid_addr, &mut uid).ok().map(|_| uid);
            (size, uid)
        }
        None => (None, None),
    };
    let uid_hex = uid.map(|u| base16ct::lower::encode_string(&u));
    let rdp = match i.read_protection {
        ReadProtection::Active => "active",
        ReadProtection::Inactive => "inactive",
        ReadProtection::Unknown if flash_size.is_some() => "inactive",
        ReadProtection::Unknown => "unknown",
    };
    if a.json {
        let v = serde_json::json!({
            "pid": format!("{:#05x}", i.pid),
            "device": i.device.map(|d| d.name),
            "bootloader_version": format!("{}.{}", i.protocol_version >> 4, i.protocol_version & 0xF),
            "flash_size": flash_size,
            "unique_id": uid_hex,
            "read_protection": rdp,
        });
        println!("{v}");
    } else {
        println!(
            "product ID   {:#05x} ({})",
            i.pid,
            i.device.map_or("unknown part", |d| d.name)
        );
        println!(
            "bootloader   V{}.{}",
            i.protocol_version >> 4,
            i.protocol_version & 0xF
        );
        if let Some(s) = flash_size {
            println!("flash        {} KiB", s / 1024);
        }
        if let Some(u) = &uid_hex {
            println!("unique ID    {u}");
        }
        println!("read-out protection {rdp}");
    }
    finish(&a.transport, t)
}

pub(super) fn read(a: ReadArgs) -> Result<(), RomError> {
    if a.length == Some(0) {
        return Err(RomError::Usage(
            "--length 0 reads nothing: give at least 1".into(),
        ));
    }
    let mut t = connect(&a.transport)?;
    let d = device_of(&t).ok();
    let start = match (a.address, d) {
        (Some(x), _) => x,
        (None, Some(d)) => d.flash().start,
        (None, None) => return Err(RomError::Usage("unknown part: give --address".into())),
    };
    let len = match (a.length, d) {
        (Some(l), _) => l,
        (None, Some(d)) => read_flash_size(&mut t, d).unwrap_or(d.geometry.total_size()),
        (None, None) => return Err(RomError::Usage("unknown part: give --length".into())),
    };
    let mut data = vec![0u8; len as usize];
    let mut p = Progress::new();
    let t0 = Instant::now();
    program::read(&mut *t, start, &mut data, &mut |ph, d, tot| {
        p.update(ph, d, tot)
    })?;
    p.done();
    let image =
        FirmwareImage::from_bin(start, data, &a.output).map_err(firmware_file::FileError)?;
    firmware_file::save(&image, &a.output, 0xFF)?;
    println!(
        "read {len} bytes at {start:#010x} to {} in {:.1} s",
        a.output.display(),
        t0.elapsed().as_secs_f64()
    );
    finish(&a.transport, t)
}

pub(super) fn erase(a: EraseArgs) -> Result<(), RomError> {
    let mut t = connect(&a.transport)?;
    if a.mass {
        t.erase(Erase::Mass)?;
        println!("flash mass-erased");
    } else if let Some(bank) = a.bank {
        if !(1..=2).contains(&bank) {
            return Err(RomError::Usage("--bank is 1 or 2".into()));
        }
        t.erase(Erase::Bank(bank - 1))?;
        println!("bank {bank} erased");
    } else if let Some(list) = &a.pages {
        let pages = parse_list(list)?;
        for chunk in pages.chunks(64) {
            t.erase(Erase::Pages(chunk))?;
        }
        println!("erased pages {list}");
    } else if let Some(range) = &a.range {
        let (addr, len) = range
            .split_once(':')
            .ok_or_else(|| RomError::Usage("--range is ADDR:LEN".into()))?;
        let addr = parse_u32(addr).map_err(RomError::Usage)?;
        let len = parse_u32(len).map_err(RomError::Usage)?;
        if len == 0 {
            return Err(RomError::Usage(
                "--range ADDR:0 erases nothing: give a length of at least 1".into(),
            ));
        }
        let d = device_of(&t)?;
        let mut p = Progress::new();
        program::erase_range(&mut *t, d, addr, len, &mut |ph, done, tot| {
            p.update(ph, done, tot)
        })?;
        p.done();
        println!("erased the pages covering {addr:#010x}+{len:#x}");
    } else {
        return Err(RomError::Usage(
            "say what to erase: --pages, --bank, --mass or --range".into(),
        ));
    }
    finish(&a.transport, t)
}
