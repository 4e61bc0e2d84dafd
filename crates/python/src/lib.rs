//! The Python extension module `brickless._native`: a thin shell over `brickless-host`.
//!
//! Every function converts its arguments, releases the GIL, runs the host job and converts
//! the result (a dict) or the error (an exception of the error's kind). Progress callbacks
//! take the GIL only while they run; an exception raised in one cancels the job and is
//! raised in its place.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use brickless_host::image::{self, SignSpec};
use brickless_host::rom::{self, RomOptions, RomPhase};
use brickless_host::smp::{self as host_smp, Session, SmpOptions};
use brickless_host::target::Target;
use brickless_host::{Cancel, Error, ErrorKind};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};

mod errors {
    use pyo3::create_exception;
    use pyo3::exceptions::PyException;

    create_exception!(
        brickless,
        BricklessError,
        PyException,
        "A brickless job failed; `.kind` names the kind, `.help` says what to do (or None)."
    );
    create_exception!(
        brickless,
        InvalidArgumentError,
        BricklessError,
        "An argument is malformed or out of range."
    );
    create_exception!(
        brickless,
        FileError,
        BricklessError,
        "A file could not be read or written."
    );
    create_exception!(
        brickless,
        BadImageError,
        BricklessError,
        "The file is not a valid MCUboot image."
    );
    create_exception!(
        brickless,
        BadKeyError,
        BricklessError,
        "A key file could not be read or is not a supported key."
    );
    create_exception!(
        brickless,
        VerificationError,
        BricklessError,
        "The image does not verify with the keys given."
    );
    create_exception!(
        brickless,
        LinkError,
        BricklessError,
        "The port, socket or device could not be opened, or the link failed."
    );
    create_exception!(
        brickless,
        DeviceTimeoutError,
        BricklessError,
        "The device did not answer in time."
    );
    create_exception!(
        brickless,
        RefusedError,
        BricklessError,
        "The device refused the request."
    );
    create_exception!(
        brickless,
        ProtocolError,
        BricklessError,
        "The device answered something its protocol does not allow."
    );
    create_exception!(
        brickless,
        MismatchError,
        BricklessError,
        "The device holds or runs something other than what was sent."
    );
    create_exception!(
        brickless,
        CancelledError,
        BricklessError,
        "The job was cancelled."
    );
    create_exception!(
        brickless,
        UnsupportedError,
        BricklessError,
        "This build or this device cannot do that."
    );
    create_exception!(
        brickless,
        InternalError,
        BricklessError,
        "A bug in brickless."
    );
}
use errors::*;

/// The exception class of `kind`.
fn class_of(py: Python<'_>, kind: ErrorKind) -> Bound<'_, PyType> {
    match kind {
        ErrorKind::InvalidArgument => py.get_type::<InvalidArgumentError>(),
        ErrorKind::File => py.get_type::<FileError>(),
        ErrorKind::BadImage => py.get_type::<BadImageError>(),
        ErrorKind::BadKey => py.get_type::<BadKeyError>(),
        ErrorKind::Verification => py.get_type::<VerificationError>(),
        ErrorKind::Connection => py.get_type::<LinkError>(),
        ErrorKind::Timeout => py.get_type::<DeviceTimeoutError>(),
        ErrorKind::Refused => py.get_type::<RefusedError>(),
        ErrorKind::Protocol => py.get_type::<ProtocolError>(),
        ErrorKind::Mismatch => py.get_type::<MismatchError>(),
        ErrorKind::Cancelled => py.get_type::<CancelledError>(),
        ErrorKind::Unsupported => py.get_type::<UnsupportedError>(),
        ErrorKind::Internal => py.get_type::<InternalError>(),
    }
}

/// The host error as an exception of its kind, carrying `.kind`, `.code` and `.help`.
fn to_exception(py: Python<'_>, e: Error) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let exc = class_of(py, e.kind).call1((e.message.as_str(),))?;
        exc.setattr("kind", e.kind.name())?;
        exc.setattr("code", e.kind as i32)?;
        exc.setattr("help", e.help)?;
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|err| err)
}

