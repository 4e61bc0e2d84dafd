//! The boot log: text lines on the console USART.
use brickless_stm32::uart::Uart;

/// The console USART; `core::fmt::Write` through the UART's own (`\n` as `\r\n`).
pub struct Console {
    pub uart: Uart,
}

impl Console {
    /// Waits until the last byte has left the shift register.
    pub fn flush(&mut self) {
        self.uart.flush();
    }
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.uart.write_str(s)
    }
}
