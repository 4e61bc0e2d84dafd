//! brickless for C: a thin C ABI over `brickless_host`; see the crate README and
//! `include/brickless.h`.
//!
//! Every exported function catches panics (they become `BRICKLESS_ERR_INTERNAL`), checks
//! its pointers and strings (a NULL, non-UTF-8 or malformed argument is
//! `BRICKLESS_ERR_INVALID_ARGUMENT` naming the parameter) and leaves the message of its
//! failure in a thread-local slot read by `brickless_last_error_message`.
// The C names are the API.
#![allow(non_camel_case_types)]

mod image;
mod rom;
mod smp;

pub use image::*;
pub use rom::*;
pub use smp::*;

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use brickless_host::{Error, ErrorKind};

/// Major version of this library (semantic versioning).
pub const BRICKLESS_VERSION_MAJOR: u32 = 0;
/// Minor version of this library.
pub const BRICKLESS_VERSION_MINOR: u32 = 1;
/// Patch version of this library.
pub const BRICKLESS_VERSION_PATCH: u32 = 0;
/// Version of the C ABI (structs, signatures); the shared library's soname carries it
/// (`libbrickless_c.so.0`). Compare it with `brickless_abi_version` at start-up.
pub const BRICKLESS_ABI_VERSION: u32 = 0;

/// Success.
pub const BRICKLESS_OK: c_int = 0;
/// An argument is NULL, not UTF-8, malformed or out of range (a version, a hash, a target).
pub const BRICKLESS_ERR_INVALID_ARGUMENT: c_int = 1;
/// A file could not be read or written.
pub const BRICKLESS_ERR_FILE: c_int = 2;
/// The file is not a valid MCUboot image (truncated, bad magic, hash mismatch).
pub const BRICKLESS_ERR_BAD_IMAGE: c_int = 3;
/// A key file could not be read or is not a supported key.
pub const BRICKLESS_ERR_BAD_KEY: c_int = 4;
/// The image does not verify with the keys given (unknown key, bad signature).
pub const BRICKLESS_ERR_VERIFICATION: c_int = 5;
/// The port, socket or device could not be opened, or the link failed.
pub const BRICKLESS_ERR_CONNECTION: c_int = 6;
/// The device did not answer in time.
pub const BRICKLESS_ERR_TIMEOUT: c_int = 7;
/// The device refused the request.
pub const BRICKLESS_ERR_REFUSED: c_int = 8;
/// The device answered something its protocol does not allow.
pub const BRICKLESS_ERR_PROTOCOL: c_int = 9;
/// The device holds or runs something other than what was sent.
pub const BRICKLESS_ERR_MISMATCH: c_int = 10;
/// The job was cancelled.
pub const BRICKLESS_ERR_CANCELLED: c_int = 11;
/// This build or this device cannot do that.
pub const BRICKLESS_ERR_UNSUPPORTED: c_int = 12;
/// A bug in brickless (a panic, caught before it reached the caller).
pub const BRICKLESS_ERR_INTERNAL: c_int = 13;

/// Called as a job goes: `done` of `total` bytes so far, and the `user` pointer given with
/// it. Called on the thread that called the job; it must not call into the same handle.
pub type brickless_progress_fn =
    Option<unsafe extern "C" fn(done: u64, total: u64, user: *mut c_void)>;

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the package version holds a NUL"),
    };

/// The library's version, `"MAJOR.MINOR.PATCH"` (static; never free it).
#[no_mangle]
pub extern "C" fn brickless_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The library's `BRICKLESS_ABI_VERSION`; a program built against another header must not
/// use it.
#[no_mangle]
pub extern "C" fn brickless_abi_version() -> u32 {
    BRICKLESS_ABI_VERSION
}

struct LastError {
    message: CString,
    help: Option<CString>,
}

thread_local! {
    static LAST: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

fn c_string(s: &str) -> CString {
    // Messages quote outside data; a NUL in it must not cut or fail the message.
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

fn set_last(e: Option<&Error>) {
    let v = e.map(|e| LastError {
        message: c_string(&e.message),
        help: e.help.map(c_string),
    });
    let _ = LAST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = v;
        }
    });
}

