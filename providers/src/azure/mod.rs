//! Azure: route tables through Azure Resource Manager.
//!
//! A thin typed ARM client over `reqwest` ([`arm`]) with `azure_identity` credentials
//! ([`credential`]). Every pass writes a table with ONE conditional PUT: read the table
//! and its etag, fold the batch into the route list in memory ([`merge`], pure), PUT it
//! with `If-Match`, follow the long-running operation and report its true outcome.

pub mod arm;
pub mod credential;
pub mod ids;
pub mod merge;
pub mod models;
pub mod naming;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use serde_json::{Value, json};

use self::arm::{ArmClient, ArmResponse, LroOutcome, WrittenResource, is_lock_conflict};
use self::credential::TokenProvider;
use self::ids::NodeRef;
use self::merge::{Disposition, merge, owned_destination};
use self::models::{
    COMPUTE_API_VERSION, IpConfigView, ListView, NETWORK_API_VERSION, NicView, RouteTableView,
    VMSS_NIC_API_VERSION, VmView,
};
use self::naming::RouteNamer;
use crate::fence::WriteFence;
use crate::pacing::PacingConfig;
use crate::retry::RetryPolicy;
use crate::{
    ApiCounters, ChangeOutcome, Claim, Cloud, CloudError, CloudProvider, ErrorKind, Families,
    ForwardingChange, NextHop, NodeTarget, QuotaScope, Route, RouteChange, RouteOrigin, RouteQuota,
    RouteState, RouteTable, TableId,
};

const OP_TABLE_READ: &str = "Microsoft.Network/routeTables/read";
const OP_TABLE_WRITE: &str = "Microsoft.Network/routeTables/write";
const OP_OPERATION_READ: &str = "Microsoft.Network/locations/operations/read";
const OP_NIC_READ: &str = "Microsoft.Network/networkInterfaces/read";
const OP_NIC_WRITE: &str = "Microsoft.Network/networkInterfaces/write";
const OP_VM_READ: &str = "Microsoft.Compute/virtualMachines/read";
const OP_VMSS_NIC_READ: &str =
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read";
const OP_SUBNET_JOIN: &str = "Microsoft.Network/virtualNetworks/subnets/join/action";
const OP_PUBLIC_IP_JOIN: &str = "Microsoft.Network/publicIPAddresses/join/action";

/// Every ARM operation the Azure provider can invoke, and the linked actions ARM checks when
/// it does: the custom roles in terraform/ grant exactly these, and a test holds the provider
/// (and the mock) to the list.
pub const OPERATIONS: &[&str] = &[
    OP_TABLE_READ,
    OP_TABLE_WRITE,
    OP_OPERATION_READ,
    OP_NIC_READ,
    OP_NIC_WRITE,
    OP_VM_READ,
    OP_VMSS_NIC_READ,
    OP_SUBNET_JOIN,
    OP_PUBLIC_IP_JOIN,
];

/// ARM's linked authorization on the NIC write that turns IP forwarding on: the caller must
/// also hold `join/action` on the resources the NIC references (each IP configuration's
/// subnet, and its public IP if it has one), or the PUT is refused with 403
/// `LinkedAuthorizationFailed`. Never called, so never counted; granted on those resources.
pub const LINKED_OPERATIONS: &[&str] = &[OP_SUBNET_JOIN, OP_PUBLIC_IP_JOIN];

/// ARM's published limit of routes per table.
pub const DEFAULT_ROUTE_LIMIT: u32 = 400;

#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// `https://management.azure.com` (or the mock's URL).
    pub endpoint: String,
    /// The subscription short table names (`<resource group>/<name>`) live in.
    pub subscription_id: String,
    /// Managed tables: `<resource group>/<name>` or full resource ids.
    pub tables: Vec<String>,
    /// This cluster's route-name prefix (see [`naming`]).
    pub route_prefix: String,
    pub route_limit: u32,
    pub pacing: PacingConfig,
    pub retry: RetryPolicy,
    /// Read-modify-write rounds per `apply` before giving up on 412 / 409 races.
    pub max_write_rounds: u32,
    pub request_timeout: Duration,
    /// How long (cloud time) to follow one long-running operation.
    pub lro_timeout: Duration,
}

