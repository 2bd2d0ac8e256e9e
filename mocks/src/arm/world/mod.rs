//! The mock's resources and long-running operations. Everything ARM decides about a write
//! (validation, etag checks, locks, quota, LRO outcome) happens here, on plain values:
//! - [`builders`]: route tables, VMs and scale-set instances (with their NICs) to start from;
//! - [`operations`]: long-running operations (accept, settle, fail / cancel), the per-resource
//!   write lock, `If-Match`, and the scripted second writer;
//! - [`tables`], [`nics`]: what a PUT / DELETE of each kind of resource does (incl. the NIC
//!   write's linked authorization);
//! - [`validation`]: what ARM refuses in a request body, with its codes.

mod builders;
mod nics;
mod operations;
mod tables;
mod validation;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::operations::Operation;
use super::authz::Grants;

/// An ARM error answer: HTTP status, `error.code`, `error.message`, optional Retry-After
/// (cloud seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ArmError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A started write: the resource as it is now, and its operation.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub created: bool,
    pub body: Value,
    pub operation_id: String,
    /// Wall time until the operation settles.
    pub remaining: Duration,
    pub location: String,
    pub subscription: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    InProgress,
    Succeeded,
    Failed,
    Canceled,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::InProgress => "InProgress",
            OpStatus::Succeeded => "Succeeded",
            OpStatus::Failed => "Failed",
            OpStatus::Canceled => "Canceled",
        }
    }
}

/// One change the mock accepted, as its write started: a route of a table created,
/// replaced or deleted (whichever request carried it: a whole-table PUT or one route's), or
/// a NIC written. The same (action, subject, detail) twice is the same write applied twice.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mutation {
    /// Seconds since the mock started (the clock of [`ArmMock::requests`](super::ArmMock::requests)).
    pub at: f64,
    /// `RouteCreated`, `RouteReplaced`, `RouteDeleted` or `NicWritten`.
    pub action: &'static str,
    /// `<table id>/routes/<route name>` (lowercase) or the NIC's id.
    pub subject: String,
    /// A route's prefix and next hop; a NIC's `enableIPForwarding`.
    pub detail: String,
}

#[derive(Debug)]
struct Resource {
    json: Value,
    /// The operation currently writing this resource (ARM's per-resource lock).
    busy: Option<String>,
}

/// How to build a NIC for [`World::add_vm`] / [`World::add_vmss_instance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NicSpec {
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub ip_forwarding: bool,
}

/// What a VM / scale-set instance is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIds {
    /// `azure:///subscriptions/…`, as the kubelet sets it.
    pub provider_id: String,
    pub vm_id: String,
    pub nic_id: String,
}

pub struct World {
    resources: BTreeMap<String, Resource>,
    operations: HashMap<String, Operation>,
    lro_wall: Duration,
    fault_rate: f64,
    /// Operations failed by `fault_rate` (not the scripted ones).
    faults_injected: u64,
    fail_next: u32,
    cancel_next: u32,
    /// Per table: how many upcoming PUTs find that another writer got in first.
    interlopers: HashMap<String, u32>,
    /// Actions callers lack (by bearer token).
    grants: Grants,
    /// The mock's clock starts here ([`Mutation::at`]).
    pub(crate) started: Instant,
    mutations: Vec<Mutation>,
}

fn key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

pub fn new_etag() -> String {
    format!("W/\"{}\"", uuid::Uuid::new_v4())
}

fn set_provisioning(resource: &mut Value, state: &str) {
    if let Some(props) = resource
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        props.insert("provisioningState".into(), json!(state));
    }
}

impl World {
    pub(crate) fn new(lro_wall: Duration, fault_rate: f64) -> Self {
        World {
            resources: BTreeMap::new(),
            operations: HashMap::new(),
            lro_wall,
            fault_rate,
            faults_injected: 0,
            fail_next: 0,
            cancel_next: 0,
            interlopers: HashMap::new(),
            grants: Grants::default(),
            started: Instant::now(),
            mutations: Vec::new(),
        }
    }

