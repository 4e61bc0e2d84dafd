//! Virtual ROM bootloader: core.
