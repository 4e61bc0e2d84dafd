//! Hosts for the STM32 system-memory (ROM) bootloaders: AN3155 USART, AN4221 I2C, AN3156 DfuSe.
#![cfg_attr(not(feature = "std"), no_std)]
