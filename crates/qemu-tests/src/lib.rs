#![doc = include_str!("../README.md")]

pub mod firmware;
pub mod flash;
pub mod qemu;

/// A QEMU machine and the firmware builds that run on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// QEMU's `-M` name.
    pub qemu: &'static str,
    /// The firmware's board feature suffix (`board-<board>`).
    pub board: &'static str,
    /// The chip-table part whose flash the machine has.
    pub part: &'static str,
    /// Rust target of the machine's core.
    pub target: &'static str,
    /// Options QEMU needs on this machine to take a raw flash file.
    pub extra_args: &'static [&'static str],
}

/// The B-L475E-IOT01A (STM32L475VG, Cortex-M4F).
pub const L475: Machine = Machine {
    qemu: "b-l475e-iot01a",
    board: "b-l475e-iot01a",
    part: "stm32l475vg",
    target: "thumbv7em-none-eabihf",
    // Raw loading is capped at the machine RAM size, which is 0 on this machine.
    extra_args: &["-m", "1M"],
};

/// The Netduino Plus 2 (STM32F405RG, Cortex-M4F): the F4 bootloader with USART1 as console.
pub const F405: Machine = Machine {
    qemu: "netduinoplus2",
    board: "netduinoplus2",
    part: "stm32f407vg",
    target: "thumbv7em-none-eabihf",
    extra_args: &[],
};

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `qemu-system-arm` 10 or later is installed: a missing QEMU fails the test when peers
/// are required (CI), else the test skips.
pub fn qemu_present() -> bool {
    let ok = std::process::Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let major = text
                .split("version ")
                .nth(1)
                .and_then(|v| v.split('.').next())
                .and_then(|m| m.parse::<u32>().ok());
            o.status.success() && major.is_some_and(|m| m >= 10)
        });
    if !ok {
        brickless_test_support::missing_peer("qemu-system-arm 10 (scripts/install-qemu-arm.sh)");
    }
    ok
}

/// The repository's insecure development key, which the firmware embeds by default.
pub fn dev_key() -> brickless_image::keys::LoadedKey {
    let path = repo_root().join("keys/insecure-dev-ed25519.pem");
    let pem = std::fs::read_to_string(&path).expect("the development key");
    brickless_image::keys::load_pem(&pem).expect("a valid key")
}

/// `payload` (an application linked after the header) signed with the development key as
/// imgtool would (`--header-size 0x400 --pad-header`, TLVs aligned to the layout's write
/// unit) with `version` and security counter `counter`.
pub fn sign_app(
    payload: &[u8],
    layout: &brickless_boot::Layout,
    version: brickless_image::ImageVersion,
    counter: u32,
) -> Vec<u8> {
    use brickless_image::sign::{sign_image, SecurityCounter, SignOptions};
    let opts = SignOptions {
        version,
        header_size: brickless_boot::layout::FIRMWARE_APP_HEADER,
        pad_header: true,
        align: layout.write_unit(),
        security_counter: Some(SecurityCounter::Value(counter)),
        ..SignOptions::default()
    };
    sign_image(payload, dev_key().signing_key(), &opts).expect("sign the application")
}
