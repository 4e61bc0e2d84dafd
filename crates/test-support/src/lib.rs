#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod flash;
mod parts;
mod peers;
mod random;

pub use flash::assert_fill_units_erased;
pub use parts::{flash_part, rom_device};
pub use peers::{missing_peer, peers_required, REQUIRE_PEERS};
pub use random::{pseudo_random_bytes, XorShift64};

/// Rewrites the CRC in the last four bytes of a `.dfu` file (little-endian, over all bytes
/// before it), so a test that edits a field reaches the check it aims at rather than the
/// CRC check. Files shorter than four bytes are left alone.
pub fn fix_dfu_crc(file: &mut [u8]) {
    let n = file.len();
    if n >= 4 {
        let crc = brickless_rom::dfu_file::dfu_crc(&file[..n - 4]);
        file[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }
}