    /// Every change accepted so far, in order.
    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }

    /// Log what writing `new` over `old` changes: each route of a table created, replaced
    /// or deleted, or the NIC written.
    pub(super) fn log_changes(&mut self, id: &str, old: Option<&Value>, new: &Value) {
        let at = self.started.elapsed().as_secs_f64();
        let is_table = new["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Network/routeTables"));
        if !is_table {
            let forwarding = &new["properties"]["enableIPForwarding"];
            self.mutations.push(Mutation {
                at,
                action: "NicWritten",
                subject: key(id),
                detail: format!("enableIPForwarding={forwarding}"),
            });
            return;
        }
        let by_name = |t: Option<&Value>| -> BTreeMap<String, Value> {
            t.and_then(|t| t["properties"]["routes"].as_array())
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| {
                            let name = r["name"].as_str()?.to_ascii_lowercase();
                            Some((name, tables::strip_server_fields(r)))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (before, after) = (by_name(old), by_name(Some(new)));
        let detail = |r: &Value| {
            let p = &r["properties"];
            format!(
                "{} -> {} {}",
                p["addressPrefix"].as_str().unwrap_or_default(),
                p["nextHopType"].as_str().unwrap_or_default(),
                p["nextHopIpAddress"].as_str().unwrap_or_default()
            )
        };
        let subject = |name: &str| format!("{}/routes/{name}", key(id));
        for (name, route) in &after {
            let action = match before.get(name) {
                None => "RouteCreated",
                Some(old) if old != route => "RouteReplaced",
                Some(_) => continue,
            };
            self.mutations.push(Mutation {
                at,
                action,
                subject: subject(name),
                detail: detail(route),
            });
        }
        for (name, route) in &before {
            if !after.contains_key(name) {
                self.mutations.push(Mutation {
                    at,
                    action: "RouteDeleted",
                    subject: subject(name),
                    detail: detail(route),
                });
            }
        }
    }

    /// The resource as a GET would show it.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.resources.get(&key(id)).map(|r| r.json.clone())
    }

    /// A table's routes as a GET would show them.
    pub fn routes(&self, table_id: &str) -> Vec<Value> {
        self.get(table_id)
            .and_then(|t| t["properties"]["routes"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The next `n` PUTs of resource `id` (a route table or a NIC) find that a second
    /// writer changed it after the caller read it: the mock adds a foreign route (a table)
    /// or a tag (a NIC) and a new etag right before evaluating `If-Match`, so the PUT gets
    /// 412 exactly as in a real race.
    pub fn race_next_puts(&mut self, id: &str, n: u32) {
        self.interlopers.insert(key(id), n);
    }

    /// The caller presenting bearer token `token` lacks `action` (an RBAC action such as
    /// `Microsoft.Network/locations/operations/read`, or a linked one such as
    /// `Microsoft.Network/virtualNetworks/subnets/join/action`): requests performing it get
    /// 403 `AuthorizationFailed`, NIC writes linking it 403 `LinkedAuthorizationFailed`.
    pub fn deny(&mut self, token: &str, action: &str) {
        self.grants.deny(token, action);
    }

    pub(crate) fn grants(&self) -> &Grants {
        &self.grants
    }

    pub fn snapshot(&self) -> Value {
        let resources: Vec<Value> = self.resources.values().map(|r| r.json.clone()).collect();
        let ops: BTreeMap<&String, &str> = self
            .operations
            .iter()
            .map(|(id, op)| (id, op.status.as_str()))
            .collect();
        json!({"resources": resources, "operations": ops})
    }

    pub(crate) fn list_prefix(&self, prefix: &str, child_depth: usize) -> Vec<Value> {
        let prefix = format!("{}/", key(prefix));
        self.resources
            .iter()
            .filter(|(k, _)| {
                k.starts_with(&prefix) && k[prefix.len()..].split('/').count() == child_depth
            })
            .map(|(_, r)| r.json.clone())
            .collect()
    }
}

pub(crate) fn not_found(id: &str, kind: &str) -> ArmError {
    let name = id.rsplit('/').next().unwrap_or(id);
    let rg = id
        .split('/')
        .skip_while(|s| !s.eq_ignore_ascii_case("resourceGroups"))
        .nth(1)
        .unwrap_or("");
    ArmError::new(
        404,
        "ResourceNotFound",
        format!("The Resource '{kind}/{name}' under resource group '{rg}' was not found."),
    )
}

pub(crate) fn find_route(table: &Value, name: &str) -> Option<Value> {
    table["properties"]["routes"]
        .as_array()?
        .iter()
        .find(|r| r["name"].as_str() == Some(name))
        .cloned()
}

fn for_each_route(table: &mut Value, mut f: impl FnMut(&mut Value)) {
    if let Some(routes) = table["properties"]["routes"].as_array_mut() {
        routes.iter_mut().for_each(&mut f);
    }
}
