//! A token bucket on time given as an argument: the per-connection frame rate and the per-IP
//! login rate.

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait [`Bucket::take`] reports, so that a tiny refill rate cannot make a
/// `Duration` overflow.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// A token bucket: `burst` tokens at once, refilled at `per_sec`. `per_sec <= 0` disables it.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(per_sec: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn enabled(&self) -> bool {
        // Written so that NaN disables it too.
        self.per_sec > 0.0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
    }

    /// Takes a token, or tells how long until one is there (at least 1 ms, so that a caller
    /// that sleeps that long never spins).
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        match self.wait(now) {
            Some(wait) => Err(wait),
            None => {
                if self.enabled() {
                    self.tokens -= 1.0;
                }
                Ok(())
            }
        }
    }

    /// How long until a token is there, if none is; takes nothing.
    pub(crate) fn wait(&mut self, now: Instant) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            return None;
        }
        let secs = (1.0 - self.tokens) / self.per_sec;
        let wait = Duration::try_from_secs_f64(secs).unwrap_or(MAX_WAIT);
        Some(wait.clamp(Duration::from_millis(1), MAX_WAIT))
    }

    /// Whether the bucket has refilled completely, so that forgetting it changes nothing.
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        self.refill(now);
        self.tokens >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_burst_then_tells_the_wait_and_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 2.0, t0);
        assert!(b.take(t0).is_ok() && b.take(t0).is_ok());
        assert_eq!(b.take(t0), Err(Duration::from_millis(100)));
        assert_eq!(
            b.wait(t0 + Duration::from_millis(40)),
            Some(Duration::from_millis(60))
        );
        assert!(!b.is_full(t0));
        assert!(b.take(t0 + Duration::from_millis(150)).is_ok());
        assert!(b.is_full(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn disabled_or_tiny_rates_never_overflow() {
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN] {
            let mut b = Bucket::new(rate, 1.0, t0);
            assert!((0..10).all(|_| b.take(t0).is_ok()), "{rate} disables it");
        }
        let mut slow = Bucket::new(1e-300, 1.0, t0);
        assert!(slow.take(t0).is_ok());
        assert_eq!(slow.take(t0), Err(MAX_WAIT));
    }
}
