//! The NetworkUnavailable writer and the Node events: implements [`StatusSink`].
//!
//! Pure part: [`condition_for`] maps a verified per-node result to the condition, and
//! [`needs_write`] compares it with what the Node already says, so the API server sees a
//! patch only when the condition actually changes (a restart re-reads the Nodes and writes
//! nothing when they are already right). Events (events.k8s.io/v1) go out on transitions
//! only, written directly: kube-runtime's recorder keeps every Event it sent for six
//! minutes to fold repeats into a series, which at 5,000 nodes cost ~14 MiB for repeats
//! that transitions-only Events never have.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::api::{Api, Patch, PatchParams};
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

/// The condition a verified status calls for; `None` for a status that is not a verified
/// fact (a failed read), which must leave the Node's last verified condition as it is.
pub fn condition_for(status: &NodeRouteStatus) -> Option<Desired> {
    let unavailable = |reason, message: &String| {
        Some(Desired {
            status: "True",
            reason,
            message: message.clone(),
        })
    };
    match status {
        NodeRouteStatus::Routed => Some(Desired {
            status: "False",
            reason: "RouteCreated",
            message: "cni-cloud verified every route of this node in every managed route table"
                .into(),
        }),
        NodeRouteStatus::Pending { reason } => unavailable("NoRouteCreated", reason),
        NodeRouteStatus::QuotaExceeded { reason } => unavailable("RouteQuotaExceeded", reason),
        NodeRouteStatus::Conflict { reason } => unavailable("RouteConflict", reason),
        NodeRouteStatus::InvalidInput { reason } => unavailable("InvalidPodCIDR", reason),
        NodeRouteStatus::Unknown { .. } => None,
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
        NodeRouteStatus::Unknown { .. } => None,
    }
}

/// events.k8s.io/v1 rejects a note over 1,024 bytes (a cloud's `UnauthorizedOperation`
/// message alone can be longer): cut at a character boundary and say so.
pub const MAX_NOTE_BYTES: usize = 1024;

pub fn event_note(note: &str) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note.to_owned();
    }
    const MARK: &str = " …(truncated)";
    let mut end = MAX_NOTE_BYTES - MARK.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &note[..end])
}

pub fn current_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION)
}

/// A condition we patched, and the Node version it was patched over: until the reflector's
/// copy moves past that version it cannot show our write, so it is not patched twice.
#[derive(Debug, Clone)]
struct Written {
    over_version: Option<String>,
    desired: Desired,
}

/// Writes NetworkUnavailable and Events through the API server.
pub struct KubeStatusWriter {
    api: Api<Node>,
    client: kube::Client,
    /// `reportingInstance`: this replica.
    instance: String,
    nodes: Store<Node>,
    /// Our own recent writes, by Node uid (a Node recreated under the same name is another
    /// Node). Only a guard against the reflector's lag: the decision to write is always
    /// taken against the reflector's copy of the Node, and the memory is dropped on
    /// gaining the lease (another replica may have written since) and for Nodes gone.
    written: Mutex<HashMap<String, Written>>,
    /// Where the once-per-episode deletion guard Event goes (the controller's Lease).
    guard_object: Option<ObjectReference>,
    concurrency: usize,
}

impl KubeStatusWriter {
    pub fn new(client: kube::Client, nodes: Store<Node>, instance: &str) -> Self {
        KubeStatusWriter {
            api: Api::all(client.clone()),
            client,
            instance: instance.to_owned(),
            nodes,
            written: Mutex::default(),
            guard_object: None,
            concurrency: 16,
        }
    }

    /// Send the deletion guard's Event to this object (the Lease) instead of nowhere.
    pub fn with_guard_object(mut self, object: ObjectReference) -> Self {
        self.guard_object = Some(object);
        self
    }

