//! The network configuration on stdin: parsed and validated, pure.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::Value;

use super::env::{Attachment, valid_container_id};
use super::error::{CniError, INCOMPATIBLE_VERSION, Result, UNSUPPORTED_FIELD};

/// Every cniVersion the plugin speaks, oldest first (VERSION lists them).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const DEFAULT_DATA_DIR: &str = "/run/cni-cloud";
pub const DEFAULT_MTU: u32 = 1500;
/// How long a plugin process waits for the IPAM lock before answering 11 (try again later):
/// far above any ADD/DEL's hold (milliseconds), well below a runtime's CNI timeout.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 20_000;

/// One host-local style range: a subnet, optionally narrowed to [start, end].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: Option<IpAddr>,
    pub end: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// One range set per address family (host-local's outer list).
    pub ranges: Vec<Vec<Range>>,
    pub data_dir: PathBuf,
    pub mtu: u32,
    /// `defaultRoute` (default true): the pod's default route goes through this attachment.
    /// false for a secondary network (a second attachment in the same pod): only its ranges'
    /// subnets are routed through it, and the primary's default route stays the primary's.
    pub default_route: bool,
    /// `lockTimeoutMs`: the wait for the IPAM store's lock.
    pub lock_timeout: std::time::Duration,
    pub prev_result: Option<Value>,
    /// GC: the attachments to keep (`cni.dev/valid-attachments`, or the older `cni.dev/attachments`).
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The version to answer errors in when the config could not be read at all.
pub fn version_of(raw: &[u8]) -> String {
    serde_json::from_slice::<Value>(raw)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".to_string())
}

pub fn parse(raw: &[u8]) -> Result<NetConf> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        CniError::new(super::error::DECODE, "config on stdin is not JSON")
            .with_details(e.to_string())
    })?;
    let obj = value.as_object().ok_or_else(|| {
        CniError::new(super::error::DECODE, "config on stdin is not a JSON object")
    })?;
    let cni_version = match obj.get("cniVersion") {
        Some(Value::String(v)) if SUPPORTED_VERSIONS.contains(&v.as_str()) => v.clone(),
        Some(Value::String(v)) => {
            return Err(CniError::new(
                INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {v:?} is not supported (supported: {})",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        Some(_) => return Err(CniError::config("cniVersion must be a string")),
        None => return Err(CniError::config("cniVersion is missing")),
    };
    let name = match obj.get("name") {
        Some(Value::String(n)) if valid_container_id(n) => n.clone(),
        Some(Value::String(n)) => {
            return Err(CniError::config(format!(
                "name {n:?} does not match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
            )));
        }
        _ => return Err(CniError::config("name is missing or not a string")),
    };
    if obj.contains_key("ipam") {
        return Err(CniError::new(
            UNSUPPORTED_FIELD,
            "field \"ipam\" is not supported: cni-cloud allocates addresses itself from \"ranges\"",
        ));
    }
    let runtime_ranges = obj.get("runtimeConfig").and_then(|rc| rc.get("ipRanges"));
    let ranges = match (runtime_ranges, obj.get("ranges")) {
        // The `ipRanges` capability: the runtime's ranges (the kubelet's PodCIDRs) win.
        (Some(r), _) if !r.as_array().is_some_and(Vec::is_empty) => {
            parse_range_sets(r, "runtimeConfig.ipRanges")?
        }
        (_, Some(r)) => parse_range_sets(r, "ranges")?,
        (_, None) => Vec::new(),
    };
    let data_dir = match obj.get("dataDir") {
        None => PathBuf::from(DEFAULT_DATA_DIR),
        Some(Value::String(d)) if d.starts_with('/') && !d.contains('\0') => PathBuf::from(d),
        Some(_) => return Err(CniError::config("dataDir must be an absolute path")),
    };
    let mtu = match obj.get("mtu") {
        None => DEFAULT_MTU,
        Some(v) => match v.as_u64() {
            Some(m @ 576..=65535) => m as u32,
            _ => {
                return Err(CniError::config(format!(
                    "mtu {v} is not an integer in 576..=65535"
                )));
            }
        },
    };
    let default_route = match obj.get("defaultRoute") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(CniError::config(format!(
                "defaultRoute {v} is not a boolean"
            )));
        }
    };
    let lock_timeout = match obj.get("lockTimeoutMs") {
        None => DEFAULT_LOCK_TIMEOUT_MS,
        Some(v) => match v.as_u64() {
            Some(ms @ 1..=600_000) => ms,
            _ => {
                return Err(CniError::config(format!(
                    "lockTimeoutMs {v} is not an integer in 1..=600000"
                )));
            }
        },
    };
    let prev_result = match obj.get("prevResult") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(CniError::config("prevResult must be an object")),
    };
    let valid_attachments = match obj
        .get("cni.dev/valid-attachments")
        .or_else(|| obj.get("cni.dev/attachments"))
    {
        None => None,
        Some(v) => Some(parse_attachments(v)?),
    };
    Ok(NetConf {
        cni_version,
        name,
        ranges,
        data_dir,
        mtu,
        default_route,
        lock_timeout: std::time::Duration::from_millis(lock_timeout),
        prev_result,
        valid_attachments,
    })
}

