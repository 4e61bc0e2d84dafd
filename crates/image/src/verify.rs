//! Stream-verify an image that lives in flash: no allocation, one fixed read buffer.
//!
//! Checks, in order: header (magic, sizes against the slot), protected TLV area
//! (0x6908, its size equal to the header's), unprotected TLV area (0x6907, inside the
//! slot, every record inside its area), SHA-256 over header + payload + protected TLVs
//! against the SHA256 TLV, then, when keys are given, KEYHASH/PUBKEY against the keys
//! and the signature over the digest (Ed25519, or ECDSA P-256 prehash).

use embedded_storage::nor_flash::ReadNorFlash;
use sha2::{Digest, Sha256};

use crate::error::{ImageError, VerifyError};
use crate::header::{ImageHeader, ImageLayout, IMAGE_HEADER_SIZE};
use crate::pubkey::{PublicKey, MAX_SPKI_LEN};
use crate::tlv::{kind, TLV_HEADER_SIZE, TLV_INFO_MAGIC, TLV_INFO_SIZE, TLV_PROT_INFO_MAGIC};

/// Bytes of the verifier's flash read buffer (on the stack).
pub const READ_BUFFER_SIZE: usize = 256;
/// Longest ECDSA P-256 signature TLV accepted (DER, at most 72 bytes incl. `--pad-sig`).
const MAX_ECDSA_SIG_LEN: usize = 72;

/// Where an image sits in its slot, from the header and TLV info headers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageExtent {
    /// The decoded image header.
    pub header: ImageHeader,
    /// Payload and TLV offsets derived from the header (relative to the image start).
    pub layout: ImageLayout,
    /// Security counter from the protected SEC_CNT TLV, if present.
    pub security_counter: Option<u32>,
    /// End of the unprotected TLV area (relative to the image start): the number of
    /// bytes the image occupies.
    pub tlv_end: u32,
}

/// An image that passed [`verify_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedImage {
    /// The decoded image header (covered by the verified hash).
    pub header: ImageHeader,
    /// SHA-256 over header, payload and protected TLVs (equal to the SHA256 TLV).
    pub hash: [u8; 32],
    /// Index into the `keys` slice of the key whose signature verified; `None` when no
    /// keys were given (hash-only check).
    pub key_index: Option<usize>,
    /// Security counter from the protected SEC_CNT TLV (for anti-rollback).
    pub security_counter: Option<u32>,
    /// End of the unprotected TLV area (relative to the image start).
    pub tlv_end: u32,
}

impl VerifiedImage {
    /// The image version from the header.
    pub fn version(&self) -> crate::ImageVersion {
        self.header.version
    }
}

/// Reads a slot through a window of `READ_BUFFER_SIZE` bytes, honouring `READ_SIZE`.
struct SlotReader<'f, F: ReadNorFlash> {
    flash: &'f mut F,
    base: u32,
    slot_size: u32,
    capacity: u32,
    win_start: u32,
    win_len: usize,
    buf: [u8; READ_BUFFER_SIZE],
}

type Res<T, F> = Result<T, VerifyError<<F as embedded_storage::nor_flash::ErrorType>::Error>>;

impl<'f, F: ReadNorFlash> SlotReader<'f, F> {
    fn new(flash: &'f mut F, base: u32, slot_size: u32) -> Res<Self, F> {
        let capacity = u32::try_from(flash.capacity()).unwrap_or(u32::MAX);
        let out_of_range = VerifyError::SlotOutOfRange {
            offset: base,
            slot_size,
            capacity,
        };
        match base.checked_add(slot_size) {
            Some(end) if end <= capacity => {}
            _ => return Err(out_of_range),
        }
        let rs = F::READ_SIZE;
        if rs == 0 || !rs.is_power_of_two() || rs > READ_BUFFER_SIZE {
            return Err(VerifyError::UnsupportedReadSize(rs));
        }
        Ok(Self {
            flash,
            base,
            slot_size,
            capacity,
            win_start: 0,
            win_len: 0,
            buf: [0; READ_BUFFER_SIZE],
        })
    }

