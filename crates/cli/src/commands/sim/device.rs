//! `brickless sim [--rom] --part NAME --flash FILE …`: a virtual device on a pty or TCP.
use clap::Args;

#[derive(Args, Debug)]
pub struct DeviceArgs {}

pub fn run(_args: DeviceArgs) -> miette::Result<()> {
    Err(miette::miette!("the virtual device is not built yet"))
}
