//! The C library from C: the examples and a checks program are compiled with `cc` against
//! the header and the library cargo just built, and run against virtual devices served in
//! this process (brickless-devices, the same models `brickless sim` serves).
//!
//! The devices run in-process rather than as `brickless sim` processes so this crate's tests
//! need no CLI binary (cargo only hands `CARGO_BIN_EXE_*` to the CLI's own tests).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use brickless_devices::link::faults::FaultSpec;
use brickless_devices::mcu::serve::{McuOptions, McuService};
use brickless_devices::mcu::{SelfConfirm, VirtualMcu};
use brickless_devices::rom::serve::{RomService, ServeOptions};
use brickless_host::image::SignSpec;
use brickless_host::smp::{Session, SmpOptions};
use brickless_host::target::Target;
use brickless_test_support::{missing_peer, pseudo_random_bytes};

const DEV_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../keys/insecure-dev-ed25519.pem"
);
const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// Where cargo put libbrickless_c.{a,so}: the test binary runs from `deps/` below it.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        if dir.join("libbrickless_c.a").exists() && dir.join("libbrickless_c.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!("libbrickless_c.a/.so not found near {}", exe.display())
}

fn have_cc() -> bool {
    let ok = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        missing_peer("cc");
    }
    ok
}

enum Link {
    /// The static library (and what Rust's std needs from libc).
    Static,
    /// The shared library, found at run time through its soname.
    Shared,
}

