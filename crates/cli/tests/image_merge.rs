//! `brickless image merge`: a factory image from a bootloader plus signed slot images.
mod common;

use std::path::Path;

use brickless::firmware_file::{FirmwareImage, Segment};
use brickless_test_support::pseudo_random_bytes;
use common::*;

fn write_hex(path: &Path, segments: Vec<Segment>) {
    let image = FirmwareImage::from_segments(segments, path).unwrap();
    std::fs::write(path, image.to_hex()).unwrap();
}

#[test]
fn merged_hex_and_bin_hold_every_input_at_its_address() {
    let dir = tempfile::tempdir().unwrap();
    // Bootloader as ELF: .text in flash, .data stored in flash (LMA) but run from RAM, an
    // empty .bss and a non-loadable note, which must all be handled.
    let text = pseudo_random_bytes(3000, 1);
    let data = pseudo_random_bytes(100, 2);
    let elf = elf32(&[
        ElfSegment {
            p_type: 1,
            paddr: 0x0800_0000,
            vaddr: 0x0800_0000,
            data: text.clone(),
            memsz: 3000,
        },
        ElfSegment {
            p_type: 1,
            paddr: 0x0800_0bb8,
            vaddr: 0x2000_0000,
            data: data.clone(),
            memsz: 100,
        },
        ElfSegment {
            p_type: 1,
            paddr: 0x2000_0064,
            vaddr: 0x2000_0064,
            data: vec![],
            memsz: 400,
        },
        ElfSegment {
            p_type: 4,
            paddr: 0,
            vaddr: 0,
            data: vec![9; 8],
            memsz: 8,
        },
    ]);
    let boot = dir.path().join("boot.elf");
    std::fs::write(&boot, elf).unwrap();
    let app = pseudo_random_bytes(5000, 3);
    let app_path = dir.path().join("app.signed.bin");
    std::fs::write(&app_path, &app).unwrap();
    // A HEX with its own address (e.g. a second slot image signed to HEX).
    let extra = pseudo_random_bytes(40, 4);
    let extra_path = dir.path().join("extra.hex");
    write_hex(
        &extra_path,
        vec![Segment {
            address: 0x0804_0000,
            data: extra.clone(),
        }],
    );

    let hex_out = dir.path().join("factory.hex");
    let bin_out = dir.path().join("factory.bin");
    run_ok(
        brickless()
            .args(["image", "merge"])
            .arg(&boot)
            .arg(&extra_path)
            .arg("--at")
            .arg(format!("0x08020000={}", app_path.display()))
            .arg("-o")
            .arg(&hex_out)
            .arg("-o")
            .arg(&bin_out)
            .args(["--fill", "0xa5"]),
    );

    let merged = FirmwareImage::load(&hex_out, 0).unwrap();
    let mut boot_bytes = text.clone();
    boot_bytes.extend_from_slice(&data);
    assert_eq!(
        merged.segments(),
        &[
            Segment {
                address: 0x0800_0000,
                data: boot_bytes.clone()
            },
            Segment {
                address: 0x0802_0000,
                data: app.clone()
            },
            Segment {
                address: 0x0804_0000,
                data: extra.clone()
            },
        ]
    );
    let bin = std::fs::read(&bin_out).unwrap();
    assert_eq!(bin.len(), 0x40000 + 40);
    assert_eq!(&bin[..boot_bytes.len()], &boot_bytes[..]);
    assert!(bin[boot_bytes.len()..0x20000].iter().all(|&b| b == 0xa5));
    assert_eq!(&bin[0x20000..0x20000 + app.len()], &app[..]);
    assert_eq!(&bin[0x40000..], &extra[..]);
}

#[test]
fn overlapping_inputs_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot.hex");
    write_hex(
        &boot,
        vec![Segment {
            address: 0x0800_0000,
            data: vec![1; 0x400],
        }],
    );
    let app = dir.path().join("app.bin");
    std::fs::write(&app, vec![2; 0x100]).unwrap();
    let out = dir.path().join("factory.hex");
    let err = run_fails(
        brickless()
            .args(["image", "merge"])
            .arg(&boot)
            .arg("--at")
            .arg(format!("0x08000300={}", app.display()))
            .arg("-o")
            .arg(&out),
    );
    assert!(err.contains("boot.hex") && err.contains("app.bin"), "{err}");
    assert!(err.contains("0x08000300..0x08000400"), "{err}");
    assert!(!out.exists(), "no output may be written on error");
}

#[test]
fn a_bin_without_address_and_a_far_gap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.bin");
    std::fs::write(&app, [1, 2, 3]).unwrap();
    let out = dir.path().join("out.hex");
    let err = run_fails(
        brickless()
            .args(["image", "merge"])
            .arg(&app)
            .arg("-o")
            .arg(&out),
    );
    assert!(err.contains("--at"), "{err}");
    assert!(!out.exists());

    // Flash and RAM in one file cannot be flattened to a BIN; HEX is fine.
    let split = dir.path().join("split.hex");
    write_hex(
        &split,
        vec![
            Segment {
                address: 0x0800_0000,
                data: vec![1; 16],
            },
            Segment {
                address: 0x2000_0000,
                data: vec![2; 16],
            },
        ],
    );
    let bin = dir.path().join("out.bin");
    let err = run_fails(
        brickless()
            .args(["image", "merge"])
            .arg(&split)
            .arg("-o")
            .arg(&bin),
    );
    assert!(err.contains("gap") && err.contains("out.bin"), "{err}");
    assert!(!bin.exists());
    run_ok(
        brickless()
            .args(["image", "merge"])
            .arg(&split)
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(FirmwareImage::load(&out, 0).unwrap().segments().len(), 2);
}

#[test]
fn elf_without_loadable_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("empty.elf");
    std::fs::write(
        &elf,
        elf32(&[ElfSegment {
            p_type: 1,
            paddr: 0x2000_0000,
            vaddr: 0x2000_0000,
            data: vec![],
            memsz: 64,
        }]),
    )
    .unwrap();
    let out = dir.path().join("out.hex");
    let err = run_fails(
        brickless()
            .args(["image", "merge"])
            .arg(&elf)
            .arg("-o")
            .arg(&out),
    );
    assert!(
        err.contains("empty.elf") && err.contains("no loadable segment"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn elf_with_overlapping_segments_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("clash.elf");
    let seg = |paddr| ElfSegment {
        p_type: 1,
        paddr,
        vaddr: paddr,
        data: vec![1; 32],
        memsz: 32,
    };
    std::fs::write(&elf, elf32(&[seg(0x0800_0000), seg(0x0800_0010)])).unwrap();
    let out = dir.path().join("out.hex");
    let err = run_fails(
        brickless()
            .args(["image", "merge"])
            .arg(&elf)
            .arg("-o")
            .arg(&out),
    );
    assert!(
        err.contains("clash.elf") && err.contains("overlaps"),
        "{err}"
    );
    assert!(err.contains("0x08000010..0x08000030"), "{err}");
    assert!(!out.exists());
}
