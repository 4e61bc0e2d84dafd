//! Console USARTs of the supported boards: each `console_*` enables the GPIO port and USART
//! clocks, puts TX/RX in their alternate function and returns a [`Uart`] for the given kernel
//! clock ([`RESET_CLOCK_HZ`] unless the caller changed the clock tree).
//! [`restore_reset_state`] undoes what any helper of this chip family did (peripheral reset
//! pulse for the USART and the GPIO port, then their clock enables cleared), so an image
//! started afterwards finds them as after a reset. The port reset also returns the port's
//! other pins (e.g. SWD on PA13/PA14) to their reset modes.
//!
//! No helper waits on a clock-ready flag: QEMU's F405 RCC is storage only and never sets one.
//! Reset clocks (RM "reset and clock control" chapters): F4/F7 HSI 16 MHz; L4 MSI 4 MHz; H7
//! HSI 64 MHz (HSIDIV /1, all bus prescalers /1); L0 MSI 2.097 MHz (range 5), which gives
//! 115200 baud with BRR 18, 1.1 % fast, inside the receiver's tolerance. Each USART's kernel
//! clock after reset is its APB clock.

use crate::uart::Uart;
use stm32_metapac::gpio::vals::{Idr, Moder, Pupdr};
use stm32_metapac::{gpio::Gpio, RCC};

/// Puts `pin` of `port` in alternate function `af` (MODER last, so the pin never drives a
/// wrong function).
fn set_af(port: Gpio, pin: usize, af: u8) {
    port.afr(pin / 8).modify(|w| w.set_afr(pin % 8, af));
    port.moder().modify(|w| w.set_moder(pin, Moder::ALTERNATE));
}

/// The USART kernel clock after reset (see the module doc).
#[cfg(feature = "family-l4")]
pub const RESET_CLOCK_HZ: u32 = 4_000_000;
/// The USART kernel clock after reset (see the module doc).
#[cfg(any(feature = "family-f4", feature = "family-f7"))]
pub const RESET_CLOCK_HZ: u32 = 16_000_000;
/// The USART kernel clock after reset (see the module doc).
#[cfg(feature = "family-h7")]
pub const RESET_CLOCK_HZ: u32 = 64_000_000;
/// The USART kernel clock after reset (see the module doc).
#[cfg(feature = "family-l0")]
pub const RESET_CLOCK_HZ: u32 = 2_097_152;

/// B-L475E-IOT01A: USART1 on PB6 (TX) / PB7 (RX), AF7, the ST-LINK virtual COM port (and
/// QEMU `b-l475e-iot01a` serial0).
#[cfg(feature = "family-l4")]
pub fn console_usart1_l4(clock_hz: u32, baud: u32) -> Uart {
    RCC.ahb2enr().modify(|w| w.set_gpioben(true));
    RCC.apb2enr().modify(|w| w.set_usart1en(true));
    // Read back: the enable reaches the peripheral before the first access.
    let _ = RCC.apb2enr().read();
    set_af(stm32_metapac::GPIOB, 6, 7);
    set_af(stm32_metapac::GPIOB, 7, 7);
    Uart::new(stm32_metapac::USART1, clock_hz, baud)
}

/// Undoes [`console_usart1_l4`]: USART1 and GPIOB reset, their clocks off.
#[cfg(feature = "family-l4")]
pub fn restore_reset_state() {
    RCC.apb2rstr().modify(|w| w.set_usart1rst(true));
    RCC.ahb2rstr().modify(|w| w.set_gpiobrst(true));
    RCC.apb2rstr().modify(|w| w.set_usart1rst(false));
    RCC.ahb2rstr().modify(|w| w.set_gpiobrst(false));
    RCC.apb2enr().modify(|w| w.set_usart1en(false));
    RCC.ahb2enr().modify(|w| w.set_gpioben(false));
}

/// STM32F405 in QEMU `netduinoplus2`: USART1 on PA9 (TX) / PA10 (RX), AF7 (serial0).
#[cfg(feature = "family-f4")]
pub fn console_usart1_f4(clock_hz: u32, baud: u32) -> Uart {
    RCC.ahb1enr().modify(|w| w.set_gpioaen(true));
    RCC.apb2enr().modify(|w| w.set_usart1en(true));
    let _ = RCC.apb2enr().read();
    set_af(stm32_metapac::GPIOA, 9, 7);
    set_af(stm32_metapac::GPIOA, 10, 7);
    Uart::new(stm32_metapac::USART1, clock_hz, baud)
}

