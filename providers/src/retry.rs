//! One place for retries: every cloud call goes through [`call`], which paces it, counts
//! it, and retries throttled / transient failures with jittered exponential backoff
//! (`backon`). The SDKs' own retries are turned off so attempts are never multiplied.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::counters::{ApiCounters, CallOutcome};
use crate::error::{CloudError, ErrorKind};
use crate::fence::WriteFence;
use crate::pacing::Pacer;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The same policy with every delay divided by `time_scale` (tests, `simulate`).
    pub fn scaled(self, time_scale: f64) -> Self {
        RetryPolicy {
            min_delay: self.min_delay.div_f64(time_scale),
            max_delay: self.max_delay.div_f64(time_scale),
            ..self
        }
    }

    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build()
    }
}

/// Run one cloud call: pace, count, and retry what a retry can fix.
pub async fn call<T, F, Fut>(
    pacer: &Pacer,
    policy: &RetryPolicy,
    counters: &ApiCounters,
    action: &'static str,
    op: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    run(pacer, policy, counters, action, None, op).await
}

/// [`call`] for a mutation: every attempt, retries included, starts only while `fence`
/// allows and is abandoned at its deadline; a retry that would start after it is not made.
pub async fn call_fenced<T, F, Fut>(
    pacer: &Pacer,
    policy: &RetryPolicy,
    counters: &ApiCounters,
    action: &'static str,
    fence: &dyn WriteFence,
    op: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    run(pacer, policy, counters, action, Some(fence), op).await
}

/// A retry after `delay` may start only if the fence will still be open then.
fn retry_fits(
    deadline: Option<std::time::Instant>,
    now: std::time::Instant,
    delay: Duration,
) -> bool {
    deadline.is_some_and(|d| now + delay < d)
}

async fn run<T, F, Fut>(
    pacer: &Pacer,
    policy: &RetryPolicy,
    counters: &ApiCounters,
    action: &'static str,
    fence: Option<&dyn WriteFence>,
    mut op: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let mut delays = policy.delays();
    loop {
        pacer.acquire().await;
        let result = match fence {
            Some(f) => crate::fence::within(f, action, op()).await,
            None => op().await,
        };
        match &result {
            Ok(_) => {
                counters.record(action, CallOutcome::Ok);
                pacer.on_success();
                return result;
            }
            Err(err) => {
                counters.record(action, CallOutcome::Error(err.kind));
                if err.kind == ErrorKind::Throttled {
                    pacer.on_throttle(err.retry_after);
                }
                if !err.kind.is_retryable() {
                    return result;
                }
                let Some(delay) = delays.next() else {
                    return result;
                };
                let delay = delay.max(err.retry_after.unwrap_or_default());
                if let Some(f) = fence
                    && !retry_fits(f.deadline(), std::time::Instant::now(), delay)
                {
                    tracing::debug!(action, error = %err, "not retrying: the write fence closes first");
                    return result;
                }
                tracing::debug!(action, error = %err, ?delay, "retrying cloud call");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::{BucketSpec, PacingConfig};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> (Pacer, RetryPolicy, ApiCounters) {
        (
            Pacer::new(
                "t",
                BucketSpec {
                    burst: 100,
                    per_second: 10_000.0,
                },
                PacingConfig::default(),
            ),
            RetryPolicy {
                max_attempts: 4,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
            ApiCounters::default(),
        )
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let (pacer, policy, counters) = fast();
        let n = AtomicU32::new(0);
        let r = call(&pacer, &policy, &counters, "X", || async {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(CloudError::new(
                    ErrorKind::Transient,
                    "InternalError",
                    "boom",
                ))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(
            counters.count("X", CallOutcome::Error(ErrorKind::Transient)),
            2
        );
        assert_eq!(counters.count("X", CallOutcome::Ok), 1);
    }

    #[tokio::test]
    async fn never_retries_permanent_or_quota() {
        let (pacer, policy, counters) = fast();
        for kind in [
            ErrorKind::Permanent,
            ErrorKind::QuotaExceeded,
            ErrorKind::NotFound,
        ] {
            let n = AtomicU32::new(0);
            let r: Result<(), _> = call(&pacer, &policy, &counters, "X", || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(CloudError::new(kind, "E", "no"))
            })
            .await;
            assert_eq!(r.unwrap_err().kind, kind);
            assert_eq!(n.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_fenced_call_never_retries_past_the_deadline() {
        struct Closes(std::time::Instant);
        impl WriteFence for Closes {
            fn deadline(&self) -> Option<std::time::Instant> {
                Some(self.0)
            }
        }
        let (pacer, mut policy, counters) = fast();
        policy.max_attempts = 100;
        policy.min_delay = Duration::from_millis(10);
        policy.max_delay = Duration::from_millis(20);
        let attempts = Mutex::new(Vec::new());
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        let fence = Closes(deadline);
        let r: Result<(), _> = call_fenced(&pacer, &policy, &counters, "X", &fence, || async {
            attempts.lock().unwrap().push(std::time::Instant::now());
            Err(CloudError::new(
                ErrorKind::Transient,
                "InternalError",
                "boom",
            ))
        })
        .await;
        // The last attempt's error, or — when a retry's sleep overran the deadline on a
        // loaded machine — the fence's refusal of the next one; never a success.
        let kind = r.unwrap_err().kind;
        assert!(
            matches!(kind, ErrorKind::Transient | ErrorKind::Fenced),
            "{kind:?}"
        );
        let returned = std::time::Instant::now();
        let attempts = attempts.into_inner().unwrap();
        assert!(attempts.len() >= 2, "it did retry while the fence allowed");
        assert!(
            attempts.iter().all(|t| *t < deadline),
            "an attempt after the deadline"
        );
        // Scheduling slack on a loaded machine; the exact rule is `retry_fits`, below.
        assert!(
            returned < deadline + Duration::from_millis(200),
            "it slept past the deadline"
        );
        let n = AtomicU32::new(0);
        let closed = Closes(std::time::Instant::now());
        let r: Result<(), _> = call_fenced(&pacer, &policy, &counters, "X", &closed, || async {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::Fenced);
        assert_eq!(
            n.load(Ordering::SeqCst),
            0,
            "nothing sent once the fence closed"
        );
    }

    #[test]
    fn a_retry_fits_only_before_the_deadline() {
        let now = std::time::Instant::now();
        let d = now + Duration::from_millis(100);
        assert!(retry_fits(Some(d), now, Duration::from_millis(99)));
        assert!(!retry_fits(Some(d), now, Duration::from_millis(100)));
        assert!(!retry_fits(Some(d), now, Duration::from_secs(5)));
        assert!(!retry_fits(None, now, Duration::ZERO));
    }

    #[test]
    fn retry_after_is_capped() {
        let e = CloudError::new(ErrorKind::Throttled, "TooManyRequests", "")
            .with_retry_after(Some(Duration::from_secs(u64::MAX)));
        assert_eq!(e.retry_after, Some(crate::error::MAX_RETRY_AFTER));
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_brakes_on_throttle() {
        let (pacer, policy, counters) = fast();
        let r: Result<(), _> = call(&pacer, &policy, &counters, "X", || async {
            Err(CloudError::new(
                ErrorKind::Throttled,
                "RequestLimitExceeded",
                "slow down",
            ))
        })
        .await;
        assert_eq!(r.unwrap_err().code, "RequestLimitExceeded");
        assert_eq!(counters.throttled(), 4);
        assert!(pacer.factor() < 1.0);
    }
}
