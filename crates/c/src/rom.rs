//! ST ROM bootloaders (`brickless_host::rom`), and the cancel token their jobs take.
use std::ffi::{c_char, c_int, c_void};

use brickless_host::rom::{self, RomOptions, RomPhase};
use brickless_host::Cancel;

use crate::{call, fill, parse_target, path};

/// A flag that stops a job at its next request; set it from any thread. Create it with
/// `brickless_cancel_new`, free it with `brickless_cancel_free` after the job returned.
pub struct BricklessCancel(Cancel);

/// A new cancel token, not set (free it with `brickless_cancel_free`); NULL only if
/// memory ran out.
#[no_mangle]
pub extern "C" fn brickless_cancel_new() -> *mut BricklessCancel {
    std::panic::catch_unwind(|| Box::into_raw(Box::new(BricklessCancel(Cancel::new()))))
        .unwrap_or(std::ptr::null_mut())
}

/// Sets the token: the job holding it stops at its next request and returns
/// `BRICKLESS_ERR_CANCELLED`. Callable from any thread while the job runs (NULL is ignored).
///
/// # Safety
/// `c` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn brickless_cancel_set(c: *const BricklessCancel) {
    // SAFETY: NULL or live, by contract.
    if let Some(c) = unsafe { c.as_ref() } {
        c.0.cancel();
    }
}

/// Clears the token so it can stop another job (jobs do not clear it themselves: a token set
/// before a job starts stops it at once).
///
/// # Safety
/// `c` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn brickless_cancel_reset(c: *const BricklessCancel) {
    // SAFETY: NULL or live, by contract.
    if let Some(c) = unsafe { c.as_ref() } {
        c.0.reset();
    }
}

/// Frees a token (NULL is ignored); no job may still hold it.
///
/// # Safety
/// `c` is NULL or a token from `brickless_cancel_new` not freed before.
#[no_mangle]
pub unsafe extern "C" fn brickless_cancel_free(c: *mut BricklessCancel) {
    if !c.is_null() {
        // SAFETY: from `Box::into_raw`, by contract.
        drop(unsafe { Box::from_raw(c) });
    }
}

/// How to talk to the ROM bootloader; get the defaults from
/// `brickless_rom_options_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BricklessRomOptions {
    /// Baud rate of a TCP target's modelled line (a serial target's own `@BAUD`, default
    /// 115200, wins).
    pub baud: u32,
    /// 8E1 as the ROM bootloader wants (default); false: 8N1, for ptys and adapters without
    /// parity.
    pub parity_even: bool,
    /// Milliseconds to wait for each answer on top of line time (default 500).
    pub timeout_ms: u32,
    /// Attempts after a failed read, erase or refused write (default 2).
    pub retries: u8,
    /// Read back (or CRC) what was written (default true).
    pub verify: bool,
    /// Use `address` for a BIN file (default false: the start of the part's flash).
    pub has_address: bool,
    /// Where a BIN file goes when `has_address`.
    pub address: u32,
    /// Start the firmware afterwards (default false).
    pub go: bool,
}

/// The ROM defaults: 8E1, 500 ms, 2 retries, verify, BIN at the flash start, no Go.
#[no_mangle]
pub extern "C" fn brickless_rom_options_default() -> BricklessRomOptions {
    let d = RomOptions::default();
    BricklessRomOptions {
        baud: d.baud,
        parity_even: d.parity_even,
        timeout_ms: d.timeout_ms,
        retries: d.retries,
        verify: d.verify,
        has_address: d.address.is_some(),
        address: d.address.unwrap_or(0),
        go: d.go,
    }
}

/// What part of a ROM write a progress report is about.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BricklessRomPhase {
    /// Erasing: progress counts pages.
    Erase = 0,
    /// Writing: progress counts bytes.
    Write = 1,
    /// Verifying: progress counts bytes.
    Verify = 2,
}

/// Called as a ROM write goes: `done` of `total` in `phase`, on the calling thread.
pub type brickless_rom_progress_fn = Option<
    unsafe extern "C" fn(phase: BricklessRomPhase, done: u64, total: u64, user: *mut c_void),
>;

/// What a ROM write did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BricklessRomReport {
    /// The part's bootloader, from the device table (e.g. `"STM32L07x/L08x"`), NUL-terminated.
    pub device: [c_char; 64],
    /// Bytes of the file's segments.
    pub bytes: u64,
    /// Segments written.
    pub segments: u64,
    /// Bytes not sent because the erase already left them so.
    pub skipped: u64,
    /// Read back (or CRC-checked).
    pub verified: bool,
}

/// Writes the firmware `file` (BIN, Intel HEX, ELF or DfuSe `.dfu`) through the ROM
/// bootloader at `target` (`serial:PATH[@BAUD]` or `tcp:HOST:PORT`): erases the pages it
/// touches, writes, verifies, and with `go` starts it. The file is checked before the device
/// is touched. `opts`, `progress`, `cancel` and `out` may be NULL.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `opts`, `cancel` and `out` are NULL or valid;
/// `progress` is NULL or a function that may be called with `user` during the call.
#[no_mangle]
pub unsafe extern "C" fn brickless_rom_write(
    target: *const c_char,
    file: *const c_char,
    opts: *const BricklessRomOptions,
    progress: brickless_rom_progress_fn,
    user: *mut c_void,
    cancel: *const BricklessCancel,
    out: *mut BricklessRomReport,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract for each argument.
        let (t, file) = unsafe { (parse_target(target, "target")?, path(file, "file")?) };
        let mut o = RomOptions::default();
        // SAFETY: NULL or valid, by contract.
        if let Some(c) = unsafe { opts.as_ref() } {
            o = RomOptions {
                baud: c.baud,
                parity_even: c.parity_even,
                timeout_ms: c.timeout_ms,
                retries: c.retries,
                verify: c.verify,
                address: c.has_address.then_some(c.address),
                go: c.go,
            };
        }
        // SAFETY: NULL or live, by contract.
        let cancel = unsafe { cancel.as_ref() }.map_or_else(Cancel::new, |c| c.0.clone());
        let mut report = |phase: RomPhase, done: u32, total: u32| {
            let phase = match phase {
                RomPhase::Erase => BricklessRomPhase::Erase,
                RomPhase::Write => BricklessRomPhase::Write,
                RomPhase::Verify => BricklessRomPhase::Verify,
            };
            if let Some(f) = progress {
                // SAFETY: the caller gave a valid callback and its user pointer.
                unsafe { f(phase, u64::from(done), u64::from(total), user) }
            }
        };
        let w = rom::write_file(&t, file, &o, &mut report, &cancel)?;
        // SAFETY: NULL or writable, by contract.
        if let Some(r) = unsafe { out.as_mut() } {
            fill(&mut r.device, &w.device);
            r.bytes = w.bytes;
            r.segments = w.segments as u64;
            r.skipped = w.skipped;
            r.verified = w.verified;
        }
        Ok(())
    })
}
