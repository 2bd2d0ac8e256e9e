//! Leader election on a `coordination.k8s.io/v1` Lease, client-go style, with a fence.
//!
//! The decision is pure ([`decide`]): given what we last saw of the Lease and when we
//! first saw that version, acquire, renew, or wait. The edge ([`LeaseElector`]) does the
//! get/create/update with the resourceVersion we read (the API server answers 409 to a
//! stale one, so two candidates can never both win the same round).
//!
//! Fencing: [`LeaseFence::may_mutate`] is true only while we hold the Lease with at
//! least the call's timeout left before the *renew deadline* of our last successful write
//! — earlier than the moment another replica may take over (last write + lease duration),
//! so a mutation we start always ends before anyone else can start one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use cni_cloud_providers::WriteFence;

use crate::cluster::Fence;

/// Timing, client-go's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a holder's claim lasts without renewal (others wait this long).
    pub duration: Duration,
    /// The holder steps down if it could not renew for this long.
    pub renew_deadline: Duration,
    /// Pause between attempts (renewals and standby polls).
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseTiming {
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("lease retry period must be > 0".into());
        }
        if self.renew_deadline <= self.retry_period {
            return Err(format!(
                "lease renew deadline ({:?}) must be longer than the retry period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.duration <= self.renew_deadline {
            return Err(format!(
                "lease duration ({:?}) must be longer than the renew deadline ({:?})",
                self.duration, self.renew_deadline
            ));
        }
        Ok(())
    }

    /// Scale every period down by `factor` (simulate's time scale).
    pub fn scaled(self, factor: f64) -> LeaseTiming {
        let f = factor.max(1e-3);
        LeaseTiming {
            duration: self.duration.div_f64(f),
            renew_deadline: self.renew_deadline.div_f64(f),
            retry_period: self.retry_period.div_f64(f),
        }
    }
}

/// What we know of the Lease from the last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub holder: Option<String>,
    pub resource_version: String,
    /// The holder's advertised duration (`leaseDurationSeconds`), if any.
    pub duration: Option<Duration>,
    /// When (our monotonic clock) we first saw this resourceVersion: another holder's
    /// claim expires `duration` after that, however skewed its wall clock is.
    pub first_seen: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it with us as holder.
    Create,
    /// Write ourselves as holder (renewal if we hold it, takeover otherwise).
    Claim { takeover: bool },
    /// Someone else holds a live claim.
    Wait,
}

/// The pure election rule.
pub fn decide(
    me: &str,
    observed: Option<&Observed>,
    now: Instant,
    timing: &LeaseTiming,
) -> Decision {
    let Some(o) = observed else {
        return Decision::Create;
    };
    match o.holder.as_deref() {
        Some(h) if h == me => Decision::Claim { takeover: false },
        None => Decision::Claim { takeover: true },
        Some(_) => {
            let duration = o.duration.unwrap_or(timing.duration);
            if now.duration_since(o.first_seen) >= duration {
                Decision::Claim { takeover: true }
            } else {
                Decision::Wait
            }
        }
    }
}

/// Shared leadership state: the fence reads it, the elector writes it.
#[derive(Debug, Default)]
struct Held {
    /// Start of our last successful write; `None` when not leading.
    renewed_at: Option<Instant>,
}

/// The [`Fence`] backed by the Lease.
#[derive(Debug, Clone)]
pub struct LeaseFence {
    held: Arc<Mutex<Held>>,
    timing: LeaseTiming,
}

impl LeaseFence {
    fn valid_until(&self) -> Option<Instant> {
        let held = self.held.lock().expect("lease state");
        held.renewed_at.map(|t| t + self.timing.renew_deadline)
    }

    pub fn is_leader(&self) -> bool {
        self.valid_until()
            .is_some_and(|until| Instant::now() < until)
    }
}

