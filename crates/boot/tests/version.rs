//! The packed version orders images as MCUboot's downgrade check does: major, then minor,
//! then revision; the build number does not count.
use brickless_boot::ImageVersion;

fn v(major: u8, minor: u8, revision: u16, build: u32) -> ImageVersion {
    ImageVersion {
        major,
        minor,
        revision,
        build,
    }
}

#[test]
fn packed_versions_order_by_major_then_minor_then_revision() {
    let ordered = [
        v(0, 0, 0, 9),
        v(0, 0, 1, 0),
        v(0, 0, u16::MAX, 0),
        v(0, 1, 0, 0),
        v(0, u8::MAX, u16::MAX, 0),
        v(1, 0, 0, 0),
        v(1, 2, 3, 0),
        v(2, 0, 0, 0),
        v(u8::MAX, 0, 0, 0),
    ];
    for pair in ordered.windows(2) {
        assert!(
            pair[0].packed() < pair[1].packed(),
            "{:?} !< {:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(v(1, 2, 3, 0).packed(), v(1, 2, 3, 77).packed());
}
