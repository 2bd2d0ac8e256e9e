//! Building state: route tables, and VMs / scale-set instances with one NIC each (the
//! two node kinds differ only in their ids and a field or two, built by one helper).

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
