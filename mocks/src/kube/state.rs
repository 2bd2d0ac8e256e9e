//! The object store: Nodes with a watch history, Leases with optimistic concurrency,
//! Events. One cluster-wide resourceVersion counter, as etcd's revision.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::validation::FieldError;

/// A watch event as it goes over the wire, and what the object was before it (so the
/// store can answer "the list as of resourceVersion N" within its history, as etcd does).
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: &'static str,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
}

impl WatchEvent {
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// A Lease write, for failover analysis: who held it from when.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseWrite {
    pub at_unix_ms: u128,
    pub name: String,
    pub holder: Option<String>,
    pub verb: &'static str,
}

/// Why a store write was refused, mapped to a Kubernetes Status by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    AlreadyExists,
    Conflict,
    /// Field validation failed: 422 `Invalid` with these causes.
    Invalid(Vec<FieldError>),
    /// An update without `metadata.resourceVersion` of a kind that allows no
    /// unconditional update (Leases): 422, as the generic registry words it.
    ResourceVersionRequired,
    /// A `metadata.resourceVersion` that is not a number: the API server's plain 500
    /// (`strconv.ParseUint: parsing "x": invalid syntax`).
    MalformedResourceVersion(String),
}

/// A watch asked for history that was compacted away (HTTP 410 Gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// How many watch events are kept; a watch from before the oldest one gets 410 Gone.
pub const HISTORY: usize = 10_000;

