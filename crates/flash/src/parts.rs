//! The part table, the one place flash geometry and timings live (other crates look parts up
//! here). Facts and their sources are in the crate README's "Sources" section. Times marked "estimate" are datasheet-order values that
//! the reference could not confirm; the cited maxima (H7 sector, L4/G4/G0/F4/F7/U5/L0 erase)
//! are the ones ST or Zephyr state.

use crate::{Bank, Ecc, EccFault, Family, Geometry, Part, RewriteRule, SectorRun, Timing};

const K: u32 = 1024;
const BASE: u32 = 0x0800_0000;

const fn run(size_kib: u32, count: u16) -> SectorRun {
    SectorRun {
        size: size_kib * K,
        count,
    }
}

// ---- erase layouts -------------------------------------------------------------------------

const H7_8X128K: &[SectorRun] = &[run(128, 8)];
const H7_4X128K: &[SectorRun] = &[run(128, 4)];
const PAGES_128X8K: &[SectorRun] = &[run(8, 128)];
const PAGES_256X2K: &[SectorRun] = &[run(2, 256)];
const PAGES_256X4K: &[SectorRun] = &[run(4, 256)];
const PAGES_64X2K: &[SectorRun] = &[run(2, 64)];
const PAGES_128X2K: &[SectorRun] = &[run(2, 128)];
const PAGES_128X4K: &[SectorRun] = &[run(4, 128)];
const L0_768X128: &[SectorRun] = &[SectorRun {
    size: 128,
    count: 768,
}];
const L0_512X128: &[SectorRun] = &[SectorRun {
    size: 128,
    count: 512,
}];
/// F4 1 MiB bank: sectors 0-3 16 KiB, 4 64 KiB, 5-11 128 KiB.
const F4_1M: &[SectorRun] = &[run(16, 4), run(64, 1), run(128, 7)];
/// F7 2 MiB single bank (nDBANK=1): 4 x 32 KiB, 128 KiB, 7 x 256 KiB.
const F7_2M_SINGLE: &[SectorRun] = &[run(32, 4), run(128, 1), run(256, 7)];
/// F7 1 MiB per bank in dual-bank mode (nDBANK=0): 4 x 16 KiB, 64 KiB, 7 x 128 KiB.
const F7_1M_DUAL_BANK: &[SectorRun] = &[run(16, 4), run(64, 1), run(128, 7)];
/// F74x 1 MiB: 4 x 32 KiB, 128 KiB, 3 x 256 KiB.
const F74X_1M: &[SectorRun] = &[run(32, 4), run(128, 1), run(256, 3)];

const fn bank(base: u32, sectors: &'static [SectorRun]) -> Bank {
    Bank { base, sectors }
}

// ---- per-family rules ----------------------------------------------------------------------

const H7_TIMING: Timing = Timing {
    // Flash-word program time: estimate.
    program_unit_typ_us: 16,
    program_unit_max_us: 100,
    // 128 KiB sector at x32: 1.1 s typ / 2.2 s max (ST, community 734674).
    erase_per_kib_typ_us: 8_594,
    erase_per_kib_max_us: 17_188,
};

/// H7A3/H5 8 KiB sectors: estimate.
const H7AB_TIMING: Timing = Timing {
    program_unit_typ_us: 16,
    program_unit_max_us: 100,
    erase_per_kib_typ_us: 250,
    erase_per_kib_max_us: 500,
};

/// L4/L4+/G4/L5 double-word IP: 2 KiB page erase 22.02 ms typ / 24.47 ms max (24.47 cited).
const L4_TIMING: Timing = Timing {
    program_unit_typ_us: 82,
    program_unit_max_us: 91,
    erase_per_kib_typ_us: 11_010,
    erase_per_kib_max_us: 12_235,
};

