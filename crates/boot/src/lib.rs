#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

pub mod bootloader;
pub mod handoff;
pub mod layout;
#[cfg(feature = "mcuboot")]
pub mod mcuboot;
pub mod multi;
mod slots;
pub mod state;
pub mod strategy;
pub mod trailer;
pub mod updater;

pub use bootloader::{
    BootDecision, BootEvent, BootLoader, BootTarget, RecoveryReason, VerifyPolicy,
};
pub use layout::{
    default_layout, firmware_layout, layout_with_bootloader, Layout, LayoutError, LayoutSpec,
    Region,
};
pub use state::{BootState, Phase};
pub use strategy::{BankOps, StrategyKind};
pub use updater::{NoCheck, Updater, UpgradeMode};

use embedded_storage::nor_flash::{NorFlashErrorKind, ReadNorFlash};

/// An image version as MCUboot's header carries it (the image crate's, without its crypto).
pub use brickless_image::ImageVersion;

/// What the engine needs to know about a verified image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The header's version (MCUboot `ih_ver`). An update's major, minor and revision must
    /// not be below the recorded floor; the build number does not count.
    pub version: ImageVersion,
    /// Security counter (MCUboot TLV 0x50), 0 when absent.
    pub security_counter: u32,
    /// Bytes the image occupies from the slot start (header, payload, TLVs).
    pub size: u32,
    /// The image's SHA-256 as its SHA256 TLV states it (what `imgtool dumpinfo` and mcumgr
    /// show), on every path, whether the image was fully verified or matched a recorded hash.
    pub hash: [u8; 32],
    /// How the header says the image runs; the engine boots only what can run in place from
    /// the primary slot.
    pub exec: Exec,
}

/// How an image's header says it runs (MCUboot header flags and load address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Exec {
    /// Executes in place from whichever slot it is installed into.
    #[default]
    InPlace,
    /// Linked to run at this flash address only (MCUboot `ROM_FIXED`).
    FixedAt(u32),
    /// The payload is encrypted (MCUboot `ENCRYPTED_AES128/256`): this engine does not decrypt.
    Encrypted,
    /// Marked not bootable (MCUboot `NON_BOOTABLE`): data for another image, not code.
    NonBootable,
    /// Must be copied to RAM first (MCUboot `RAM_LOAD`): not supported by this engine.
    RamLoad,
    /// The payload is compressed (MCUboot `COMPRESSED_LZMA1/2`): not supported by this engine.
    Compressed,
}

/// Why a verified image cannot run from the primary slot of this layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotRunnable {
    /// Encrypted payload.
    Encrypted,
    /// Marked not bootable.
    NonBootable,
    /// Needs loading into RAM.
    RamLoad,
    /// Compressed payload.
    Compressed,
    /// Linked for another address than the primary slot's.
    WrongAddress {
        /// The address the image was linked for.
        built_for: u32,
        /// The primary slot's address, where it would run.
        slot: u32,
    },
}

impl Exec {
    /// How an image header's flags (and load address) say the image runs. The engine refuses
    /// all but in-place execution at the primary slot's address.
    pub fn from_header(h: &brickless_image::ImageHeader) -> Exec {
        use brickless_image::header::flags;
        if h.flags & (flags::ENCRYPTED_AES128 | flags::ENCRYPTED_AES256) != 0 {
            Exec::Encrypted
        } else if h.flags & flags::NON_BOOTABLE != 0 {
            Exec::NonBootable
        } else if h.flags & flags::RAM_LOAD != 0 {
            Exec::RamLoad
        } else if h.flags & (flags::COMPRESSED_LZMA1 | flags::COMPRESSED_LZMA2) != 0 {
            Exec::Compressed
        } else if h.flags & flags::ROM_FIXED != 0 {
            Exec::FixedAt(h.load_addr)
        } else {
            Exec::InPlace
        }
    }

    /// Whether an image with these properties runs from a primary slot at `slot`.
    pub fn runs_at(self, slot: u32) -> Result<(), NotRunnable> {
        match self {
            Exec::InPlace => Ok(()),
            Exec::FixedAt(a) if a == slot => Ok(()),
            Exec::FixedAt(built_for) => Err(NotRunnable::WrongAddress { built_for, slot }),
            Exec::Encrypted => Err(NotRunnable::Encrypted),
            Exec::NonBootable => Err(NotRunnable::NonBootable),
            Exec::RamLoad => Err(NotRunnable::RamLoad),
            Exec::Compressed => Err(NotRunnable::Compressed),
        }
    }
}

