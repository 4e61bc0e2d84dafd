//! Engine errors say what happened, and an image that cannot run here is the error's source.
use brickless_boot::{Error, LayoutError, NotRunnable};
use core::error::Error as _;

#[test]
fn an_image_that_cannot_run_here_says_why_and_is_the_source() {
    let why = NotRunnable::WrongAddress {
        built_for: 0x0802_0000,
        slot: 0x0804_0000,
    };
    assert_eq!(
        why.to_string(),
        "the image is linked to run at 0x08020000 but the primary slot is at 0x08040000"
    );
    let e = Error::from(why);
    assert_eq!(
        e.to_string(),
        "the staged image cannot run here: the image is linked to run at 0x08020000 but the \
         primary slot is at 0x08040000"
    );
    let source = e.source().expect("NotRunnable is the source");
    assert_eq!(source.to_string(), why.to_string());
    assert!(NotRunnable::Encrypted.to_string().contains("encrypted"));
}

#[test]
fn other_engine_errors_have_no_source() {
    for e in [Error::Corrupt, Error::Downgrade, Error::StagingLocked] {
        assert!(e.source().is_none(), "{e:?}");
        assert!(!e.to_string().is_empty());
    }
    let e = LayoutError::Empty { region: "primary" };
    assert!(e.to_string().contains("primary"), "{e}");
}
