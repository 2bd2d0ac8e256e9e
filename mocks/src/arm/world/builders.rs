//! Building state: route tables, and VMs / scale-set instances with one NIC each (the
//! two node kinds differ only in their ids and a field or two, built by one helper); and
//! tearing it down as the outside world does mid-run (a VM deleted with its NIC, a route
//! table deleted).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::tables::normalize_table;
use super::{NicSpec, NodeIds, Resource, World, key, new_etag};

impl World {
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
        let mut vm = node_vm(
            name,
            &vm_id,
            "Microsoft.Compute/virtualMachines",
            location,
            &nic_id,
        );
        vm["properties"]["vmId"] = json!(uuid::Uuid::new_v4().to_string());
        self.add_node(&rg, vm, nic_id, &format!("{name}-nic"), location, nic)
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
        let mut vm = node_vm(
            &format!("{scale_set}_{index}"),
            &vm_id,
            "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            location,
            &nic_id,
        );
        vm["instanceId"] = json!(index.to_string());
        self.add_node(&rg, vm, nic_id, &format!("{scale_set}-nic"), location, nic)
    }

    /// Store a node's VM (`vm`, built by [`node_vm`]) and its one NIC.
    fn add_node(
        &mut self,
        rg: &str,
        vm: Value,
        nic_id: String,
        nic_name: &str,
        location: &str,
        nic: NicSpec,
    ) -> NodeIds {
        let vm_id = vm["id"].as_str().unwrap_or_default().to_owned();
        self.insert(&vm_id, vm);
        let nic_json = nic_resource(
            &nic_id,
            nic_name,
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

    /// Delete a VM (or scale-set instance) together with the NICs its network profile
    /// names, as a VM created with the NIC's `deleteOption: Delete` goes (what node pools
    /// do). Routes whose `nextHopIpAddress` was one of those NICs' addresses are left as
    /// they are: ARM has no blackhole state for user-defined routes, the route simply keeps
    /// pointing at an address nothing answers. Returns the NIC ids deleted; `Err` when
    /// there is no such VM.
    pub fn delete_vm(&mut self, vm_id: &str) -> Result<Vec<String>, String> {
        let vm = self
            .resources
            .remove(&key(vm_id))
            .ok_or_else(|| format!("no VM {vm_id}"))?;
        let nics: Vec<String> = vm.json["properties"]["networkProfile"]["networkInterfaces"]
            .as_array()
            .map(|ns| {
                ns.iter()
                    .filter_map(|n| n["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(nics
            .into_iter()
            .filter(|n| self.resources.remove(&key(n)).is_some())
            .collect())
    }

    /// Delete a route table (an operator, or a Terraform run that no longer knows it): the
    /// table as it was, or `None` when there was none. An operation still writing it
    /// settles on nothing.
    pub fn delete_route_table(&mut self, id: &str) -> Option<Value> {
        self.resources.remove(&key(id)).map(|r| r.json)
    }

    /// Every private address some NIC holds now: a route's next hop outside this set
    /// points at nothing.
    pub fn private_ips(&self) -> BTreeSet<IpAddr> {
        self.resources
            .values()
            .filter(|r| {
                r.json["type"]
                    .as_str()
                    .is_some_and(|t| t.to_ascii_lowercase().ends_with("/networkinterfaces"))
            })
            .flat_map(|r| {
                r.json["properties"]["ipConfigurations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|c| c["properties"]["privateIPAddress"].as_str()?.parse().ok())
            .collect()
    }
}

/// A VM (or scale-set instance) whose one, primary NIC is `nic_id`.
fn node_vm(name: &str, id: &str, kind: &str, location: &str, nic_id: &str) -> Value {
    json!({
        "name": name,
        "id": id,
        "type": kind,
        "location": location,
        "properties": {
            "provisioningState": "Succeeded",
            "networkProfile": {
                "networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]
            }
        }
    })
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
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use serde_json::json;

    use super::super::World;
    use crate::arm::NicSpec;

    #[test]
    fn a_deleted_vm_takes_its_nic_and_leaves_routes_to_it_in_place() {
        let mut w = World::new(Duration::ZERO, 0.0);
        let ip = Ipv4Addr::new(10, 0, 0, 4);
        let spec = NicSpec {
            ipv4: ip,
            ipv6: None,
            ip_forwarding: true,
        };
        let a = w.add_vm("s", "rg", "a", "westeurope", spec);
        let b = w.add_vmss_instance(
            "s",
            "rg",
            "pool",
            0,
            "westeurope",
            NicSpec {
                ipv4: Ipv4Addr::new(10, 0, 0, 5),
                ..spec
            },
        );
        let route = json!({"name": "k--10.244.0.0_24", "properties": {
            "addressPrefix": "10.244.0.0/24", "nextHopType": "VirtualAppliance",
            "nextHopIpAddress": "10.0.0.4"}});
        let table = w.add_route_table("s", "rg", "rt", "westeurope", vec![route]);
        assert!(w.private_ips().contains(&IpAddr::V4(ip)));

        assert_eq!(w.delete_vm(&a.vm_id), Ok(vec![a.nic_id.clone()]));
        assert!(w.get(&a.vm_id).is_none() && w.get(&a.nic_id).is_none());
        assert!(!w.private_ips().contains(&IpAddr::V4(ip)));
        // The other node is untouched, and the route still names the dead address.
        assert!(w.get(&b.nic_id).is_some());
        assert_eq!(
            w.routes(&table)[0]["properties"]["nextHopIpAddress"],
            "10.0.0.4"
        );
        assert!(w.delete_vm(&a.vm_id).is_err());
        // A scale-set instance's NIC goes with it too.
        assert_eq!(w.delete_vm(&b.vm_id), Ok(vec![b.nic_id.clone()]));
        assert!(w.private_ips().is_empty());

        let gone = w.delete_route_table(&table).expect("the table");
        assert_eq!(
            gone["properties"]["routes"].as_array().map(Vec::len),
            Some(1)
        );
        assert!(w.get(&table).is_none() && w.delete_route_table(&table).is_none());
    }
}