#[derive(Debug)]
pub struct Store {
    rv: u64,
    pub nodes: BTreeMap<String, Arc<Value>>,
    history: VecDeque<WatchEvent>,
    /// Lowest resourceVersion a watch may start from (raised by compaction).
    compacted_to: u64,
    tx: broadcast::Sender<WatchEvent>,
    pub leases: BTreeMap<(String, String), Value>,
    pub lease_log: Vec<LeaseWrite>,
    pub events: BTreeMap<(String, String), Value>,
    /// Answer the next N node lists with an empty list (an API glitch for the guard test).
    pub empty_lists: u32,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            rv: 1,
            nodes: BTreeMap::new(),
            history: VecDeque::new(),
            compacted_to: 0,
            tx: broadcast::channel(HISTORY).0,
            leases: BTreeMap::new(),
            lease_log: Vec::new(),
            events: BTreeMap::new(),
            empty_lists: 0,
        }
    }
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .expect("round")
        .to_string()
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn stamp(&mut self, obj: &mut Value) -> u64 {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        rv
    }

    fn emit(&mut self, kind: &'static str, object: Arc<Value>, prev: Option<Arc<Value>>, rv: u64) {
        let ev = WatchEvent {
            rv,
            kind,
            object,
            prev,
        };
        if self.history.len() == HISTORY
            && let Some(old) = self.history.pop_front()
        {
            self.compacted_to = self.compacted_to.max(old.rv);
        }
        self.history.push_back(ev.clone());
        let _ = self.tx.send(ev);
    }

    /// Create or replace a node (admin/seed path). Fills in what the API server would.
    pub fn upsert_node(&mut self, mut node: Value) -> Result<Value, StoreError> {
        let name = node["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                StoreError::Invalid(vec![FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )])
            })?
            .to_owned();
        node["apiVersion"] = json!("v1");
        node["kind"] = json!("Node");
        let existing = self.nodes.get(&name).cloned();
        let meta = &mut node["metadata"];
        match &existing {
            Some(old) => {
                meta["uid"] = old["metadata"]["uid"].clone();
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
            }
            None => {
                if meta["uid"].is_null() {
                    meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
                }
                if meta["creationTimestamp"].is_null() {
                    meta["creationTimestamp"] = json!(now_rfc3339());
                }
            }
        }
        let rv = self.stamp(&mut node);
        let node = Arc::new(node);
        self.nodes.insert(name, node.clone());
        let kind = if existing.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.emit(kind, node.clone(), existing, rv);
        Ok(Arc::unwrap_or_clone(node))
    }

    pub fn delete_node(&mut self, name: &str) -> Result<Value, StoreError> {
        let prev = self.nodes.remove(name).ok_or(StoreError::NotFound)?;
        let mut node = (*prev).clone();
        let rv = self.stamp(&mut node);
        self.emit("DELETED", Arc::new(node.clone()), Some(prev), rv);
        Ok(node)
    }

    /// Replace a node's status after a patch; the caller computed the merged object.
    pub fn write_node(&mut self, mut node: Value) -> Value {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let rv = self.stamp(&mut node);
        let node = Arc::new(node);
        let prev = self.nodes.insert(name, node.clone());
        self.emit("MODIFIED", node.clone(), prev, rv);
        Arc::unwrap_or_clone(node)
    }

    /// The Nodes as they were at resourceVersion `rv` (etcd's read at a revision), rebuilt
    /// from the current ones and the watch history. `Err(Gone)` when `rv` is older than
    /// the history reaches (compacted).
    pub fn nodes_at(&self, rv: u64) -> Result<BTreeMap<String, Arc<Value>>, Gone> {
        if rv < self.compacted_to {
            return Err(Gone);
        }
        let mut nodes = self.nodes.clone();
        for ev in self.history.iter().rev().take_while(|e| e.rv > rv) {
            match &ev.prev {
                Some(prev) => nodes.insert(ev.name().to_owned(), prev.clone()),
                None => nodes.remove(ev.name()),
            };
        }
        Ok(nodes)
    }

    /// Subscribe for watch events after `from` (exclusive): the backlog, then the live
    /// receiver. `Err` when `from` is older than the retained history (410 Gone).
    pub fn watch_from(
        &self,
        from: u64,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>), Gone> {
        if from < self.compacted_to {
            return Err(Gone);
        }
        let backlog = self
            .history
            .iter()
            .filter(|e| e.rv > from)
            .cloned()
            .collect();
        Ok((backlog, self.tx.subscribe()))
    }

    /// Forget all watch history up to now: every watch from an older resourceVersion
    /// gets 410 Gone (what etcd compaction does).
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_to = self.rv;
    }

    pub fn create_lease(&mut self, ns: &str, mut lease: Value) -> Result<Value, StoreError> {
        let mut errs = super::validation::object_meta(&lease);
        errs.extend(super::validation::lease_spec(&lease));
        if !errs.is_empty() {
            return Err(StoreError::Invalid(errs));
        }
        let name = generate_name(&mut lease);
        let key = (ns.to_owned(), name.clone());
        if self.leases.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        lease["apiVersion"] = json!("coordination.k8s.io/v1");
        lease["kind"] = json!("Lease");
        lease["metadata"]["namespace"] = json!(ns);
        lease["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        lease["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        self.stamp(&mut lease);
        self.log_lease(&name, &lease, "create");
        self.leases.insert(key, lease.clone());
        Ok(lease)
    }

    /// Update with optimistic concurrency, as the generic registry does it for a kind
    /// whose strategy allows no unconditional update (Leases): the Lease must exist
    /// (404), the caller's resourceVersion must be given (422; "0" counts as none) and
    /// current (409).
    pub fn update_lease(
        &mut self,
        ns: &str,
        name: &str,
        mut lease: Value,
    ) -> Result<Value, StoreError> {
        let key = (ns.to_owned(), name.to_owned());
        let current = self.leases.get(&key).ok_or(StoreError::NotFound)?;
        let sent = lease["metadata"]["resourceVersion"].as_str().unwrap_or("");
        let sent_rv = match sent {
            "" => 0,
            rv => rv.parse::<u64>().map_err(|_| {
                StoreError::MalformedResourceVersion(format!(
                    "strconv.ParseUint: parsing {sent:?}: invalid syntax"
                ))
            })?,
        };
        if sent_rv == 0 {
            return Err(StoreError::ResourceVersionRequired);
        }
        if current["metadata"]["resourceVersion"] != sent_rv.to_string().as_str() {
            return Err(StoreError::Conflict);
        }
        let errs = super::validation::lease_spec(&lease);
        if !errs.is_empty() {
            return Err(StoreError::Invalid(errs));
        }
        lease["apiVersion"] = json!("coordination.k8s.io/v1");
        lease["kind"] = json!("Lease");
        lease["metadata"]["namespace"] = json!(ns);
        lease["metadata"]["uid"] = current["metadata"]["uid"].clone();
        lease["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
        self.stamp(&mut lease);
        self.log_lease(name, &lease, "update");
        self.leases.insert(key, lease.clone());
        Ok(lease)
    }

    fn log_lease(&mut self, name: &str, lease: &Value, verb: &'static str) {
        self.lease_log.push(LeaseWrite {
            at_unix_ms: unix_ms(),
            name: name.to_owned(),
            holder: lease["spec"]["holderIdentity"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            verb,
        });
    }

    /// Store a new Event (validated by the caller, who knows which API it came through).
    pub fn create_event(&mut self, ns: &str, mut event: Value) -> Result<Value, StoreError> {
        let name = generate_name(&mut event);
        let key = (ns.to_owned(), name);
        if self.events.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        event["metadata"]["namespace"] = json!(ns);
        event["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        event["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        self.stamp(&mut event);
        self.events.insert(key, event.clone());
        Ok(event)
    }

    /// Replace an Event with its patched form (validated by the caller).
    pub fn replace_event(&mut self, ns: &str, name: &str, mut event: Value) -> Value {
        let key = (ns.to_owned(), name.to_owned());
        if let Some(old) = self.events.get(&key) {
            for field in ["name", "namespace", "uid", "creationTimestamp"] {
                event["metadata"][field] = old["metadata"][field].clone();
            }
        }
        self.stamp(&mut event);
        self.events.insert(key, event.clone());
        event
    }
}

/// The object's name; a `generateName` with no name gets the API server's five random
/// characters appended (the caller validated that one of them is set).
fn generate_name(obj: &mut Value) -> String {
    if let Some(name) = obj["metadata"]["name"].as_str().filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix = obj["metadata"]["generateName"].as_str().unwrap_or_default();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    let name = format!("{prefix}{suffix}");
    obj["metadata"]["name"] = json!(name);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_update_with_stale_resource_version_conflicts() {
        let mut s = Store::default();
        let l = s
            .create_lease(
                "ns",
                json!({"metadata":{"name":"l"},"spec":{"holderIdentity":"a"}}),
            )
            .unwrap();
        let mut b = l.clone();
        b["spec"]["holderIdentity"] = json!("b");
        s.update_lease("ns", "l", b.clone()).unwrap();
        let mut c = l;
        c["spec"]["holderIdentity"] = json!("c");
        assert_eq!(s.update_lease("ns", "l", c), Err(StoreError::Conflict));
        assert_eq!(
            s.create_lease("ns", json!({"metadata":{"name":"l"}})),
            Err(StoreError::AlreadyExists)
        );
        let holders: Vec<_> = s.lease_log.iter().map(|w| w.holder.clone()).collect();
        assert_eq!(holders, vec![Some("a".into()), Some("b".into())]);
    }

    #[test]
    fn watch_after_compaction_is_gone_and_backlog_is_ordered() {
        let mut s = Store::default();
        let start = s.resource_version();
        s.upsert_node(json!({"metadata":{"name":"a"}})).unwrap();
        s.upsert_node(json!({"metadata":{"name":"a"},"spec":{"podCIDR":"10.0.0.0/24"}}))
            .unwrap();
        s.delete_node("a").unwrap();
        let (backlog, _) = s.watch_from(start).unwrap();
        let kinds: Vec<_> = backlog.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
        s.compact();
        assert!(s.watch_from(start).is_err());
        assert!(s.watch_from(s.resource_version()).is_ok());
    }

    #[test]
    fn nodes_at_rebuilds_a_past_resource_version_within_the_history() {
        let mut s = Store::default();
        s.upsert_node(json!({"metadata":{"name":"a"}})).unwrap();
        s.upsert_node(json!({"metadata":{"name":"b"}})).unwrap();
        let then = s.resource_version();
        s.upsert_node(json!({"metadata":{"name":"a","labels":{"x":"1"}}}))
            .unwrap();
        s.delete_node("b").unwrap();
        s.upsert_node(json!({"metadata":{"name":"c"}})).unwrap();
        let past = s.nodes_at(then).unwrap();
        assert_eq!(past.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(past["a"]["metadata"]["labels"].is_null());
        let now = s.nodes_at(s.resource_version()).unwrap();
        assert_eq!(now.keys().collect::<Vec<_>>(), ["a", "c"]);
        s.compact();
        assert_eq!(s.nodes_at(then), Err(Gone));
    }

    #[test]
    fn lease_update_needs_a_resource_version() {
        let mut s = Store::default();
        let l = s
            .create_lease("ns", json!({"metadata":{"name":"l"}}))
            .unwrap();
        let mut none = l.clone();
        none["metadata"]["resourceVersion"] = json!("0");
        assert_eq!(
            s.update_lease("ns", "l", none),
            Err(StoreError::ResourceVersionRequired)
        );
        let mut bad = l;
        bad["metadata"]["resourceVersion"] = json!("x1");
        assert!(matches!(
            s.update_lease("ns", "l", bad),
            Err(StoreError::MalformedResourceVersion(_))
        ));
    }
}
