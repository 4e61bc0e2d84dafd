//! MCUboot image format (header, TLVs, trailer): parse and stream-verify without
//! allocation; with `std`, build and sign images and handle keys in imgtool's formats.
//!
//! What it guarantees:
//! - The `no_std` part ([`ImageHeader`], [`ImageView`], [`verify::verify_image`],
//!   [`trailer`]) never allocates and never panics on any input bytes; every malformed
//!   or forged image is rejected with its own [`ImageError`] / [`VerifyError`] variant,
//!   and a flash read error (e.g. an ECC fault) comes back as [`VerifyError::Flash`].
//! - [`verify::verify_image`] applies MCUboot's validation rules for SHA-256 images:
//!   SHA-256 over header + payload + protected TLVs, KEYHASH (SHA-256 of the DER
//!   SubjectPublicKeyInfo) or PUBKEY naming a trusted key, and an Ed25519 (over the
//!   32-byte digest) or ECDSA P-256 (prehashed digest) signature by that key.
//! - With `std`, [`sign::sign_image`] produces the same bytes as `imgtool sign` for the
//!   same input, key and options (byte-identical for Ed25519, whose signatures are
//!   deterministic), and [`keys`] reads and writes imgtool's PEM files and `getpub`
//!   outputs.
//! - With `std`, [`firmware`] reads BIN, Intel HEX and ELF files into address-tagged
//!   segments and writes HEX or BIN back, atomically; a bad file is a named
//!   [`firmware::FirmwareFileError`] and leaves nothing on disk.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod error;
pub mod header;
pub mod image;
pub mod pubkey;
pub mod tlv;
pub mod trailer;
pub mod verify;

#[cfg(feature = "std")]
pub mod firmware;
#[cfg(feature = "std")]
pub mod inspect;
#[cfg(feature = "std")]
pub mod keys;
#[cfg(feature = "std")]
pub mod sign;

pub use error::{ImageError, VerifyError};
pub use header::{ImageHeader, ImageLayout, ImageVersion, IMAGE_HEADER_SIZE, IMAGE_MAGIC};
pub use image::{verify_bytes, ImageView, SliceFlash};
pub use pubkey::{KeyFormatError, PublicKey};
pub use tlv::{Dependency, Tlv, TlvArea, TlvValue};
pub use verify::{locate_image, verify_image, ImageExtent, VerifiedImage};
