//! Arbitrary bytes through the parser, the in-memory view, `inspect` and the flash
//! verifier (at an offset, with a READ_SIZE of 8): nothing may panic, and the parser
//! and verifier must agree on well-formedness.
#![no_main]

use brickless_image::{
    inspect, trailer::TrailerState, verify_bytes, verify_image, ImageError, ImageView, PublicKey,
    VerifyError,
};
use embedded_storage::nor_flash::{ErrorType, NorFlashErrorKind, ReadNorFlash};
use libfuzzer_sys::fuzz_target;

struct Aligned<'a>(&'a [u8]);

impl ErrorType for Aligned<'_> {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Aligned<'_> {
    const READ_SIZE: usize = 8;
    fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        assert!(offset % 8 == 0 && out.len() % 8 == 0, "unaligned read");
        let src = self
            .0
            .get(offset as usize..offset as usize + out.len())
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

fuzz_target!(|data: &[u8]| {
    // The keys of the seeds in fuzz/seeds: the RFC 8032 test key 1 (Ed25519) and the
    // P-256 key with secret 0x0123…ef repeated.
    let ed = PublicKey::Ed25519([
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ]);
    let ec = PublicKey::EcdsaP256([
        0x04, 0xd8, 0xcd, 0x12, 0xea, 0x5c, 0x67, 0xf2, 0xf8, 0xa0, 0x0c, 0x11, 0x24, 0x89, 0x3e,
        0xdc, 0xfa, 0x67, 0x54, 0xc4, 0xd6, 0xce, 0xde, 0x6b, 0xe1, 0x3b, 0xdf, 0x22, 0x95, 0xc8,
        0x10, 0xa9, 0x7f, 0xa5, 0xa8, 0x9d, 0x2d, 0x2a, 0x36, 0x0c, 0x0c, 0xa9, 0xa4, 0xd6, 0xc7,
        0xc9, 0xed, 0x4b, 0x28, 0xd3, 0xe1, 0x99, 0xd6, 0x62, 0x7f, 0x2e, 0x69, 0x6d, 0x68, 0x9c,
        0x31, 0x0a, 0x5b, 0x0f, 0x48,
    ]);
    let keys = [ed, ec];
    let parsed = ImageView::parse(data);
    let verified = verify_bytes(data, &keys);
    // The structural checks of the parser and the verifier agree. (The verifier also
    // checks the length of the hash/key/signature TLVs it uses: BadTlvLength.)
    match (&parsed, &verified) {
        (_, Err(VerifyError::Format(ImageError::BadTlvLength { .. }))) => {}
        (Err(p), Err(VerifyError::Format(v))) => assert_eq!(p, v, "parser and verifier disagree"),
        (Err(p), v) => panic!("parser rejects ({p:?}) but verifier says {v:?}"),
        (Ok(_), Err(VerifyError::Format(v))) => panic!("parser accepts, verifier rejects {v:?}"),
        (Ok(_), _) => {}
    }
    let _ = inspect::inspect(data, 0xff);
    let _ = TrailerState::read(data, 32, 0xff);

    // Same bytes at an unaligned offset in a flash with READ_SIZE 8.
    let mut flash = vec![0xffu8; data.len() + 24];
    flash[5..5 + data.len()].copy_from_slice(data);
    let r = verify_image(&mut Aligned(&flash), 5, data.len() as u32, &keys);
    // Neither may hit a flash error, so the outcomes must print identically.
    assert_eq!(
        format!("{:?}", r.map(|v| v.hash)),
        format!("{:?}", verified.map(|v| v.hash)),
        "slice and aligned-flash verification disagree"
    );
});
