use brickless_flash_model::{SimFlash, UnitState};

/// Asserts that a fill of the erased value at `[from, to)` was skipped, not programmed: every
/// write unit wholly inside it is still erased (so it can be programmed later), and the units
/// holding the bytes just before and after it were programmed. `what` names the case in
/// failure messages.
pub fn assert_fill_units_erased(flash: &SimFlash, from: u32, to: u32, what: &str) {
    let unit = flash.geometry().write_unit;
    let first = from.div_ceil(unit) * unit;
    let last = to / unit * unit;
    assert!(last > first, "{what}: fill spans whole units");
    for a in (first..last).step_by(unit as usize) {
        assert_eq!(
            flash.unit_state(a),
            Some(UnitState::Erased),
            "{what}: unit at {a:#010x} inside the fill was programmed"
        );
    }
    assert_eq!(flash.unit_state(from - 1), Some(UnitState::Programmed));
    assert_eq!(flash.unit_state(to), Some(UnitState::Programmed));
}
