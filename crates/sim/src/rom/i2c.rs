//! Virtual ROM bootloader: i2c.
