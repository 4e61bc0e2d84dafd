//! Firmware files as address-tagged memory: load raw BIN, Intel HEX and ELF into a sorted list
//! of non-overlapping segments; write Intel HEX and flat BIN back out.
//!
//! Every error names the file and what is wrong with it, and writers replace the output file
//! only once the whole content is ready (a temporary file in the same folder, then a rename),
//! so bad input or a failed write leaves nothing on disk.
use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Largest flat BIN we build by default: bigger gaps usually mean RAM and flash addresses were
/// mixed (an ELF with a loadable .data VMA), not a real image.
pub const DEFAULT_MAX_FLAT_SIZE: u64 = 64 * 1024 * 1024;

/// One run of contiguous bytes at an absolute address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Absolute address of `data[0]`.
    pub address: u32,
    /// The bytes; never empty inside a [`FirmwareImage`].
    pub data: Vec<u8>,
}

impl Segment {
    /// One past the last byte (u64: a segment may end exactly at 4 GiB).
    pub fn end(&self) -> u64 {
        self.address as u64 + self.data.len() as u64
    }

    fn range(&self) -> Range<u64> {
        self.address as u64..self.end()
    }
}

/// A half-open address range, printed as `0x08000000..0x08001000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// First address.
    pub start: u64,
    /// One past the last address (`u64`: a range may end at, or run past, 4 GiB).
    pub end: u64,
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}..0x{:08x}", self.start, self.end)
    }
}

impl From<Range<u64>> for AddressRange {
    fn from(r: Range<u64>) -> Self {
        AddressRange {
            start: r.start,
            end: r.end,
        }
    }
}

/// Which file format a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Raw binary: bytes without addresses, placed where the caller says.
    Bin,
    /// Intel HEX text (`.hex`, `.ihex`, `.ihx`).
    Hex,
    /// ELF executable, recognised by its `\x7fELF` magic; its PT_LOAD segments are placed
    /// at their physical (load) addresses.
    Elf,
}

impl FileFormat {
    /// The format of an input: ELF by its magic, Intel HEX by extension, BIN otherwise.
    pub fn detect(path: &Path, contents: &[u8]) -> FileFormat {
        if contents.starts_with(b"\x7fELF") {
            FileFormat::Elf
        } else if is_hex_extension(path) {
            FileFormat::Hex
        } else {
            FileFormat::Bin
        }
    }

    /// The format to write to `path`: Intel HEX for `.hex`/`.ihex`/`.ihx`, BIN otherwise.
    pub fn for_output(path: &Path) -> FileFormat {
        if is_hex_extension(path) {
            FileFormat::Hex
        } else {
            FileFormat::Bin
        }
    }
}

fn is_hex_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "hex" | "ihex" | "ihx"))
        .unwrap_or(false)
}

/// What is wrong with a firmware file, and which file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FirmwareFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output could not be written (nothing was replaced).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The output path (left as it was).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An Intel HEX line is malformed (1-based `line`).
    #[error("{path}: bad Intel HEX record at line {line}: {reason}")]
    HexRecord {
        /// The HEX file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the record.
        reason: String,
    },
    /// An Intel HEX file ends without its end-of-file record: truncated.
    #[error("{path}: Intel HEX file has no end-of-file record (:00000001FF)")]
    HexNoEndOfFile {
        /// The HEX file.
        path: PathBuf,
    },
    /// Two parts of the file claim the same addresses.
    #[error("{path}: data at {first} overlaps data at {second}")]
    Overlap {
        /// The file named as the source of the data.
        path: PathBuf,
        /// The data with the lower start address.
        first: AddressRange,
        /// The data that starts inside `first`.
        second: AddressRange,
    },
    /// Data would lie beyond 4 GiB.
    #[error("{path}: data at {range} runs past the 32-bit address space")]
    AddressOverflow {
        /// The file named as the source of the data.
        path: PathBuf,
        /// The data's range, ending past 0xFFFF_FFFF.
        range: AddressRange,
    },
    /// The ELF structure is damaged.
    #[error("{path}: not a readable ELF file: {reason}")]
    Elf {
        /// The ELF file.
        path: PathBuf,
        /// The ELF reader's message.
        reason: String,
    },
    /// An ELF without loadable bytes (an object file?).
    #[error("{path}: ELF file has no loadable segment with data (no PT_LOAD with file bytes)")]
    ElfNoLoadable {
        /// The ELF file.
        path: PathBuf,
    },
    /// The file holds no bytes to place.
    #[error("{path}: file holds no data")]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// Flattening to BIN would make a file larger than `limit` because of `gap`.
    #[error(
        "{path}: cannot flatten to BIN: gap {gap} makes the image {size} bytes (limit {limit})"
    )]
    GapTooLarge {
        /// The file named as the source of the data.
        path: PathBuf,
        /// The widest gap between segments (the whole range when there is one segment).
        gap: AddressRange,
        /// Size the BIN would have, bytes.
        size: u64,
        /// The most the caller allowed, bytes.
        limit: u64,
    },
}

