//! Bank swapping: the option bit (SWAP_BANK or BFB2), its programming as one counted and
//! cuttable operation, its effect at reset, and the CPU's view of swapped banks.
//!
//! Facts and assumptions (sources in `brickless-flash`'s README and the reference sheet):
//! - [fact, RM0433 + ST's H7 example] H7's SWAP_BANK is loaded at reset; afterwards bank 2
//!   answers at the base address and the per-bank register sets follow the mapping, so a
//!   driver addressing by CPU address keeps working. Modelled: every `NorFlash` and `*_abs`
//!   address is a CPU address; the data stays in its physical bank.
//! - [fact, ST answers] BFB2 (L4/G4/F42x/L0) is evaluated by the ROM at reset: bank 2 is
//!   booted, remapped at the base, when its first word is a valid stack pointer; otherwise
//!   bank 1. Modelled with the part's RAM range as "valid".
//! - [assumption] L4/G4 program and erase follow the mapping as on H7 (FB_MODE remaps both
//!   banks); unverified on silicon.
//! - [assumption] The option bit survives power loss once programmed. A cut *during* option
//!   programming leaves the old or the new value (chosen from the seed), never an invalid
//!   option set: ST stores option bytes with their complement and states only that flash
//!   content is not guaranteed after a reset during an operation. A real part could instead
//!   flag an option validity error (L4 OPTVERR) and load defaults; no bootloader can repair
//!   that, so the model does not produce it.
//! - [estimate] Option programming time: 30 ms (H7 OPTSTART; L4 option page erase and
//!   program); no datasheet figure was reachable.
use super::{mix, CutPhase, SimFlash, SimFlashError};
use brickless_flash::{BankSwap, SwapMechanism};

/// Modelled time of one option-byte program (estimate, see the module notes).
const OPTION_PROGRAM_US: u64 = 30_000;

/// Part of a CPU address range, where its bytes physically live.
pub(crate) struct Piece {
    /// Physical address of that byte.
    pub phys: u32,
    /// Bytes in the piece.
    pub len: usize,
}

impl SimFlash {
    /// The part's bank-swap mechanism, if it has two mirrored banks it can swap.
    pub fn swap_mechanism(&self) -> Option<SwapMechanism> {
        self.geometry.bank_mirror()?;
        self.geometry.family.swap_mechanism()
    }

    /// Whether bank 2 is mapped at the base since the last reset.
    pub fn banks_swapped(&self) -> bool {
        self.swapped
    }

    /// The bank-swap option as programmed (it applies at the next reset).
    pub fn swap_option(&self) -> bool {
        self.swap_option
    }

    /// Programs the bank-swap option (one counted operation; a cut leaves the old or the new
    /// value, see the module notes). Takes effect at the next [`SimFlash::reset`] or power
    /// cycle.
    pub fn program_swap_option(&mut self, on: bool) -> Result<(), SimFlashError> {
        let phase = self.begin_op()?;
        if let Some(log) = &mut self.op_log {
            log.push(super::LoggedOp {
                op: self.ops - 1,
                addr: 0,
                len: 0,
                erase: false,
                option: true,
            });
        }
        if phase == Some(CutPhase::Before) {
            return Err(self.lose_power());
        }
        if self.swap_mechanism().is_none() {
            return match phase {
                Some(_) => Err(self.lose_power()),
                None => Err(SimFlashError::BankSwap(
                    "this part has no bank-swap option (single bank, or unequal banks)",
                )),
            };
        }
        let op = self.ops - 1;
        match phase {
            Some(CutPhase::Torn) => {
                self.elapsed_us += OPTION_PROGRAM_US / 2;
                self.elapsed_max_us += OPTION_PROGRAM_US / 2;
                if mix(self.seed ^ mix(op ^ 0x6F70_7473)) & 1 == 0 {
                    self.swap_option = on;
                }
                Err(self.lose_power())
            }
            _ => {
                self.elapsed_us += OPTION_PROGRAM_US;
                self.elapsed_max_us += OPTION_PROGRAM_US;
                self.swap_option = on;
                match phase {
                    Some(_) => Err(self.lose_power()),
                    None => Ok(()),
                }
            }
        }
    }

