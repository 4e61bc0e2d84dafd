//! Bank swap on the dual-bank parts the issue names (STM32H753 SWAP_BANK, STM32L475 and
//! STM32G474 BFB2): every flow cut at every operation, long histories with single and double
//! cuts, and what an upgrade costs (no copies; one erase per sector of the new image).
use brickless_boot::StrategyKind;
use brickless_campaign::history::{History, HistoryOptions, HistoryPlan};
use brickless_campaign::{run_row, CutPlan, Flow, RowReport, Scenario};
use brickless_flash::part;

const PARTS: [&str; 3] = ["stm32h753zi", "stm32l475vg", "stm32g474re"];

fn check(row: &RowReport) {
    println!("{row}");
    assert_eq!(row.bricks, 0, "{row:#?}");
    assert_eq!(row.unverified_boots, 0, "{row:#?}");
    assert!(row.cut_points > 0, "{row:#?}");
}

#[test]
fn bank_swap_every_flow_survives_every_cut() {
    for name in PARTS {
        for flow in Flow::ALL {
            let scn = Scenario::new(part(name).unwrap(), StrategyKind::BankSwap, flow).unwrap();
            check(&run_row(&scn, CutPlan::Every, &mut |_, _| {}));
        }
    }
}

#[test]
fn bank_swap_histories_survive_sampled_single_and_double_cuts() {
    for name in PARTS {
        let h = History::generate(
            part(name).unwrap(),
            StrategyKind::BankSwap,
            &HistoryOptions::default(),
        )
        .unwrap();
        let out = h.run(
            HistoryPlan::Sample {
                ops: 160,
                offset: 1,
                pairs: 40,
            },
            1,
            &mut |_, _| {},
        );
        assert_eq!(out.reference.failure, None);
        assert_eq!(out.reference.steps_done(), h.steps.len());
        check(&out.row);
    }
}

#[test]
fn bank_swap_an_upgrade_copies_nothing_and_erases_each_sector_of_the_new_image_once() {
    for name in PARTS {
        let p = part(name).unwrap();
        let swap = brickless_campaign::bench::upgrade_cost(p, StrategyKind::Swap).unwrap();
        let bank = brickless_campaign::bench::upgrade_cost(p, StrategyKind::BankSwap).unwrap();
        println!("{swap:?}\n{bank:?}");
        assert_eq!(
            bank.bootloader_copied_bytes, 0,
            "{name}: the bootloader copied image data"
        );
        assert!(
            bank.slot_erases <= u64::from(bank.image_sectors),
            "{name}: {} slot erases for an image of {} sectors",
            bank.slot_erases,
            bank.image_sectors
        );
        assert_eq!(bank.max_erases_per_sector, 1, "{name}");
        assert_eq!(bank.option_programs, 1, "{name}: one flip");
        // The swap strategy moves both images: every sector of the image is copied, and the
        // staging sectors are erased twice (staging, then saving the old image).
        assert!(
            swap.bootloader_copied_bytes >= u64::from(swap.image_bytes),
            "{name}"
        );
        assert!(swap.slot_erases >= 2 * bank.slot_erases, "{name}");
        assert!(
            bank.bootloader_time_ms * 10.0 < swap.bootloader_time_ms,
            "{name}"
        );
    }
}

/// The device as `Scenario` prepares it, after its request of a test upgrade landed.
fn requested(name: &str) -> (Scenario, brickless_flash_model::SimFlash) {
    let scn = Scenario::new(
        part(name).unwrap(),
        StrategyKind::BankSwap,
        Flow::TestConfirm,
    )
    .unwrap();
    let mut flash = scn.initial_flash();
    brickless_boot::Updater::new(&mut flash, scn.layout, scn.check)
        .request_upgrade(brickless_boot::UpgradeMode::Test)
        .unwrap();
    (scn, flash)
}

fn boot_once(
    scn: &Scenario,
    flash: &mut brickless_flash_model::SimFlash,
) -> brickless_boot::BootDecision {
    let mut buf = vec![0u8; scn.buffer];
    brickless_boot::BootLoader::with_bank_swap(
        &mut *flash,
        scn.layout,
        scn.check,
        brickless_boot::NoPlatform,
        &mut buf,
    )
    .unwrap()
    .boot()
    .unwrap()
}