    /// Up to `max` bytes at slot offset `rel` (at least one byte when `rel < slot_size`).
    fn chunk(&mut self, rel: u32, max: usize) -> Res<&[u8], F> {
        if rel >= self.slot_size {
            return Err(ImageError::Truncated {
                needed: rel.saturating_add(1),
                available: self.slot_size,
            }
            .into());
        }
        let abs = self.base + rel;
        let in_window = abs >= self.win_start && ((abs - self.win_start) as usize) < self.win_len;
        if !in_window {
            let rs = F::READ_SIZE as u32;
            let start = abs & !(rs - 1);
            // Read only what is asked (rounded to READ_SIZE), never ahead: the bytes after
            // an image may be a torn unit that faults on read.
            let slot_end = self.base + self.slot_size;
            let asked_end = abs
                .saturating_add(max.min(READ_BUFFER_SIZE) as u32)
                .min(slot_end);
            let wanted_end = (asked_end.saturating_add(rs - 1) & !(rs - 1)).min(self.capacity);
            let mut len = (wanted_end - start).min(READ_BUFFER_SIZE as u32);
            len &= !(rs - 1);
            if start + len <= abs {
                return Err(VerifyError::UnsupportedReadSize(F::READ_SIZE));
            }
            self.win_len = 0;
            self.flash
                .read(start, &mut self.buf[..len as usize])
                .map_err(VerifyError::Flash)?;
            self.win_start = start;
            self.win_len = len as usize;
        }
        let from = (abs - self.win_start) as usize;
        let to = from + max.min(self.win_len - from);
        Ok(&self.buf[from..to])
    }

    fn read(&mut self, rel: u32, out: &mut [u8]) -> Res<(), F> {
        let mut done = 0;
        while done < out.len() {
            let c = self.chunk(rel + done as u32, out.len() - done)?;
            out[done..done + c.len()].copy_from_slice(c);
            done += c.len();
        }
        Ok(())
    }

    fn read_u16_pair(&mut self, rel: u32) -> Res<(u16, u16), F> {
        let mut b = [0u8; 4];
        self.read(rel, &mut b)?;
        Ok((
            u16::from_le_bytes([b[0], b[1]]),
            u16::from_le_bytes([b[2], b[3]]),
        ))
    }

    fn hash(&mut self, len: u32) -> Res<[u8; 32], F> {
        let mut sha = Sha256::new();
        let mut pos = 0u32;
        while pos < len {
            let c = self.chunk(pos, (len - pos) as usize)?;
            sha.update(c);
            pos += c.len() as u32;
        }
        Ok(sha.finalize().into())
    }
}

/// Walks the records of one TLV area in flash, checking each lies inside it.
struct TlvCursor {
    pos: u32,
    end: u32,
}

impl TlvCursor {
    /// Next record: `(kind, offset of value, len)`.
    fn next<F: ReadNorFlash>(
        &mut self,
        r: &mut SlotReader<'_, F>,
    ) -> Res<Option<(u16, u32, u16)>, F> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let offset = self.pos;
        if self.end - offset < TLV_HEADER_SIZE as u32 {
            return Err(ImageError::TlvPastEnd {
                offset,
                len: 0,
                area_end: self.end,
            }
            .into());
        }
        let (kind, len) = r.read_u16_pair(offset)?;
        let value = offset + TLV_HEADER_SIZE as u32;
        if self.end - value < len as u32 {
            return Err(ImageError::TlvPastEnd {
                offset,
                len,
                area_end: self.end,
            }
            .into());
        }
        self.pos = value + len as u32;
        Ok(Some((kind, value, len)))
    }
}