impl AzureConfig {
    pub fn new(subscription_id: &str, tables: Vec<String>, route_prefix: &str) -> Self {
        AzureConfig {
            endpoint: "https://management.azure.com".into(),
            subscription_id: subscription_id.into(),
            tables,
            route_prefix: route_prefix.into(),
            route_limit: DEFAULT_ROUTE_LIMIT,
            pacing: PacingConfig::default(),
            retry: RetryPolicy::default(),
            max_write_rounds: 12,
            request_timeout: Duration::from_secs(30),
            lro_timeout: Duration::from_secs(600),
        }
    }
}

pub struct AzureProvider {
    arm: ArmClient,
    tables: Vec<TableId>,
    namer: RouteNamer,
    route_limit: u32,
    max_write_rounds: u32,
    resolve_concurrency: usize,
    /// NIC bodies read while resolving, so the node's forwarding check that follows right
    /// after can start from them instead of reading the NIC again: one ARM read per node
    /// saved out of three. Taken on use; older than [`SEEN_NIC_TTL`] (cloud time) is read
    /// again.
    seen_nics: std::sync::Mutex<HashMap<String, (std::time::Instant, Value)>>,
}

/// How long a NIC read during resolution stands in for the forwarding check's own read.
const SEEN_NIC_TTL: Duration = Duration::from_secs(30);
/// Plain VMs of one resource group from which resolution lists the group (VMs and NICs)
/// instead of reading each VM and its NIC.
const LIST_FROM: usize = 4;
/// Bound on remembered NIC bodies (nodes resolved but never prepared).
const SEEN_NIC_MAX: usize = 4096;

impl AzureProvider {
    pub fn new(config: AzureConfig, tokens: Arc<dyn TokenProvider>) -> Result<Self, CloudError> {
        let invalid = |m: String| CloudError::new(ErrorKind::Permanent, "InvalidConfig", m);
        config.pacing.validate().map_err(invalid)?;
        let namer = RouteNamer::new(&config.route_prefix).map_err(invalid)?;
        if config.subscription_id.is_empty() {
            return Err(invalid("the Azure subscription id is empty".into()));
        }
        if config.tables.is_empty() {
            return Err(invalid("no Azure route tables configured".into()));
        }
        if config.route_limit == 0 || config.max_write_rounds == 0 {
            return Err(invalid("route limit and write rounds must be ≥ 1".into()));
        }
        let mut tables = Vec::new();
        for t in &config.tables {
            let id = TableId(ids::table_id(&config.subscription_id, t).map_err(invalid)?);
            if !tables.contains(&id) {
                tables.push(id);
            }
        }
        let endpoint = config.endpoint.trim_end_matches('/');
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(invalid(format!(
                "endpoint {endpoint:?} is not an http(s) URL"
            )));
        }
        Ok(AzureProvider {
            arm: ArmClient::new(
                endpoint,
                tokens,
                config.pacing,
                config.retry,
                config.request_timeout,
                config.lro_timeout,
            )?,
            tables,
            namer,
            route_limit: config.route_limit,
            max_write_rounds: config.max_write_rounds,
            resolve_concurrency: 16,
            seen_nics: Default::default(),
        })
    }

    pub fn namer(&self) -> &RouteNamer {
        &self.namer
    }

    async fn read_table(&self, table: &TableId) -> Result<(Value, RouteTableView), CloudError> {
        let resp = self
            .arm
            .get(OP_TABLE_READ, &table.0, NETWORK_API_VERSION)
            .await?;
        let view: RouteTableView = resp.parse("route table")?;
        Ok((resp.body, view))
    }

    fn to_route(&self, raw: &Value) -> Option<Route> {
        let view: models::RouteView = serde_json::from_value(raw.clone()).ok()?;
        // Service-tag destinations (`AzureCloud`, …) are not CIDRs and never ours.
        let destination = view.properties.address_prefix.as_deref()?.parse().ok()?;
        let hop_type = view.properties.next_hop_type.unwrap_or_default();
        let next_hop = match (
            hop_type.as_str(),
            view.properties
                .next_hop_ip_address
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        ) {
            ("VirtualAppliance", Some(ip)) => NextHop::IpAddress(ip),
            (other, Some(ip)) => NextHop::Other(format!("{other}:{ip}")),
            (other, None) => NextHop::Other(other.to_owned()),
        };
        let claim = if owned_destination(&self.namer, raw).is_some() {
            Claim::Cluster
        } else {
            Claim::Foreign
        };
        Some(Route {
            destination,
            next_hop,
            state: RouteState::Active,
            origin: RouteOrigin::Manual,
            claim,
            name: Some(view.name),
        })
    }

    /// One read-modify-write round. `Ok(None)` means "lost a race; read again".
    async fn write_round(
        &self,
        table: &TableId,
        changes: &[RouteChange],
        fence: &dyn WriteFence,
    ) -> Result<Option<Vec<Disposition>>, CloudError> {
        let (mut raw, view) = self.read_table(table).await?;
        let current: Vec<Value> = raw["properties"]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let merged = merge(&current, changes, &self.namer, self.route_limit as usize);
        if !merged.needs_write() {
            return Ok(Some(merged.dispositions));
        }
        raw["properties"]["routes"] = json!(merged.routes);
        let accepted = match self
            .arm
            .put(
                OP_TABLE_WRITE,
                &table.0,
                NETWORK_API_VERSION,
                &raw,
                view.etag.as_deref(),
                fence,
            )
            .await
        {
            Ok(a) => a,
            Err(e) if e.http_status == Some(412) => {
                tracing::debug!(table = %table, "route table changed since read (412): re-reading");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let written = WrittenResource {
            read_op: OP_TABLE_READ,
            path: &table.0,
            api_version: NETWORK_API_VERSION,
        };
        match self.arm.wait(OP_OPERATION_READ, &accepted, written).await? {
            LroOutcome::Succeeded => Ok(Some(merged.dispositions)),
            LroOutcome::Failed(err) => Err(err),
        }
    }
}

fn outcomes(
    changes: &[RouteChange],
    result: Result<Vec<Disposition>, CloudError>,
) -> Vec<ChangeOutcome> {
    match result {
        Ok(dispositions) => changes
            .iter()
            .zip(dispositions)
            .map(|(change, d)| ChangeOutcome {
                change: change.clone(),
                result: match d {
                    Disposition::Write | Disposition::AlreadyDone => Ok(()),
                    Disposition::Refused(e) => Err(e),
                },
            })
            .collect(),
        // The whole PUT failed: every change in it failed (the table kept its old routes).
        Err(err) => changes
            .iter()
            .map(|change| ChangeOutcome {
                change: change.clone(),
                result: Err(err.clone()),
            })
            .collect(),
    }
}

fn pick_ips(configs: &[IpConfigView]) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    // The primary IP configuration first, then the rest in ARM's order.
    let mut ordered: Vec<&IpConfigView> = configs.iter().collect();
    ordered.sort_by_key(|c| !c.properties.primary.unwrap_or(false));
    let mut v4 = None;
    let mut v6 = None;
    for c in ordered {
        match c
            .properties
            .private_ip_address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok())
        {
            Some(IpAddr::V4(a)) if v4.is_none() => v4 = Some(a),
            Some(IpAddr::V6(a)) if v6.is_none() => v6 = Some(a),
            _ => {}
        }
    }
    (v4, v6)
}

