//! The mock's resources and long-running operations. Everything ARM decides about a write
//! (validation, etag checks, locks, quota, LRO outcome) happens here, on plain values.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

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

#[derive(Debug)]
struct Operation {
    resource: String,
    deadline: Instant,
    /// Decided when the write is accepted, revealed when it settles.
    final_status: OpStatus,
    status: OpStatus,
    /// The resource before the write, restored when the operation fails. `None` when the
    /// write created it (a failed create leaves the resource in state Failed).
    previous: Option<Value>,
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
}

fn key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

pub fn new_etag() -> String {
    format!("W/\"{}\"", uuid::Uuid::new_v4())
}

/// ARM resource names for routes: 1–80 characters, letters, digits, `_`, `.`, `-`,
/// starting with a letter or digit and ending with a letter, digit or `_`.
pub fn valid_route_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 80
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && (bytes[bytes.len() - 1].is_ascii_alphanumeric() || bytes[bytes.len() - 1] == b'_')
}

const NEXT_HOP_TYPES: &[&str] = &[
    "VirtualNetworkGateway",
    "VnetLocal",
    "Internet",
    "VirtualAppliance",
    "None",
];

/// Route fields the server owns; everything else is kept exactly as written.
fn strip_server_fields(route: &Value) -> Value {
    let mut route = route.clone();
    if let Some(obj) = route.as_object_mut() {
        obj.remove("id");
        obj.remove("etag");
        obj.remove("type");
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove("provisioningState");
        }
    }
    route
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
        }
    }

    // ---- building state -------------------------------------------------------------

    /// Add (or replace) a route table holding `routes` (ARM route JSON objects, kept as
    /// given apart from the server-owned `id`/`etag`/`type`/`provisioningState`).
    /// Returns the table's resource id.
    pub fn add_route_table(
        &mut self,
        subscription: &str,
        resource_group: &str,
        name: &str,
        location: &str,
        routes: Vec<Value>,
    ) -> String {
        let id = format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Network/routeTables/{name}"
        );
        let body = json!({
            "location": location,
            "properties": {"routes": routes, "disableBgpRoutePropagation": false},
        });
        let table = normalize_table(&id, name, &body, None, "Succeeded");
        self.resources.insert(
            key(&id),
            Resource {
                json: table,
                busy: None,
            },
        );
        id
    }

    /// Add a VM with one NIC (`<vm>-nic`) in `resource_group`.
    pub fn add_vm(
        &mut self,
        subscription: &str,
        resource_group: &str,
        name: &str,
        location: &str,
        nic: NicSpec,
    ) -> NodeIds {
        let rg = format!("/subscriptions/{subscription}/resourceGroups/{resource_group}");
        let vm_id = format!("{rg}/providers/Microsoft.Compute/virtualMachines/{name}");
        let nic_id = format!("{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic");
        let vm = json!({
            "name": name,
            "id": vm_id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": location,
            "properties": {
                "vmId": uuid::Uuid::new_v4().to_string(),
                "provisioningState": "Succeeded",
                "networkProfile": {
                    "networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]
                }
            }
        });
        self.insert(&vm_id, vm);
        let nic_json = nic_resource(
            &nic_id,
            &format!("{name}-nic"),
            "Microsoft.Network/networkInterfaces",
            location,
            &vm_id,
            &format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes"),
            nic,
        );
        self.insert(&nic_id, nic_json);
        NodeIds {
            provider_id: format!("azure://{vm_id}"),
            vm_id,
            nic_id,
        }
    }

    /// Add a uniform scale-set instance `<set>/virtualMachines/<index>` with one NIC.
    pub fn add_vmss_instance(
        &mut self,
        subscription: &str,
        resource_group: &str,
        scale_set: &str,
        index: u32,
        location: &str,
        nic: NicSpec,
    ) -> NodeIds {
        let rg = format!("/subscriptions/{subscription}/resourceGroups/{resource_group}");
        let vm_id = format!(
            "{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{scale_set}/virtualMachines/{index}"
        );
        let nic_id = format!("{vm_id}/networkInterfaces/{scale_set}-nic");
        let vm = json!({
            "name": format!("{scale_set}_{index}"),
            "id": vm_id,
            "instanceId": index.to_string(),
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "location": location,
            "properties": {
                "provisioningState": "Succeeded",
                "networkProfile": {
                    "networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]
                }
            }
        });
        self.insert(&vm_id, vm);
        let nic_json = nic_resource(
            &nic_id,
            &format!("{scale_set}-nic"),
            "Microsoft.Network/networkInterfaces",
            location,
            &vm_id,
            &format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes"),
            nic,
        );
        self.insert(&nic_id, nic_json);
        NodeIds {
            provider_id: format!("azure://{vm_id}"),
            vm_id,
            nic_id,
        }
    }

    fn insert(&mut self, id: &str, json: Value) {
        self.resources
            .insert(key(id), Resource { json, busy: None });
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

    /// Long-running operations the random fault rate made fail so far.
    pub fn faults_injected(&self) -> u64 {
        self.faults_injected
    }

    /// Make the next `n` long-running operations end `Failed`.
    pub fn fail_next_operations(&mut self, n: u32) {
        self.fail_next = n;
    }

    /// Make the next `n` long-running operations end `Canceled`.
    pub fn cancel_next_operations(&mut self, n: u32) {
        self.cancel_next = n;
    }

    /// Another writer holds `id` for `wall` (its own long-running PUT): writes get 409.
    pub fn lock_for(&mut self, id: &str, wall: Duration) -> Result<(), String> {
        let res = self
            .resources
            .get_mut(&key(id))
            .ok_or_else(|| format!("no resource {id}"))?;
        let op = uuid::Uuid::new_v4().to_string();
        res.busy = Some(op.clone());
        // What any reader sees while another write is in flight.
        set_provisioning(&mut res.json, "Updating");
        self.operations.insert(
            op,
            Operation {
                resource: key(id),
                deadline: Instant::now() + wall,
                final_status: OpStatus::Succeeded,
                status: OpStatus::InProgress,
                previous: None,
            },
        );
        Ok(())
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

    /// Give a NIC's primary IP configuration a public IP (`publicIPAddress.id`), so writing
    /// the NIC links it (ARM then checks `publicIPAddresses/join/action` on it).
    pub fn attach_public_ip(&mut self, nic_id: &str, public_ip_id: &str) -> Result<(), String> {
        let res = self
            .resources
            .get_mut(&key(nic_id))
            .ok_or_else(|| format!("no resource {nic_id}"))?;
        let config = res.json["properties"]["ipConfigurations"]
            .as_array_mut()
            .and_then(|c| c.first_mut())
            .ok_or_else(|| format!("{nic_id} has no IP configuration"))?;
        config["properties"]["publicIPAddress"] = json!({ "id": public_ip_id });
        res.json["etag"] = json!(new_etag());
        Ok(())
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

    // ---- serving --------------------------------------------------------------------

    /// Finish every operation whose time has come.
    pub(crate) fn settle(&mut self, now: Instant) {
        let due: Vec<String> = self
            .operations
            .iter()
            .filter(|(_, op)| op.status == OpStatus::InProgress && op.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let op = self.operations.get_mut(&id).expect("due op");
            op.status = op.final_status;
            let previous = op.previous.take();
            let status = op.status;
            let resource_key = op.resource.clone();
            let Some(res) = self.resources.get_mut(&resource_key) else {
                continue;
            };
            if res.busy.as_deref() == Some(id.as_str()) {
                res.busy = None;
            }
            match (status, previous) {
                (OpStatus::Succeeded, _) => {
                    set_provisioning(&mut res.json, "Succeeded");
                    for_each_route(&mut res.json, |r| set_provisioning(r, "Succeeded"));
                }
                (_, Some(previous)) => {
                    // The goal state was never reached: ARM keeps the last good
                    // configuration and marks the resource Failed.
                    res.json = previous;
                    set_provisioning(&mut res.json, "Failed");
                }
                (_, None) => set_provisioning(&mut res.json, "Failed"),
            }
        }
    }

    pub(crate) fn operation(&self, id: &str) -> Option<(OpStatus, Duration)> {
        self.operations.get(id).map(|op| {
            (
                op.status,
                op.deadline.saturating_duration_since(Instant::now()),
            )
        })
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

    fn check_writable(&self, id: &str, if_match: Option<&str>) -> Result<(), ArmError> {
        let res = self.resources.get(&key(id));
        if let Some(res) = res
            && let Some(op) = &res.busy
        {
            let remaining = self
                .operations
                .get(op)
                .map(|o| o.deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            let mut err = ArmError::new(
                409,
                "AnotherOperationInProgress",
                format!(
                    "Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: operations/{op}. Resource: {id}"
                ),
            );
            err.retry_after = Some(remaining);
            return Err(err);
        }
        match (if_match, res) {
            (None, _) => Ok(()),
            (Some("*"), Some(_)) => Ok(()),
            (Some(tag), Some(res)) if res.json["etag"].as_str() == Some(tag) => Ok(()),
            _ => Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition specified using HTTP conditional header(s) is not met.",
            )),
        }
    }

    fn start_operation(&mut self, id: &str, previous: Option<Value>) -> (String, OpStatus) {
        let final_status = if self.cancel_next > 0 {
            self.cancel_next -= 1;
            OpStatus::Canceled
        } else if self.fail_next > 0 {
            self.fail_next -= 1;
            OpStatus::Failed
        } else if self.fault_rate > 0.0 && rand::random::<f64>() < self.fault_rate {
            self.faults_injected += 1;
            OpStatus::Failed
        } else {
            OpStatus::Succeeded
        };
        let op_id = uuid::Uuid::new_v4().to_string();
        self.operations.insert(
            op_id.clone(),
            Operation {
                resource: key(id),
                deadline: Instant::now() + self.lro_wall,
                final_status,
                status: OpStatus::InProgress,
                previous,
            },
        );
        (op_id, final_status)
    }

    fn interloper(&mut self, id: &str) {
        let k = key(id);
        let Some(n) = self.interlopers.get_mut(&k) else {
            return;
        };
        if *n == 0 {
            return;
        }
        *n -= 1;
        if let Some(res) = self.resources.get_mut(&k) {
            let name = format!("second-writer-{}", uuid::Uuid::new_v4().simple());
            let route = json!({
                "name": name,
                "id": format!("{id}/routes/{name}"),
                "etag": res.json["etag"],
                "type": "Microsoft.Network/routeTables/routes",
                "properties": {
                    "addressPrefix": "192.0.2.0/24",
                    "nextHopType": "VirtualAppliance",
                    "nextHopIpAddress": "10.255.0.1",
                    "provisioningState": "Succeeded",
                    "hasBgpOverride": false
                }
            });
            if let Some(routes) = res.json["properties"]["routes"].as_array_mut() {
                routes.push(route);
            } else {
                // Not a table (a NIC): the other writer sets a tag.
                res.json["tags"]["second-writer"] = json!(name);
            }
            res.json["etag"] = json!(new_etag());
        }
    }

    /// PUT a whole route table.
    pub(crate) fn put_route_table(
        &mut self,
        id: &str,
        name: &str,
        body: &Value,
        if_match: Option<&str>,
        if_none_match: Option<&str>,
        route_limit: usize,
    ) -> Result<Accepted, ArmError> {
        self.interloper(id);
        let existing = self.resources.get(&key(id)).map(|r| r.json.clone());
        if if_none_match == Some("*") && existing.is_some() {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition specified using HTTP conditional header(s) is not met.",
            ));
        }
        self.check_writable(id, if_match)?;
        let location = body["location"]
            .as_str()
            .or_else(|| existing.as_ref().and_then(|e| e["location"].as_str()))
            .ok_or_else(|| {
                ArmError::new(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?
            .to_owned();
        validate_routes(body, route_limit, id)?;
        let table = normalize_table(id, name, body, existing.as_ref(), "Updating");
        self.accept(id, table, existing, &location)
    }

    /// PUT one route (the table stays locked while it runs).
    pub(crate) fn put_route(
        &mut self,
        table_id: &str,
        route_name: &str,
        body: &Value,
        route_limit: usize,
    ) -> Result<Accepted, ArmError> {
        let table = self
            .get(table_id)
            .ok_or_else(|| not_found(table_id, "Microsoft.Network/routeTables"))?;
        self.check_writable(table_id, None)?;
        let mut routes = table["properties"]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut route = body.clone();
        route["name"] = json!(route_name);
        let created = match routes
            .iter_mut()
            .find(|r| r["name"].as_str() == Some(route_name))
        {
            Some(slot) => {
                *slot = route;
                false
            }
            None => {
                routes.push(route);
                true
            }
        };
        let mut new_body = table.clone();
        new_body["properties"]["routes"] = json!(routes);
        validate_routes(&new_body, route_limit, table_id)?;
        let table_name = table["name"].as_str().unwrap_or_default().to_owned();
        let location = table["location"].as_str().unwrap_or_default().to_owned();
        let normalized =
            normalize_table(table_id, &table_name, &new_body, Some(&table), "Updating");
        let mut accepted = self.accept(table_id, normalized, Some(table), &location)?;
        accepted.created = created;
        accepted.body = find_route(&accepted.body, route_name).unwrap_or(Value::Null);
        Ok(accepted)
    }

    /// DELETE one route: `Ok(None)` when it did not exist (ARM answers 204).
    pub(crate) fn delete_route(
        &mut self,
        table_id: &str,
        route_name: &str,
    ) -> Result<Option<Accepted>, ArmError> {
        let table = self
            .get(table_id)
            .ok_or_else(|| not_found(table_id, "Microsoft.Network/routeTables"))?;
        if find_route(&table, route_name).is_none() {
            return Ok(None);
        }
        self.check_writable(table_id, None)?;
        let mut new_body = table.clone();
        if let Some(routes) = new_body["properties"]["routes"].as_array_mut() {
            routes.retain(|r| r["name"].as_str() != Some(route_name));
        }
        let table_name = table["name"].as_str().unwrap_or_default().to_owned();
        let location = table["location"].as_str().unwrap_or_default().to_owned();
        let normalized =
            normalize_table(table_id, &table_name, &new_body, Some(&table), "Updating");
        self.accept(table_id, normalized, Some(table), &location)
            .map(Some)
    }

    /// PUT a network interface (only `Microsoft.Network/networkInterfaces` ones: scale-set
    /// NICs are configured through the scale set model).
    pub(crate) fn put_nic(
        &mut self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Accepted, ArmError> {
        self.interloper(id);
        let existing = self
            .get(id)
            .ok_or_else(|| not_found(id, "Microsoft.Network/networkInterfaces"))?;
        self.check_writable(id, if_match)?;
        let Some(props) = body["properties"].as_object() else {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                "Cannot parse the request: 'properties' is missing.",
            ));
        };
        if let Some(v) = props.get("enableIPForwarding")
            && !v.is_boolean()
        {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                "Cannot parse the request: enableIPForwarding must be a boolean.",
            ));
        }
        let mut nic = existing.clone();
        let mut merged = props.clone();
        for server in [
            "provisioningState",
            "resourceGuid",
            "virtualMachine",
            "macAddress",
        ] {
            if let Some(v) = existing["properties"].get(server) {
                merged.insert(server.into(), v.clone());
            }
        }
        nic["properties"] = Value::Object(merged);
        if let Some(tags) = body.get("tags") {
            nic["tags"] = tags.clone();
        }
        nic["etag"] = json!(new_etag());
        set_provisioning(&mut nic, "Updating");
        let location = existing["location"].as_str().unwrap_or_default().to_owned();
        self.accept(id, nic, Some(existing), &location)
    }

    fn accept(
        &mut self,
        id: &str,
        mut json: Value,
        previous: Option<Value>,
        location: &str,
    ) -> Result<Accepted, ArmError> {
        let created = previous.is_none();
        let (op_id, _) = self.start_operation(id, previous);
        set_provisioning(&mut json, "Updating");
        self.resources.insert(
            key(id),
            Resource {
                json: json.clone(),
                busy: Some(op_id.clone()),
            },
        );
        let subscription = id.split('/').nth(2).unwrap_or_default().to_owned();
        Ok(Accepted {
            created,
            body: json,
            operation_id: op_id,
            remaining: self.lro_wall,
            location: location.to_owned(),
            subscription,
        })
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

fn validate_routes(body: &Value, limit: usize, table_id: &str) -> Result<usize, ArmError> {
    let routes = match body["properties"].get("routes") {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Array(r)) => r,
        Some(_) => {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                "Cannot parse the request: properties.routes must be an array.",
            ));
        }
    };
    let mut names = std::collections::HashSet::new();
    for route in routes {
        let name = route["name"].as_str().unwrap_or_default();
        if !valid_route_name(name) {
            return Err(ArmError::new(
                400,
                "InvalidResourceName",
                format!(
                    "Resource name {name} is invalid. The name can be up to 80 characters long. It must begin with a word character, and it must end with a word character or with '_'. The name may contain word characters or '.', '-', '_'."
                ),
            ));
        }
        if !names.insert(name.to_ascii_lowercase()) {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!("Cannot parse the request: duplicate route name {name}."),
            ));
        }
        let props = &route["properties"];
        let prefix = props["addressPrefix"].as_str().unwrap_or_default();
        let is_cidr = prefix.parse::<ipnet::IpNet>().is_ok();
        let is_service_tag = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if !is_cidr && !is_service_tag {
            return Err(ArmError::new(
                400,
                "InvalidAddressPrefixFormat",
                format!("Address prefix {prefix} of route {name} has an invalid format."),
            ));
        }
        let hop_type = props["nextHopType"].as_str().unwrap_or_default();
        if !NEXT_HOP_TYPES.contains(&hop_type) {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!("Cannot parse the request: invalid nextHopType '{hop_type}'."),
            ));
        }
        let hop_ip = props["nextHopIpAddress"].as_str();
        match (hop_type, hop_ip) {
            ("VirtualAppliance", Some(ip)) if ip.parse::<std::net::IpAddr>().is_ok() => {}
            ("VirtualAppliance", _) => {
                return Err(ArmError::new(
                    400,
                    "InvalidNextHopIpAddress",
                    format!(
                        "Route {name} has next hop type VirtualAppliance and needs a valid nextHopIpAddress."
                    ),
                ));
            }
            (_, Some(_)) => {
                return Err(ArmError::new(
                    400,
                    "NextHopIpAddressNotAllowed",
                    format!(
                        "Route {name} may only have a nextHopIpAddress with next hop type VirtualAppliance."
                    ),
                ));
            }
            _ => {}
        }
    }
    if routes.len() > limit {
        return Err(ArmError::new(
            400,
            "RouteTableRouteLimitExceeded",
            format!(
                "Route table {table_id} has {} routes, which exceeds the limit of {limit} routes per route table.",
                routes.len()
            ),
        ));
    }
    Ok(routes.len())
}

