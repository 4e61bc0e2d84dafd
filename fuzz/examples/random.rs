//! Pseudo-random inputs through a target, outside libFuzzer (a quick broad sweep with long
//! inputs): `cargo run --release --example random -- boot_path COUNT SEED [MAXLEN]`. Saves
//! the first failing input to `target/random-failure-TARGET.bin`; with `TALLY=1` in the
//! environment it goes on and counts failures by message instead.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run: fn(&[u8]) = match args.first().map(String::as_str) {
        Some("boot_path") => brickless_fuzz::boot_path::run,
        Some("rom_frames") => brickless_fuzz::rom_frames::run,
        _ => panic!("usage: random boot_path|rom_frames COUNT SEED [MAXLEN]"),
    };
    let count: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut x: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let max_len: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let mut next = move || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    std::panic::set_hook(Box::new(|_| {}));
    let tally = std::env::var_os("TALLY").is_some();
    let mut seen: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let start = std::time::Instant::now();
    for i in 0..count {
        let len = next() % max_len;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            if tally {
                // Message up to the first digit-laden detail, so one bug counts once.
                let key: String = msg
                    .split(&['(', ':'][..])
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(70)
                    .collect();
                let e = seen.entry(key).or_insert((0, i));
                e.0 += 1;
                if e.0 == 1 {
                    std::fs::write(format!("target/tally-{}-{i}.bin", args[0]), &data)
                        .expect("save");
                }
                continue;
            }
            let path = format!("target/random-failure-{}.bin", args[0]);
            std::fs::write(&path, &data).expect("save the input");
            println!("input {i} failed: {msg}\nsaved to {path}");
            std::process::exit(1);
        }
    }
    for (msg, (n, first)) in &seen {
        println!("{n:6} x {msg}  (first: input {first})");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{count} inputs ok in {secs:.1} s ({:.0}/s)",
        count as f64 / secs
    );
}
