//! Helpers shared by the CLI's end-to-end tests: run the built `brickless` binary and the real
//! peer tools (imgtool), and build small test inputs.
#![allow(dead_code)]
use brickless_test_support::missing_peer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `brickless` binary under test. Errors are printed unwrapped (miette's narrated
/// form), so assertions on paths and ranges do not depend on line wrapping.
pub fn brickless() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_brickless"));
    cmd.env("NO_GRAPHICS", "1");
    cmd
}

/// Run a command, returning its output (stdout and stderr captured).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Run and require exit status 0, printing both streams on failure.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run and require a non-zero exit; returns stderr as text.
pub fn run_fails(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed but exited 0:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs many imgtool commands in one Python process: imgtool's start-up (≈1 s) would
/// otherwise dominate the suite. Each command goes through imgtool's own click entry point,
/// exactly as the `imgtool` script runs it.
const IMGTOOL_DRIVER: &str = r#"
import sys, json, io, contextlib
from imgtool.main import imgtool
results = []
for args in json.load(sys.stdin):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            code = imgtool.main(args=args, standalone_mode=False) or 0
        except SystemExit as e:
            code = e.code or 0
        except BaseException as e:
            code = repr(e)
    results.append({"code": code, "stdout": buf.getvalue()})
json.dump(results, sys.stdout)
"#;

/// The real imgtool (Python module `imgtool`), proven importable.
pub struct Imgtool;

/// One imgtool command's outcome.
#[derive(Debug)]
pub struct ImgtoolRun {
    pub args: Vec<String>,
    /// Exit code (0 = success), or the exception imgtool raised.
    pub code: serde_json::Value,
    pub stdout: String,
}

impl ImgtoolRun {
    pub fn ok(&self) -> bool {
        self.code == serde_json::json!(0)
    }
}

/// imgtool, or `None` (after printing why) when it is not installed. With
/// BRICKLESS_REQUIRE_PEERS=1 (as in CI) a missing imgtool fails the test instead.
pub fn imgtool() -> Option<Imgtool> {
    let found = Command::new("python3")
        .args(["-c", "import imgtool.main"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return Some(Imgtool);
    }
    missing_peer("imgtool");
    None
}

impl Imgtool {
    /// Run each argument list as `imgtool ARGS...`, in order, in one process.
    pub fn batch(&self, commands: Vec<Vec<String>>) -> Vec<ImgtoolRun> {
        use std::io::Write as _;
        let mut child = Command::new("python3")
            .args(["-c", IMGTOOL_DRIVER])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start python3");
        let input = serde_json::to_vec(&commands).unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "imgtool driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(results.len(), commands.len());
        commands
            .into_iter()
            .zip(results)
            .map(|(args, r)| ImgtoolRun {
                args,
                code: r["code"].clone(),
                stdout: r["stdout"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Like [`Imgtool::batch`], requiring every command to succeed.
    pub fn batch_ok(&self, commands: Vec<Vec<String>>) -> Vec<ImgtoolRun> {
        let runs = self.batch(commands);
        for r in &runs {
            assert!(
                r.ok(),
                "imgtool {:?} failed ({}): {}",
                r.args,
                r.code,
                r.stdout
            );
        }
        runs
    }
}

/// An argument list from strings and paths (for [`Imgtool::batch`]).
pub fn sargs(items: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<String> {
    items
        .iter()
        .map(|i| i.as_ref().to_string_lossy().into_owned())
        .collect()
}

pub fn path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// A program header for [`elf32`]: (p_type, paddr, vaddr, file bytes, memsz).
pub struct ElfSegment {
    pub p_type: u32,
    pub paddr: u32,
    pub vaddr: u32,
    pub data: Vec<u8>,
    pub memsz: u32,
}

/// A minimal little-endian ELF32 ARM executable with the given program headers (no
/// sections), enough for loaders that read PT_LOAD segments.
pub fn elf32(segments: &[ElfSegment]) -> Vec<u8> {
    const EHDR: usize = 52;
    const PHDR: usize = 32;
    let mut data_offset = EHDR + PHDR * segments.len();
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[1, 1, 1, 0]); // 32-bit, little-endian, version 1, SysV
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&40u16.to_le_bytes()); // EM_ARM
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0x0800_0000u32.to_le_bytes()); // entry
    out.extend_from_slice(&(EHDR as u32).to_le_bytes()); // phoff
    out.extend_from_slice(&0u32.to_le_bytes()); // shoff
    out.extend_from_slice(&0x0500_0200u32.to_le_bytes()); // flags: EABI5, hard float
    out.extend_from_slice(&(EHDR as u16).to_le_bytes());
    out.extend_from_slice(&(PHDR as u16).to_le_bytes());
    out.extend_from_slice(&(segments.len() as u16).to_le_bytes());
    out.extend_from_slice(&40u16.to_le_bytes()); // shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
    assert_eq!(out.len(), EHDR);
    for s in segments {
        for word in [
            s.p_type,
            data_offset as u32,
            s.vaddr,
            s.paddr,
            s.data.len() as u32,
            s.memsz,
            5, // R+X
            4,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        data_offset += s.data.len();
    }
    for s in segments {
        out.extend_from_slice(&s.data);
    }
    out
}

/// The repository's development key (the virtual devices trust it).
pub const DEV_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../keys/insecure-dev-ed25519.pem"
);

/// DIR/appN.signed.bin: `size` seeded bytes signed with the development key as version
/// N.0.0, for the virtual H753's 768 KiB slots.
pub fn signed_app(dir: &Path, major: u8, size: usize) -> PathBuf {
    let raw = dir.join(format!("app{major}.bin"));
    std::fs::write(
        &raw,
        brickless_test_support::pseudo_random_bytes(size, u64::from(major)),
    )
    .unwrap();
    let out = dir.join(format!("app{major}.signed.bin"));
    run_ok(
        brickless()
            .args(["image", "sign", "-k", DEV_KEY, "--version"])
            .arg(format!("{major}.0.0"))
            .args([
                "-H",
                "0x400",
                "--pad-header",
                "-S",
                "0xc0000",
                "--align",
                "32",
            ])
            .arg(&raw)
            .arg(&out),
    );
    out
}

/// A running `brickless sim`, killed (and waited for) when dropped.
pub struct SimProcess {
    child: std::process::Child,
    /// What it printed first: `serving … on udp|tcp ADDR …`.
    pub first_line: String,
}

impl SimProcess {
    /// Starts `brickless sim ARGS` and reads its first line.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> SimProcess {
        use std::io::BufRead;
        let mut child = brickless()
            .arg("sim")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start brickless sim");
        let mut first_line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut first_line)
            .expect("the first line of brickless sim");
        assert!(
            first_line.starts_with("serving "),
            "first line: {first_line}"
        );
        SimProcess { child, first_line }
    }

    /// The address after `udp ` or `tcp ` in the first line.
    pub fn addr(&self) -> String {
        self.first_line
            .split(|c: char| c.is_whitespace())
            .skip_while(|w| *w != "udp" && *w != "tcp")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in: {}", self.first_line))
            .to_string()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
