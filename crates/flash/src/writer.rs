//! A `NorFlash` writer that only issues whole, aligned write units.

use embedded_storage::nor_flash::NorFlash;

use crate::Geometry;

/// The largest write unit of any part (H74x/H72x flash word); every part's unit divides it.
pub const MAX_WRITE_UNIT: usize = 32;

/// Why an [`AlignedWriter`] refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterError<E> {
    /// The write unit is not a power of two in `1..=MAX_WRITE_UNIT`.
    BadUnit {
        /// The write unit asked for, bytes.
        unit: u32,
    },
    /// The start offset is not on a write unit.
    NotAligned {
        /// The start offset asked for (`NorFlash` offset space).
        offset: u32,
        /// The write unit, bytes.
        unit: u32,
    },
    /// The offset would pass `u32::MAX`.
    Overflow,
    /// The flash refused a write.
    Flash(E),
}

impl<E: core::fmt::Debug> core::fmt::Display for WriterError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadUnit { unit } => {
                write!(
                    f,
                    "write unit {unit} is not a power of two up to {MAX_WRITE_UNIT}"
                )
            }
            Self::NotAligned { offset, unit } => {
                write!(f, "offset {offset:#x} is not on a {unit}-byte write unit")
            }
            Self::Overflow => f.write_str("the write would run past the 32-bit offset space"),
            Self::Flash(e) => write!(f, "the flash refused a write: {e:?}"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for WriterError<E> {}

/// Buffers a byte stream into whole write units: data arrives in any chunking, the flash only
/// sees writes that start on a unit and are a whole number of units. [`AlignedWriter::flush`]
/// pads the last partial unit with the erased value (which, on ECC parts, burns that unit).
///
/// Runs of whole units go to the flash in one `write` call, straight from the caller's slice.
pub struct AlignedWriter<'f, F: NorFlash> {
    flash: &'f mut F,
    /// Offset of `pending[0]` (always unit-aligned).
    at: u32,
    unit: u32,
    erased: u8,
    pending: [u8; MAX_WRITE_UNIT],
    pending_len: usize,
}

impl<'f, F: NorFlash> AlignedWriter<'f, F> {
    /// A writer starting at `offset` (NorFlash offset space) with the given unit and erased byte.
    pub fn new(
        flash: &'f mut F,
        offset: u32,
        unit: u32,
        erased: u8,
    ) -> Result<Self, WriterError<F::Error>> {
        if !unit.is_power_of_two() || unit as usize > MAX_WRITE_UNIT {
            return Err(WriterError::BadUnit { unit });
        }
        if offset % unit != 0 {
            return Err(WriterError::NotAligned { offset, unit });
        }
        Ok(Self {
            flash,
            at: offset,
            unit,
            erased,
            pending: [erased; MAX_WRITE_UNIT],
            pending_len: 0,
        })
    }

    /// A writer using the part's write unit and erased value.
    pub fn for_geometry(
        flash: &'f mut F,
        offset: u32,
        geometry: &Geometry,
    ) -> Result<Self, WriterError<F::Error>> {
        Self::new(flash, offset, geometry.write_unit, geometry.erased)
    }

    /// Offset the next byte will land at.
    pub fn position(&self) -> u32 {
        self.at.saturating_add(self.pending_len as u32)
    }

    /// Bytes waiting for the rest of their unit.
    pub fn pending(&self) -> usize {
        self.pending_len
    }

    /// Queues `data`; writes every unit it completes.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), WriterError<F::Error>> {
        let unit = self.unit as usize;
        if (self.position() as u64) + data.len() as u64 > u64::from(u32::MAX) + 1 {
            return Err(WriterError::Overflow);
        }
        if self.pending_len > 0 {
            let take = (unit - self.pending_len).min(data.len());
            let (head, rest) = data.split_at(take);
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(head);
            self.pending_len += take;
            data = rest;
            if self.pending_len < unit {
                return Ok(());
            }
            self.flash
                .write(self.at, &self.pending[..unit])
                .map_err(WriterError::Flash)?;
            self.at = self.at.saturating_add(self.unit);
            self.pending_len = 0;
        }
        let whole = data.len() - data.len() % unit;
        if whole > 0 {
            let (body, tail) = data.split_at(whole);
            self.flash
                .write(self.at, body)
                .map_err(WriterError::Flash)?;
            self.at = self.at.saturating_add(whole as u32);
            data = tail;
        }
        self.pending[..data.len()].copy_from_slice(data);
        self.pending_len = data.len();
        Ok(())
    }

    /// Writes the partial unit, padded with the erased value. Returns the offset after it.
    pub fn flush(&mut self) -> Result<u32, WriterError<F::Error>> {
        if self.pending_len > 0 {
            let unit = self.unit as usize;
            self.pending[self.pending_len..unit].fill(self.erased);
            self.flash
                .write(self.at, &self.pending[..unit])
                .map_err(WriterError::Flash)?;
            self.at = self.at.saturating_add(self.unit);
            self.pending_len = 0;
        }
        Ok(self.at)
    }

    /// Flushes and gives the flash back.
    pub fn finish(mut self) -> Result<u32, WriterError<F::Error>> {
        self.flush()
    }
}