/// STM32F407 Discovery: USART2 on PA2 (TX) / PA3 (RX), AF7 (the ST-LINK/V2-1 VCP where the
/// board has one, else a USB-serial adapter on those pins).
#[cfg(feature = "family-f4")]
pub fn console_usart2_f4(clock_hz: u32, baud: u32) -> Uart {
    RCC.ahb1enr().modify(|w| w.set_gpioaen(true));
    RCC.apb1enr().modify(|w| w.set_usart2en(true));
    let _ = RCC.apb1enr().read();
    set_af(stm32_metapac::GPIOA, 2, 7);
    set_af(stm32_metapac::GPIOA, 3, 7);
    Uart::new(stm32_metapac::USART2, clock_hz, baud)
}

/// Undoes [`console_usart1_f4`] and [`console_usart2_f4`]: GPIOA reset, the USART and GPIOA
/// clocks off. The USARTs are not pulsed through APB1RSTR/APB2RSTR: QEMU 10's F405 RCC model
/// crashes the emulator on a USART reset pulse (measured); [`Uart::deinit`] has already put
/// their registers back to the reset values.
#[cfg(feature = "family-f4")]
pub fn restore_reset_state() {
    RCC.ahb1rstr().modify(|w| w.set_gpioarst(true));
    RCC.ahb1rstr().modify(|w| w.set_gpioarst(false));
    RCC.apb2enr().modify(|w| w.set_usart1en(false));
    RCC.apb1enr().modify(|w| w.set_usart2en(false));
    RCC.ahb1enr().modify(|w| w.set_gpioaen(false));
}

/// NUCLEO-H753ZI and NUCLEO-F767ZI: USART3 on PD8 (TX) / PD9 (RX), AF7, the ST-LINK VCP.
#[cfg(any(feature = "family-h7", feature = "family-f7"))]
pub fn console_usart3_h7_f7(clock_hz: u32, baud: u32) -> Uart {
    #[cfg(feature = "family-h7")]
    {
        RCC.ahb4enr().modify(|w| w.set_gpioden(true));
        RCC.apb1lenr().modify(|w| w.set_usart3en(true));
        let _ = RCC.apb1lenr().read();
    }
    #[cfg(feature = "family-f7")]
    {
        RCC.ahb1enr().modify(|w| w.set_gpioden(true));
        RCC.apb1enr().modify(|w| w.set_usart3en(true));
        let _ = RCC.apb1enr().read();
    }
    set_af(stm32_metapac::GPIOD, 8, 7);
    set_af(stm32_metapac::GPIOD, 9, 7);
    Uart::new(stm32_metapac::USART3, clock_hz, baud)
}

/// Undoes [`console_usart3_h7_f7`]: USART3 and GPIOD reset, their clocks off.
#[cfg(feature = "family-h7")]
pub fn restore_reset_state() {
    RCC.apb1lrstr().modify(|w| w.set_usart3rst(true));
    RCC.ahb4rstr().modify(|w| w.set_gpiodrst(true));
    RCC.apb1lrstr().modify(|w| w.set_usart3rst(false));
    RCC.ahb4rstr().modify(|w| w.set_gpiodrst(false));
    RCC.apb1lenr().modify(|w| w.set_usart3en(false));
    RCC.ahb4enr().modify(|w| w.set_gpioden(false));
}

/// Undoes [`console_usart3_h7_f7`]: USART3 and GPIOD reset, their clocks off.
#[cfg(feature = "family-f7")]
pub fn restore_reset_state() {
    RCC.apb1rstr().modify(|w| w.set_usart3rst(true));
    RCC.ahb1rstr().modify(|w| w.set_gpiodrst(true));
    RCC.apb1rstr().modify(|w| w.set_usart3rst(false));
    RCC.ahb1rstr().modify(|w| w.set_gpiodrst(false));
    RCC.apb1enr().modify(|w| w.set_usart3en(false));
    RCC.ahb1enr().modify(|w| w.set_gpioden(false));
}

/// NUCLEO-L073RZ: USART2 on PA2 (TX) / PA3 (RX), AF4, the ST-LINK VCP; clocked from MSI.
#[cfg(feature = "family-l0")]
pub fn console_usart2_l0(clock_hz: u32, baud: u32) -> Uart {
    RCC.gpioenr().modify(|w| w.set_gpioaen(true));
    RCC.apb1enr().modify(|w| w.set_usart2en(true));
    let _ = RCC.apb1enr().read();
    set_af(stm32_metapac::GPIOA, 2, 4);
    set_af(stm32_metapac::GPIOA, 3, 4);
    Uart::new(stm32_metapac::USART2, clock_hz, baud)
}

