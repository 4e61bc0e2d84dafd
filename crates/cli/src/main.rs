fn main() -> miette::Result<()> {
    brickless::commands::run()
}
