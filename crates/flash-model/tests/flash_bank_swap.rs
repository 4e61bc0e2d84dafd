//! The bank-swap option: programmed as one cuttable operation, applied at reset, and the CPU's
//! view of swapped banks (reads, programs, erases, wear and torn units follow the mapping).
use brickless_flash::part;
use brickless_flash_model::{BankSwap, CutPhase, CutPoint, SimFlash, SimFlashError, SwapMechanism};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

const BASE: u32 = 0x0800_0000;

fn model(name: &str) -> SimFlash {
    SimFlash::new(part(name).expect("part in the table"))
}

fn bank2(flash: &SimFlash) -> u32 {
    flash.geometry().banks[1].base
}

fn read(flash: &SimFlash, addr: u32, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    flash.read_abs(addr, &mut b).expect("readable");
    b
}

#[test]
fn h753_swap_bank_applies_at_reset_and_follows_the_cpu_view() {
    let mut f = model("stm32h753zi");
    assert_eq!(f.swap_mechanism(), Some(SwapMechanism::SwapBank));
    let b2 = bank2(&f);
    f.preload(BASE, &[0x11; 32]).unwrap();
    f.preload(b2, &[0x22; 32]).unwrap();
    f.program_swap_option(true).unwrap();
    assert!(f.swap_option());
    // Nothing changes before the reset.
    assert!(!f.banks_swapped());
    assert_eq!(read(&f, BASE, 4), [0x11; 4]);
    f.reset();
    assert!(f.banks_swapped());
    assert_eq!(read(&f, BASE, 4), [0x22; 4]);
    assert_eq!(read(&f, b2, 4), [0x11; 4]);
    // A program at the base lands in physical bank 2, an erase of the base sector erases it.
    f.program_abs(BASE + 32, &[0x33; 32]).unwrap();
    f.erase_abs(b2, b2 + 128 * 1024).unwrap();
    assert_eq!(f.wear(b2), Some(1));
    assert_eq!(f.wear(BASE), Some(0));
    f.program_swap_option(false).unwrap();
    f.power_cycle();
    assert!(!f.banks_swapped());
    // Physical bank 1 was erased through the swapped view; bank 2 holds both programs.
    assert_eq!(read(&f, BASE, 4), [0xFF; 4]);
    assert_eq!(read(&f, b2, 4), [0x22; 4]);
    assert_eq!(read(&f, b2 + 32, 4), [0x33; 4]);
    assert_eq!(f.wear(BASE), Some(1));
}

#[test]
fn norflash_offsets_follow_the_swap_and_a_read_may_cross_banks() {
    let mut f = model("stm32h753zi");
    let b2 = bank2(&f);
    f.preload(b2 - 32, &[0xAA; 32]).unwrap();
    f.preload(b2, &[0xBB; 32]).unwrap();
    f.preload(BASE, &[0xCC; 32]).unwrap();
    f.program_swap_option(true).unwrap();
    f.reset();
    let mut buf = [0u8; 64];
    // Bank 1's last word as the CPU sees it is physical bank 2's last word (erased).
    f.read(b2 - BASE - 32, &mut buf).unwrap();
    assert_eq!(buf[..32], [0xFF; 32]);
    assert_eq!(buf[32..], [0xCC; 32]);
    // One program may not straddle the swapped banks.
    let e = f.write(b2 - BASE - 32, &[0; 64]).unwrap_err();
    assert!(matches!(e, SimFlashError::BankSwap(_)), "{e:?}");
    assert_eq!(
        read(&f, b2, 32),
        [0xCC; 32],
        "refused program changed nothing"
    );
}

#[test]
fn cuts_during_option_programming_leave_the_old_or_the_new_value() {
    let mut seen = [false; 2];
    for seed in 0..32 {
        for phase in CutPhase::ALL {
            let mut f = SimFlash::with_seed(part("stm32h753zi").unwrap(), seed);
            f.arm_cut(CutPoint::new(0, phase));
            assert_eq!(f.program_swap_option(true), Err(SimFlashError::PowerLost));
            assert!(!f.is_powered());
            f.power_cycle();
            let on = f.swap_option();
            match phase {
                CutPhase::Before => assert!(!on),
                CutPhase::After => assert!(on),
                CutPhase::Torn => seen[usize::from(on)] = true,
            }
            // The option applies at the power-up after the cut, whatever it holds.
            assert_eq!(f.banks_swapped(), on);
        }
    }
    assert_eq!(
        seen,
        [true, true],
        "torn cuts leave both outcomes across seeds"
    );
}