    async fn write_one(&self, report: &NodeReport) {
        let Some(desired) = condition_for(&report.status) else {
            // Not verified this pass: whatever the Node says stays.
            return;
        };
        // A node we have not seen (or that is gone) has no status to write.
        let Some(node) = self.nodes.get(&ObjectRef::new(&report.node)) else {
            return;
        };
        let uid = node.metadata.uid.clone().unwrap_or_default();
        if !report.uid.is_empty() && report.uid != uid {
            // The report is about another incarnation of this name; the next pass plans
            // the one that exists now.
            return;
        }
        let version = node.metadata.resource_version.clone();
        let current = current_condition(&node);
        if !needs_write(current, &desired) {
            self.written.lock().expect("written").remove(&uid);
            return;
        }
        {
            let written = self.written.lock().expect("written");
            if let Some(w) = written.get(&uid)
                && w.desired == desired
                && w.over_version == version
            {
                return;
            }
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
                self.written.lock().expect("written").insert(
                    uid.clone(),
                    Written {
                        over_version: version,
                        desired,
                    },
                );
                if let Some((reason, action, note)) = event_for(&report.status) {
                    self.event(&node_ref(&report.node, &uid), reason, action, &note)
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

    async fn event(&self, regarding: &ObjectReference, reason: &str, action: &str, note: &str) {
        let ev = warning_event(regarding, reason, action, note, &self.instance);
        let namespace = ev.metadata.namespace.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::warn!(object = ?regarding.name, reason, error = %e, "could not publish event");
        }
    }
}

pub const REPORTING_CONTROLLER: &str = "cni-cloud-controller";

/// A Warning Event about `regarding`, as events.k8s.io/v1 wants it: filed in the object's
/// namespace ("default" for cluster-scoped Nodes), a unique name, the reporting fields,
/// the note capped at 1,024 bytes.
pub fn warning_event(
    regarding: &ObjectReference,
    reason: &str,
    action: &str,
    note: &str,
    instance: &str,
) -> K8sEvent {
    let now = k8s_openapi::jiff::Timestamp::now();
    let namespace = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    K8sEvent {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or(REPORTING_CONTROLLER),
                now.as_nanosecond()
            )),
            namespace: Some(namespace),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some("Warning".to_owned()),
        reason: Some(reason.to_owned()),
        action: Some(action.to_owned()),
        note: Some(event_note(note)),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Default::default()
    }
}

fn node_ref(name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.to_owned()),
        uid: (!uid.is_empty()).then(|| uid.to_owned()),
        ..Default::default()
    }
}

#[async_trait]
impl StatusSink for KubeStatusWriter {
    async fn publish(&self, reports: &[NodeReport]) {
        futures::stream::iter(reports)
            .for_each_concurrent(self.concurrency, |r| self.write_one(r))
            .await;
        // Memory follows the cluster: forget Nodes that are gone.
        let live: HashSet<String> = self
            .nodes
            .state()
            .iter()
            .filter_map(|n| n.metadata.uid.clone())
            .collect();
        self.written
            .lock()
            .expect("written")
            .retain(|uid, _| live.contains(uid));
    }

    /// Another replica may have written any condition while we did not lead.
    async fn leadership_gained(&self) {
        self.written.lock().expect("written").clear();
    }

    /// One Event per episode on the controller's Lease: the deletes held back are for
    /// nodes that may be gone, and one Event per Node would be thousands of writes.
    async fn deletion_guard_tripped(&self, note: &str, _reports: &[NodeReport]) {
        tracing::warn!("{note}");
        if let Some(object) = &self.guard_object {
            self.event(object, "DeletionGuardTripped", "DeleteRoute", note)
                .await;
        }
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
        let r = |s: &NodeRouteStatus| {
            let d = condition_for(s).unwrap();
            (d.status, d.reason)
        };
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
            .unwrap()
            .message,
            reason
        );
        assert_eq!(
            condition_for(&NodeRouteStatus::Unknown {
                reason: "DescribeInstances throttled".into()
            }),
            None,
            "a failed read never changes a condition"
        );
    }

    #[test]
    fn unchanged_condition_is_not_rewritten() {
        let d = condition_for(&NodeRouteStatus::Routed).unwrap();
        let same = cond("False", "RouteCreated", &d.message);
        assert!(!needs_write(Some(&same), &d));
        assert!(needs_write(None, &d));
        assert!(needs_write(Some(&cond("True", "NoRouteCreated", "x")), &d));
        let q = condition_for(&NodeRouteStatus::QuotaExceeded {
            reason: "51 of 50".into(),
        })
        .unwrap();
        assert!(needs_write(
            Some(&cond("True", "RouteQuotaExceeded", "50 of 50")),
            &q
        ));
    }

    #[test]
    fn event_notes_fit_the_events_api() {
        let long = "é".repeat(900);
        let note = event_note(&long);
        assert!(note.len() <= MAX_NOTE_BYTES, "{}", note.len());
        assert!(note.ends_with("(truncated)"));
        assert_eq!(event_note("short"), "short");
    }

    #[test]
    fn a_node_event_is_filed_in_default_with_the_reporting_fields() {
        let ev = warning_event(
            &node_ref("n1", "u1"),
            "RouteQuotaExceeded",
            "CreateRoute",
            &"x".repeat(2000),
            "replica-a",
        );
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
        assert!(ev.metadata.name.as_deref().unwrap().starts_with("n1."));
        assert_eq!(
            ev.reporting_controller.as_deref(),
            Some(REPORTING_CONTROLLER)
        );
        assert_eq!(ev.reporting_instance.as_deref(), Some("replica-a"));
        assert!(ev.event_time.is_some() && ev.type_.as_deref() == Some("Warning"));
        assert!(ev.note.as_ref().unwrap().len() <= MAX_NOTE_BYTES);
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
