//! Interop with the real imgtool: byte-identical signing (Ed25519), cross verification
//! (ECDSA P-256), parsed fields equal to `imgtool dumpinfo`, keys usable by both tools.

mod common;

use std::fs;
use std::path::Path;

use brickless_image::keys::{self, GetpubEncoding, KeyType, LoadedKey, SigningKey};
use brickless_image::sign::{
    parse_custom_tlv, parse_dependencies, parse_int, sign_image, PublicKeyFormat, SecurityCounter,
    SignOptions,
};
use brickless_image::tlv::kind;
use brickless_image::{inspect, verify_bytes, ImageVersion, VerifyError};
use brickless_test_support::pseudo_random_bytes;
use common::Imgtool;

/// Map the imgtool `sign` arguments used in these tests onto [`SignOptions`].
fn options_from_args(args: &[&str]) -> SignOptions {
    let mut o = SignOptions::default();
    let mut i = 0;
    let num = |s: &str| parse_int(s).unwrap_or_else(|| panic!("bad number {s}"));
    while i < args.len() {
        let a = args[i];
        let mut val = || {
            i += 1;
            args[i]
        };
        match a {
            "-H" => o.header_size = num(val()),
            "--pad-header" => o.pad_header = true,
            "-S" => o.slot_size = num(val()),
            "--align" => o.align = num(val()),
            "--max-align" => o.max_align = Some(num(val())),
            "--pad" => o.pad = true,
            "--confirm" => o.confirm = true,
            "--test" => o.test = true,
            "--overwrite-only" => o.overwrite_only = true,
            "-M" => o.max_sectors = Some(num(val())),
            "-R" => o.erased_val = num(val()) as u8,
            "-s" => o.security_counter = Some(val().parse().unwrap()),
            "-L" => o.load_addr = Some(num(val())),
            "-F" => o.rom_fixed = Some(num(val())),
            "--non-bootable" => o.non_bootable = true,
            "-v" => o.version = val().parse().unwrap(),
            "--public-key-format" => {
                o.public_key_format = match val() {
                    "full" => PublicKeyFormat::Full,
                    _ => PublicKeyFormat::Hash,
                }
            }
            "-d" => o.dependencies = parse_dependencies(val()).unwrap(),
            "--custom-tlv" => {
                let tag = val();
                o.custom_tlvs.push(parse_custom_tlv(tag, val()).unwrap());
            }
            other => panic!("test does not map imgtool arg {other}"),
        }
        i += 1;
    }
    o
}

/// Option sets covering every supported imgtool flag.
const CASES: &[&[&str]] = &[
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "-v",
        "1.2.3",
    ],
    &["-H", "0x200", "-S", "0x20000", "-v", "0.0.1+7"],
    &[
        "-H",
        "0x20",
        "--pad-header",
        "-S",
        "0x10000",
        "--align",
        "8",
        "--pad",
        "-v",
        "2.0.0",
    ],
    &[
        "-H",
        "0x400",
        "--pad-header",
        "-S",
        "0x20000",
        "--align",
        "32",
        "--pad",
        "--confirm",
        "-v",
        "3.1.4+15",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x10000",
        "--align",
        "4",
        "--max-align",
        "16",
        "--test",
        "-v",
        "1.0.0",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x10000",
        "--align",
        "2",
        "--max-align",
        "32",
        "--confirm",
        "-M",
        "16",
        "-v",
        "1.0.0",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x10000",
        "--align",
        "16",
        "--pad",
        "-R",
        "0",
        "-v",
        "1.0.0",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x10000",
        "--overwrite-only",
        "--confirm",
        "-v",
        "1.0.0",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "-s",
        "auto",
        "-v",
        "1.2.3+4",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "-s",
        "0x1234",
        "-v",
        "1.2.3",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "-s",
        "9",
        "-d",
        "(1,2.3.4+5)",
        "--custom-tlv",
        "0xa0",
        "0x0102",
        "--custom-tlv",
        "0x1234",
        "hello",
        "-v",
        "4.5.6",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "-F",
        "0x08020000",
        "-v",
        "1.0.0",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "-L",
        "0x20000000",
        "--non-bootable",
        "-v",
        "1.0.0",
    ],
    &[
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "--public-key-format",
        "full",
        "-v",
        "1.0.0",
    ],
];

fn input_for(args: &[&str], len: usize, seed: u64) -> Vec<u8> {
    let mut data = pseudo_random_bytes(len, seed);
    if !args.contains(&"--pad-header") {
        let h = parse_int(args[args.iter().position(|a| *a == "-H").unwrap() + 1]).unwrap();
        data[..h as usize].fill(0);
    }
    data
}