/// Checks the image at a flash offset: hash and signature. Implementations must not panic on
/// any flash content and must treat read errors (torn units) as "not valid".
pub trait ImageCheck<F: ReadNorFlash> {
    /// `Some` only if the image at `offset` (at most `max_size` bytes) verifies.
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo>;

    /// The versions the image at `offset` requires of the other images of its group
    /// (MCUboot DEPENDENCY TLVs), each handed to `visit` as (image index, lowest version);
    /// `false` when they cannot be read. A format without dependencies has none.
    fn dependencies(
        &mut self,
        _flash: &mut F,
        _offset: u32,
        _max_size: u32,
        _visit: &mut dyn FnMut(u8, ImageVersion),
    ) -> bool {
        true
    }

    /// Whether an image's security counter passes the anti-rollback floor. An image group
    /// ([`multi::GroupCheck`]) compares each image's own counter.
    fn counter_passes(&self, counter: u32, floor: u32) -> bool {
        counter >= floor
    }

    /// The floor after keeping an image with `counter`.
    fn raise_floor(&self, floor: u32, counter: u32) -> u32 {
        floor.max(counter)
    }
}

/// Board hooks the engine calls during long work.
pub trait Platform {
    /// Called before every erase and every copied unit (a watchdog refresh).
    fn tick(&mut self) {}
}

/// A platform with nothing to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPlatform;
impl Platform for NoPlatform {}

/// Engine errors. None of them means the device cannot boot: [`BootLoader::boot`] turns what it can
/// into a decision; these reach the caller only for flash failures and application requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A flash operation failed, with the driver's error kind (on the model a power cut is
    /// `Other`; a refusal with power on, e.g. a misaligned write, keeps its own kind).
    Flash(NorFlashErrorKind),
    /// Flash content contradicts the recorded state (hostile or damaged flash).
    Corrupt,
    /// The copy buffer is too small or not a multiple of the write unit.
    BufferSize,
    /// The staged image does not verify.
    InvalidImage,
    /// The staged image's version or security counter is below what is allowed.
    Downgrade,
    /// The request does not fit the current phase (e.g. an update is already in flight).
    Busy,
    /// A test (revertible) upgrade was asked of a strategy that cannot revert.
    RevertUnsupported,
    /// Staging was asked while the staging area holds what the engine still needs: the
    /// revert image of a running trial, or an update already requested.
    StagingLocked,
    /// Staged bytes would fall outside the staging area.
    OutOfRange,
    /// The image verifies but cannot run from the primary slot (header flags or address).
    NotRunnable(NotRunnable),
    /// The layout swaps banks, but the engine was given no bank-swap control.
    BankSwapUnavailable,
}

impl From<NotRunnable> for Error {
    fn from(r: NotRunnable) -> Self {
        Error::NotRunnable(r)
    }
}

impl core::fmt::Display for NotRunnable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            NotRunnable::Encrypted => f.write_str("the image is encrypted; this bootloader does not decrypt"),
            NotRunnable::NonBootable => f.write_str("the image is marked non-bootable"),
            NotRunnable::RamLoad => f.write_str("the image must be loaded into RAM; not supported"),
            NotRunnable::Compressed => f.write_str("the image is compressed; not supported"),
            NotRunnable::WrongAddress { built_for, slot } => write!(
                f,
                "the image is linked to run at {built_for:#010x} but the primary slot is at {slot:#010x}"
            ),
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self {
            Error::Flash(kind) => return write!(f, "a flash operation failed ({kind:?})"),
            Error::NotRunnable(r) => return write!(f, "the staged image cannot run here: {r}"),
            Error::Corrupt => "flash content contradicts the recorded state",
            Error::BufferSize => {
                "the copy buffer must be at least two write units and a multiple of the write unit"
            }
            Error::InvalidImage => "the staged image does not verify",
            Error::Downgrade => {
                "the staged image is older than allowed (version or security counter)"
            }
            Error::Busy => "another update is in flight; confirm or let it finish first",
            Error::RevertUnsupported => {
                "this layout's strategy (overwrite) cannot revert: request a permanent upgrade"
            }
            Error::StagingLocked => {
                "the staging area holds the running trial's revert image or a requested update: \
                 confirm the running image (or let the update finish) before staging another"
            }
            Error::OutOfRange => "the staged bytes would fall outside the staging area",
            Error::BankSwapUnavailable => {
                "this layout swaps banks, but the flash given has no bank-swap control: build \
                 the bootloader with BootLoader::with_bank_swap over a flash implementing BankSwap"
            }
        };
        f.write_str(text)
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::NotRunnable(r) => Some(r),
            _ => None,
        }
    }
}

impl core::error::Error for NotRunnable {}
