//! Links the application into the primary slot, after the image header.
use brickless_firmware_build::{link_for, Program};

fn main() {
    link_for(Program::Application);
}