fn locate_with<F: ReadNorFlash>(r: &mut SlotReader<'_, F>) -> Res<ImageExtent, F> {
    let slot_size = r.slot_size;
    if slot_size < IMAGE_HEADER_SIZE as u32 {
        return Err(ImageError::Truncated {
            needed: IMAGE_HEADER_SIZE as u32,
            available: slot_size,
        }
        .into());
    }
    let mut hb = [0u8; IMAGE_HEADER_SIZE];
    r.read(0, &mut hb)?;
    let header = ImageHeader::from_bytes(&hb)?;
    let layout = header.layout(slot_size)?;

    let mut security_counter = None;
    if header.protect_tlv_size != 0 {
        let off = layout.payload_end;
        let (magic, total) = r.read_u16_pair(off)?;
        if magic != TLV_PROT_INFO_MAGIC {
            return Err(ImageError::MissingTlvInfo {
                offset: off,
                expected: TLV_PROT_INFO_MAGIC,
                found: magic,
            }
            .into());
        }
        if total != header.protect_tlv_size {
            return Err(ImageError::ProtectedSizeMismatch {
                header: header.protect_tlv_size,
                info: total,
            }
            .into());
        }
        if (total as usize) < TLV_INFO_SIZE {
            return Err(ImageError::TlvInfoTooSmall { offset: off, total }.into());
        }
        let mut cur = TlvCursor {
            pos: off + TLV_INFO_SIZE as u32,
            end: layout.protected_end,
        };
        // Whole area first, so a broken record wins over a bad SEC_CNT (as ImageView).
        let mut sec_cnt = None;
        while let Some((k, value, len)) = cur.next(r)? {
            if k == kind::SEC_CNT && sec_cnt.is_none() {
                sec_cnt = Some((value, len));
            }
        }
        if let Some((value, len)) = sec_cnt {
            if len != 4 {
                return Err(ImageError::BadTlvLength {
                    kind: kind::SEC_CNT,
                    len,
                }
                .into());
            }
            let mut b = [0u8; 4];
            r.read(value, &mut b)?;
            security_counter = Some(u32::from_le_bytes(b));
        }
    }

    let off = layout.protected_end;
    let (magic, total) = r.read_u16_pair(off)?;
    if magic != TLV_INFO_MAGIC {
        return Err(ImageError::MissingTlvInfo {
            offset: off,
            expected: TLV_INFO_MAGIC,
            found: magic,
        }
        .into());
    }
    if (total as usize) < TLV_INFO_SIZE {
        return Err(ImageError::TlvInfoTooSmall { offset: off, total }.into());
    }
    let tlv_end = off
        .checked_add(total as u32)
        .ok_or(ImageError::SizeOverflow)?;
    if tlv_end > slot_size {
        return Err(ImageError::Truncated {
            needed: tlv_end,
            available: slot_size,
        }
        .into());
    }
    let mut cur = TlvCursor {
        pos: off + TLV_INFO_SIZE as u32,
        end: tlv_end,
    };
    while cur.next(r)?.is_some() {}

    Ok(ImageExtent {
        header,
        layout,
        security_counter,
        tlv_end,
    })
}

/// Check the image structure at `offset` (header, both TLV areas) without hashing:
/// how many bytes it occupies, its version and security counter. Does NOT prove the
/// image authentic; use [`verify_image`] before trusting it.
pub fn locate_image<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    slot_size: u32,
) -> Result<ImageExtent, VerifyError<F::Error>> {
    let mut r = SlotReader::new(flash, offset, slot_size)?;
    locate_with(&mut r)
}

