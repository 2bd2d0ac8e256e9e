//! The NetworkUnavailable writer and the Node events: implements [`StatusSink`].
//!
//! Pure part: [`condition_for`] maps a verified per-node result to the condition, and
//! [`needs_write`] compares it with what the Node already says, so the API server sees a
//! patch only when the condition actually changes (a restart re-reads the Nodes and writes
//! nothing when they are already right). Events go out on transitions only, through
//! kube-runtime's recorder, which folds repeats into one Event with a series count.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::cluster::{NodeReport, NodeRouteStatus, StatusSink};

pub const CONDITION: &str = "NetworkUnavailable";

/// The condition we want on a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// "True" (network unavailable) or "False".
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

pub fn condition_for(status: &NodeRouteStatus) -> Desired {
    let unavailable = |reason, message: &String| Desired {
        status: "True",
        reason,
        message: message.clone(),
    };
    match status {
        NodeRouteStatus::Routed => Desired {
            status: "False",
            reason: "RouteCreated",
            message: "cni-cloud verified every route of this node in every managed route table"
                .into(),
        },
        NodeRouteStatus::Pending { reason } => unavailable("NoRouteCreated", reason),
        NodeRouteStatus::QuotaExceeded { reason } => unavailable("RouteQuotaExceeded", reason),
        NodeRouteStatus::Conflict { reason } => unavailable("RouteConflict", reason),
        NodeRouteStatus::InvalidInput { reason } => unavailable("InvalidPodCIDR", reason),
    }
}

/// True when the Node's current condition differs from the desired one.
pub fn needs_write(current: Option<&NodeCondition>, desired: &Desired) -> bool {
    match current {
        None => true,
        Some(c) => {
            c.status != desired.status
                || c.reason.as_deref() != Some(desired.reason)
                || c.message.as_deref() != Some(desired.message.as_str())
        }
    }
}

/// The Event a transition into `status` deserves, if any: (reason, action, note).
pub fn event_for(status: &NodeRouteStatus) -> Option<(&'static str, &'static str, String)> {
    match status {
        NodeRouteStatus::Routed => None,
        // Pending is normal while a create is in flight; only a failed attempt is news.
        NodeRouteStatus::Pending { reason } if reason.to_ascii_lowercase().contains("fail") => {
            Some(("FailedToCreateRoute", "CreateRoute", reason.clone()))
        }
        NodeRouteStatus::Pending { .. } => None,
        NodeRouteStatus::QuotaExceeded { reason } => {
            Some(("RouteQuotaExceeded", "CreateRoute", reason.clone()))
        }
        NodeRouteStatus::Conflict { reason } => {
            Some(("RouteConflict", "CreateRoute", reason.clone()))
        }
        NodeRouteStatus::InvalidInput { reason } => {
            Some(("InvalidPodCIDR", "ValidatePodCIDR", reason.clone()))
        }
    }
}

pub fn current_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION)
}

/// Writes NetworkUnavailable and Events through the API server.
pub struct KubeStatusWriter {
    api: Api<Node>,
    recorder: Recorder,
    nodes: Store<Node>,
    /// What we last wrote per node (name → condition), so a node the reflector has not
    /// caught up with yet is not patched twice.
    written: Mutex<HashMap<String, Desired>>,
    concurrency: usize,
}

impl KubeStatusWriter {
    pub fn new(client: kube::Client, nodes: Store<Node>, instance: &str) -> Self {
        KubeStatusWriter {
            api: Api::all(client.clone()),
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "cni-cloud-controller".into(),
                    instance: Some(instance.to_owned()),
                },
            ),
            nodes,
            written: Mutex::default(),
            concurrency: 16,
        }
    }

    async fn write_one(&self, report: &NodeReport) {
        let desired = condition_for(&report.status);
        if self.written.lock().expect("written").get(&report.node) == Some(&desired) {
            return;
        }
        // A node we have not seen (or that is gone) has no status to write.
        let Some(node) = self.nodes.get(&ObjectRef::new(&report.node)) else {
            return;
        };
        let current = current_condition(&node);
        if !needs_write(current, &desired) {
            self.written
                .lock()
                .expect("written")
                .insert(report.node.clone(), desired);
            return;
        }
        let now = k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .expect("round");
        let transition = current
            .filter(|c| c.status == desired.status)
            .and_then(|c| c.last_transition_time.clone());
        let patch = json!({"status": {"conditions": [{
            "type": CONDITION,
            "status": desired.status,
            "reason": desired.reason,
            "message": desired.message,
            "lastHeartbeatTime": now.to_string(),
            "lastTransitionTime": transition.map(|t| t.0.to_string()).unwrap_or_else(|| now.to_string()),
        }]}});
        match self
            .api
            .patch_status(
                &report.node,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(node = %report.node, status = desired.status, reason = desired.reason, "NetworkUnavailable updated");
                self.written
                    .lock()
                    .expect("written")
                    .insert(report.node.clone(), desired);
                if let Some((reason, action, note)) = event_for(&report.status) {
                    self.event(&report.node, &report.uid, reason, action, note)
                        .await;
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::debug!(node = %report.node, "node gone before its status could be written");
            }
            Err(e) => {
                tracing::warn!(node = %report.node, error = %e, "could not write NetworkUnavailable")
            }
        }
    }

    async fn event(&self, node: &str, uid: &str, reason: &str, action: &str, note: String) {
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_owned()),
            uid: (!uid.is_empty()).then(|| uid.to_owned()),
            ..Default::default()
        };
        let ev = Event {
            type_: EventType::Warning,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(node, reason, error = %e, "could not publish event");
        }
    }
}

