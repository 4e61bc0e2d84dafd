//! Images for the campaign: a builder and the matching [`ImageCheck`].
//!
//! The fast kit's images are a small header (magic, version, security counter, length), a
//! payload and a SHA-256 over everything before it: verification is a full hash check, which
//! is all a power-cut campaign needs (a torn or mixed image never matches). The campaign also
//! checks every booted image byte for byte against the images it staged, independently of
//! the checker.
use brickless_boot::{ImageCheck, ImageInfo, ImageVersion};
use embedded_storage::nor_flash::ReadNorFlash;
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = *b"BLTI";
const HEADER: usize = 20;

/// Builds a fast-kit image of exactly `size` bytes (at least 52) with a payload derived from
/// `seed`.
pub fn build_image(version: ImageVersion, security_counter: u32, size: u32, seed: u64) -> Vec<u8> {
    let size = (size as usize).max(HEADER + 32);
    let mut img = Vec::with_capacity(size);
    img.extend_from_slice(&MAGIC);
    img.push(version.major);
    img.push(version.minor);
    img.extend_from_slice(&version.revision.to_le_bytes());
    img.extend_from_slice(&version.build.to_le_bytes());
    img.extend_from_slice(&security_counter.to_le_bytes());
    img.extend_from_slice(&(size as u32).to_le_bytes());
    let mut x = seed;
    while img.len() < size - 32 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        img.push((x >> 33) as u8);
    }
    let hash = Sha256::digest(&img);
    img.extend_from_slice(&hash);
    img
}

/// Verifies fast-kit images; read errors and any malformed field mean "not valid".
#[derive(Clone, Copy, Debug, Default)]
pub struct HashCheck;

impl<F: ReadNorFlash> ImageCheck<F> for HashCheck {
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo> {
        let mut h = [0u8; HEADER];
        flash.read(offset, &mut h).ok()?;
        if h[0..4] != MAGIC {
            return None;
        }
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let size = word(16);
        if size < (HEADER + 32) as u32 || size > max_size {
            return None;
        }
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 1024];
        let body = size - 32;
        let mut done = 0;
        while done < body {
            let n = (body - done).min(1024) as usize;
            flash.read(offset + done, &mut buf[..n]).ok()?;
            hasher.update(&buf[..n]);
            done += n as u32;
        }
        let mut stored = [0u8; 32];
        flash.read(offset + body, &mut stored).ok()?;
        let hash: [u8; 32] = hasher.finalize().into();
        if hash != stored {
            return None;
        }
        Some(ImageInfo {
            version: ImageVersion {
                major: h[4],
                minor: h[5],
                revision: u16::from_le_bytes([h[6], h[7]]),
                build: word(8),
            },
            security_counter: word(12),
            size,
            hash,
        })
    }
}
