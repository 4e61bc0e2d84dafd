//! What differs between boards: the part, the console, the reset-cause register, the
//! recovery button and buffer sizes. One board per build (a cargo feature).
use crate::console::Console;
use brickless_boot::handoff::ResetCause;
use brickless_stm32::board_io;

#[cfg(feature = "board-nucleo-h753zi")]
mod chosen {
    /// HSI at reset.
    pub const CLOCK_HZ: u32 = 64_000_000;
    pub fn uart() -> brickless_stm32::uart::Uart {
        super::board_io::console_usart3_h7_f7(CLOCK_HZ, super::BAUD)
    }
}
#[cfg(feature = "board-b-l475e-iot01a")]
mod chosen {
    /// MSI at reset.
    pub const CLOCK_HZ: u32 = 4_000_000;
    pub fn uart() -> brickless_stm32::uart::Uart {
        super::board_io::console_usart1_l4(CLOCK_HZ, super::BAUD)
    }
}
#[cfg(feature = "board-nucleo-f767zi")]
mod chosen {
    /// HSI at reset.
    pub const CLOCK_HZ: u32 = 16_000_000;
    pub fn uart() -> brickless_stm32::uart::Uart {
        super::board_io::console_usart3_h7_f7(CLOCK_HZ, super::BAUD)
    }
}
#[cfg(feature = "board-stm32f407-disco")]
mod chosen {
    /// HSI at reset.
    pub const CLOCK_HZ: u32 = 16_000_000;
    pub fn uart() -> brickless_stm32::uart::Uart {
        super::board_io::console_usart2_f4(CLOCK_HZ, super::BAUD)
    }
}
#[cfg(feature = "board-netduinoplus2")]
mod chosen {
    /// QEMU's netduinoplus2 machine runs the core (and SysTick) at a fixed 168 MHz whatever
    /// the RCC says; its USART model ignores the baud rate.
    pub const CLOCK_HZ: u32 = 168_000_000;
    pub fn uart() -> brickless_stm32::uart::Uart {
        super::board_io::console_usart1_f4(CLOCK_HZ, super::BAUD)
    }
}
#[cfg(feature = "board-nucleo-l073rz")]
mod chosen {
    /// MSI at reset (2.097 MHz).
    pub const CLOCK_HZ: u32 = 2_097_000;
    pub fn uart() -> brickless_stm32::uart::Uart {
        super::board_io::console_usart2_l0(CLOCK_HZ, super::BAUD)
    }
}

pub use crate::PART;
pub use chosen::CLOCK_HZ;

/// Console speed (the ST-LINK virtual COM port's default).
pub const BAUD: u32 = 115_200;

/// Copy buffer for the swap: a multiple of every write unit (32 bytes on the H7).
#[cfg(not(feature = "board-nucleo-l073rz"))]
pub const COPY_BUF: usize = 4096;
#[cfg(feature = "board-nucleo-l073rz")]
pub const COPY_BUF: usize = 1024;

/// Largest SMP packet recovery takes (what it advertises as `buf_size`).
#[cfg(all(feature = "recovery", not(feature = "board-nucleo-l073rz")))]
pub const SMP_BUF: usize = 2048;
#[cfg(all(feature = "recovery", feature = "board-nucleo-l073rz"))]
pub const SMP_BUF: usize = 1024;

/// The double-reset window: a second reset-button press inside it enters recovery.
pub const DOUBLE_RESET_MS: u32 = 500;

/// The console at the reset clock.
pub fn console() -> Console {
    Console {
        uart: chosen::uart(),
    }
}

/// Puts back every peripheral and clock the bootloader touched (before the jump).
pub fn restore_reset_state() {
    board_io::restore_reset_state();
}

/// Busy-waits on SysTick at the reset clock.
pub fn delay_ms(ms: u32) {
    // SAFETY: the bootloader uses SysTick only here and from one thread.
    let p = unsafe { cortex_m::Peripherals::steal() };
    let mut delay = cortex_m::delay::Delay::new(p.SYST, CLOCK_HZ);
    delay.delay_ms(ms);
    let mut syst = delay.free();
    syst.disable_counter();
}

/// Reloads the independent watchdog if an option byte started it (a no-op otherwise).
pub fn refresh_watchdog() {
    #[cfg(feature = "board-nucleo-h753zi")]
    let iwdg = stm32_metapac::IWDG1;
    #[cfg(not(feature = "board-nucleo-h753zi"))]
    let iwdg = stm32_metapac::IWDG;
    iwdg.kr()
        .write(|w| w.set_key(stm32_metapac::iwdg::vals::Key::RESET));
}

/// Why the chip reset, from the RCC's reset flags (cleared afterwards so the next reset
/// reads fresh).
pub fn reset_cause() -> ResetCause {
    use stm32_metapac::RCC;
    #[cfg(feature = "board-nucleo-h753zi")]
    let (watchdog, software, power, pin, low_power) = {
        let r = RCC.rsr().read();
        RCC.rsr().modify(|w| w.set_rmvf(true));
        (
            r.iwdg1rstf() || r.wwdg1rstf(),
            r.sftrstf(),
            r.porrstf() || r.borrstf(),
            r.pinrstf(),
            r.lpwrrstf(),
        )
    };
    #[cfg(any(
        feature = "board-stm32f407-disco",
        feature = "board-netduinoplus2",
        feature = "board-nucleo-f767zi"
    ))]
    let (watchdog, software, power, pin, low_power) = {
        let r = RCC.csr().read();
        RCC.csr().modify(|w| w.set_rmvf(true));
        (
            r.wdgrstf() || r.wwdgrstf(),
            r.sftrstf(),
            r.porrstf() || r.borrstf(),
            r.padrstf(),
            r.lpwrrstf(),
        )
    };
    #[cfg(feature = "board-b-l475e-iot01a")]
    let (watchdog, software, power, pin, low_power) = {
        let r = RCC.csr().read();
        RCC.csr().modify(|w| w.set_rmvf(true));
        // No POR flag on the L4: a power-on sets BORRSTF.
        (
            r.iwdgrstf() || r.wwdgrstf(),
            r.sftrstf(),
            r.borrstf(),
            r.pinrstf(),
            r.lpwrrstf(),
        )
    };
    #[cfg(feature = "board-nucleo-l073rz")]
    let (watchdog, software, power, pin, low_power) = {
        let r = RCC.csr().read();
        RCC.csr().modify(|w| w.set_rmvf(true));
        (
            r.iwdgrstf() || r.wwdgrstf(),
            r.sftrstf(),
            r.porrstf(),
            r.pinrstf(),
            r.lpwrrstf(),
        )
    };
    // Internal resets also pull NRST low and set the pin flag, so the pin is checked last.
    if watchdog {
        ResetCause::Watchdog
    } else if software {
        ResetCause::Software
    } else if power {
        ResetCause::PowerOn
    } else if low_power {
        ResetCause::LowPower
    } else if pin {
        ResetCause::Pin
    } else {
        ResetCause::Unknown
    }
}

/// Whether the board's recovery button is held at reset.
pub fn recovery_pin_held() -> bool {
    board_io::recovery_button_pressed()
}
