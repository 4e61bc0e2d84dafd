//! Reads that turn a double-ECC fault into an error value.
//!
//! On the device, the flash driver's read path traps the BusFault/NMI a double ECC error raises
//! (H7: `BFHFNMIGN` + FAULTMASK; L4/G4/U5: an NMI handler that checks ECCD) and returns an error
//! carrying the failing address; the simulated flash returns such an error directly. These
//! helpers give every caller one error shape for both.

use embedded_storage::nor_flash::{NorFlashErrorKind, ReadNorFlash};

/// A flash error that may be a double-ECC read fault.
pub trait EccReport {
    /// The absolute address of the faulting unit, if this error is a double-ECC fault.
    fn ecc_fault_addr(&self) -> Option<u32>;
}

impl EccReport for NorFlashErrorKind {
    fn ecc_fault_addr(&self) -> Option<u32> {
        None
    }
}

impl EccReport for core::convert::Infallible {
    fn ecc_fault_addr(&self) -> Option<u32> {
        match *self {}
    }
}

/// Why a tolerant read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFault<E> {
    /// A unit in the range has a double ECC error (torn program, partly erased sector).
    Ecc {
        /// Absolute address of the faulting unit, as [`EccReport::ecc_fault_addr`] gives it.
        addr: u32,
    },
    /// Any other flash error.
    Flash(E),
}

/// Reads `buf.len()` bytes at `offset`; a double-ECC fault becomes [`ReadFault::Ecc`].
pub fn read_tolerant<F>(
    flash: &mut F,
    offset: u32,
    buf: &mut [u8],
) -> Result<(), ReadFault<F::Error>>
where
    F: ReadNorFlash,
    F::Error: EccReport,
{
    flash
        .read(offset, buf)
        .map_err(|e| match e.ecc_fault_addr() {
            Some(addr) => ReadFault::Ecc { addr },
            None => ReadFault::Flash(e),
        })
}
