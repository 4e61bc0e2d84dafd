//! The device core of the virtual ST ROM bootloader: one part's memories and protection state,
//! with the memory operations the USART, I2C and DfuSe servers all call.
//!
//! Memories: flash (the faithful [`SimFlash`], so the servers see the real part's write-once
//! units, ECC faults and erase rules), the RAM the bootloader leaves to the host, the
//! system-memory words tools read (flash size, 96-bit unique ID), and the option bytes where
//! the bootloader maps them. State: read-out protection (RDP level 1) and per-sector write
//! protection. Page numbers are the bootloader's (global across banks, from
//! [`RomDevice::page`]).

use brickless_flash::{Geometry, Part};
use brickless_flash_model::{SimFlash, SimFlashError};
use brickless_rom::an3155::cmd;
use brickless_rom::device::{MemRange, Quirks, RomDevice};
use brickless_rom::target::{stm32_crc32, STM32_CRC_INIT};

/// The commands every ROM bootloader lists in its Get reply, in ST's order: USART and I2C
/// alike (the I2C no-stretch commands and Get Checksum come after these).
pub const BASE_COMMANDS: [u8; 11] = [
    cmd::GET,
    cmd::GET_VERSION,
    cmd::GET_ID,
    cmd::READ_MEMORY,
    cmd::GO,
    cmd::WRITE_MEMORY,
    cmd::EXTENDED_ERASE,
    cmd::WRITE_PROTECT,
    cmd::WRITE_UNPROTECT,
    cmd::READOUT_PROTECT,
    cmd::READOUT_UNPROTECT,
];

/// Why the bootloader refuses an operation (the servers answer NACK).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RomError {
    /// The range is not wholly inside one memory this command may access.
    #[error("{len} bytes at {addr:#010x} are not accessible to the bootloader")]
    NotMapped {
        /// Absolute start address asked for.
        addr: u32,
        /// Length in bytes.
        len: u32,
    },
    /// Read-out protection (RDP level 1) is active and refuses the operation.
    #[error("read-out protection is active")]
    ReadProtected,
    /// A sector the operation touches is write-protected.
    #[error("sector {page} is write-protected")]
    WriteProtected {
        /// Bootloader page number of the first protected sector found.
        page: u16,
    },
    /// No erasable sector has this bootloader page number.
    #[error("no page {0}")]
    NoSuchPage(u16),
    /// The part has no bank with this 0-based index.
    #[error("no bank {0}")]
    NoSuchBank(u8),
    /// The part's bootloader has no mass erase ([`Quirks::NO_MASS_ERASE`], L0/L1).
    #[error("this bootloader has no mass erase")]
    NoMassErase,
    /// The flash model refused a program or erase, or a read hit an ECC fault.
    #[error("flash refused: {0}")]
    Flash(SimFlashError),
    /// Get Checksum's address or length is not a multiple of 4.
    #[error("checksum range must be word-aligned")]
    Unaligned,
}

/// Where a Go command lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoTarget {
    /// User flash: the application starts (the virtual device resets back into the ROM).
    Flash {
        /// Initial stack pointer: the word at the Go address.
        sp: u32,
        /// Reset handler: the word at the Go address + 4.
        pc: u32,
    },
    /// RAM: host code such as stm32flash's reset stub (treated as a system reset).
    Ram,
}

/// What changed, for servers that print a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// User flash.
    Flash,
    /// The RAM the bootloader leaves to the host.
    Ram,
    /// The ROM itself (reads as zeros, not writable).
    SystemMemory,
    /// The option bytes, where the bootloader maps them.
    OptionBytes,
    /// The flash size register (u16, KiB).
    FlashSize,
    /// The 96-bit unique device ID.
    UniqueId,
}

/// One virtual part running its ROM bootloader.
pub struct RomCore {
    /// The part's entry in the ROM device table.
    pub device: &'static RomDevice,
    flash: SimFlash,
    ram: Vec<u8>,
    option_bytes: Vec<u8>,
    uid: [u8; 12],
    flash_size_kib: u16,
    read_protected: bool,
    write_protected: Vec<bool>,
    /// Set by every flash/option change; the owner persists and clears it.
    dirty: bool,
}

