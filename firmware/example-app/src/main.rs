//! The example application: what a product's firmware does with `brickless-app`. It prints
//! the boot info the bootloader handed over, and on the console takes `r` (enter recovery),
//! `i` (print the boot info again) and `g` (a guarded read of unmapped memory: the bus
//! fault comes back as a value, as a double-ECC fault in flash would).
#![no_std]
#![no_main]

use brickless_app::mailbox;
use brickless_stm32::{board_io, uart::Uart};
use core::fmt::Write;

include!(concat!(env!("OUT_DIR"), "/board.rs"));

/// The console; `core::fmt::Write` comes from the UART (`\n` as `\r\n`).
type Console = Uart;

#[cfg(feature = "board-b-l475e-iot01a")]
fn console() -> Console {
    board_io::console_usart1_l4(board_io::RESET_CLOCK_HZ, 115_200)
}
#[cfg(feature = "board-netduinoplus2")]
fn console() -> Console {
    board_io::console_usart1_f4(board_io::RESET_CLOCK_HZ, 115_200)
}

fn print_boot_info(con: &mut Console) {
    match mailbox::boot_info() {
        Some(i) => {
            let v = i.image_version;
            let b = i.bootloader_version;
            let _ = writeln!(
                con,
                "app: boot info: image {}.{}.{}+{} at {:#010x} ({} B), trial {}, event {:?}, reset {:?}, bootloader {}.{}.{}",
                v.major, v.minor, v.revision, v.build, i.slot, i.image_size,
                if i.trial { "yes" } else { "no" }, i.event, i.reset_cause, b.major, b.minor, b.revision
            );
        }
        None => {
            let _ = writeln!(
                con,
                "app: no boot info (not started by the brickless bootloader)"
            );
        }
    }
}

/// Past the end of the 1 MiB flash of both QEMU boards: reads there raise a BusFault.
const UNMAPPED: u32 = 0x0810_0000;

fn fatal_fault() -> ! {
    loop {
        cortex_m::asm::bkpt();
    }
}
brickless_stm32::install_fault_handlers!(fatal_fault);

fn guarded_read_demo(con: &mut Console) {
    let mut buf = [0u8; 8];
    // SAFETY: reading has no side effect there; a fault is what this demonstrates.
    match unsafe { brickless_stm32::guard::guarded_read(UNMAPPED, &mut buf) } {
        Ok(()) => {
            let _ = writeln!(con, "app: guarded read of {UNMAPPED:#010x}: no fault");
        }
        Err(f) => {
            let _ = writeln!(
                con,
                "app: guarded read of {UNMAPPED:#010x}: bus fault at {:#010x}, returned as an error",
                f.addr
            );
        }
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    brickless_stm32::guard::init();
    let mut con = console();
    let _ = writeln!(
        con,
        "app: hello from the brickless example application on {BOARD}"
    );
    print_boot_info(&mut con);
    let _ = writeln!(
        con,
        "app: keys: r = enter recovery, i = boot info, g = guarded read"
    );
    loop {
        match con.read_byte() {
            Some(b'r') => {
                let _ = writeln!(con, "app: entering recovery");
                con.flush();
                mailbox::enter_recovery()
            }
            Some(b'i') => print_boot_info(&mut con),
            Some(b'g') => guarded_read_demo(&mut con),
            _ => {}
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        cortex_m::asm::bkpt();
    }
}
