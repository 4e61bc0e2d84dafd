//! Flash-model throughput against the goals (read >= 500 MiB/s, program >= 100 MiB/s).
//!
//! `cargo run --release -p brickless-flash-model --example flash_bench`

use std::time::{Duration, Instant};

use brickless_flash::part;
use brickless_flash_model::{essential_cut_points, replay, SimFlash};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

const READ_GOAL_MIB_S: f64 = 500.0;
const PROGRAM_GOAL_MIB_S: f64 = 100.0;
const CALL: usize = 4096;

fn mib_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / t.as_secs_f64()
}

fn main() {
    println!(
        "{:<14} {:>6} {:>12} {:>7} {:>12} {:>7} {:>10}",
        "part", "unit", "program", "ratio", "read", "ratio", "clone"
    );
    for name in [
        "stm32h753zi",
        "stm32l475vg",
        "stm32u585ai",
        "stm32f407vg",
        "stm32l073rz",
    ] {
        let p = part(name).expect("part in table");
        let size = p.geometry.total_size() as usize;
        let span = p.geometry.span();
        let data: Vec<u8> = (0..CALL).map(|i| (i * 31) as u8 | 1).collect();

        // Program: fresh model each round, the whole array in 4 KiB write calls.
        let rounds = (64 * 1024 * 1024 / size).max(4);
        let mut programmed = SimFlash::new(p);
        let start = Instant::now();
        for _ in 0..rounds {
            let mut f = SimFlash::new(p);
            for bank in p.geometry.banks {
                let mut off = bank.base - p.geometry.base();
                while off < bank.end() - p.geometry.base() {
                    f.write(off, &data).expect("program");
                    off += CALL as u32;
                }
            }
            programmed = f;
        }
        let program = mib_s((rounds * size) as u64, start.elapsed());

        // Read: the programmed array in 4 KiB reads.
        let mut buf = vec![0u8; CALL];
        let read_rounds = rounds * 4;
        let start = Instant::now();
        let mut sum = 0u64;
        for _ in 0..read_rounds {
            for bank in p.geometry.banks {
                let mut off = bank.base - p.geometry.base();
                while off < bank.end() - p.geometry.base() {
                    programmed.read(off, &mut buf).expect("read");
                    sum = sum.wrapping_add(u64::from(buf[17]));
                    off += CALL as u32;
                }
            }
        }
        let read = mib_s((read_rounds * size) as u64, start.elapsed());
        std::hint::black_box(sum);

        // Clone of a fully programmed model, then one diverging write (the campaign's cost).
        let clones = 2000;
        let start = Instant::now();
        for i in 0..clones {
            let mut c = programmed.clone();
            c.erase(0, p.geometry.min_sector_size()).expect("erase");
            std::hint::black_box(&c);
            let _ = i;
        }
        let clone_us = start.elapsed().as_secs_f64() * 1e6 / clones as f64;
        let _ = span;

        println!(
            "{:<14} {:>6} {:>8.0} MiB/s {:>6.1}x {:>7.0} MiB/s {:>6.1}x {:>7.1} µs",
            name,
            p.geometry.write_unit,
            program,
            program / PROGRAM_GOAL_MIB_S,
            read,
            read / READ_GOAL_MIB_S,
            clone_us,
        );
    }
    campaign();
    println!("ratios are measured / goal (program goal {PROGRAM_GOAL_MIB_S} MiB/s, read goal {READ_GOAL_MIB_S} MiB/s);");
    println!("clone = clone a fully programmed model + erase its first sector (one campaign cut point's set-up).");
}

/// A campaign-sized job on a full 2 MiB H753: erase 2 sectors of bank 2, copy 256 KiB into it
/// in 4 KiB writes, then replay every essential cut point on a clone.
fn campaign() {
    let p = part("stm32h753zi").expect("part in table");
    let mut base = SimFlash::with_seed(p, 1);
    base.fill(0x0800_0000, 0x10_0000, 0x5A)
        .expect("fill bank 1");
    let chunk = vec![0xA5u8; CALL];
    let run = |f: &mut SimFlash| {
        if f.erase_abs(0x0810_0000, 0x0814_0000).is_err() {
            return;
        }
        for i in 0..64u32 {
            if f.program_abs(0x0810_0000 + i * CALL as u32, &chunk)
                .is_err()
            {
                return;
            }
        }
    };
    let points = essential_cut_points(&base, run);
    let start = Instant::now();
    let mut torn = 0usize;
    for point in &points {
        let m = replay(&base, &[*point], run);
        torn += m.scan_torn(0x0810_0000..0x0814_0000).len();
    }
    let t = start.elapsed();
    println!(
        "campaign: {} cut points of a 66-operation update on a 2 MiB stm32h753zi in {:.1} ms ({:.0} points/s, {} torn units found)",
        points.len(),
        t.as_secs_f64() * 1e3,
        points.len() as f64 / t.as_secs_f64(),
        torn
    );
}
