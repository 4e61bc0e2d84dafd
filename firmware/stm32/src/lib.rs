//! STM32 drivers for the brickless bootloader and applications: the internal flash as an
//! [`embedded_storage`] `NorFlash`, a polling USART for the console, and guarded reads that
//! turn a double-ECC fault into an error value instead of a crash.
//!
//! One chip per build, chosen with a chip feature (`stm32h753zi`, `stm32l475vg`,
//! `stm32f767zi`, `stm32f407vg`, `stm32f405rg`, `stm32l073rz`); the flash geometry comes from
//! the one chip table in `brickless-flash`.
//!
//! What the crate guarantees:
//! - No allocation and no panic on data from outside (flash contents, offsets, lengths, UART
//!   input): bad arguments come back as errors.
//! - Flash: every program and erase unlocks the controller first, clears stale error flags,
//!   waits for the operation to finish and locks the controller again, also on failure. An
//!   erase touches only whole sectors of the part's geometry, by the number the reference
//!   manual gives it, through the register set of the sector's bank.
//! - Reads of flash go through [`guard::guarded_read`]: with [`install_fault_handlers!`] in the
//!   binary and [`guard::init`] called, a double-ECC error (H7 BusFault, L4 NMI) becomes
//!   [`flash::Error::EccFault`] carrying the address.
//! - The USART is driven with 32-bit register accesses only (QEMU's L4 model faults on
//!   narrower ones).
//!
//! Why our own drivers on stm32-metapac's register definitions rather than embassy-stm32's:
//! its HAL is built around `embassy_stm32::init` (clock tree set-up, time driver), which a
//! bootloader that hands the chip over in reset state does not want, and its flash API takes
//! its own region table rather than the part table the engine shares with the host; its L4
//! USART reads RDR and writes TDR through byte pointers, which QEMU's L4 model turns into a
//! BusFault (measured), so the boot tests could not run; and this bootloader needs reads that
//! survive an ECC fault, which no HAL read does. (Binary size was not compared.)
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(any(
    feature = "family-h7",
    feature = "family-l4",
    feature = "family-f4",
    feature = "family-f7",
    feature = "family-l0"
)))]
compile_error!("choose one chip feature, e.g. --features stm32h753zi");

pub mod board_io;
pub mod flash;
pub mod guard;
pub mod protection;
pub mod uart;

#[doc(hidden)]
pub use cortex_m_rt as __rt;
