//! Virtual STM32 devices that real tools drive, with the faithful flash model
//! ([`brickless_flash_model::SimFlash`]) as their flash.
//!
//! - [`clock`]: virtual time shared by a device and the host's delays;
//! - [`link`]: a pty serial tools open as a port, TCP;
//! - [`persist`]: flash and option-byte state kept in files across runs;
//! - [`rom`]: the ST ROM bootloader (system-memory boot): one device core, and its USART
//!   (AN3155), I2C (AN4221) and USB DfuSe servers.

pub mod clock;
pub mod link;
pub mod persist;
pub mod rom;
