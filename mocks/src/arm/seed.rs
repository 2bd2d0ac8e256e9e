//! The seed file: a JSON document describing the state the mock starts with.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::world::{NicSpec, World};

fn default_location() -> String {
    "westeurope".to_owned()
}

/// See mocks/README.md ("## arm") for an example.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub route_tables: Vec<SeedTable>,
    #[serde(default)]
    pub virtual_machines: Vec<SeedVm>,
    #[serde(default)]
    pub scale_set_instances: Vec<SeedVmssInstance>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedTable {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    #[serde(default = "default_location")]
    pub location: String,
    /// ARM route objects (`{"name", "properties": {"addressPrefix", "nextHopType", …}}`),
    /// kept as given.
    #[serde(default)]
    pub routes: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedVm {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    #[serde(default = "default_location")]
    pub location: String,
    pub ipv4: Ipv4Addr,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    #[serde(default)]
    pub ip_forwarding: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedVmssInstance {
    pub subscription: String,
    pub resource_group: String,
    pub scale_set: String,
    pub instance: u32,
    #[serde(default = "default_location")]
    pub location: String,
    pub ipv4: Ipv4Addr,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    #[serde(default)]
    pub ip_forwarding: bool,
}

impl Seed {
    pub fn load(path: &Path) -> anyhow::Result<Seed> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading seed file {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing seed file {}: {e}", path.display()))
    }

    /// Add everything to `world`. Route objects must be JSON objects with a name.
    pub fn apply(&self, world: &mut World) -> Result<(), String> {
        for t in &self.route_tables {
            for r in &t.routes {
                if r["name"].as_str().is_none() {
                    return Err(format!("route table {}: every route needs a name", t.name));
                }
            }
            world.add_route_table(
                &t.subscription,
                &t.resource_group,
                &t.name,
                &t.location,
                t.routes.clone(),
            );
        }
        for vm in &self.virtual_machines {
            world.add_vm(
                &vm.subscription,
                &vm.resource_group,
                &vm.name,
                &vm.location,
                NicSpec {
                    ipv4: vm.ipv4,
                    ipv6: vm.ipv6,
                    ip_forwarding: vm.ip_forwarding,
                },
            );
        }
        for i in &self.scale_set_instances {
            world.add_vmss_instance(
                &i.subscription,
                &i.resource_group,
                &i.scale_set,
                i.instance,
                &i.location,
                NicSpec {
                    ipv4: i.ipv4,
                    ipv6: i.ipv6,
                    ip_forwarding: i.ip_forwarding,
                },
            );
        }
        Ok(())
    }
}
