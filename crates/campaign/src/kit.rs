//! Images for the campaign: a builder and the matching [`ImageCheck`].
//!
//! The fast kit's images are a small header (magic, version, security counter, length), a
//! payload and a SHA-256 over everything before it: verification is a full hash check, which
//! is all a power-cut campaign needs (a torn or mixed image never matches). The campaign also
//! checks every booted image byte for byte against the images it staged, independently of
//! the checker. The MCUboot kit signs real images (ed25519) with `brickless-image` and
//! verifies them with the engine's real check ([`McubootCheck`]).
use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::multi::{GroupCheck, GroupImage};
use brickless_boot::{ImageCheck, ImageInfo, ImageVersion};
use brickless_image::sign::{sign_image, SecurityCounter, SignOptions};
use brickless_image::PublicKey;
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

/// A stand-in for the bootloader's own flash: a vector table (initial stack pointer at the
/// top of the part's RAM, reset handler just after it) and a tag. A bank-swap install copies
/// it into the other bank, and BFB2 parts boot bank 2 only when it starts with a valid stack
/// pointer.
pub fn bootloader_stub(part: &brickless_flash::Part, base: u32) -> Vec<u8> {
    let mut stub = Vec::with_capacity(64);
    stub.extend_from_slice(&(part.ram_base + part.ram_size).to_le_bytes());
    stub.extend_from_slice(&((base + 8) | 1).to_le_bytes());
    stub.extend_from_slice(b"brickless bootloader stand-in");
    stub.resize(64, 0);
    stub
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
            exec: brickless_boot::Exec::InPlace,
        })
    }
}

/// Which image format and check a campaign uses.
#[derive(Clone, Copy, Debug)]
pub enum Checker {
    /// Fast-kit images, hash check only.
    Hash,
    /// MCUboot images signed by the kit's key, verified with [`McubootCheck`].
    Mcuboot(&'static [PublicKey]),
    /// A group of two images in one slot ([`GroupCheck`]), each checked with `single`'s
    /// check (fast kit: `None`, MCUboot kit: the keys).
    Group {
        /// The keys of the MCUboot kit, or `None` for fast-kit images.
        keys: Option<&'static [PublicKey]>,
        /// Where the two images sit in the slot.
        images: [GroupImage; 2],
        /// Absolute address of the primary slot.
        primary: u32,
    },
}

impl Checker {
    /// The group check of a [`Checker::Group`].
    fn group(self) -> Option<GroupCheck<Checker, 2>> {
        match self {
            Checker::Group {
                keys,
                images,
                primary,
            } => Some(GroupCheck {
                check: keys.map_or(Checker::Hash, Checker::Mcuboot),
                images,
                primary,
            }),
            _ => None,
        }
    }
}

impl<F: ReadNorFlash> ImageCheck<F> for Checker {
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo> {
        match self {
            Checker::Hash => HashCheck.check(flash, offset, max_size),
            Checker::Mcuboot(keys) => McubootCheck { keys }.check(flash, offset, max_size),
            Checker::Group { .. } => self.group()?.check(flash, offset, max_size),
        }
    }

    fn dependencies(
        &mut self,
        flash: &mut F,
        offset: u32,
        max_size: u32,
        visit: &mut dyn FnMut(u8, ImageVersion),
    ) -> bool {
        match self {
            Checker::Hash | Checker::Group { .. } => true,
            Checker::Mcuboot(keys) => {
                McubootCheck { keys }.dependencies(flash, offset, max_size, visit)
            }
        }
    }

    fn counter_passes(&self, counter: u32, floor: u32) -> bool {
        match self.group() {
            Some(g) => ImageCheck::<F>::counter_passes(&g, counter, floor),
            None => counter >= floor,
        }
    }

    fn raise_floor(&self, floor: u32, counter: u32) -> u32 {
        match self.group() {
            Some(g) => ImageCheck::<F>::raise_floor(&g, floor, counter),
            None => floor.max(counter),
        }
    }
}

/// The bytes of a group slot: each image at its offset, the gaps filled with `erased`.
pub fn group_bytes(images: &[GroupImage], parts: &[Vec<u8>], erased: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (g, bytes) in images.iter().zip(parts) {
        out.resize(g.offset as usize, erased);
        out.extend_from_slice(bytes);
    }
    out
}

/// A signing key (fixed seed: campaigns are reproducible) and its public key list.
pub struct McubootKit {
    key: brickless_image::keys::SigningKey,
    /// The public key of the kit's signing key, as the engine's check takes it.
    pub keys: &'static [PublicKey],
}

impl McubootKit {
    /// The campaigns' kit: a fixed ed25519 key, so runs are reproducible.
    pub fn new() -> McubootKit {
        McubootKit::with_seed([7u8; 32])
    }

    /// A kit with another ed25519 key (e.g. images a device must refuse: wrong signer).
    pub fn with_seed(seed: [u8; 32]) -> McubootKit {
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let key = brickless_image::keys::SigningKey::Ed25519(sk);
        let keys: &'static [PublicKey] = Box::leak(Box::new([key.public_key()]));
        McubootKit { key, keys }
    }

    /// A signed image of about `size` bytes (never more), `write_unit`-aligned TLVs.
    pub fn build(
        &self,
        version: ImageVersion,
        security_counter: u32,
        size: u32,
        seed: u64,
        write_unit: u32,
    ) -> Vec<u8> {
        self.build_with(version, security_counter, size, seed, write_unit, &[])
    }

    /// [`McubootKit::build`] with DEPENDENCY TLVs.
    pub fn build_with(
        &self,
        version: ImageVersion,
        security_counter: u32,
        size: u32,
        seed: u64,
        write_unit: u32,
        dependencies: &[brickless_image::Dependency],
    ) -> Vec<u8> {
        let opts = SignOptions {
            version,
            pad_header: true,
            align: write_unit.clamp(1, 32),
            security_counter: Some(SecurityCounter::Value(security_counter)),
            dependencies: dependencies.to_vec(),
            ..SignOptions::default()
        };
        // Header (0x20 default) + payload + TLVs (hash, key hash, signature, counter) < 256 B.
        let payload_len = (size as usize)
            .saturating_sub(opts.header_size as usize + 256)
            .max(64);
        let mut x = seed;
        let payload: Vec<u8> = (0..payload_len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as u8
            })
            .collect();
        match sign_image(&payload, Some(&self.key), &opts) {
            Ok(img) => img,
            Err(e) => panic!("the campaign's own signing options are valid: {e}"),
        }
    }
}

impl Default for McubootKit {
    fn default() -> Self {
        Self::new()
    }
}
