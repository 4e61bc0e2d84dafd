#![doc = include_str!("../README.md")]
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
pub use verify::{image_dependencies, locate_image, verify_image, ImageExtent, VerifiedImage};
