//! The update engine: slot layout, power-safe state, swap/overwrite strategies, boot decision.
//!
//! `no_std`, no allocation, generic over an `embedded-storage` [`NorFlash`] (the real driver
//! or the simulator's model) and a small [`ImageCheck`] (the real one calls
//! `brickless-image`; firmware picks the crypto, tests can use a fast one).
//!
//! What it guarantees, for any power cut at or inside any flash operation it issues (and
//! any number of further cuts while it recovers):
//! - it only hands a verified image to the caller to boot; when no slot verifies it says
//!   [`BootDecision::Recovery`], it never boots garbage;
//! - the image booted is the old one or the new one; a confirmed image is never lost; an
//!   unconfirmed trial image is reverted at the next reset;
//! - updates whose version or security counter is below what was confirmed are refused;
//! - each write unit is programmed at most once between erases, the newest state record is
//!   never erased, and unreadable (torn, ECC-faulting) units read as "not written";
//! - every boot after a cut finishes the interrupted work, so the device is stable after a
//!   bounded number of boots.
//!
//! How: see `README.md` in this crate, `state.rs` (records) and `strategy.rs` (moves).
#![no_std]
#![forbid(unsafe_code)]

pub mod engine;
pub mod layout;
#[cfg(feature = "mcuboot")]
pub mod mcuboot;
pub mod state;
pub mod strategy;

pub use engine::{BootDecision, BootTarget, Engine, RecoveryReason, UpgradeMode, VerifyPolicy};
pub use layout::{default_layout, Layout, LayoutError, LayoutSpec, Region, StrategyKind};
pub use state::{BootState, Phase};

use embedded_storage::nor_flash::ReadNorFlash;

/// An image version as MCUboot's header carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ImageVersion {
    pub major: u8,
    pub minor: u8,
    pub revision: u16,
    pub build: u32,
}

impl ImageVersion {
    /// Major, minor and revision packed so that `<` orders versions (the build number is not
    /// compared, as in MCUboot's default downgrade check).
    pub fn packed(&self) -> u64 {
        (u64::from(self.major) << 24) | (u64::from(self.minor) << 16) | u64::from(self.revision)
    }
}

/// What the engine needs to know about a verified image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub version: ImageVersion,
    /// Security counter (MCUboot TLV 0x50), 0 when absent.
    pub security_counter: u32,
    /// Bytes the image occupies from the slot start (header, payload, TLVs).
    pub size: u32,
    /// SHA-256 of the image as its TLV states it.
    pub hash: [u8; 32],
}

/// Checks the image at a flash offset: hash and signature. Implementations must not panic on
/// any flash content and must treat read errors (torn units) as "not valid".
pub trait ImageCheck<F: ReadNorFlash> {
    /// `Some` only if the image at `offset` (at most `max_size` bytes) verifies.
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo>;
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

/// Engine errors. None of them means the device cannot boot: [`Engine::boot`] turns what it can
/// into a decision; these reach the caller only for flash failures and application requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A flash operation failed (on the model: power was cut).
    Flash,
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
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Flash => "a flash operation failed",
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
        })
    }
}