/// G0: 2 KiB page erase 40 ms max (cited); typical and program time estimates.
const G0_TIMING: Timing = Timing {
    program_unit_typ_us: 85,
    program_unit_max_us: 125,
    erase_per_kib_typ_us: 11_000,
    erase_per_kib_max_us: 20_000,
};

/// U5: 8 KiB page erase 5 ms max (Zephyr DT); typical and program time estimates.
const U5_TIMING: Timing = Timing {
    program_unit_typ_us: 118,
    program_unit_max_us: 130,
    erase_per_kib_typ_us: 188,
    erase_per_kib_max_us: 625,
};

/// L0: 128 B page erase 3.2 ms max (cited); word program ~3.2 ms (estimate).
const L0_TIMING: Timing = Timing {
    program_unit_typ_us: 3_200,
    program_unit_max_us: 3_940,
    erase_per_kib_typ_us: 25_600,
    erase_per_kib_max_us: 25_600,
};

/// F4: 128 KiB sector 4 s max (cited), ~1 s typ at x32 (estimate); word program 16/100 us.
const F4_TIMING: Timing = Timing {
    program_unit_typ_us: 16,
    program_unit_max_us: 100,
    erase_per_kib_typ_us: 7_813,
    erase_per_kib_max_us: 31_250,
};

/// F7: 256 KiB sector 4 s max (cited); typical and program time estimates.
const F7_TIMING: Timing = Timing {
    program_unit_typ_us: 16,
    program_unit_max_us: 100,
    erase_per_kib_typ_us: 7_813,
    erase_per_kib_max_us: 15_625,
};

const fn h7(family: Family, banks: &'static [Bank], write_unit: u32, timing: Timing) -> Geometry {
    Geometry {
        family,
        banks,
        write_unit,
        erased: 0xFF,
        rewrite: RewriteRule::OnceNoHwCheck,
        ecc: Ecc::SecDed(EccFault::BusFault),
        timing,
        endurance_cycles: 10_000,
    }
}

const fn l4_like(
    family: Family,
    banks: &'static [Bank],
    write_unit: u32,
    timing: Timing,
) -> Geometry {
    Geometry {
        family,
        banks,
        write_unit,
        erased: 0xFF,
        rewrite: RewriteRule::OnceExceptAllZeros,
        ecc: Ecc::SecDed(EccFault::Nmi),
        timing,
        endurance_cycles: 10_000,
    }
}

const fn f4_like(family: Family, banks: &'static [Bank], timing: Timing) -> Geometry {
    Geometry {
        family,
        banks,
        write_unit: 4,
        erased: 0xFF,
        rewrite: RewriteRule::BitwiseAnd,
        ecc: Ecc::None,
        timing,
        endurance_cycles: 10_000,
    }
}

const fn l0(banks: &'static [Bank]) -> Geometry {
    Geometry {
        family: Family::L0,
        banks,
        write_unit: 4,
        erased: 0x00,
        rewrite: RewriteRule::NotZeroErr,
        ecc: Ecc::SecOnly,
        timing: L0_TIMING,
        endurance_cycles: 10_000,
    }
}

const fn part(
    name: &'static str,
    pid: u16,
    geometry: Geometry,
    ram_base: u32,
    ram_size: u32,
) -> Part {
    Part {
        name,
        geometry,
        ram_base,
        ram_size,
        pid,
    }
}

// ---- banks ---------------------------------------------------------------------------------