/// Compiles the C program `src` (warnings are errors) into `dir`, once per test run.
fn compile(src: &str, dir: &Path, link: Link) -> PathBuf {
    let lib = lib_dir();
    let name = Path::new(src).file_stem().unwrap().to_str().unwrap();
    let exe = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.args([
        "-std=c11",
        "-D_POSIX_C_SOURCE=200809L",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O1",
        "-I",
    ])
    .arg(Path::new(CRATE).join("include"))
    .arg(Path::new(CRATE).join(src))
    .arg("-o")
    .arg(&exe);
    match link {
        Link::Static => {
            cmd.arg(lib.join("libbrickless_c.a")).args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
            ]);
        }
        Link::Shared => {
            // Only the soname is on the loader's path: a library without the right soname
            // would not load.
            let so = dir.join(format!("lib-{name}"));
            std::fs::create_dir_all(&so).unwrap();
            let target = lib.join("libbrickless_c.so");
            for n in ["libbrickless_c.so", "libbrickless_c.so.0"] {
                let _ = std::fs::remove_file(so.join(n));
                std::os::unix::fs::symlink(&target, so.join(n)).unwrap();
            }
            cmd.arg("-L").arg(&so).arg("-lbrickless_c").arg("-pthread");
            cmd.arg(format!("-Wl,-rpath,{}", so.display()));
        }
    }
    let out = cmd.output().expect("run cc");
    assert!(
        out.status.success(),
        "cc {src} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A virtual STM32H753 running brickless, blank (it serves recovery SMP until the first
/// image), never confirming a trial itself: only an SMP confirm keeps an update.
fn mcu() -> (McuService, String) {
    let part = brickless_flash::part("stm32h753zi").unwrap();
    let layout =
        brickless_boot::default_layout(&part.geometry, brickless_boot::StrategyKind::Swap).unwrap();
    let flash = brickless_flash_model::SimFlash::new(part);
    let key = brickless_image::keys::load_pem(&std::fs::read_to_string(DEV_KEY).unwrap())
        .unwrap()
        .public_key();
    let mcu = VirtualMcu::new(flash, layout, vec![key], SelfConfirm::Never);
    let opts = McuOptions {
        udp: Some("127.0.0.1:0".into()),
        pty: false,
        link: None,
        baud: None,
        turnaround: Duration::ZERO,
        flash_time: false,
        faults: FaultSpec::default(),
        log: Arc::new(|_: &str| {}),
    };
    let service = McuService::start(mcu, None, &opts).unwrap();
    let addr = service.places()[0]
        .strip_prefix("udp ")
        .expect("a UDP place")
        .to_string();
    (service, format!("udp:{addr}"))
}

/// A signed image of `size` pseudo-random bytes, version `major.0.0`, for the H753 slots.
fn signed(dir: &Path, major: u8, size: usize) -> PathBuf {
    let spec = SignSpec {
        version: format!("{major}.0.0"),
        header_size: 0x400,
        pad_header: true,
        slot_size: 0xc0000,
        align: 32,
        confirm: false,
    };
    let bytes = brickless_host::image::sign_bytes(
        &pseudo_random_bytes(size, u64::from(major)),
        Some(Path::new(DEV_KEY)),
        &spec,
    )
    .unwrap();
    let out = dir.join(format!("app{major}.signed.bin"));
    std::fs::write(&out, bytes).unwrap();
    out
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    eprintln!(
        "{cmd:?} -> {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The slot-0 image as the device reports it over a connection of its own.
fn running(target: &str) -> (String, bool) {
    let t = Target::parse(target, 115_200).unwrap();
    let mut s = Session::connect(&t, &SmpOptions::default()).unwrap();
    let slots = s.list().unwrap();
    let r = slots
        .iter()
        .find(|s| s.slot == 0 && s.active)
        .unwrap_or_else(|| panic!("{target}: nothing runs: {slots:?}"));
    (r.version.clone(), r.confirmed)
}

/// One build directory for the compiled programs, shared by the tests of this run.
fn build_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn update_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("examples/update.c", build_dir(), Link::Shared))
        .clone()
}

#[test]
fn the_example_upgrades_one_device_then_eight_at_once() {
    if !have_cc() {
        return;
    }
    let exe = update_exe();
    let dir = tempfile::tempdir().unwrap();
    let v1 = signed(dir.path(), 1, 40_000);
    let v2 = signed(dir.path(), 2, 56_000);

    // One blank device: the first upgrade installs v1 through recovery, then v2 as a trial
    // the example confirms.
    let (_one, target) = mcu();
    for (image, version) in [(&v1, "1.0.0"), (&v2, "2.0.0")] {
        let out = run(Command::new(&exe)
            .args(["--key", DEV_KEY])
            .arg(image)
            .arg(&target));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(&format!("version {version}")), "{text}");
        assert!(text.contains("uploaded 100%"), "{text}");
        assert!(
            text.contains(&format!("{target}: runs {version}, confirmed")),
            "{text}"
        );
        assert_eq!(running(&target), (version.to_string(), true));
    }

    // Eight blank devices, one thread and handle each, in one run of the example: v1 through
    // recovery, then v2 as a trial each device runs and the example confirms.
    let devices: Vec<(McuService, String)> = (0..8).map(|_| mcu()).collect();
    for (image, version) in [(&v1, "1.0.0"), (&v2, "2.0.0")] {
        let t0 = Instant::now();
        let out = run(Command::new(&exe)
            .arg(image)
            .args(devices.iter().map(|(_, t)| t)));
        let secs = t0.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("8 of 8 devices updated"), "{text}");
        for (_, t) in &devices {
            assert!(
                text.contains(&format!("{t}: runs {version}, confirmed")),
                "{text}"
            );
            assert_eq!(running(t), (version.to_string(), true), "{t}");
        }
        eprintln!("eight devices upgraded to {version} in {secs:.2} s");
    }

    // Already running: nothing is uploaded again.
    let out = run(Command::new(&exe).arg(&v2).arg(&target));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("already ran it"),
        "{text}"
    );
}

