//! Recovery: SMP (mcumgr) over the console USART, with the engine doing every write, until a
//! client resets the device. Console-framed requests (mcumgr, smpmgr) and brickless's raw
//! frames are both taken; each answer goes out in its request's framing.
use crate::board::{self, SMP_BUF};
use crate::console::Console;
use crate::Entry;
use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{Layout, Updater};
use brickless_image::PublicKey;
use brickless_smp::raw::{self, AnyDecoder};
use brickless_smp::server::{Mode, Server, ServerConfig};
use brickless_smp::{Board, ProtectFailure, ProtectionStatus, WriteProtection};
use brickless_stm32::flash::Flash;
use brickless_stm32::protection::{self, ReadoutLevel};
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

/// Milliseconds since recovery started (SysTick).
static MILLIS: AtomicU32 = AtomicU32::new(0);

/// A frame that stops arriving for this long is dropped, so the next one starts clean.
const FRAME_IDLE_MS: u32 = 1000;

#[cortex_m_rt::exception]
fn SysTick() {
    // Load and store only: Cortex-M0+ has no atomic read-modify-write, and nothing else
    // writes the counter.
    MILLIS.store(
        MILLIS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// A 1 kHz SysTick interrupt for the idle timeout. (It also keeps QEMU's main loop polling
/// the console: its L4 USART model does not ask for more input when RDR is read, so without
/// a timer the emulator delivers a request one byte per host write.)
fn start_millis() {
    // SAFETY: recovery owns SysTick; the bootloader's delay released it.
    let mut p = unsafe { cortex_m::Peripherals::steal() };
    p.SYST
        .set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
    p.SYST.set_reload(board::CLOCK_HZ / 1000 - 1);
    p.SYST.clear_current();
    p.SYST.enable_interrupt();
    p.SYST.enable_counter();
}

/// A console-framed answer of `SMP_BUF` bytes: base64 (4/3) plus line markers and CRC.
const FRAME_BUF: usize = SMP_BUF * 3 / 2 + 64;

/// The protect command on this chip: the bootloader's own sectors, through the option bytes.
struct SelfProtection {
    part: &'static brickless_flash::Part,
    start: u32,
    end: u32,
    /// The change waits for an option-byte reload (L4): the reset after the answer must be
    /// that reload.
    reload_pending: bool,
}

impl Board for SelfProtection {
    fn protection(&mut self) -> Option<ProtectionStatus> {
        let p = protection::read(self.part, self.start, self.end);
        Some(ProtectionStatus {
            readout_level: match p.readout {
                ReadoutLevel::Level0 => 0,
                ReadoutLevel::Level1 => 1,
                ReadoutLevel::Level2 => 2,
            },
            bootloader: match p.range_write_protection {
                protection::WriteProtection::None => WriteProtection::None,
                protection::WriteProtection::Partial => WriteProtection::Partial,
                protection::WriteProtection::Full => WriteProtection::Full,
            },
        })
    }

    fn protect_bootloader(&mut self) -> Result<bool, ProtectFailure> {
        match protection::protect(self.part, self.start, self.end) {
            Ok(reload) => {
                self.reload_pending |= reload;
                Ok(reload)
            }
            Err(protection::ProtectError::Unsupported) => Err(ProtectFailure::Unsupported),
            Err(_) => Err(ProtectFailure::Failed),
        }
    }
}

pub fn run(mut con: Console, flash: Flash, layout: Layout, entry: Entry, keys: &[PublicKey]) -> ! {
    let why = match entry {
        Entry::NoImage => "no image to start",
        Entry::Requested => "the application asked for it",
        Entry::DoubleReset => "double reset",
        Entry::Pin => "the recovery button was held",
        Entry::FlashFailure => "flash operations kept failing",
    };
    let _ = writeln!(
        con,
        "recovery ({why}): SMP on this port at {} baud; upload an image and reset",
        board::BAUD
    );
    con.flush();
    let bl = layout.spec().bootloader;
    let mut board = SelfProtection {
        part: flash.part(),
        start: bl.start,
        end: bl.end(),
        reload_pending: false,
    };
    let mut updater = Updater::new(flash, layout, McubootCheck { keys });
    let mut server = Server::new(ServerConfig {
        buf_size: SMP_BUF as u32,
        buf_count: 1,
        mode: Mode::Recovery,
    });
    let mut decoder: AnyDecoder<SMP_BUF> = AnyDecoder::new();
    let mut response = [0u8; SMP_BUF];
    let mut frame = [0u8; FRAME_BUF];
    start_millis();
    let mut last_byte = MILLIS.load(Ordering::Relaxed);
    loop {
        board::refresh_watchdog();
        let Some(byte) = con.uart.read_byte() else {
            if MILLIS.load(Ordering::Relaxed).wrapping_sub(last_byte) > FRAME_IDLE_MS {
                decoder.reset();
                last_byte = MILLIS.load(Ordering::Relaxed);
            }
            continue;
        };
        last_byte = MILLIS.load(Ordering::Relaxed);
        let Some(Ok((_, framing))) = decoder.push(byte) else {
            continue;
        };
        let Some(out) =
            server.handle_with(&mut updater, &mut board, decoder.packet(), &mut response)
        else {
            continue;
        };
        let Some(answer) = response.get(..out.len) else {
            continue;
        };
        if raw::encoded_len(framing, answer.len()) <= frame.len() {
            if let Ok(n) = raw::encode_as(framing, answer, &mut frame) {
                con.uart.write(&frame[..n]);
            }
        }
        if out.reset {
            con.flush();
            if board.reload_pending {
                protection::apply_and_reset();
            }
            cortex_m::peripheral::SCB::sys_reset();
        }
    }
}
