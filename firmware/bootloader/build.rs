//! The board's memory map (from the engine's default layout) and the embedded public key.
use brickless_firmware_build::{embed_key, link_for, Program};
use std::path::Path;

fn main() {
    link_for(Program::Bootloader);
    embed_key(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
}
