//! What the reconciler tells the outside world: progress (for liveness) and each pass's
//! outcome (for metrics and readiness). The core knows only this trait; the Prometheus
//! and health implementation lives in `crate::metrics`.

use std::time::Duration;

use super::{PassError, PassReport};

pub trait PassObserver: Send + Sync {
    /// The control loop made progress (a pass step, a batch, a wake-up).
    fn progress(&self) {}

    /// A pass ended: its verified report, or why it could not plan.
    fn pass_ended(&self, took: Duration, result: &Result<PassReport, PassError>) {
        let _ = (took, result);
    }
}
