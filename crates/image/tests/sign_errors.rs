//! Bad signing options and bad key files get their own named errors.

use brickless_image::inspect::inspect;
use brickless_image::keys::{self, KeyError, LoadedKey};
use brickless_image::sign::{sign_image, SignError, SignOptions};
use brickless_image::trailer::{FlagState, MagicState};

fn base() -> SignOptions {
    SignOptions {
        header_size: 0x20,
        pad_header: true,
        slot_size: 0x2000,
        ..SignOptions::default()
    }
}

#[test]
fn bad_options_are_named() {
    let input = vec![0u8; 100];
    let cases: Vec<(SignOptions, SignError)> = vec![
        (
            SignOptions {
                header_size: 16,
                ..base()
            },
            SignError::InvalidHeaderSize(16),
        ),
        (
            SignOptions {
                header_size: 0x10000,
                ..base()
            },
            SignError::InvalidHeaderSize(0x10000),
        ),
        (
            SignOptions { align: 3, ..base() },
            SignError::InvalidAlign(3),
        ),
        (
            SignOptions {
                max_align: Some(4),
                ..base()
            },
            SignError::InvalidMaxAlign(4),
        ),
        (
            SignOptions {
                erased_val: 0x55,
                ..base()
            },
            SignError::InvalidErasedValue(0x55),
        ),
        (
            SignOptions {
                load_addr: Some(1),
                rom_fixed: Some(2),
                ..base()
            },
            SignError::LoadAddrAndRomFixed,
        ),
        (
            SignOptions {
                pad: true,
                slot_size: 0,
                ..base()
            },
            SignError::PadWithoutSlotSize,
        ),
        (
            SignOptions {
                custom_tlvs: vec![(0x50, vec![])],
                ..base()
            },
            SignError::InvalidCustomTlv(0x50),
        ),
        (
            SignOptions {
                custom_tlvs: vec![(0x9f, vec![])],
                ..base()
            },
            SignError::InvalidCustomTlv(0x9f),
        ),
        (
            SignOptions {
                custom_tlvs: vec![(0xa0, vec![]), (0xa0, vec![1])],
                ..base()
            },
            SignError::DuplicateCustomTlv(0xa0),
        ),
    ];
    for (o, e) in cases {
        assert_eq!(sign_image(&input, None, &o), Err(e));
    }
    let no_pad_header = SignOptions {
        pad_header: false,
        ..base()
    };
    assert_eq!(
        sign_image(&[1u8; 100], None, &no_pad_header),
        Err(SignError::HeaderNotZero { header_size: 0x20 })
    );
    assert_eq!(
        sign_image(&[0u8; 10], None, &no_pad_header),
        Err(SignError::InputShorterThanHeader {
            len: 10,
            header_size: 0x20
        })
    );
    assert!(matches!(
        sign_image(&vec![0u8; 0x2000], None, &base()),
        Err(SignError::TooLargeForSlot { slot: 0x2000, .. })
    ));
}

#[test]
fn padded_trailers_read_back() {
    let confirm = SignOptions {
        confirm: true,
        align: 32,
        slot_size: 0x4000,
        ..base()
    };
    let img = sign_image(&[7u8; 100], None, &confirm).unwrap();
    assert_eq!(img.len(), 0x4000);
    let t = inspect(&img, 0xff).unwrap().trailer.unwrap();
    assert_eq!(t.max_align, Some(32));
    assert_eq!(
        (t.state.magic, t.state.image_ok),
        (MagicState::Good, FlagState::Set)
    );
    let test = SignOptions {
        test: true,
        erased_val: 0,
        ..base()
    };
    let img = sign_image(&[7u8; 100], None, &test).unwrap();
    let t = inspect(&img, 0).unwrap().trailer.unwrap();
    assert_eq!(t.max_align, Some(8));
    assert_eq!(
        (t.state.magic, t.state.image_ok),
        (MagicState::Good, FlagState::Unset)
    );
    assert!(inspect(&img, 0).unwrap().hash_matches);
}

#[test]
fn bad_key_files_are_named() {
    assert_eq!(keys::load_pem("hello").unwrap_err(), KeyError::NotPem);
    let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert_eq!(keys::load_pem(enc).unwrap_err(), KeyError::Encrypted);
    let junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        keys::load_pem(junk).unwrap_err(),
        KeyError::Invalid { .. }
    ));
    for kind in [keys::KeyType::Ed25519, keys::KeyType::EcdsaP256] {
        let k = keys::generate(kind);
        let pem = k.to_pem();
        let back = keys::load_pem(&pem).unwrap();
        assert!(matches!(&back, LoadedKey::Private(p) if p.public_key() == k.public_key()));
        let public =
            String::from_utf8(keys::getpub(&k.public_key(), keys::GetpubEncoding::Pem, ""))
                .unwrap();
        assert!(
            matches!(keys::load_pem(&public).unwrap(), LoadedKey::Public(p) if p == k.public_key())
        );
    }
}
