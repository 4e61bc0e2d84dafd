//! Hosts for the STM32 system-memory (ROM) bootloaders: AN3155 USART ([`an3155`]), AN4221
//! I2C ([`an4221`]) and AN3156 USB DfuSe ([`dfuse`]), plus the device table ([`device`]).
//!
//! Every host implements [`target::RomTarget`]; [`program::program_segments`], the one
//! programming loop, erases, writes and verifies over any of them. Host errors say their
//! [`ErrorKind`] ([`TargetError`]). With `std`, [`open`] opens a serial port (with BOOT0/NRST
//! line sequences), TCP, i2c-dev or USB DfuSe transport. The core is `no_std` without allocation, so one STM32 can program another
//! (an H7 updating L0 modules over I2C). Guarantees: no panic on device replies, every
//! failure is a named error, and a write is never reported done unless the device
//! acknowledged it (or a read-back proved it).
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
