//! The virtual MCU driven by brickless's SMP client over UDP: recovery takes a first image,
//! a test upgrade boots as a trial, an unconfirmed trial is reverted, a confirmed one stays,
//! an upload during a trial is refused and the revert still happens.
use std::sync::Arc;
use std::time::Duration;

use brickless_boot::{default_layout, BootEvent, StrategyKind};
use brickless_campaign::kit::McubootKit;
use brickless_devices::link::faults::FaultSpec;
use brickless_devices::mcu::serve::{McuOptions, McuService};
use brickless_devices::mcu::{Booted, SelfConfirm, VirtualMcu};
use brickless_flash_model::SimFlash;
use brickless_image::ImageVersion;
use brickless_smp::client::{Client, ClientError};
use brickless_smp::transport::{SerialTransport, UdpTransport, SERIAL_RECV_MAX};

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
        flash_time: false,
        faults: Default::default(),
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

fn device_with(part: &str, kit: &McubootKit, pty: bool, faults: FaultSpec) -> McuService {
    let part = brickless_flash::part(part).unwrap();
    let layout = default_layout(&part.geometry, StrategyKind::Swap).unwrap();
    let mcu = VirtualMcu::new(
        SimFlash::new(part),
        layout,
        kit.keys.to_vec(),
        SelfConfirm::Never,
    );
    let opts = McuOptions {
        udp: Some("127.0.0.1:0".into()),
        pty,
        link: None,
        baud: None,
        turnaround: Duration::ZERO,
        flash_time: false,
        faults,
        log: Arc::new(|_| {}),
    };
    McuService::start(mcu, None, &opts).unwrap()
}

fn serial_client(svc: &McuService) -> Client<impl brickless_smp::transport::Transport> {
    let path = svc.pty_path().unwrap().display().to_string();
    let t = SerialTransport::open(&path, 115_200)
        .unwrap()
        .with_mtu(SERIAL_RECV_MAX);
    let mut c = Client::new(t);
    c.set_timeout(Duration::from_millis(250));
    c.set_retries(8);
    c
}

/// Installs `v1` through recovery and resets.
fn install_first(c: &mut Client<impl brickless_smp::transport::Transport>, v1: &[u8]) {
    c.upload(v1, |_, _| {}).unwrap();
    c.reset().unwrap();
}

#[test]
fn the_fast_path_keeps_requests_in_flight_over_raw_framing_and_the_image_verifies() {
    let kit = McubootKit::new();
    let svc = device_with("stm32h753zi", &kit, true, FaultSpec::default());
    let mut c = serial_client(&svc);
    install_first(&mut c, &image(&kit, 1, 30_000));
    let v2 = image(&kit, 2, 200_000);
    let r = c.upload(&v2, |_, _| {}).unwrap();
    assert!(r.raw, "a brickless device takes the raw framing");
    assert_eq!(r.window, 4, "the window is the device's buf_count");
    assert_eq!(r.matched, Some(true));
    let hash = brickless_image::inspect::inspect(&v2, 0xff)
        .unwrap()
        .computed_hash;
    c.test(&hash).unwrap();
    c.reset().unwrap();
    assert_eq!(
        booted_version(&svc),
        Some((2, true, BootEvent::TrialStarted))
    );
}

#[test]
fn bit_errors_drops_and_duplicates_on_the_serial_link_cost_resends_never_a_corrupt_image() {
    let kit = McubootKit::new();
    for (seed, standard) in [(3u64, false), (4, true)] {
        let faults = FaultSpec {
            bit_error_rate: 2e-4,
            drop_rate: 0.03,
            duplicate_rate: 0.03,
            disconnect_every: 40,
            seed,
        };
        let svc = device_with("stm32l475vg", &kit, true, faults);
        let mut c = serial_client(&svc);
        c.set_fast(!standard);
        c.set_retries(30);
        install_first(&mut c, &image(&kit, 1, 20_000));
        assert_eq!(booted_version(&svc).map(|b| b.0), Some(1));
        let v2 = image(&kit, 2, 80_000);
        let r = c.upload(&v2, |_, _| {}).unwrap();
        assert_eq!(
            r.matched,
            Some(true),
            "seed {seed}: CRCs stop every damaged frame"
        );
        assert!(r.requests > 80_000 / 4096, "faults cost resends: {r:?}");
        let hash = brickless_image::inspect::inspect(&v2, 0xff)
            .unwrap()
            .computed_hash;
        c.test(&hash).unwrap();
        c.reset().unwrap();
        assert_eq!(booted_version(&svc).map(|b| b.0), Some(2), "seed {seed}");
    }
}

