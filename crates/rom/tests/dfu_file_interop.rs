//! `.dfu` files against dfu-util's own tools: files we write pass `dfu-suffix -c`,
//! `dfu-prefix -c` and `dfuse-pack -d`; files they write parse back to the same bytes.

use brickless_rom::dfu_file::{
    append_suffix, DfuContents, DfuFile, DfuFileError, DfuSeBuilder, TargetSpec, BCD_DFU_1_0,
    BCD_DFU_DFUSE,
};
use brickless_test_support::{fix_dfu_crc, missing_peer};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Finds a peer tool on PATH. Missing: fail under BRICKLESS_REQUIRE_PEERS=1, else skip.
fn peer(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        missing_peer(name);
    }
    found
}

fn run(tool: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run peer tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn firmware(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn two_target_file() -> Vec<u8> {
    DfuSeBuilder {
        vendor_id: 0x0483,
        product_id: 0xDF11,
        bcd_device: 0x2200,
        targets: vec![
            TargetSpec {
                alt_setting: 0,
                name: Some("Internal Flash".into()),
                elements: vec![
                    (0x0800_0000, firmware(1000, 1)),
                    (0x0802_0000, firmware(37, 2)),
                ],
            },
            TargetSpec {
                alt_setting: 1,
                name: None,
                elements: vec![(0x1FFF_C000, firmware(16, 3))],
            },
        ],
    }
    .build()
    .unwrap()
}

#[test]
fn our_dfuse_file_passes_dfu_suffix_and_dfu_prefix_checks() {
    let (Some(suffix_tool), Some(prefix_tool)) = (peer("dfu-suffix"), peer("dfu-prefix")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fw.dfu"), two_target_file()).unwrap();

    let (ok, text) = run(&suffix_tool, &["-c", "fw.dfu"], dir.path());
    assert!(ok, "dfu-suffix -c failed:\n{text}");
    assert!(text.contains("Vendor ID:\t0x0483"), "{text}");
    assert!(text.contains("Product ID:\t0xDF11"), "{text}");
    assert!(text.contains("BCD device:\t0x2200"), "{text}");
    assert!(text.contains("BCD DFU:\t0x011A"), "{text}");
    assert!(!text.contains("Warning"), "{text}");

    let (ok, text) = run(&prefix_tool, &["-c", "fw.dfu"], dir.path());
    assert!(ok, "dfu-prefix -c failed:\n{text}");
    assert!(!text.contains("Warning"), "{text}");
}

#[test]
fn our_raw_suffix_matches_dfu_suffix_byte_for_byte() {
    let Some(suffix_tool) = peer("dfu-suffix") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let payload = firmware(300, 9);
    std::fs::write(dir.path().join("fw.bin"), &payload).unwrap();
    let (ok, text) = run(
        &suffix_tool,
        &["-v", "1209", "-p", "abcd", "-d", "0x0102", "-a", "fw.bin"],
        dir.path(),
    );
    assert!(ok, "dfu-suffix -a failed:\n{text}");
    let theirs = std::fs::read(dir.path().join("fw.bin")).unwrap();
    let ours = append_suffix(&payload, 0x1209, 0xABCD, 0x0102, BCD_DFU_1_0);
    assert_eq!(ours, theirs, "suffix bytes differ from dfu-suffix's");

    let parsed = DfuFile::parse(&theirs).unwrap();
    assert_eq!(parsed.suffix.vendor_id, 0x1209);
    assert_eq!(parsed.suffix.product_id, 0xABCD);
    assert_eq!(parsed.suffix.bcd_device, 0x0102);
    match parsed.contents {
        DfuContents::Raw(bytes) => assert_eq!(bytes, &payload[..]),
        other => panic!("expected a raw payload, got {other:?}"),
    }
}

#[test]
fn stellaris_prefixed_file_from_dfu_prefix_reads_back() {
    let (Some(suffix_tool), Some(prefix_tool)) = (peer("dfu-suffix"), peer("dfu-prefix")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let payload = firmware(513, 4);
    std::fs::write(dir.path().join("fw.bin"), &payload).unwrap();
    let (ok, text) = run(
        &prefix_tool,
        &["-s", "0x08004000", "-a", "fw.bin"],
        dir.path(),
    );
    assert!(ok, "dfu-prefix -a failed:\n{text}");
    let (ok, text) = run(
        &suffix_tool,
        &["-v", "0483", "-p", "df11", "-a", "fw.bin"],
        dir.path(),
    );
    assert!(ok, "dfu-suffix -a failed:\n{text}");

    let file = std::fs::read(dir.path().join("fw.bin")).unwrap();
    let parsed = DfuFile::parse(&file).unwrap();
    assert_eq!(parsed.suffix.vendor_id, 0x0483);
    assert_eq!(parsed.suffix.product_id, 0xDF11);
    match parsed.contents {
        // The Stellaris prefix keeps the address in KiB in 16 bits: 0x08004000 -> 0x4000.
        DfuContents::Stellaris {
            address,
            payload: bytes,
        } => {
            assert_eq!(address, 0x0000_4000);
            assert_eq!(bytes, &payload[..]);
        }
        other => panic!("expected a Stellaris prefix, got {other:?}"),
    }
}

#[test]
fn dfuse_pack_files_parse_to_the_same_elements() {
    let Some(pack) = peer("dfuse-pack") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = firmware(4096 + 3, 5);
    let b = firmware(17, 6);
    std::fs::write(dir.path().join("a.bin"), &a).unwrap();
    std::fs::write(dir.path().join("b.bin"), &b).unwrap();
    let (ok, text) = run(
        &pack,
        &[
            "-b",
            "0x08000000:a.bin",
            "-b",
            "0x08040000:b.bin",
            "-D",
            "0x0483:0xdf11",
            "out.dfu",
        ],
        dir.path(),
    );
    assert!(ok, "dfuse-pack -b failed:\n{text}");
    let file = std::fs::read(dir.path().join("out.dfu")).unwrap();
    let parsed = DfuFile::parse(&file).unwrap();
    assert_eq!(parsed.suffix.bcd_dfu, BCD_DFU_DFUSE);
    assert_eq!(
        (parsed.suffix.vendor_id, parsed.suffix.product_id),
        (0x0483, 0xDF11)
    );
    let DfuContents::DfuSe(image) = parsed.contents else {
        panic!("expected DfuSe contents");
    };
    let targets: Vec<_> = image.targets().collect();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].alt_setting, 0);
    let elements: Vec<_> = targets[0].elements().collect();
    assert_eq!(elements.len(), 2);
    assert_eq!(
        (elements[0].address, elements[0].data),
        (0x0800_0000, &a[..])
    );
    assert_eq!(
        (elements[1].address, elements[1].data),
        (0x0804_0000, &b[..])
    );
}

#[test]
fn dfuse_pack_dumps_our_file_to_the_same_bytes() {
    let Some(pack) = peer("dfuse-pack") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fw.dfu"), two_target_file()).unwrap();
    let (ok, text) = run(&pack, &["-d", "fw.dfu"], dir.path());
    assert!(ok, "dfuse-pack -d failed:\n{text}");
    assert!(text.contains("address: 0x08020000, size: 37"), "{text}");
    assert!(text.contains("alt setting: 1"), "{text}");
    let dumped = |t: usize, e: usize| {
        std::fs::read(dir.path().join(format!("fw.dfu.target{t}.image{e}.bin"))).unwrap()
    };
    assert_eq!(dumped(0, 0), firmware(1000, 1));
    assert_eq!(dumped(0, 1), firmware(37, 2));
    assert_eq!(dumped(1, 0), firmware(16, 3));
}

#[test]
fn our_file_round_trips_through_our_parser() {
    let file = two_target_file();
    let parsed = DfuFile::parse(&file).unwrap();
    let DfuContents::DfuSe(image) = parsed.contents else {
        panic!("expected DfuSe");
    };
    let targets: Vec<_> = image.targets().collect();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0].name_str(), Some("Internal Flash"));
    assert_eq!(targets[1].name, None);
    assert_eq!(targets[1].alt_setting, 1);
    let e: Vec<_> = targets[0].elements().collect();
    assert_eq!(e[1].address, 0x0802_0000);
    assert_eq!(e[1].data, &firmware(37, 2)[..]);
}

