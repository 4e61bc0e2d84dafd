//! Faults a virtual link injects, reproducibly (seeded): bit errors in the bytes a device
//! receives, requests dropped or delivered twice, and disconnects (a stretch of requests
//! the device never sees, as when a cable is pulled and plugged back).

/// How often each fault strikes. All zero: a perfect link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultSpec {
    /// Probability that a received byte has one bit flipped.
    pub bit_error_rate: f64,
    /// Probability that a received request is lost.
    pub drop_rate: f64,
    /// Probability that a received request is delivered twice.
    pub duplicate_rate: f64,
    /// Every N requests, the link goes down for the next few (none when 0).
    pub disconnect_every: u32,
    /// Seed of the fault sequence (same seed, same faults).
    pub seed: u64,
}

impl FaultSpec {
    /// Whether any fault is enabled.
    pub fn any(&self) -> bool {
        self.bit_error_rate > 0.0
            || self.drop_rate > 0.0
            || self.duplicate_rate > 0.0
            || self.disconnect_every > 0
    }
}

/// What happens to one received request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It reaches the device once.
    Once,
    /// It never arrives.
    Dropped,
    /// It arrives twice.
    Twice,
}

/// Requests a disconnect swallows.
const DISCONNECT_LEN: u32 = 3;

/// A fault source following a [`FaultSpec`].
#[derive(Clone, Debug)]
pub struct Faults {
    spec: FaultSpec,
    state: u64,
    requests: u64,
    down_for: u32,
}

impl Faults {
    /// Faults as `spec` says.
    pub fn new(spec: FaultSpec) -> Self {
        Faults {
            spec,
            // xorshift needs a non-zero state.
            state: spec.seed ^ 0x9E37_79B9_7F4A_7C15,
            requests: 0,
            down_for: 0,
        }
    }

    /// A uniform draw in [0, 1). Hand-written: a seeded, dependency-free generator is all
    /// fault injection needs.
    fn draw(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Flips bits in received bytes at the bit error rate.
    pub fn corrupt(&mut self, bytes: &mut [u8]) {
        if self.spec.bit_error_rate <= 0.0 {
            return;
        }
        for b in bytes {
            if self.draw() < self.spec.bit_error_rate {
                let bit = (self.draw() * 8.0) as u32 % 8;
                *b ^= 1 << bit;
            }
        }
    }

    /// What happens to the next received request.
    pub fn deliver(&mut self) -> Delivery {
        self.requests += 1;
        if self.down_for > 0 {
            self.down_for -= 1;
            return Delivery::Dropped;
        }
        let every = u64::from(self.spec.disconnect_every);
        if every > 0 && self.requests % every == 0 {
            self.down_for = DISCONNECT_LEN - 1;
            return Delivery::Dropped;
        }
        if self.draw() < self.spec.drop_rate {
            return Delivery::Dropped;
        }
        if self.draw() < self.spec.duplicate_rate {
            return Delivery::Twice;
        }
        Delivery::Once
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_roughly_what_was_asked_and_the_seed_repeats_them() {
        let spec = FaultSpec {
            bit_error_rate: 0.01,
            drop_rate: 0.1,
            duplicate_rate: 0.05,
            disconnect_every: 0,
            seed: 5,
        };
        let mut a = Faults::new(spec);
        let mut bytes = vec![0u8; 100_000];
        a.corrupt(&mut bytes);
        let flipped = bytes.iter().filter(|b| **b != 0).count();
        assert!((800..1200).contains(&flipped), "{flipped}");
        let outcomes: Vec<Delivery> = (0..10_000).map(|_| a.deliver()).collect();
        let dropped = outcomes.iter().filter(|d| **d == Delivery::Dropped).count();
        assert!((800..1200).contains(&dropped), "{dropped}");
        let mut b = Faults::new(spec);
        let mut again = vec![0u8; 100_000];
        b.corrupt(&mut again);
        assert_eq!(bytes, again);
    }

    #[test]
    fn a_disconnect_swallows_a_run_of_requests() {
        let mut f = Faults::new(FaultSpec {
            disconnect_every: 10,
            ..FaultSpec::default()
        });
        let d: Vec<Delivery> = (0..20).map(|_| f.deliver()).collect();
        assert_eq!(&d[9..12], &[Delivery::Dropped; 3]);
        assert!(d[..9].iter().all(|x| *x == Delivery::Once));
        assert_eq!(d[12], Delivery::Once);
    }
}