impl RomCore {
    /// A core for `device` over `flash` (whose geometry is the real part's).
    pub fn new(device: &'static RomDevice, flash: SimFlash) -> Self {
        let total = flash.geometry().total_size();
        let ram = vec![0u8; device.ram.len() as usize];
        let option_bytes = device
            .option_bytes
            .map_or_else(Vec::new, |r| vec![0xFF; r.len().min(4096) as usize]);
        let mut uid = [0u8; 12];
        // Deterministic per PID, so tools see the same ID across runs.
        let mut x = 0x9E37_79B9u32 ^ u32::from(device.pid);
        for b in &mut uid {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        RomCore {
            device,
            write_protected: vec![false; usize::from(device.page_count())],
            flash,
            ram,
            option_bytes,
            uid,
            flash_size_kib: u16::try_from(total / 1024).unwrap_or(u16::MAX),
            read_protected: false,
            dirty: false,
        }
    }

    /// A core for `device` over an erased model of [`device_part`].
    pub fn erased(device: &'static RomDevice) -> Self {
        Self::new(device, SimFlash::new(device_part(device)))
    }

    /// The flash model.
    pub fn flash(&self) -> &SimFlash {
        &self.flash
    }

    /// The flash model, for changes behind the bootloader's back (tests, preloaded images).
    pub fn flash_mut(&mut self) -> &mut SimFlash {
        &mut self.flash
    }

    /// The part's flash layout.
    pub fn geometry(&self) -> &Geometry {
        self.flash.geometry()
    }

    /// The product ID Get ID answers.
    pub fn pid(&self) -> u16 {
        self.device.pid
    }

    /// True while read-out protection (RDP level 1) is active.
    pub fn is_read_protected(&self) -> bool {
        self.read_protected
    }

    /// Sets or clears RDP directly: no erase, no dirty mark (test setup).
    pub fn set_read_protected(&mut self, on: bool) {
        self.read_protected = on;
    }

    /// The 96-bit unique ID at [`RomDevice::uid_addr`]; derived from the PID, so the same every run.
    pub fn unique_id(&self) -> [u8; 12] {
        self.uid
    }

    /// True once after flash or option bytes changed.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn region(&self, addr: u32, len: u32) -> Option<Region> {
        let d = self.device;
        let span = |r: MemRange| r.contains_span(addr, len);
        if self.flash.geometry().contains_range(addr, len.max(1)) {
            Some(Region::Flash)
        } else if span(d.ram) {
            Some(Region::Ram)
        } else if span(MemRange::new(d.flash_size_addr, d.flash_size_addr + 2)) {
            Some(Region::FlashSize)
        } else if span(MemRange::new(d.uid_addr, d.uid_addr + 12)) {
            Some(Region::UniqueId)
        } else if d.option_bytes.is_some_and(span) {
            Some(Region::OptionBytes)
        } else if span(d.system_memory) {
            Some(Region::SystemMemory)
        } else {
            None
        }
    }

    /// Whether Read Memory accepts this address (checked at the address frame).
    pub fn is_readable(&self, addr: u32) -> bool {
        self.region(addr, 1).is_some()
    }

    /// Whether Write Memory accepts this address.
    pub fn is_writable(&self, addr: u32) -> bool {
        matches!(
            self.region(addr, 1),
            Some(Region::Flash | Region::Ram | Region::OptionBytes)
        )
    }

