//! Each signature algorithm is a cargo feature: a build verifies the images of the
//! algorithms it includes and names the ones it left out. `scripts/test.sh` runs this file
//! with the default features and with `--no-default-features --features ed25519`.
use brickless_image::{verify_image, PublicKey, SliceFlash, VerifyError};

const ED25519_IMAGE: &[u8] = include_bytes!("fixtures/ed25519.signed.bin");
const ED25519_KEY: &[u8] = include_bytes!("fixtures/ed25519.pub.der");
const P256_IMAGE: &[u8] = include_bytes!("fixtures/p256.signed.bin");
const P256_KEY: &[u8] = include_bytes!("fixtures/p256.pub.der");

fn verify(
    image: &[u8],
    key: &[u8],
) -> Result<Option<usize>, VerifyError<brickless_image::image::OutOfBounds>> {
    let key = PublicKey::from_spki_der(key).expect("fixture key parses");
    let mut flash = SliceFlash::new(image);
    verify_image(&mut flash, 0, image.len() as u32, &[key]).map(|v| v.key_index)
}

#[test]
#[cfg(feature = "ed25519")]
fn an_ed25519_build_verifies_ed25519_images() {
    assert_eq!(verify(ED25519_IMAGE, ED25519_KEY), Ok(Some(0)));
}

#[test]
#[cfg(feature = "p256")]
fn a_p256_build_verifies_p256_images() {
    assert_eq!(verify(P256_IMAGE, P256_KEY), Ok(Some(0)));
}

#[test]
#[cfg(not(feature = "p256"))]
fn a_build_without_p256_names_the_missing_algorithm() {
    assert_eq!(
        verify(P256_IMAGE, P256_KEY),
        Err(VerifyError::AlgorithmNotBuilt { index: 0 })
    );
}

#[test]
#[cfg(not(feature = "ed25519"))]
fn a_build_without_ed25519_names_the_missing_algorithm() {
    assert_eq!(
        verify(ED25519_IMAGE, ED25519_KEY),
        Err(VerifyError::AlgorithmNotBuilt { index: 0 })
    );
}

#[test]
fn a_tampered_image_fails_whatever_the_build() {
    for (image, key) in [(ED25519_IMAGE, ED25519_KEY), (P256_IMAGE, P256_KEY)] {
        let mut bad = image.to_vec();
        bad[0x20 + 10] ^= 1;
        assert!(matches!(
            verify(&bad, key),
            Err(VerifyError::HashMismatch { .. })
        ));
    }
}