/// The stored form of a table: the caller's JSON with ARM's server-owned fields set.
/// A route keeps its etag when its content did not change.
fn normalize_table(
    id: &str,
    name: &str,
    body: &Value,
    existing: Option<&Value>,
    state: &str,
) -> Value {
    let etag = new_etag();
    let mut props: Map<String, Value> = body["properties"].as_object().cloned().unwrap_or_default();
    let old_routes: HashMap<String, Value> = existing
        .and_then(|e| e["properties"]["routes"].as_array())
        .map(|rs| {
            rs.iter()
                .filter_map(|r| Some((r["name"].as_str()?.to_ascii_lowercase(), r.clone())))
                .collect()
        })
        .unwrap_or_default();
    let routes: Vec<Value> = props
        .get("routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|route| {
            let name = route["name"].as_str().unwrap_or_default().to_owned();
            if let Some(old) = old_routes.get(&name.to_ascii_lowercase())
                && strip_server_fields(old) == strip_server_fields(&route)
            {
                return old.clone();
            }
            let mut r = route;
            r["id"] = json!(format!("{id}/routes/{name}"));
            r["etag"] = json!(etag);
            r["type"] = json!("Microsoft.Network/routeTables/routes");
            if !r["properties"].is_object() {
                r["properties"] = json!({});
            }
            r["properties"]["provisioningState"] = json!(state);
            r
        })
        .collect();
    props.insert("routes".into(), json!(routes));
    props.insert("provisioningState".into(), json!(state));
    let guid = existing
        .and_then(|e| e["properties"]["resourceGuid"].as_str().map(str::to_owned))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    props.insert("resourceGuid".into(), json!(guid));
    props
        .entry("disableBgpRoutePropagation")
        .or_insert(json!(false));
    let location = body["location"]
        .as_str()
        .or_else(|| existing.and_then(|e| e["location"].as_str()))
        .unwrap_or_default();
    let mut table = json!({
        "name": name,
        "id": id,
        "etag": etag,
        "type": "Microsoft.Network/routeTables",
        "location": location,
        "properties": props,
    });
    if let Some(tags) = body.get("tags") {
        table["tags"] = tags.clone();
    }
    table
}