/// Runs `job` with the GIL released; a panic becomes an [`ErrorKind::Internal`] error.
fn detached<T: Send>(
    py: Python<'_>,
    job: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error> {
    py.detach(|| {
        catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(
                Error::new(ErrorKind::Internal, format!("brickless panicked: {what}"))
                    .with_help("please report this as a bug"),
            )
        })
    })
}

/// A Python progress callable as the host jobs call it: takes the GIL for each call only;
/// the first exception it raises is kept and cancels the job.
struct Progress<'a> {
    callback: Option<&'a Py<PyAny>>,
    cancel: &'a Cancel,
    raised: Option<PyErr>,
}

impl<'a> Progress<'a> {
    fn new(callback: Option<&'a Py<PyAny>>, cancel: &'a Cancel) -> Self {
        Progress {
            callback,
            cancel,
            raised: None,
        }
    }

    fn call(&mut self, args: impl for<'py> FnOnce(Python<'py>, &Py<PyAny>) -> PyResult<Py<PyAny>>) {
        let Some(cb) = self.callback else { return };
        if self.raised.is_some() {
            return;
        }
        Python::attach(|py| {
            if let Err(e) = args(py, cb) {
                self.raised = Some(e);
                self.cancel.cancel();
            }
        });
    }

    fn report(&mut self, done: u64, total: u64) {
        self.call(|py, cb| cb.call1(py, (done, total)));
    }

    fn report_phase(&mut self, phase: RomPhase, done: u32, total: u32) {
        let name = match phase {
            RomPhase::Erase => "erase",
            RomPhase::Write => "write",
            RomPhase::Verify => "verify",
        };
        self.call(|py, cb| cb.call1(py, (done, total, name)));
    }

    /// The job's result, or the callback's exception if it raised one.
    fn finish<T>(self, py: Python<'_>, result: Result<T, Error>) -> PyResult<T> {
        match (self.raised, result) {
            (Some(e), _) => Err(e),
            (None, r) => r.map_err(|e| to_exception(py, e)),
        }
    }
}

/// `None`, or the callable checked before any work starts.
fn callable(py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    match progress {
        Some(p) if p.is_none(py) => Ok(None),
        Some(p) if !p.bind(py).is_callable() => Err(PyTypeError::new_err(
            "progress must be a callable taking (done, total) or None",
        )),
        other => Ok(other),
    }
}

/// A serialisable host result as plain Python values (dicts, lists, str, int, bool, None).
fn to_python<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value)
        .map_err(|e| PyErr::new::<InternalError, _>(format!("cannot convert a result: {e}")))?;
    json(py, &v)
}