#[test]
fn bank_swap_the_bootloader_copies_itself_into_bank_2_before_the_first_flip() {
    for name in PARTS {
        let (scn, mut flash) = requested(name);
        let boot = scn.layout.spec().bootloader;
        let mirror = flash.geometry().bank_mirror().unwrap();
        let mut twin = vec![0u8; 64];
        flash.read_abs(boot.start + mirror, &mut twin).unwrap();
        assert!(
            twin.iter().all(|b| *b == 0xFF),
            "{name}: bank 2 starts blank"
        );
        assert_eq!(
            boot_once(&scn, &mut flash),
            brickless_boot::BootDecision::Reset
        );
        assert!(
            flash.swap_option() && !flash.banks_swapped(),
            "{name}: applies at reset"
        );
        let mut own = vec![0u8; boot.size as usize];
        let mut copy = vec![0u8; boot.size as usize];
        flash.read_abs(boot.start, &mut own).unwrap();
        flash.read_abs(boot.start + mirror, &mut copy).unwrap();
        assert_eq!(own, copy, "{name}");
        flash.reset();
        assert!(flash.banks_swapped(), "{name}");
        match boot_once(&scn, &mut flash) {
            brickless_boot::BootDecision::Boot(t) => assert!(t.trial, "{name}"),
            d => panic!("{name}: {d:?}"),
        }
    }
}

#[test]
fn bank_swap_a_mapping_the_chip_refuses_is_adopted_instead_of_resetting_forever() {
    // BFB2: the ROM keeps bank 1 when bank 2 does not start with a stack pointer.
    for name in ["stm32l475vg", "stm32g474re"] {
        let (scn, mut flash) = requested(name);
        assert_eq!(
            boot_once(&scn, &mut flash),
            brickless_boot::BootDecision::Reset
        );
        let mirror = flash.geometry().bank_mirror().unwrap();
        let boot = scn.layout.spec().bootloader.start;
        flash
            .erase_abs(
                boot + mirror,
                boot + mirror + flash.geometry().min_sector_size(),
            )
            .unwrap();
        flash.reset();
        assert!(!flash.banks_swapped());
        match boot_once(&scn, &mut flash) {
            brickless_boot::BootDecision::Boot(t) => {
                assert!(!t.trial, "{name}: the old image runs, not a trial");
                assert_eq!(t.image.size as usize, scn.old.len(), "{name}");
            }
            d => panic!("{name}: {d:?}"),
        }
        // The next boot is stable: no reset, no flash operation.
        let ops = flash.op_count();
        assert!(matches!(
            boot_once(&scn, &mut flash),
            brickless_boot::BootDecision::Boot(_)
        ));
        assert_eq!(flash.op_count(), ops, "{name}");
    }
}

#[test]
fn bank_swap_layouts_need_the_bank_control() {
    let (scn, mut flash) = requested("stm32h753zi");
    let mut buf = vec![0u8; scn.buffer];
    let got =
        brickless_boot::BootLoader::new(&mut flash, scn.layout, scn.check, &mut buf).map(|_| ());
    assert_eq!(got, Err(brickless_boot::Error::BankSwapUnavailable));
    assert!(brickless_boot::Error::BankSwapUnavailable
        .to_string()
        .contains("with_bank_swap"));
}

#[test]
fn bank_swap_is_named_and_recorded_as_such() {
    assert_eq!(
        StrategyKind::from_name("bank-swap"),
        Some(StrategyKind::BankSwap)
    );
    assert_eq!(StrategyKind::BankSwap.name(), "bank-swap");
    // The record code is part of the on-flash format: 3, in byte 14 of every record.
    let (scn, mut flash) = requested("stm32l475vg");
    let store = brickless_boot::state::StateStore::load(&mut flash, &scn.layout);
    assert!(store.found);
    let mut header = [0u8; 16];
    let copy = scn.layout.spec().state[0].start;
    flash.read_abs(copy, &mut header).unwrap();
    assert_eq!(&header[..4], b"BLSt");
    assert_eq!(header[14], 3, "strategy code");
}

