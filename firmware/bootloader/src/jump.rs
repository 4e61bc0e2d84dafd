//! Starting the verified image: its vector table checked, everything the bootloader touched
//! put back to reset state, then VTOR, MSP and the reset handler.
use crate::board;
use crate::console::Console;
use brickless_boot::Layout;
use brickless_image::{ImageHeader, IMAGE_HEADER_SIZE};
use brickless_stm32::flash::Flash;
#[cfg(target_abi = "eabihf")]
use cortex_m::peripheral::SCB;
use embedded_storage::nor_flash::ReadNorFlash;

/// A checked vector table.
pub struct Vectors {
    /// Absolute address of the table (the slot plus the image header).
    pub table: u32,
}

/// Why a verified image cannot be started.
#[derive(Debug)]
pub enum Refused {
    /// The header or the table could not be read.
    Unreadable,
    /// VTOR needs a table aligned to at least 128 bytes.
    Misaligned(u32),
    /// The initial stack pointer is not inside RAM (or not 8-byte aligned).
    StackPointer(u32),
    /// The reset handler is not a Thumb address inside the image.
    ResetVector(u32),
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refused::Unreadable => f.write_str("the image header or vector table cannot be read"),
            Refused::Misaligned(a) => {
                write!(f, "vector table at {a:#010x} is not 128-byte aligned")
            }
            Refused::StackPointer(sp) => {
                write!(f, "initial stack pointer {sp:#010x} is not in RAM")
            }
            Refused::ResetVector(pc) => {
                write!(
                    f,
                    "reset vector {pc:#010x} is not a Thumb address inside the image"
                )
            }
        }
    }
}

/// Checks the vector table of the image whose header is at `slot`.
pub fn check(flash: &mut Flash, layout: &Layout, slot: u32) -> Result<Vectors, Refused> {
    let mut head = [0u8; IMAGE_HEADER_SIZE];
    flash
        .read(layout.offset(slot), &mut head)
        .map_err(|_| Refused::Unreadable)?;
    let header = ImageHeader::from_bytes(&head).map_err(|_| Refused::Unreadable)?;
    let table = slot + u32::from(header.hdr_size);
    if table % 128 != 0 {
        return Err(Refused::Misaligned(table));
    }
    let mut words = [0u8; 8];
    flash
        .read(layout.offset(table), &mut words)
        .map_err(|_| Refused::Unreadable)?;
    let sp = u32::from_le_bytes([words[0], words[1], words[2], words[3]]);
    let pc = u32::from_le_bytes([words[4], words[5], words[6], words[7]]);
    let part = flash.part();
    if !part.is_valid_stack_pointer(sp) || sp % 8 != 0 {
        return Err(Refused::StackPointer(sp));
    }
    let code_end = table.saturating_add(header.img_size);
    let target = pc & !1;
    if pc & 1 == 0 || target < table + 8 || target >= code_end {
        return Err(Refused::ResetVector(pc));
    }
    Ok(Vectors { table })
}

/// Hands the core over to the image as if it had started from reset.
///
/// # Safety
/// `vectors` must come from [`check`] on a verified image.
pub unsafe fn start(mut con: Console, vectors: Vectors) -> ! {
    con.flush();
    con.uart.deinit();
    board::restore_reset_state();
    cortex_m::interrupt::disable();
    // SAFETY: the bootloader is the only user of the core peripherals and is about to leave.
    let mut p = unsafe { cortex_m::Peripherals::steal() };
    p.SYST.disable_counter();
    p.SYST.disable_interrupt();
    // SAFETY: writes to SysTick's reload and current value registers.
    unsafe {
        p.SYST.rvr.write(0);
        p.SYST.cvr.write(0);
    }
    // Every external interrupt disabled and its pending bit cleared: one ICER/ICPR word on
    // Armv6-M (32 lines), 16 on Armv7-M (the largest NVIC; unimplemented words ignore writes).
    const WORDS: usize = if cfg!(target_abi = "eabi") { 1 } else { 16 };
    for (icer, icpr) in p.NVIC.icer.iter().zip(p.NVIC.icpr.iter()).take(WORDS) {
        // SAFETY: writing all ones to ICER/ICPR only disables and unpends.
        unsafe {
            icer.write(u32::MAX);
            icpr.write(u32::MAX);
        }
    }
    // Pending SysTick and PendSV cleared.
    // SAFETY: ICSR writes of the clear bits only.
    unsafe { p.SCB.icsr.write((1 << 25) | (1 << 27)) };
    // On the M7, the image must not inherit dirty or stale cache lines: clean and disable.
    #[cfg(target_abi = "eabihf")]
    {
        if SCB::dcache_enabled() {
            p.SCB.disable_dcache(&mut p.CPUID);
        }
        if SCB::icache_enabled() {
            p.SCB.disable_icache();
        }
    }
    // SAFETY: the table is 128-byte aligned and checked (see `check`).
    unsafe { p.SCB.vtor.write(vectors.table) };
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
    // Interrupts back on, as after a reset (PRIMASK clear); none is enabled or pending.
    // SAFETY: nothing can fire: every source was disabled above.
    unsafe { cortex_m::interrupt::enable() };
    // SAFETY: the table's stack pointer and reset vector were checked.
    unsafe { cortex_m::asm::bootload(vectors.table as *const u32) }
}
