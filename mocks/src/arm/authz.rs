//! Role-based access, as far as the controller meets it: a caller (its bearer token) may lack
//! actions. A request whose own action is missing gets ARM's 403 `AuthorizationFailed`; a
//! NIC write is also checked against the resources it links (each IP configuration's subnet
//! and public IP), ARM's *linked authorization*, answered with 403 `LinkedAuthorizationFailed`.
//! Every token holds every action until [`World::deny`](super::World::deny) says otherwise.
//!
//! Shapes as ARM sends them (message text from ARM answers quoted in public bug reports):
//! `{"error":{"code":"AuthorizationFailed","message":"The client '<id>' with object id '<id>'
//! does not have authorization to perform action '<action>' over scope '<scope>' or the scope
//! is invalid. If access was recently granted, please refresh your credentials."}}` and
//! `{"error":{"code":"LinkedAuthorizationFailed","message":"The client '<id>' with object id
//! '<id>' has permission to perform action '<action>' on scope '<scope>'; however, it does not
//! have permission to perform action '<linked action>' on the linked scope(s) '<linked scope>'
//! or the linked scope(s) are invalid."}}`.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::world::ArmError;

pub const SUBNET_JOIN: &str = "Microsoft.Network/virtualNetworks/subnets/join/action";
pub const PUBLIC_IP_JOIN: &str = "Microsoft.Network/publicIPAddresses/join/action";

/// Actions each token lacks.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    denied: HashMap<String, BTreeSet<String>>,
}

impl Grants {
    pub(crate) fn deny(&mut self, token: &str, action: &str) {
        self.denied
            .entry(token.to_owned())
            .or_default()
            .insert(action.to_owned());
    }

    pub(crate) fn allows(&self, token: &str, action: &str) -> bool {
        !self
            .denied
            .get(token)
            .is_some_and(|actions| actions.contains(action))
    }

    /// The request's own action on `scope`.
    pub(crate) fn authorize(&self, token: &str, action: &str, scope: &str) -> Result<(), ArmError> {
        if self.allows(token, action) {
            return Ok(());
        }
        let client = client_id(token);
        Err(ArmError::new(
            403,
            "AuthorizationFailed",
            format!(
                "The client '{client}' with object id '{client}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        ))
    }

    /// The linked checks of `action` on `scope` with `linked` (action, linked scope) pairs:
    /// each pair with its outcome (`Ok` or the code), and the error when any failed.
    pub(crate) fn authorize_linked(
        &self,
        token: &str,
        action: &str,
        scope: &str,
        linked: &[(&'static str, String)],
    ) -> (Vec<(&'static str, bool)>, Result<(), ArmError>) {
        let outcomes: Vec<(&'static str, bool)> = linked
            .iter()
            .map(|(a, _)| (*a, self.allows(token, a)))
            .collect();
        let missing: Vec<&(&'static str, String)> = linked
            .iter()
            .filter(|(a, _)| !self.allows(token, a))
            .collect();
        let Some((first, _)) = missing.first() else {
            return (outcomes, Ok(()));
        };
        let scopes: Vec<&str> = missing
            .iter()
            .filter(|(a, _)| a == first)
            .map(|(_, s)| s.as_str())
            .collect();
        let client = client_id(token);
        let err = ArmError::new(
            403,
            "LinkedAuthorizationFailed",
            format!(
                "The client '{client}' with object id '{client}' has permission to perform action '{action}' on scope '{scope}'; however, it does not have permission to perform action '{first}' on the linked scope(s) '{}' or the linked scope(s) are invalid.",
                scopes.join(",")
            ),
        );
        (outcomes, Err(err))
    }
}

/// The resources a NIC body links, as ARM checks them: each IP configuration's subnet
/// (`subnets/join/action`) and public IP (`publicIPAddresses/join/action`), once each.
pub(crate) fn nic_links(body: &Value) -> Vec<(&'static str, String)> {
    let mut links: Vec<(&'static str, String)> = Vec::new();
    let configs = body["properties"]["ipConfigurations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (action, field) in [(SUBNET_JOIN, "subnet"), (PUBLIC_IP_JOIN, "publicIPAddress")] {
        for config in configs {
            if let Some(id) = config["properties"][field]["id"].as_str()
                && !links
                    .iter()
                    .any(|(a, s)| *a == action && s.eq_ignore_ascii_case(id))
            {
                links.push((action, id.to_owned()));
            }
        }
    }
    links
}

/// A stable stand-in for the principal's object id (the mock issues no real tokens).
fn client_id(token: &str) -> String {
    let digest = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let hex = format!("{digest:016x}{:016x}", digest.rotate_left(29));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nic_links_are_its_subnets_and_public_ips_once_each() {
        let body = json!({"properties": {"ipConfigurations": [
            {"properties": {"subnet": {"id": "/s/SUBNET"}, "publicIPAddress": {"id": "/p/ip"}}},
            {"properties": {"subnet": {"id": "/s/subnet"}}},
        ]}});
        assert_eq!(
            nic_links(&body),
            vec![
                (SUBNET_JOIN, "/s/SUBNET".to_owned()),
                (PUBLIC_IP_JOIN, "/p/ip".to_owned())
            ]
        );
        assert!(nic_links(&json!({"properties": {}})).is_empty());
    }

    #[test]
    fn denied_actions_fail_with_arm_codes() {
        let mut g = Grants::default();
        g.deny("t", SUBNET_JOIN);
        assert!(g.authorize("t", SUBNET_JOIN, "/x").is_err());
        assert!(g.authorize("other", SUBNET_JOIN, "/x").is_ok());
        let links = vec![
            (SUBNET_JOIN, "/s".to_owned()),
            (PUBLIC_IP_JOIN, "/p".to_owned()),
        ];
        let (outcomes, result) = g.authorize_linked("t", "w", "/nic", &links);
        assert_eq!(outcomes, vec![(SUBNET_JOIN, false), (PUBLIC_IP_JOIN, true)]);
        let err = result.unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (403, "LinkedAuthorizationFailed")
        );
        assert!(
            err.message
                .contains(&format!("'{SUBNET_JOIN}' on the linked scope(s) '/s'"))
        );
        assert_eq!(client_id("t"), client_id("t"));
        assert_ne!(client_id("t"), client_id("u"));
    }
}
