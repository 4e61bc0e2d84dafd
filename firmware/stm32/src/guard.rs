//! Flash reads that survive ECC faults: a double-ECC error while [`guarded_read`] runs comes
//! back as `Err(ReadFault { addr })` instead of a crash.
//!
//! How: `guarded_read` sets a flag, reads with one `ldr`/`ldrb` per access and checks a
//! "faulted" flag after each one. The binary's fault handlers call the building blocks
//! here (`on_bus_fault`, and `on_nmi` on L4); when a guarded read is in progress and the fault's
//! address lies in the range being read, they record the address, set the flag and return:
//! - BusFault (H7 double ECC on the AXI, any precise bus error on M4/M7): the stacked PC is
//!   moved past the faulting load (16- or 32-bit Thumb instruction), so the load is skipped.
//!   The address comes from BFAR, or on H7 from FLASH_ECC_FAxR when BFAR is not valid.
//! - NMI (L4 double ECC, FLASH_ECCR.ECCD): the load already completed with bad data; the
//!   handler clears ECCD and returns to the next instruction. `guarded_read` issues DSB+ISB
//!   after each load on L4 so the NMI is taken before the flag check.
//!
//! Install with `install_fault_handlers!` in the binary and call `init` once (it enables
//! the BusFault exception; otherwise the fault escalates to HardFault, which cannot return).
//!
//! L0 (Cortex-M0+): no BusFault exception and no double-error signal (the L0 ECC corrects
//! single errors only), so `guarded_read` is a plain copy there and the macro installs nothing.

/// A guarded read hit a fault at `addr` (absolute; for an ECC-reported address, the start of
/// the failing ECC unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadFault {
    /// Absolute address of the fault.
    pub addr: u32,
}

/// The stacked exception frame the handlers work on.
pub use cortex_m_rt::ExceptionFrame;

#[cfg(not(feature = "family-l0"))]
pub use armv7m::*;

#[cfg(feature = "family-l0")]
pub use armv6m::*;

#[cfg(feature = "family-l0")]
mod armv6m {
    use super::ReadFault;

    /// Nothing to set up on the M0+ (no BusFault exception).
    pub fn init() {}

    /// Copies `buf.len()` bytes from `addr`. On L0 no ECC fault can be raised, so this never
    /// fails.
    ///
    /// # Safety
    /// `[addr, addr + buf.len())` must be readable memory.
    #[inline(never)]
    pub unsafe fn guarded_read(addr: u32, buf: &mut [u8]) -> Result<(), ReadFault> {
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: the caller guarantees the range is readable.
            *b = unsafe { ((addr as usize + i) as *const u8).read_volatile() };
        }
        Ok(())
    }
}

