//! The `brickless` host library and command-line tool: thin shells over the brickless crates.
pub mod commands;
pub mod firmware_file;
