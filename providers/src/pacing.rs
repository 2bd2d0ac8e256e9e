//! Client-side pacing: one token bucket per cloud API class, sized from the cloud's
//! published limits, plus an adaptive (AIMD) brake that a throttle response engages.
//!
//! The base bucket is a `governor` limiter: it lets us spend the burst and then refill at
//! the published rate, which is exactly the floor a cold start cannot beat. The cloud's
//! bucket is shared with every other client in the account, so when the cloud throttles
//! us anyway we halve our rate (multiplicative decrease), honour any `Retry-After`, and
//! climb back a little with every success (additive increase).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// A published token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSpec {
    pub burst: u32,
    pub per_second: f64,
}

/// EC2 mutating actions (CreateRoute, ReplaceRoute, DeleteRoute, ModifyNetworkInterfaceAttribute).
pub const EC2_MUTATING: BucketSpec = BucketSpec {
    burst: 50,
    per_second: 5.0,
};
/// EC2 non-mutating actions (DescribeRouteTables, DescribeNetworkInterfaces, filtered DescribeInstances).
pub const EC2_NON_MUTATING: BucketSpec = BucketSpec {
    burst: 100,
    per_second: 20.0,
};
/// EC2 unfiltered DescribeInstances.
pub const EC2_DESCRIBE_INSTANCES: BucketSpec = BucketSpec {
    burst: 50,
    per_second: 10.0,
};
/// ARM writes per subscription and region.
pub const ARM_WRITES: BucketSpec = BucketSpec {
    burst: 200,
    per_second: 10.0,
};
/// ARM reads per subscription and region.
pub const ARM_READS: BucketSpec = BucketSpec {
    burst: 250,
    per_second: 25.0,
};
/// ARM deletes per subscription and region.
pub const ARM_DELETES: BucketSpec = BucketSpec {
    burst: 200,
    per_second: 10.0,
};

/// Share of the burst left unspent. Our bucket counts time from when a call is let out,
/// the cloud's from when it arrives; while the cloud's bucket sits full (at the start,
/// after a quiet spell) the refill our bucket credits during the first calls' network
/// and connection-setup delay is lost on the cloud's side, so a client spending the whole
/// published burst runs a few calls ahead of the cloud and is throttled. Leaving 10 % of
/// the burst covers a delay of that many refill intervals (EC2 mutating: 5 calls = 1 s)
/// and costs 5 calls' worth of time once per burst.
pub const BURST_HEADROOM: f64 = 0.1;

/// How much of the account's budget this controller may use, and how fast time runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingConfig {
    /// Share of the account's bucket (0 < share ≤ 1): other tools spend from it too.
    pub share: f64,
    /// Tests and `simulate` speed the clouds up by this factor; 1 in production.
    pub time_scale: f64,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            share: 1.0,
            time_scale: 1.0,
        }
    }
}

impl PacingConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.share > 0.0 && self.share <= 1.0) {
            return Err(format!(
                "pacing share must be in (0, 1], got {}",
                self.share
            ));
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!("time scale must be > 0, got {}", self.time_scale));
        }
        Ok(())
    }

    /// Cloud time → wall time (the clouds run `time_scale` times faster in tests).
    pub fn wall(&self, cloud: std::time::Duration) -> std::time::Duration {
        cloud.div_f64(self.time_scale)
    }

    /// The bucket this controller actually uses for `spec`: its share of the refill, and
    /// its share of the burst less [`BURST_HEADROOM`].
    pub fn effective(&self, spec: BucketSpec) -> BucketSpec {
        BucketSpec {
            burst: ((spec.burst as f64 * self.share * (1.0 - BURST_HEADROOM)).floor() as u32)
                .max(1),
            per_second: spec.per_second * self.share * self.time_scale,
        }
    }
}

/// Lowest fraction of the nominal rate the adaptive brake goes down to.
const MIN_FACTOR: f64 = 1.0 / 32.0;
/// Fraction of the nominal rate regained per successful call.
const RECOVERY_STEP: f64 = 1.0 / 16.0;

#[derive(Debug)]
struct Brake {
    /// Current share of the nominal rate; 1.0 means "governor only".
    factor: f64,
    /// When the braked schedule allows the next call.
    next_slot: Instant,
    /// Nothing goes out before this (the cloud's Retry-After).
    paused_until: Instant,
}

/// The bucket runs on the OS monotonic clock (`std::time::Instant`, the clock tokio's
/// timers and the mocks use) rather than governor's default TSC-calibrated clock, so the
/// pacer, its sleeps and the test clouds all measure the same time.
type Limiter =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// One API class's pacer. Cheap to share behind an `Arc`.
pub struct Pacer {
    name: &'static str,
    spec: BucketSpec,
    limiter: Limiter,
    brake: Mutex<Brake>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .field("factor", &self.factor())
            .finish()
    }
}

