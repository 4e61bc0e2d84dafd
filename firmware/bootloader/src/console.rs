//! The boot log: text lines on the console USART.
use brickless_stm32::uart::Uart;

/// The console USART as a `core::fmt::Write` sink; `\n` goes out as `\r\n` for terminals.
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
        for line in s.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(text) => {
                    self.uart.write(text.as_bytes());
                    self.uart.write(b"\r\n");
                }
                None => self.uart.write(line.as_bytes()),
            }
        }
        Ok(())
    }
}
