#![doc = include_str!("../README.md")]
pub mod commands;
pub mod firmware_file;
