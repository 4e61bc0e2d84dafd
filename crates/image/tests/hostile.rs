//! Hostile and malformed images: each is rejected with its own error, never a panic.

use brickless_image::keys::SigningKey;
use brickless_image::sign::{sign_image, SecurityCounter, SignOptions};
use brickless_image::tlv::kind;
use brickless_image::{
    locate_image, verify_bytes, verify_image, ImageError, ImageView, PublicKey, SliceFlash,
    VerifyError,
};
use brickless_test_support::pseudo_random_bytes;
use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use proptest::prelude::*;

fn ed_key(seed: u8) -> SigningKey {
    SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
}

fn ec_key(seed: u8) -> SigningKey {
    let mut b = [seed; 32];
    b[0] = 1;
    SigningKey::EcdsaP256(p256::ecdsa::SigningKey::from_bytes(&b.into()).unwrap())
}

fn opts() -> SignOptions {
    SignOptions {
        header_size: 0x80,
        pad_header: true,
        slot_size: 0x4000,
        version: "1.2.3+4".parse().unwrap(),
        security_counter: Some(SecurityCounter::Value(7)),
        custom_tlvs: vec![(0xa0, vec![1, 2, 3])],
        ..SignOptions::default()
    }
}

fn good_image(key: &SigningKey) -> Vec<u8> {
    sign_image(&pseudo_random_bytes(1000, 1), Some(key), &opts()).unwrap()
}

fn view(img: &[u8]) -> ImageView<'_> {
    ImageView::parse(img).unwrap()
}

fn format_err(
    r: Result<brickless_image::VerifiedImage, VerifyError<impl core::fmt::Debug>>,
) -> ImageError {
    match r {
        Err(VerifyError::Format(e)) => e,
        other => panic!("expected a format error, got {other:?}"),
    }
}

/// Offset of the first TLV of `k` in the unprotected area.
fn tlv_offset(img: &[u8], k: u16) -> usize {
    view(img).unprotected.find(k).unwrap().offset as usize
}

#[test]
fn good_image_verifies_with_all_fields() {
    let key = ed_key(1);
    let img = good_image(&key);
    let v = verify_bytes(&img, &[ed_key(2).public_key(), key.public_key()]).unwrap();
    assert_eq!(v.key_index, Some(1));
    assert_eq!(v.security_counter, Some(7));
    assert_eq!(v.header.version.to_string(), "1.2.3+4");
    assert_eq!(v.tlv_end as usize, img.len());
    assert_eq!(&v.hash, view(&img).hash_tlv().unwrap());
}

#[test]
fn truncated_at_every_length() {
    let key = ed_key(1);
    let img = good_image(&key);
    let keys = [key.public_key()];
    for len in 0..img.len() {
        let err = format_err(verify_bytes(&img[..len], &keys));
        let expected_ok = match err {
            ImageError::Truncated { needed, available } => {
                available as usize == len && needed as usize > len && needed as usize <= img.len()
            }
            ImageError::HeaderBeyondImage {
                hdr_size,
                available,
            } => len >= 32 && (hdr_size as usize) > len && available as usize == len,
            _ => false,
        };
        assert!(expected_ok, "len {len}: {err:?}");
        assert_eq!(ImageView::parse(&img[..len]).unwrap_err(), err, "len {len}");
    }
    assert!(verify_bytes(&img, &keys).is_ok());
}

#[test]
fn wrong_magic() {
    let mut img = good_image(&ed_key(1));
    img[0] ^= 1;
    assert_eq!(
        format_err(verify_bytes(&img, &[])),
        ImageError::BadMagic { found: 0x96f3_b83c }
    );
}

#[test]
fn header_size_beyond_image_and_too_small() {
    let mut img = good_image(&ed_key(1));
    img[8..10].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        format_err(verify_bytes(&img, &[])),
        ImageError::HeaderBeyondImage {
            hdr_size: 0xfff0,
            ..
        }
    ));
    img[8..10].copy_from_slice(&16u16.to_le_bytes());
    assert_eq!(
        format_err(verify_bytes(&img, &[])),
        ImageError::HeaderTooSmall { hdr_size: 16 }
    );
}

#[test]
fn image_size_overflow_and_past_slot() {
    let mut img = good_image(&ed_key(1));
    img[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        format_err(verify_bytes(&img, &[])),
        ImageError::SizeOverflow
    );
    img[12..16].copy_from_slice(&0x1000_0000u32.to_le_bytes());
    assert!(matches!(
        format_err(verify_bytes(&img, &[])),
        ImageError::Truncated { needed, .. } if needed > 0x1000_0000
    ));
}

