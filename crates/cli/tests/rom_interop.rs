//! `brickless sim --rom` driven by the real peers (stm32flash on the pty, stm32loader's
//! bootloader class over TCP) and by `brickless rom` itself, on several part profiles.
use brickless_test_support::{assert_fill_units_erased, missing_peer, pseudo_random_bytes};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_brickless");

/// A running virtual ROM device, killed on drop.
struct Sim {
    _process: common::SimProcess,
    pty: PathBuf,
    tcp: String,
}

impl Sim {
    fn start(dir: &Path, part: &str, flash: &str, extra: &[&str]) -> Sim {
        let link = dir.join(format!("tty-{part}"));
        let mut args: Vec<std::ffi::OsString> = vec![
            "--rom".into(),
            "--part".into(),
            part.into(),
            "--flash".into(),
            dir.join(flash).into(),
            "--link".into(),
            link.clone().into(),
            "--tcp".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let process = common::SimProcess::start(&args);
        assert!(
            process.first_line.starts_with("serving AN3155 on "),
            "first line: {}",
            process.first_line
        );
        Sim {
            tcp: process.addr(),
            pty: link,
            _process: process,
        }
    }
}

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when the peer is there; otherwise skip (or fail in CI).
fn peer(name: &str, present: bool) -> bool {
    if !present {
        missing_peer(name);
    }
    present
}

fn brickless(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run brickless")
}

fn ok(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "brickless failed: {text}");
    text
}

#[test]
fn stm32flash_programs_reads_back_and_verifies() {
    if !peer(
        "stm32flash",
        have("stm32flash", &["-h"]) || Path::new("/usr/bin/stm32flash").exists(),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "stm32h753zi", "h7.flash", &[]);
    let fw = pseudo_random_bytes(150_001, 1);
    let fw_path = dir.path().join("fw.bin");
    std::fs::write(&fw_path, &fw).unwrap();
    let out = Command::new("stm32flash")
        .args(["-m", "8n1", "-b", "115200", "-w"])
        .arg(&fw_path)
        .args(["-v", "-S", "0x08020000"])
        .arg(&sim.pty)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stm32flash write failed: {log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains("Device ID    : 0x0450"), "{log}");
    assert!(log.contains("Done."), "{log}");

    let back_path = dir.path().join("back.bin");
    let out = Command::new("stm32flash")
        .args(["-m", "8n1", "-r"])
        .arg(&back_path)
        .args(["-S", "0x08020000:150001"])
        .arg(&sim.pty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stm32flash read failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read(&back_path).unwrap(),
        fw,
        "stm32flash reads back what it wrote"
    );

    // Our host sees the same bytes over TCP.
    ok(&brickless(&[
        "rom",
        "verify",
        "--tcp",
        &sim.tcp,
        fw_path.to_str().unwrap(),
        "--address",
        "0x08020000",
    ]));
}