fn parse_attachments(v: &Value) -> Result<Vec<Attachment>> {
    let list = v
        .as_array()
        .ok_or_else(|| CniError::config("cni.dev/valid-attachments must be a list"))?;
    list.iter()
        .map(|a| {
            let id = a.get("containerID").and_then(Value::as_str);
            let ifname = a.get("ifname").and_then(Value::as_str);
            match (id, ifname) {
                (Some(id), Some(ifname)) => Ok(Attachment {
                    container_id: id.to_string(),
                    ifname: ifname.to_string(),
                }),
                _ => Err(CniError::config(format!(
                    "attachment {a} needs string containerID and ifname"
                ))),
            }
        })
        .collect()
}

fn parse_range_sets(v: &Value, field: &str) -> Result<Vec<Vec<Range>>> {
    let sets = v
        .as_array()
        .ok_or_else(|| CniError::config(format!("{field} must be a list of lists")))?;
    let mut out = Vec::new();
    for set in sets {
        let set = set.as_array().filter(|s| !s.is_empty()).ok_or_else(|| {
            CniError::config(format!("{field}: every range set must be a non-empty list"))
        })?;
        let ranges = set
            .iter()
            .map(|r| parse_range(r, field))
            .collect::<Result<Vec<_>>>()?;
        let v4 = ranges[0].subnet.addr().is_ipv4();
        if ranges.iter().any(|r| r.subnet.addr().is_ipv4() != v4) {
            return Err(CniError::config(format!(
                "{field}: a range set mixes IPv4 and IPv6"
            )));
        }
        if out
            .iter()
            .any(|s: &Vec<Range>| s[0].subnet.addr().is_ipv4() == v4)
        {
            return Err(CniError::config(format!(
                "{field}: more than one range set for one address family"
            )));
        }
        for (i, a) in ranges.iter().enumerate() {
            if ranges[..i].iter().any(|b| {
                a.subnet.contains(&b.subnet.network()) || b.subnet.contains(&a.subnet.network())
            }) {
                return Err(CniError::config(format!(
                    "{field}: ranges {} and others overlap",
                    a.subnet
                )));
            }
        }
        out.push(ranges);
    }
    Ok(out)
}

