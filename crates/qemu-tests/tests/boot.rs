//! The real bootloader binary in QEMU 10, on the two STM32 machines QEMU has: it verifies a
//! signed image installed by the engine and jumps to it; it refuses a tampered image and a
//! downgrade and says why on USART1; recovery answers smpmgr; the example application reads
//! its boot info through `brickless-app`.
use brickless_boot::layout::FIRMWARE_APP_HEADER;
use brickless_image::{ImageVersion, PublicKey};
use brickless_qemu_tests::firmware::{bootloader, elf_bytes, example_app};
use brickless_qemu_tests::flash::FlashImage;
use brickless_qemu_tests::qemu::Qemu;
use brickless_qemu_tests::{dev_key, qemu_present, sign_app, Machine, F405, L475};
use brickless_smp::client::Client;
use brickless_smp::transport::SerialTransport;
use std::process::Command;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(20);

/// The example application for `machine`, signed with version `version` and security
/// counter `counter`.
fn signed_app(
    machine: &Machine,
    flash: &FlashImage,
    version: ImageVersion,
    counter: u32,
) -> Vec<u8> {
    let app_at = flash.layout.spec().primary.start + FIRMWARE_APP_HEADER;
    let payload = elf_bytes(&example_app(machine), app_at, 0xFF);
    sign_app(&payload, &flash.layout, version, counter)
}

fn keys() -> Vec<PublicKey> {
    vec![dev_key().public_key()]
}

/// A flash with the bootloader and `app` installed by the engine.
fn device(machine: &Machine, version: ImageVersion, counter: u32) -> (FlashImage, Vec<u8>) {
    let mut flash = FlashImage::new(machine.part);
    let bl = elf_bytes(&bootloader(machine, true), 0x0800_0000, 0xFF);
    flash.bootloader(&bl);
    let app = signed_app(machine, &flash, version, counter);
    flash.install(&app, &keys());
    (flash, app)
}

fn boots_and_the_app_reads_its_boot_info(machine: &Machine) -> Qemu {
    let (flash, _) = device(machine, ImageVersion::new(1, 2, 3, 0), 1);
    let slot = flash.layout.spec().primary.start;
    let mut q = Qemu::start(machine, &flash.bytes());
    q.wait_for("brickless bootloader", BOOT);
    q.wait_for("WARNING: built with the insecure development key", BOOT);
    q.wait_for(
        &format!("boot: image 1.2.3+0 at {slot:#010x} verified"),
        BOOT,
    );
    q.wait_for(
        &format!("jump: vector table at {:#010x}", slot + FIRMWARE_APP_HEADER),
        BOOT,
    );
    q.wait_for("app: hello from the brickless example application", BOOT);
    q.wait_for("app: boot info:", BOOT);
    let info = "app: boot info:".to_string() + &q.wait_for("\n", BOOT);
    assert!(
        info.contains(&format!("app: boot info: image 1.2.3+0 at {slot:#010x}"))
            && info.contains("trial no")
            && info.contains("event None")
            && info.contains("bootloader 0.1.0"),
        "boot info as the application read it: {info}"
    );
    q
}

#[test]
fn l475_boots_a_signed_image_and_the_app_reads_its_boot_info() {
    if !qemu_present() {
        return;
    }
    boots_and_the_app_reads_its_boot_info(&L475);
}

#[test]
fn f405_boots_a_signed_image_and_the_app_reads_its_boot_info() {
    if !qemu_present() {
        return;
    }
    boots_and_the_app_reads_its_boot_info(&F405);
}

#[test]
fn l475_tampered_image_is_refused_and_recovery_says_why() {
    if !qemu_present() {
        return;
    }
    let (mut flash, app) = device(&L475, ImageVersion::new(1, 0, 0, 0), 1);
    let mut tampered = app.clone();
    tampered[0x400] ^= 0x01; // a payload byte
    flash.replace_primary(&tampered);
    // Nothing else to install: a copy left in the secondary would be installed instead, and
    // QEMU cannot program flash.
    flash.erase_secondary();
    let mut q = Qemu::start(&L475, &flash.bytes());
    q.wait_for(
        "recovery: no slot holds an image that verifies and may run",
        BOOT,
    );
    q.wait_for("primary slot: image hash mismatch", BOOT);
    q.wait_for("recovery (no image to start): SMP on this port", BOOT);
    assert!(
        !q.output().contains("app: hello"),
        "a tampered image never runs"
    );
}