fn vm_primary_nic(vm: &VmView) -> Option<&str> {
    primary_nic(
        vm.properties
            .network_profile
            .network_interfaces
            .iter()
            .map(|n| (n.id.as_str(), n.properties.as_ref().and_then(|p| p.primary))),
    )
}

/// `/subscriptions/<s>/resourceGroups/<rg>` of a resource id.
fn resource_group_scope(id: &str) -> Option<&str> {
    let at = id.to_ascii_lowercase().find("/providers/")?;
    Some(&id[..at])
}

/// A node's target from its primary NIC.
fn target_of(node: &NodeRef, nic: NicView) -> Result<NodeTarget, CloudError> {
    let (ipv4, ipv6) = pick_ips(&nic.properties.ip_configurations);
    if ipv4.is_none() && ipv6.is_none() {
        return Err(CloudError::new(
            ErrorKind::NotFound,
            "NoPrivateIp",
            format!("network interface {} has no private IP address", nic.id),
        ));
    }
    Ok(NodeTarget {
        instance_id: node.id().to_owned(),
        interface_id: nic.id,
        ipv4,
        ipv6,
        // Azure has no cluster tag on the VM to check: membership is decided by the
        // subscription / resource groups the identity can read.
        cluster_member: true,
        next_hop_v4: ipv4.map(|a| NextHop::IpAddress(a.into())),
        next_hop_v6: ipv6.map(|a| NextHop::IpAddress(a.into())),
    })
}

