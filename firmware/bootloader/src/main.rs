//! The brickless bootloader: at every reset it lets the engine decide (finish or undo an
//! interrupted update, revert an unconfirmed trial, verify hash and signature), then starts
//! the verified image, or stays in recovery and serves SMP on the console USART.
//!
//! Every decision is logged on the console, one line each, so a user with a terminal sees
//! what booted and why.
#![no_std]
#![no_main]

mod board;
mod console;
mod jump;
#[cfg(feature = "recovery")]
mod recovery;

use brickless_app::mailbox;
use brickless_boot::handoff::{BootInfo, Request, ResetCause};
use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{
    firmware_layout, BootDecision, BootEvent, BootLoader, Layout, Platform, RecoveryReason,
};
use brickless_image::PublicKey;
use brickless_stm32::flash::Flash;
use console::Console;
use core::fmt::Write;

include!(concat!(env!("OUT_DIR"), "/keys.rs"));
include!(concat!(env!("OUT_DIR"), "/board.rs"));

/// The bootloader's own version, reported in the boot info.
const VERSION: (u8, u8, u16) = (0, 1, 0);

/// Why the bootloader stays in recovery instead of starting an image.
#[derive(Clone, Copy, Debug)]
pub enum Entry {
    /// The engine found no image that verifies and may run.
    NoImage,
    /// The application asked for recovery through the handoff mailbox.
    Requested,
    /// The reset button was pressed twice within the window.
    DoubleReset,
    /// The board's recovery pin was held at reset.
    Pin,
    /// Flash kept failing while the engine worked.
    FlashFailure,
}

/// Refreshes the watchdog during long copies (harmless when it was never started).
struct Watchdog;
impl Platform for Watchdog {
    fn tick(&mut self) {
        board::refresh_watchdog();
    }
}

/// A fault that is not a guarded flash read's: a bootloader bug. Stop (a reset would repeat it).
fn fatal_fault() -> ! {
    loop {
        cortex_m::asm::bkpt();
    }
}
// Double-ECC errors while reading flash (BusFault on H7, NMI on L4) become read errors.
brickless_stm32::install_fault_handlers!(fatal_fault);

#[cortex_m_rt::entry]
fn main() -> ! {
    brickless_stm32::guard::init();
    let mut con = board::console();
    let cause = board::reset_cause();
    let _ = writeln!(
        con,
        "\nbrickless bootloader {}.{}.{} on {BOARD} (reset: {cause:?})",
        VERSION.0, VERSION.1, VERSION.2
    );
    if INSECURE_KEY {
        let _ = writeln!(con, "WARNING: built with the insecure development key");
    }
    let Some(part) = brickless_flash::part(board::PART) else {
        halt(&mut con, "this build names a part the chip table lacks")
    };
    let layout = match firmware_layout(&part.geometry) {
        Ok(l) => l,
        Err(_) => halt(&mut con, "the firmware layout does not fit this part"),
    };

    let bl_region = layout.spec().bootloader;
    let protection = brickless_stm32::protection::read(part, bl_region.start, bl_region.end());
    let _ = writeln!(
        con,
        "protection: read-out {}, bootloader sectors {}",
        protection.readout, protection.range_write_protection
    );
    let entry = entry_request(&mut con, cause);
    let flash = Flash::new(part);
    let Some(entry) = entry else {
        boot(con, flash, layout, cause)
    };
    recover(con, flash, layout, entry)
}

/// Requests to stay in the bootloader, before the engine runs.
fn entry_request(con: &mut Console, cause: ResetCause) -> Option<Entry> {
    // SAFETY: the mailbox lies outside the bootloader's RAM (linker script); nothing else
    // runs yet.
    let request = unsafe { mailbox::take_request() };
    if request == Request::Recovery {
        return Some(Entry::Requested);
    }
    if board::recovery_pin_held() {
        return Some(Entry::Pin);
    }
    if board::DOUBLE_RESET_MS > 0 && matches!(cause, ResetCause::Pin | ResetCause::Unknown) {
        // SAFETY: as above.
        let count = unsafe { mailbox::bump_reset_count() };
        if count >= 2 {
            // SAFETY: as above.
            unsafe { mailbox::clear_reset_count() };
            return Some(Entry::DoubleReset);
        }
        let _ = writeln!(
            con,
            "press reset again within {} ms for recovery",
            board::DOUBLE_RESET_MS
        );
        board::delay_ms(board::DOUBLE_RESET_MS);
    }
    // SAFETY: as above.
    unsafe { mailbox::clear_reset_count() };
    None
}