fn imgtool_keygen(t: &mut Imgtool, dir: &Path, kind: &str, name: &str) -> SigningKey {
    t.run(dir, &["keygen", "-t", kind, "-k", name]);
    match keys::load_pem(&fs::read_to_string(dir.join(name)).unwrap()).unwrap() {
        LoadedKey::Private(k) => k,
        LoadedKey::Public(_) => panic!("keygen wrote a public key"),
    }
}

fn imgtool_sign(
    t: &mut Imgtool,
    dir: &Path,
    key: Option<&str>,
    args: &[&str],
    input: &[u8],
) -> Vec<u8> {
    fs::write(dir.join("in.bin"), input).unwrap();
    let mut full: Vec<&str> = vec!["sign"];
    if let Some(k) = key {
        full.extend(["-k", k]);
    }
    full.extend_from_slice(args);
    full.extend(["in.bin", "out.bin"]);
    t.run(dir, &full);
    fs::read(dir.join("out.bin")).unwrap()
}

#[test]
fn ed25519_images_are_byte_identical_to_imgtool() {
    let Some(mut t) = Imgtool::start() else {
        return;
    };
    let t = &mut t;
    let dir = tempfile::tempdir().unwrap();
    let key = imgtool_keygen(t, dir.path(), "ed25519", "ed.pem");
    for (i, args) in CASES.iter().enumerate() {
        let input = input_for(args, 3000 + i * 77, i as u64);
        let theirs = imgtool_sign(t, dir.path(), Some("ed.pem"), args, &input);
        let ours = sign_image(&input, Some(&key), &options_from_args(args)).unwrap();
        assert!(ours == theirs, "case {i} {args:?}: bytes differ");
        let v = verify_bytes(&theirs, &[key.public_key()]).unwrap();
        assert_eq!(v.key_index, Some(0));
    }
}

#[test]
fn unsigned_images_are_byte_identical_to_imgtool() {
    let Some(mut t) = Imgtool::start() else {
        return;
    };
    let t = &mut t;
    let dir = tempfile::tempdir().unwrap();
    for (i, args) in CASES.iter().enumerate().step_by(3) {
        let input = input_for(args, 1500 + i, 100 + i as u64);
        let theirs = imgtool_sign(t, dir.path(), None, args, &input);
        let ours = sign_image(&input, None, &options_from_args(args)).unwrap();
        assert!(ours == theirs, "case {i} {args:?}: bytes differ");
        let v = verify_bytes(&theirs, &[]).unwrap();
        assert_eq!(v.key_index, None);
    }
}

#[test]
fn imgtool_signed_images_verify_and_match_dumpinfo() {
    let Some(mut t) = Imgtool::start() else {
        return;
    };
    let t = &mut t;
    let dir = tempfile::tempdir().unwrap();
    let ed = imgtool_keygen(t, dir.path(), "ed25519", "ed.pem");
    let ec = imgtool_keygen(t, dir.path(), "ecdsa-p256", "ec.pem");
    let variants: &[&[&str]] = &[
        &[
            "-H",
            "0x200",
            "--pad-header",
            "-S",
            "0x20000",
            "-v",
            "1.2.3+4",
        ],
        &[
            "-H",
            "0x200",
            "--pad-header",
            "-S",
            "0x20000",
            "--pad",
            "-v",
            "1.2.3+4",
        ],
        &[
            "-H",
            "0x200",
            "--pad-header",
            "-S",
            "0x20000",
            "--align",
            "8",
            "--confirm",
            "-s",
            "auto",
            "-v",
            "2.3.4",
        ],
        &[
            "-H",
            "0x400",
            "--pad-header",
            "-S",
            "0x20000",
            "--align",
            "32",
            "--pad",
            "-s",
            "77",
            "-v",
            "5.6.7+8",
        ],
    ];
    for (key_file, key) in [("ed.pem", &ed), ("ec.pem", &ec)] {
        for (i, args) in variants.iter().enumerate() {
            let input = input_for(args, 5000 + i, 7 + i as u64);
            let image = imgtool_sign(t, dir.path(), Some(key_file), args, &input);
            let other = if key_file == "ed.pem" { &ec } else { &ed };
            let v = verify_bytes(&image, &[other.public_key(), key.public_key()])
                .unwrap_or_else(|e| panic!("{key_file} {args:?}: {e}"));
            assert_eq!(v.key_index, Some(1));
            assert!(matches!(
                verify_bytes(&image, &[other.public_key()]),
                Err(VerifyError::UnknownKey)
            ));
            compare_with_dumpinfo(t, dir.path(), &image, v.security_counter, v.tlv_end);
        }
    }
}