const H74X_2M: &[Bank] = &[bank(BASE, H7_8X128K), bank(0x0810_0000, H7_8X128K)];
/// 1 MiB H74x: bank 2 still at 0x0810_0000, so 0x0808_0000..0x0810_0000 is a hole.
const H74X_1M: &[Bank] = &[bank(BASE, H7_4X128K), bank(0x0810_0000, H7_4X128K)];
const H72X_1M: &[Bank] = &[bank(BASE, H7_8X128K)];
const DUAL_2M_8K: &[Bank] = &[bank(BASE, PAGES_128X8K), bank(0x0810_0000, PAGES_128X8K)];
const L4_1M_DUAL: &[Bank] = &[bank(BASE, PAGES_256X2K), bank(0x0808_0000, PAGES_256X2K)];
const L4P_2M_DUAL: &[Bank] = &[bank(BASE, PAGES_256X4K), bank(0x0810_0000, PAGES_256X4K)];
const L4P_2M_SINGLE: &[Bank] = &[bank(BASE, &[run(8, 256)])];
const L0_192K_DUAL: &[Bank] = &[bank(BASE, L0_768X128), bank(0x0801_8000, L0_768X128)];
const L0_64K: &[Bank] = &[bank(BASE, L0_512X128)];
const F4_1M_SINGLE: &[Bank] = &[bank(BASE, F4_1M)];
const F4_2M_DUAL: &[Bank] = &[bank(BASE, F4_1M), bank(0x0810_0000, F4_1M)];
const F7_2M_SINGLE_BANKS: &[Bank] = &[bank(BASE, F7_2M_SINGLE)];
const F7_2M_DUAL_BANKS: &[Bank] = &[
    bank(BASE, F7_1M_DUAL_BANK),
    bank(0x0810_0000, F7_1M_DUAL_BANK),
];
const F74X_1M_BANKS: &[Bank] = &[bank(BASE, F74X_1M)];
const G0_128K: &[Bank] = &[bank(BASE, PAGES_64X2K)];
const G0_512K_DUAL: &[Bank] = &[bank(BASE, PAGES_128X2K), bank(0x0804_0000, PAGES_128X2K)];
/// G4 bank 2 is always at 0x0804_0000.
const G4_512K_DUAL: &[Bank] = &[bank(BASE, PAGES_128X2K), bank(0x0804_0000, PAGES_128X2K)];
/// 256 KiB G4 in dual-bank mode: bank 2 still at 0x0804_0000, a hole after bank 1.
const G4_256K_DUAL: &[Bank] = &[bank(BASE, PAGES_64X2K), bank(0x0804_0000, PAGES_64X2K)];
const G4_512K_SINGLE: &[Bank] = &[bank(BASE, PAGES_128X4K)];
const G4_128K: &[Bank] = &[bank(BASE, PAGES_64X2K)];
const L5_512K_DUAL: &[Bank] = &[bank(BASE, PAGES_128X2K), bank(0x0804_0000, PAGES_128X2K)];
const L5_512K_SINGLE: &[Bank] = &[bank(BASE, PAGES_128X4K)];

const SRAM: u32 = 0x2000_0000;