#[test]
fn bfb2_boots_bank_2_only_when_it_holds_a_stack_pointer() {
    let mut f = model("stm32l475vg");
    assert_eq!(f.swap_mechanism(), Some(SwapMechanism::Bfb2));
    let b2 = bank2(&f);
    f.set_swap_at_reset(true).unwrap();
    f.reset();
    assert!(
        !f.banks_swapped(),
        "blank bank 2: the ROM falls back to bank 1"
    );
    let ram_top = f.part().ram_base + f.part().ram_size;
    f.preload(b2, &ram_top.to_le_bytes()).unwrap();
    f.preload(b2 + 4, &[0x01, 0, 0, 0x08]).unwrap();
    f.reset();
    assert!(f.banks_swapped());
    assert_eq!(BankSwap::swap_at_reset(&mut f), Ok(true));
    assert_eq!(read(&f, BASE, 4), ram_top.to_le_bytes());
}

#[test]
fn parts_without_a_swap_option_refuse_it_and_count_the_operation() {
    for name in [
        "stm32f407vg",
        "stm32f767zi",
        "stm32f767zi-dual",
        "stm32h723zg",
    ] {
        let Some(p) = part(name) else { continue };
        let mut f = SimFlash::new(p);
        assert_eq!(f.swap_mechanism(), None, "{name}");
        assert!(matches!(
            f.program_swap_option(true),
            Err(SimFlashError::BankSwap(_))
        ));
        assert_eq!(f.op_count(), 1);
        f.reset();
        assert!(!f.banks_swapped());
    }
}

#[test]
fn torn_units_and_ecc_errors_are_reported_at_cpu_addresses() {
    let mut f = model("stm32h753zi");
    let b2 = bank2(&f);
    f.program_swap_option(true).unwrap();
    f.reset();
    // Tear a program at the base (physically bank 2).
    f.arm_cut(CutPoint::new(f.op_count(), CutPhase::Torn));
    f.set_tear_at(brickless_flash_model::TearAt::First);
    assert_eq!(f.program_abs(BASE, &[0; 32]), Err(SimFlashError::PowerLost));
    f.power_cycle();
    assert_eq!(f.scan_torn(BASE..BASE + 64), vec![BASE]);
    let mut b = [0u8; 4];
    assert_eq!(
        f.read_abs(BASE, &mut b),
        Err(SimFlashError::Ecc { addr: BASE })
    );
    f.program_swap_option(false).unwrap();
    f.reset();
    assert_eq!(f.scan_torn(b2..b2 + 64), vec![b2]);
    assert!(f.scan_torn(BASE..BASE + 64).is_empty());
}

#[test]
fn flash_files_keep_the_option_and_load_swapped() {
    let dir = std::env::temp_dir().join(format!("brickless-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("h7.flash");
    let mut f = model("stm32h753zi");
    let b2 = bank2(&f);
    f.preload(b2, &[0x5A; 32]).unwrap();
    f.program_swap_option(true).unwrap();
    f.save(&path).unwrap();
    let g = SimFlash::open(&path).unwrap();
    assert!(
        g.swap_option() && g.banks_swapped(),
        "loaded as at power-up"
    );
    assert_eq!(read(&g, BASE, 4), [0x5A; 4]);
    // A version-1 file (no option byte) still loads, unswapped.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    let old = SimFlash::open(&path).unwrap();
    assert!(!old.swap_option() && !old.banks_swapped());
    // An option bit the part lacks is a damaged file.
    let f407 = SimFlash::new(part("stm32f407vg").unwrap());
    f407.save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() = 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = SimFlash::open(&path).unwrap_err();
    assert!(err.to_string().contains("option byte"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
