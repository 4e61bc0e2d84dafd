//! Virtual time: devices charge modelled flash and protocol work to a [`SimClock`], and the
//! host waits through [`SimDelay`] on the same clock, so a 35-second erase takes no real time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use embedded_hal::delay::DelayNs;

/// A virtual clock in nanoseconds, shared by a simulated device and the host's delay.
#[derive(Debug, Clone, Default)]
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    /// A clock at 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Current time in ns.
    pub fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    /// Moves time forward.
    pub fn advance_ns(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
    /// Moves time forward to `t` (no-op when already past).
    pub fn advance_to(&self, t: u64) {
        self.0.fetch_max(t, Ordering::SeqCst);
    }
    /// A delay that advances this clock instead of sleeping.
    pub fn delay(&self) -> SimDelay {
        SimDelay(self.clone())
    }
}

/// `DelayNs` on a [`SimClock`].
#[derive(Debug, Clone)]
pub struct SimDelay(pub SimClock);

impl DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.0.advance_ns(u64::from(ns));
    }
}
