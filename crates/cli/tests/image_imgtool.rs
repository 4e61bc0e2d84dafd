//! Interop with the real imgtool: images, keys and outputs cross between the two tools.
mod common;

use std::path::{Path, PathBuf};

use brickless::firmware_file::FirmwareImage;
use brickless_test_support::pseudo_random_bytes;
use common::*;
use serde_json::Value;

const BASE: [&str; 7] = [
    "-v",
    "1.2.3+4",
    "-H",
    "0x200",
    "--pad-header",
    "-S",
    "0x20000",
];

/// Sign variants: (name, extra flags, output extension). Cover --pad, --confirm,
/// --align 4/8/32, --max-align 16, --max-sectors, --security-counter, --dependencies,
/// --load-addr and HEX output.
const VARIANTS: [(&str, &[&str], &str); 6] = [
    ("plain", &[], "bin"),
    ("pad8", &["--align", "8", "--pad"], "bin"),
    (
        "confirm32",
        &["--align", "32", "--pad", "--confirm", "-s", "auto"],
        "bin",
    ),
    ("counter32", &["--align", "32", "-s", "42"], "bin"),
    (
        "hex8",
        &["--align", "8", "--confirm", "-s", "7", "-x", "0x08020000"],
        "hex",
    ),
    (
        "deps16",
        &[
            "--align",
            "4",
            "--max-align",
            "16",
            "-M",
            "64",
            "--pad",
            "-d",
            "(1,1.2.0), (2,0.4.0+5)",
            "-L",
            "0x20000000",
        ],
        "bin",
    ),
];

/// `sign -k KEY <BASE> <extra> INPUT OUTPUT`, without the program name.
fn sign_args(key: &Path, extra: &[&str], input: &Path, output: &Path) -> Vec<String> {
    let mut v = sargs(&[&"sign", &"-k", &key]);
    v.extend(BASE.iter().chain(extra).map(|s| s.to_string()));
    v.extend(sargs(&[&input, &output]));
    v
}

