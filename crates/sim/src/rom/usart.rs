//! Virtual ROM bootloader: usart.
