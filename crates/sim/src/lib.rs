//! Host-side simulation: STM32 flash models with power cuts and torn operations, virtual
//! devices, and the power-cut campaign runner.

pub mod campaign;
pub mod flash;
pub mod rom;