#[test]
fn the_example_reports_a_wrong_key_and_an_absent_device_as_errors() {
    if !have_cc() {
        return;
    }
    let exe = update_exe();
    let dir = tempfile::tempdir().unwrap();
    let v1 = signed(dir.path(), 1, 10_000);
    let other = dir.path().join("other.pem");
    std::fs::write(
        &other,
        brickless_image::keys::generate(brickless_image::keys::KeyType::Ed25519).to_pem(),
    )
    .unwrap();
    let out = run(Command::new(&exe)
        .arg("--key")
        .arg(&other)
        .arg(&v1)
        .arg("udp:127.0.0.1:9"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("error (verification)"), "{err}");
    assert!(err.contains("help: pass the public key"), "{err}");

    let out = run(Command::new(&exe)
        .arg(&v1)
        .arg("serial:/dev/does-not-exist"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("serial:/dev/does-not-exist: FAILED (connection)")
            && text.contains("0 of 1 devices updated"),
        "{text}"
    );
}

#[test]
fn api_checks_bad_input_and_cancel_from_another_thread() {
    if !have_cc() {
        return;
    }
    let exe = compile("tests/c/api_checks.c", build_dir(), Link::Static);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("raw.bin"), pseudo_random_bytes(600_000, 7)).unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(
        &other,
        brickless_image::keys::generate(brickless_image::keys::KeyType::Ed25519).to_pem(),
    )
    .unwrap();
    let (_device, target) = mcu();
    let out = run(Command::new(&exe)
        .arg(DEV_KEY)
        .arg(&other)
        .arg(dir.path())
        .arg(&target));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    // Every check ran (a program that stopped early cannot pass).
    let oks = text.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(oks, 54, "{text}");
    assert!(text.contains("0 failed"), "{text}");
}

#[test]
fn the_rom_example_writes_through_a_virtual_rom_bootloader_over_tcp() {
    if !have_cc() {
        return;
    }
    let exe = compile("examples/rom_write.c", build_dir(), Link::Shared);
    let dir = tempfile::tempdir().unwrap();
    let part = brickless_flash::part("stm32l073rz").unwrap();
    let device = brickless_rom::by_pid(part.pid).unwrap();
    let opts = ServeOptions {
        pty: false,
        link: None,
        tcp: Some("127.0.0.1:0".into()),
        turnaround: Duration::ZERO,
        line_rate: false,
        baud: 115_200,
        checksum: false,
    };
    let service = RomService::start(
        device,
        part,
        dir.path().join("l0.flash"),
        &opts,
        Arc::new(|_: &str| {}),
    )
    .unwrap();
    let addr = service
        .places()
        .iter()
        .find_map(|p| p.strip_prefix("tcp "))
        .unwrap()
        .to_string();
    let fw = pseudo_random_bytes(9_000, 3);
    let fw_path = dir.path().join("fw.bin");
    std::fs::write(&fw_path, &fw).unwrap();
    let out = run(Command::new(&exe).arg(format!("tcp:{addr}")).arg(&fw_path));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("written 9000 of 9000 bytes"), "{text}");
    assert!(
        text.contains(&format!(
            "wrote 9000 bytes in 1 segments to {}, verified",
            device.name
        )),
        "{text}"
    );

    // Read back over a connection of our own: the flash holds the file.
    let mut t = brickless_host::rom::connect(
        &Target::Tcp(addr.clone()),
        &brickless_host::rom::RomOptions::default(),
    )
    .unwrap();
    let base = device.flash().start;
    let mut back = vec![0u8; fw.len()];
    for (i, chunk) in back.chunks_mut(256).enumerate() {
        t.read_memory(base + (i * 256) as u32, chunk).unwrap();
    }
    assert!(back == fw, "the flash differs from the file");
}

#[test]
fn the_header_serves_cpp_too() {
    let ok = Command::new("c++")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return missing_peer("c++");
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("abi.cpp");
    std::fs::write(
        &src,
        "#include \"brickless.h\"\n#include <cstring>\n\
         int main() {\n\
           BricklessSmp *h = nullptr;\n\
           int rc = brickless_smp_open(\"garbage\", 1.0, &h);\n\
           return brickless_abi_version() == BRICKLESS_ABI_VERSION && h == nullptr &&\n\
                  rc == BRICKLESS_ERR_INVALID_ARGUMENT &&\n\
                  std::strstr(brickless_last_error_message(), \"garbage\") ? 0 : 1;\n\
         }\n",
    )
    .unwrap();
    let exe = dir.path().join("abi");
    let out = Command::new("c++")
        .args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(Path::new(CRATE).join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(lib_dir().join("libbrickless_c.a"))
        .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = run(&mut Command::new(&exe));
    assert!(run.status.success());
}