fn primary_nic<'a>(ids: impl Iterator<Item = (&'a str, Option<bool>)>) -> Option<&'a str> {
    let all: Vec<(&str, Option<bool>)> = ids.collect();
    all.iter()
        .find(|(_, p)| *p == Some(true))
        .or_else(|| (all.len() == 1).then(|| &all[0]))
        .map(|(id, _)| *id)
}

fn is_scale_set_nic(nic_id: &str) -> bool {
    nic_id
        .to_ascii_lowercase()
        .contains("/providers/microsoft.compute/virtualmachinescalesets/")
}

impl AzureProvider {
    async fn resolve_one(&self, provider_id: &str) -> Result<NodeTarget, CloudError> {
        let node = ids::parse_provider_id(provider_id)?;
        let no_nic = || {
            CloudError::new(
                ErrorKind::NotFound,
                "PrimaryNicNotFound",
                format!("{provider_id} has no primary network interface"),
            )
        };
        let nic: NicView = match &node {
            NodeRef::Vm { id } => {
                let vm: VmView = self
                    .arm
                    .get(OP_VM_READ, id, COMPUTE_API_VERSION)
                    .await?
                    .parse("virtual machine")?;
                let nic_id = vm_primary_nic(&vm).ok_or_else(no_nic)?;
                let resp = self
                    .arm
                    .get(OP_NIC_READ, nic_id, NETWORK_API_VERSION)
                    .await?;
                let nic: NicView = resp.parse("network interface")?;
                self.remember_nic(&nic.id, resp.body);
                nic
            }
            NodeRef::ScaleSetInstance { id } => {
                let list: ListView<NicView> = self
                    .arm
                    .get(
                        OP_VMSS_NIC_READ,
                        &format!("{id}/networkInterfaces"),
                        VMSS_NIC_API_VERSION,
                    )
                    .await?
                    .parse("scale-set network interfaces")?;
                let nic_id = primary_nic(
                    list.value
                        .iter()
                        .map(|n| (n.id.as_str(), n.properties.primary)),
                )
                .ok_or_else(no_nic)?
                .to_owned();
                list.value
                    .into_iter()
                    .find(|n| n.id == nic_id)
                    .ok_or_else(no_nic)?
            }
        };
        target_of(&node, nic)
    }

    /// Resolves the plain VMs of one resource group from two paged lists (its VMs, its
    /// NICs) instead of two GETs per VM. `members` are (providerID, VM id); what the lists
    /// cannot answer (a VM created since, a NIC in another group) is left out of the result
    /// for the caller to resolve one by one.
    async fn resolve_group(
        &self,
        scope: &str,
        members: &[(String, String)],
    ) -> Result<Vec<(String, Result<NodeTarget, CloudError>)>, CloudError> {
        let vm_list = format!("{scope}/providers/Microsoft.Compute/virtualMachines");
        let nic_list = format!("{scope}/providers/Microsoft.Network/networkInterfaces");
        let (vms, nics) = futures::join!(
            self.arm.list(OP_VM_READ, &vm_list, COMPUTE_API_VERSION),
            self.arm.list(OP_NIC_READ, &nic_list, NETWORK_API_VERSION),
        );
        let mut vm_by_id: HashMap<String, VmView> = HashMap::new();
        for v in vms? {
            let vm: VmView = arm::parse_value(&v, "virtual machine")?;
            vm_by_id.insert(vm.id.to_ascii_lowercase(), vm);
        }
        let mut nic_by_id: HashMap<String, (NicView, Value)> = HashMap::new();
        for v in nics? {
            let nic: NicView = arm::parse_value(&v, "network interface")?;
            nic_by_id.insert(nic.id.to_ascii_lowercase(), (nic, v));
        }
        let mut out = Vec::new();
        for (provider_id, vm_id) in members {
            let Some(vm) = vm_by_id.get(&vm_id.to_ascii_lowercase()) else {
                continue;
            };
            let Some(nic_id) = vm_primary_nic(vm) else {
                continue;
            };
            let Some((nic, body)) = nic_by_id.get(&nic_id.to_ascii_lowercase()) else {
                continue;
            };
            self.remember_nic(&nic.id, body.clone());
            let node = NodeRef::Vm { id: vm_id.clone() };
            out.push((provider_id.clone(), target_of(&node, nic.clone())));
        }
        Ok(out)
    }