/// The DEPENDENCY TLVs of the image at `offset`, in order, handed to `visit`: the versions
/// this image requires of the other images of its group. Reads the protected TLV area only
/// (which the image hash covers, so after [`verify_image`] they are authentic). A
/// DEPENDENCY record of the wrong length is an error.
pub fn image_dependencies<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    slot_size: u32,
    mut visit: impl FnMut(crate::tlv::Dependency),
) -> Result<(), VerifyError<F::Error>> {
    let mut r = SlotReader::new(flash, offset, slot_size)?;
    let extent = locate_with(&mut r)?;
    if extent.header.protect_tlv_size == 0 {
        return Ok(());
    }
    let mut cur = TlvCursor {
        pos: extent.layout.payload_end + TLV_INFO_SIZE as u32,
        end: extent.layout.protected_end,
    };
    while let Some((k, value, len)) = cur.next(&mut r)? {
        if k != kind::DEPENDENCY {
            continue;
        }
        let mut b = [0u8; crate::tlv::Dependency::ENCODED_LEN];
        if usize::from(len) != b.len() {
            return Err(ImageError::BadTlvLength {
                kind: kind::DEPENDENCY,
                len,
            }
            .into());
        }
        r.read(value, &mut b)?;
        if let Some(d) = crate::tlv::Dependency::decode(&b) {
            visit(d);
        }
    }
    Ok(())
}

/// Verify the image stored at `offset` in a slot of `slot_size` bytes.
///
/// With `keys` empty only the structure and the SHA-256 are checked (MCUboot without
/// signatures). With keys, the image must name one of them (KEYHASH or PUBKEY TLV)
/// and carry a valid signature by it over the SHA-256 digest.
pub fn verify_image<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    slot_size: u32,
    keys: &[PublicKey],
) -> Result<VerifiedImage, VerifyError<F::Error>> {
    let mut r = SlotReader::new(flash, offset, slot_size)?;
    let extent = locate_with(&mut r)?;
    let hash = r.hash(extent.layout.protected_end)?;
    let tlvs = || TlvCursor {
        pos: extent.layout.protected_end + TLV_INFO_SIZE as u32,
        end: extent.tlv_end,
    };

    // Pass 1: the hash TLV.
    let mut found_hash = false;
    let mut other_hash = None;
    let mut cur = tlvs();
    while let Some((k, value, len)) = cur.next(&mut r)? {
        match k {
            kind::SHA256 => {
                if len != 32 {
                    return Err(ImageError::BadTlvLength { kind: k, len }.into());
                }
                let mut expected = [0u8; 32];
                r.read(value, &mut expected)?;
                if expected != hash {
                    return Err(VerifyError::HashMismatch {
                        computed: hash,
                        expected,
                    });
                }
                found_hash = true;
            }
            kind::SHA384 | kind::SHA512 => other_hash = Some(k),
            _ => {}
        }
    }
    if !found_hash {
        return Err(match other_hash {
            Some(kind) => VerifyError::UnsupportedHash { kind },
            None => VerifyError::MissingHash,
        });
    }

    let verified = |key_index| VerifiedImage {
        header: extent.header,
        hash,
        key_index,
        security_counter: extent.security_counter,
        tlv_end: extent.tlv_end,
    };
    if keys.is_empty() {
        return Ok(verified(None));
    }

    // Pass 2: key, then signature by that key.
    let mut key_tlv_seen = false;
    let mut any_key_matched = false;
    let mut bad_signature = false;
    let mut current: Option<usize> = None;
    let mut cur = tlvs();
    while let Some((k, value, len)) = cur.next(&mut r)? {
        match k {
            kind::KEYHASH => {
                key_tlv_seen = true;
                if len != 32 {
                    return Err(ImageError::BadTlvLength { kind: k, len }.into());
                }
                let mut h = [0u8; 32];
                r.read(value, &mut h)?;
                current = keys.iter().position(|key| key.key_hash() == h);
            }
            kind::PUBKEY => {
                key_tlv_seen = true;
                current = None;
                if len as usize <= MAX_SPKI_LEN {
                    let mut der = [0u8; MAX_SPKI_LEN];
                    let der = &mut der[..len as usize];
                    r.read(value, der)?;
                    let mut scratch = [0u8; MAX_SPKI_LEN];
                    current = keys
                        .iter()
                        .position(|key| key.spki_der(&mut scratch) == &der[..]);
                }
            }
            kind::ED25519 | kind::ECDSA_SIG => {
                let Some(index) = current else { continue };
                any_key_matched = true;
                let key = &keys[index];
                if key.signature_tlv() != k {
                    continue;
                }
                let ok = match key {
                    PublicKey::Ed25519(raw) => {
                        if len != 64 {
                            return Err(ImageError::BadTlvLength { kind: k, len }.into());
                        }
                        let mut sig = [0u8; 64];
                        r.read(value, &mut sig)?;
                        verify_ed25519(raw, &hash, &sig).map_err(|e| e.into_error(index))?
                    }
                    PublicKey::EcdsaP256(point) => {
                        if len as usize > MAX_ECDSA_SIG_LEN || len < 8 {
                            return Err(ImageError::BadTlvLength { kind: k, len }.into());
                        }
                        let mut sig = [0u8; MAX_ECDSA_SIG_LEN];
                        let sig = &mut sig[..len as usize];
                        r.read(value, sig)?;
                        verify_ecdsa_p256(point, &hash, sig).map_err(|e| e.into_error(index))?
                    }
                };
                if ok {
                    return Ok(verified(Some(index)));
                }
                bad_signature = true;
            }
            _ => {}
        }
        if current.is_some() {
            any_key_matched = true;
        }
    }
    Err(if bad_signature {
        VerifyError::BadSignature
    } else if any_key_matched {
        VerifyError::MissingSignature
    } else if key_tlv_seen {
        VerifyError::UnknownKey
    } else {
        VerifyError::MissingKeyTlv
    })
}

