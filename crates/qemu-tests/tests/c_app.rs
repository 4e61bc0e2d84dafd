//! The C example application, built with arm-none-eabi-gcc against the cbindgen header and
//! the static library, signed and installed like any image: the real bootloader starts it in
//! QEMU and it prints the boot info it reads through the library.
use brickless_boot::layout::FIRMWARE_APP_HEADER;
use brickless_image::ImageVersion;
use brickless_qemu_tests::firmware::{bootloader, c_library, elf_bytes};
use brickless_qemu_tests::flash::FlashImage;
use brickless_qemu_tests::qemu::Qemu;
use brickless_qemu_tests::{dev_key, qemu_present, repo_root, sign_app, L475};
use std::process::Command;
use std::time::Duration;

fn gcc_present() -> bool {
    let ok = Command::new("arm-none-eabi-gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        brickless_test_support::missing_peer("arm-none-eabi-gcc (Debian gcc-arm-none-eabi)");
    }
    ok
}

#[test]
fn the_c_example_boots_and_prints_its_boot_info_read_through_the_library() {
    if !qemu_present() || !gcc_present() {
        return;
    }
    let machine = L475;
    let mut flash = FlashImage::new(machine.part);
    flash.bootloader(&elf_bytes(&bootloader(&machine, true), 0x0800_0000, 0xFF));
    let slot = flash.layout.spec().primary;
    let lib = c_library(&machine);
    let root = repo_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let elf = dir.path().join("c-app.elf");
    let defsym = |name: &str, value: u32| format!("-Wl,--defsym={name}={value:#x}");
    let out = Command::new("arm-none-eabi-gcc")
        .args([
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
        ])
        .args([
            "-Os",
            "-Wall",
            "-Werror",
            "-ffunction-sections",
            "-fdata-sections",
        ])
        .args(["--specs=nano.specs", "--specs=nosys.specs", "-nostartfiles"])
        .arg("-I")
        .arg(root.join("firmware/app-c"))
        .arg("-L")
        .arg(root.join("crates/app/linker"))
        .arg("-T")
        .arg(root.join("firmware/c-example/link.ld"))
        .arg(defsym("BRICKLESS_SLOT", slot.start))
        .arg(defsym("BRICKLESS_SLOT_SIZE", flash.layout.max_image_size()))
        .arg(defsym("BRICKLESS_HEADER", FIRMWARE_APP_HEADER))
        .arg(defsym("RAM_ORIGIN", flash.part.ram_base))
        .arg(defsym("RAM_LENGTH", flash.part.ram_size))
        // No loadable segment holding the ELF headers below the image (see link.ld).
        .args(["-Wl,--gc-sections", "-Wl,--nmagic"])
        .arg(root.join("firmware/c-example/main.c"))
        .arg(root.join("firmware/c-example/startup.c"))
        .arg(&lib)
        .arg("-o")
        .arg(&elf)
        .output()
        .expect("arm-none-eabi-gcc runs");
    assert!(
        out.status.success(),
        "the C example does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let payload = elf_bytes(&elf, slot.start + FIRMWARE_APP_HEADER, 0xFF);
    let image = sign_app(&payload, &flash.layout, ImageVersion::new(3, 1, 4, 15), 1);
    flash.install(&image, &[dev_key().public_key()]);

    let mut q = Qemu::start(&machine, &flash.bytes());
    let wait = Duration::from_secs(20);
    q.wait_for("boot: image 3.1.4+15", wait);
    q.wait_for("c-app: hello from the C example application", wait);
    q.wait_for(
        &format!(
            "c-app: boot info: image 3.1.4+15 at {:#010x}, trial no, event none, bootloader 0.1.0",
            slot.start
        ),
        wait,
    );
    q.wait_for("c-app: null argument: a null pointer was passed", wait);
}