#[test]
fn tlv_length_past_end() {
    let key = ed_key(1);
    let img = good_image(&key);
    // Unprotected: the signature TLV claims more bytes than the area holds.
    let mut bad = img.clone();
    let sig = tlv_offset(&img, kind::ED25519);
    bad[sig + 2..sig + 4].copy_from_slice(&100u16.to_le_bytes());
    assert!(matches!(
        format_err(verify_bytes(&bad, &[key.public_key()])),
        ImageError::TlvPastEnd { len: 100, .. }
    ));
    // Protected: the custom TLV runs past the protected area.
    let mut bad = img.clone();
    let custom = view(&img).protected.unwrap().find(0xa0).unwrap().offset as usize;
    bad[custom + 2..custom + 4].copy_from_slice(&50u16.to_le_bytes());
    assert!(matches!(
        format_err(verify_bytes(&bad, &[key.public_key()])),
        ImageError::TlvPastEnd { len: 50, .. }
    ));
    // The unprotected area's total runs past the image.
    let mut bad = img.clone();
    let info = view(&img).layout.protected_end as usize;
    bad[info + 2..info + 4].copy_from_slice(&0x7000u16.to_le_bytes());
    assert!(matches!(
        format_err(verify_bytes(&bad, &[])),
        ImageError::Truncated { .. }
    ));
}

#[test]
fn missing_tlv_info_and_protected_size_mismatch() {
    let img = good_image(&ed_key(1));
    let v = view(&img);
    let mut bad = img.clone();
    let info = v.layout.protected_end as usize;
    bad[info] ^= 0xff;
    assert!(matches!(
        format_err(verify_bytes(&bad, &[])),
        ImageError::MissingTlvInfo {
            expected: 0x6907,
            ..
        }
    ));
    let mut bad = img.clone();
    let prot = v.layout.payload_end as usize;
    bad[prot] ^= 0xff;
    assert!(matches!(
        format_err(verify_bytes(&bad, &[])),
        ImageError::MissingTlvInfo {
            expected: 0x6908,
            ..
        }
    ));
    let mut bad = img.clone();
    bad[prot + 2] += 4;
    assert!(matches!(
        format_err(verify_bytes(&bad, &[])),
        ImageError::ProtectedSizeMismatch { .. }
    ));
}

#[test]
fn missing_hash_wrong_hash_unsupported_hash() {
    let key = ed_key(1);
    let img = good_image(&key);
    let sha = tlv_offset(&img, kind::SHA256);
    let mut bad = img.clone();
    bad[sha..sha + 2].copy_from_slice(&0x99u16.to_le_bytes());
    assert_eq!(
        verify_bytes(&bad, &[key.public_key()]),
        Err(VerifyError::MissingHash)
    );
    bad[sha..sha + 2].copy_from_slice(&(kind::SHA512).to_le_bytes());
    assert_eq!(
        verify_bytes(&bad, &[key.public_key()]),
        Err(VerifyError::UnsupportedHash { kind: kind::SHA512 })
    );
    let mut bad = img.clone();
    bad[sha + 4] ^= 1;
    assert!(matches!(
        verify_bytes(&bad, &[key.public_key()]),
        Err(VerifyError::HashMismatch { .. })
    ));
}

#[test]
fn wrong_key_missing_key_missing_signature_bad_signature() {
    for key in [ed_key(1), ec_key(1)] {
        let img = good_image(&key);
        let other = if matches!(key, SigningKey::Ed25519(_)) {
            ed_key(9)
        } else {
            ec_key(9)
        };
        assert_eq!(
            verify_bytes(&img, &[other.public_key()]),
            Err(VerifyError::UnknownKey)
        );

        let mut bad = img.clone();
        let kh = tlv_offset(&img, kind::KEYHASH);
        bad[kh..kh + 2].copy_from_slice(&0xa1u16.to_le_bytes());
        assert_eq!(
            verify_bytes(&bad, &[key.public_key()]),
            Err(VerifyError::MissingKeyTlv)
        );

        let sig_kind = key.public_key().signature_tlv();
        let sig = tlv_offset(&img, sig_kind);
        let mut bad = img.clone();
        bad[sig..sig + 2].copy_from_slice(&0xa1u16.to_le_bytes());
        assert_eq!(
            verify_bytes(&bad, &[key.public_key()]),
            Err(VerifyError::MissingSignature)
        );

        let mut bad = img.clone();
        bad[sig + 4 + 10] ^= 0x40;
        assert_eq!(
            verify_bytes(&bad, &[key.public_key()]),
            Err(VerifyError::BadSignature)
        );

        let unsigned = sign_image(&pseudo_random_bytes(1000, 1), None, &opts()).unwrap();
        assert_eq!(
            verify_bytes(&unsigned, &[key.public_key()]),
            Err(VerifyError::MissingKeyTlv)
        );
        assert!(verify_bytes(&unsigned, &[]).is_ok());
    }
}

