//! The `brickless` command; everything it does is in the library half (`brickless::commands`).

fn main() -> miette::Result<()> {
    brickless::commands::run()
}
