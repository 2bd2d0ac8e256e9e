//! When passes run: at once on a node change or on gaining the lease, again after a
//! failure with exponential backoff (failed changes are retried, not left for the next
//! resync), and every `resync` as a drift check. Only the leader runs passes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{PassReport, Reconciler};
use crate::cluster::SharedSnapshot;

#[derive(Debug, Clone, Copy)]
pub struct DriveTiming {
    /// Drift check interval when converged.
    pub resync: Duration,
    /// First retry delay after a failed or unfinished pass; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for DriveTiming {
    fn default() -> Self {
        DriveTiming {
            resync: Duration::from_secs(60),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }
}

impl DriveTiming {
    /// Everything `factor` times faster (`simulate --time-scale`).
    pub fn scaled(self, factor: f64) -> DriveTiming {
        let s = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / factor);
        DriveTiming {
            resync: s(self.resync),
            retry_min: s(self.retry_min),
            retry_max: s(self.retry_max),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exp = 2f64.powi(failures.saturating_sub(1).min(16) as i32);
        Duration::from_secs_f64(
            (self.retry_min.as_secs_f64() * exp).min(self.retry_max.as_secs_f64()),
        )
    }
}

/// The outcome of the latest pass, for observers (`simulate`, tests).
#[derive(Debug, Clone)]
pub struct PassSummary {
    /// Passes run so far.
    pub passes: u64,
    /// The node snapshot the pass worked from.
    pub snapshot: Option<SharedSnapshot>,
    pub report: Option<Arc<PassReport>>,
    pub error: Option<String>,
}

/// Run passes until `shutdown`. A pass in flight when shutdown comes is cancelled between
/// calls (the provider's in-flight request is dropped, never half-applied by us).
pub async fn drive(
    reconciler: &mut Reconciler,
    mut snapshots: watch::Receiver<SharedSnapshot>,
    mut leader: watch::Receiver<bool>,
    timing: DriveTiming,
    shutdown: CancellationToken,
    summaries: watch::Sender<PassSummary>,
) {
    let mut due = Instant::now();
    let mut failures: u32 = 0;
    let mut passes: u64 = 0;
    let mut was_leader = false;
    let mut warm_due = Instant::now();
    loop {
        reconciler.beat();
        let leading = *leader.borrow_and_update();
        if !leading {
            if was_leader {
                tracing::info!("lost leadership; standing by");
                was_leader = false;
            }
            // Keep the caches warm (reads only) so a takeover writes at once.
            if Instant::now() >= warm_due {
                let snapshot = snapshots.borrow().clone();
                if snapshot.listed && !snapshot.nodes.is_empty() {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = reconciler.warm(&snapshot) => if let Err(e) = r {
                            tracing::debug!(error = %e, "standby warm-up failed");
                        },
                    }
                }
                warm_due = Instant::now() + timing.resync;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = leader.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(warm_due) => {}
            }
            continue;
        }
        if !was_leader {
            tracing::info!("leading; reconciling");
            was_leader = true;
            due = Instant::now();
            reconciler.leadership_gained().await;
        }
        if !snapshots.borrow().listed {
            // Never plan from the placeholder: wait for the first real list.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = snapshots.changed() => if r.is_err() { return },
                r = leader.changed() => if r.is_err() { return },
            }
            continue;
        }
        if Instant::now() < due {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = snapshots.changed() => {
                    if r.is_err() { return }
                    due = Instant::now();
                }
                r = leader.changed() => { if r.is_err() { return } continue }
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        if !*leader.borrow() {
            continue;
        }
        let snapshot = snapshots.borrow_and_update().clone();
        // Losing the lease cancels the pass in flight (between calls; the fence already
        // stops any call that would outlive the lease).
        let mut lost = leader.clone();
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            Ok(_) = lost.wait_for(|l| !*l) => {
                tracing::warn!("lost leadership during a pass; abandoning it");
                continue;
            }
            r = reconciler.pass(&snapshot) => r,
        };
        passes += 1;
        let summary = match result {
            Ok(report) => {
                if report.converged() {
                    failures = 0;
                    due = Instant::now() + timing.resync;
                } else {
                    failures += 1;
                    due = Instant::now() + timing.backoff(failures);
                }
                PassSummary {
                    passes,
                    snapshot: Some(snapshot.clone()),
                    report: Some(Arc::new(report)),
                    error: None,
                }
            }
            Err(e) => {
                failures += 1;
                due = Instant::now() + timing.backoff(failures);
                PassSummary {
                    passes,
                    snapshot: Some(snapshot.clone()),
                    report: None,
                    error: Some(e.to_string()),
                }
            }
        };
        summaries.send_replace(summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let t = DriveTiming::default();
        assert_eq!(t.backoff(1), Duration::from_secs(1));
        assert_eq!(t.backoff(2), Duration::from_secs(2));
        assert_eq!(t.backoff(4), Duration::from_secs(8));
        assert_eq!(t.backoff(30), Duration::from_secs(30));
        let fast = t.scaled(10.0);
        assert_eq!(fast.resync, Duration::from_secs(6));
        assert_eq!(fast.backoff(1), Duration::from_millis(100));
    }
}
