//! Saving a model to a file so a virtual device keeps its flash across runs.
//!
//! Format (little-endian), hand-written because it is a flat dump no serde format would make
//! smaller or clearer:
//! `"BRKLFLSH"`, version u32 = 2, part-name length u8 + name, seed u64, op count u64,
//! elapsed µs (typical, maximum) u64 ×2, span u32, write unit u32, sector count u32, then `span` data bytes,
//! the programmed bitset and the torn bitset (one bit per unit, LSB first), one u32 erase
//! count per sector, and an option byte (bit 0: the bank-swap option; absent in version 1
//! files, which still load).

use std::path::Path;
use std::sync::Arc;

use super::{Chunk, SimFlash, CHUNK};

const MAGIC: &[u8; 8] = b"BRKLFLSH";
const VERSION: u32 = 2;
/// The first format, without the option byte.
const VERSION_1: u32 = 1;

/// Why a flash file could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// Reading or writing the file failed.
    #[error("flash file {path}: {source}")]
    Io {
        /// The file's path, as displayed.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the `BRKLFLSH` magic.
    #[error("{path} is not a brickless flash file (bad magic)")]
    NotAFlashFile {
        /// The file's path, as displayed.
        path: String,
    },
    /// The file's format version is not the one this build reads.
    #[error("{path}: unsupported flash file version {version} (this build reads 1 and {VERSION})")]
    UnsupportedVersion {
        /// The file's path, as displayed.
        path: String,
        /// The format version the file states.
        version: u32,
    },
    /// The file holds the flash of another part than the model loading it.
    #[error("{path} holds the flash of {file_part}, not of {model_part}")]
    WrongPart {
        /// The file's path, as displayed.
        path: String,
        /// The part name stored in the file.
        file_part: String,
        /// The name of the model's part.
        model_part: &'static str,
    },
    /// The part the file names is not in `brickless-flash`'s part table.
    #[error("{path} names part {name:?}, which brickless does not know")]
    UnknownPart {
        /// The file's path, as displayed.
        path: String,
        /// The part name stored in the file.
        name: String,
    },
    /// The file is truncated or its fields do not fit together.
    #[error("{path} is damaged: {what}")]
    Corrupt {
        /// The file's path, as displayed.
        path: String,
        /// What is wrong, e.g. "file is truncated".
        what: &'static str,
    },
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    path: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PersistError> {
        if self.bytes.len() < n {
            return Err(PersistError::Corrupt {
                path: self.path.to_owned(),
                what: "file is truncated",
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, PersistError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, PersistError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

fn bit(bits: &[u8], i: usize) -> bool {
    bits[i / 8] & (1 << (i % 8)) != 0
}

impl SimFlash {
    /// Writes the whole model (contents, unit states, wear, counters) to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PersistError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|source| PersistError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Replaces this model's state with the one saved in `path`. Refuses (and changes nothing)
    /// if the file is damaged or holds another part's flash.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), PersistError> {
        let (bytes, shown, name) = Self::read_saved(path.as_ref())?;
        if !name.eq_ignore_ascii_case(self.part.name) {
            return Err(PersistError::WrongPart {
                path: shown,
                file_part: name,
                model_part: self.part.name,
            });
        }
        *self = Self::from_bytes(self.part, &bytes, &shown)?;
        Ok(())
    }

    /// A saved model's bytes, its path as errors show it, and the part name it records.
    fn read_saved(path: &Path) -> Result<(Vec<u8>, String, String), PersistError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| PersistError::Io {
            path: shown.clone(),
            source,
        })?;
        let name = Self::part_name_in(&bytes, &shown)?;
        Ok((bytes, shown, name))
    }

    /// A model of whatever part `path` was saved from.
    pub fn open(path: impl AsRef<Path>) -> Result<SimFlash, PersistError> {
        let (bytes, shown, name) = Self::read_saved(path.as_ref())?;
        let part = brickless_flash::part(&name).ok_or_else(|| PersistError::UnknownPart {
            path: shown.clone(),
            name: name.clone(),
        })?;
        Self::from_bytes(part, &bytes, &shown)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let span = self.geometry.span() as usize;
        let unit = self.geometry.write_unit as usize;
        let units = span / unit;
        let mut out = Vec::with_capacity(64 + span + units / 4 + self.wear.len() * 4);
        out.extend_from_slice(MAGIC);
        put_u32(&mut out, VERSION);
        out.push(self.part.name.len() as u8);
        out.extend_from_slice(self.part.name.as_bytes());
        put_u64(&mut out, self.seed);
        put_u64(&mut out, self.ops);
        put_u64(&mut out, self.elapsed_us);
        put_u64(&mut out, self.elapsed_max_us);
        put_u32(&mut out, span as u32);
        put_u32(&mut out, unit as u32);
        put_u32(&mut out, self.wear.len() as u32);
        let mut programmed = vec![0u8; units.div_ceil(8)];
        let mut torn = vec![0u8; units.div_ceil(8)];
        let per_chunk = CHUNK / unit;
        for (ci, chunk) in self.chunks.iter().enumerate() {
            let len = CHUNK.min(span - ci * CHUNK);
            match chunk {
                None => out.extend(std::iter::repeat_n(self.geometry.erased, len)),
                Some(c) => {
                    out.extend_from_slice(&c.data[..len]);
                    for u in 0..len / unit {
                        let g = ci * per_chunk + u;
                        if c.is_programmed(u) {
                            programmed[g / 8] |= 1 << (g % 8);
                        }
                        if c.is_torn(u) {
                            torn[g / 8] |= 1 << (g % 8);
                        }
                    }
                }
            }
        }
        out.extend_from_slice(&programmed);
        out.extend_from_slice(&torn);
        for w in &self.wear {
            put_u32(&mut out, *w);
        }
        out.push(u8::from(self.swap_option));
        out
    }

    fn part_name_in(bytes: &[u8], path: &str) -> Result<String, PersistError> {
        let mut r = Reader { bytes, path };
        if r.take(8).ok() != Some(&MAGIC[..]) {
            return Err(PersistError::NotAFlashFile {
                path: path.to_owned(),
            });
        }
        let version = r.u32()?;
        if version != VERSION && version != VERSION_1 {
            return Err(PersistError::UnsupportedVersion {
                path: path.to_owned(),
                version,
            });
        }
        let len = r.take(1)?[0] as usize;
        let name = r.take(len)?;
        std::str::from_utf8(name)
            .map(str::to_owned)
            .map_err(|_| PersistError::Corrupt {
                path: path.to_owned(),
                what: "part name is not UTF-8",
            })
    }

    fn from_bytes(
        part: &'static brickless_flash::Part,
        bytes: &[u8],
        path: &str,
    ) -> Result<SimFlash, PersistError> {
        let corrupt = |what| PersistError::Corrupt {
            path: path.to_owned(),
            what,
        };
        let mut r = Reader { bytes, path };
        r.take(8)?;
        let version = r.u32()?;
        let name_len = r.take(1)?[0] as usize;
        r.take(name_len)?;
        let mut m = SimFlash::with_seed(part, r.u64()?);
        m.ops = r.u64()?;
        m.elapsed_us = r.u64()?;
        m.elapsed_max_us = r.u64()?;
        let span = m.geometry.span() as usize;
        let unit = m.geometry.write_unit as usize;
        if r.u32()? as usize != span || r.u32()? as usize != unit {
            return Err(corrupt("flash size or write unit differs from the part's"));
        }
        if r.u32()? as usize != m.wear.len() {
            return Err(corrupt("sector count differs from the part's"));
        }
        let units = span / unit;
        let data = r.take(span)?;
        let programmed = r.take(units.div_ceil(8))?;
        let torn = r.take(units.div_ceil(8))?;
        for w in m.wear.iter_mut() {
            *w = r.u32()?;
        }
        if version != VERSION_1 {
            let options = r.take(1)?[0];
            if options > 1 || (options == 1 && m.swap_mechanism().is_none()) {
                return Err(corrupt("option byte holds bits this part does not have"));
            }
            m.swap_option = options == 1;
        }
        if !r.bytes.is_empty() {
            return Err(corrupt("trailing bytes after the option byte"));
        }
        let erased = m.geometry.erased;
        let detects = m.geometry.ecc.detects_double_errors();
        let base = m.geometry.base();
        let per_chunk = CHUNK / unit;
        for ci in 0..m.chunks.len() {
            let len = CHUNK.min(span - ci * CHUNK);
            let mut chunk = Chunk::erased(erased);
            chunk.data[..len].copy_from_slice(&data[ci * CHUNK..ci * CHUNK + len]);
            for u in 0..len / unit {
                let g = ci * per_chunk + u;
                let bytes = &chunk.data[u * unit..(u + 1) * unit];
                let addr = base + (g * unit) as u32;
                if bit(programmed, g) {
                    if !m.geometry.contains(addr) {
                        return Err(corrupt("a unit in a bank hole is marked programmed"));
                    }
                    chunk.set_programmed(u);
                } else if bytes.iter().any(|b| *b != erased) {
                    return Err(corrupt(
                        "an unprogrammed unit does not hold the erased value",
                    ));
                }
                if bit(torn, g) {
                    if !detects || !bit(programmed, g) {
                        return Err(corrupt("a torn unit is impossible here"));
                    }
                    chunk.set_torn(u, true);
                }
            }
            if chunk.any_programmed() {
                m.chunks[ci] = Some(Arc::new(chunk));
            }
        }
        // A saved model is loaded as at power-up: the option bytes apply.
        m.reset();
        Ok(m)
    }
}