fn brickless_sign(key: &Path, extra: &[&str], input: &Path, output: &Path) {
    run_ok(
        brickless()
            .arg("image")
            .args(sign_args(key, extra, input, output)),
    );
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn setup(dir: &Path) -> PathBuf {
    let input = dir.join("app.bin");
    std::fs::write(&input, pseudo_random_bytes(3001, 7)).unwrap();
    input
}

#[test]
fn imgtool_images_verify_and_inspect_like_dumpinfo() {
    let Some(imgtool) = imgtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = setup(dir.path());
    // Keys made by imgtool, images signed by imgtool, then its dumpinfo of each.
    let mut cmds = Vec::new();
    let mut images = Vec::new();
    for key_type in ["ed25519", "ecdsa-p256"] {
        let key = dir.path().join(format!("{key_type}.pem"));
        cmds.push(sargs(&[&"keygen", &"-t", &key_type, &"-k", &key]));
        for (name, extra, ext) in VARIANTS {
            let image = dir.path().join(format!("{key_type}-{name}.{ext}"));
            cmds.push(sign_args(&key, extra, &input, &image));
            images.push((key.clone(), image, name, extra));
        }
    }
    for (_, image, ..) in &images {
        cmds.push(sargs(&[&"dumpinfo", &"-f", &"json", image]));
    }
    let runs = imgtool.batch_ok(cmds);
    let dumps = &runs[runs.len() - images.len()..];

    for ((key, image, name, extra), dump) in images.iter().zip(dumps) {
        let out = run_ok(
            brickless()
                .args(["image", "verify", "-k"])
                .arg(key)
                .arg(image),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("OK, version 1.2.3+4"), "{name}: {text}");

        let ours =
            json_of(&run_ok(brickless().args(["image", "inspect", "--json"]).arg(image)).stdout);
        let theirs = json_of(dump.stdout.as_bytes());
        for field in ["header", "tlv_area", "trailer"] {
            assert_eq!(
                ours[field],
                theirs[field],
                "{}: field {field}",
                image.display()
            );
        }
        assert_eq!(ours["brickless"]["hash_matches"], Value::Bool(true));
        let padded = extra.contains(&"--pad") || extra.contains(&"--confirm");
        assert_eq!(ours["trailer"]["magic"].is_string(), padded, "{name}");
        // The human table shows the same data.
        let human = run_ok(brickless().args(["image", "inspect"]).arg(image));
        let human = String::from_utf8_lossy(&human.stdout);
        assert!(human.contains("version             1.2.3+4"), "{human}");
        assert!(human.contains("KEYHASH"), "{human}");
        if extra.contains(&"--confirm") {
            assert!(human.contains("image_ok            Set"), "{human}");
        }
    }
}

#[test]
fn brickless_images_pass_imgtool_verify() {
    let Some(imgtool) = imgtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = setup(dir.path());
    let mut cmds = Vec::new();
    for key_type in ["ed25519", "ecdsa-p256"] {
        // Keys made by brickless, read by imgtool.
        let key = dir.path().join(format!("{key_type}.pem"));
        run_ok(brickless().args(["keygen", "-t", key_type, "-k"]).arg(&key));
        for (name, extra, ext) in VARIANTS {
            let image = dir.path().join(format!("{key_type}-{name}.{ext}"));
            brickless_sign(&key, extra, &input, &image);
            cmds.push(sargs(&[&"verify", &"-k", &key, &image]));
        }
    }
    for run in imgtool.batch_ok(cmds) {
        assert!(
            run.stdout.contains("Image was correctly validated"),
            "{run:?}"
        );
        assert!(run.stdout.contains("Image version: 1.2.3+4"), "{run:?}");
    }
}

#[test]
fn ed25519_output_is_byte_identical_to_imgtool() {
    let Some(imgtool) = imgtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = setup(dir.path());
    let key = dir.path().join("ed.pem");

    // HEX input carries its address (the header goes in front of it), and an ELF with the
    // same bytes at the same load address signs to the same image.
    let code = pseudo_random_bytes(2000, 9);
    let hex_in = dir.path().join("app.hex");
    let fw = FirmwareImage::from_bin(0x0802_0200, code.clone(), &hex_in).unwrap();
    std::fs::write(&hex_in, fw.to_hex()).unwrap();
    let elf_in = dir.path().join("app.elf");
    let segment = ElfSegment {
        p_type: 1,
        paddr: 0x0802_0200,
        vaddr: 0x0802_0200,
        data: code,
        memsz: 2000,
    };
    std::fs::write(&elf_in, elf32(&[segment])).unwrap();
    let hex_flags: &[&str] = &["--align", "8", "--pad", "--confirm"];

    let mut cmds = vec![sargs(&[&"keygen", &"-t", &"ed25519", &"-k", &key])];
    let mut pairs = Vec::new();
    for (name, extra, ext) in VARIANTS {
        let theirs = dir.path().join(format!("imgtool-{name}.{ext}"));
        cmds.push(sign_args(&key, extra, &input, &theirs));
        pairs.push((vec![input.clone()], extra, theirs));
    }
    for ext in ["hex", "bin"] {
        let theirs = dir.path().join(format!("imgtool-from-hex.{ext}"));
        cmds.push(sign_args(&key, hex_flags, &hex_in, &theirs));
        pairs.push((vec![hex_in.clone(), elf_in.clone()], hex_flags, theirs));
    }
    // Without a key: a hash-only image.
    let unsigned_theirs = dir.path().join("imgtool-unsigned.bin");
    let mut unsigned_args = sargs(&[&"sign"]);
    unsigned_args.extend(BASE.iter().map(|s| s.to_string()));
    unsigned_args.extend(sargs(&[&input, &unsigned_theirs]));
    cmds.push(unsigned_args.clone());
    imgtool.batch_ok(cmds);
    let unsigned_ours = dir.path().join("brickless-unsigned.bin");
    unsigned_args.pop();
    run_ok(
        brickless()
            .arg("image")
            .args(&unsigned_args)
            .arg(&unsigned_ours),
    );
    assert_eq!(
        std::fs::read(&unsigned_ours).unwrap(),
        std::fs::read(&unsigned_theirs).unwrap(),
        "unsigned image"
    );

    for (sources, extra, theirs) in &pairs {
        let expected = std::fs::read(theirs).unwrap();
        for src in sources {
            let ours = dir
                .path()
                .join("brickless-out")
                .with_extension(theirs.extension().unwrap());
            brickless_sign(&key, extra, src, &ours);
            assert_eq!(
                std::fs::read(&ours).unwrap(),
                expected,
                "{} like {}",
                src.display(),
                theirs.display()
            );
        }
    }
    // The HEX image starts at the slot, 0x200 below the input's first byte, and skips the
    // erased bytes before the trailer.
    let signed = FirmwareImage::load(&dir.path().join("imgtool-from-hex.hex"), 0).unwrap();
    assert_eq!(signed.start_address(), Some(0x0802_0000));
    assert_eq!(signed.end_address(), Some(0x0804_0000));
    assert!(
        signed.segments().len() >= 2,
        "trailer is separate from the image"
    );
}

#[test]
fn getpub_matches_imgtool_for_keys_from_either_tool() {
    let Some(imgtool) = imgtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let theirs_key = dir.path().join("imgtool-ed25519.pem");
    let ours_key = dir.path().join("brickless-ecdsa.pem");
    run_ok(
        brickless()
            .args(["keygen", "-t", "ecdsa-p256", "-k"])
            .arg(&ours_key),
    );
    let mut cmds = vec![sargs(&[&"keygen", &"-t", &"ed25519", &"-k", &theirs_key])];
    let mut outputs = Vec::new();
    for key in [&theirs_key, &ours_key] {
        for encoding in ["lang-c", "lang-rust", "pem", "raw"] {
            let out = dir
                .path()
                .join(format!("imgtool-{}.{encoding}", outputs.len()));
            cmds.push(sargs(&[
                &"getpub", &"-e", &encoding, &"-k", key, &"-o", &out,
            ]));
            outputs.push((key, encoding, out));
        }
    }
    imgtool.batch_ok(cmds);
    for (key, encoding, theirs) in outputs {
        let ours = dir.path().join("ours.out");
        run_ok(
            brickless()
                .args(["getpub", "-e", encoding, "-k"])
                .arg(key)
                .arg("-o")
                .arg(&ours),
        );
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
            "{} -e {encoding}",
            key.display()
        );
    }
}
