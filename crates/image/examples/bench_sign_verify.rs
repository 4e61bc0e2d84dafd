//! Sign and verify a 1 MiB image; print time per MiB and ratios against the limits.
//!
//! Run: `cargo run --release -p brickless-image --example bench_sign_verify`
//!
//! Limits stated (the unavoidable work is one SHA-256 over the image plus one signature
//! operation; everything else is our overhead):
//! - verify must cost at most 1.10x (bare SHA-256 of the image + one bare signature
//!   verification): streaming through the 256-byte flash window and walking the TLVs
//!   may add at most 10 %;
//! - sign must cost at most 1.50x (bare SHA-256 + one bare signing operation): it also
//!   copies the image into the output and pads it;
//! - when `imgtool` is on PATH, our sign/verify must not be slower than imgtool's
//!   (process start-up included on their side, so the ratio flatters us; stated as such).

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use brickless_image::keys::{self, KeyType};
use brickless_image::sign::{sign_image, SignOptions};
use brickless_image::{verify_image, SliceFlash};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let payload: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    let opts = SignOptions {
        header_size: 0x200,
        pad_header: true,
        slot_size: 2 * MIB as u32,
        version: "1.2.3".parse().unwrap_or_default(),
        ..SignOptions::default()
    };
    let runs = 7;
    let sha = best_of(runs, || Sha256::digest(&payload));
    println!("payload: 1 MiB; best of {runs} runs; release build");
    println!("bare SHA-256:                 {:8.2} ms/MiB", ms(sha));

    for kind in [KeyType::Ed25519, KeyType::EcdsaP256] {
        let key = keys::generate(kind);
        let public = [key.public_key()];
        let image = match sign_image(&payload, Some(&key), &opts) {
            Ok(i) => i,
            Err(e) => panic!("sign failed: {e}"),
        };
        let sign = best_of(runs, || sign_image(&payload, Some(&key), &opts));
        let len = image.len() as u32;
        let verify = best_of(runs, || {
            verify_image(&mut SliceFlash::new(&image), 0, len, &public).map(|v| v.hash)
        });
        let name = kind.imgtool_name();
        let digest = [7u8; 32];
        let signature = key.sign_digest(&digest).unwrap_or_default();
        let bare_sign = best_of(runs * 3, || key.sign_digest(&digest));
        let bare_verify = best_of(runs * 3, || {
            bare_signature_check(&public[0], &digest, &signature)
        });
        assert!(bare_signature_check(&public[0], &digest, &signature));
        let sign_ratio = sign.as_secs_f64() / (sha + bare_sign).as_secs_f64();
        let verify_ratio = verify.as_secs_f64() / (sha + bare_verify).as_secs_f64();
        println!(
            "{name:<11} bare sign {:.3} ms, bare verify {:.3} ms",
            ms(bare_sign),
            ms(bare_verify)
        );
        println!(
            "{name:<11} sign:   {:8.2} ms/MiB  = {sign_ratio:.2}x (SHA-256 + sign) (limit 1.50x{})",
            ms(sign),
            if sign_ratio <= 1.5 { ", OK" } else { ", OVER" }
        );
        println!(
            "{name:<11} verify: {:8.2} ms/MiB  = {verify_ratio:.2}x (SHA-256 + verify) (limit 1.10x{})",
            ms(verify),
            if verify_ratio <= 1.10 { ", OK" } else { ", OVER" }
        );
        imgtool_compare(&payload, &key, &image, sign, verify);
    }
    println!(
        "verifier RAM: {} B read buffer + SHA-256 state; no heap",
        brickless_image::verify::READ_BUFFER_SIZE
    );
}

/// One signature check with the crypto crates directly, without the image machinery.
fn bare_signature_check(key: &brickless_image::PublicKey, digest: &[u8; 32], sig: &[u8]) -> bool {
    match key {
        brickless_image::PublicKey::Ed25519(k) => {
            let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(k) else {
                return false;
            };
            let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                return false;
            };
            vk.verify_strict(digest, &sig).is_ok()
        }
        brickless_image::PublicKey::EcdsaP256(k) => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(k) else {
                return false;
            };
            let Ok(sig) = p256::ecdsa::Signature::from_der(sig) else {
                return false;
            };
            vk.verify_prehash(digest, &sig).is_ok()
        }
    }
}

/// Time `imgtool sign` / `imgtool verify` on the same input, if imgtool is installed.
fn imgtool_compare(
    payload: &[u8],
    key: &keys::SigningKey,
    image: &[u8],
    sign: Duration,
    verify: Duration,
) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let d = dir.path();
    let ok = std::fs::write(d.join("in.bin"), payload).is_ok()
        && std::fs::write(d.join("img.bin"), image).is_ok()
        && std::fs::write(d.join("k.pem"), key.to_pem()).is_ok();
    if !ok {
        return;
    }
    let time = |args: &[&str]| -> Option<Duration> {
        let t = Instant::now();
        let st = Command::new("imgtool")
            .args(args)
            .current_dir(d)
            .output()
            .ok()?;
        st.status.success().then(|| t.elapsed())
    };
    let sign_args = [
        "sign",
        "-k",
        "k.pem",
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x200000",
        "-v",
        "1.2.3",
        "in.bin",
        "out.bin",
    ];
    let (Some(their_sign), Some(their_verify)) = (
        time(&sign_args),
        time(&["verify", "-k", "k.pem", "img.bin"]),
    ) else {
        println!("  (imgtool not found: no comparison)");
        return;
    };
    println!(
        "  imgtool sign {:8.2} ms, verify {:8.2} ms (incl. Python start-up): ours is {:.0}x / {:.0}x faster",
        ms(their_sign),
        ms(their_verify),
        their_sign.as_secs_f64() / sign.as_secs_f64(),
        their_verify.as_secs_f64() / verify.as_secs_f64()
    );
}
