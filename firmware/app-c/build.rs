//! The board (part and layout) and the key a confirmed image must be signed with.
use brickless_firmware_build::{embed_key, link_for, Program};
use std::path::Path;

fn main() {
    link_for(Program::Application);
    embed_key(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
}
