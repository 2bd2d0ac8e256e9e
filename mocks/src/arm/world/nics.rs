//! Network-interface writes: ARM's linked authorization, then a PUT that keeps the
//! server-owned properties and changes the rest as written.

use serde_json::{Value, json};

use super::validation::validate_nic;
use super::{Accepted, ArmError, World, key, new_etag, not_found, set_provisioning};
use crate::arm::authz::nic_links;
use crate::common::Stats;

impl World {
    /// PUT a network interface (only `Microsoft.Network/networkInterfaces` ones: scale-set
    /// NICs are configured through the scale set model) by the caller presenting `token`,
    /// whose own action `op` is already authorized. ARM's linked authorization comes first:
    /// the caller must also be allowed to join the subnets and public IPs the NIC
    /// references, whether or not they change; each linked check is counted in `linked`.
    pub(crate) fn put_nic(
        &mut self,
        token: &str,
        op: &str,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        linked: &Stats,
    ) -> Result<Accepted, ArmError> {
        let (checks, allowed) = self
            .grants
            .authorize_linked(token, op, id, &nic_links(body));
        for (action, ok) in checks {
            linked.record(
                action,
                if ok {
                    "ok"
                } else {
                    "LinkedAuthorizationFailed"
                },
            );
        }
        allowed?;
        self.interloper(id);
        let existing = self
            .get(id)
            .ok_or_else(|| not_found(id, "Microsoft.Network/networkInterfaces"))?;
        self.check_writable(id, if_match)?;
        let props = validate_nic(body)?;
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
}
