//! Arbitrary bytes through the SMP serial console receiver (`brickless_smp::serial::Decoder`):
//! nothing may panic, and every packet it completes must be whole and carry a valid CRC.
//!
//! Random bytes rarely form a frame, so one input in two is instead a packet of the input's
//! bytes, framed and then damaged at a few input-chosen places: the receiver must never hand
//! back a packet of the original length with other contents.
#![no_main]

use brickless_smp::serial::{crc16, encode, encoded_len, Decoder};
use libfuzzer_sys::fuzz_target;

const N: usize = 4096;

/// Feeds `bytes`; checks each completed packet; returns them.
fn feed(d: &mut Decoder<N>, bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    for &b in bytes {
        match d.push(b) {
            Some(Ok(len)) => {
                let p = d.packet();
                assert_eq!(p.len(), len, "packet() disagrees with the length push gave");
                assert!(
                    (1..=N).contains(&len),
                    "packet of {len} bytes from a Decoder<{N}>"
                );
                let crc = d.frame_crc().expect("a completed packet has its CRC");
                assert_eq!(crc16(p), crc, "packet completed with a wrong CRC");
                // CRC-16/XMODEM over BODY || CRC (big-endian) is zero.
                let mut whole = p.to_vec();
                whole.extend_from_slice(&crc.to_be_bytes());
                assert_eq!(crc16(&whole), 0, "residue check fails");
                packets.push(p.to_vec());
            }
            Some(Err(_)) | None => {
                assert!(d.packet().is_empty(), "packet() outside a completion");
                assert_eq!(d.frame_crc(), None, "frame_crc() outside a completion");
            }
        }
    }
    packets
}

/// The packet framed again decodes to itself in a fresh receiver.
fn round_trip(p: &[u8]) {
    let mut wire = vec![0u8; encoded_len(p.len())];
    let n = encode(p, &mut wire).expect("a received packet can be sent");
    assert_eq!(n, wire.len(), "encoded_len is exact");
    let mut d = Decoder::<N>::new();
    assert_eq!(
        feed(&mut d, &wire),
        [p.to_vec()],
        "re-framed packet does not round-trip"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let mut d = Decoder::<N>::new();
        for p in feed(&mut d, rest) {
            round_trip(&p);
        }
        return;
    }
    // Framed body with damage: up to 3 (position, xor) pairs, then the body.
    let damage = usize::from(mode >> 1) % 4;
    let Some((edits, body)) = rest.split_at_checked(damage * 3) else {
        return;
    };
    if body.is_empty() || body.len() > N {
        return;
    }
    let mut wire = vec![0u8; encoded_len(body.len())];
    let n = encode(body, &mut wire).expect("encode");
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % n;
        wire[at] ^= e[2];
    }
    let mut d = Decoder::<N>::new();
    for p in feed(&mut d, &wire) {
        // One damaged base64 character changes at most 6 bits of the packet, which CRC-16
        // always catches; several may by chance keep a valid CRC.
        if damage == 1 && p.len() == body.len() {
            assert_eq!(p, body, "damaged frame decoded to a wrong packet");
        }
        round_trip(&p);
    }
    // Whatever came before, a clean frame after it is received.
    let mut clean = vec![0u8; n];
    encode(body, &mut clean).expect("encode");
    let got = feed(&mut d, &clean);
    assert_eq!(
        got.last().map(Vec::as_slice),
        Some(body),
        "no resync on a clean frame"
    );
});
