//! Hosts for the STM32 system-memory (ROM) bootloaders: AN3155 USART, AN4221 I2C, AN3156 DfuSe.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod an3155;
pub mod an4221;
pub mod device;
pub mod dfu_file;
pub mod dfuse;
