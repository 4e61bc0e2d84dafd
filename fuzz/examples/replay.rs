//! Runs saved inputs through a target outside libFuzzer, tracing what it does:
//! `BRICKLESS_FUZZ_TRACE=1 cargo run --release --example replay -- boot_path FILE...`
fn main() {
    let mut args = std::env::args().skip(1);
    let target = args
        .next()
        .expect("usage: replay boot_path|rom_frames FILE...");
    let run: fn(&[u8]) = match target.as_str() {
        "boot_path" => brickless_fuzz::boot_path::run,
        "rom_frames" => brickless_fuzz::rom_frames::run,
        other => panic!("unknown target {other}"),
    };
    for path in args {
        let data = std::fs::read(&path).expect("read the input");
        eprintln!("== {path} ({} bytes)", data.len());
        run(&data);
        eprintln!("== {path}: ok");
    }
}