#[test]
fn bit_errors_on_udp_reach_the_device_but_a_corrupt_image_is_never_accepted() {
    let kit = McubootKit::new();
    let faults = FaultSpec {
        bit_error_rate: 1e-4,
        seed: 11,
        ..FaultSpec::default()
    };
    let svc = device_with("stm32h753zi", &kit, false, faults);
    let mut c = client(&svc);
    c.set_retries(20);
    let v1 = image(&kit, 1, 20_000);
    // Recovery on the fresh noisy device: whatever the link did, only a verified image boots.
    let mut accepted = 0;
    for attempt in 0..5 {
        let _ = c.upload(&v1, |_, _| {});
        let _ = c.reset();
        match svc.device().lock().unwrap().booted() {
            Booted::App { image, .. } => {
                let want = brickless_image::inspect::inspect(&v1, 0xff)
                    .unwrap()
                    .computed_hash;
                assert_eq!(
                    image.hash, want,
                    "attempt {attempt}: only the signed image boots"
                );
                accepted += 1;
                break;
            }
            Booted::Recovery => {}
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert!(accepted <= 1);
    // A staged image hit by bit errors does not verify: it is not listed and cannot be marked.
    let v2 = image(&kit, 2, 300_000);
    let hash = brickless_image::inspect::inspect(&v2, 0xff)
        .unwrap()
        .computed_hash;
    let r = c.upload(&v2, |_, _| {});
    let listed = c
        .images()
        .map(|l| l.iter().any(|s| s.hash == hash))
        .unwrap_or(false);
    match r {
        Ok(r) if r.matched == Some(true) => assert!(listed, "an intact upload is listed"),
        _ => {
            assert!(!listed, "a damaged upload is never listed as an image");
            assert!(c.test(&hash).is_err(), "and cannot be marked for test");
        }
    }
}

#[test]
fn a_power_cut_mid_upload_resumes_from_what_the_flash_holds() {
    let kit = McubootKit::new();
    let svc = device("stm32l475vg", SelfConfirm::Never, &kit);
    let mut c = client(&svc);
    c.set_timeout(Duration::from_millis(300));
    install_first(&mut c, &image(&kit, 1, 20_000));
    let v2 = image(&kit, 2, 150_000);
    let dev = svc.device();
    let mut cut = false;
    let r = c
        .upload(&v2, |done, total| {
            if !cut && done > total / 2 {
                // Inside a write or erase a little later: a torn unit, as a pulled cable.
                dev.lock().unwrap().cut_after_ops(3);
                cut = true;
            }
        })
        .unwrap();
    assert!(cut);
    assert_eq!(r.matched, Some(true));
    assert_eq!(r.resumes, 1, "{r:?}");
    let from = r.resumed_from[0];
    assert!(
        from > 150_000 / 3,
        "resumed from {from}, not from the start: {r:?}"
    );
    assert!(
        svc.device().lock().unwrap().boots() >= 3,
        "the device restarted"
    );
    let hash = brickless_image::inspect::inspect(&v2, 0xff)
        .unwrap()
        .computed_hash;
    c.test(&hash).unwrap();
    c.reset().unwrap();
    assert_eq!(
        booted_version(&svc),
        Some((2, true, BootEvent::TrialStarted))
    );
}
