use brickless_flash::Part;
use brickless_rom::RomDevice;

/// The part `name` of the flash table (`"stm32h753zi"`); panics when the table has none.
pub fn flash_part(name: &str) -> &'static Part {
    brickless_flash::part(name).unwrap_or_else(|| panic!("{name} is not in the flash table"))
}

/// The ROM bootloader profile of product ID `pid` (`0x450`); panics when the device table has
/// none.
pub fn rom_device(pid: u16) -> &'static RomDevice {
    brickless_rom::by_pid(pid).unwrap_or_else(|| panic!("{pid:#05x} is not in the device table"))
}
