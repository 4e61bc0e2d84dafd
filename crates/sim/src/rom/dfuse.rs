//! Virtual ROM bootloader: dfuse.