/// Rewrites the CRC so the structural checks (not the CRC) are what must catch a defect.
#[test]
fn structural_defects_get_named_errors() {
    let good = DfuSeBuilder::single(0x0800_0000, &firmware(64, 0))
        .build()
        .unwrap();

    let mut bad = good.clone();
    bad[5] = 2; // bVersion
    fix_dfu_crc(&mut bad);
    assert_eq!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::UnsupportedDfuSeVersion(2)
    );

    let mut bad = good.clone();
    bad[6] ^= 1; // DFUImageSize
    fix_dfu_crc(&mut bad);
    assert!(matches!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::ImageSizeMismatch { .. }
    ));

    let mut bad = good.clone();
    bad[10] = 0; // bTargets
    fix_dfu_crc(&mut bad);
    assert_eq!(DfuFile::parse(&bad).unwrap_err(), DfuFileError::NoTargets);

    let mut bad = good.clone();
    bad[10] = 2; // one more target than present
    fix_dfu_crc(&mut bad);
    assert!(matches!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::TargetTruncated { target: 1, .. }
    ));

    let mut bad = good.clone();
    bad[11] = b't'; // "Target" signature
    fix_dfu_crc(&mut bad);
    assert_eq!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::MissingTargetSignature { target: 0 }
    );

    let mut bad = good.clone();
    bad[11 + 270] = 2; // dwNbElements 1 -> 2
    fix_dfu_crc(&mut bad);
    assert_eq!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::ElementTruncated {
            target: 0,
            element: 1
        }
    );

    let mut bad = good.clone();
    bad[11 + 274 + 4] = 65; // dwElementSize 64 -> 65
    fix_dfu_crc(&mut bad);
    assert_eq!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::ElementTruncated {
            target: 0,
            element: 0
        }
    );

    let mut bad = good.clone();
    bad[11 + 274 + 4] = 60; // element shorter than the target size says
    fix_dfu_crc(&mut bad);
    assert!(matches!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::TargetSizeMismatch {
            target: 0,
            declared: 72,
            actual: 68
        }
    ));

    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 10] = 0x00; // bcdDFU 0x011A -> 0x0100 on a DfuSe body
    fix_dfu_crc(&mut bad);
    assert!(matches!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::SuffixPrefixDisagree {
            has_prefix: true,
            ..
        }
    ));

    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 5] = 15; // bLength
    assert_eq!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::BadSuffixLength(15)
    );

    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 6] = b'X'; // signature
    assert_eq!(
        DfuFile::parse(&bad).unwrap_err(),
        DfuFileError::MissingSuffix
    );

    assert!(matches!(
        DfuFile::parse(&good[..good.len() - 1]).unwrap_err(),
        DfuFileError::MissingSuffix | DfuFileError::CrcMismatch { .. }
    ));
    assert_eq!(
        DfuFile::parse(b"short").unwrap_err(),
        DfuFileError::TooShortForSuffix { len: 5 }
    );
}
