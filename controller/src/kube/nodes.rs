//! Node reflector → [`NodeSnapshot`]s on a watch channel.
//!
//! The reflector keeps an in-memory copy of every Node (re-listing on start and after a
//! 410); each change is projected to the fields routes depend on ([`project`]), and a new
//! snapshot is published — debounced, and only when the projection differs, so label or
//! heartbeat churn never wakes the reconciler.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterNode, NodeSnapshot, SharedSnapshot};

/// The route-relevant view of a Node.
pub fn project(node: &Node) -> ClusterNode {
    let spec = node.spec.clone().unwrap_or_default();
    let mut pod_cidrs = spec.pod_cidrs.unwrap_or_default();
    if pod_cidrs.is_empty()
        && let Some(c) = spec.pod_cidr
    {
        pod_cidrs.push(c);
    }
    let internal_ips = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse::<IpAddr>().ok())
        .collect();
    ClusterNode {
        name: node.metadata.name.clone().unwrap_or_default(),
        uid: node.metadata.uid.clone().unwrap_or_default(),
        created_unix: node
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0),
        provider_id: spec.provider_id.filter(|p| !p.is_empty()),
        pod_cidrs,
        internal_ips,
    }
}

/// Build the snapshot from the reflector's store. A list can only be authoritative when
/// it is complete (initial list done) *and* non-empty: the controller itself runs on a
/// Node, so an empty list is an API glitch, and the deletion guard must not yield to it.
pub fn snapshot(nodes: &[Arc<Node>], synced: bool) -> NodeSnapshot {
    let mut nodes: Vec<ClusterNode> = nodes.iter().map(|n| project(n)).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let authoritative = synced && !nodes.is_empty();
    NodeSnapshot {
        nodes,
        authoritative,
        listed: true,
    }
}

/// A running node reflector.
pub struct NodeWatch {
    pub store: Store<Node>,
    pub snapshots: watch::Receiver<SharedSnapshot>,
    /// True once the initial list has completed (for /readyz).
    pub synced: watch::Receiver<bool>,
}

/// Start watching Nodes until `shutdown`. `debounce` groups bursts of changes.
pub fn start(client: kube::Client, debounce: Duration, shutdown: CancellationToken) -> NodeWatch {
    let api: Api<Node> = Api::all(client);
    let (store, writer) = reflector::store();
    let (snap_tx, snap_rx) = watch::channel(SharedSnapshot::default());
    let (synced_tx, synced_rx) = watch::channel(false);
    let reader = store.clone();
    tokio::spawn(async move {
        let stream =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                .default_backoff();
        futures::pin_mut!(stream);
        let mut synced = false;
        let mut dirty = false;
        loop {
            let next = if dirty {
                // Something changed: publish after a quiet `debounce`, or sooner if the
                // stream ends.
                tokio::select! {
                    ev = stream.next() => Some(ev),
                    _ = tokio::time::sleep(debounce) => None,
                    _ = shutdown.cancelled() => return,
                }
            } else {
                tokio::select! {
                    ev = stream.next() => Some(ev),
                    _ = shutdown.cancelled() => return,
                }
            };
            match next {
                None => {
                    dirty = false;
                    let snap = snapshot(&reader.state(), synced);
                    snap_tx.send_if_modified(|cur| {
                        let changed = **cur != snap;
                        if changed {
                            *cur = Arc::new(snap);
                        }
                        changed
                    });
                }
                Some(None) => return,
                Some(Some(Ok(ev))) => match ev {
                    Event::Init => {
                        // A re-list: the snapshot is not complete until InitDone.
                        synced = false;
                    }
                    Event::InitApply(_) => {}
                    Event::InitDone => {
                        synced = true;
                        let _ = synced_tx.send(true);
                        dirty = true;
                    }
                    Event::Apply(_) | Event::Delete(_) => dirty = true,
                },
                Some(Some(Err(e))) => {
                    tracing::warn!(error = %e, "node watch error; retrying with backoff");
                }
            }
        }
    });
    NodeWatch {
        store,
        snapshots: snap_rx,
        synced: synced_rx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": "2026-01-01T00:00:00Z",
                             "labels": {"heartbeat": "1"}},
                "spec": {"providerID": "aws:///us-east-1a/i-1", "podCIDR": cidr, "podCIDRs": [cidr]},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.5"},
                                          {"type": "Hostname", "address": "ip-10-1-0-5"}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn projection_keeps_only_route_inputs() {
        let n = project(&node("a", "100.64.0.0/24"));
        assert_eq!(n.pod_cidrs, vec!["100.64.0.0/24"]);
        assert_eq!(n.provider_id.as_deref(), Some("aws:///us-east-1a/i-1"));
        assert_eq!(n.internal_ips, vec!["10.1.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(n.created_unix, 1_767_225_600);
        let mut relabeled = (*node("a", "100.64.0.0/24")).clone();
        relabeled.metadata.labels = None;
        assert_eq!(project(&relabeled), n);
    }

    #[test]
    fn empty_or_unsynced_lists_are_never_authoritative() {
        let nodes = vec![node("b", "100.64.1.0/24"), node("a", "100.64.0.0/24")];
        let s = snapshot(&nodes, true);
        assert!(s.authoritative);
        assert_eq!(s.nodes[0].name, "a");
        assert!(!snapshot(&nodes, false).authoritative);
        assert!(!snapshot(&[], true).authoritative);
    }
}
