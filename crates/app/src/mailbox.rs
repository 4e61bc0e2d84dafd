//! The RAM mailbox shared with the bootloader: 16 words at the top of RAM, at the linker
//! symbol `_brickless_handoff` (see `linker/README.md`). The word layout and the codec are
//! [`brickless_boot::handoff`]'s; this module reads and writes them.
//!
//! [`Handoff`] works over any `[u32; 16]` (host tests, or a copy). On the target
//! (`target_arch = "arm"`, `target_os = "none"`) the free functions access the real mailbox
//! with volatile reads and writes, word by word: `boot_info`, `request_recovery`, `reset`,
//! `enter_recovery` for the application, and the `unsafe` ones the bootloader calls before
//! it runs the engine and before it jumps (`take_request`, `bump_reset_count`,
//! `clear_reset_count`, `write_boot_info`). They exist on that target only (their docs are
//! in the target build's documentation).
use brickless_boot::handoff::{
    request, reset_count, reset_count_word, set_request, HANDOFF_WORDS, RESET_COUNT_WORD,
};
pub use brickless_boot::handoff::{BootInfo, Request, ResetCause};
pub use brickless_boot::BootEvent;

/// The mailbox over a plain array of its 16 words.
#[derive(Debug)]
pub struct Handoff<'a>(&'a mut [u32; HANDOFF_WORDS]);

impl<'a> Handoff<'a> {
    /// The mailbox held in `words`.
    pub fn new(words: &'a mut [u32; HANDOFF_WORDS]) -> Self {
        Handoff(words)
    }

    /// The words as they stand.
    pub fn words(&self) -> &[u32; HANDOFF_WORDS] {
        self.0
    }

    /// What the bootloader wrote about this boot; `None` when the words hold no valid info.
    pub fn boot_info(&self) -> Option<BootInfo> {
        BootInfo::decode(self.0)
    }

    /// Writes the boot info (the bootloader, before it starts the image).
    pub fn write_boot_info(&mut self, info: &BootInfo) {
        info.encode(self.0);
    }

    /// The application's request.
    pub fn request(&self) -> Request {
        request(self.0)
    }

    /// Asks the bootloader to stay in recovery at the next reset.
    pub fn request_recovery(&mut self) {
        set_request(self.0, Request::Recovery);
    }

    /// Reads the request and clears it (the bootloader, at reset: a request is served once).
    pub fn take_request(&mut self) -> Request {
        let r = self.request();
        set_request(self.0, Request::None);
        r
    }

    /// The bootloader's reset count (0 when the counter word holds none).
    pub fn reset_count(&self) -> u16 {
        reset_count(self.0[RESET_COUNT_WORD])
    }

    /// Counts one more reset (saturating) and returns the new count.
    pub fn bump_reset_count(&mut self) -> u16 {
        let n = self.reset_count().saturating_add(1);
        self.0[RESET_COUNT_WORD] = reset_count_word(n);
        n
    }

    /// Clears the reset counter.
    pub fn clear_reset_count(&mut self) {
        self.0[RESET_COUNT_WORD] = 0;
    }
}

#[cfg(all(target_arch = "arm", target_os = "none"))]
pub use target::*;

#[cfg(all(target_arch = "arm", target_os = "none"))]
#[allow(unsafe_code)]
mod target {
    use super::{BootInfo, Handoff, Request, HANDOFF_WORDS};

    extern "C" {
        /// The mailbox: 64 bytes at the top of RAM that both programs' linker scripts leave
        /// out of RAM (so no startup code zeroes or initialises them, and no stack, heap or
        /// static lies there).
        static mut _brickless_handoff: [u32; HANDOFF_WORDS];
    }

    /// Pointer to word `i` (< 16) of the mailbox.
    fn word(i: usize) -> *mut u32 {
        // SAFETY: only the address of the extern static is taken (no reference, no access);
        // `i < HANDOFF_WORDS` keeps the offset inside the 64-byte object.
        unsafe {
            core::ptr::addr_of_mut!(_brickless_handoff)
                .cast::<u32>()
                .add(i % HANDOFF_WORDS)
        }
    }

    /// A copy of the mailbox words, read one volatile word at a time.
    fn read_all() -> [u32; HANDOFF_WORDS] {
        let mut words = [0u32; HANDOFF_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            // SAFETY: `word(i)` is an aligned, in-bounds word of a region the linker script
            // reserves for the mailbox: no Rust object of this program lives there, so a
            // volatile read aliases nothing; any bit pattern is a valid `u32`.
            *w = unsafe { core::ptr::read_volatile(word(i)) };
        }
        words
    }

    /// Writes the words that differ from `before`, one volatile word at a time.
    fn write_changed(before: &[u32; HANDOFF_WORDS], after: &[u32; HANDOFF_WORDS]) {
        for i in 0..HANDOFF_WORDS {
            if before[i] != after[i] {
                // SAFETY: as in `read_all`: an aligned, in-bounds word of the reserved
                // region, which no Rust object of this program overlaps.
                unsafe { core::ptr::write_volatile(word(i), after[i]) };
            }
        }
    }

    /// Runs `f` on a copy of the mailbox and writes back the words it changed.
    fn update<R>(f: impl FnOnce(&mut Handoff<'_>) -> R) -> R {
        let before = read_all();
        let mut after = before;
        let r = f(&mut Handoff::new(&mut after));
        write_changed(&before, &after);
        r
    }

    /// What the bootloader wrote about this boot (slot, versions, trial, what it did, reset
    /// cause); `None` when the mailbox holds no valid info (e.g. started by a debugger
    /// without the bootloader).
    pub fn boot_info() -> Option<BootInfo> {
        BootInfo::decode(&read_all())
    }

    /// Asks the bootloader to stay in recovery at the next reset (one volatile word write;
    /// call [`reset`] next, or use [`enter_recovery`]).
    pub fn request_recovery() {
        update(|h| h.request_recovery());
    }

    /// Resets the chip (`SYSRESETREQ`).
    pub fn reset() -> ! {
        cortex_m::peripheral::SCB::sys_reset()
    }

    /// Asks for recovery and resets: the bootloader then serves its recovery (e.g. SMP on
    /// the console) instead of starting this image.
    pub fn enter_recovery() -> ! {
        request_recovery();
        reset()
    }

    /// For the bootloader: reads the application's request and clears it.
    ///
    /// # Safety
    ///
    /// The linker script must reserve `_brickless_handoff` (64 bytes, word-aligned) outside
    /// the program's RAM, and nothing else may access the mailbox meanwhile (call it before
    /// enabling interrupts that touch it).
    pub unsafe fn take_request() -> Request {
        update(|h| h.take_request())
    }

    /// For the bootloader: counts one more reset in the mailbox and returns the count.
    ///
    /// # Safety
    ///
    /// As for [`take_request`].
    pub unsafe fn bump_reset_count() -> u16 {
        update(|h| h.bump_reset_count())
    }

    /// For the bootloader: clears the reset counter.
    ///
    /// # Safety
    ///
    /// As for [`take_request`].
    pub unsafe fn clear_reset_count() {
        update(|h| h.clear_reset_count());
    }

    /// For the bootloader: writes the boot info for the image it is about to start.
    ///
    /// # Safety
    ///
    /// As for [`take_request`].
    pub unsafe fn write_boot_info(info: &BootInfo) {
        update(|h| h.write_boot_info(info));
    }
}