#[cfg(not(feature = "family-l0"))]
mod armv7m {
    use super::{ExceptionFrame, ReadFault};
    use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, Ordering};
    use cortex_m::peripheral::SCB;

    /// SHCSR.BUSFAULTENA.
    const BUSFAULTENA: u32 = 1 << 17;
    /// CFSR.BFSR bits: precise data bus error, and BFAR holds its address.
    const PRECISERR: u32 = 1 << 9;
    const BFARVALID: u32 = 1 << 15;

    static ACTIVE: AtomicBool = AtomicBool::new(false);
    static FAULTED: AtomicBool = AtomicBool::new(false);
    static FAULT_ADDR: AtomicU32 = AtomicU32::new(0);
    static START: AtomicU32 = AtomicU32::new(0);
    static END: AtomicU32 = AtomicU32::new(0);

    /// Enables the BusFault exception, so a guarded read's fault reaches [`on_bus_fault`]
    /// instead of HardFault. Call once at start-up.
    pub fn init() {
        // SAFETY: read-modify-write of SHCSR that only sets BUSFAULTENA.
        unsafe { (*SCB::PTR).shcsr.modify(|v| v | BUSFAULTENA) };
    }

    /// Copies `buf.len()` bytes from `addr` with one 32-bit (aligned) or 8-bit volatile load
    /// per access; a fault during a load ends the copy with its address.
    ///
    /// # Safety
    /// `[addr, addr + buf.len())` must be memory whose reads have no side effect other than
    /// possibly a bus error or ECC fault (the flash array). Not reentrant: do not call it
    /// from an interrupt that may preempt another guarded read.
    #[inline(never)]
    pub unsafe fn guarded_read(addr: u32, buf: &mut [u8]) -> Result<(), ReadFault> {
        let end = u32::try_from(buf.len())
            .ok()
            .and_then(|len| addr.checked_add(len))
            .ok_or(ReadFault { addr })?;
        START.store(addr, Ordering::Relaxed);
        END.store(end, Ordering::Relaxed);
        FAULTED.store(false, Ordering::Relaxed);
        ACTIVE.store(true, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        // SAFETY: forwarded from the caller.
        let result = unsafe { copy(addr, buf) };
        compiler_fence(Ordering::SeqCst);
        ACTIVE.store(false, Ordering::Relaxed);
        result
    }

    #[inline(always)]
    unsafe fn copy(addr: u32, buf: &mut [u8]) -> Result<(), ReadFault> {
        let mut i = 0;
        while i < buf.len() {
            let at = addr + i as u32;
            if at % 4 == 0 && buf.len() - i >= 4 {
                // SAFETY: aligned, inside the caller's readable range.
                let w = unsafe { (at as *const u32).read_volatile() };
                if faulted() {
                    return Err(fault());
                }
                if let Some(dst) = buf.get_mut(i..i + 4) {
                    dst.copy_from_slice(&w.to_le_bytes());
                }
                i += 4;
            } else {
                // SAFETY: inside the caller's readable range.
                let b = unsafe { (at as *const u8).read_volatile() };
                if faulted() {
                    return Err(fault());
                }
                if let Some(dst) = buf.get_mut(i) {
                    *dst = b;
                }
                i += 1;
            }
        }
        Ok(())
    }

    /// Whether a handler flagged the last load.
    #[inline(always)]
    fn faulted() -> bool {
        // The L4 ECC NMI is asynchronous: make the load complete and the NMI be taken
        // before the flag is looked at.
        #[cfg(feature = "family-l4")]
        {
            cortex_m::asm::dsb();
            cortex_m::asm::isb();
        }
        compiler_fence(Ordering::SeqCst);
        FAULTED.load(Ordering::Relaxed)
    }

    fn fault() -> ReadFault {
        ReadFault {
            addr: FAULT_ADDR.load(Ordering::Relaxed),
        }
    }

    /// Whether `[addr, addr + unit)` overlaps the range being read.
    fn in_guarded_range(addr: u32, unit: u32) -> bool {
        ACTIVE.load(Ordering::Relaxed)
            && addr < END.load(Ordering::Relaxed)
            && addr.saturating_add(unit) > START.load(Ordering::Relaxed)
    }

    fn record(addr: u32) {
        // An ECC unit may start before the first byte asked for; report a byte that was.
        FAULT_ADDR.store(addr.max(START.load(Ordering::Relaxed)), Ordering::Relaxed);
        FAULTED.store(true, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }

    /// Whether the Thumb instruction whose first halfword is `hw` is 32 bits long.
    fn is_thumb32(hw: u16) -> bool {
        matches!(hw >> 11, 0b11101..=0b11111)
    }

    /// The BusFault building block: returns `true` when the fault was a guarded read's (then
    /// the stacked PC was moved past the load and the handler may return), `false` when the
    /// fault is someone else's (the handler must not return to it).
    ///
    /// # Safety
    /// Call only from the BusFault handler, with the frame the core stacked on entry.
    pub unsafe fn on_bus_fault(frame: &mut ExceptionFrame) -> bool {
        if !ACTIVE.load(Ordering::Relaxed) {
            return false;
        }
        let scb = SCB::PTR;
        // SAFETY: reads of the core's fault status and address registers.
        let (cfsr, bfar) = unsafe { ((*scb).cfsr.read(), (*scb).bfar.read()) };
        // Only a precise data fault names the load and can be skipped.
        if cfsr & PRECISERR == 0 {
            return false;
        }
        let ecc = ecc_fault_addr();
        let (addr, unit) = match (cfsr & BFARVALID != 0, ecc) {
            (true, _) => (bfar, 1),
            (false, Some(a)) => a,
            (false, None) => return false,
        };
        if !in_guarded_range(addr, unit) {
            return false;
        }
        // SAFETY: write-1-to-clear of the two BusFault bits consumed here.
        unsafe { (*scb).cfsr.write(PRECISERR | BFARVALID) };
        let pc = frame.pc();
        // SAFETY: the stacked PC of a precise fault is the faulting instruction, code of
        // this program in readable memory.
        let first = unsafe { (pc as *const u16).read_volatile() };
        let size = if is_thumb32(first) { 4 } else { 2 };
        // SAFETY: resumes at the instruction after the load, inside `guarded_read`.
        unsafe { frame.set_pc(pc.wrapping_add(size)) };
        record(addr);
        true
    }

    /// H7: the failing flash word from FLASH_ECC_FAxR of the bank that flagged DBECCERR
    /// (clearing the flag), and the ECC unit size.
    #[cfg(feature = "family-h7")]
    fn ecc_fault_addr() -> Option<(u32, u32)> {
        use stm32_metapac::FLASH;
        let banks = crate::flash::CHIP_PART.geometry.banks;
        for (b, bank) in banks.iter().enumerate().take(2) {
            let r = FLASH.bank(b);
            if r.sr().read().dbeccerr() {
                let word = u32::from(r.far().read().fail_ecc_addr());
                r.ccr().write(|w| w.set_clr_dbeccerr(true));
                return Some((bank.base + word * 32, 32));
            }
        }
        None
    }

    #[cfg(not(feature = "family-h7"))]
    fn ecc_fault_addr() -> Option<(u32, u32)> {
        None
    }

    /// The NMI building block (L4 double-ECC): returns `true` when FLASH_ECCR.ECCD reports a
    /// double word inside a guarded read (ECCD is then cleared and the handler may return),
    /// `false` otherwise (ECCD left set for the binary's own handling).
    ///
    /// # Safety
    /// Call only from the NMI handler.
    #[cfg(feature = "family-l4")]
    pub unsafe fn on_nmi() -> bool {
        use stm32_metapac::FLASH;
        let eccr = FLASH.eccr().read();
        if !eccr.eccd() || eccr.sysf_ecc() {
            return false;
        }
        let banks = crate::flash::CHIP_PART.geometry.banks;
        let bank = usize::from(eccr.bk_ecc());
        let Some(base) = banks.get(bank).map(|b| b.base) else {
            return false;
        };
        let addr = base + eccr.addr_ecc();
        if !in_guarded_range(addr, 8) {
            return false;
        }
        // ECCD is write-1-to-clear; writing back the other bits keeps ECCIE.
        FLASH.eccr().modify(|w| w.set_eccd(true));
        record(addr);
        true
    }
}

/// Installs the BusFault (and on L4 the NMI) handler that turns a fault during a guarded
/// read into an error; any other fault calls `$fatal`, a `fn() -> !` of the binary.
///
/// Put it once at the top level of the binary (which must not define `BusFault` or, on L4,
/// `NonMaskableInt` itself) and call [`guard::init`](crate::guard::init) at start-up:
///
/// ```ignore
/// fn fatal_fault() -> ! { cortex_m::peripheral::SCB::sys_reset() }
/// brickless_stm32::install_fault_handlers!(fatal_fault);
/// ```
///
/// On L0 it expands to nothing.
#[cfg(not(feature = "family-l0"))]
#[macro_export]
macro_rules! install_fault_handlers {
    ($fatal:path) => {
        #[doc(hidden)]
        extern "C" fn __brickless_bus_fault(frame: *mut $crate::guard::ExceptionFrame) {
            // SAFETY: the trampoline below passes the frame the core stacked for BusFault.
            let handled = match unsafe { frame.as_mut() } {
                Some(f) => unsafe { $crate::guard::on_bus_fault(f) },
                None => false,
            };
            if !handled {
                $fatal()
            }
        }
        // The handler needs the stacked frame: take MSP or PSP as EXC_RETURN says, then
        // tail-call, so the Rust function's return is the exception return.
        ::core::arch::global_asm!(
            ".pushsection .text.BusFault,\"ax\",%progbits",
            ".syntax unified",
            ".thumb",
            ".global BusFault",
            ".type BusFault,%function",
            ".thumb_func",
            "BusFault:",
            "tst lr, #4",
            "ite eq",
            "mrseq r0, msp",
            "mrsne r0, psp",
            "b {entry}",
            ".size BusFault, . - BusFault",
            ".popsection",
            entry = sym __brickless_bus_fault,
        );
        $crate::__brickless_nmi_handler!($fatal);
    };
}

/// On L0 there is nothing to install.
#[cfg(feature = "family-l0")]
#[macro_export]
macro_rules! install_fault_handlers {
    ($fatal:path) => {
        const _: fn() -> ! = $fatal;
    };
}

#[cfg(feature = "family-l4")]
#[doc(hidden)]
#[macro_export]
macro_rules! __brickless_nmi_handler {
    ($fatal:path) => {
        #[doc(hidden)]
        #[allow(non_snake_case)]
        #[unsafe(no_mangle)]
        pub extern "C" fn NonMaskableInt() {
            // SAFETY: this is the NMI handler.
            if !unsafe { $crate::guard::on_nmi() } {
                $fatal()
            }
        }
    };
}

#[cfg(any(feature = "family-h7", feature = "family-f4", feature = "family-f7"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __brickless_nmi_handler {
    ($fatal:path) => {};
}
