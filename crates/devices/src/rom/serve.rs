//! The virtual ROM bootloader as a service: AN3155 on a pty and/or TCP, the flash and its
//! protection persisted to files shortly after each change.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use brickless_flash::Part;
use brickless_rom::RomDevice;

use super::core::RomCore;
use super::usart::{self, LineParams, LogFn, Session, UsartOptions};
use crate::link::{pty, serve_tcp};
use crate::persist::{self, FlashFileError};

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Serve on a pty.
    pub pty: bool,
    /// A symlink to create to the pty, so tools get a fixed name.
    pub link: Option<PathBuf>,
    /// Also serve the raw byte stream on TCP at this address.
    pub tcp: Option<String>,
    /// Device latency before each answer.
    pub turnaround: Duration,
    /// Model the line rate: the pty client's settings, else `baud` at 8E1.
    pub line_rate: bool,
    /// Line rate for `line_rate`: TCP's rate, and the pty's until its client sets one.
    pub baud: u32,
    /// Offer Get Checksum (0xA1).
    pub checksum: bool,
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The flash file could not be loaded or created.
    #[error(transparent)]
    FlashFile(#[from] FlashFileError),
    /// No pseudo-terminal could be opened.
    #[error("could not open a pty")]
    Pty(#[source] std::io::Error),
    /// The symlink to the pty could not be created.
    #[error("could not create the link {}", path.display())]
    Link {
        /// The symlink asked for ([`ServeOptions::link`]).
        path: PathBuf,
        /// Why creating it failed.
        #[source]
        source: std::io::Error,
    },
    /// The TCP address could not be bound.
    #[error("could not listen on {addr}")]
    Listen {
        /// The address asked for ([`ServeOptions::tcp`]).
        addr: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The pty's server thread ended (the service cannot go on serving it).
    #[error("the pty server stopped")]
    PtyStopped,
    /// Reading the pty's line settings or the bound TCP address failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running virtual ROM bootloader.
pub struct RomService {
    core: Arc<Mutex<RomCore>>,
    flash_path: PathBuf,
    options_path: PathBuf,
    places: Vec<String>,
    pty_thread: Option<JoinHandle<()>>,
    log: LogFn,
}

impl RomService {
    /// Opens (or creates) the flash file of `part`, restores its protection, and starts
    /// serving `device`'s bootloader as `opts` says. `log` gets one line per command.
    pub fn start(
        device: &'static RomDevice,
        part: &'static Part,
        flash_path: PathBuf,
        opts: &ServeOptions,
        log: LogFn,
    ) -> Result<RomService, ServeError> {
        let flash = persist::open_flash(part, &flash_path)?;
        let mut core = RomCore::new(device, flash);
        let options_path = persist::options_path(&flash_path);
        if let Some((rdp, wrp)) = persist::load_options(&options_path) {
            core.restore_protection(rdp, &wrp);
        }
        let core = Arc::new(Mutex::new(core));
        let mut places = Vec::new();

        let mut pty_thread = None;
        if opts.pty {
            let pty = pty::open().map_err(ServeError::Pty)?;
            let mut shown = pty.slave_path.display().to_string();
            if let Some(link) = &opts.link {
                let _ = std::fs::remove_file(link);
                std::os::unix::fs::symlink(&pty.slave_path, link).map_err(|source| {
                    ServeError::Link {
                        path: link.clone(),
                        source,
                    }
                })?;
                shown = format!("{shown} (link {})", link.display());
            }
            places.push(shown);
            let line: Option<usart::LineFn> = if opts.line_rate {
                let probe = pty.line_probe(opts.baud)?;
                Some(Arc::new(move || probe.params()))
            } else {
                None
            };
            let uopts = usart_options(opts, line, &log);
            let core = core.clone();
            pty_thread = Some(std::thread::spawn(move || {
                let session = Mutex::new(Session::default());
                let mut master = pty.master;
                // The pty stays open (we hold its slave side), so clients come and go freely.
                loop {
                    usart::serve(&core, &session, &mut master, &uopts);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }));
        }

        if let Some(addr) = &opts.tcp {
            let listen_err = |source| ServeError::Listen {
                addr: addr.clone(),
                source,
            };
            let listener = TcpListener::bind(addr).map_err(listen_err)?;
            places.push(format!("tcp {}", listener.local_addr()?));
            let line: Option<usart::LineFn> = if opts.line_rate {
                let p = LineParams {
                    baud: opts.baud,
                    bits_per_byte: 11,
                };
                Some(Arc::new(move || p))
            } else {
                None
            };
            let uopts = usart_options(opts, line, &log);
            let core = core.clone();
            serve_tcp(listener, move |mut stream| {
                // Each connection is a freshly reset device (stm32loader syncs first).
                let session = Mutex::new(Session::default());
                usart::serve(&core, &session, &mut stream, &uopts);
            });
        }

        Ok(RomService {
            core,
            flash_path,
            options_path,
            places,
            pty_thread,
            log,
        })
    }

    /// Where it serves: the pty path (and its link), `tcp ADDR:PORT`.
    pub fn places(&self) -> &[String] {
        &self.places
    }

    /// Persists changes shortly after they happen, until the pty server stops (a TCP-only
    /// service runs until the process ends).
    pub fn run(self) -> ServeError {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let snapshot = {
                let mut c = self.core.lock().unwrap_or_else(|p| p.into_inner());
                c.take_dirty()
                    .then(|| (c.flash().clone(), c.protection_state()))
            };
            if let Some((flash, (rdp, wrp))) = snapshot {
                if let Err(e) = flash.save(&self.flash_path) {
                    (self.log)(&format!(
                        "could not save {}: {e}",
                        self.flash_path.display()
                    ));
                }
                persist::save_options(&self.options_path, rdp, &wrp);
            }
            if self.pty_thread.as_ref().is_some_and(|t| t.is_finished()) {
                return ServeError::PtyStopped;
            }
        }
    }
}

fn usart_options(opts: &ServeOptions, line: Option<usart::LineFn>, log: &LogFn) -> UsartOptions {
    UsartOptions {
        turnaround: opts.turnaround,
        line,
        checksum: opts.checksum,
        log: Some(log.clone()),
    }
}