/// Memory contents from a firmware file: segments sorted by address, never overlapping, with
/// touching segments joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareImage {
    segments: Vec<Segment>,
}

impl FirmwareImage {
    /// Build from segments in any order; `path` names the source in errors.
    pub fn from_segments(
        mut segments: Vec<Segment>,
        path: &Path,
    ) -> Result<Self, FirmwareFileError> {
        segments.retain(|s| !s.data.is_empty());
        for s in &segments {
            if s.end() > 1 << 32 {
                return Err(FirmwareFileError::AddressOverflow {
                    path: path.into(),
                    range: s.range().into(),
                });
            }
        }
        segments.sort_by_key(|s| s.address);
        let mut joined: Vec<Segment> = Vec::with_capacity(segments.len());
        for s in segments {
            match joined.last_mut() {
                Some(last) if last.end() > s.address as u64 => {
                    return Err(FirmwareFileError::Overlap {
                        path: path.into(),
                        first: last.range().into(),
                        second: s.range().into(),
                    })
                }
                Some(last) if last.end() == s.address as u64 => last.data.extend(s.data),
                _ => joined.push(s),
            }
        }
        Ok(FirmwareImage { segments: joined })
    }

    /// A raw binary placed at `address`.
    pub fn from_bin(address: u32, data: Vec<u8>, path: &Path) -> Result<Self, FirmwareFileError> {
        Self::from_segments(vec![Segment { address, data }], path)
    }

    /// Read a file, detecting its format; a BIN is placed at `bin_address`.
    pub fn load(path: &Path, bin_address: u32) -> Result<Self, FirmwareFileError> {
        load_file(path, bin_address).map(|(_, image)| image)
    }

    /// Parse Intel HEX text (I8HEX/I16HEX/I32HEX). Start-address records are ignored: they
    /// carry the entry point, not memory contents.
    pub fn parse_hex(text: &str, path: &Path) -> Result<Self, FirmwareFileError> {
        use ihex::Record;
        let mut segments: Vec<Segment> = Vec::new();
        let mut base: u64 = 0;
        let mut saw_eof = false;
        for (index, raw_line) in text.lines().enumerate() {
            let line = raw_line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| FirmwareFileError::HexRecord {
                path: path.into(),
                line: index + 1,
                reason,
            };
            if saw_eof {
                return Err(bad("data after the end-of-file record".into()));
            }
            let record = Record::from_record_string(line).map_err(|e| bad(e.to_string()))?;
            match record {
                Record::Data { offset, value } => {
                    let address = base + offset as u64;
                    let end = address + value.len() as u64;
                    if end > 1 << 32 {
                        return Err(FirmwareFileError::AddressOverflow {
                            path: path.into(),
                            range: (address..end).into(),
                        });
                    }
                    // Records usually follow each other: extend the open segment.
                    match segments.last_mut() {
                        Some(last) if last.end() == address => last.data.extend(value),
                        _ => segments.push(Segment {
                            address: address as u32,
                            data: value,
                        }),
                    }
                }
                Record::ExtendedLinearAddress(high) => base = (high as u64) << 16,
                Record::ExtendedSegmentAddress(segment) => base = (segment as u64) << 4,
                Record::StartLinearAddress(_) | Record::StartSegmentAddress { .. } => {}
                Record::EndOfFile => saw_eof = true,
            }
        }
        if !saw_eof {
            return Err(FirmwareFileError::HexNoEndOfFile { path: path.into() });
        }
        Self::from_segments(segments, path)
    }

