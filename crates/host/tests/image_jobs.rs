//! The image jobs as the bindings call them: good input works, bad input fails with the kind
//! that names it and leaves no output file.
use std::path::{Path, PathBuf};

use brickless_host::image::{inspect_file, read_signed, sign_file, verify_file, SignSpec};
use brickless_host::ErrorKind;

const DEV_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../keys/insecure-dev-ed25519.pem"
);

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn spec() -> SignSpec {
    SignSpec {
        version: "1.2.3".into(),
        ..SignSpec::default()
    }
}

#[test]
fn sign_verify_inspect_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let raw = write(dir.path(), "app.bin", &[0x5a; 3000]);
    let out = dir.path().join("app.signed.bin");
    let s = sign_file(&raw, &out, Some(Path::new(DEV_KEY)), &spec()).unwrap();
    assert_eq!(s.version, "1.2.3");
    assert!(s.signed && s.hash_matches);
    assert_eq!(s.payload_size, 3000);
    assert_eq!(s.header_size, 0x200);
    let v = verify_file(&out, &[Path::new(DEV_KEY)]).unwrap();
    assert_eq!((v.version.as_str(), v.key_index), ("1.2.3", Some(0)));
    assert_eq!(v.hash, s.hash);
    assert_eq!(inspect_file(&out).unwrap(), s);
    let (bytes, info) = read_signed(&out).unwrap();
    assert_eq!(bytes, std::fs::read(&out).unwrap());
    assert_eq!(brickless_host::hex(&info.computed_hash), s.hash);
}

fn kind<T: std::fmt::Debug>(r: Result<T, brickless_host::Error>) -> ErrorKind {
    r.unwrap_err().kind
}

#[test]
fn bad_input_names_the_problem_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let raw = write(dir.path(), "app.bin", &[0x5a; 3000]);
    let out = dir.path().join("out.bin");

    // Signing: a bad version, a missing or public-only key, a firmware larger than its slot.
    let bad_version = SignSpec {
        version: "1.x".into(),
        ..spec()
    };
    assert_eq!(
        kind(sign_file(&raw, &out, None, &bad_version)),
        ErrorKind::InvalidArgument
    );
    let missing = dir.path().join("nope.pem");
    assert_eq!(
        kind(sign_file(&raw, &out, Some(&missing), &spec())),
        ErrorKind::BadKey
    );
    let garbage_key = write(dir.path(), "garbage.pem", b"-----BEGIN NONSENSE-----\n");
    assert_eq!(
        kind(sign_file(&raw, &out, Some(&garbage_key), &spec())),
        ErrorKind::BadKey
    );
    let small = SignSpec {
        slot_size: 2048,
        ..spec()
    };
    assert_eq!(
        kind(sign_file(&raw, &out, None, &small)),
        ErrorKind::BadImage
    );
    assert_eq!(
        kind(sign_file(&missing, &out, None, &spec())),
        ErrorKind::File
    );
    assert!(!out.exists(), "a failed sign left {}", out.display());

    // Verification: another key, a truncated image, a flipped byte, not an image at all.
    let signed = dir.path().join("signed.bin");
    sign_file(&raw, &signed, Some(Path::new(DEV_KEY)), &spec()).unwrap();
    let bytes = std::fs::read(&signed).unwrap();
    let other = brickless_image::keys::generate(brickless_image::keys::KeyType::Ed25519);
    let other_key = write(dir.path(), "other.pem", other.to_pem().as_bytes());
    let e = verify_file(&signed, &[&other_key]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Verification);
    assert!(e.message.contains("signed.bin"), "{e}");
    let truncated = write(dir.path(), "cut.bin", &bytes[..bytes.len() - 40]);
    assert_eq!(kind(read_signed(&truncated)), ErrorKind::BadImage);
    assert!(verify_file(&truncated, &[Path::new(DEV_KEY)]).is_err());
    let mut flipped = bytes.clone();
    flipped[0x200 + 10] ^= 1;
    let flipped = write(dir.path(), "flip.bin", &flipped);
    assert_eq!(kind(read_signed(&flipped)), ErrorKind::BadImage);
    assert_eq!(
        kind(verify_file(&flipped, &[Path::new(DEV_KEY)])),
        ErrorKind::Verification
    );
    let text = write(dir.path(), "notes.txt", b"hello");
    assert_eq!(kind(inspect_file(&text)), ErrorKind::BadImage);
    assert_eq!(kind(inspect_file(&missing)), ErrorKind::File);
}
