//! The cluster edge, as the core sees it: node snapshots in, verified per-node results
//! out, and the fence that gates every cloud mutation on leadership.
//!
//! The Kubernetes implementations (reflector, status writer, lease) live behind these
//! types; `simulate` and the tests plug in in-memory ones.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cni_cloud_providers::{Unfenced, WriteFence};
use serde::{Deserialize, Serialize};

/// A Node as the controller needs it: no more than the route decision uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub name: String,
    pub uid: String,
    /// `metadata.creationTimestamp` in seconds since the epoch: quota admission is oldest-first.
    pub created_unix: i64,
    /// `spec.providerID`, raw; `None` when unset.
    pub provider_id: Option<String>,
    /// `spec.podCIDRs` (or `spec.podCIDR`), raw and unparsed: validating them is the planner's job.
    pub pod_cidrs: Vec<String>,
    /// InternalIP addresses from `status.addresses`.
    pub internal_ips: Vec<IpAddr>,
}

/// The node list the reconciler works from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSnapshot {
    pub nodes: Vec<ClusterNode>,
    /// True when the list is known to be complete (an initial list that succeeded, or the
    /// operator said so). The deletion guard only yields to an authoritative list.
    pub authoritative: bool,
    /// False only for the placeholder a watch channel starts with, before any list
    /// arrived: nothing is ever planned from it.
    pub listed: bool,
}

pub type SharedSnapshot = Arc<NodeSnapshot>;

/// The verified route state of one node after a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum NodeRouteStatus {
    /// Every route of the node (all families, all managed tables) is verified present.
    Routed,
    /// Not yet routed: a change is planned or in flight, or failed and will be retried.
    Pending {
        reason: String,
    },
    QuotaExceeded {
        reason: String,
    },
    Conflict {
        reason: String,
    },
    InvalidInput {
        reason: String,
    },
    /// Could not be verified this pass (the node's instance or interface could not be
    /// read). Not a fact about the network: the node's last verified condition stays.
    Unknown {
        reason: String,
    },
}

impl NodeRouteStatus {
    pub fn is_routed(&self) -> bool {
        matches!(self, NodeRouteStatus::Routed)
    }

    /// True when this is a verified fact that may change the node's condition.
    pub fn is_verified(&self) -> bool {
        !matches!(self, NodeRouteStatus::Unknown { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: String,
    pub uid: String,
    pub status: NodeRouteStatus,
}

/// Where verified per-node results go (the Kubernetes NetworkUnavailable writer,
/// or an in-memory sink in `simulate`).
#[async_trait]
pub trait StatusSink: Send + Sync {
    async fn publish(&self, reports: &[NodeReport]);

    /// The deletion guard started holding deletes back (called once per episode, not per
    /// pass). `note` says how many routes and why.
    async fn deletion_guard_tripped(&self, note: &str, reports: &[NodeReport]) {
        let _ = (note, reports);
    }

    /// We just became the leader: anything remembered about earlier writes may be stale
    /// (another replica wrote in between), so decide from the Nodes as they are.
    async fn leadership_gained(&self) {}
}

/// Keeps the latest reports in memory (`simulate`, `plan`, tests).
#[derive(Debug, Default)]
pub struct MemorySink {
    latest: std::sync::Mutex<Vec<NodeReport>>,
    guard_trips: std::sync::atomic::AtomicUsize,
}

impl MemorySink {
    pub fn latest(&self) -> Vec<NodeReport> {
        self.latest.lock().expect("sink lock").clone()
    }

    pub fn guard_trips(&self) -> usize {
        self.guard_trips.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl StatusSink for MemorySink {
    async fn publish(&self, reports: &[NodeReport]) {
        *self.latest.lock().expect("sink lock") = reports.to_vec();
    }

    async fn deletion_guard_tripped(&self, _note: &str, _reports: &[NodeReport]) {
        self.guard_trips
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Gates every cloud mutation. The providers receive it as a [`WriteFence`] and check its
/// deadline before every attempt; the reconciler also asks before starting a batch.
pub trait Fence: WriteFence {
    /// True when we hold leadership with at least `needed` left before the deadline.
    fn may_mutate(&self, needed: Duration) -> bool {
        self.deadline()
            .is_some_and(|until| std::time::Instant::now() + needed <= until)
    }
}

/// For `simulate`, `plan` and single-replica runs without election.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysLeader;

impl WriteFence for AlwaysLeader {
    fn deadline(&self) -> Option<std::time::Instant> {
        Unfenced.deadline()
    }
}

impl Fence for AlwaysLeader {}
