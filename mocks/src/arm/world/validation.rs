//! What ARM refuses in a request body, with ARM's codes and messages.

use serde_json::{Map, Value};

use super::ArmError;

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

pub(super) fn validate_routes(
    body: &Value,
    limit: usize,
    table_id: &str,
) -> Result<usize, ArmError> {
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

/// A NIC body's `properties` (required), with `enableIPForwarding` a boolean if present.
pub(super) fn validate_nic(body: &Value) -> Result<&Map<String, Value>, ArmError> {
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
    Ok(props)
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
}
