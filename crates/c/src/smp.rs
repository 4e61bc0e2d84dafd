//! SMP devices (`brickless_host::smp`) behind an opaque handle.
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use brickless_host::smp::{parse_hash, Session, SmpOptions};
use brickless_host::{Cancel, Error, ErrorKind};

use crate::{call, fill, give_string, opt_text, parse_target, path, progress, required, text};

/// One device's SMP connection. Calls on one handle run one at a time (a second caller
/// waits); `brickless_smp_cancel` is the only call that does not wait, so another thread
/// can stop the running one.
pub struct BricklessSmp {
    // The flag lives outside the lock so cancel never waits for the job it stops.
    cancel: Cancel,
    session: Mutex<Session>,
}

impl BricklessSmp {
    /// The session for one call, with the cancel flag cleared.
    fn begin(&self) -> MutexGuard<'_, Session> {
        // A panic in an earlier call left the session usable (its state is the device's).
        let guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        self.cancel.reset();
        guard
    }
}

/// # Safety
/// `h` is NULL or a live handle.
unsafe fn handle<'a>(h: *const BricklessSmp) -> Result<&'a BricklessSmp, Error> {
    // SAFETY: NULL or live, by contract.
    unsafe { h.as_ref() }.ok_or_else(|| Error::invalid("`handle` is NULL"))
}

/// Opens an SMP connection to `target` (`udp:HOST[:PORT]` or `serial:PATH[@BAUD]`) waiting
/// `timeout_s` seconds for each answer, and stores the handle in `*out` (free it with
/// `brickless_smp_close`). Nothing is sent yet: a device that is not there shows at the
/// first command (a missing serial port fails here).
///
/// # Safety
/// `target` is NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_open(
    target: *const c_char,
    timeout_s: f64,
    out: *mut *mut BricklessSmp,
) -> c_int {
    call(|| {
        let out = required(out, "out")?;
        // SAFETY: the caller's contract.
        let t = unsafe { parse_target(target, "target")? };
        let opts = SmpOptions {
            timeout: timeout_s,
            ..SmpOptions::default()
        };
        let session = Session::connect(&t, &opts)?;
        let h = Box::new(BricklessSmp {
            cancel: session.cancel_handle(),
            session: Mutex::new(session),
        });
        // SAFETY: checked not NULL; writable by contract.
        unsafe { *out = Box::into_raw(h) };
        Ok(())
    })
}

/// Closes the connection and frees the handle (NULL is ignored). No call on it may be
/// running.
///
/// # Safety
/// `h` is NULL or a handle from `brickless_smp_open` not closed before.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_close(h: *mut BricklessSmp) {
    if !h.is_null() {
        let _ = std::panic::catch_unwind(|| {
            // SAFETY: from `Box::into_raw`, by contract.
            drop(unsafe { Box::from_raw(h) })
        });
    }
}

/// Stops the call running on `h` at its next request; it returns `BRICKLESS_ERR_CANCELLED`.
/// Callable from any thread. Every other call clears the flag when it starts, so a cancel
/// with no call running has no effect.
///
/// # Safety
/// `h` is NULL (ignored) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_cancel(h: *const BricklessSmp) {
    // SAFETY: NULL or live, by contract.
    if let Some(h) = unsafe { h.as_ref() } {
        h.cancel.cancel();
    }
}

/// The device's image slots as a JSON array in `*json_out` (each: image, slot, version,
/// hash, bootable, pending, confirmed, active, permanent); free it with
/// `brickless_string_free`.
///
/// # Safety
/// `h` is NULL or live; `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_list(
    h: *const BricklessSmp,
    json_out: *mut *mut c_char,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h)? };
        let out = required(json_out, "json_out")?;
        let slots = h.begin().list()?;
        let json = serde_json::to_string(&slots)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        // SAFETY: checked not NULL; writable by contract.
        unsafe { give_string(out, &json) };
        Ok(())
    })
}

/// Uploads the signed image file `file` into the staging slot (checked before anything is
/// sent); `progress` (may be NULL) gets bytes acknowledged of the file's size.
///
/// # Safety
/// `h` is NULL or live; `file` is NULL or NUL-terminated; `progress` is NULL or callable with
/// `user` during the call.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_upload(
    h: *const BricklessSmp,
    file: *const c_char,
    progress_cb: crate::brickless_progress_fn,
    user: *mut c_void,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract.
        let (h, file) = unsafe { (handle(h)?, path(file, "file")?) };
        let mut p = progress(progress_cb, user);
        h.begin().upload_file(file, &mut p).map(drop)
    })
}

/// Marks the image whose hash is `hash_hex` (64 hex digits) for one test boot at the next
/// reset.
///
/// # Safety
/// `h` is NULL or live; `hash_hex` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_test(
    h: *const BricklessSmp,
    hash_hex: *const c_char,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract.
        let (h, hash) = unsafe { (handle(h)?, text(hash_hex, "hash_hex")?) };
        let hash = parse_hash(hash).map_err(|e| e.context("`hash_hex`"))?;
        h.begin().test(&hash).map(drop)
    })
}

/// Confirms the running image (`hash_hex` NULL) or the image `hash_hex` for good.
///
/// # Safety
/// `h` is NULL or live; `hash_hex` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_confirm(
    h: *const BricklessSmp,
    hash_hex: *const c_char,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract.
        let (h, hash) = unsafe { (handle(h)?, opt_text(hash_hex, "hash_hex")?) };
        let hash = hash
            .map(|t| parse_hash(t).map_err(|e| e.context("`hash_hex`")))
            .transpose()?;
        h.begin().confirm(hash.as_deref()).map(drop)
    })
}

/// Resets the device.
///
/// # Safety
/// `h` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_reset(h: *const BricklessSmp) -> c_int {
    call(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h)? };
        h.begin().reset()
    })
}

/// How an upgrade ended.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BricklessUpgraded {
    /// The image's version text, NUL-terminated.
    pub version: [c_char; 32],
    /// Its SHA-256, 64 lower-case hex digits, NUL-terminated.
    pub hash: [c_char; 65],
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

/// The whole upgrade: uploads the signed image `file`, marks it for a test boot, resets the
/// device, waits up to `wait_s` seconds for it to run the image, then confirms it (when
/// `confirm`). An image that already runs is not uploaded again. `progress` (may be NULL)
/// follows the upload; `out` (may be NULL) gets the outcome.
///
/// # Safety
/// `h` is NULL or live; `file` is NULL or NUL-terminated; `progress` is NULL or callable with
/// `user` during the call; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brickless_smp_upgrade(
    h: *const BricklessSmp,
    file: *const c_char,
    confirm: bool,
    wait_s: f64,
    progress_cb: crate::brickless_progress_fn,
    user: *mut c_void,
    out: *mut BricklessUpgraded,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract.
        let (h, file) = unsafe { (handle(h)?, path(file, "file")?) };
        let wait = Duration::try_from_secs_f64(wait_s)
            .map_err(|_| Error::invalid(format!("`wait_s` {wait_s} is not a number of seconds")))?;
        let mut p = progress(progress_cb, user);
        let u = h.begin().upgrade(file, confirm, wait, &mut p)?;
        // SAFETY: NULL or writable, by contract.
        if let Some(o) = unsafe { out.as_mut() } {
            fill(&mut o.version, &u.version);
            fill(&mut o.hash, &u.hash);
            o.bytes = u.bytes;
            o.requests = u.requests;
            o.resumes = u.resumes;
            o.confirmed = u.confirmed;
            o.already_running = u.already_running;
        }
        Ok(())
    })
}
