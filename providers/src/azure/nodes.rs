//! Nodes: Kubernetes providerIDs → targets (primary NIC, its addresses, the next hops),
//! one node at a time or, for a resource group with many plain VMs, from the group's two
//! paged lists; and the NIC bodies those reads leave behind for the forwarding check.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::arm::{self, ArmResponse};
use super::ids::{self, NodeRef};
use super::models::{
    COMPUTE_API_VERSION, IpConfigView, ListView, NETWORK_API_VERSION, NicView,
    VMSS_NIC_API_VERSION, VmView,
};
use super::provider::AzureProvider;
use super::{OP_NIC_READ, OP_VM_READ, OP_VMSS_NIC_READ};
use crate::{CloudError, ErrorKind, NextHop, NodeTarget};

/// How long a NIC read during resolution stands in for the forwarding check's own read.
const SEEN_NIC_TTL: Duration = Duration::from_secs(30);
/// Plain VMs of one resource group from which resolution lists the group (VMs and NICs)
/// instead of reading each VM and its NIC.
const LIST_FROM: usize = 4;
/// Bound on remembered NIC bodies (nodes resolved but never prepared).
const SEEN_NIC_MAX: usize = 4096;

/// NIC bodies read while resolving, so the node's forwarding check that follows right
/// after can start from them instead of reading the NIC again: one ARM read per node
/// saved out of three. Taken on use; older than [`SEEN_NIC_TTL`] (cloud time) is read
/// again.
#[derive(Default)]
pub(super) struct SeenNics(Mutex<HashMap<String, (Instant, Value)>>);

impl AzureProvider {
    pub(super) async fn resolve(
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
        let mut seen = self.seen_nics.0.lock().expect("seen NICs lock");
        if seen.len() >= SEEN_NIC_MAX {
            seen.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        if seen.len() < SEEN_NIC_MAX {
            seen.insert(nic_id.to_owned(), (Instant::now(), body));
        }
    }

    /// The NIC as resolution just read it, if that was recent enough.
    pub(super) fn take_seen_nic(&self, nic_id: &str) -> Option<ArmResponse> {
        let ttl = self.arm.wall(SEEN_NIC_TTL);
        let (at, body) = self
            .seen_nics
            .0
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
