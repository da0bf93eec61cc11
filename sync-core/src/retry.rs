//! When to try a failed group again.

use std::fmt::Debug;
use std::time::Duration;

use rand::Rng;

/// Decides the delay before the next attempt of a group that failed `attempts` times in a row
/// (1 after the first failure). The remote's `Retry-After`, when given, is a floor the worker
/// applies on top.
pub trait RetryPolicy: Send + Sync + Debug + 'static {
    /// The delay before attempt number `attempts + 1`.
    fn delay(&self, attempts: u32) -> Duration;
}

/// Exponential backoff with jitter: `base × 2^(attempts-1)`, capped at `max`, then scaled by a
/// random factor in `[1 - jitter, 1]` so that groups that failed together do not retry together.
#[derive(Debug, Clone)]
pub struct ExponentialBackoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The fraction of the delay that is random, in `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for ExponentialBackoff {
    /// 1 s, 2 s, 4 s … up to 1 hour, with 20 % jitter.
    fn default() -> Self {
        ExponentialBackoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl ExponentialBackoff {
    /// The delay before jitter.
    pub fn nominal(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        self.base.saturating_mul(1_u32 << exponent).min(self.max)
    }
}

impl RetryPolicy for ExponentialBackoff {
    fn delay(&self, attempts: u32) -> Duration {
        let nominal = self.nominal(attempts);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return nominal;
        }
        let factor = 1.0 - rand::rng().random_range(0.0..=jitter);
        nominal.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let policy = ExponentialBackoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.0,
        };
        let delays: Vec<u128> = (1..=6).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = ExponentialBackoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
            jitter: 0.5,
        };
        for _ in 0..1000 {
            let d = policy.delay(1);
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }
}
