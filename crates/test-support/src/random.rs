/// A xorshift64 generator (shifts 13, 7, 17): small and deterministic, so a test that draws
/// from it does the same on every run and a failure can be replayed from its seed.
#[derive(Clone, Debug)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator whose state starts at `seed` (which must not be zero: zero stays zero).
    pub fn new(seed: u64) -> XorShift64 {
        XorShift64(seed)
    }

    /// The next value of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`0` when `n` is `0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// `len` pseudo-random bytes, the same for the same `seed` (any seed, zero included): a
/// firmware or payload stand-in with no runs of the erased value worth speaking of.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // Spread small seeds over the state; `| 1` keeps it non-zero.
    let mut rng = XorShift64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_repeat_for_a_seed_and_differ_between_seeds() {
        assert_eq!(pseudo_random_bytes(64, 7), pseudo_random_bytes(64, 7));
        assert_ne!(pseudo_random_bytes(64, 7), pseudo_random_bytes(64, 8));
        assert_ne!(pseudo_random_bytes(64, 0), vec![0; 64]);
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = XorShift64::new(42);
        assert!((0..1000).all(|_| rng.below(10) < 10));
        assert_eq!(rng.below(0), 0);
    }
}