fn compare_with_dumpinfo(
    t: &mut Imgtool,
    dir: &Path,
    image: &[u8],
    sec_cnt: Option<u32>,
    tlv_end: u32,
) {
    fs::write(dir.join("dump.bin"), image).unwrap();
    let out = t.run(dir, &["dumpinfo", "-f", "json", "dump.bin"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let info = inspect::inspect(image, 0xff).unwrap();
    let h = &json["header"];
    assert_eq!(h["magic"], info.header.magic);
    assert_eq!(h["load_addr"], info.header.load_addr);
    assert_eq!(h["hdr_size"], info.header.hdr_size);
    assert_eq!(h["protected_tlv_size"], info.header.protect_tlv_size);
    assert_eq!(h["img_size"], info.header.img_size);
    assert_eq!(h["flags"], info.header.flags);
    assert_eq!(h["version"], info.header.version.to_string());
    let tlvs = |name: &str, ours: &[inspect::TlvEntry]| {
        let theirs = json["tlv_area"][name]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(theirs.len(), ours.len(), "{name} count");
        for (t, o) in theirs.iter().zip(ours) {
            assert_eq!(t["type"], o.kind);
            assert_eq!(t["len"], o.data.len());
            assert_eq!(t["data"], base16ct::lower::encode_string(&o.data));
            let name = o.name.unwrap_or("UNKNOWN");
            assert_eq!(t["type_name"], name);
        }
    };
    tlvs("tlvs_prot", &info.protected_tlvs);
    tlvs("tlvs", &info.unprotected_tlvs);
    let prot_sec = json["tlv_area"]["tlvs_prot"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["type"] == kind::SEC_CNT))
        .map(|t| t["data"].as_str().unwrap().to_string());
    assert_eq!(
        prot_sec,
        sec_cnt.map(|c| base16ct::lower::encode_string(&c.to_le_bytes()))
    );
    assert_eq!(info.tlv_end, tlv_end);
    if let Some(tr) = info.trailer {
        let t = &json["trailer"];
        let magic = &image[image.len() - 16..];
        assert_eq!(t["magic"], base16ct::lower::encode_string(magic));
        let flag = |f: brickless_image::trailer::FlagState| match f {
            brickless_image::trailer::FlagState::Set => 1,
            brickless_image::trailer::FlagState::Unset => 0xff,
            brickless_image::trailer::FlagState::Bad(b) => b as u64,
        };
        assert_eq!(t["image_ok"], flag(tr.state.image_ok));
        assert_eq!(t["copy_done"], flag(tr.state.copy_done));
        assert_eq!(t["swap_info"], tr.state.swap_info.unwrap_or(0xff));
    }
}

#[test]
fn our_ecdsa_and_ed25519_images_pass_imgtool_verify() {
    let Some(mut t) = Imgtool::start() else {
        return;
    };
    let t = &mut t;
    let dir = tempfile::tempdir().unwrap();
    for kind in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let key = keys::generate(kind);
        fs::write(dir.path().join("k.pem"), key.to_pem()).unwrap();
        // Ed25519 output is already proven byte-identical: a sample suffices there.
        let step = if kind == KeyType::Ed25519 { 3 } else { 1 };
        for (i, args) in CASES.iter().enumerate().step_by(step) {
            let input = input_for(args, 2000 + i, 50 + i as u64);
            let image = sign_image(&input, Some(&key), &options_from_args(args)).unwrap();
            fs::write(dir.path().join("ours.bin"), &image).unwrap();
            let out = t.run_status(dir.path(), &["verify", "-k", "k.pem", "ours.bin"]);
            assert!(
                out.success,
                "{kind:?} case {i}: imgtool verify failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let v = verify_bytes(&image, &[key.public_key()]).unwrap();
            assert!(
                text.contains(&base16ct::lower::encode_string(&v.hash)),
                "{text}"
            );
            if i > 0 {
                continue;
            }
            // And imgtool rejects it with the wrong key.
            let other = keys::generate(kind);
            fs::write(dir.path().join("other.pem"), other.to_pem()).unwrap();
            let out = t.run_status(dir.path(), &["verify", "-k", "other.pem", "ours.bin"]);
            assert!(!out.success);
        }
    }
}

#[test]
fn ecdsa_pad_sig_images_verify_in_both_tools() {
    let Some(mut t) = Imgtool::start() else {
        return;
    };
    let t = &mut t;
    let dir = tempfile::tempdir().unwrap();
    let key = imgtool_keygen(t, dir.path(), "ecdsa-p256", "ec.pem");
    let args = [
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        "--pad-sig",
        "-v",
        "1.0.0",
    ];
    let theirs = imgtool_sign(
        t,
        dir.path(),
        Some("ec.pem"),
        &args,
        &pseudo_random_bytes(999, 3),
    );
    let sig = inspect::inspect(&theirs, 0xff).unwrap().unprotected_tlvs;
    assert_eq!(sig.last().unwrap().data.len(), 72);
    verify_bytes(&theirs, &[key.public_key()]).unwrap();
    let opts = SignOptions {
        header_size: 0x200,
        pad_header: true,
        slot_size: 0x20000,
        pad_sig: true,
        ..SignOptions::default()
    };
    let ours = sign_image(&pseudo_random_bytes(999, 3), Some(&key), &opts).unwrap();
    fs::write(dir.path().join("ours.bin"), &ours).unwrap();
    t.run(dir.path(), &["verify", "-k", "ec.pem", "ours.bin"]);
}

#[test]
fn keys_round_trip_between_tools() {
    let Some(mut t) = Imgtool::start() else {
        return;
    };
    let t = &mut t;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for kt in ["ed25519", "ecdsa-p256"] {
        // imgtool's key: we re-export it to the very same PEM text, and print getpub
        // identically in every encoding.
        let file = format!("{kt}.pem");
        let key = imgtool_keygen(t, d, kt, &file);
        assert_eq!(
            key.to_pem(),
            fs::read_to_string(d.join(&file)).unwrap(),
            "{kt} PEM"
        );
        check_getpub(t, d, &file, &key.public_key());

        // Our key: imgtool loads it, signs with it, and we verify that image.
        let ours = keys::generate(kt.parse().unwrap());
        fs::write(d.join("our.pem"), ours.to_pem()).unwrap();
        let out = t.run(d, &["getpub", "-k", "our.pem", "-e", "raw"]);
        assert!(out.stdout == keys::getpub(&ours.public_key(), GetpubEncoding::Raw, ""));
        let args = [
            "-H",
            "0x200",
            "--pad-header",
            "-S",
            "0x20000",
            "-v",
            "1.0.0",
        ];
        let img = imgtool_sign(t, d, Some("our.pem"), &args, &pseudo_random_bytes(777, 9));
        verify_bytes(&img, &[ours.public_key()]).unwrap();

        // Public PEM written by imgtool loads as the same public key.
        t.run(d, &["getpub", "-k", &file, "-e", "pem", "-o", "pub.pem"]);
        let loaded = keys::load_pem(&fs::read_to_string(d.join("pub.pem")).unwrap()).unwrap();
        assert!(matches!(loaded, LoadedKey::Public(p) if p == key.public_key()));
    }
}

fn check_getpub(t: &mut Imgtool, dir: &Path, key_file: &str, key: &brickless_image::PublicKey) {
    for (enc, e) in [
        ("lang-c", GetpubEncoding::LangC),
        ("lang-rust", GetpubEncoding::LangRust),
        ("pem", GetpubEncoding::Pem),
        ("raw", GetpubEncoding::Raw),
    ] {
        let out = t.run(dir, &["getpub", "-k", key_file, "-e", enc]);
        assert!(out.stdout == keys::getpub(key, e, ""), "getpub -e {enc}");
    }
    let out = t.run(
        dir,
        &["getpub", "-k", key_file, "-e", "lang-c", "-o", "gp.out"],
    );
    assert!(out.stdout.is_empty());
    let written = fs::read(dir.join("gp.out")).unwrap();
    assert!(
        written == keys::getpub(key, GetpubEncoding::LangC, ""),
        "getpub -o"
    );
    let out = t.run(
        dir,
        &[
            "getpub",
            "-k",
            key_file,
            "-e",
            "lang-c",
            "--name-suffix",
            "_2",
        ],
    );
    assert!(out.stdout == keys::getpub(key, GetpubEncoding::LangC, "_2"));
    let out = t.run(dir, &["getpubhash", "-k", key_file]);
    assert!(out.stdout == keys::getpubhash(key, keys::GetpubhashEncoding::LangC, ""));
    let out = t.run(dir, &["getpubhash", "-k", key_file, "-e", "raw"]);
    assert!(out.stdout == keys::getpubhash(key, keys::GetpubhashEncoding::Raw, ""));
}

#[test]
fn security_counter_auto_matches_imgtool() {
    let v: ImageVersion = "1.2.3+4".parse().unwrap();
    assert_eq!(v.auto_security_counter(), 0x0102_0003);
    assert_eq!("auto".parse::<SecurityCounter>(), Ok(SecurityCounter::Auto));
    assert_eq!(
        "0x10".parse::<SecurityCounter>(),
        Ok(SecurityCounter::Value(16))
    );
}