    /// The file bytes of every loadable (PT_LOAD) program header with data, placed at its
    /// physical (load) address, which is where the bytes live in flash.
    pub fn parse_elf(bytes: &[u8], path: &Path) -> Result<Self, FirmwareFileError> {
        use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
        use object::{elf, FileKind};

        fn segments_of<Elf: FileHeader<Endian = object::Endianness>>(
            bytes: &[u8],
        ) -> Result<Vec<(u64, u64, Vec<u8>)>, String> {
            let file = ElfFile::<Elf, &[u8]>::parse(bytes).map_err(|e| e.to_string())?;
            let endian = file.endian();
            let mut out = Vec::new();
            for header in file.elf_program_headers() {
                if header.p_type(endian) != elf::PT_LOAD {
                    continue;
                }
                let data = header
                    .data(endian, bytes)
                    .map_err(|()| "a segment's data lies outside the file".to_string())?;
                let paddr: u64 = header.p_paddr(endian).into();
                out.push((paddr, data.len() as u64, data.to_vec()));
            }
            Ok(out)
        }

        let elf_error = |reason: String| FirmwareFileError::Elf {
            path: path.into(),
            reason,
        };
        let raw = match FileKind::parse(bytes).map_err(|e| elf_error(e.to_string()))? {
            FileKind::Elf32 => segments_of::<elf::FileHeader32<object::Endianness>>(bytes),
            FileKind::Elf64 => segments_of::<elf::FileHeader64<object::Endianness>>(bytes),
            other => return Err(elf_error(format!("file kind {other:?} is not ELF"))),
        }
        .map_err(elf_error)?;

        let mut segments = Vec::new();
        for (address, len, data) in raw {
            if data.is_empty() {
                continue;
            }
            let end = address.saturating_add(len);
            if end > 1 << 32 {
                return Err(FirmwareFileError::AddressOverflow {
                    path: path.into(),
                    range: (address..end).into(),
                });
            }
            segments.push(Segment {
                address: address as u32,
                data,
            });
        }
        if segments.is_empty() {
            return Err(FirmwareFileError::ElfNoLoadable { path: path.into() });
        }
        Self::from_segments(segments, path)
    }

    /// The segments: sorted by address, non-empty, never overlapping, touching ones joined.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the image holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Lowest address holding data.
    pub fn start_address(&self) -> Option<u32> {
        self.segments.first().map(|s| s.address)
    }

    /// One past the highest address holding data.
    pub fn end_address(&self) -> Option<u64> {
        self.segments.last().map(Segment::end)
    }

    /// The first range where `self` and `other` both hold data, as (ours, theirs) segments.
    pub fn find_overlap(&self, other: &FirmwareImage) -> Option<AddressRange> {
        for a in &self.segments {
            for b in &other.segments {
                let start = a.address.max(b.address) as u64;
                let end = a.end().min(b.end());
                if start < end {
                    return Some((start..end).into());
                }
            }
        }
        None
    }

    /// Add `other`'s data; fails (changing nothing) if any address is in both.
    pub fn merge(&mut self, other: &FirmwareImage, path: &Path) -> Result<(), FirmwareFileError> {
        let mut all = self.segments.clone();
        all.extend(other.segments.iter().cloned());
        *self = Self::from_segments(all, path)?;
        Ok(())
    }

    /// The contents from `start_address()` to `end_address()`, gaps filled with `fill`.
    /// Refuses to build more than `max_size` bytes.
    pub fn to_bin(
        &self,
        fill: u8,
        max_size: u64,
        path: &Path,
    ) -> Result<Vec<u8>, FirmwareFileError> {
        let (Some(start), Some(end)) = (self.start_address(), self.end_address()) else {
            return Ok(Vec::new());
        };
        let size = end - start as u64;
        if size > max_size {
            // Name the widest gap: that is what made the image big.
            let gap = self
                .segments
                .windows(2)
                .map(|w| w[0].end()..w[1].address as u64)
                .max_by_key(|r| r.end - r.start)
                .unwrap_or(start as u64..end);
            return Err(FirmwareFileError::GapTooLarge {
                path: path.into(),
                gap: gap.into(),
                size,
                limit: max_size,
            });
        }
        let mut out = vec![fill; size as usize];
        for s in &self.segments {
            let offset = (s.address - start) as usize;
            out[offset..offset + s.data.len()].copy_from_slice(&s.data);
        }
        Ok(out)
    }