/// The write deadline is the renew deadline of our last successful renewal, measured from
/// when that renewal was *sent*: no other replica can take over before it has watched the
/// Lease unchanged for the whole lease duration, which started no earlier than our write
/// landed. So every mutation is over `duration − renew_deadline` (5 s by default) before
/// anyone else may start one — that margin absorbs clock-rate drift and the time the cloud
/// takes to apply a request sent just before the deadline. A paused process resumes past
/// its deadline and sends nothing; see `cni_cloud_providers::fence` for the one window no
/// client-side fence closes.
impl WriteFence for LeaseFence {
    fn deadline(&self) -> Option<Instant> {
        self.valid_until()
    }
}

impl Fence for LeaseFence {}

/// Runs the election loop against the API server.
pub struct LeaseElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    held: Arc<Mutex<Held>>,
    leader_tx: watch::Sender<bool>,
    observed: Option<Observed>,
}

impl LeaseElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: LeaseTiming) -> Self {
        LeaseElector {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            held: Arc::default(),
            leader_tx: watch::channel(false).0,
            observed: None,
        }
    }

    pub fn fence(&self) -> LeaseFence {
        LeaseFence {
            held: self.held.clone(),
            timing: self.timing,
        }
    }

    /// Leadership changes (true = leading). Losing the lease flips it at once.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader_tx.subscribe()
    }

    fn set_leader(&self, renewed_at: Option<Instant>) {
        self.held.lock().expect("lease state").renewed_at = renewed_at;
        let leading = renewed_at.is_some();
        self.leader_tx.send_if_modified(|v| {
            let changed = *v != leading;
            *v = leading;
            changed
        });
    }

    fn observe(&mut self, lease: &Lease) {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let spec = lease.spec.clone().unwrap_or_default();
        let first_seen = match &self.observed {
            Some(o) if o.resource_version == rv => o.first_seen,
            _ => Instant::now(),
        };
        self.observed = Some(Observed {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            resource_version: rv,
            duration: spec
                .lease_duration_seconds
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s as u64)),
            first_seen,
        });
    }

    fn spec_for(&self, previous: Option<&LeaseSpec>, takeover: bool) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            // Whole seconds on the wire; round up so others never wait less than we assume.
            lease_duration_seconds: Some(self.timing.duration.as_secs_f64().ceil().max(1.0) as i32),
            acquire_time: if takeover || previous.is_none() {
                Some(now.clone())
            } else {
                previous.and_then(|p| p.acquire_time.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if takeover {
                transitions + 1
            } else {
                transitions
            }),
            ..Default::default()
        }
    }

    /// One round: read, decide, write. Returns whether we lead afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let started = Instant::now();
        let current = self.api.get_opt(&self.name).await?;
        if let Some(lease) = &current {
            self.observe(lease);
        } else {
            self.observed = None;
        }
        match decide(
            &self.identity,
            self.observed.as_ref(),
            Instant::now(),
            &self.timing,
        ) {
            Decision::Wait => Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec_for(None, true)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(l) => {
                        self.observe(&l);
                        self.set_leader(Some(started));
                        Ok(true)
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Decision::Claim { takeover } => {
                let mut lease = current.expect("claim implies a lease");
                lease.spec = Some(self.spec_for(lease.spec.as_ref(), takeover));
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(l) => {
                        self.observe(&l);
                        if takeover {
                            tracing::info!(lease = %self.name, identity = %self.identity, "acquired leadership");
                        }
                        self.set_leader(Some(started));
                        Ok(true)
                    }
                    // Someone else wrote first: we lost this round.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        if !takeover {
                            tracing::warn!(lease = %self.name, "lost the lease to a concurrent writer");
                            self.set_leader(None);
                        }
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Elect until `shutdown`, then release the Lease if we hold it so a standby takes
    /// over at once.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let round = tokio::time::timeout(
                self.timing.retry_period.max(Duration::from_millis(50)) * 2,
                self.try_acquire_or_renew(),
            );
            let result = tokio::select! {
                r = round => r,
                _ = shutdown.cancelled() => break,
            };
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(lease = %self.name, error = %e, "lease round failed"),
                Err(_) => tracing::warn!(lease = %self.name, "lease round timed out"),
            }
            // Renew deadline passed without a successful write: step down now.
            if !self.fence().is_leader() && *self.leader_tx.borrow() {
                tracing::warn!(lease = %self.name, "renew deadline passed; stepping down");
                self.set_leader(None);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.next_round_in()) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.release().await;
    }

    /// A retry period, or less when another holder's claim lapses sooner: a standby then
    /// claims right at expiry instead of up to a retry period later.
    fn next_round_in(&self) -> Duration {
        let retry = self.timing.retry_period;
        match &self.observed {
            Some(o) if o.holder.as_deref().is_some_and(|h| h != self.identity) => {
                let lapses = o.first_seen + o.duration.unwrap_or(self.timing.duration);
                retry.min(
                    lapses.saturating_duration_since(Instant::now()) + Duration::from_millis(5),
                )
            }
            _ => retry,
        }
    }

    /// Give the Lease up: clear the holder (client-go's ReleaseOnCancel).
    pub async fn release(&mut self) {
        let was_leader = self.fence().is_leader();
        self.set_leader(None);
        if !was_leader {
            return;
        }
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !ours {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the lease"),
            Err(e) => tracing::warn!(lease = %self.name, error = %e, "could not release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(holder: Option<&str>, age: Duration) -> (Observed, Instant) {
        let now = Instant::now() + Duration::from_secs(100);
        (
            Observed {
                holder: holder.map(str::to_owned),
                resource_version: "7".into(),
                duration: Some(Duration::from_secs(15)),
                first_seen: now - age,
            },
            now,
        )
    }

    #[test]
    fn live_foreign_claim_waits_and_expired_one_is_taken_over() {
        let t = LeaseTiming::default();
        let (o, now) = observed(Some("b"), Duration::from_secs(14));
        assert_eq!(decide("a", Some(&o), now, &t), Decision::Wait);
        let (o, now) = observed(Some("b"), Duration::from_secs(15));
        assert_eq!(
            decide("a", Some(&o), now, &t),
            Decision::Claim { takeover: true }
        );
    }

    #[test]
    fn released_or_missing_lease_is_claimed_at_once_and_own_is_renewed() {
        let t = LeaseTiming::default();
        let (o, now) = observed(None, Duration::ZERO);
        assert_eq!(
            decide("a", Some(&o), now, &t),
            Decision::Claim { takeover: true }
        );
        assert_eq!(decide("a", None, now, &t), Decision::Create);
        let (o, now) = observed(Some("a"), Duration::ZERO);
        assert_eq!(
            decide("a", Some(&o), now, &t),
            Decision::Claim { takeover: false }
        );
    }

    #[test]
    fn fence_needs_the_call_timeout_before_the_renew_deadline() {
        let timing = LeaseTiming::default();
        let fence = LeaseFence {
            held: Arc::default(),
            timing,
        };
        assert!(!fence.may_mutate(Duration::ZERO));
        fence.held.lock().unwrap().renewed_at = Some(Instant::now());
        assert!(fence.may_mutate(Duration::from_secs(5)));
        assert!(!fence.may_mutate(Duration::from_secs(11)));
        fence.held.lock().unwrap().renewed_at = Some(Instant::now() - Duration::from_secs(9));
        assert!(!fence.may_mutate(Duration::from_secs(2)));
        assert!(fence.may_mutate(Duration::from_millis(500)));
    }

    #[test]
    fn timing_validation_matches_client_go() {
        assert!(LeaseTiming::default().validate().is_ok());
        let bad = LeaseTiming {
            renew_deadline: Duration::from_secs(20),
            ..LeaseTiming::default()
        };
        assert!(bad.validate().is_err());
        assert!(LeaseTiming::default().scaled(10.0).validate().is_ok());
    }
}
