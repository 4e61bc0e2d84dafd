//! SMP (mcumgr's protocol) over UDP or a serial port: one [`Session`] per device, with the
//! image commands and the whole upgrade (upload, test, reset, wait, confirm).
use std::path::Path;
use std::time::{Duration, Instant};

use brickless_smp::client::{Client, ImageState, UploadReport};
use brickless_smp::transport::{SerialTransport, Transport, UdpTransport, SERIAL_RECV_MAX};

use crate::target::Target;
use crate::{hex, Cancel, Error, ErrorKind};

pub use brickless_smp::client::ImageState as Slot;

/// How to talk to the device.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpOptions {
    /// Seconds to wait for each answer.
    pub timeout: f64,
    /// UDP payload limit, bytes.
    pub mtu: usize,
    /// Use brickless's fast upload path when the device offers it.
    pub fast: bool,
}

impl Default for SmpOptions {
    fn default() -> Self {
        SmpOptions {
            timeout: 5.0,
            mtu: 1472,
            fast: true,
        }
    }
}

/// One device's SMP connection.
pub struct Session {
    client: Client<Box<dyn Transport>>,
    target: Target,
    cancel: Cancel,
}

/// How an upgrade ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Upgraded {
    /// The image's version.
    pub version: String,
    /// Its hash, hex.
    pub hash: String,
    /// Bytes uploaded (0 when the image already ran).
    pub bytes: u32,
    /// Upload requests sent.
    pub requests: u32,
    /// Times the upload resumed after a dropped link or a power cut.
    pub resumes: u32,
    /// The image is kept for good.
    pub confirmed: bool,
    /// The device already ran this image: nothing was uploaded.
    pub already_running: bool,
}