const EMPTY: &CStr = c"";

/// The message of the last failed call on this thread (`""` after a call that succeeded).
/// Valid until the next brickless call on this thread; never free it.
#[no_mangle]
pub extern "C" fn brickless_last_error_message() -> *const c_char {
    LAST.try_with(|l| match &*l.borrow() {
        Some(e) => e.message.as_ptr(),
        None => EMPTY.as_ptr(),
    })
    .unwrap_or(EMPTY.as_ptr())
}

/// What to do about the last failure on this thread, or NULL when there is no hint.
/// Valid until the next brickless call on this thread; never free it.
#[no_mangle]
pub extern "C" fn brickless_last_error_help() -> *const c_char {
    LAST.try_with(|l| match &*l.borrow() {
        Some(LastError { help: Some(h), .. }) => h.as_ptr(),
        _ => std::ptr::null(),
    })
    .unwrap_or(std::ptr::null())
}

/// The stable name of an error code (`"ok"`, `"bad_image"`, `"timeout"`, …; `"unknown"`
/// for a number that is none). Static; never free it.
#[no_mangle]
pub extern "C" fn brickless_error_name(code: c_int) -> *const c_char {
    static NAMES: std::sync::OnceLock<Vec<(c_int, CString)>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut v = vec![(BRICKLESS_OK, c_string("ok"))];
        v.extend(
            ErrorKind::ALL
                .iter()
                .map(|k| (*k as c_int, c_string(k.name()))),
        );
        v
    });
    names
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(c"unknown".as_ptr(), |(_, n)| n.as_ptr())
}

/// Frees a string this library returned through a `char**` (NULL is ignored).
///
/// # Safety
/// `s` is NULL or a string from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn brickless_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the caller passes a pointer from `CString::into_raw` (see `give_string`).
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Runs one call: clears the last error, catches a panic, turns the result into a code.
pub(crate) fn call(f: impl FnOnce() -> Result<(), Error>) -> c_int {
    set_last(None);
    let e = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return BRICKLESS_OK,
        Ok(Err(e)) => e,
        Err(panic) => Error::new(
            ErrorKind::Internal,
            brickless_host::gang::panic_text(&panic),
        ),
    };
    set_last(Some(&e));
    e.kind as c_int
}

/// A required string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn text<'a>(p: *const c_char, name: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::invalid(format!("`{name}` is NULL")));
    }
    // SAFETY: not NULL, and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::invalid(format!("`{name}` is not valid UTF-8")))
}

/// An optional string argument (NULL is `None`).
///
/// # Safety
/// As `text`.
pub(crate) unsafe fn opt_text<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { text(p, name) }.map(Some)
    }
}

/// A required path argument (UTF-8).
///
/// # Safety
/// As `text`.
pub(crate) unsafe fn path<'a>(p: *const c_char, name: &str) -> Result<&'a Path, Error> {
    // SAFETY: forwarded contract.
    let t = unsafe { text(p, name) }?;
    if t.is_empty() {
        return Err(Error::invalid(format!("`{name}` is an empty path")));
    }
    Ok(Path::new(t))
}

/// Parses a target string (`serial:PATH[@BAUD]`, `udp:HOST[:PORT]`, `tcp:HOST:PORT`).
///
/// # Safety
/// As `text`.
pub(crate) unsafe fn parse_target(
    p: *const c_char,
    name: &str,
) -> Result<brickless_host::target::Target, Error> {
    // SAFETY: forwarded contract.
    let t = unsafe { text(p, name)? };
    brickless_host::target::Target::parse(t, 115_200).map_err(|e| e.context(format!("`{name}`")))
}

/// Checks that a required out pointer is not NULL.
pub(crate) fn required<T>(p: *mut T, name: &str) -> Result<*mut T, Error> {
    if p.is_null() {
        Err(Error::invalid(format!("`{name}` is NULL")))
    } else {
        Ok(p)
    }
}