    /// Intel HEX text laid out the way Python's `intelhex` (and so imgtool) writes it:
    /// 16-byte data records that never cross a 64 KiB boundary, an extended linear address
    /// record whenever the upper 16 bits change (only if data lies above 64 KiB), uppercase,
    /// `\n` line ends.
    pub fn to_hex(&self) -> String {
        use ihex::Record;
        let mut records = Vec::new();
        let need_linear = self.end_address().is_some_and(|end| end > 0x1_0000);
        let mut current_high: Option<u16> = None;
        for s in &self.segments {
            let mut address = s.address as u64;
            let mut rest = &s.data[..];
            while !rest.is_empty() {
                let high = (address >> 16) as u16;
                if need_linear && current_high != Some(high) {
                    records.push(Record::ExtendedLinearAddress(high));
                    current_high = Some(high);
                }
                let low = (address & 0xffff) as usize;
                let n = rest.len().min(16).min(0x1_0000 - low);
                records.push(Record::Data {
                    offset: low as u16,
                    value: rest[..n].to_vec(),
                });
                rest = &rest[n..];
                address += n as u64;
            }
        }
        records.push(Record::EndOfFile);
        let mut out = String::new();
        for r in &records {
            // Records are at most 16 data bytes: formatting cannot fail.
            if let Ok(line) = r.to_record_string() {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// `segments` (sorted) with gaps under `max_gap` bytes filled with `fill`, so a flash write
/// unit shared by two segments is programmed once.
pub fn coalesce(segments: &[Segment], max_gap: u64, fill: u8) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for s in segments {
        match out.last_mut() {
            Some(last)
                if s.address as u64 >= last.end() && s.address as u64 - last.end() < max_gap =>
            {
                let gap = (s.address as u64 - last.end()) as usize;
                last.data.extend(std::iter::repeat_n(fill, gap));
                last.data.extend_from_slice(&s.data);
            }
            _ => out.push(s.clone()),
        }
    }
    out
}

/// Read a file, detecting its format (returned too); a BIN is placed at `bin_address`.
/// An empty file, or one without data, is an error.
pub fn load_file(
    path: &Path,
    bin_address: u32,
) -> Result<(FileFormat, FirmwareImage), FirmwareFileError> {
    let bytes = std::fs::read(path).map_err(|source| FirmwareFileError::Read {
        path: path.into(),
        source,
    })?;
    let format = FileFormat::detect(path, &bytes);
    let image = match format {
        FileFormat::Elf => FirmwareImage::parse_elf(&bytes, path)?,
        FileFormat::Hex => {
            let text = std::str::from_utf8(&bytes).map_err(|e| {
                let line = bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                FirmwareFileError::HexRecord {
                    path: path.into(),
                    line,
                    reason: "not ASCII text".into(),
                }
            })?;
            FirmwareImage::parse_hex(text, path)?
        }
        FileFormat::Bin => FirmwareImage::from_bin(bin_address, bytes, path)?,
    };
    if image.is_empty() {
        return Err(FirmwareFileError::Empty { path: path.into() });
    }
    Ok((format, image))
}

/// A firmware or image file as flat bytes and the address of its first byte (`None` for a
/// BIN, which carries none). Gaps in HEX/ELF are filled with `fill`, as imgtool's HEX reader
/// does.
pub fn load_flat(path: &Path, fill: u8) -> Result<(Vec<u8>, Option<u32>), FirmwareFileError> {
    let (format, image) = load_file(path, 0)?;
    let bytes = image.to_bin(fill, DEFAULT_MAX_FLAT_SIZE, path)?;
    let base = match format {
        FileFormat::Bin => None,
        _ => image.start_address(),
    };
    Ok((bytes, base))
}

/// Write `bytes` to `path` through a temporary file in the same folder, so the output appears
/// complete or not at all.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), FirmwareFileError> {
    let write_error = |source| FirmwareFileError::Write {
        path: path.into(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(write_error(std::io::Error::other("path names no file")));
    }
    // Same folder, so the rename is atomic; the temporary file is removed on any failure.
    let mut builder = tempfile::Builder::new();
    builder.prefix(".brickless-");
    // tempfile's default is 0600; a plain create (0666 less the umask) is what users expect.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temp = builder.tempfile_in(dir).map_err(write_error)?;
    temp.write_all(bytes).map_err(write_error)?;
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Write `image` to `path` as HEX or BIN (chosen by extension; BIN gaps filled with `fill`).
pub fn save(image: &FirmwareImage, path: &Path, fill: u8) -> Result<(), FirmwareFileError> {
    let bytes = match FileFormat::for_output(path) {
        FileFormat::Hex => image.to_hex().into_bytes(),
        _ => image.to_bin(fill, DEFAULT_MAX_FLAT_SIZE, path)?,
    };
    write_file_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("test.hex")
    }

    #[test]
    fn hex_round_trip_keeps_addresses_and_gaps() {
        let image = FirmwareImage::from_segments(
            vec![
                Segment {
                    address: 0x0800_fff8,
                    data: (0..40).collect(),
                },
                Segment {
                    address: 0x0802_0000,
                    data: vec![0xaa; 3],
                },
            ],
            p(),
        )
        .unwrap();
        let text = image.to_hex();
        // First record stops at the 64 KiB boundary, then a new linear address record follows.
        assert!(text.starts_with(":020000040800F2\n:08FFF80000"));
        assert!(text.contains(":020000040801F1\n"));
        assert!(text.ends_with(":00000001FF\n"));
        assert_eq!(FirmwareImage::parse_hex(&text, p()).unwrap(), image);
        // The same data written by Python's intelhex (what imgtool uses), line for line.
        let intelhex = ":020000040800F2\n:08FFF8000001020304050607E5\n:020000040801F1\n\
            :1000000008090A0B0C0D0E0F1011121314151617F8\n\
            :1000100018191A1B1C1D1E1F2021222324252627E8\n:020000040802F0\n\
            :03000000AAAAAAFF\n:00000001FF\n";
        assert_eq!(text, intelhex);
    }

    #[test]
    fn hex_below_64k_has_no_linear_record() {
        let image = FirmwareImage::from_bin(0x10, vec![1, 2, 3], p()).unwrap();
        assert_eq!(image.to_hex(), ":03001000010203E7\n:00000001FF\n");
    }

    #[test]
    fn hex_errors_name_the_line() {
        let text = ":020000040800F2\n:0300100001020399\n:00000001FF\n";
        match FirmwareImage::parse_hex(text, p()) {
            Err(FirmwareFileError::HexRecord { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected a record error, got {other:?}"),
        }
        assert!(matches!(
            FirmwareImage::parse_hex(":03001000010203E7\n", p()),
            Err(FirmwareFileError::HexNoEndOfFile { .. })
        ));
    }

    #[test]
    fn hex_segment_addresses_crlf_and_start_records() {
        // Extended segment address 0x1000 -> base 0x10000; CRLF line ends; a start address.
        let text =
            ":020000021000EC\r\n:03001000010203E7\r\n\r\n:0400000508000101ED\r\n:00000001FF\r\n";
        let image = FirmwareImage::parse_hex(text, p()).unwrap();
        assert_eq!(
            image.segments(),
            &[Segment {
                address: 0x10010,
                data: vec![1, 2, 3]
            }]
        );
    }

    #[test]
    fn overlapping_records_are_refused() {
        let text = ":03001000010203E7\n:03001100010203E6\n:00000001FF\n";
        match FirmwareImage::parse_hex(text, p()) {
            Err(FirmwareFileError::Overlap { first, second, .. }) => {
                assert_eq!((first.start, first.end), (0x10, 0x13));
                assert_eq!((second.start, second.end), (0x11, 0x14));
            }
            other => panic!("expected overlap, got {other:?}"),
        }
    }

    #[test]
    fn damaged_elf_is_named() {
        let mut elf = b"\x7fELF\x01\x01\x01\x00".to_vec();
        elf.resize(40, 0);
        match FirmwareImage::parse_elf(&elf, Path::new("fw.elf")) {
            Err(e @ FirmwareFileError::Elf { .. }) => assert!(e.to_string().contains("fw.elf")),
            other => panic!("expected an ELF error, got {other:?}"),
        }
    }

    #[test]
    fn bin_fills_gaps_and_limits_size() {
        let image = FirmwareImage::from_segments(
            vec![
                Segment {
                    address: 0x100,
                    data: vec![1],
                },
                Segment {
                    address: 0x103,
                    data: vec![2],
                },
            ],
            p(),
        )
        .unwrap();
        assert_eq!(image.to_bin(0xff, 16, p()).unwrap(), vec![1, 0xff, 0xff, 2]);
        assert!(matches!(
            image.to_bin(0xff, 3, p()),
            Err(FirmwareFileError::GapTooLarge { .. })
        ));
    }

    #[test]
    fn close_segments_are_joined_with_erased_fill() {
        let s = vec![
            Segment {
                address: 0x100,
                data: vec![1; 4],
            },
            Segment {
                address: 0x108,
                data: vec![2; 4],
            },
            Segment {
                address: 0x1000,
                data: vec![3; 4],
            },
        ];
        let c = coalesce(&s, 256, 0xFF);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].data,
            vec![1, 1, 1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 2, 2, 2, 2]
        );
    }

    #[test]
    fn merge_refuses_overlap_and_keeps_self() {
        let mut a = FirmwareImage::from_bin(0, vec![0; 8], p()).unwrap();
        let b = FirmwareImage::from_bin(4, vec![1; 8], p()).unwrap();
        let before = a.clone();
        assert_eq!(a.find_overlap(&b), Some(AddressRange { start: 4, end: 8 }));
        assert!(a.merge(&b, p()).is_err());
        assert_eq!(a, before);
        let c = FirmwareImage::from_bin(8, vec![1; 8], p()).unwrap();
        a.merge(&c, p()).unwrap();
        assert_eq!(a.segments().len(), 1);
        assert_eq!(a.end_address(), Some(16));
    }
}
