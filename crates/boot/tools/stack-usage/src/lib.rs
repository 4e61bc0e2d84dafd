//! Entry points a bootloader (`boot`) and an application (`request_upgrade`, `confirm`) would
//! call, so the engine is monomorphised over a real-looking flash driver and the MCUboot
//! check, and its stack can be measured on the target (`measure.py`). Never run: it only
//! has to compile the same code a firmware would.
#![no_std]

use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{
    default_layout, BootDecision, BootLoader, Layout, StrategyKind, Updater, UpgradeMode,
};
use brickless_flash::Geometry;
use brickless_image::PublicKey;
use core::hint::black_box;
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

/// The part each target stands for: an M4F (F407) and an M0+ (G071).
#[cfg(target_has_atomic = "32")]
const PART: &str = "stm32f407vg";
#[cfg(not(target_has_atomic = "32"))]
const PART: &str = "stm32g071rb";

/// Copy buffer handed to the engine (static, not stack): a multiple of every STM32 write
/// unit (4–32 B), within the README's "1–4 KiB typical" and small enough for a 36 KiB M0+.
pub const COPY_BUF_LEN: usize = 2048;
static mut COPY_BUF: [u8; COPY_BUF_LEN] = [0; COPY_BUF_LEN];

/// Public keys as a bootloader would embed them; one of each algorithm, so both verify
/// paths are reachable. `black_box` keeps the compiler from knowing their bytes.
static KEYS: [PublicKey; 2] = [
    PublicKey::Ed25519([0x11; 32]),
    PublicKey::EcdsaP256([0x04; 65]),
];

/// Memory-mapped flash at 0x0800_0000 with a minimal controller: reads are volatile loads of
/// the array, programming is volatile word stores, erase pokes a control register and polls
/// a status register. Enough that nothing folds away; no HAL frames go uncounted.
pub struct MappedFlash {
    capacity: usize,
}

const FLASH_BASE: usize = 0x0800_0000;
const FLASH_CR: *mut u32 = 0x4002_3c10 as *mut u32;
const FLASH_SR: *const u32 = 0x4002_3c0c as *const u32;
const BUSY: u32 = 1 << 16;

impl MappedFlash {
    fn check(&self, offset: u32, len: usize) -> Result<usize, NorFlashErrorKind> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.capacity => Ok(FLASH_BASE + start),
            _ => Err(NorFlashErrorKind::OutOfBounds),
        }
    }

    fn wait(&self) {
        // SAFETY: a status register read on the target; never executed on a host.
        while unsafe { read_volatile(FLASH_SR) } & BUSY != 0 {}
    }
}

impl ErrorType for MappedFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for MappedFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len())?;
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: inside the mapped flash array (checked above).
            *b = unsafe { read_volatile((at + i) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl NorFlash for MappedFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 2048;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.check(from, to.saturating_sub(from) as usize)?;
        // SAFETY: controller registers on the target; never executed on a host.
        unsafe { write_volatile(FLASH_CR, from | 1) };
        self.wait();
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len())?;
        for (i, w) in bytes.chunks(4).enumerate() {
            let mut word = [0xff; 4];
            word[..w.len()].copy_from_slice(w);
            // SAFETY: inside the mapped flash array (checked above), word aligned by the
            // engine's write-unit alignment.
            unsafe { write_volatile((at + 4 * i) as *mut u32, u32::from_le_bytes(word)) };
            self.wait();
        }
        Ok(())
    }
}

/// The engine side a bootloader built on this crate holds.
pub type BootEngine = BootLoader<'static, MappedFlash, McubootCheck<'static>>;

/// The engine side an application holds (it verifies what it requests).
pub type AppEngine = Updater<MappedFlash, McubootCheck<'static>>;

/// Sized like the engine, so `llvm-nm --print-size` reads `size_of::<BootEngine>()` on
/// the target.
#[no_mangle]
#[used]
pub static BRICKLESS_ENGINE_SIZE: [u8; core::mem::size_of::<BootEngine>()] =
    [0; core::mem::size_of::<BootEngine>()];

/// What both sides are built from: the flash driver, the default layout, the check.
fn parts() -> Option<(MappedFlash, Layout, McubootCheck<'static>)> {
    let part = brickless_flash::part(black_box(PART))?;
    let geometry: &Geometry = black_box(&part.geometry);
    let layout = default_layout(geometry, black_box(StrategyKind::Swap)).ok()?;
    let flash = MappedFlash {
        capacity: geometry.span() as usize,
    };
    let keys: &'static [PublicKey] = black_box(&KEYS[..]);
    Some((flash, layout, McubootCheck { keys }))
}

fn engine() -> Option<BootEngine> {
    let (flash, layout, check) = parts()?;
    // SAFETY: each entry point takes the buffer once and never re-enters.
    let buf: &'static mut [u8] = unsafe { &mut *addr_of_mut!(COPY_BUF) };
    BootLoader::new(flash, layout, check, buf).ok()
}

fn app() -> Option<AppEngine> {
    let (flash, layout, check) = parts()?;
    Some(Updater::new(flash, layout, check))
}

/// The bootloader's reset path; returns the address to jump to, 0 for recovery, 1 on error.
#[no_mangle]
pub extern "C" fn brickless_stack_boot() -> u32 {
    match engine().map(|mut e| e.boot()) {
        Some(Ok(BootDecision::Boot(t))) => t.address,
        Some(Ok(BootDecision::Recovery(_))) => 0,
        _ => 1,
    }
}

/// The application asking for its staged update (`permanent` != 0 for a permanent one).
#[no_mangle]
pub extern "C" fn brickless_stack_request_upgrade(permanent: u32) -> i32 {
    let mode = if permanent != 0 {
        UpgradeMode::Permanent
    } else {
        UpgradeMode::Test
    };
    match app().map(|mut e| e.request_upgrade(mode)) {
        Some(Ok(_)) => 0,
        _ => -1,
    }
}

/// The application confirming its trial image.
#[no_mangle]
pub extern "C" fn brickless_stack_confirm() -> i32 {
    match app().map(|mut e| e.confirm()) {
        Some(Ok(())) => 0,
        _ => -1,
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
