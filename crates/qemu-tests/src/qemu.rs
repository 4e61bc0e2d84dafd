//! One QEMU machine with a whole-flash image loaded at 0x0800_0000, its USART1 on a pty and a
//! QMP socket. It starts halted (`-S`) and runs once the console is open, so no early
//! output is lost.
use crate::Machine;
use serde_json::Value;
use serialport::{SerialPort, TTYPort};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running machine. Dropping it kills QEMU.
pub struct Qemu {
    child: Child,
    /// The pty QEMU connected USART1 to.
    pub pty: PathBuf,
    console: Option<TTYPort>,
    qmp: BufReader<UnixStream>,
    /// Everything the console printed so far (lossy UTF-8).
    output: String,
    /// How far [`Qemu::wait_for`] has consumed `output`.
    seen: usize,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Qemu {
    /// Starts `machine` with `flash` (from 0x0800_0000) in its flash.
    pub fn start(machine: &Machine, flash: &[u8]) -> Qemu {
        Qemu::start_with(machine, flash, &[])
    }

    /// Like [`Qemu::start`], with extra QEMU arguments (e.g. a TCG plugin).
    pub fn start_with(machine: &Machine, flash: &[u8], extra: &[String]) -> Qemu {
        let dir = tempfile::tempdir().expect("tempdir");
        if std::env::var_os("BRICKLESS_QEMU_KEEP").is_some() {
            // For debugging by hand: the flash image stays, and the command line is printed.
            eprintln!("QEMU files kept in {}", dir.path().display());
        }
        let image = dir.path().join("flash.bin");
        std::fs::write(&image, flash).expect("write the flash image");
        let sock = dir.path().join("qmp.sock");
        let mut child = Command::new("qemu-system-arm")
            .args(["-M", machine.qemu, "-nographic", "-monitor", "none"])
            .args(["-serial", "pty", "-S"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .arg("-device")
            .arg(format!(
                "loader,file={},addr=0x08000000,force-raw=on",
                image.display()
            ))
            .args(machine.extra_args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-arm starts");
        // Keep draining stderr so QEMU never blocks on it.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        drain(
            child.stderr.take().expect("piped"),
            Arc::clone(&stderr_text),
        );
        // QEMU names the pty on its stdout (the monitor's output, which `-monitor none` sends
        // there).
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout);
        let mut pty = None;
        let mut early = String::new();
        while pty.is_none() {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let said = stderr_text.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("QEMU exited before opening the pty:\n{early}{said}");
            }
            pty = line
                .split("redirected to ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .map(PathBuf::from);
            early.push_str(&line);
        }
        let pty = pty.expect("loop ends with a pty");
        drain(lines, Arc::clone(&stderr_text));
        let console = open_console(&pty);
        let qmp = connect_qmp(&sock);
        let mut q = Qemu {
            child,
            pty,
            console: Some(console),
            qmp,
            output: String::new(),
            seen: 0,
            stderr: stderr_text,
            _dir: dir,
        };
        q.qmp("qmp_capabilities");
        q.qmp("cont");
        q
    }

    /// Sends a QMP command and returns its `return` value (panics on an `error`).
    pub fn qmp(&mut self, command: &str) -> Value {
        let request = serde_json::json!({ "execute": command }).to_string() + "\n";
        self.qmp
            .get_mut()
            .write_all(request.as_bytes())
            .expect("QMP write");
        loop {
            let mut line = String::new();
            let n = self.qmp.read_line(&mut line).expect("QMP read");
            assert!(n > 0, "QMP closed during {command}");
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let Some(r) = v.get("return") {
                return r.clone();
            }
            if let Some(e) = v.get("error") {
                panic!("QMP {command}: {e}");
            }
        }
    }

    /// Waits until the console prints `needle` (after what earlier waits consumed) and
    /// returns the text up to and including it; panics with the whole output on timeout.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.output[self.seen..].find(needle) {
                let end = self.seen + i + needle.len();
                let text = self.output[self.seen..end].to_string();
                self.seen = end;
                return text;
            }
            if Instant::now() > deadline {
                panic!(
                    "the console never printed {needle:?} within {timeout:?}; it printed:\n{}\nQEMU said:\n{}",
                    self.output,
                    self.stderr()
                );
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "QEMU exited ({status}) before the console printed {needle:?}; it printed:\n{}\nQEMU said:\n{}",
                    self.output,
                    self.stderr()
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }

    /// Reads what the console has for up to `time`.
    pub fn pump(&mut self, time: Duration) {
        let Some(port) = self.console.as_mut() else {
            std::thread::sleep(time);
            return;
        };
        let _ = port.set_timeout(time);
        let mut buf = [0u8; 512];
        if let Ok(n) = port.read(&mut buf) {
            self.output.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Everything the console printed so far.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// What QEMU printed (stderr, and stdout after the pty line).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends bytes to the console USART.
    pub fn send(&mut self, bytes: &[u8]) {
        let port = self.console.as_mut().expect("the console is open");
        port.write_all(bytes).expect("write to the console");
    }

    /// Closes the test's end of the console so another program (smpmgr) can use the pty
    /// alone; reads what was pending first.
    pub fn release_console(&mut self) {
        self.pump(Duration::from_millis(100));
        self.console = None;
    }

    /// Opens the console again after [`Qemu::release_console`].
    pub fn reopen_console(&mut self) {
        self.console = Some(open_console(&self.pty));
    }

    /// A system reset, as the reset button gives (RAM is kept, as on silicon).
    pub fn reset(&mut self) {
        self.qmp("system_reset");
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("BRICKLESS_QEMU_KEEP").is_some() {
            let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("tempdir"));
            let _ = dir.keep();
        }
    }
}

/// Collects what QEMU prints on `from` (so it never blocks writing) into `into`.
fn drain(from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if let Ok(mut s) = into.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
}

fn open_console(pty: &Path) -> TTYPort {
    serialport::new(pty.to_string_lossy(), 115_200)
        .timeout(Duration::from_millis(50))
        .open_native()
        .unwrap_or_else(|e| panic!("open {}: {e}", pty.display()))
}

fn connect_qmp(sock: &Path) -> BufReader<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(sock) {
            Ok(s) => {
                let mut r = BufReader::new(s);
                let mut greeting = String::new();
                r.read_line(&mut greeting).expect("QMP greeting");
                return r;
            }
            Err(e) if Instant::now() > deadline => panic!("QMP socket {}: {e}", sock.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
