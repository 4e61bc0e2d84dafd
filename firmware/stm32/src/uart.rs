//! A polling USART for the console: 8 data bits, no parity, 1 stop bit, oversampling by 16.
//!
//! Every register access is a 32-bit metapac access: QEMU's L4 USART model accepts only
//! 32-bit accesses, and a byte store to TDR there raises a BusFault.
//!
//! F4 has the older register set (SR/DR); F7, L4, H7 and L0 have ISR/ICR/RDR/TDR (FIFO left
//! disabled on H7, so TXE/RXNE mean what they say).

use stm32_metapac::usart::Usart;

/// A USART driven by polling.
pub struct Uart {
    regs: Usart,
}

impl Uart {
    /// Configures and enables `regs` for `baud` 8N1, from a kernel clock of `clock_hz`. The
    /// caller enables the USART's clock and routes its pins first (see [`crate::board_io`]).
    pub fn new(regs: Usart, clock_hz: u32, baud: u32) -> Uart {
        // BRR = clock / baud rounded (oversampling by 16); the hardware needs at least 16.
        let div = clock_hz
            .checked_add(baud / 2)
            .and_then(|c| c.checked_div(baud))
            .unwrap_or(u32::from(u16::MAX));
        let brr = div.clamp(16, u32::from(u16::MAX)) as u16;
        regs.cr1().write(|w| w.0 = 0);
        regs.cr2().write(|w| w.0 = 0);
        regs.cr3().write(|w| w.0 = 0);
        regs.brr().write(|w| w.set_brr(brr));
        regs.cr1().write(|w| {
            w.set_te(true);
            w.set_re(true);
            w.set_ue(true);
        });
        Uart { regs }
    }

    /// Sends `bytes`, waiting for room before each one.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            while !self.txe() {}
            self.write_dr(b);
        }
    }

    /// Waits until the last byte has left the shift register (TC).
    pub fn flush(&mut self) {
        while !self.tc() {}
    }

    /// The next received byte, if one is waiting; clears an overrun so reception goes on.
    pub fn read_byte(&mut self) -> Option<u8> {
        self.poll_rx()
    }

    /// Waits for the last byte to go out, then puts the configuration registers back to
    /// their reset values (CR1 first, which disables the USART; then CR2, CR3 and BRR).
    pub fn deinit(&mut self) {
        if self.regs.cr1().read().ue() {
            self.flush();
        }
        self.regs.cr1().write(|w| w.0 = 0);
        self.regs.cr2().write(|w| w.0 = 0);
        self.regs.cr3().write(|w| w.0 = 0);
        self.regs.brr().write(|w| w.0 = 0);
    }

    #[cfg(feature = "family-f4")]
    fn txe(&self) -> bool {
        self.regs.sr().read().txe()
    }

    #[cfg(feature = "family-f4")]
    fn tc(&self) -> bool {
        self.regs.sr().read().tc()
    }

    #[cfg(feature = "family-f4")]
    fn write_dr(&self, b: u8) {
        self.regs.dr().write(|w| w.set_dr(u16::from(b)));
    }

    /// SR then DR: the read of DR after SR clears ORE as well as RXNE.
    #[cfg(feature = "family-f4")]
    fn poll_rx(&self) -> Option<u8> {
        let sr = self.regs.sr().read();
        if sr.rxne() || sr.ore() {
            let b = self.regs.dr().read().dr() as u8;
            return sr.rxne().then_some(b);
        }
        None
    }

    #[cfg(not(feature = "family-f4"))]
    fn txe(&self) -> bool {
        self.regs.isr().read().txe()
    }

    #[cfg(not(feature = "family-f4"))]
    fn tc(&self) -> bool {
        self.regs.isr().read().tc()
    }

    #[cfg(not(feature = "family-f4"))]
    fn write_dr(&self, b: u8) {
        self.regs.tdr().write(|w| w.set_dr(u16::from(b)));
    }

    #[cfg(not(feature = "family-f4"))]
    fn poll_rx(&self) -> Option<u8> {
        let isr = self.regs.isr().read();
        if isr.ore() {
            self.regs.icr().write(|w| w.set_ore(true));
        }
        if isr.rxne() {
            return Some(self.regs.rdr().read().dr() as u8);
        }
        None
    }
}

/// Text for a terminal: each `\n` goes out as `\r\n`.
impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for line in s.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(text) => {
                    self.write(text.as_bytes());
                    self.write(b"\r\n");
                }
                None => self.write(line.as_bytes()),
            }
        }
        Ok(())
    }
}