fn nic_resource(
    id: &str,
    name: &str,
    kind: &str,
    location: &str,
    vm_id: &str,
    subnet_id: &str,
    spec: NicSpec,
) -> Value {
    let etag = new_etag();
    let mut ip_configs = vec![json!({
        "name": "ipconfig1",
        "id": format!("{id}/ipConfigurations/ipconfig1"),
        "etag": etag,
        "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
        "properties": {
            "provisioningState": "Succeeded",
            "privateIPAddress": spec.ipv4.to_string(),
            "privateIPAllocationMethod": "Dynamic",
            "privateIPAddressVersion": "IPv4",
            "primary": true,
            "subnet": {"id": subnet_id}
        }
    })];
    if let Some(v6) = spec.ipv6 {
        ip_configs.push(json!({
            "name": "ipconfig-v6",
            "id": format!("{id}/ipConfigurations/ipconfig-v6"),
            "etag": etag,
            "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
            "properties": {
                "provisioningState": "Succeeded",
                "privateIPAddress": v6.to_string(),
                "privateIPAllocationMethod": "Dynamic",
                "privateIPAddressVersion": "IPv6",
                "primary": false,
                "subnet": {"id": subnet_id}
            }
        }));
    }
    json!({
        "name": name,
        "id": id,
        "etag": etag,
        "type": kind,
        "location": location,
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": uuid::Uuid::new_v4().to_string(),
            "ipConfigurations": ip_configs,
            "enableAcceleratedNetworking": false,
            "enableIPForwarding": spec.ip_forwarding,
            "primary": true,
            "virtualMachine": {"id": vm_id},
            "nicType": "Standard"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_follow_arm_rules() {
        assert!(valid_route_name("k1--10.244.0.0_24"));
        assert!(valid_route_name("a"));
        assert!(!valid_route_name("-a"));
        assert!(!valid_route_name("a-"));
        assert!(!valid_route_name("a/b"));
        assert!(!valid_route_name(&"a".repeat(81)));
    }

    #[test]
    fn quota_and_validation_errors_carry_arm_codes() {
        let mut w = World::new(Duration::ZERO, 0.0);
        let id = w.add_route_table("s", "rg", "rt", "westeurope", vec![]);
        let routes: Vec<Value> = (0..3)
            .map(|i| json!({"name": format!("r{i}"), "properties": {"addressPrefix": format!("10.0.{i}.0/24"), "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.4"}}))
            .collect();
        let body = json!({"location": "westeurope", "properties": {"routes": routes}});
        let err = w
            .put_route_table(&id, "rt", &body, None, None, 2)
            .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, "RouteTableRouteLimitExceeded")
        );
        let bad = json!({"location": "westeurope", "properties": {"routes": [{"name": "x", "properties": {"addressPrefix": "10.0.0.0/24", "nextHopType": "VirtualAppliance"}}]}});
        assert_eq!(
            w.put_route_table(&id, "rt", &bad, None, None, 400)
                .unwrap_err()
                .code,
            "InvalidNextHopIpAddress"
        );
        // Nothing changed by the refused writes.
        assert!(w.routes(&id).is_empty());
    }

    #[test]
    fn etag_lock_and_failed_operation_semantics() {
        let mut w = World::new(Duration::from_secs(3600), 0.0);
        let id = w.add_route_table("s", "rg", "rt", "westeurope", vec![]);
        let etag = w.get(&id).unwrap()["etag"].as_str().unwrap().to_owned();
        let body = json!({"properties": {"routes": [{"name": "r", "properties": {"addressPrefix": "10.0.0.0/24", "nextHopType": "None"}}]}});
        assert_eq!(
            w.put_route_table(&id, "rt", &body, Some("W/\"other\""), None, 400)
                .unwrap_err()
                .status,
            412
        );
        w.fail_next_operations(1);
        let ok = w
            .put_route_table(&id, "rt", &body, Some(&etag), None, 400)
            .unwrap();
        assert!(!ok.created);
        assert_eq!(
            w.put_route_table(&id, "rt", &body, None, None, 400)
                .unwrap_err()
                .code,
            "AnotherOperationInProgress"
        );
        w.settle(Instant::now() + Duration::from_secs(7200));
        assert_eq!(w.operation(&ok.operation_id).unwrap().0, OpStatus::Failed);
        let table = w.get(&id).unwrap();
        assert_eq!(table["properties"]["provisioningState"], "Failed");
        assert!(
            w.routes(&id).is_empty(),
            "a failed write leaves the old routes"
        );
    }
}