#[test]
fn tampered_payload_header_and_protected_tlv_are_hash_mismatches() {
    let key = ec_key(3);
    let img = good_image(&key);
    let v = view(&img);
    let sec_cnt = v.protected.unwrap().find(kind::SEC_CNT).unwrap().offset as usize + 4;
    for at in [
        v.layout.payload_start as usize + 10,
        22, /* version */
        sec_cnt,
    ] {
        let mut bad = img.clone();
        bad[at] ^= 0x01;
        assert!(
            matches!(
                verify_bytes(&bad, &[key.public_key()]),
                Err(VerifyError::HashMismatch { .. })
            ),
            "byte {at}"
        );
    }
}

/// Flash that faults (like an ECC double error) on reads touching one range.
struct FaultyFlash<'a> {
    bytes: &'a [u8],
    bad: core::ops::Range<u32>,
    reads: usize,
}

#[derive(Debug, PartialEq)]
struct EccFault(u32);

impl NorFlashError for EccFault {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl ErrorType for FaultyFlash<'_> {
    type Error = EccFault;
}

impl ReadNorFlash for FaultyFlash<'_> {
    const READ_SIZE: usize = 16;
    fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), EccFault> {
        assert_eq!(offset % 16, 0, "unaligned read offset");
        assert_eq!(out.len() % 16, 0, "unaligned read length");
        self.reads += 1;
        let end = offset + out.len() as u32;
        if offset < self.bad.end && self.bad.start < end {
            return Err(EccFault(offset));
        }
        out.copy_from_slice(&self.bytes[offset as usize..end as usize]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

#[test]
fn flash_faults_are_errors_and_read_size_is_honoured() {
    let key = ed_key(4);
    let img = sign_image(&pseudo_random_bytes(5000, 2), Some(&key), &opts()).unwrap();
    // Image at an unaligned base inside a bigger flash.
    let base = 0x1003u32;
    let mut flash_bytes = vec![0xffu8; 0x10000];
    flash_bytes[base as usize..base as usize + img.len()].copy_from_slice(&img);
    let slot = 0x4000;
    let mut ok = FaultyFlash {
        bytes: &flash_bytes,
        bad: 0..0,
        reads: 0,
    };
    let v = verify_image(&mut ok, base, slot, &[key.public_key()]).unwrap();
    assert_eq!(v.tlv_end as usize, img.len());
    assert!(ok.reads < 64, "{} reads", ok.reads);
    let e = locate_image(&mut ok, base, slot).unwrap();
    assert_eq!((e.tlv_end, e.security_counter), (v.tlv_end, Some(7)));

    for fault_at in [base, base + 0x200, base + img.len() as u32 - 10] {
        let mut f = FaultyFlash {
            bytes: &flash_bytes,
            bad: fault_at..fault_at + 1,
            reads: 0,
        };
        assert!(
            matches!(
                verify_image(&mut f, base, slot, &[key.public_key()]),
                Err(VerifyError::Flash(EccFault(_)))
            ),
            "fault at {fault_at:#x}"
        );
    }
    let mut f = FaultyFlash {
        bytes: &flash_bytes,
        bad: 0..0,
        reads: 0,
    };
    assert!(matches!(
        verify_image(&mut f, 0xf000, 0x2000, &[]),
        Err(VerifyError::SlotOutOfRange { .. })
    ));
    assert!(matches!(
        verify_image(&mut SliceFlash::new(&flash_bytes), u32::MAX, 2, &[]),
        Err(VerifyError::SlotOutOfRange { .. })
    ));
}

#[test]
fn pubkey_format_full_and_spki_round_trip() {
    for key in [ed_key(5), ec_key(5)] {
        let o = SignOptions {
            public_key_format: brickless_image::sign::PublicKeyFormat::Full,
            ..opts()
        };
        let img = sign_image(&pseudo_random_bytes(300, 3), Some(&key), &o).unwrap();
        let pk = key.public_key();
        assert_eq!(verify_bytes(&img, &[pk]).unwrap().key_index, Some(0));
        let der = view(&img).unprotected.find(kind::PUBKEY).unwrap().data;
        assert_eq!(PublicKey::from_spki_der(der), Ok(pk));
        let other = if matches!(key, SigningKey::Ed25519(_)) {
            ed_key(6)
        } else {
            ec_key(6)
        };
        assert_eq!(
            verify_bytes(&img, &[other.public_key()]),
            Err(VerifyError::UnknownKey)
        );
    }
}

/// The in-memory parser and the flash verifier agree on structure. (Only the verifier
/// checks the lengths of the hash/key/signature TLVs it uses: BadTlvLength.)
fn assert_parser_agrees<E: core::fmt::Debug>(
    bytes: &[u8],
    r: &Result<brickless_image::VerifiedImage, VerifyError<E>>,
) {
    match (ImageView::parse(bytes), r) {
        (_, Err(VerifyError::Format(ImageError::BadTlvLength { .. }))) => {}
        (Err(p), Err(VerifyError::Format(v))) => assert_eq!(&p, v),
        (Err(p), v) => panic!("parser rejects ({p:?}) but verifier says {v:?}"),
        (Ok(_), Err(VerifyError::Format(v))) => panic!("parser accepts, verifier rejects {v:?}"),
        (Ok(_), _) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let keys = [ed_key(1).public_key(), ec_key(1).public_key()];
        let r = verify_bytes(&bytes, &keys);
        assert_parser_agrees(&bytes, &r);
        let _ = brickless_image::inspect::inspect(&bytes, 0xff);
        let _ = brickless_image::trailer::TrailerState::read(&bytes, 8, 0xff);
    }

    #[test]
    fn arbitrary_header_on_valid_magic_never_panics(
        hdr in proptest::array::uniform32(any::<u8>()),
        tail in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = hdr.to_vec();
        bytes[..4].copy_from_slice(&0x96f3_b83du32.to_le_bytes());
        bytes[8] = bytes[8].max(32);
        bytes[9] = 0;
        bytes.extend_from_slice(&tail);
        let _ = verify_bytes(&bytes, &[ed_key(1).public_key()]);
        let _ = brickless_image::inspect::inspect(&bytes, 0xff);
    }

    /// Any change to the hashed region (header, payload, protected TLVs) is rejected.
    #[test]
    fn mutations_of_signed_images_are_caught(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ecdsa in any::<bool>(),
    ) {
        let key = if ecdsa { ec_key(7) } else { ed_key(7) };
        let img = sign_image(&pseudo_random_bytes(200, 5), Some(&key), &opts()).unwrap();
        let hashed = view(&img).layout.protected_end as usize;
        let mut bad = img.clone();
        for (i, x) in &edits {
            bad[i.index(img.len())] ^= x;
        }
        let r = verify_bytes(&bad, &[key.public_key()]);
        assert_parser_agrees(&bad, &r);
        if r.is_ok() {
            prop_assert_eq!(&bad[..hashed], &img[..hashed]);
        }
    }
}

struct HugeReadSize<'a>(&'a [u8]);

impl ErrorType for HugeReadSize<'_> {
    type Error = EccFault;
}

