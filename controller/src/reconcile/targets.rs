//! Node targets: providerID → (instance, interface, addresses), resolved through the cloud
//! and cached, plus the one-time node preparation (forwarding on the interface).
//!
//! Resolution costs cloud reads, so a target is trusted for `ttl` and only unknown or
//! expired providerIDs are looked up; a steady-state pass resolves nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cni_cloud_providers::{
    CloudError, CloudProvider, ErrorKind, ForwardingChange, NodeTarget, WriteFence,
};
use futures::StreamExt;
use tokio::time::Instant;

use crate::cluster::ClusterNode;
use crate::planner::{PlanNode, TargetError};

/// Node preparations in flight at once. On Azure each one is a NIC PUT plus a long-running
/// operation of ~10 s that costs nothing but a poll while it runs, so this bounds how many
/// wait side by side (at 16, 22 NICs took two operations' time); the request rates
/// themselves are held by the provider's pacing, not by this number.
const PREPARE_CONCURRENCY: usize = 64;

/// After a failed refresh, the next try comes this soon (or at the TTL, if shorter).
const STALE_RETRY: Duration = Duration::from_secs(30);

struct Cached {
    target: NodeTarget,
    /// After this the target is looked up again; until the lookup succeeds the cached
    /// one stays in use (an instance's primary interface does not change while it runs).
    fresh_until: Instant,
}

/// A node whose interface could not be prepared.
#[derive(Debug, Clone)]
pub struct PrepFailure {
    /// Index into the nodes passed to [`TargetCache::prepare`].
    pub node: usize,
    pub reason: String,
    /// The cloud answered and said no (permission, invalid state): a verified fact about
    /// the node. Otherwise the check itself failed and nothing is known.
    pub refused: bool,
}

/// What node preparation did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Interfaces whose forwarding was switched on.
    pub writes: usize,
    pub failed: Vec<PrepFailure>,
}

#[derive(Default)]
pub struct TargetCache {
    by_provider_id: HashMap<String, Cached>,
    /// Interfaces whose forwarding is verified on; kept until the node's interface changes
    /// or the node leaves, never re-checked on a timer.
    prepared: HashSet<String>,
}

/// Each entry's own share of the TTL, 0.75–1.25 from a hash of its id: entries resolved
/// together do not all expire together, so one refresh never re-reads the whole cluster.
fn jittered(ttl: Duration, id: &str) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(id, &mut h);
    let unit = (std::hash::Hasher::finish(&h) % 1_000) as f64 / 1_000.0;
    ttl.mul_f64(0.75 + 0.5 * unit)
}

impl TargetCache {
    /// Resolve every node's target: new nodes and expired entries are looked up (in as few
    /// calls as the provider allows); a failed refresh keeps the cached target. Nodes
    /// whose lookup failed without a cached target come back with the failure classified:
    /// an answer that cannot change by retrying is invalid input, anything else unknown.
    pub async fn resolve(
        &mut self,
        provider: &Arc<dyn CloudProvider>,
        nodes: &[ClusterNode],
        ttl: Duration,
    ) -> Vec<PlanNode> {
        let now = Instant::now();
        let wanted: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.provider_id.as_deref())
            .collect();
        // Forget nodes that left, so memory follows the cluster.
        self.by_provider_id
            .retain(|id, _| wanted.contains(id.as_str()));
        self.forget_unused_interfaces();

        let mut lookup: Vec<String> = wanted
            .iter()
            .filter(|id| {
                !id.is_empty()
                    && self
                        .by_provider_id
                        .get(**id)
                        .is_none_or(|c| c.fresh_until <= now)
            })
            .map(|id| (*id).to_owned())
            .collect();
        lookup.sort();
        let mut failures: HashMap<String, CloudError> = HashMap::new();
        if !lookup.is_empty() {
            for (id, result) in provider.resolve_nodes(&lookup).await {
                match result {
                    Ok(target) => {
                        let fresh_until = now + jittered(ttl, &id);
                        self.by_provider_id.insert(
                            id,
                            Cached {
                                target,
                                fresh_until,
                            },
                        );
                    }
                    Err(e) if about_the_id(&e) => {
                        self.by_provider_id.remove(&id);
                        failures.insert(id, e);
                    }
                    Err(e) => match self.by_provider_id.get_mut(&id) {
                        Some(cached) => {
                            // Keep what we knew; try again a little later, not every pass.
                            tracing::debug!(provider_id = %id, error = %e,
                                "refreshing a node target failed; keeping the cached one");
                            cached.fresh_until = now + jittered(ttl.min(STALE_RETRY), &id);
                        }
                        None => {
                            failures.insert(id, e);
                        }
                    },
                }
            }
            self.forget_unused_interfaces();
        }

