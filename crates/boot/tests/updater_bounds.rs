//! The application side's staging calls at the edges of the staging area: the last byte is
//! writable, one past it is refused with no flash operation, and erases cover exactly the
//! sectors asked for.
use brickless_boot::{default_layout, Error, StrategyKind, Updater};
use brickless_flash_model::SimFlash;

fn rig(part: &str) -> (SimFlash, brickless_boot::Layout) {
    let part = brickless_flash::part(part).expect("a known part");
    let layout = default_layout(&part.geometry, StrategyKind::Swap).expect("layout");
    (SimFlash::new(part), layout)
}

fn erased(flash: &SimFlash, addr: u32, len: u32, value: u8) -> bool {
    let mut buf = vec![0u8; len as usize];
    flash.peek(addr, &mut buf).expect("peek");
    buf.iter().all(|&b| b == value)
}

#[test]
fn writes_reach_the_last_unit_of_the_staging_area_and_no_further() {
    for part in ["stm32l475vg", "stm32h753zi", "stm32f407vg"] {
        let (mut flash, layout) = rig(part);
        let staging = layout.staging();
        let wu = layout.write_unit() as usize;
        let mut u = Updater::unverified(&mut flash, layout);
        u.erase_staging().expect("erase");
        let last = staging.size - wu as u32;
        u.write_staged(last, &vec![0x5A; wu])
            .expect("the last unit is writable");
        let before = flash.op_count();
        let mut u = Updater::unverified(&mut flash, layout);
        assert_eq!(
            u.write_staged(last + wu as u32, &vec![0x5A; wu]),
            Err(Error::OutOfRange),
            "{part}: one unit past the end"
        );
        assert_eq!(
            u.write_staged(last, &vec![0x5A; 2 * wu]),
            Err(Error::OutOfRange),
            "{part}: crossing the end"
        );
        assert_eq!(
            u.write_staged(u32::MAX - 1, &[0; 8]),
            Err(Error::OutOfRange)
        );
        assert_eq!(
            flash.op_count(),
            before,
            "{part}: refused writes touch nothing"
        );
        let mut tail = vec![0u8; wu];
        flash
            .peek(staging.end() - wu as u32, &mut tail)
            .expect("peek");
        assert!(
            tail.iter().all(|&b| b == 0x5A),
            "{part}: the last unit was written"
        );
    }
}

#[test]
fn erase_staging_erases_the_whole_area_and_nothing_else() {
    let (mut flash, layout) = rig("stm32l475vg");
    let staging = layout.staging();
    let primary = layout.spec().primary;
    let erased_value = layout.erased();
    flash.fill(staging.start, staging.size, 0x11).expect("fill");
    flash.fill(primary.start, primary.size, 0x22).expect("fill");
    Updater::unverified(&mut flash, layout)
        .erase_staging()
        .expect("erase");
    assert!(erased(&flash, staging.start, staging.size, erased_value));
    assert!(
        erased(&flash, primary.start, primary.size, 0x22),
        "the primary slot is untouched"
    );
}

/// The flash under an updater, for checks between calls.
fn flash_peek<'a>(u: &'a mut Updater<&mut SimFlash, brickless_boot::NoCheck>) -> &'a SimFlash {
    u.flash()
}

#[test]
fn erase_staged_rounds_out_to_sectors_clips_to_the_area_and_refuses_bad_ranges() {
    let (mut flash, layout) = rig("stm32l475vg");
    let staging = layout.staging();
    let erased_value = layout.erased();
    flash.fill(staging.start, staging.size, 0x33).expect("fill");
    let mut u = Updater::unverified(&mut flash, layout);
    // 2 KiB pages: bytes 0..2048 are the first page exactly, 1..2049 touch two.
    assert_eq!(u.erase_staged(0, 2048), Ok(2048));
    assert!(erased(
        flash_peek(&mut u),
        staging.start,
        2048,
        erased_value
    ));
    assert!(
        erased(flash_peek(&mut u), staging.start + 2048, 2048, 0x33),
        "page 2 kept"
    );
    assert_eq!(u.erase_staged(1, 2049), Ok(4096));
    // The whole area up to its last byte.
    assert_eq!(u.erase_staged(4096, staging.size), Ok(staging.size));
    let before = flash.op_count();
    let mut u = Updater::unverified(&mut flash, layout);
    for (from, to) in [(10, 10), (20, 10), (0, staging.size + 1)] {
        assert_eq!(
            u.erase_staged(from, to),
            Err(Error::OutOfRange),
            "{from}..{to}"
        );
    }
    assert_eq!(flash.op_count(), before, "refused erases touch nothing");
    assert!(erased(&flash, staging.start, staging.size, erased_value));
}