fn parse_range(v: &Value, field: &str) -> Result<Range> {
    let obj = v
        .as_object()
        .ok_or_else(|| CniError::config(format!("{field}: a range must be an object")))?;
    if obj.contains_key("gateway") {
        return Err(CniError::new(
            UNSUPPORTED_FIELD,
            format!(
                "{field}: \"gateway\" is not supported: pods route via the link-local gateway 169.254.1.1 / fe80::1"
            ),
        ));
    }
    let subnet_str = obj
        .get("subnet")
        .and_then(Value::as_str)
        .ok_or_else(|| CniError::config(format!("{field}: a range needs a \"subnet\" string")))?;
    let subnet: IpNet = subnet_str
        .parse()
        .map_err(|_| CniError::config(format!("{field}: subnet {subnet_str:?} is not a CIDR")))?;
    if subnet != subnet.trunc() {
        return Err(CniError::config(format!(
            "{field}: subnet {subnet} has host bits set"
        )));
    }
    // At least two usable addresses (IPv4 loses network and broadcast, IPv6 the
    // subnet-router anycast address). Large subnets are fine: IPAM hands out only the first
    // `ipam::MAX_POOL` addresses of each range (README: "IPAM").
    if subnet.max_prefix_len() - subnet.prefix_len() < 2 {
        return Err(CniError::config(format!(
            "{field}: subnet {subnet} is too small (at most /30 for IPv4, /126 for IPv6)"
        )));
    }
    let bound = |key: &str| -> Result<Option<IpAddr>> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let ip: IpAddr = s
                    .parse()
                    .map_err(|_| CniError::config(format!("{field}: {key} {s:?} is not an IP")))?;
                if !subnet.contains(&ip) {
                    return Err(CniError::config(format!(
                        "{field}: {key} {ip} is outside {subnet}"
                    )));
                }
                Ok(Some(ip))
            }
            Some(_) => Err(CniError::config(format!("{field}: {key} must be a string"))),
        }
    };
    let start = bound("rangeStart")?;
    let end = bound("rangeEnd")?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(CniError::config(format!(
            "{field}: rangeStart {s} is after rangeEnd {e}"
        )));
    }
    Ok(Range { subnet, start, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::error::{DECODE, INVALID_CONFIG};

    fn code(raw: &str) -> u32 {
        parse(raw.as_bytes()).unwrap_err().code
    }

    #[test]
    fn dual_stack_with_defaults() {
        let c = parse(br#"{"cniVersion":"1.1.0","name":"n","type":"cni-cloud","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00::/64"}]]}"#).unwrap();
        assert_eq!(c.ranges.len(), 2);
        assert_eq!(c.mtu, DEFAULT_MTU);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let c = parse(br#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"fd00:1:2:3:4::/80"}],[{"subnet":"10.0.0.0/8"}]]}"#).unwrap();
        assert_eq!(c.ranges[0][0].subnet.to_string(), "fd00:1:2:3:4::/80");
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"fd00::/127"}]]}"#),
            INVALID_CONFIG
        );
    }

    #[test]
    fn runtime_ip_ranges_win() {
        let c = parse(br#"{"cniVersion":"1.0.0","name":"n","ranges":[[{"subnet":"10.1.0.0/24"}]],"runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/24"}]]}}"#).unwrap();
        assert_eq!(c.ranges[0][0].subnet.to_string(), "10.9.0.0/24");
    }

    #[test]
    fn malformed_configs_get_their_codes() {
        assert_eq!(code(""), DECODE);
        assert_eq!(code("[]"), DECODE);
        assert_eq!(
            code(r#"{"cniVersion":"9.9.9","name":"n"}"#),
            INCOMPATIBLE_VERSION
        );
        assert_eq!(code(r#"{"name":"n"}"#), INVALID_CONFIG);
        assert_eq!(code(r#"{"cniVersion":"1.1.0"}"#), INVALID_CONFIG);
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","ipam":{}}"#),
            UNSUPPORTED_FIELD
        );
        assert_eq!(
            code(
                r#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"10.0.0.0/24","gateway":"10.0.0.1"}]]}"#
            ),
            UNSUPPORTED_FIELD
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"10.0.0.1/24"}]]}"#),
            INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"nope"}]]}"#),
            INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"10.0.0.0/31"}]]}"#),
            INVALID_CONFIG
        );
        assert_eq!(
            code(
                r#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]}"#
            ),
            INVALID_CONFIG
        );
        assert_eq!(
            code(
                r#"{"cniVersion":"1.1.0","name":"n","ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.1.1"}]]}"#
            ),
            INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","mtu":10}"#),
            INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","dataDir":"rel"}"#),
            INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.1.0","name":"n","prevResult":3}"#),
            INVALID_CONFIG
        );
    }
}
