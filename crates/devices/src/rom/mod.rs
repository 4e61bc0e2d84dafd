//! A virtual ST ROM bootloader: the device core over a flash model, and its USART (AN3155),
//! I2C (AN4221) and USB DfuSe (AN3156) servers, and [`serve`]: AN3155 on a pty or TCP with
//! the flash kept in a file.
pub mod core;
pub mod dfuse;
pub mod i2c;
pub mod serve;
pub mod usart;