/// Every part brickless knows. Names without a suffix use the factory option-byte setting.
pub static PARTS: &[Part] = &[
    // H74x/H75x: DTCM holds the CubeMX initial stack.
    part(
        "stm32h753zi",
        0x450,
        h7(Family::H74x, H74X_2M, 32, H7_TIMING),
        SRAM,
        128 * K,
    ),
    // Dual core (Cortex-M7 + Cortex-M4), same flash as the H753; the M4 boots from bank 2
    // (BOOT_CM4_ADD0 = 0x0810_0000 by default).
    part(
        "stm32h755zi",
        0x450,
        h7(Family::H74x, H74X_2M, 32, H7_TIMING),
        SRAM,
        128 * K,
    ),
    part(
        "stm32h743zi",
        0x450,
        h7(Family::H74x, H74X_2M, 32, H7_TIMING),
        SRAM,
        128 * K,
    ),
    part(
        "stm32h743vg",
        0x450,
        h7(Family::H74x, H74X_1M, 32, H7_TIMING),
        SRAM,
        128 * K,
    ),
    part(
        "stm32h723zg",
        0x483,
        h7(Family::H72x, H72X_1M, 32, H7_TIMING),
        SRAM,
        128 * K,
    ),
    part(
        "stm32h7a3zi",
        0x480,
        h7(Family::H7A3, DUAL_2M_8K, 16, H7AB_TIMING),
        SRAM,
        128 * K,
    ),
    part(
        "stm32h563zi",
        0x484,
        Geometry {
            ecc: Ecc::SecDed(EccFault::Nmi),
            ..h7(Family::H5, DUAL_2M_8K, 16, H7AB_TIMING)
        },
        SRAM,
        640 * K,
    ),
    part(
        "stm32l475vg",
        0x415,
        l4_like(Family::L4, L4_1M_DUAL, 8, L4_TIMING),
        SRAM,
        96 * K,
    ),
    part(
        "stm32l476rg",
        0x415,
        l4_like(Family::L4, L4_1M_DUAL, 8, L4_TIMING),
        SRAM,
        96 * K,
    ),
    part(
        "stm32l4r5zi",
        0x470,
        l4_like(Family::L4Plus, L4P_2M_DUAL, 8, L4_TIMING),
        SRAM,
        640 * K,
    ),
    part(
        "stm32l4r5zi-single",
        0x470,
        l4_like(Family::L4Plus, L4P_2M_SINGLE, 8, L4_TIMING),
        SRAM,
        640 * K,
    ),
    part("stm32l073rz", 0x447, l0(L0_192K_DUAL), SRAM, 20 * K),
    part("stm32l053r8", 0x417, l0(L0_64K), SRAM, 8 * K),
    part(
        "stm32f407vg",
        0x413,
        f4_like(Family::F4, F4_1M_SINGLE, F4_TIMING),
        SRAM,
        128 * K,
    ),
    part(
        "stm32f429zi",
        0x419,
        f4_like(Family::F4, F4_2M_DUAL, F4_TIMING),
        SRAM,
        192 * K,
    ),
    part(
        "stm32f767zi",
        0x451,
        f4_like(Family::F7, F7_2M_SINGLE_BANKS, F7_TIMING),
        SRAM,
        512 * K,
    ),
    part(
        "stm32f767zi-dual",
        0x451,
        f4_like(Family::F7, F7_2M_DUAL_BANKS, F7_TIMING),
        SRAM,
        512 * K,
    ),
    part(
        "stm32f746zg",
        0x449,
        f4_like(Family::F7, F74X_1M_BANKS, F7_TIMING),
        SRAM,
        320 * K,
    ),
    part(
        "stm32g071rb",
        0x460,
        l4_like(Family::G0, G0_128K, 8, G0_TIMING),
        SRAM,
        36 * K,
    ),
    part(
        "stm32g0b1re",
        0x467,
        l4_like(Family::G0, G0_512K_DUAL, 8, G0_TIMING),
        SRAM,
        128 * K,
    ),
    part(
        "stm32g474re",
        0x469,
        l4_like(Family::G4, G4_512K_DUAL, 8, L4_TIMING),
        SRAM,
        96 * K,
    ),
    part(
        "stm32g474re-single",
        0x469,
        l4_like(Family::G4, G4_512K_SINGLE, 8, L4_TIMING),
        SRAM,
        96 * K,
    ),
    part(
        "stm32g474cc",
        0x469,
        l4_like(Family::G4, G4_256K_DUAL, 8, L4_TIMING),
        SRAM,
        96 * K,
    ),
    part(
        "stm32g431kb",
        0x468,
        l4_like(Family::G4, G4_128K, 8, L4_TIMING),
        SRAM,
        22 * K,
    ),
    part(
        "stm32u585ai",
        0x482,
        l4_like(Family::U5, DUAL_2M_8K, 16, U5_TIMING),
        SRAM,
        768 * K,
    ),
    part(
        "stm32l552ze",
        0x472,
        l4_like(Family::L5, L5_512K_DUAL, 8, L4_TIMING),
        SRAM,
        256 * K,
    ),
    part(
        "stm32l552ze-single",
        0x472,
        l4_like(Family::L5, L5_512K_SINGLE, 8, L4_TIMING),
        SRAM,
        256 * K,
    ),
];
