//! What the firmware's build scripts share: the board table, linker memory maps computed from
//! the engine's firmware layout (so the bootloader, the applications and the engine agree on
//! every address), and the public key the bootloader embeds.
use brickless_boot::{firmware_layout, Layout};
use brickless_flash::Part;
use std::path::{Path, PathBuf};
use std::{env, fs};

/// A board the firmware builds for: its cargo feature suffix and its chip-table part.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    /// `board-<name>` is the cargo feature.
    pub name: &'static str,
    /// The chip-table part (flash geometry and RAM).
    pub part: &'static str,
}

/// Every board. QEMU's `netduinoplus2` is an STM32F405, whose flash is the F407's.
pub const BOARDS: &[Board] = &[
    Board {
        name: "nucleo-h753zi",
        part: "stm32h753zi",
    },
    Board {
        name: "b-l475e-iot01a",
        part: "stm32l475vg",
    },
    Board {
        name: "nucleo-f767zi",
        part: "stm32f767zi",
    },
    Board {
        name: "stm32f407-disco",
        part: "stm32f407vg",
    },
    Board {
        name: "netduinoplus2",
        part: "stm32f407vg",
    },
    Board {
        name: "nucleo-l073rz",
        part: "stm32l073rz",
    },
];

/// Bytes at the top of RAM shared by the bootloader and the application (the handoff
/// mailbox of `brickless_boot::handoff`).
pub const HANDOFF_BYTES: u32 = brickless_boot::handoff::HANDOFF_BYTES as u32;

/// Room the application's image header takes before its vector table.
pub use brickless_boot::layout::FIRMWARE_APP_HEADER as APP_HEADER;

/// The board chosen by the `board-*` feature (exactly one).
pub fn chosen_board() -> (Board, &'static Part, Layout) {
    let chosen: Vec<Board> = BOARDS
        .iter()
        .copied()
        .filter(|b| {
            let var = format!(
                "CARGO_FEATURE_BOARD_{}",
                b.name.to_uppercase().replace('-', "_")
            );
            env::var_os(var).is_some()
        })
        .collect();
    let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
    let board = match chosen.as_slice() {
        [one] => *one,
        [] => panic!("choose a board: --features board-<name>, one of {names:?}"),
        many => panic!("one board per build, got {many:?}"),
    };
    let part = brickless_flash::part(board.part).expect("the board table names known parts");
    let layout =
        firmware_layout(&part.geometry).expect("the firmware layout fits every board's part");
    (board, part, layout)
}

/// Which program a memory map is for.
#[derive(Clone, Copy, Debug)]
pub enum Program {
    /// The bootloader: its own region of the layout.
    Bootloader,
    /// An application: the primary slot after the image header, before the swap's trailer
    /// room (the secondary is larger, so the image fits where it is staged too).
    Application,
}

/// The `memory.x` for `program` on `layout`, with the handoff symbol.
pub fn memory_x(part: &Part, layout: &Layout, program: Program) -> String {
    let spec = layout.spec();
    let (origin, length) = match program {
        Program::Bootloader => (spec.bootloader.start, spec.bootloader.size),
        Program::Application => (
            spec.primary.start + APP_HEADER,
            layout.max_image_size().saturating_sub(APP_HEADER + 4096),
        ),
    };
    format!(
        "/* Generated from the engine's firmware layout for {part}. */\n\
         MEMORY\n{{\n  FLASH : ORIGIN = {origin:#010x}, LENGTH = {length:#x}\n  \
         RAM   : ORIGIN = {ram:#010x}, LENGTH = {ram_len:#x}\n}}\n\
         /* The handoff mailbox: the top {HANDOFF_BYTES} bytes of RAM, above the stack. */\n\
         _brickless_handoff = ORIGIN(RAM) + LENGTH(RAM);\n",
        part = part.name,
        ram = part.ram_base,
        ram_len = part.ram_size - HANDOFF_BYTES,
    )
}

/// Writes `memory.x` for the chosen board into OUT_DIR and puts it on the linker's path;
/// also writes `board.rs` with the board's name and part. Returns the board.
pub fn link_for(program: Program) -> (Board, &'static Part, Layout) {
    let (board, part, layout) = chosen_board();
    let out = out_dir();
    fs::write(out.join("memory.x"), memory_x(part, &layout, program)).expect("write memory.x");
    fs::write(
        out.join("board.rs"),
        format!(
            "/// The board this binary is built for.\npub const BOARD: &str = {:?};\n\
             /// Its chip-table part.\npub const PART: &str = {:?};\n",
            board.name, board.part
        ),
    )
    .expect("write board.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
    (board, part, layout)
}

/// Writes `keys.rs` into OUT_DIR: `KEYS` (the public key from the PEM that `BRICKLESS_KEY`
/// names, or the repository's insecure development key) and `INSECURE_KEY`.
pub fn embed_key(repo: &Path) {
    println!("cargo:rerun-if-env-changed=BRICKLESS_KEY");
    let (path, insecure) = match env::var_os("BRICKLESS_KEY") {
        Some(p) => (PathBuf::from(p), false),
        None => (repo.join("keys/insecure-dev-ed25519.pem"), true),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let pem = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the key {}: {e}", path.display()));
    let key = brickless_image::keys::load_pem(&pem)
        .unwrap_or_else(|e| panic!("{} is not a key brickless can use: {e}", path.display()))
        .public_key();
    let literal = match key {
        brickless_image::PublicKey::Ed25519(k) => format!("PublicKey::Ed25519({k:?})"),
        brickless_image::PublicKey::EcdsaP256(_) => panic!(
            "this bootloader is built with ed25519 only; {} is a P-256 key",
            path.display()
        ),
    };
    fs::write(
        out_dir().join("keys.rs"),
        format!(
            "/// The keys an image must be signed with.\npub static KEYS: &[PublicKey] = &[{literal}];\n\
             /// Whether the key is the repository's insecure development key.\npub const INSECURE_KEY: bool = {insecure};\n"
        ),
    )
    .expect("write keys.rs");
}

fn out_dir() -> PathBuf {
    PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
}
