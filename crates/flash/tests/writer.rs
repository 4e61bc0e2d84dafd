//! The aligned writer and the tolerant read against a strict in-memory NorFlash.

use brickless_flash::{read_tolerant, AlignedWriter, EccReport, ReadFault, WriterError};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

#[derive(Debug, PartialEq)]
enum MockError {
    Misaligned,
    OutOfBounds,
    Ecc(u32),
}

impl NorFlashError for MockError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MockError::Misaligned => NorFlashErrorKind::NotAligned,
            MockError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            MockError::Ecc(_) => NorFlashErrorKind::Other,
        }
    }
}

impl EccReport for MockError {
    fn ecc_fault_addr(&self) -> Option<u32> {
        match self {
            MockError::Ecc(a) => Some(*a),
            _ => None,
        }
    }
}

/// A flash that refuses any write not on whole `unit`s and records every write call.
struct Strict {
    unit: usize,
    bytes: Vec<u8>,
    calls: Vec<(u32, usize)>,
    bad_at: Option<u32>,
}

impl ErrorType for Strict {
    type Error = MockError;
}

impl ReadNorFlash for Strict {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        if let Some(bad) = self.bad_at {
            if (offset..offset + bytes.len() as u32).contains(&bad) {
                return Err(MockError::Ecc(0x0800_0000 + bad));
            }
        }
        bytes.copy_from_slice(&self.bytes[offset as usize..offset as usize + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for Strict {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;
    fn erase(&mut self, _: u32, _: u32) -> Result<(), MockError> {
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        if offset as usize % self.unit != 0 || bytes.len() % self.unit != 0 {
            return Err(MockError::Misaligned);
        }
        if offset as usize + bytes.len() > self.bytes.len() {
            return Err(MockError::OutOfBounds);
        }
        self.calls.push((offset, bytes.len()));
        self.bytes[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
}

fn strict(unit: usize) -> Strict {
    Strict {
        unit,
        bytes: vec![0xEE; 4096],
        calls: vec![],
        bad_at: None,
    }
}

#[test]
fn odd_chunks_become_whole_units_and_the_tail_is_padded() {
    for unit in [4u32, 8, 16, 32] {
        let mut f = strict(unit as usize);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut w = AlignedWriter::new(&mut f, 64, unit, 0xFF).unwrap();
        let mut rest = &data[..];
        for size in [1usize, 3, 5, 7, 64, 13, 200, 2].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*size).min(rest.len());
            w.write(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        assert_eq!(w.position(), 64 + 1000);
        let end = w.finish().unwrap();
        let padded = 1000u32.div_ceil(unit) * unit;
        assert_eq!(end, 64 + padded);
        assert_eq!(&f.bytes[64..1064], &data[..]);
        assert!(f.bytes[1064..(64 + padded) as usize]
            .iter()
            .all(|b| *b == 0xFF));
        assert_eq!(
            f.bytes[(64 + padded) as usize],
            0xEE,
            "nothing written past the padded unit"
        );
        // Every unit written exactly once.
        let total: usize = f.calls.iter().map(|c| c.1).sum();
        assert_eq!(total, padded as usize);
    }
}

#[test]
fn whole_units_go_straight_through_in_one_call() {
    let mut f = strict(8);
    let mut w = AlignedWriter::new(&mut f, 0, 8, 0x00).unwrap();
    w.write(&[1u8; 3]).unwrap();
    w.write(&[2u8; 5 + 80 + 4]).unwrap();
    assert_eq!(w.pending(), 4);
    w.flush().unwrap();
    assert_eq!(f.calls, vec![(0, 8), (8, 80), (88, 8)]);
    assert_eq!(
        &f.bytes[88..96],
        &[2, 2, 2, 2, 0, 0, 0, 0],
        "L0-style erased padding"
    );
}

#[test]
fn bad_arguments_are_refused() {
    let mut f = strict(8);
    assert!(matches!(
        AlignedWriter::new(&mut f, 4, 8, 0xFF),
        Err(WriterError::NotAligned { offset: 4, unit: 8 })
    ));
    assert!(matches!(
        AlignedWriter::new(&mut f, 0, 12, 0xFF),
        Err(WriterError::BadUnit { unit: 12 })
    ));
    assert!(matches!(
        AlignedWriter::new(&mut f, 0, 64, 0xFF),
        Err(WriterError::BadUnit { unit: 64 })
    ));
    let mut w = AlignedWriter::new(&mut f, 0xFFFF_FFF8, 8, 0xFF).unwrap();
    assert!(matches!(w.write(&[0u8; 16]), Err(WriterError::Overflow)));
}

#[test]
fn flash_errors_pass_through() {
    let mut f = strict(16);
    // The writer believes the unit is 8, the flash wants 16.
    let mut w = AlignedWriter::new(&mut f, 0, 8, 0xFF).unwrap();
    assert!(matches!(
        w.write(&[0u8; 8]),
        Err(WriterError::Flash(MockError::Misaligned))
    ));
}

#[test]
fn tolerant_read_turns_ecc_faults_into_values() {
    let mut f = strict(8);
    f.bad_at = Some(100);
    let mut buf = [0u8; 16];
    assert_eq!(read_tolerant(&mut f, 0, &mut buf), Ok(()));
    assert_eq!(
        read_tolerant(&mut f, 96, &mut buf),
        Err(ReadFault::Ecc { addr: 0x0800_0064 })
    );
}

#[test]
fn a_tail_at_the_top_of_the_address_space_does_not_overflow() {
    let mut f = strict(8);
    let mut w = AlignedWriter::new(&mut f, 0xFFFF_FFF8, 8, 0xFF).unwrap();
    w.write(&[1, 2, 3]).unwrap();
    // The strict flash is far smaller, so the write itself fails; the writer must not panic.
    assert_eq!(w.flush(), Err(WriterError::Flash(MockError::OutOfBounds)));
    assert_eq!(w.pending(), 3, "a failed flush keeps the bytes");
}