fn boot(mut con: Console, flash: Flash, layout: Layout, cause: ResetCause) -> ! {
    let mut buf = [0u8; board::COPY_BUF];
    let check = McubootCheck { keys: KEYS };
    let mut bl = match BootLoader::with_platform(flash, layout, check, Watchdog, &mut buf) {
        Ok(bl) => bl,
        Err(_) => halt(&mut con, "the copy buffer does not fit the write unit"),
    };
    // A flash failure is retried: the engine resumes safely from wherever it stopped.
    let mut decision = None;
    for attempt in 1..=3 {
        match bl.boot() {
            Ok(d) => {
                decision = Some(d);
                break;
            }
            Err(e) => {
                let _ = writeln!(con, "boot: {e} (attempt {attempt} of 3)");
            }
        }
    }
    let target = match decision {
        Some(BootDecision::Boot(t)) => t,
        Some(BootDecision::Recovery(r)) => {
            let why = match r {
                RecoveryReason::NoValidImage => "no slot holds an image that verifies and may run",
                RecoveryReason::Unsettled => "the update state did not settle",
            };
            let _ = writeln!(con, "recovery: {why}");
            diagnose(&mut con, &mut bl);
            let flash = bl.into_flash();
            recover(con, flash, layout, Entry::NoImage)
        }
        // Bank swap changed the option bytes: the new mapping takes effect at reset.
        Some(BootDecision::Reset) => cortex_m::peripheral::SCB::sys_reset(),
        None => {
            let flash = bl.into_flash();
            recover(con, flash, layout, Entry::FlashFailure)
        }
    };
    let what = target.image.version;
    let event = match target.event {
        BootEvent::None => "",
        BootEvent::Installed => " (update installed)",
        BootEvent::TrialStarted => " (trial: it must confirm itself)",
        BootEvent::Reverted => " (the unconfirmed trial was reverted)",
        BootEvent::RevertImpossible => " (trial again: the old image no longer verifies)",
    };
    let _ = writeln!(
        con,
        "boot: image {}.{}.{}+{} at {:#010x} verified{event}",
        what.major, what.minor, what.revision, what.build, target.address
    );
    let own = brickless_boot::ImageVersion::new(VERSION.0, VERSION.1, VERSION.2, 0);
    let info = BootInfo::new(own, &target, cause);
    // SAFETY: the mailbox lies outside the bootloader's RAM (linker script).
    unsafe { mailbox::write_boot_info(&info) };
    let mut flash = bl.into_flash();
    match jump::check(&mut flash, &layout, target.address) {
        Ok(vectors) => {
            let _ = writeln!(con, "jump: vector table at {:#010x}", vectors.table);
            con.flush();
            // SAFETY: the vector table was checked: stack pointer in RAM, reset handler a
            // Thumb address inside the verified image.
            unsafe { jump::start(con, vectors) }
        }
        Err(why) => {
            let _ = writeln!(con, "jump refused: {why}");
            recover(con, flash, layout, Entry::NoImage)
        }
    }
}

/// Says why neither slot could boot: the first verification error of each, or the
/// anti-rollback floor that refused a verified image.
fn diagnose<P: Platform>(con: &mut Console, bl: &mut BootLoader<'_, Flash, McubootCheck<'_>, P>) {
    let layout = *bl.layout();
    let state = bl.state();
    let spec = layout.spec();
    for (name, region) in [("primary", spec.primary), ("secondary", spec.secondary)] {
        let offset = layout.offset(region.start);
        match brickless_image::verify_image(bl.flash_mut(), offset, region.size, KEYS) {
            Err(e) => {
                let _ = writeln!(con, "  {name} slot: {e}");
            }
            Ok(v) if v.key_index.is_none() => {
                let _ = writeln!(
                    con,
                    "  {name} slot: signed by a key this bootloader does not trust"
                );
            }
            Ok(v) => {
                let counter = v.security_counter.unwrap_or(0);
                let ver = v.header.version;
                if counter < state.floor_counter {
                    let _ = writeln!(
                        con,
                        "  {name} slot: image {}.{}.{} refused: downgrade (security counter {counter} below the floor {})",
                        ver.major, ver.minor, ver.revision, state.floor_counter
                    );
                } else if ver.packed() < state.floor_version {
                    let _ = writeln!(
                        con,
                        "  {name} slot: image {}.{}.{} refused: downgrade (older than the installed floor)",
                        ver.major, ver.minor, ver.revision
                    );
                } else {
                    let _ = writeln!(
                        con,
                        "  {name} slot: image {}.{}.{} verifies",
                        ver.major, ver.minor, ver.revision
                    );
                }
            }
        }
    }
}

#[cfg(feature = "recovery")]
fn recover(con: Console, flash: Flash, layout: Layout, entry: Entry) -> ! {
    recovery::run(con, flash, layout, entry, KEYS)
}

#[cfg(not(feature = "recovery"))]
fn recover(mut con: Console, _flash: Flash, _layout: Layout, entry: Entry) -> ! {
    let _ = writeln!(
        con,
        "recovery ({entry:?}): built without SMP recovery; attach a debugger"
    );
    con.flush();
    loop {
        cortex_m::asm::wfi();
    }
}

fn halt(con: &mut Console, why: &str) -> ! {
    let _ = writeln!(con, "halt: {why}");
    con.flush();
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The engine does not panic on flash content, so this is a bootloader bug. Stop rather
    // than reset: a reset would repeat it for ever. No formatting here, to keep its code out.
    loop {
        cortex_m::asm::bkpt();
    }
}
