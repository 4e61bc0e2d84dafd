//! Images: sign, verify, inspect (`brickless_host::image`).
use std::ffi::{c_char, c_int};
use std::path::Path;

use brickless_host::image::{self, SignSpec};
use brickless_host::Error;

use crate::{call, fill, give_string, opt_text, path, required};

/// How to sign; get the defaults from `brickless_sign_options_default` and change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BricklessSignOptions {
    /// `"MAJOR.MINOR.REVISION[+BUILD]"`, e.g. `"1.2.3"`; NULL means `"0.0.0"`. Only read
    /// during the call.
    pub version: *const c_char,
    /// Header size, at least 32 (default 0x200); the vector table must be aligned after it.
    pub header_size: u32,
    /// Prepend the header (default) instead of overwriting zeros at the input's start.
    pub pad_header: bool,
    /// Slot size the image must fit (default 0x20000).
    pub slot_size: u32,
    /// Flash write size: 1, 2, 4, 8 (default), 16 or 32.
    pub align: u32,
    /// Pad to the slot and mark the image confirmed (default false).
    pub confirm: bool,
}

/// The signing defaults (version NULL, i.e. `0.0.0`).
#[no_mangle]
pub extern "C" fn brickless_sign_options_default() -> BricklessSignOptions {
    let d = SignSpec::default();
    BricklessSignOptions {
        version: std::ptr::null(),
        header_size: d.header_size,
        pad_header: d.pad_header,
        slot_size: d.slot_size,
        align: d.align,
        confirm: d.confirm,
    }
}

/// What `brickless_verify` found.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BricklessVerified {
    /// The image's version text, NUL-terminated.
    pub version: [c_char; 32],
    /// The image's SHA-256, 64 lower-case hex digits, NUL-terminated.
    pub hash: [c_char; 65],
    /// Index in `keys` of the key that signed it; -1 when no key was given (only the hash
    /// was checked).
    pub key_index: i32,
}

/// Signs the firmware file `input` (BIN, Intel HEX or ELF) into the MCUboot image
/// `output` with the private key PEM `key` (NULL: unsigned, hash only). `opts` NULL: the
/// defaults. The output is written whole or not at all.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `opts` is NULL or valid (its `version` too).
#[no_mangle]
pub unsafe extern "C" fn brickless_sign(
    input: *const c_char,
    output: *const c_char,
    key: *const c_char,
    opts: *const BricklessSignOptions,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract for each argument.
        let (input, output) = unsafe { (path(input, "input")?, path(output, "output")?) };
        // SAFETY: as above.
        let key = unsafe { opt_text(key, "key")? }.map(Path::new);
        let mut spec = SignSpec::default();
        // SAFETY: NULL or valid, by contract.
        if let Some(o) = unsafe { opts.as_ref() } {
            // SAFETY: as above.
            if let Some(v) = unsafe { opt_text(o.version, "opts->version")? } {
                spec.version = v.to_string();
            }
            spec.header_size = o.header_size;
            spec.pad_header = o.pad_header;
            spec.slot_size = o.slot_size;
            spec.align = o.align;
            spec.confirm = o.confirm;
        }
        image::sign_file(input, output, key, &spec).map(drop)
    })
}

/// Verifies the image file `image` against `n_keys` key PEM files (public or private);
/// with no key only its hash is checked. On success fills `out` (may be NULL).
/// A signature by none of the keys is `BRICKLESS_ERR_VERIFICATION`.
///
/// # Safety
/// `image` is NULL or NUL-terminated; `keys` points to `n_keys` such strings (or is NULL
/// when `n_keys` is 0); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brickless_verify(
    image: *const c_char,
    keys: *const *const c_char,
    n_keys: usize,
    out: *mut BricklessVerified,
) -> c_int {
    call(|| {
        // SAFETY: the caller's contract.
        let image = unsafe { path(image, "image")? };
        let mut key_paths = Vec::with_capacity(n_keys);
        if n_keys > 0 {
            if keys.is_null() {
                return Err(Error::invalid(format!(
                    "`keys` is NULL but `n_keys` is {n_keys}"
                )));
            }
            // SAFETY: `keys` holds `n_keys` pointers, by contract.
            let list = unsafe { std::slice::from_raw_parts(keys, n_keys) };
            for (i, k) in list.iter().enumerate() {
                // SAFETY: each is NULL or NUL-terminated, by contract.
                key_paths.push(unsafe { path(*k, &format!("keys[{i}]"))? });
            }
        }
        let v = image::verify_file(image, &key_paths)?;
        // SAFETY: NULL or writable, by contract.
        if let Some(o) = unsafe { out.as_mut() } {
            fill(&mut o.version, &v.version);
            fill(&mut o.hash, &v.hash);
            o.key_index = v
                .key_index
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or(-1);
        }
        Ok(())
    })
}

/// Describes the image file `image` as JSON (version, hash, hash_matches, header_size,
/// payload_size, image_size, flags, security_counter, signed, tlvs) in `*json_out`; free
/// it with `brickless_string_free`. It does not check the signature (see
/// `brickless_verify`).
///
/// # Safety
/// `image` is NULL or NUL-terminated; `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brickless_inspect(
    image: *const c_char,
    json_out: *mut *mut c_char,
) -> c_int {
    call(|| {
        let out = required(json_out, "json_out")?;
        // SAFETY: the caller's contract.
        let image = unsafe { path(image, "image")? };
        let summary = image::inspect_file(image)?;
        let json = serde_json::to_string(&summary)
            .map_err(|e| Error::new(brickless_host::ErrorKind::Internal, e.to_string()))?;
        // SAFETY: checked not NULL; writable by contract.
        unsafe { give_string(out, &json) };
        Ok(())
    })
}