impl Pacer {
    pub fn new(name: &'static str, published: BucketSpec, config: PacingConfig) -> Self {
        let spec = config.effective(published);
        let period = Duration::from_secs_f64(1.0 / spec.per_second);
        let burst = NonZeroU32::new(spec.burst).expect("burst is at least 1");
        let quota = Quota::with_period(period)
            .expect("refill period is non-zero")
            .allow_burst(burst);
        let now = Instant::now();
        Pacer {
            name,
            spec,
            limiter: RateLimiter::direct_with_clock(quota, MonotonicClock),
            brake: Mutex::new(Brake {
                factor: 1.0,
                next_slot: now,
                paused_until: now,
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The bucket in force (after share and time scale).
    pub fn spec(&self) -> BucketSpec {
        self.spec
    }

    /// Current share of the nominal rate (1.0 = unbraked).
    pub fn factor(&self) -> f64 {
        self.brake.lock().expect("brake lock").factor
    }

    /// Wait until one call of this class may go out.
    pub async fn acquire(&self) {
        loop {
            let wait_until = {
                let brake = self.brake.lock().expect("brake lock");
                brake.paused_until
            };
            if wait_until > Instant::now() {
                tokio::time::sleep_until(wait_until).await;
                continue;
            }
            break;
        }
        self.limiter.until_ready().await;
        let slot = {
            let mut brake = self.brake.lock().expect("brake lock");
            if brake.factor >= 1.0 {
                return;
            }
            let interval = Duration::from_secs_f64(1.0 / (self.spec.per_second * brake.factor));
            let slot = brake.next_slot.max(Instant::now());
            brake.next_slot = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// The cloud throttled a call of this class: halve the rate and honour `retry_after`.
    pub fn on_throttle(&self, retry_after: Option<Duration>) {
        let mut brake = self.brake.lock().expect("brake lock");
        let now = Instant::now();
        if brake.factor >= 1.0 {
            brake.next_slot = now;
        }
        brake.factor = (brake.factor / 2.0).max(MIN_FACTOR);
        // The cloud's bucket is empty: wait at least one refill interval at the braked rate.
        let refill = Duration::from_secs_f64(1.0 / (self.spec.per_second * brake.factor));
        let pause = retry_after.unwrap_or(refill).max(refill);
        brake.paused_until = brake.paused_until.max(now + pause);
        tracing::debug!(
            pacer = self.name,
            factor = brake.factor,
            ?pause,
            "throttled: braking"
        );
    }

    /// A call of this class succeeded: recover a step of the rate.
    pub fn on_success(&self) {
        let mut brake = self.brake.lock().expect("brake lock");
        if brake.factor < 1.0 {
            brake.factor = (brake.factor + RECOVERY_STEP).min(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_bucket_scales_share_and_time() {
        let cfg = PacingConfig {
            share: 0.5,
            time_scale: 20.0,
        };
        let b = cfg.effective(EC2_MUTATING);
        assert_eq!(b.burst, 22, "half of 50, less the 10 % headroom");
        assert!((b.per_second - 50.0).abs() < 1e-9);
        assert!(
            PacingConfig {
                share: 0.0,
                time_scale: 1.0
            }
            .validate()
            .is_err()
        );
        assert!(
            PacingConfig {
                share: 1.0,
                time_scale: 0.0
            }
            .validate()
            .is_err()
        );
    }

    #[tokio::test]
    async fn burst_then_refill_rate() {
        // 10 burst, 200/s: 30 calls need ≥ (30-10)/200 = 100 ms.
        let pacer = Pacer::new(
            "t",
            BucketSpec {
                burst: 10,
                per_second: 200.0,
            },
            PacingConfig::default(),
        );
        let start = std::time::Instant::now();
        for _ in 0..10 {
            pacer.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "burst must not wait"
        );
        for _ in 0..20 {
            pacer.acquire().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(90));
    }

    #[tokio::test]
    async fn throttle_halves_and_success_recovers() {
        let pacer = Pacer::new(
            "t",
            BucketSpec {
                burst: 5,
                per_second: 1000.0,
            },
            PacingConfig::default(),
        );
        pacer.on_throttle(None);
        assert!((pacer.factor() - 0.5).abs() < 1e-9);
        pacer.on_throttle(None);
        assert!((pacer.factor() - 0.25).abs() < 1e-9);
        for _ in 0..40 {
            pacer.on_success();
        }
        assert!((pacer.factor() - 1.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn retry_after_pauses_every_caller() {
        let pacer = Pacer::new(
            "t",
            BucketSpec {
                burst: 5,
                per_second: 1000.0,
            },
            PacingConfig::default(),
        );
        pacer.on_throttle(Some(Duration::from_millis(80)));
        let start = std::time::Instant::now();
        pacer.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(75));
    }
}