/// Hands a string to the caller through `out` (to free with `brickless_string_free`).
///
/// # Safety
/// `out` is a valid, writable pointer.
pub(crate) unsafe fn give_string(out: *mut *mut c_char, s: &str) {
    // SAFETY: the caller checked `out`.
    unsafe { *out = c_string(s).into_raw() };
}

/// Copies `s` into a fixed C buffer, cut to fit, always NUL-terminated.
pub(crate) fn fill(buf: &mut [c_char], s: &str) {
    let n = s.len().min(buf.len().saturating_sub(1));
    for (d, b) in buf.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = *b as c_char;
    }
    if let Some(end) = buf.get_mut(n) {
        *end = 0;
    }
}

/// A C progress callback as the closure the host jobs take.
pub(crate) fn progress(cb: brickless_progress_fn, user: *mut c_void) -> impl FnMut(u64, u64) {
    move |done, total| {
        if let Some(f) = cb {
            // SAFETY: the caller gave a valid callback and its user pointer for this call.
            unsafe { f(done, total, user) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_host_kinds() {
        for k in ErrorKind::ALL {
            let code = match k {
                ErrorKind::InvalidArgument => BRICKLESS_ERR_INVALID_ARGUMENT,
                ErrorKind::File => BRICKLESS_ERR_FILE,
                ErrorKind::BadImage => BRICKLESS_ERR_BAD_IMAGE,
                ErrorKind::BadKey => BRICKLESS_ERR_BAD_KEY,
                ErrorKind::Verification => BRICKLESS_ERR_VERIFICATION,
                ErrorKind::Connection => BRICKLESS_ERR_CONNECTION,
                ErrorKind::Timeout => BRICKLESS_ERR_TIMEOUT,
                ErrorKind::Refused => BRICKLESS_ERR_REFUSED,
                ErrorKind::Protocol => BRICKLESS_ERR_PROTOCOL,
                ErrorKind::Mismatch => BRICKLESS_ERR_MISMATCH,
                ErrorKind::Cancelled => BRICKLESS_ERR_CANCELLED,
                ErrorKind::Unsupported => BRICKLESS_ERR_UNSUPPORTED,
                ErrorKind::Internal => BRICKLESS_ERR_INTERNAL,
            };
            assert_eq!(code, k as c_int, "{k:?}");
            // SAFETY: a static string from the library.
            let name = unsafe { CStr::from_ptr(brickless_error_name(code)) };
            assert_eq!(name.to_str().unwrap(), k.name());
        }
        assert_eq!(ErrorKind::ALL.len(), BRICKLESS_ERR_INTERNAL as usize);
    }

    #[test]
    fn the_version_constants_are_the_package_version() {
        assert_eq!(
            format!(
                "{BRICKLESS_VERSION_MAJOR}.{BRICKLESS_VERSION_MINOR}.{BRICKLESS_VERSION_PATCH}"
            ),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            env!("CARGO_PKG_VERSION_MAJOR").parse::<u32>().unwrap(),
            BRICKLESS_VERSION_MAJOR
        );
    }

    #[test]
    fn a_panic_is_an_internal_error_with_a_message() {
        let rc = call(|| panic!("boom"));
        assert_eq!(rc, BRICKLESS_ERR_INTERNAL);
        // SAFETY: the thread's last error.
        let m = unsafe { CStr::from_ptr(brickless_last_error_message()) };
        assert!(m.to_str().unwrap().contains("boom"));
        assert_eq!(call(|| Ok(())), BRICKLESS_OK);
        // SAFETY: as above.
        let m = unsafe { CStr::from_ptr(brickless_last_error_message()) };
        assert!(m.to_bytes().is_empty());
    }

    #[test]
    fn fill_cuts_and_terminates() {
        let mut b = [1 as c_char; 4];
        fill(&mut b, "abcdef");
        assert_eq!(b, [b'a' as c_char, b'b' as c_char, b'c' as c_char, 0]);
        fill(&mut b, "");
        assert_eq!(b[0], 0);
    }
}
