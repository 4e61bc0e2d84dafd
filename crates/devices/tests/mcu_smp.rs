//! The virtual MCU driven by brickless's SMP client over UDP: recovery takes a first image,
//! a test upgrade boots as a trial, an unconfirmed trial is reverted, a confirmed one stays,
//! an upload during a trial is refused and the revert still happens.
use std::sync::Arc;
use std::time::Duration;

use brickless_boot::{default_layout, BootEvent, StrategyKind};
use brickless_campaign::kit::McubootKit;
use brickless_devices::mcu::serve::{McuOptions, McuService};
use brickless_devices::mcu::{Booted, SelfConfirm, VirtualMcu};
use brickless_flash_model::SimFlash;
use brickless_image::ImageVersion;
use brickless_smp::client::{Client, ClientError};
use brickless_smp::transport::UdpTransport;

fn device(part: &str, confirm: SelfConfirm, kit: &McubootKit) -> McuService {
    let part = brickless_flash::part(part).unwrap();
    let layout = default_layout(&part.geometry, StrategyKind::Swap).unwrap();
    let mcu = VirtualMcu::new(SimFlash::new(part), layout, kit.keys.to_vec(), confirm);
    let opts = McuOptions {
        udp: Some("127.0.0.1:0".into()),
        pty: false,
        link: None,
        baud: None,
        turnaround: Duration::ZERO,
        log: Arc::new(|_| {}),
    };
    McuService::start(mcu, None, &opts).unwrap()
}

fn client(svc: &McuService) -> Client<UdpTransport> {
    let addr = svc.places()[0].strip_prefix("udp ").unwrap().to_string();
    let mut c = Client::new(UdpTransport::connect(addr, 1500).unwrap());
    c.set_timeout(Duration::from_secs(5));
    c
}

fn image(kit: &McubootKit, major: u8, size: u32) -> Vec<u8> {
    kit.build(
        ImageVersion::new(major, 0, 0, 0),
        0,
        size,
        u64::from(major),
        32,
    )
}

fn booted_version(svc: &McuService) -> Option<(u8, bool, BootEvent)> {
    match svc.device().lock().unwrap().booted() {
        Booted::App {
            image,
            trial,
            event,
            ..
        } => Some((image.version.major, *trial, *event)),
        _ => None,
    }
}

#[test]
fn recovery_then_test_upgrade_revert_and_confirm_over_udp() {
    let kit = McubootKit::new();
    let svc = device("stm32h753zi", SelfConfirm::Never, &kit);
    let mut c = client(&svc);
    assert_eq!(c.echo("hello").unwrap(), "hello");
    assert_eq!(booted_version(&svc), None, "a blank device serves recovery");
    assert!(c.images().unwrap().is_empty());

    // Recovery: upload and reset installs the first image, as MCUboot's serial recovery.
    let v1 = image(&kit, 1, 40_000);
    let r = c.upload(&v1, |_, _| {}).unwrap();
    assert_eq!(r.matched, Some(true));
    c.reset().unwrap();
    assert_eq!(booted_version(&svc), Some((1, false, BootEvent::Installed)));

    // A test upgrade: staged, marked, trial boot, not confirmed -> reverted.
    let v2 = image(&kit, 2, 60_000);
    c.upload(&v2, |_, _| {}).unwrap();
    let states = c.images().unwrap();
    let staged = states
        .iter()
        .find(|s| s.slot == 1)
        .expect("the staged image is listed");
    assert_eq!(staged.version, "2.0.0");
    assert!(!staged.pending);
    let hash = staged.hash.clone();
    let states = c.test(&hash).unwrap();
    assert!(states
        .iter()
        .any(|s| s.slot == 1 && s.pending && !s.permanent));
    c.reset().unwrap();
    assert_eq!(
        booted_version(&svc),
        Some((2, true, BootEvent::TrialStarted))
    );
    let states = c.images().unwrap();
    let running = states.iter().find(|s| s.slot == 0).unwrap();
    assert!(running.active && !running.confirmed);
    assert!(states
        .iter()
        .any(|s| s.slot == 1 && s.version == "1.0.0" && s.confirmed));

    // During the trial an upload would overwrite the revert image: refused, nothing changes.
    let v3 = image(&kit, 3, 30_000);
    match c.upload(&v3, |_, _| {}) {
        Err(ClientError::Device {
            group: 1,
            rc: 9,
            v2: true,
        }) => {}
        other => panic!("an upload during a trial must be refused with `no free slot`: {other:?}"),
    }
    match c.erase() {
        Err(ClientError::Device { rc: 9, .. }) => {}
        other => panic!("an erase during a trial must be refused: {other:?}"),
    }
    c.reset().unwrap();
    assert_eq!(booted_version(&svc), Some((1, false, BootEvent::Reverted)));

    // Again, and this time confirm over SMP: it stays.
    c.upload(&v2, |_, _| {}).unwrap();
    c.test(&hash).unwrap();
    c.reset().unwrap();
    assert_eq!(
        booted_version(&svc),
        Some((2, true, BootEvent::TrialStarted))
    );
    let states = c.confirm(None).unwrap();
    assert!(states
        .iter()
        .any(|s| s.slot == 0 && s.confirmed && s.version == "2.0.0"));
    c.reset().unwrap();
    assert_eq!(booted_version(&svc), Some((2, false, BootEvent::None)));
}

