//! Dual-bank swapping: which parts can map their second bank at the flash base, and the
//! trait a flash driver (or the model) implements to let the update engine flip the banks.
use crate::{Family, Geometry};
use embedded_storage::nor_flash::ErrorType;

/// How a dual-bank part chooses, at reset, which bank appears at the flash base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapMechanism {
    /// The SWAP_BANK option bit (H74x/H75x, H7A3, H5, L5, U5; G0's nSWAP_BANK): loaded at
    /// every reset; the bank mapping and the per-bank register sets follow it (RM0433, ST's
    /// H7 bank-swap example).
    SwapBank,
    /// The BFB2 option bit (L4, L4+, G4, F42x/F43x, L0 category 5): with it set, the ROM
    /// boots bank 2, remapped at the base, when bank 2 starts with a valid stack pointer, and
    /// bank 1 otherwise (ST community answers; AN2606).
    Bfb2,
}

impl Family {
    /// The bank-swap mechanism of the family's dual-bank parts, or `None` when the family has
    /// none that brickless drives (F7's dual boot selects a boot address, not a mapping).
    pub fn swap_mechanism(self) -> Option<SwapMechanism> {
        match self {
            Family::H74x | Family::H7A3 | Family::H5 | Family::L5 | Family::U5 | Family::G0 => {
                Some(SwapMechanism::SwapBank)
            }
            Family::L4 | Family::L4Plus | Family::G4 | Family::F4 | Family::L0 => {
                Some(SwapMechanism::Bfb2)
            }
            Family::H72x | Family::F7 => None,
        }
    }
}

impl Geometry {
    /// For a part with two banks of identical sector layout whose family can swap them: the
    /// distance from bank 1 to bank 2 (an address in one bank plus or minus it is the same
    /// place in the other). `None` for single-bank parts and parts without a swap mechanism.
    pub fn bank_mirror(&self) -> Option<u32> {
        self.family.swap_mechanism()?;
        match self.banks {
            [a, b] if a.sectors == b.sectors => b.base.checked_sub(a.base),
            _ => None,
        }
    }
}

/// A dual-bank flash whose option bytes choose which bank is mapped at the base. The flash's
/// `NorFlash` offsets address the banks *as mapped* (the CPU's view), on the hardware and in
/// the model alike.
pub trait BankSwap: ErrorType {
    /// Whether bank 2 is mapped at the flash base now (fixed at the last reset).
    fn banks_swapped(&mut self) -> Result<bool, Self::Error>;
    /// Whether the option bytes select bank 2 at the base from the next reset on.
    fn swap_at_reset(&mut self) -> Result<bool, Self::Error>;
    /// Programs the option bytes so that the next reset maps bank 2 (`true`) or bank 1 at the
    /// base. Returns once the option is stored; the caller then resets the chip (on families
    /// whose option load itself resets the chip, it may not return).
    fn set_swap_at_reset(&mut self, swapped: bool) -> Result<(), Self::Error>;
}

impl<T: BankSwap> BankSwap for &mut T {
    fn banks_swapped(&mut self) -> Result<bool, Self::Error> {
        T::banks_swapped(self)
    }
    fn swap_at_reset(&mut self) -> Result<bool, Self::Error> {
        T::swap_at_reset(self)
    }
    fn set_swap_at_reset(&mut self, swapped: bool) -> Result<(), Self::Error> {
        T::set_swap_at_reset(self, swapped)
    }
}
