//! Instructions the real bootloader executes to verify an image, counted in QEMU 10 on the
//! STM32L475 (Cortex-M4) by a TCG plugin (`tools/qemu-insn-count`): every instruction from
//! reset until the application's reset handler first runs. Two image sizes give the
//! per-byte cost (hashing) and the fixed part (reset, state, signature, jump); 1 MiB is
//! extrapolated from them, since no STM32 machine in QEMU has a slot that large.
//!
//! Run: `cargo run --release -p brickless-qemu-tests --bin verify-bench`
use brickless_boot::layout::FIRMWARE_APP_HEADER;
use brickless_image::ImageVersion;
use brickless_qemu_tests::firmware::{bootloader, elf_bytes, example_app, target_dir};
use brickless_qemu_tests::flash::FlashImage;
use brickless_qemu_tests::{dev_key, repo_root, sign_app, L475};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MIB: f64 = 1024.0 * 1024.0;

fn plugin() -> PathBuf {
    let out = target_dir().join("insn_count.so");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-o"])
        .arg(&out)
        .arg(repo_root().join("tools/qemu-insn-count/insn_count.c"))
        .status()
        .expect("gcc runs");
    assert!(status.success(), "the counting plugin does not build");
    out
}

/// Instructions from reset to the first block at `stop`.
fn count(flash: &[u8], plugin: &Path, stop: u32) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("flash.bin");
    std::fs::write(&image, flash).expect("write");
    let mut child = Command::new("qemu-system-arm")
        .args([
            "-M",
            L475.qemu,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "null",
        ])
        .args(L475.extra_args)
        .args(["-d", "plugin", "-plugin"])
        .arg(format!("{},stop={stop:#x}", plugin.display()))
        .arg("-device")
        .arg(format!(
            "loader,file={},addr=0x08000000,force-raw=on",
            image.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-arm runs");
    let stderr = child.stderr.take().expect("piped");
    let mut found = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("insn_count: ") {
            found = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            assert!(line.contains("stop address reached"), "{line}");
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    found.expect("the plugin reported a count")
}

fn main() {
    let machine = L475;
    let key = dev_key();
    let plugin = plugin();
    let bl = elf_bytes(&bootloader(&machine, true), 0x0800_0000, 0xFF);
    let probe = FlashImage::new(machine.part);
    let app_at = probe.layout.spec().primary.start + FIRMWARE_APP_HEADER;
    let app = elf_bytes(&example_app(&machine), app_at, 0xFF);
    let reset = u32::from_le_bytes([app[4], app[5], app[6], app[7]]);
    let room = probe.layout.max_image_size() - FIRMWARE_APP_HEADER - 4096;

    println!(
        "bootloader verify cost, QEMU {} (Cortex-M4), instructions from reset to the application",
        machine.qemu
    );
    println!("{:>12} {:>16}", "image bytes", "instructions");
    let mut points = Vec::new();
    for payload_len in [app.len() as u32, room / 2, room] {
        let mut payload = app.clone();
        // Bytes after the application's end: hashed and signed like code, never executed.
        payload.resize(payload_len as usize, 0xA5);
        let image = sign_app(&payload, &probe.layout, ImageVersion::new(1, 0, 0, 0), 1);
        let mut flash = FlashImage::new(machine.part);
        flash.bootloader(&bl);
        flash.install(&image, &[key.public_key()]);
        let n = count(&flash.bytes(), &plugin, reset);
        println!("{:>12} {:>16}", image.len(), n);
        points.push((image.len() as f64, n as f64));
    }
    let (x0, y0) = points[0];
    let (x1, y1) = points[points.len() - 1];
    let per_byte = (y1 - y0) / (x1 - x0);
    let fixed = y0 - per_byte * x0;
    println!("per byte hashed: {per_byte:.2} instructions");
    println!("fixed part (reset, state, signature check, jump): {fixed:.0} instructions");
    println!(
        "1 MiB image, extrapolated: {:.1} M instructions ({:.1} ms at one instruction per cycle at 80 MHz, a lower bound)",
        (fixed + per_byte * MIB) / 1e6,
        (fixed + per_byte * MIB) / 80e6 * 1e3
    );
}