#[async_trait]
impl StatusSink for KubeStatusWriter {
    async fn publish(&self, reports: &[NodeReport]) {
        futures::stream::iter(reports)
            .for_each_concurrent(self.concurrency, |r| self.write_one(r))
            .await;
    }

    /// Say so on every Node once per episode: the deletes held back are for nodes that may
    /// be gone, so the nodes still listed are where an operator will look.
    async fn deletion_guard_tripped(&self, note: &str, reports: &[NodeReport]) {
        futures::stream::iter(reports)
            .for_each_concurrent(self.concurrency, |r| {
                self.event(
                    &r.node,
                    &r.uid,
                    "DeletionGuardTripped",
                    "DeleteRoute",
                    note.to_owned(),
                )
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: &str, reason: &str, message: &str) -> NodeCondition {
        NodeCondition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..Default::default()
        }
    }

    #[test]
    fn statuses_map_to_the_documented_reasons() {
        let r = |s: &NodeRouteStatus| (condition_for(s).status, condition_for(s).reason);
        let reason = "table rtb-1: 10.0.0.0/24".to_string();
        assert_eq!(r(&NodeRouteStatus::Routed), ("False", "RouteCreated"));
        assert_eq!(
            r(&NodeRouteStatus::Pending {
                reason: reason.clone()
            }),
            ("True", "NoRouteCreated")
        );
        assert_eq!(
            r(&NodeRouteStatus::QuotaExceeded {
                reason: reason.clone()
            }),
            ("True", "RouteQuotaExceeded")
        );
        assert_eq!(
            r(&NodeRouteStatus::Conflict {
                reason: reason.clone()
            }),
            ("True", "RouteConflict")
        );
        assert_eq!(
            r(&NodeRouteStatus::InvalidInput {
                reason: reason.clone()
            }),
            ("True", "InvalidPodCIDR")
        );
        assert_eq!(
            condition_for(&NodeRouteStatus::Conflict {
                reason: reason.clone()
            })
            .message,
            reason
        );
    }

    #[test]
    fn unchanged_condition_is_not_rewritten() {
        let d = condition_for(&NodeRouteStatus::Routed);
        let same = cond("False", "RouteCreated", &d.message);
        assert!(!needs_write(Some(&same), &d));
        assert!(needs_write(None, &d));
        assert!(needs_write(Some(&cond("True", "NoRouteCreated", "x")), &d));
        let q = condition_for(&NodeRouteStatus::QuotaExceeded {
            reason: "51 of 50".into(),
        });
        assert!(needs_write(
            Some(&cond("True", "RouteQuotaExceeded", "50 of 50")),
            &q
        ));
    }

    #[test]
    fn events_only_for_news() {
        assert!(event_for(&NodeRouteStatus::Routed).is_none());
        assert!(
            event_for(&NodeRouteStatus::Pending {
                reason: "create in flight".into()
            })
            .is_none()
        );
        assert_eq!(
            event_for(&NodeRouteStatus::Pending {
                reason: "CreateRoute failed: 500".into()
            })
            .unwrap()
            .0,
            "FailedToCreateRoute"
        );
        assert_eq!(
            event_for(&NodeRouteStatus::InvalidInput { reason: "x".into() })
                .unwrap()
                .0,
            "InvalidPodCIDR"
        );
    }
}
