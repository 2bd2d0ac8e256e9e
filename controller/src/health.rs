//! Liveness: the control loop beats a [`Heartbeat`]; `/healthz` fails once the last beat
//! is older than a bound, so the kubelet restarts a controller whose loop is wedged
//! (a deadlock, a call that never returns) instead of reading a constant `ok`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` of the last beat.
    last: Arc<AtomicU64>,
    stale_after: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new(Duration::from_secs(600))
    }
}

impl Heartbeat {
    /// A heartbeat that counts as alive for `stale_after` after each beat (and after
    /// creation).
    pub fn new(stale_after: Duration) -> Self {
        Heartbeat {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            stale_after,
        }
    }

    /// The bound for a loop that waits up to `resync` between passes and makes a bounded
    /// step (one listing, one paced batch with its retries) between beats within one.
    pub fn for_resync(resync: Duration) -> Self {
        Heartbeat::new(resync * 3 + Duration::from_secs(300))
    }

    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long ago the last beat was.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }

    /// `Ok` while beating, else why not.
    pub fn check(&self) -> Result<(), String> {
        let age = self.age();
        if age > self.stale_after {
            Err(format!(
                "control loop stuck: no progress for {:.0} s (bound {:.0} s)",
                age.as_secs_f64(),
                self.stale_after.as_secs_f64()
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_heartbeat_fails_and_a_beat_revives_it() {
        let hb = Heartbeat::new(Duration::from_millis(30));
        assert!(hb.check().is_ok());
        std::thread::sleep(Duration::from_millis(60));
        let err = hb.check().unwrap_err();
        assert!(err.contains("stuck"), "{err}");
        hb.beat();
        assert!(hb.check().is_ok());
    }
}