/// Why a signature could not be checked at all.
#[allow(dead_code)] // which variants occur depends on the algorithms built
enum SignatureCheckFailed {
    /// The trusted key is not a valid key of its type.
    InvalidKey,
    /// Its algorithm's cargo feature is off.
    NotBuilt,
}

impl SignatureCheckFailed {
    fn into_error<E>(self, index: usize) -> VerifyError<E> {
        match self {
            Self::InvalidKey => VerifyError::InvalidKey { index },
            Self::NotBuilt => VerifyError::AlgorithmNotBuilt { index },
        }
    }
}

/// `Ok(valid)`, or why the signature could not be checked.
#[cfg(feature = "ed25519")]
fn verify_ed25519(
    key: &[u8; 32],
    digest: &[u8; 32],
    sig: &[u8; 64],
) -> Result<bool, SignatureCheckFailed> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key)
        .map_err(|_| SignatureCheckFailed::InvalidKey)?;
    let sig = ed25519_dalek::Signature::from_bytes(sig);
    Ok(vk.verify_strict(digest, &sig).is_ok())
}

#[cfg(not(feature = "ed25519"))]
fn verify_ed25519(_: &[u8; 32], _: &[u8; 32], _: &[u8; 64]) -> Result<bool, SignatureCheckFailed> {
    Err(SignatureCheckFailed::NotBuilt)
}

/// `Ok(valid)`, or why the signature could not be checked. imgtool may pad the DER
/// signature with zeros (`--pad-sig`); like imgtool, only `2 + sig[1]` bytes count.
#[cfg(feature = "p256")]
fn verify_ecdsa_p256(
    point: &[u8; 65],
    digest: &[u8; 32],
    sig: &[u8],
) -> Result<bool, SignatureCheckFailed> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
        .map_err(|_| SignatureCheckFailed::InvalidKey)?;
    let der_len = sig.get(1).map_or(0, |&l| l as usize + 2).min(sig.len());
    let Ok(sig) = p256::ecdsa::Signature::from_der(&sig[..der_len]) else {
        return Ok(false);
    };
    Ok(vk.verify_prehash(digest, &sig).is_ok())
}

#[cfg(not(feature = "p256"))]
fn verify_ecdsa_p256(_: &[u8; 65], _: &[u8; 32], _: &[u8]) -> Result<bool, SignatureCheckFailed> {
    Err(SignatureCheckFailed::NotBuilt)
}