#[test]
fn a_self_confirming_application_keeps_its_update() {
    let kit = McubootKit::new();
    let svc = device("stm32l475vg", SelfConfirm::Always, &kit);
    let mut c = client(&svc);
    c.upload(&image(&kit, 1, 20_000), |_, _| {}).unwrap();
    c.reset().unwrap();
    let v2 = image(&kit, 2, 20_000);
    c.upload(&v2, |_, _| {}).unwrap();
    let hash = c
        .images()
        .unwrap()
        .into_iter()
        .find(|s| s.slot == 1)
        .unwrap()
        .hash;
    c.test(&hash).unwrap();
    c.reset().unwrap();
    assert_eq!(
        booted_version(&svc),
        Some((2, false, BootEvent::TrialStarted))
    );
    c.reset().unwrap();
    assert_eq!(booted_version(&svc), Some((2, false, BootEvent::None)));
}

#[test]
fn bad_images_are_refused_before_anything_is_written() {
    let kit = McubootKit::new();
    let other = McubootKit::with_seed([9u8; 32]);
    let svc = device("stm32h753zi", SelfConfirm::Never, &kit);
    let mut c = client(&svc);
    c.upload(&image(&kit, 1, 20_000), |_, _| {}).unwrap();
    c.reset().unwrap();
    let ops = svc.device().lock().unwrap().flash().op_count();

    // Not an MCUboot image at all.
    match c.upload(&[0x55u8; 5000], |_, _| {}) {
        Err(ClientError::Device { rc: 22, .. }) => {}
        other => panic!("a file without an image header is refused: {other:?}"),
    }
    assert_eq!(
        svc.device().lock().unwrap().flash().op_count(),
        ops,
        "nothing erased or written"
    );

    // Signed by a key the device does not trust: uploads, but cannot be marked.
    let foreign = image(&other, 2, 20_000);
    c.upload(&foreign, |_, _| {}).unwrap();
    assert!(
        c.images().unwrap().iter().all(|s| s.slot == 0),
        "an unverified image is not listed"
    );
    let hash = brickless_image::inspect::inspect(&foreign, 0xff)
        .unwrap()
        .computed_hash;
    match c.test(&hash) {
        Err(ClientError::Device {
            rc: 8, v2: true, ..
        }) => {}
        other => panic!("an image that does not verify is not found: {other:?}"),
    }
    c.reset().unwrap();
    assert_eq!(booted_version(&svc), Some((1, false, BootEvent::None)));
}