impl ReadNorFlash for HugeReadSize<'_> {
    const READ_SIZE: usize = 512;
    fn read(&mut self, _offset: u32, _out: &mut [u8]) -> Result<(), EccFault> {
        Err(EccFault(0))
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

#[test]
fn erased_slot_and_unsupported_read_size() {
    let blank = vec![0xffu8; 0x1000];
    assert_eq!(
        locate_image(&mut SliceFlash::new(&blank), 0, 0x1000),
        Err(VerifyError::Format(ImageError::BadMagic {
            found: 0xffff_ffff
        }))
    );
    assert_eq!(
        verify_image(&mut HugeReadSize(&blank), 0, 0x1000, &[]),
        Err(VerifyError::UnsupportedReadSize(512))
    );
}

/// OpenSSL (imgtool) does not normalise `s`: both `s` and `n - s` must verify, as they
/// do in MCUboot.
#[test]
fn ecdsa_high_and_low_s_both_verify() {
    use p256::ecdsa::Signature;
    let key = ec_key(11);
    let img = good_image(&key);
    let sig_at = tlv_offset(&img, kind::ECDSA_SIG);
    let v = view(&img);
    let der = v.unprotected.find(kind::ECDSA_SIG).unwrap().data;
    let sig = Signature::from_der(der).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = Signature::from_scalars(r, -*s).unwrap();
    for variant in [sig, flipped] {
        let new_der = variant.to_der();
        let mut bytes = img[..sig_at].to_vec();
        bytes.extend_from_slice(&kind::ECDSA_SIG.to_le_bytes());
        bytes.extend_from_slice(&(new_der.as_bytes().len() as u16).to_le_bytes());
        bytes.extend_from_slice(new_der.as_bytes());
        let info = v.layout.protected_end as usize;
        let total = (bytes.len() - info) as u16;
        bytes[info + 2..info + 4].copy_from_slice(&total.to_le_bytes());
        assert_eq!(
            verify_bytes(&bytes, &[key.public_key()]).unwrap().key_index,
            Some(0)
        );
    }
}
