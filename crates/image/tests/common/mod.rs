//! Helpers for tests that run the real imgtool.
#![allow(dead_code)]

use brickless_test_support::missing_peer;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The real imgtool, driven through one long-lived Python process
/// (`imgtool_batch.py`) so each command does not pay the interpreter start-up.
pub struct Imgtool {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Result of one imgtool command.
pub struct Output {
    pub success: bool,
    pub code: i64,
    pub stdout: Vec<u8>,
}

impl Imgtool {
    /// Start imgtool. If it is missing: fail when `BRICKLESS_REQUIRE_PEERS=1` (CI),
    /// else print a skip message and return `None`.
    pub fn start() -> Option<Self> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/imgtool_batch.py");
        let spawned = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut tool = spawned.ok().map(|mut child| {
            let stdin = child.stdin.take().expect("stdin");
            let stdout = BufReader::new(child.stdout.take().expect("stdout"));
            Self {
                child,
                stdin,
                stdout,
            }
        });
        let works = tool
            .as_mut()
            .and_then(|t| t.try_run(Path::new("/"), &["version"]))
            .is_some_and(|o| o.success);
        if !works {
            missing_peer("imgtool");
            return None;
        }
        tool
    }

    fn try_run(&mut self, dir: &Path, args: &[&str]) -> Option<Output> {
        let req = serde_json::json!({ "cwd": dir, "args": args });
        writeln!(self.stdin, "{req}").ok()?;
        self.stdin.flush().ok()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        let reply: serde_json::Value = serde_json::from_str(&line).ok()?;
        let code = reply["rc"].as_i64()?;
        let hex = reply["stdout"].as_str()?;
        let stdout = base16ct::mixed::decode_vec(hex).ok()?;
        Some(Output {
            success: code == 0,
            code,
            stdout,
        })
    }

    /// Run `imgtool ARGS` in `dir`, whatever its exit status.
    pub fn run_status(&mut self, dir: &Path, args: &[&str]) -> Output {
        self.try_run(dir, args).expect("imgtool batch process died")
    }

    /// Run `imgtool ARGS` in `dir`; panics if it fails.
    pub fn run(&mut self, dir: &Path, args: &[&str]) -> Output {
        let out = self.run_status(dir, args);
        assert!(
            out.success,
            "imgtool {args:?} exited {}: {}",
            out.code,
            String::from_utf8_lossy(&out.stdout)
        );
        out
    }
}

impl Drop for Imgtool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