    /// Read Memory.
    pub fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), RomError> {
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        let len = buf.len() as u32;
        let not_mapped = RomError::NotMapped { addr, len };
        let d = self.device;
        match self.region(addr, len).ok_or(not_mapped.clone())? {
            Region::Flash => self.flash.read_abs(addr, buf).map_err(RomError::Flash),
            Region::Ram => {
                let off = (addr - d.ram.start) as usize;
                buf.copy_from_slice(self.ram.get(off..off + buf.len()).ok_or(not_mapped)?);
                Ok(())
            }
            Region::FlashSize => {
                let bytes = self.flash_size_kib.to_le_bytes();
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = bytes[(addr - d.flash_size_addr) as usize + i];
                }
                Ok(())
            }
            Region::UniqueId => {
                let off = (addr - d.uid_addr) as usize;
                buf.copy_from_slice(self.uid.get(off..off + buf.len()).ok_or(not_mapped)?);
                Ok(())
            }
            Region::OptionBytes => {
                let off = (addr - d.option_bytes.map_or(0, |r| r.start)) as usize;
                let src = self
                    .option_bytes
                    .get(off..off + buf.len())
                    .ok_or(not_mapped)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            // The ROM's own code: not modelled, reads as zeros.
            Region::SystemMemory => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    /// Write Memory. Flash writes are widened to whole write units (the ROM fills a partial
    /// flash word with the erased value), so every unit is programmed once.
    pub fn write(&mut self, addr: u32, data: &[u8]) -> Result<Region, RomError> {
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        let len = data.len() as u32;
        let not_mapped = RomError::NotMapped { addr, len };
        let region = self.region(addr, len).ok_or(not_mapped.clone())?;
        match region {
            Region::Flash => {
                self.check_wrp(addr, len)?;
                let geometry = self.flash.geometry();
                let unit = geometry.write_unit.max(1);
                let erased = geometry.erased;
                let start = addr / unit * unit;
                let end = (addr + len).div_ceil(unit) * unit;
                let mut buf = vec![erased; (end - start) as usize];
                let off = (addr - start) as usize;
                buf[off..off + data.len()].copy_from_slice(data);
                self.dirty = true;
                self.flash
                    .program_abs(start, &buf)
                    .map_err(RomError::Flash)?;
            }
            Region::Ram => {
                let off = (addr - self.device.ram.start) as usize;
                self.ram
                    .get_mut(off..off + data.len())
                    .ok_or(not_mapped)?
                    .copy_from_slice(data);
            }
            Region::OptionBytes => {
                let off = (addr - self.device.option_bytes.map_or(0, |r| r.start)) as usize;
                let dst = self
                    .option_bytes
                    .get_mut(off..off + data.len())
                    .ok_or(not_mapped)?;
                dst.copy_from_slice(data);
                self.dirty = true;
            }
            _ => return Err(not_mapped),
        }
        Ok(region)
    }

    fn check_wrp(&self, addr: u32, len: u32) -> Result<(), RomError> {
        let last = addr + len.max(1) - 1;
        let (Some(first), Some(end)) = (self.device.page_index(addr), self.device.page_index(last))
        else {
            return Ok(());
        };
        for page in first..=end {
            if self
                .write_protected
                .get(usize::from(page))
                .copied()
                .unwrap_or(false)
            {
                return Err(RomError::WriteProtected { page });
            }
        }
        Ok(())
    }

    /// Erases pages by bootloader page number (all checked before any is erased).
    pub fn erase_pages(&mut self, pages: &[u16]) -> Result<(), RomError> {
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        for &p in pages {
            let s = self.device.page(p).ok_or(RomError::NoSuchPage(p))?;
            if !self
                .flash
                .geometry()
                .is_erasable_range(s.addr, s.addr + s.size)
            {
                return Err(RomError::NoSuchPage(p));
            }
            if self
                .write_protected
                .get(usize::from(p))
                .copied()
                .unwrap_or(false)
            {
                return Err(RomError::WriteProtected { page: p });
            }
        }
        for &p in pages {
            let s = self.device.page(p).ok_or(RomError::NoSuchPage(p))?;
            self.dirty = true;
            self.flash
                .erase_abs(s.addr, s.addr + s.size)
                .map_err(RomError::Flash)?;
        }
        Ok(())
    }

    /// Bank erase (0-based bank).
    pub fn erase_bank(&mut self, bank: u8) -> Result<(), RomError> {
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        let geometry = self.flash.geometry();
        let b = geometry
            .banks
            .get(usize::from(bank))
            .ok_or(RomError::NoSuchBank(bank))?;
        let (from, to) = (b.base, b.end());
        self.check_wrp(from, to - from)?;
        self.dirty = true;
        self.flash.erase_abs(from, to).map_err(RomError::Flash)
    }

    /// Mass erase (refused on parts without one, e.g. L0).
    pub fn mass_erase(&mut self) -> Result<(), RomError> {
        if self.device.quirks.contains(Quirks::NO_MASS_ERASE) {
            return Err(RomError::NoMassErase);
        }
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        if self.write_protected.iter().any(|w| *w) {
            let page = self.write_protected.iter().position(|w| *w).unwrap_or(0) as u16;
            return Err(RomError::WriteProtected { page });
        }
        self.erase_all_flash()
    }

    fn erase_all_flash(&mut self) -> Result<(), RomError> {
        self.dirty = true;
        // The geometry is a copy of `'static` tables, so erasing does not borrow it.
        let geometry = *self.flash.geometry();
        for bank in geometry.banks {
            self.flash
                .erase_abs(bank.base, bank.end())
                .map_err(RomError::Flash)?;
        }
        Ok(())
    }

    /// Go: checks the target and reads the vector table when it is in flash.
    pub fn go(&self, addr: u32) -> Result<GoTarget, RomError> {
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        match self.region(addr, 4) {
            Some(Region::Flash) => {
                let mut v = [0u8; 8];
                self.flash.read_abs(addr, &mut v).map_err(RomError::Flash)?;
                Ok(GoTarget::Flash {
                    sp: u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
                    pc: u32::from_le_bytes([v[4], v[5], v[6], v[7]]),
                })
            }
            Some(Region::Ram) => Ok(GoTarget::Ram),
            _ => Err(RomError::NotMapped { addr, len: 4 }),
        }
    }

    /// Write Protect: protects the listed sectors (effective after the reset that follows).
    pub fn write_protect(&mut self, pages: &[u16]) -> Result<(), RomError> {
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        for &p in pages {
            if usize::from(p) >= self.write_protected.len() {
                return Err(RomError::NoSuchPage(p));
            }
        }
        for &p in pages {
            self.write_protected[usize::from(p)] = true;
        }
        self.dirty = true;
        Ok(())
    }

    /// Write Unprotect: clears the write protection of every sector.
    pub fn write_unprotect(&mut self) -> Result<(), RomError> {
        if self.read_protected {
            return Err(RomError::ReadProtected);
        }
        self.write_protected.iter_mut().for_each(|w| *w = false);
        self.dirty = true;
        Ok(())
    }

    /// True when the sector with bootloader page number `page` is write-protected.
    pub fn is_write_protected(&self, page: u16) -> bool {
        self.write_protected
            .get(usize::from(page))
            .copied()
            .unwrap_or(false)
    }

    /// Readout Protect: sets RDP level 1; reads, writes, erases and Go are refused from then on.
    pub fn readout_protect(&mut self) -> Result<(), RomError> {
        self.read_protected = true;
        self.dirty = true;
        Ok(())
    }

    /// Readout Unprotect: mass-erases the flash (even on parts without a mass-erase command)
    /// and clears RDP and write protection.
    pub fn readout_unprotect(&mut self) -> Result<(), RomError> {
        self.write_protected.iter_mut().for_each(|w| *w = false);
        self.erase_all_flash()?;
        self.read_protected = false;
        Ok(())
    }

    /// Get Checksum: the STM32 CRC-32 of `[addr, addr + len)`.
    pub fn checksum(&self, addr: u32, len: u32) -> Result<u32, RomError> {
        if addr % 4 != 0 || len % 4 != 0 {
            return Err(RomError::Unaligned);
        }
        let mut crc = STM32_CRC_INIT;
        let mut buf = [0u8; 1024];
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(1024);
            let chunk = &mut buf[..n as usize];
            self.read(addr + done, chunk)?;
            crc = stm32_crc32(crc, chunk);
            done += n;
        }
        Ok(crc)
    }

    /// State that lives in option bytes (RDP, WRP), for persistence next to the flash file.
    pub fn protection_state(&self) -> (bool, Vec<u16>) {
        let pages = self
            .write_protected
            .iter()
            .enumerate()
            .filter(|(_, w)| **w)
            .map(|(i, _)| i as u16)
            .collect();
        (self.read_protected, pages)
    }

    /// Restores RDP and adds write protection of `pages`, as [`Self::protection_state`] saved
    /// them; unknown page numbers are ignored.
    pub fn restore_protection(&mut self, read_protected: bool, pages: &[u16]) {
        self.read_protected = read_protected;
        for &p in pages {
            if let Some(w) = self.write_protected.get_mut(usize::from(p)) {
                *w = true;
            }
        }
    }
}

