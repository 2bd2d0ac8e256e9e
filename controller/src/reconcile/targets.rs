//! Node targets: providerID → (instance, interface, addresses), resolved through the cloud
//! and cached, plus the one-time node preparation (forwarding on the interface).
//!
//! Resolution costs cloud reads, so a target is trusted for `ttl` and only unknown or
//! expired providerIDs are looked up; a steady-state pass resolves nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cni_cloud_providers::{CloudError, CloudProvider, ErrorKind, ForwardingChange, NodeTarget};
use futures::StreamExt;
use tokio::time::Instant;

use crate::cluster::ClusterNode;
use crate::planner::{PlanNode, TargetError};

/// Node preparations in flight at once. On Azure each one is a NIC PUT plus a long-running
/// operation of ~10 s that costs nothing but a poll while it runs, so this bounds how many
/// wait side by side (at 16, 22 NICs took two operations' time); the request rates
/// themselves are held by the provider's pacing, not by this number.
const PREPARE_CONCURRENCY: usize = 64;

struct Cached {
    target: NodeTarget,
    resolved_at: Instant,
}

/// What node preparation did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Interfaces whose forwarding was switched on.
    pub writes: usize,
    /// (node index, reason) of nodes whose interface could not be prepared.
    pub failed: Vec<(usize, String)>,
}

#[derive(Default)]
pub struct TargetCache {
    by_provider_id: HashMap<String, Cached>,
    /// Interfaces whose forwarding is known to be on.
    prepared: HashSet<String>,
}

impl TargetCache {
    /// Resolve every node's target (cached where fresh). Nodes whose lookup failed come
    /// back with the failure classified: an answer that cannot change by retrying is
    /// invalid input, anything else is pending.
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
            .retain(|id, c| wanted.contains(id.as_str()) && now < c.resolved_at + ttl);
        let keep: HashSet<&str> = self
            .by_provider_id
            .values()
            .map(|c| c.target.interface_id.as_str())
            .collect();
        self.prepared.retain(|i| keep.contains(i.as_str()));

        let mut missing: Vec<String> = wanted
            .iter()
            .filter(|id| !id.is_empty() && !self.by_provider_id.contains_key(**id))
            .map(|id| (*id).to_owned())
            .collect();
        missing.sort();
        let mut failures: HashMap<String, CloudError> = HashMap::new();
        if !missing.is_empty() {
            for (id, result) in provider.resolve_nodes(&missing).await {
                match result {
                    Ok(target) => {
                        self.by_provider_id.insert(
                            id,
                            Cached {
                                target,
                                resolved_at: now,
                            },
                        );
                    }
                    Err(e) => {
                        failures.insert(id, e);
                    }
                }
            }
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

    /// Turn forwarding on for every resolved interface not yet known to forward. Runs
    /// alongside the route writes (it spends the read bucket while they spend the write
    /// bucket); a node whose preparation failed is reported pending and retried.
    pub async fn prepare(
        &mut self,
        provider: &Arc<dyn CloudProvider>,
        nodes: &[PlanNode],
        may_write: bool,
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
                    let r = provider.ensure_forwarding(&t).await;
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
                    out.failed.push((
                        i,
                        format!(
                            "failed to enable forwarding on {}: {e}; retrying",
                            target.interface_id
                        ),
                    ));
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

fn classify(provider_id: &str, e: &CloudError) -> TargetError {
    // Only an answer about the id itself is the node's fault; a denied or failed call is
    // ours, and the node's existing routes must stay while it lasts.
    let about_the_id = e.kind == ErrorKind::NotFound
        || (e.kind == ErrorKind::Permanent && e.code.starts_with("Invalid"));
    if about_the_id {
        TargetError::Invalid(format!("providerID {provider_id}: {e}"))
    } else {
        TargetError::Unavailable(format!("looking up providerID {provider_id} failed: {e}"))
    }
}