const STM32LOADER_SCRIPT: &str = r#"
import sys, serial
from stm32loader.bootloader import Stm32Bootloader
url, family, path, addr, page = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4], 0), int(sys.argv[5])
data = open(path, "rb").read()
conn = serial.serial_for_url(url, timeout=5)
bl = Stm32Bootloader(conn, device_family=family, verbosity=0)
# stm32loader's table says 1 KiB pages for L4; the part has 2 KiB pages.
bl.flash_page_size = page
bl.reset_from_system_memory()
bl.get()
print("pid %#x" % bl.get_id())
print("flash_kib %d" % bl.get_flash_size())
page = bl.flash_page_size
start = addr - 0x08000000
bl.extended_erase_memory(bl.pages_from_range(start, (start + len(data) + page - 1) // page * page))
bl.write_memory_data(addr, data)
back = bl.read_memory_data(addr, len(data))
bl.verify_data(back, data)
print("verified %d" % len(data))
"#;

#[test]
fn stm32loader_programs_reads_back_and_verifies() {
    let present = have("python3", &["-c", "import stm32loader.bootloader, serial"]);
    if !peer("stm32loader (python3 -m pip install stm32loader)", present) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "stm32l475vg", "l4.flash", &[]);
    let script = dir.path().join("load.py");
    std::fs::write(&script, STM32LOADER_SCRIPT).unwrap();
    let fw = pseudo_random_bytes(6 * 1024, 2);
    let fw_path = dir.path().join("fw.bin");
    std::fs::write(&fw_path, &fw).unwrap();
    // Old firmware there first: stm32loader must erase the right pages for its write to land.
    let old = dir.path().join("old.bin");
    std::fs::write(&old, pseudo_random_bytes(8 * 1024, 9)).unwrap();
    ok(&brickless(&[
        "rom",
        "write",
        "--tcp",
        &sim.tcp,
        old.to_str().unwrap(),
        "--address",
        "0x08004000",
    ]));
    let out = Command::new("python3")
        .arg(&script)
        .arg(format!("socket://{}", sim.tcp))
        .args(["L4"])
        .arg(&fw_path)
        .args(["0x08004000", "2048"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stm32loader failed: {log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains("pid 0x415"), "{log}");
    assert!(log.contains("flash_kib 1024"), "{log}");
    assert!(log.contains(&format!("verified {}", fw.len())), "{log}");
    // And what stm32loader wrote is on the device for another client.
    ok(&brickless(&[
        "rom",
        "verify",
        "--tcp",
        &sim.tcp,
        fw_path.to_str().unwrap(),
        "--address",
        "0x08004000",
    ]));
}

#[test]
fn our_host_on_four_profiles_and_flash_kept_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (part, addr)) in [
        ("stm32h753zi", "0x08100000"),
        ("stm32l475vg", "0x0807f000"),
        ("stm32f407vg", "0x0800c000"),
        ("stm32l073rz", "0x08017f00"),
    ]
    .into_iter()
    .enumerate()
    {
        let flash = format!("{part}.flash");
        let fw = pseudo_random_bytes(9_000 + i * 77, 10 + i as u64);
        let fw_path = dir.path().join(format!("{part}.bin"));
        std::fs::write(&fw_path, &fw).unwrap();
        let fw_arg = fw_path.to_str().unwrap();
        {
            let sim = Sim::start(dir.path(), part, &flash, &[]);
            let info = ok(&brickless(&["rom", "info", "--tcp", &sim.tcp, "--json"]));
            let pid = brickless_rom::by_part_name(part).unwrap().pid;
            assert!(info.contains(&format!("\"pid\":\"{pid:#05x}\"")), "{info}");
            // The pty in 8N1 and in 8E1 (the device takes either), TCP on the others.
            let transport: Vec<&str> = if i == 0 {
                vec!["--port", sim.pty.to_str().unwrap(), "--parity", "none"]
            } else if i == 1 {
                vec!["--port", sim.pty.to_str().unwrap(), "--parity", "even"]
            } else {
                vec!["--tcp", &sim.tcp]
            };
            let mut args = vec!["rom", "write", fw_arg, "--address", addr];
            args.extend(&transport);
            let out = ok(&brickless(&args));
            assert!(out.contains("and verified"), "{out}");
            let back = dir.path().join(format!("{part}.back.bin"));
            ok(&brickless(&[
                "rom",
                "read",
                "--tcp",
                &sim.tcp,
                "--address",
                addr,
                "--length",
                &fw.len().to_string(),
                "-o",
                back.to_str().unwrap(),
            ]));
            assert_eq!(std::fs::read(&back).unwrap(), fw, "{part}");
            // Let the device persist its flash, then stop it.
            std::thread::sleep(std::time::Duration::from_millis(1000));
        }
        // A new run of the device over the same flash file still holds the firmware.
        let sim = Sim::start(dir.path(), part, &flash, &[]);
        ok(&brickless(&[
            "rom",
            "verify",
            "--tcp",
            &sim.tcp,
            fw_arg,
            "--address",
            addr,
        ]));
    }
}

#[test]
fn errors_are_named_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "stm32f407vg", "f4.flash", &[]);
    // A file that runs past the end of flash: refused before anything is erased.
    let fw_path = dir.path().join("big.bin");
    std::fs::write(&fw_path, pseudo_random_bytes(8192, 3)).unwrap();
    let out = brickless(&[
        "rom",
        "write",
        "--tcp",
        &sim.tcp,
        fw_path.to_str().unwrap(),
        "--address",
        "0x080FF000",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not in the flash"), "{err}");
    // Read-out protection: a named error with the way out.
    ok(&brickless(&[
        "rom", "protect", "readout", "--tcp", &sim.tcp,
    ]));
    let out = brickless(&[
        "rom",
        "read",
        "--tcp",
        &sim.tcp,
        "--length",
        "16",
        "-o",
        dir.path().join("x.bin").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("read-out protection is active") && err.contains("unprotect readout"),
        "{err}"
    );
    ok(&brickless(&[
        "rom",
        "unprotect",
        "readout",
        "--tcp",
        &sim.tcp,
    ]));
    // Nobody listening: a clear open error.
    let out = brickless(&["rom", "info", "--tcp", "127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}

#[test]
fn dfuse_pack_file_is_written_at_its_element_address() {
    if !peer(
        "dfuse-pack (dfu-util)",
        have("sh", &["-c", "command -v dfuse-pack"]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "stm32g474re", "g4.flash", &[]);
    let fw = pseudo_random_bytes(3000, 4);
    let bin = dir.path().join("fw.bin");
    std::fs::write(&bin, &fw).unwrap();
    let dfu = dir.path().join("fw.dfu");
    let st = Command::new("dfuse-pack")
        .arg("-b")
        .arg(format!("0x08020000:{}", bin.display()))
        .arg(&dfu)
        .status()
        .unwrap();
    assert!(st.success());
    ok(&brickless(&[
        "rom",
        "write",
        "--tcp",
        &sim.tcp,
        dfu.to_str().unwrap(),
    ]));
    ok(&brickless(&[
        "rom",
        "verify",
        "--tcp",
        &sim.tcp,
        bin.to_str().unwrap(),
        "--address",
        "0x08020000",
    ]));
    // A damaged .dfu is refused with a named error and nothing is written.
    let bad = dir.path().join("bad.dfu");
    let mut bytes = std::fs::read(&dfu).unwrap();
    bytes[20] ^= 0xFF;
    std::fs::write(&bad, bytes).unwrap();
    let out = brickless(&["rom", "write", "--tcp", &sim.tcp, bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a usable .dfu file"));
}

/// The virtual device's flash as last saved: it saves within ~100 ms of a change.
fn saved_flash(path: &Path) -> brickless_flash_model::SimFlash {
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut last = None;
    for _ in 0..20 {
        match brickless_flash_model::SimFlash::open(path) {
            Ok(f) => return f,
            // Caught mid-save: try again.
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("cannot open {}: {last:?}", path.display());
}

/// Runs `brickless` expecting a failure; returns stderr (miette's narrated form: unwrapped,
/// so paths and messages are whole).
fn fails(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("NO_GRAPHICS", "1")
        .output()
        .expect("run brickless");
    failed_with(&out)
}

fn failed_with(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "brickless succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_dfu_file_without_data_is_refused_and_the_flash_is_unchanged() {
    use brickless_rom::dfu_file::{append_suffix, DfuSeBuilder, TargetSpec};
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "stm32l475vg", "l4.flash", &[]);
    // Firmware on the device first, so an erase would show.
    let fw = dir.path().join("fw.bin");
    std::fs::write(&fw, pseudo_random_bytes(4096, 21)).unwrap();
    let fw = fw.to_str().unwrap();
    ok(&brickless(&["rom", "write", "--tcp", &sim.tcp, fw]));
    let flash_path = dir.path().join("l4.flash");
    saved_flash(&flash_path);
    let before = std::fs::read(&flash_path).unwrap();

    let target = |elements: Vec<(u32, Vec<u8>)>| TargetSpec {
        alt_setting: 0,
        name: Some("Internal Flash".into()),
        elements,
    };
    let dfuse = |targets| {
        DfuSeBuilder {
            targets,
            ..DfuSeBuilder::default()
        }
        .build()
        .unwrap()
    };
    let cases = [
        (
            "no-elements.dfu",
            dfuse(vec![target(vec![])]),
            "no elements",
        ),
        (
            "empty-elements.dfu",
            dfuse(vec![target(vec![
                (0x0800_0000, vec![]),
                (0x0800_1000, vec![]),
            ])]),
            "all empty",
        ),
        (
            "raw-empty.dfu",
            append_suffix(&[], 0x0483, 0xDF11, 0, 0x0100),
            "payload is empty",
        ),
    ];
    for (name, bytes, why) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let file = file.to_str().unwrap();
        for cmd in ["write", "verify"] {
            let err = fails(&["rom", cmd, "--tcp", &sim.tcp, file]);
            assert!(
                err.contains(file),
                "{cmd} {name}: error does not name the file: {err}"
            );
            assert!(err.contains(why), "{cmd} {name}: {err}");
            assert!(err.contains("nothing to write"), "{cmd} {name}: {err}");
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        std::fs::read(&flash_path).unwrap() == before,
        "the device's flash changed"
    );
    ok(&brickless(&["rom", "verify", "--tcp", &sim.tcp, fw]));
}

/// 2 KiB of code, `fill` × 6000 (a state area in a merged factory image), 1 KiB of code.
fn merged_factory_image(fill: u8) -> Vec<u8> {
    let mut image = pseudo_random_bytes(2048, 31);
    image.extend(std::iter::repeat_n(fill, 6000));
    image.extend(pseudo_random_bytes(1024, 32));
    image
}

#[test]
fn rom_write_leaves_erased_value_units_erased_and_programmable() {
    let dir = tempfile::tempdir().unwrap();
    for (part, base) in [
        ("stm32l475vg", 0x0801_0000u32),
        ("stm32l073rz", 0x0801_0000),
    ] {
        let flash_name = format!("{part}.flash");
        let sim = Sim::start(dir.path(), part, &flash_name, &[]);
        let erased = brickless_rom::by_part_name(part).unwrap().geometry.erased;
        let image = merged_factory_image(erased);
        let bin = dir.path().join(format!("{part}-factory.bin"));
        std::fs::write(&bin, &image).unwrap();
        let addr = format!("{base:#x}");
        let out = ok(&brickless(&[
            "rom",
            "write",
            "--tcp",
            &sim.tcp,
            bin.to_str().unwrap(),
            "--address",
            &addr,
        ]));
        assert!(out.contains("bytes of erased value skipped"), "{out}");
        assert!(out.contains("and verified"), "{out}");

        let flash = saved_flash(&dir.path().join(&flash_name));
        let (from, to) = (base + 2048, base + 2048 + 6000);
        assert_fill_units_erased(&flash, from, to, part);

        // A later write into the fill without an erase (a state record) succeeds.
        let record = dir.path().join(format!("{part}-record.bin"));
        std::fs::write(&record, pseudo_random_bytes(64, 33)).unwrap();
        let at = format!("{:#x}", from.div_ceil(256) * 256 + 1024);
        ok(&brickless(&[
            "rom",
            "write",
            "--tcp",
            &sim.tcp,
            record.to_str().unwrap(),
            "--address",
            &at,
            "--erase",
            "none",
        ]));
    }
}

#[test]
fn erase_none_without_verify_still_checks_the_skipped_units() {
    // F4 flash ANDs a second program into the old bits without complaint: the units a write
    // skips must be checked, or old data would be left silently.
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "stm32f407vg", "f4.flash", &[]);
    let old = dir.path().join("old.bin");
    std::fs::write(&old, pseudo_random_bytes(1024, 41)).unwrap();
    ok(&brickless(&[
        "rom",
        "write",
        "--tcp",
        &sim.tcp,
        old.to_str().unwrap(),
        "--address",
        "0x08008000",
    ]));
    let blank = dir.path().join("blank.bin");
    std::fs::write(&blank, vec![0xFF; 1024]).unwrap();
    let err = fails(&[
        "rom",
        "write",
        "--tcp",
        &sim.tcp,
        blank.to_str().unwrap(),
        "--address",
        "0x08008000",
        "--erase",
        "none",
        "--no-verify",
    ]);
    assert!(err.contains("expected 0xff"), "{err}");
}

#[test]
fn zero_length_reads_and_erases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), "stm32f407vg", "f4.flash", &[]);
    let out_file = dir.path().join("zero.bin");
    let err = fails(&[
        "rom",
        "read",
        "--tcp",
        &sim.tcp,
        "--length",
        "0",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(err.contains("--length 0"), "{err}");
    assert!(!out_file.exists());
    let err = fails(&["rom", "erase", "--tcp", &sim.tcp, "--range", "0x08000000:0"]);
    assert!(err.contains("erases nothing"), "{err}");
}
