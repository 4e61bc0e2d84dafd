#![doc = include_str!("../README.md")]

pub mod clock;
pub mod link;
pub mod mcu;
pub mod persist;
pub mod rom;