    fn remember_nic(&self, nic_id: &str, body: Value) {
        let ttl = self.arm.wall(SEEN_NIC_TTL);
        let mut seen = self.seen_nics.lock().expect("seen NICs lock");
        if seen.len() >= SEEN_NIC_MAX {
            seen.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        if seen.len() < SEEN_NIC_MAX {
            seen.insert(nic_id.to_owned(), (std::time::Instant::now(), body));
        }
    }

    /// The NIC as resolution just read it, if that was recent enough.
    fn take_seen_nic(&self, nic_id: &str) -> Option<ArmResponse> {
        let ttl = self.arm.wall(SEEN_NIC_TTL);
        let (at, body) = self
            .seen_nics
            .lock()
            .expect("seen NICs lock")
            .remove(nic_id)?;
        (at.elapsed() < ttl).then_some(ArmResponse {
            status: 200,
            body,
            async_operation: None,
            retry_after: None,
        })
    }

    async fn read_nic(&self, nic_id: &str) -> Result<ArmResponse, CloudError> {
        if is_scale_set_nic(nic_id) {
            self.arm
                .get(OP_VMSS_NIC_READ, nic_id, VMSS_NIC_API_VERSION)
                .await
        } else {
            self.arm.get(OP_NIC_READ, nic_id, NETWORK_API_VERSION).await
        }
    }
}

#[async_trait]
impl CloudProvider for AzureProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Azure
    }

    async fn discover_tables(&self) -> Result<Vec<TableId>, CloudError> {
        Ok(self.tables.clone())
    }

    async fn list_table(&self, table: &TableId) -> Result<RouteTable, CloudError> {
        let (raw, view) = self.read_table(table).await?;
        // While a write is in flight (ours or anyone's) ARM already shows the routes it
        // asked for; they are facts only once the table says Succeeded.
        if let Some(state) = view.properties.provisioning_state.as_deref()
            && state != "Succeeded"
        {
            return Err(CloudError::new(
                ErrorKind::Transient,
                "RouteTableNotSucceeded",
                format!(
                    "route table {table} is {state}: its routes are not verified until it is \
                     Succeeded{}",
                    if state == "Failed" {
                        " (its last write failed; the next write of the table clears it)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let raw_routes = raw["properties"]["routes"].as_array();
        let routes: Vec<Route> = raw_routes
            .map(|rs| rs.iter().filter_map(|r| self.to_route(r)).collect())
            .unwrap_or_default();
        // Service-tag routes are not in the model but count against the table's 400.
        let unlisted_routes = raw_routes.map_or(0, |rs| rs.len() - routes.len()) as u32;
        Ok(RouteTable {
            id: TableId(view.id),
            name: view.name,
            families: Families::BOTH,
            quota: RouteQuota {
                limit: self.route_limit,
                scope: QuotaScope::Shared,
            },
            routes,
            version: view.etag,
            unlisted_routes,
        })
    }

    async fn apply_fenced(
        &self,
        table: &TableId,
        changes: &[RouteChange],
        fence: &dyn WriteFence,
    ) -> Vec<ChangeOutcome> {
        if changes.is_empty() {
            return Vec::new();
        }
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.arm.wall(Duration::from_secs(1)))
            .with_max_delay(self.arm.wall(Duration::from_secs(30)))
            .with_jitter()
            .without_max_times()
            .build();
        let mut last = CloudError::new(
            ErrorKind::Conflict,
            "TooManyConflicts",
            "the table kept changing under us",
        );
        for _ in 0..self.max_write_rounds {
            match self.write_round(table, changes, fence).await {
                Ok(Some(dispositions)) => return outcomes(changes, Ok(dispositions)),
                Ok(None) => {
                    // 412: somebody else wrote the table between our read and our PUT.
                    // Re-read at once: the etag race is resolved by reading, not waiting.
                    last = CloudError::new(
                        ErrorKind::Conflict,
                        "PreconditionFailed",
                        "the table changed between read and write on every attempt",
                    )
                    .with_status(412);
                }
                Err(e) if is_lock_conflict(&e) => {
                    // Another write holds the table: wait as long as ARM says, then redo
                    // the whole read-modify-write.
                    let delay = e
                        .retry_after
                        .unwrap_or_else(|| backoff.next().unwrap_or_default());
                    tracing::debug!(table = %table, ?delay, "route table locked by another operation");
                    tokio::time::sleep(delay).await;
                    last = e;
                }
                Err(e) => return outcomes(changes, Err(e)),
            }
        }
        outcomes(changes, Err(last))
    }

    async fn resolve_nodes(
        &self,
        provider_ids: &[String],
    ) -> HashMap<String, Result<NodeTarget, CloudError>> {
        // Plain VMs are grouped by resource group: a group of LIST_FROM or more is resolved
        // from two paged lists; the rest, and whatever a list could not answer (or a list
        // that failed, e.g. an identity scoped to single resources), one node at a time.
        let mut groups: HashMap<String, Vec<(String, String)>> = HashMap::new();
        let mut singles = Vec::new();
        for provider_id in provider_ids {
            match ids::parse_provider_id(provider_id) {
                Ok(NodeRef::Vm { id }) => match resource_group_scope(&id) {
                    Some(scope) => groups
                        .entry(scope.to_ascii_lowercase())
                        .or_default()
                        .push((provider_id.clone(), id)),
                    None => singles.push(provider_id.clone()),
                },
                _ => singles.push(provider_id.clone()),
            }
        }
        let mut resolved = HashMap::new();
        for members in groups.into_values() {
            if members.len() < LIST_FROM {
                singles.extend(members.into_iter().map(|(p, _)| p));
                continue;
            }
            let scope = resource_group_scope(&members[0].1)
                .expect("grouped by scope")
                .to_owned();
            match self.resolve_group(&scope, &members).await {
                Ok(found) => {
                    resolved.extend(found);
                    singles.extend(
                        members
                            .into_iter()
                            .map(|(p, _)| p)
                            .filter(|p| !resolved.contains_key(p)),
                    );
                }
                Err(e) => {
                    tracing::debug!(%scope, error = %e, "listing the resource group failed; resolving its VMs one by one");
                    singles.extend(members.into_iter().map(|(p, _)| p));
                }
            }
        }
        let one_by_one: Vec<_> = futures::stream::iter(singles)
            .map(|id| async move {
                let r = self.resolve_one(&id).await;
                (id, r)
            })
            .buffer_unordered(self.resolve_concurrency)
            .collect()
            .await;
        resolved.extend(one_by_one);
        resolved
    }

    async fn ensure_forwarding_fenced(
        &self,
        target: &NodeTarget,
        fence: &dyn WriteFence,
    ) -> Result<ForwardingChange, CloudError> {
        let nic_id = &target.interface_id;
        // A stale body costs nothing but a retry: the write is conditional on its etag.
        let mut seen = self.take_seen_nic(nic_id);
        for _ in 0..self.max_write_rounds {
            let resp = match seen.take() {
                Some(resp) => resp,
                None => self.read_nic(nic_id).await?,
            };
            let view: NicView = resp.parse("network interface")?;
            if view.properties.enable_ip_forwarding == Some(true) {
                return Ok(ForwardingChange::AlreadyEnabled);
            }
            if is_scale_set_nic(nic_id) {
                return Err(CloudError::new(
                    ErrorKind::Permanent,
                    "ScaleSetNicForwardingDisabled",
                    format!(
                        "{nic_id} belongs to a uniform scale set: set enableIPForwarding in the scale set's networkInterfaceConfigurations (ARM does not allow writing scale-set NICs directly)"
                    ),
                ));
            }
            let mut body = resp.body;
            body["properties"]["enableIPForwarding"] = json!(true);
            let accepted = match self
                .arm
                .put(
                    OP_NIC_WRITE,
                    nic_id,
                    NETWORK_API_VERSION,
                    &body,
                    view.etag.as_deref(),
                    fence,
                )
                .await
            {
                Ok(a) => a,
                Err(e) if e.http_status == Some(412) => continue,
                Err(e) if is_lock_conflict(&e) => {
                    tokio::time::sleep(
                        e.retry_after
                            .unwrap_or(self.arm.wall(Duration::from_secs(5))),
                    )
                    .await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let written = WrittenResource {
                read_op: OP_NIC_READ,
                path: nic_id,
                api_version: NETWORK_API_VERSION,
            };
            return match self.arm.wait(OP_OPERATION_READ, &accepted, written).await? {
                LroOutcome::Succeeded => Ok(ForwardingChange::Enabled),
                LroOutcome::Failed(e) => Err(e),
            };
        }
        Err(CloudError::new(
            ErrorKind::Conflict,
            "TooManyConflicts",
            format!("{nic_id} kept changing under us"),
        ))
    }

    fn counters(&self) -> &ApiCounters {
        self.arm.counters()
    }

    fn operations(&self) -> &'static [&'static str] {
        OPERATIONS
    }
}