    /// Whether physical bank 2 starts with a stack pointer the part's RAM can hold.
    pub(crate) fn bank2_has_stack_pointer(&self) -> bool {
        let Some(bank2) = self.geometry.banks.get(1) else {
            return false;
        };
        let mut sp = [0u8; 4];
        self.read_checked(bank2.base, &mut sp, true).is_ok()
            && self.part.is_valid_stack_pointer(u32::from_le_bytes(sp))
    }

    /// Where the CPU range `addr..addr + len` lives: one piece, or two when the banks are
    /// swapped and the range crosses from bank 1 into bank 2. Addresses outside both banks
    /// map to themselves (the access is then refused as unmapped).
    pub(crate) fn pieces(&self, addr: u32, len: usize) -> Vec<Piece> {
        let mirror = match (self.swapped, self.geometry.bank_mirror()) {
            (true, Some(d)) => d,
            _ => return vec![Piece { phys: addr, len }],
        };
        let [b1, b2] = [self.geometry.banks[0], self.geometry.banks[1]];
        let mut out = Vec::new();
        let (mut at, mut left) = (addr, len);
        loop {
            let (phys, room) = if at >= b1.base && at < b1.end() {
                (at + mirror, (b1.end() - at) as usize)
            } else if at >= b2.base && at < b2.end() {
                (at - mirror, (b2.end() - at) as usize)
            } else {
                (at, left)
            };
            let n = left.min(room);
            out.push(Piece { phys, len: n });
            left -= n;
            if left == 0 || n == 0 {
                return out;
            }
            at += n as u32;
        }
    }

    /// The physical address of a program or erase of `len` bytes at CPU address `addr`,
    /// refused when swapped banks would split it.
    pub(crate) fn physical_range(&self, addr: u32, len: usize) -> Result<u32, SimFlashError> {
        match self.pieces(addr, len).as_slice() {
            [one] => Ok(one.phys),
            _ => Err(SimFlashError::BankSwap(
                "a program or erase crosses the edge between swapped banks",
            )),
        }
    }

    /// The CPU address of physical address `phys` (the mapping is its own inverse).
    pub(crate) fn cpu_address(&self, phys: u32) -> u32 {
        self.pieces(phys, 1).first().map_or(phys, |p| p.phys)
    }

    /// An error with its address (physical, from the internals) given as a CPU address.
    pub(crate) fn cpu_error(&self, e: SimFlashError) -> SimFlashError {
        match e {
            SimFlashError::Program { flag, addr } => SimFlashError::Program {
                flag,
                addr: self.cpu_address(addr),
            },
            SimFlashError::Ecc { addr } => SimFlashError::Ecc {
                addr: self.cpu_address(addr),
            },
            SimFlashError::Unmapped { addr, len } => SimFlashError::Unmapped {
                addr: self.cpu_address(addr),
                len,
            },
            SimFlashError::EraseNotSectorAligned { from, to } => {
                let start = self.cpu_address(from);
                SimFlashError::EraseNotSectorAligned {
                    from: start,
                    to: start.wrapping_add(to.wrapping_sub(from)),
                }
            }
            other => other,
        }
    }
}

impl BankSwap for SimFlash {
    fn banks_swapped(&mut self) -> Result<bool, Self::Error> {
        if !self.powered {
            return Err(SimFlashError::PowerLost);
        }
        Ok(self.swapped)
    }

    fn swap_at_reset(&mut self) -> Result<bool, Self::Error> {
        if !self.powered {
            return Err(SimFlashError::PowerLost);
        }
        Ok(self.swap_option)
    }

    fn set_swap_at_reset(&mut self, swapped: bool) -> Result<(), Self::Error> {
        self.program_swap_option(swapped)
    }
}