        nodes
            .iter()
            .map(|node| {
                let target = match node.provider_id.as_deref() {
                    None | Some("") => Err(TargetError::Invalid(
                        "the node has no spec.providerID (is the cloud provider's node \
                         controller running?)"
                            .to_owned(),
                    )),
                    Some(id) => match (self.by_provider_id.get(id), failures.get(id)) {
                        (Some(c), _) => Ok(c.target.clone()),
                        (None, Some(e)) => Err(classify(id, e)),
                        (None, None) => Err(TargetError::Unavailable(format!(
                            "providerID {id} was not resolved"
                        ))),
                    },
                };
                PlanNode {
                    node: node.clone(),
                    target,
                }
            })
            .collect()
    }

    /// Verified forwarding belongs to an interface: once no cached node uses it (the node
    /// left, or its instance was replaced), it must be checked again.
    fn forget_unused_interfaces(&mut self) {
        let used: HashSet<&str> = self
            .by_provider_id
            .values()
            .map(|c| c.target.interface_id.as_str())
            .collect();
        self.prepared.retain(|i| used.contains(i.as_str()));
    }

    /// Turn forwarding on for every resolved interface not yet known to forward. Runs
    /// alongside the route writes (it spends the read bucket while they spend the write
    /// bucket); a node whose preparation failed is reported pending and retried.
    pub async fn prepare(
        &mut self,
        provider: &Arc<dyn CloudProvider>,
        nodes: &[PlanNode],
        may_write: bool,
        fence: &dyn WriteFence,
    ) -> Prepared {
        let mut out = Prepared::default();
        if !may_write {
            // Dry run or standby: the plan is shown as if preparation will succeed.
            return out;
        }
        let todo: Vec<(usize, NodeTarget)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.target {
                Ok(t) if t.cluster_member && !self.prepared.contains(&t.interface_id) => {
                    Some((i, t.clone()))
                }
                _ => None,
            })
            .collect();
        // Concurrent, like the rest of the provider's calls: its pacer keeps the rate.
        let results: Vec<(usize, NodeTarget, Result<ForwardingChange, CloudError>)> =
            futures::stream::iter(todo)
                .map(|(i, t)| async move {
                    let r = provider.ensure_forwarding_fenced(&t, fence).await;
                    (i, t, r)
                })
                .buffer_unordered(PREPARE_CONCURRENCY)
                .collect()
                .await;
        for (i, target, result) in results {
            let n = &nodes[i];
            match result {
                Ok(change) => {
                    if change == ForwardingChange::Enabled {
                        out.writes += 1;
                        tracing::info!(node = %n.node.name, interface = %target.interface_id,
                            "enabled forwarding on the node's interface");
                    }
                    self.prepared.insert(target.interface_id.clone());
                }
                Err(e) => {
                    tracing::warn!(node = %n.node.name, interface = %target.interface_id,
                        error = %e, "could not enable forwarding; will retry");
                    out.failed.push(PrepFailure {
                        node: i,
                        reason: format!(
                            "failed to enable forwarding on {}: {e}; retrying",
                            target.interface_id
                        ),
                        refused: matches!(
                            e.kind,
                            ErrorKind::Permanent | ErrorKind::NotFound | ErrorKind::QuotaExceeded
                        ),
                    });
                }
            }
        }
        out
    }

    /// Drop a cached target (its interface turned out not to exist any more).
    pub fn forget_interface(&mut self, interface_id: &str) {
        self.by_provider_id
            .retain(|_, c| c.target.interface_id != interface_id);
        self.prepared.remove(interface_id);
    }
}

/// Only an answer about the id itself is the node's fault; a denied or failed call is
/// ours, and the node's existing routes must stay while it lasts.
fn about_the_id(e: &CloudError) -> bool {
    e.kind == ErrorKind::NotFound
        || (e.kind == ErrorKind::Permanent && e.code.starts_with("Invalid"))
}

fn classify(provider_id: &str, e: &CloudError) -> TargetError {
    if about_the_id(e) {
        TargetError::Invalid(format!("providerID {provider_id}: {e}"))
    } else {
        TargetError::Unavailable(format!("looking up providerID {provider_id} failed: {e}"))
    }
}