impl Session {
    /// Opens the link to the device at `target` (nothing is sent yet).
    pub fn connect(target: &Target, opts: &SmpOptions) -> Result<Session, Error> {
        let link: Box<dyn Transport> = match target {
            Target::Udp(addr) => Box::new(UdpTransport::connect(addr, opts.mtu).map_err(|e| {
                Error::new(ErrorKind::Connection, format!("cannot reach {addr} over UDP: {e}"))
                    .with_help("e.g. udp:127.0.0.1:1337")
            })?),
            Target::Serial { path, baud } => Box::new(
                SerialTransport::open(path, *baud)
                    .map(|t| t.with_mtu(SERIAL_RECV_MAX))
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Connection,
                            format!("cannot open the serial port {path}: {e}"),
                        )
                        .with_help("is the device connected? `brickless sim --link ./ttySMP` makes a virtual one")
                    })?,
            ),
            Target::Tcp(_) => {
                return Err(Error::invalid(format!(
                    "{target}: SMP devices are reached over UDP or a serial port"
                )))
            }
        };
        let mut client = Client::new(link);
        if !(opts.timeout.is_finite() && opts.timeout > 0.0) {
            return Err(Error::invalid(format!(
                "timeout {} s is not a positive number",
                opts.timeout
            )));
        }
        client.set_timeout(Duration::from_secs_f64(opts.timeout.max(0.05)));
        client.set_fast(opts.fast);
        let cancel = Cancel::new();
        client.set_cancel(cancel.flag());
        Ok(Session {
            client,
            target: target.clone(),
            cancel,
        })
    }

    /// Makes `cancel` (shared with other jobs) the flag that stops this session.
    pub fn with_cancel(mut self, cancel: &Cancel) -> Session {
        self.client.set_cancel(cancel.flag());
        self.cancel = cancel.clone();
        self
    }

    /// The device this session talks to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The flag that stops this session's work (set it from any thread; clear it with
    /// [`Cancel::reset`] to use the session again).
    pub fn cancel_handle(&self) -> Cancel {
        self.cancel.clone()
    }

    /// The SMP client alone (the cancel flag stays with it).
    pub fn into_client(self) -> Client<Box<dyn Transport>> {
        self.client
    }

    /// The SMP client, for commands this layer does not wrap.
    pub fn client(&mut self) -> &mut Client<Box<dyn Transport>> {
        &mut self.client
    }

    /// The image slots.
    pub fn list(&mut self) -> Result<Vec<ImageState>, Error> {
        Ok(self.client.images()?)
    }

    /// Marks the image with `hash` (32 bytes) for one test boot at the next reset.
    pub fn test(&mut self, hash: &[u8]) -> Result<Vec<ImageState>, Error> {
        check_hash(hash)?;
        Ok(self.client.test(hash)?)
    }

    /// Confirms the running image (`None`) or requests the image `hash` for good.
    pub fn confirm(&mut self, hash: Option<&[u8]>) -> Result<Vec<ImageState>, Error> {
        if let Some(h) = hash {
            check_hash(h)?;
        }
        Ok(self.client.confirm(hash)?)
    }

    /// Resets the device.
    pub fn reset(&mut self) -> Result<(), Error> {
        Ok(self.client.reset()?)
    }

    /// Uploads `bytes` (a signed image) into the staging slot; `progress(done, total)`.
    pub fn upload(
        &mut self,
        bytes: &[u8],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadReport, Error> {
        let report = self
            .client
            .upload(bytes, |d, t| progress(u64::from(d), u64::from(t)))?;
        check_upload(report)
    }

    /// Uploads the signed image file at `path` (checked before anything is sent).
    pub fn upload_file(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadReport, Error> {
        let (bytes, _) = crate::image::read_signed(path)?;
        self.upload(&bytes, progress)
    }

    /// The whole upgrade: upload the image at `path`, mark it for a test boot, reset, wait up
    /// to `wait` for the device to run it, then confirm it (unless `confirm` is false). An
    /// image that already runs is not uploaded again; on a device in recovery (no image runs)
    /// the upload itself makes the image pending, so it is not marked again.
    pub fn upgrade(
        &mut self,
        path: &Path,
        confirm: bool,
        wait: Duration,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Upgraded, Error> {
        let (bytes, info) = crate::image::read_signed(path)?;
        let hash = info.computed_hash;
        let version = brickless_smp::client::version_text(info.header.version);
        let images = self.list()?;
        if let Some(r) = images
            .iter()
            .find(|s| s.slot == 0 && s.active && s.hash == hash)
        {
            let confirmed = r.confirmed || (confirm && self.client.confirm(None).is_ok());
            progress(bytes.len() as u64, bytes.len() as u64);
            return Ok(Upgraded {
                version,
                hash: hex(&hash),
                bytes: 0,
                requests: 0,
                resumes: 0,
                confirmed,
                already_running: true,
            });
        }
        let report = self.upload(&bytes, progress)?;
        // A device with no image to run (recovery) installs what it receives for good: the
        // image is pending already and a test request would be refused.
        let pending = self
            .client
            .images()?
            .iter()
            .any(|s| s.hash == hash && s.pending);
        if !pending {
            self.client.test(&hash)?;
        }
        self.client.reset()?;
        let deadline = Instant::now() + wait;
        let running = loop {
            self.cancel.check()?;
            match self.client.images() {
                Ok(images) => {
                    if let Some(r) = images.into_iter().find(|s| s.slot == 0 && s.active) {
                        break r;
                    }
                }
                Err(brickless_smp::client::ClientError::Cancelled) => {
                    return Err(Error::cancelled())
                }
                Err(_) if Instant::now() < deadline => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the device did not come back with a running image within {:.0} s",
                        wait.as_secs_f64()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if running.hash != hash {
            return Err(Error::new(
                ErrorKind::Mismatch,
                format!(
                    "the device runs {} ({}) instead of {version}",
                    running.version,
                    hex(&running.hash)
                ),
            )
            .with_help("the device refused or reverted the update; `brickless smp image list` shows its slots"));
        }
        let confirmed = if !confirm || running.confirmed {
            running.confirmed
        } else {
            self.client.confirm(None)?;
            true
        };
        Ok(Upgraded {
            version,
            hash: hex(&hash),
            bytes: report.len,
            requests: report.requests,
            resumes: report.resumes,
            confirmed,
            already_running: false,
        })
    }
}

/// An upload's report, or a mismatch when the device's SHA-256 of what it received differs
/// from the image's.
pub fn check_upload(report: UploadReport) -> Result<UploadReport, Error> {
    if report.matched == Some(false) {
        return Err(Error::new(
            ErrorKind::Mismatch,
            "the device's SHA-256 of the upload differs from the file's",
        )
        .with_help("the link corrupted data the frame checks missed; upload again"));
    }
    Ok(report)
}

fn check_hash(hash: &[u8]) -> Result<(), Error> {
    if hash.len() == 32 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "an image hash is 32 bytes (SHA-256), not {}",
            hash.len()
        )))
    }
}

/// Parses a hash given as 64 hex digits.
pub fn parse_hash(text: &str) -> Result<Vec<u8>, Error> {
    let t = text.trim();
    let mut out = vec![0u8; t.len() / 2];
    match base16ct::mixed::decode(t, &mut out) {
        Ok(b) if b.len() == 32 => Ok(b.to_vec()),
        _ => Err(Error::invalid(format!("`{text}` is not a SHA-256 hash"))
            .with_help("pass the 64 hex digits `brickless smp image list` shows")),
    }
}
