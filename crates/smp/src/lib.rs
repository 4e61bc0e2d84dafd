#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
pub mod client;
pub mod header;
pub mod raw;
pub mod request;
pub mod serial;
pub mod server;
#[cfg(feature = "std")]
pub mod transport;

pub use header::{Header, ImgErr, MgmtErr, Op, Version, HEADER_LEN};
pub use server::{
    Board, Mode, NoBoard, Outcome, ProtectFailure, ProtectionStatus, Server, ServerConfig,
    WriteProtection,
};
