//! The update engine: slot layout, power-safe state, swap/overwrite strategies, boot decision.
#![no_std]
