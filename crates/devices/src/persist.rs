//! A virtual device's state kept across runs: the flash in a file (the flash model's own
//! format, which names the part), and the protection the option bytes hold (RDP, WRP) in a
//! text file next to it.

use std::path::{Path, PathBuf};

use brickless_flash::Part;
use brickless_flash_model::{PersistError, SimFlash};

/// Why a flash file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlashFileError {
    /// The file exists but could not be read, or holds another part or a damaged dump.
    #[error("could not use the flash file {}", path.display())]
    Load {
        /// The flash file.
        path: PathBuf,
        /// Why loading it failed.
        #[source]
        source: PersistError,
    },
    /// The file did not exist and an erased one could not be written.
    #[error("could not create the flash file {}", path.display())]
    Create {
        /// The flash file.
        path: PathBuf,
        /// Why writing it failed.
        #[source]
        source: PersistError,
    },
}

/// The flash of `part` kept in `path`: loaded (and checked to hold the same part) when the
/// file exists, else created erased.
pub fn open_flash(part: &'static Part, path: &Path) -> Result<SimFlash, FlashFileError> {
    let mut flash = SimFlash::new(part);
    if path.exists() {
        flash.load(path).map_err(|source| FlashFileError::Load {
            path: path.to_path_buf(),
            source,
        })?;
    } else {
        flash.save(path).map_err(|source| FlashFileError::Create {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(flash)
}

/// Where the protection state of the flash file `flash` lives: `FLASH.options`.
pub fn options_path(flash: &Path) -> PathBuf {
    let mut p = flash.as_os_str().to_owned();
    p.push(".options");
    PathBuf::from(p)
}

/// `rdp=1` and `wrp=3,4` lines; a missing or unreadable file means no protection.
pub fn load_options(path: &Path) -> Option<(bool, Vec<u16>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut rdp = false;
    let mut wrp = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("rdp=") {
            rdp = v.trim() == "1";
        } else if let Some(v) = line.strip_prefix("wrp=") {
            wrp = v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        }
    }
    Some((rdp, wrp))
}

/// Writes what [`load_options`] reads (best effort: the flash file is what matters).
pub fn save_options(path: &Path, rdp: bool, wrp: &[u16]) {
    let list: Vec<String> = wrp.iter().map(u16::to_string).collect();
    let _ = std::fs::write(
        path,
        format!("rdp={}\nwrp={}\n", u8::from(rdp), list.join(",")),
    );
}