/// Undoes [`console_usart2_l0`]: USART2 and GPIOA reset, their clocks off.
#[cfg(feature = "family-l0")]
pub fn restore_reset_state() {
    RCC.apb1rstr().modify(|w| w.set_usart2rst(true));
    RCC.gpiorstr().modify(|w| w.set_gpioarst(true));
    RCC.apb1rstr().modify(|w| w.set_usart2rst(false));
    RCC.gpiorstr().modify(|w| w.set_gpioarst(false));
    RCC.apb1enr().modify(|w| w.set_usart2en(false));
    RCC.gpioenr().modify(|w| w.set_gpioaen(false));
}

/// Reads `pin` of `port` as an input with `pull`, then puts MODER and PUPDR back as they
/// were (the port may also carry the console). The port clock must be on.
#[cfg_attr(feature = "stm32f405rg", allow(dead_code))]
fn read_input(port: Gpio, pin: usize, pull: Pupdr) -> bool {
    let (moder, pupdr) = (port.moder().read(), port.pupdr().read());
    port.pupdr().modify(|w| w.set_pupdr(pin, pull));
    port.moder().modify(|w| w.set_moder(pin, Moder::INPUT));
    // Let the weak pull charge the pin and the input synchroniser settle.
    for _ in 0..2000 {
        cortex_m::asm::nop();
    }
    let high = port.idr().read().idr(pin) == Idr::HIGH;
    port.moder().write_value(moder);
    port.pupdr().write_value(pupdr);
    high
}

/// Whether the board's user button is held: PC13, active low (B-L475E-IOT01A B1). The pull-up
/// also makes QEMU's unconnected pin read "released". GPIOC's clock enable is restored.
#[cfg(feature = "family-l4")]
pub fn recovery_button_pressed() -> bool {
    let was_on = RCC.ahb2enr().read().gpiocen();
    RCC.ahb2enr().modify(|w| w.set_gpiocen(true));
    let _ = RCC.ahb2enr().read();
    let high = read_input(stm32_metapac::GPIOC, 13, Pupdr::PULL_UP);
    RCC.ahb2enr().modify(|w| w.set_gpiocen(was_on));
    !high
}

/// Whether the board's user button is held: PC13, active high on the Nucleo-144 boards
/// (NUCLEO-H753ZI, NUCLEO-F767ZI B1). GPIOC's clock enable is restored.
#[cfg(feature = "family-h7")]
pub fn recovery_button_pressed() -> bool {
    let was_on = RCC.ahb4enr().read().gpiocen();
    RCC.ahb4enr().modify(|w| w.set_gpiocen(true));
    let _ = RCC.ahb4enr().read();
    let high = read_input(stm32_metapac::GPIOC, 13, Pupdr::PULL_DOWN);
    RCC.ahb4enr().modify(|w| w.set_gpiocen(was_on));
    high
}

/// Whether the board's user button is held: PC13, active high on the Nucleo-144 boards
/// (NUCLEO-H753ZI, NUCLEO-F767ZI B1). GPIOC's clock enable is restored.
#[cfg(feature = "family-f7")]
pub fn recovery_button_pressed() -> bool {
    let was_on = RCC.ahb1enr().read().gpiocen();
    RCC.ahb1enr().modify(|w| w.set_gpiocen(true));
    let _ = RCC.ahb1enr().read();
    let high = read_input(stm32_metapac::GPIOC, 13, Pupdr::PULL_DOWN);
    RCC.ahb1enr().modify(|w| w.set_gpiocen(was_on));
    high
}

/// Whether the board's user button is held: PA0, active high (STM32F407 Discovery B1).
/// GPIOA's clock enable is restored.
#[cfg(feature = "stm32f407vg")]
pub fn recovery_button_pressed() -> bool {
    let was_on = RCC.ahb1enr().read().gpioaen();
    RCC.ahb1enr().modify(|w| w.set_gpioaen(true));
    let _ = RCC.ahb1enr().read();
    let high = read_input(stm32_metapac::GPIOA, 0, Pupdr::PULL_DOWN);
    RCC.ahb1enr().modify(|w| w.set_gpioaen(was_on));
    high
}

/// QEMU `netduinoplus2` models no GPIO (reads 0): there is no button to read.
#[cfg(feature = "stm32f405rg")]
pub fn recovery_button_pressed() -> bool {
    false
}

/// Whether the board's user button is held: PC13, active low on the Nucleo-64 boards
/// (NUCLEO-L073RZ B1). GPIOC's clock enable is restored.
#[cfg(feature = "family-l0")]
pub fn recovery_button_pressed() -> bool {
    let was_on = RCC.gpioenr().read().gpiocen();
    RCC.gpioenr().modify(|w| w.set_gpiocen(true));
    let _ = RCC.gpioenr().read();
    let high = read_input(stm32_metapac::GPIOC, 13, Pupdr::PULL_UP);
    RCC.gpioenr().modify(|w| w.set_gpiocen(was_on));
    !high
}
