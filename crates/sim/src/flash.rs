//! The STM32 flash model (built in the flash-model issue).