fn json<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for x in items {
                list.append(json(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, x) in map {
                d.set_item(k, json(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn parse_target(py: Python<'_>, text: &str) -> PyResult<Target> {
    Target::parse(text, 115_200).map_err(|e| to_exception(py, e))
}

/// Signs the firmware file `input` (BIN, Intel HEX or ELF) into the BIN image `output` with
/// the private PEM `key` (hash only without one); returns the image's summary (a dict).
/// `output` is written atomically: a failed call leaves none.
#[pyfunction]
#[pyo3(signature = (input, output, key=None, *, version, header_size=0x200, pad_header=true, slot_size=0x20000, align=8, confirm=false))]
#[allow(clippy::too_many_arguments)]
fn sign<'py>(
    py: Python<'py>,
    input: PathBuf,
    output: PathBuf,
    key: Option<PathBuf>,
    version: String,
    header_size: u32,
    pad_header: bool,
    slot_size: u32,
    align: u32,
    confirm: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let spec = SignSpec {
        version,
        header_size,
        pad_header,
        slot_size,
        align,
        confirm,
    };
    let summary = detached(py, || {
        image::sign_file(&input, &output, key.as_deref(), &spec)
    })
    .map_err(|e| to_exception(py, e))?;
    to_python(py, &summary)
}

/// Verifies `image` against the PEM `keys` (public or private; with none, only its hash);
/// returns its version, hash and the index of the key that signed it. Raises
/// VerificationError when it does not verify.
#[pyfunction]
#[pyo3(signature = (image, keys=Vec::new()))]
fn verify(py: Python<'_>, image: PathBuf, keys: Vec<PathBuf>) -> PyResult<Bound<'_, PyAny>> {
    let verified = detached(py, || {
        let keys: Vec<&std::path::Path> = keys.iter().map(PathBuf::as_path).collect();
        image::verify_file(&image, &keys)
    })
    .map_err(|e| to_exception(py, e))?;
    to_python(py, &verified)
}

/// Summarises the image file `image` (a dict: version, hash, sizes, flags, TLVs).
#[pyfunction]
fn inspect(py: Python<'_>, image: PathBuf) -> PyResult<Bound<'_, PyAny>> {
    let summary = detached(py, || image::inspect_file(&image)).map_err(|e| to_exception(py, e))?;
    to_python(py, &summary)
}

/// Writes `file` (BIN at `address`, Intel HEX, ELF, DfuSe) through the ST ROM bootloader
/// at `target` ("serial:PATH[@BAUD]" or "tcp:HOST:PORT"): erases the pages it touches,
/// writes, reads back unless `verify` is False and, with `go`, starts it.
/// `progress(done, total, phase)` counts pages in phase "erase", bytes in "write" and
/// "verify". Runs with the GIL released.
#[pyfunction]
#[pyo3(signature = (target, file, *, baud=115_200, parity_even=true, verify=true, address=None, go=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn rom_write<'py>(
    py: Python<'py>,
    target: &str,
    file: PathBuf,
    baud: u32,
    parity_even: bool,
    verify: bool,
    address: Option<u32>,
    go: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let progress = callable(py, progress)?;
    let target = Target::parse(target, baud).map_err(|e| to_exception(py, e))?;
    let opts = RomOptions {
        baud,
        parity_even,
        verify,
        address,
        go,
        ..RomOptions::default()
    };
    let cancel = Cancel::new();
    let mut report = Progress::new(progress.as_ref(), &cancel);
    let result = detached(py, || {
        rom::write_file(
            &target,
            &file,
            &opts,
            &mut |phase, done, total| report.report_phase(phase, done, total),
            &cancel,
        )
    });
    let written = report.finish(py, result)?;
    to_python(py, &written)
}

/// A hash given as 64 hex digits or 32 bytes.
fn hash_arg(py: Python<'_>, hash: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(text) = hash.cast::<PyString>() {
        host_smp::parse_hash(&text.extract::<String>()?).map_err(|e| to_exception(py, e))
    } else if let Ok(bytes) = hash.cast::<PyBytes>() {
        Ok(bytes.as_bytes().to_vec())
    } else {
        Err(PyTypeError::new_err(format!(
            "an image hash is a str of 64 hex digits or 32 bytes, not {}",
            hash.get_type().name()?
        )))
    }
}

/// One device over SMP ("udp:HOST[:PORT]" or "serial:PATH[@BAUD]"), each answer awaited at
/// most `timeout` seconds. Usable from several threads (calls take turns); every call
/// releases the GIL while it talks to the device. Leaving a `with` block closes it.
#[pyclass(frozen, module = "brickless")]
struct Smp {
    /// The session; `None` once closed. Locked only with the GIL released.
    session: Mutex<Option<Session>>,
    /// The session's cancel flag, outside the lock so `cancel()` works during a transfer.
    cancel: Cancel,
    target: String,
}

impl Smp {
    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        // A panic while locked is reported as InternalError; the session stays usable.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on the session with the GIL released; clears the cancel flag after it.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        progress: Option<&Py<PyAny>>,
        job: impl FnOnce(&mut Session, &mut Progress<'_>) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        let mut report = Progress::new(progress, &self.cancel);
        let result = detached(py, || {
            let mut guard = self.lock();
            let r = match guard.as_mut() {
                Some(s) => job(s, &mut report),
                None => Err(Error::invalid(format!(
                    "the session with {} is closed",
                    self.target
                ))),
            };
            self.cancel.reset();
            r
        });
        report.finish(py, result)
    }

    fn slots<'py>(py: Python<'py>, slots: &[host_smp::Slot]) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &slots)
    }
}

#[pymethods]
impl Smp {
    #[new]
    #[pyo3(signature = (target, timeout=5.0))]
    fn new(py: Python<'_>, target: &str, timeout: f64) -> PyResult<Self> {
        let t = parse_target(py, target)?;
        let opts = SmpOptions {
            timeout,
            ..SmpOptions::default()
        };
        let session =
            detached(py, || Session::connect(&t, &opts)).map_err(|e| to_exception(py, e))?;
        Ok(Smp {
            cancel: session.cancel_handle(),
            session: Mutex::new(Some(session)),
            target: t.to_string(),
        })
    }

    /// The target as parsed ("udp:127.0.0.1:1337").
    #[getter]
    fn target(&self) -> &str {
        &self.target
    }

    fn __repr__(&self) -> String {
        format!("Smp('{}')", self.target)
    }

    /// The image slots (a list of dicts).
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let slots = self.run(py, None, |s, _| s.list())?;
        Self::slots(py, &slots)
    }

    /// Uploads the signed image `file` into the staging slot (checked before anything is
    /// sent); `progress(done, total)` in bytes.
    #[pyo3(signature = (file, progress=None))]
    fn upload<'py>(
        &self,
        py: Python<'py>,
        file: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let progress = callable(py, progress)?;
        let r = self.run(py, progress.as_ref(), |s, p| {
            s.upload_file(&file, &mut |d, t| p.report(d, t))
        })?;
        let d = PyDict::new(py);
        d.set_item("bytes", r.len)?;
        d.set_item("requests", r.requests)?;
        d.set_item("resumes", r.resumes)?;
        d.set_item("matched", r.matched)?;
        Ok(d.into_any())
    }

    /// Marks the image with `hash` (64 hex digits or 32 bytes) for one test boot.
    fn test<'py>(&self, py: Python<'py>, hash: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let hash = hash_arg(py, hash)?;
        let slots = self.run(py, None, |s, _| s.test(&hash))?;
        Self::slots(py, &slots)
    }

    /// Confirms the running image, or (with `hash`) requests that image for good.
    #[pyo3(signature = (hash=None))]
    fn confirm<'py>(
        &self,
        py: Python<'py>,
        hash: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let hash = hash.map(|h| hash_arg(py, h)).transpose()?;
        let slots = self.run(py, None, |s, _| s.confirm(hash.as_deref()))?;
        Self::slots(py, &slots)
    }

    /// Resets the device.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, None, |s, _| s.reset())
    }

    /// The whole upgrade: uploads `file`, marks it for a test boot, resets, waits up to
    /// `wait` seconds for the device to run it and (with `confirm`) confirms it. An image
    /// that already runs is not uploaded again.
    #[pyo3(signature = (file, confirm=true, wait=60.0, progress=None))]
    fn upgrade<'py>(
        &self,
        py: Python<'py>,
        file: PathBuf,
        confirm: bool,
        wait: f64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let progress = callable(py, progress)?;
        let wait = Duration::try_from_secs_f64(wait).map_err(|_| {
            to_exception(
                py,
                Error::invalid(format!("wait {wait} s is not a duration")),
            )
        })?;
        let done = self.run(py, progress.as_ref(), |s, p| {
            s.upgrade(&file, confirm, wait, &mut |d, t| p.report(d, t))
        })?;
        to_python(py, &done)
    }

    /// Makes the call in progress (from any thread), or the next call if none is in
    /// progress, raise CancelledError at its next request.
    fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Cancels any call in progress, waits for it and closes the link; later calls raise
    /// InvalidArgumentError.
    fn close(&self, py: Python<'_>) {
        self.cancel.cancel();
        py.detach(|| {
            let mut guard = self.lock();
            *guard = None;
            self.cancel.reset();
        });
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(sign, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(rom_write, m)?)?;
    m.add_class::<Smp>()?;
    let base = py.get_type::<BricklessError>();
    base.setattr("kind", py.None())?;
    base.setattr("code", py.None())?;
    base.setattr("help", py.None())?;
    m.add("BricklessError", base)?;
    for kind in ErrorKind::ALL {
        let class = class_of(py, kind);
        class.setattr("kind", kind.name())?;
        class.setattr("code", kind as i32)?;
        m.add(class.name()?, class)?;
    }
    Ok(())
}