/// The part whose flash the bootloader of `device` sees: the one the ROM device table takes
/// its geometry from (the family maximum).
pub fn device_part(device: &RomDevice) -> &'static Part {
    brickless_flash::PARTS
        .iter()
        .find(|p| p.pid == device.pid && p.geometry == *device.geometry)
        .expect("every ROM device takes its geometry from a part in the flash table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_over_the_flash_model() {
        let part = brickless_flash::part("stm32l475vg").unwrap();
        let d = brickless_rom::by_pid(part.pid).unwrap();
        let mut core = RomCore::new(d, brickless_flash_model::SimFlash::new(part));
        core.write(0x0807_FFF8, &[7; 16]).unwrap();
        let mut b = [0u8; 16];
        core.read(0x0807_FFF8, &mut b).unwrap();
        assert_eq!(b, [7; 16]);
        // The model refuses a second program of an L4 double word (PROGERR).
        assert!(matches!(
            core.write(0x0807_FFF8, &[1; 8]),
            Err(RomError::Flash(_))
        ));
    }

    fn h7() -> RomCore {
        RomCore::erased(brickless_rom::by_pid(0x450).unwrap())
    }

    #[test]
    fn every_rom_device_has_its_part() {
        for d in brickless_rom::device::DEVICES {
            assert_eq!(device_part(d).pid, d.pid, "{}", d.name);
        }
    }

    #[test]
    fn write_pads_to_flash_word_and_a_second_program_poisons_it() {
        let mut core = h7();
        core.write(0x0800_0000, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 32];
        core.read(0x0800_0000, &mut b).unwrap();
        assert_eq!(&b[..4], &[1, 2, 3, 4]);
        assert!(b[4..].iter().all(|&x| x == 0xFF));
        // The rest of that 32-byte flash word is used up: the H7 controller accepts a second
        // program silently and the word then faults on read.
        core.write(0x0800_0004, &[5; 4]).unwrap();
        assert_eq!(
            core.read(0x0800_0000, &mut b),
            Err(RomError::Flash(SimFlashError::Ecc { addr: 0x0800_0000 }))
        );
        core.erase_pages(&[0]).unwrap();
        core.write(0x0800_0004, &[5; 4]).unwrap();
    }

    #[test]
    fn system_words_and_protection() {
        let mut core = h7();
        let mut size = [0u8; 2];
        core.read(0x1FF1_E880, &mut size).unwrap();
        assert_eq!(u16::from_le_bytes(size), 2048);
        core.write_protect(&[1]).unwrap();
        assert_eq!(
            core.erase_pages(&[1]),
            Err(RomError::WriteProtected { page: 1 })
        );
        assert!(core.write(0x0802_0000, &[0; 4]).is_err());
        core.write_unprotect().unwrap();
        core.write(0x0802_0000, &[0; 32]).unwrap();
        core.readout_protect().unwrap();
        assert_eq!(
            core.read(0x0802_0000, &mut [0; 4]),
            Err(RomError::ReadProtected)
        );
        core.readout_unprotect().unwrap();
        let mut b = [0u8; 4];
        core.read(0x0802_0000, &mut b).unwrap();
        assert_eq!(b, [0xFF; 4], "readout unprotect mass-erases");
        assert!(core.read(0x3000_0000, &mut b).is_err());
    }

    #[test]
    fn l0_has_no_mass_erase_and_checksum_matches() {
        let d = brickless_rom::by_pid(0x447).unwrap();
        let mut core = RomCore::erased(d);
        assert_eq!(core.mass_erase(), Err(RomError::NoMassErase));
        core.write(0x0800_0000, b"12345678").unwrap();
        assert_eq!(core.checksum(0x0800_0000, 8).unwrap(), 0xFEFC_54F9);
    }
}