#[test]
fn f405_downgrade_below_the_floor_is_refused() {
    if !qemu_present() {
        return;
    }
    // v2 (security counter 2) installed for good raises the floor to 2; then an older v1
    // (counter 1) is put in its place behind the engine's back.
    let (mut flash, _) = device(&F405, ImageVersion::new(2, 0, 0, 0), 2);
    let v1 = signed_app(&F405, &flash, ImageVersion::new(1, 0, 0, 0), 1);
    flash.replace_primary(&v1);
    flash.erase_secondary();
    let mut q = Qemu::start(&F405, &flash.bytes());
    q.wait_for(
        "recovery: no slot holds an image that verifies and may run",
        BOOT,
    );
    q.wait_for(
        "primary slot: image 1.0.0 refused: downgrade (security counter 1 below the floor 2)",
        BOOT,
    );
    q.wait_for("recovery (no image to start)", BOOT);
    assert!(!q.output().contains("app: hello"), "a downgrade never runs");
}

#[test]
fn l475_app_requests_recovery_and_smpmgr_talks_to_the_real_bootloader() {
    if !qemu_present() {
        return;
    }
    let mut q = boots_and_the_app_reads_its_boot_info(&L475);
    q.wait_for("app: keys:", BOOT);
    q.send(b"r");
    q.wait_for("app: entering recovery", BOOT);
    q.wait_for(
        "recovery (the application asked for it): SMP on this port",
        BOOT,
    );
    q.release_console();
    let port = q.pty.display().to_string();
    let smpmgr = |args: &[&str]| -> String {
        let out = Command::new("smpmgr")
            .args(["--port", &port, "--timeout", "10"])
            .args(args)
            .output();
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).to_string()
                    + &String::from_utf8_lossy(&o.stderr);
                assert!(o.status.success(), "smpmgr {args:?} failed:\n{text}");
                text
            }
            Err(e) => {
                brickless_test_support::missing_peer("smpmgr");
                format!("smpmgr missing: {e}")
            }
        }
    };
    let echo = smpmgr(&["os", "echo", "hello from smpmgr"]);
    if echo.starts_with("smpmgr missing") {
        return;
    }
    assert!(echo.contains("hello from smpmgr"), "echo answer: {echo}");
    let state = smpmgr(&["image", "state-read"]);
    assert!(
        state.contains("version='1.2.3") && state.contains("slot=0"),
        "image state from the real bootloader: {state}"
    );

    // The protect command reads the same registers the boot log reported (QEMU's flash
    // interface reads 0, whatever that decodes to).
    let link = SerialTransport::open(&port, 115_200).expect("open the pty");
    let mut client = Client::new(link);
    let p = client.protection().expect("the protect command answers");
    let wrp = match p.wrp.as_str() {
        "full" => "write-protected",
        "partial" => "partly write-protected",
        _ => "not write-protected",
    };
    let logged = format!(
        "protection: read-out level {}, bootloader sectors {wrp}",
        p.rdp
    );
    assert!(
        q.output().contains(&logged),
        "{logged:?} not in the boot log:\n{}",
        q.output()
    );
}

#[test]
fn f405_double_reset_enters_recovery_and_a_single_reset_boots() {
    if !qemu_present() {
        return;
    }
    let (flash, _) = device(&F405, ImageVersion::new(1, 0, 0, 0), 1);
    let mut q = Qemu::start(&F405, &flash.bytes());
    // A reset after the window has closed is an ordinary reset.
    q.wait_for("press reset again within 500 ms for recovery", BOOT);
    q.wait_for("app: hello", BOOT);
    q.reset();
    q.wait_for("press reset again within 500 ms for recovery", BOOT);
    q.wait_for("boot: image 1.0.0+0", BOOT);
    q.wait_for("app: hello", BOOT);
    // A second reset inside the window (the counter lives in the RAM mailbox, which a reset
    // keeps) stays in the bootloader.
    q.reset();
    q.wait_for("press reset again within 500 ms for recovery", BOOT);
    q.reset();
    q.wait_for("recovery (double reset): SMP on this port", BOOT);
}

#[test]
fn f405_and_l475_guarded_reads_turn_a_bus_fault_into_an_error() {
    if !qemu_present() {
        return;
    }
    for machine in [F405, L475] {
        let mut q = boots_and_the_app_reads_its_boot_info(&machine);
        q.wait_for("app: keys:", BOOT);
        q.send(b"g");
        q.wait_for(
            "app: guarded read of 0x08100000: bus fault at 0x08100000, returned as an error",
            BOOT,
        );
        // The application runs on.
        q.send(b"i");
        q.wait_for("app: boot info: image 1.2.3+0", BOOT);
    }
}
