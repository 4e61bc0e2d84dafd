#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]

pub mod an3155;
pub mod an4221;
pub mod device;
pub mod dfu_file;
pub mod dfuse;
#[cfg(feature = "std")]
pub mod link;
#[cfg(feature = "std")]
pub mod open;
pub mod program;
pub mod target;

pub use device::{by_part_name, by_pid, RomDevice, DEVICES};
pub use target::{Erase, ErrorKind, RomTarget, TargetError, TargetInfo};
