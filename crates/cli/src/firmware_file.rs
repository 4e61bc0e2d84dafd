//! Firmware files come from `brickless_image::firmware`; this module gives its errors the
//! CLI's codes and hints (miette).
use std::path::Path;

pub use brickless_image::firmware::{
    AddressRange, FileFormat, FirmwareFileError, FirmwareImage, Segment, DEFAULT_MAX_FLAT_SIZE,
};
use miette::Diagnostic;

/// A [`FirmwareFileError`] as a miette diagnostic.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FileError(#[from] pub FirmwareFileError);

impl Diagnostic for FileError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        use FirmwareFileError as E;
        let code = match &self.0 {
            E::Read { .. } => "brickless::file::read",
            E::Write { .. } => "brickless::file::write",
            E::HexRecord { .. } => "brickless::file::hex_record",
            E::HexNoEndOfFile { .. } => "brickless::file::hex_truncated",
            E::Overlap { .. } => "brickless::file::overlap",
            E::AddressOverflow { .. } => "brickless::file::address",
            E::Elf { .. } => "brickless::file::elf",
            E::ElfNoLoadable { .. } => "brickless::file::elf_empty",
            E::Empty { .. } => "brickless::file::empty",
            E::GapTooLarge { .. } => "brickless::file::gap",
            _ => "brickless::file",
        };
        Some(Box::new(code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        use FirmwareFileError as E;
        let help = match &self.0 {
            E::Read { .. } => "check the path and its permissions",
            E::Write { .. } => "check the folder exists and is writable",
            E::HexRecord { .. } => {
                "the file is damaged or not Intel HEX; regenerate it (e.g. objcopy -O ihex)"
            }
            E::HexNoEndOfFile { .. } => "the file looks truncated; regenerate it",
            E::Overlap { .. } => "two parts of the file claim the same addresses; check the linker script or the tool that made it",
            E::Elf { .. } => "pass the linker's output ELF, or convert it to BIN/HEX with objcopy",
            E::ElfNoLoadable { .. } => "is this an object file (.o) rather than a linked executable?",
            E::GapTooLarge { .. } => "the file spans distant regions (e.g. flash and RAM); write Intel HEX instead, or split it",
            _ => return None,
        };
        Some(Box::new(help))
    }
}

/// [`brickless_image::firmware::load_file`] with CLI diagnostics.
pub fn load_file(path: &Path, bin_address: u32) -> Result<(FileFormat, FirmwareImage), FileError> {
    Ok(brickless_image::firmware::load_file(path, bin_address)?)
}

/// [`brickless_image::firmware::write_file_atomically`] with CLI diagnostics.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    Ok(brickless_image::firmware::write_file_atomically(
        path, bytes,
    )?)
}

/// [`brickless_image::firmware::save`] with CLI diagnostics.
pub fn save(image: &FirmwareImage, path: &Path, fill: u8) -> Result<(), FileError> {
    Ok(brickless_image::firmware::save(image, path, fill)?)
}
