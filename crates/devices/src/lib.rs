//! Virtual STM32 devices that real tools drive, with the faithful flash model
//! ([`brickless_flash_model::SimFlash`]) as their flash.
//!
//! - [`rom`]: the ST ROM bootloader (system-memory boot): one device core, and its USART
//!   (AN3155), I2C (AN4221) and USB DfuSe servers.

pub mod rom;