#[test]
fn bank_swap_the_boot_after_a_revert_says_so_once() {
    for name in PARTS {
        let (scn, mut flash) = requested(name);
        let boot = |flash: &mut brickless_flash_model::SimFlash| {
            let mut buf = vec![0u8; scn.buffer];
            match brickless_campaign::boot_device(
                flash, scn.layout, scn.check, scn.policy, &mut buf,
            )
            .unwrap()
            {
                brickless_boot::BootDecision::Boot(t) => t,
                d => panic!("{name}: {d:?}"),
            }
        };
        let trial = boot(&mut flash);
        assert!(trial.trial && trial.event == brickless_boot::BootEvent::TrialStarted);
        // Not confirmed: the next boot flips back and reports the revert, once.
        let reverted = boot(&mut flash);
        assert_eq!(
            reverted.event,
            brickless_boot::BootEvent::Reverted,
            "{name}"
        );
        assert!(!reverted.trial);
        assert_eq!(reverted.image.size as usize, scn.old.len(), "{name}");
        let again = boot(&mut flash);
        assert_eq!(again.event, brickless_boot::BootEvent::None, "{name}");
    }
}

#[test]
fn bank_swap_a_device_that_came_swapped_keeps_its_mapping() {
    // The factory programmed the image into bank 2 and set the swap option: the first boot
    // adopts that mapping instead of flipping back, and an update then flips to bank 1.
    for name in PARTS {
        let scn = Scenario::new(
            part(name).unwrap(),
            StrategyKind::BankSwap,
            Flow::TestConfirm,
        )
        .unwrap();
        let mut flash = brickless_flash_model::SimFlash::with_seed(scn.part, 1);
        let spec = *scn.layout.spec();
        let mirror = flash.geometry().bank_mirror().unwrap();
        let stub = brickless_campaign::kit::bootloader_stub(scn.part, spec.bootloader.start);
        flash
            .preload(spec.bootloader.start + mirror, &stub)
            .unwrap();
        flash
            .preload(spec.primary.start + mirror, &scn.old)
            .unwrap();
        flash.program_swap_option(true).unwrap();
        flash.power_cycle();
        assert!(flash.banks_swapped(), "{name}");
        let ops = flash.op_count();
        match boot_once(&scn, &mut flash) {
            brickless_boot::BootDecision::Boot(t) => {
                assert_eq!(t.image.size as usize, scn.old.len(), "{name}")
            }
            d => panic!("{name}: {d:?}"),
        }
        assert!(
            flash.swap_option() && flash.banks_swapped(),
            "{name}: not flipped back"
        );
        let state = brickless_boot::state::StateStore::load(&mut flash, &scn.layout).state;
        assert!(state.banks_swapped, "{name}: the mapping is recorded");
        assert_eq!(
            flash.op_count(),
            ops + 1,
            "{name}: one record, nothing else"
        );
        // A second boot changes nothing.
        boot_once(&scn, &mut flash);
        assert_eq!(flash.op_count(), ops + 1, "{name}");
    }
}

#[test]
fn bank_swap_never_flips_back_to_a_damaged_old_image() {
    for name in PARTS {
        let (scn, mut flash) = requested(name);
        let mut buf = vec![0u8; scn.buffer];
        let mut boot =
            |flash: &mut brickless_flash_model::SimFlash| match brickless_campaign::boot_device(
                flash, scn.layout, scn.check, scn.policy, &mut buf,
            )
            .unwrap()
            {
                brickless_boot::BootDecision::Boot(t) => t,
                d => panic!("{name}: {d:?}"),
            };
        let trial = boot(&mut flash);
        assert!(trial.trial, "{name}");
        // During the trial the old image, now in the other bank, loses a byte.
        let old_at = scn.layout.spec().secondary.start + 0x200;
        let mut byte = [0u8; 1];
        flash.peek(old_at, &mut byte).unwrap();
        flash.preload(old_at, &[byte[0] ^ 0x40]).unwrap();
        let swapped = flash.banks_swapped();
        let again = boot(&mut flash);
        assert_eq!(
            again.event,
            brickless_boot::BootEvent::RevertImpossible,
            "{name}"
        );
        assert!(again.trial, "{name}: still a trial, never kept by default");
        assert_eq!(
            flash.banks_swapped(),
            swapped,
            "{name}: no flip to the damaged image"
        );
    }
}
