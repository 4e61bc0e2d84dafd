//! Bench: write + verify 512 KiB on the virtual ROM device at 115200 baud 8N1 with a 2 ms
//! device turnaround, line rate modelled: our host vs stm32flash vs stm32loader, one run.
//!
//! Run: `cargo test --release -p brickless --test rom_bench -- --ignored --nocapture`
//! (about 8 minutes). The limit is the line time of the payload: 512 KiB written plus
//! 512 KiB read back, 10 bits a byte, at 115200 baud (91.0 s).
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_brickless");
const SIZE: usize = 512 * 1024;
const BAUD: u32 = 115_200;

struct Sim {
    child: Child,
    pty: PathBuf,
}

impl Sim {
    fn start(dir: &Path, name: &str, checksum: bool) -> Sim {
        let link = dir.join(format!("tty-{name}"));
        let mut cmd = Command::new(BIN);
        cmd.args(["sim", "--rom", "--part", "stm32h753zi", "--flash"])
            .arg(dir.join(format!("{name}.flash")))
            .arg("--link")
            .arg(&link)
            .args(["--line-rate", "--turnaround-ms", "2"]);
        if checksum {
            cmd.arg("--checksum");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("serving AN3155"), "{first}");
        Sim { child, pty: link }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STM32LOADER_PTY: &str = r#"
import sys, serial
from stm32loader.bootloader import Stm32Bootloader
port, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
s = serial.Serial()
s.port, s.baudrate, s.parity, s.timeout = port, 115200, "N", 5
# A pty refuses modem-control ioctls; these flags make pyserial skip them.
s.dsrdtr = True
s.rtscts = True
s.open()
bl = Stm32Bootloader(s, device_family="H7", verbosity=0)
bl.reset_from_system_memory()
bl.get()
bl.extended_erase_memory(list(range((len(data) + 131071) // 131072)))
bl.write_memory_data(0x08000000, data)
bl.verify_data(bl.read_memory_data(0x08000000, len(data)), data)
"#;

fn run(label: &str, mut cmd: Command, rows: &mut Vec<(String, f64)>) {
    let t0 = Instant::now();
    let out = cmd.output().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{label} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{label}: {secs:.1} s");
    rows.push((label.to_string(), secs));
}

#[test]
#[ignore = "bench: ~8 minutes; run with --ignored --nocapture"]
fn write_and_verify_512k_at_115200() {
    let dir = tempfile::tempdir().unwrap();
    let fw: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let fw_path = dir.path().join("fw.bin");
    std::fs::write(&fw_path, &fw).unwrap();
    let script = dir.path().join("sl.py");
    std::fs::write(&script, STM32LOADER_PTY).unwrap();
    let mut rows = Vec::new();

    {
        let sim = Sim::start(dir.path(), "ours", false);
        let mut c = Command::new(BIN);
        c.args(["rom", "write", "--parity", "none", "--port"])
            .arg(&sim.pty)
            .arg(&fw_path);
        run("brickless rom write (read-back verify)", c, &mut rows);
    }
    {
        let sim = Sim::start(dir.path(), "ours-pipe", false);
        let mut c = Command::new(BIN);
        c.args(["rom", "write", "--pipeline", "--parity", "none", "--port"])
            .arg(&sim.pty)
            .arg(&fw_path);
        run("brickless rom write --pipeline", c, &mut rows);
    }
    {
        let sim = Sim::start(dir.path(), "ours-crc", true);
        let mut c = Command::new(BIN);
        c.args(["rom", "write", "--pipeline", "--parity", "none", "--port"])
            .arg(&sim.pty)
            .arg(&fw_path);
        run(
            "brickless rom write --pipeline, device has 0xA1 (CRC verify)",
            c,
            &mut rows,
        );
    }
    {
        let sim = Sim::start(dir.path(), "stm32flash", false);
        let mut c = Command::new("stm32flash");
        c.args(["-m", "8n1", "-b", "115200", "-w"])
            .arg(&fw_path)
            .args(["-v"])
            .arg(&sim.pty);
        run("stm32flash -w -v", c, &mut rows);
    }
    {
        let sim = Sim::start(dir.path(), "stm32loader", false);
        let mut c = Command::new("python3");
        c.arg(&script).arg(&sim.pty).arg(&fw_path);
        run("stm32loader (Stm32Bootloader class)", c, &mut rows);
    }

    let limit = (2 * SIZE) as f64 * 10.0 / f64::from(BAUD);
    println!("\nwrite + verify {} KiB, 115200 8N1, 2 ms turnaround (limit: payload line time {limit:.1} s)", SIZE / 1024);
    println!(
        "{:<62} {:>8} {:>9} {:>13}",
        "host", "time s", "KiB/s", "of line rate"
    );
    for (label, secs) in &rows {
        println!(
            "{label:<62} {secs:>8.1} {:>9.2} {:>12.0}%",
            (SIZE as f64 / 1024.0) / secs,
            100.0 * limit / secs
        );
    }
}
