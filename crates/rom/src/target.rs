//! The one interface every ROM bootloader host implements (AN3155 USART, AN4221 I2C, DfuSe),
//! so the CLI and the program/verify loops in [`crate::program`] are written once.

use crate::device::RomDevice;

/// What kind of failure a host error is, the same across AN3155, AN4221 and DfuSe, so a
/// caller can react (or explain) without knowing which host it talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The link itself failed (port, bus, USB transfer).
    Link,
    /// The device did not answer in time.
    Timeout,
    /// The device refused the request (NACK, or a DFU error status).
    Nack,
    /// No answer to the USART sync byte.
    NoSync,
    /// Read-out protection is active.
    ReadProtected,
    /// A byte that makes no sense here (line noise, wrong baud or parity).
    Noise,
    /// The device's memory does not hold what was written.
    Verify,
    /// The address is outside the device's flash or memory layout.
    OutsideFlash,
    /// The bootloader or the host cannot do this.
    Unsupported,
    /// The caller asked for something the protocol cannot carry.
    InvalidArgument,
    /// Any other protocol failure (malformed reply, unexpected state).
    Protocol,
}

/// An error of a ROM bootloader host: it says what kind of failure it is.
pub trait TargetError: core::fmt::Debug + core::fmt::Display {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;
}

/// What to erase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Erase<'a> {
    /// Erase pages (sectors on F4/F7/H7) by their global bootloader page number.
    Pages(&'a [u16]),
    /// Erase one bank (0-based: 0 is bank 1).
    Bank(u8),
    /// Erase the whole user flash.
    Mass,
}

/// Read-protection level as reported by a bootloader, when it tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadProtection {
    /// Off: memory reads are allowed (seen after Readout Unprotect).
    Inactive,
    /// On: the bootloader refuses Read/Write Memory (RDP level 1).
    Active,
    /// Not known yet: no command has shown it.
    Unknown,
}

/// What a host learned when it connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetInfo {
    /// Product ID (Get ID).
    pub pid: u16,
    /// Bootloader protocol version byte (Get / Get Version), e.g. 0x31 for V3.1.
    pub protocol_version: u8,
    /// The device table entry for `pid`, if known.
    pub device: Option<&'static RomDevice>,
    /// Read-out protection as far as the host has seen it; updated by later commands.
    pub read_protection: ReadProtection,
}

/// A connected STM32 ROM bootloader.
///
/// Reads and writes take at most [`RomTarget::max_transfer`] bytes; the loops in
/// [`crate::program`] split larger work and report progress. A host never reports success for
/// a write the device did not acknowledge.
pub trait RomTarget {
    /// The host's error (its [`TargetError::kind`] when it implements that trait).
    type Error: core::fmt::Debug;

    /// Identity of the connected device (cached after connecting).
    fn info(&self) -> TargetInfo;

    /// The largest single Read/Write Memory payload (256 on AN3155/AN4221).
    fn max_transfer(&self) -> usize;

    /// Reads `buf.len()` (1..=max_transfer) bytes at `addr`.
    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Writes `data` (1..=max_transfer bytes) at `addr`. The host pads to the protocol's
    /// unit; callers pad to the flash write unit ([`crate::program`] does).
    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), Self::Error>;

    /// Erases pages, a bank or the whole flash; the host splits long page lists.
    fn erase(&mut self, what: Erase<'_>) -> Result<(), Self::Error>;

    /// Starts the code whose vector table is at `addr` (MSP from `addr`, PC from `addr + 4`).
    fn go(&mut self, addr: u32) -> Result<(), Self::Error>;

    /// Write-protects the given sectors (the device resets afterwards).
    fn write_protect(&mut self, sectors: &[u16]) -> Result<(), Self::Error>;

    /// Removes all write protection (the device resets afterwards).
    fn write_unprotect(&mut self) -> Result<(), Self::Error>;

    /// Enables read-out protection (the device resets afterwards).
    fn readout_protect(&mut self) -> Result<(), Self::Error>;

    /// Removes read-out protection: the device mass-erases its flash and resets.
    fn readout_unprotect(&mut self) -> Result<(), Self::Error>;

    /// CRC-32 (STM32 CRC unit: poly 0x04C11DB7, init 0xFFFFFFFF, words little-endian) of
    /// `[addr, addr + len)` computed by the device, or `Ok(None)` when it cannot.
    fn checksum(&mut self, addr: u32, len: u32) -> Result<Option<u32>, Self::Error> {
        let _ = (addr, len);
        Ok(None)
    }
}

/// A borrowed target is a target; `&mut *boxed` turns a `Box<dyn RomTarget>` into one.
impl<T: RomTarget + ?Sized> RomTarget for &mut T {
    type Error = T::Error;
    fn info(&self) -> TargetInfo {
        (**self).info()
    }
    fn max_transfer(&self) -> usize {
        (**self).max_transfer()
    }
    fn read_memory(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_memory(addr, buf)
    }
    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), Self::Error> {
        (**self).write_memory(addr, data)
    }
    fn erase(&mut self, what: Erase<'_>) -> Result<(), Self::Error> {
        (**self).erase(what)
    }
    fn go(&mut self, addr: u32) -> Result<(), Self::Error> {
        (**self).go(addr)
    }
    fn write_protect(&mut self, sectors: &[u16]) -> Result<(), Self::Error> {
        (**self).write_protect(sectors)
    }
    fn write_unprotect(&mut self) -> Result<(), Self::Error> {
        (**self).write_unprotect()
    }
    fn readout_protect(&mut self) -> Result<(), Self::Error> {
        (**self).readout_protect()
    }
    fn readout_unprotect(&mut self) -> Result<(), Self::Error> {
        (**self).readout_unprotect()
    }
    fn checksum(&mut self, addr: u32, len: u32) -> Result<Option<u32>, Self::Error> {
        (**self).checksum(addr, len)
    }
}

/// CRC-32 as the STM32 CRC unit and the AN3155 Get Checksum command compute it: polynomial
/// 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final XOR, over 32-bit little-endian words.
/// Continue a running CRC by passing the previous value as `crc`; `data.len()` must be a
/// multiple of 4 (a tail is ignored).
pub fn stm32_crc32(crc: u32, data: &[u8]) -> u32 {
    // CRC-32/MPEG-2 fed each word most significant byte first; table-less, as a 1 KiB table
    // would cost flash on the MCU-side host.
    const MPEG2: crc::Crc<u32, crc::NoTable> =
        crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_MPEG_2);
    let mut digest = MPEG2.digest_with_initial(crc);
    for word in data.chunks_exact(4) {
        digest.update(&[word[3], word[2], word[1], word[0]]);
    }
    digest.finalize()
}

/// Initial value for [`stm32_crc32`].
pub const STM32_CRC_INIT: u32 = 0xFFFF_FFFF;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_stm32_crc_unit() {
        // One word 0x00000000 through the STM32 CRC unit gives 0xC704DD7B (RM0090 examples).
        assert_eq!(stm32_crc32(STM32_CRC_INIT, &[0, 0, 0, 0]), 0xC704_DD7B);
        // Words are read little-endian: "12345678" is CRC-32/MPEG-2 of "43218765".
        assert_eq!(stm32_crc32(STM32_CRC_INIT, b"12345678"), 0xFEFC_54F9);
        // Chaining equals one pass.
        let data: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
        let once = stm32_crc32(STM32_CRC_INIT, &data);
        let chained = stm32_crc32(stm32_crc32(STM32_CRC_INIT, &data[..4]), &data[4..]);
        assert_eq!(once, chained);
        assert_ne!(once, STM32_CRC_INIT);
    }
}
