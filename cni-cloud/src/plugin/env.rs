//! The CNI_* environment, validated before anything touches the kernel or the IPAM state.
//!
//! Pure: it reads through a lookup function, so tests and the proptest fuzz feed it maps.

use super::error::{CniError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "GC" => Self::Gc,
            "STATUS" => Self::Status,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }
}

/// One attachment's identity: the IPAM key and the source of the host veth name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// Set for ADD, DEL and CHECK.
    pub attachment: Option<Attachment>,
    /// Required for ADD and CHECK; DEL may have none (the sandbox is already gone).
    pub netns: Option<String>,
    pub args: Vec<(String, String)>,
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.\-]*`, the spec's container ID grammar.
pub fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Linux's `dev_valid_name`, plus the spec's ban on ':' and whitespace.
pub fn ifname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > 15 {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not interface names")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        Some("contains '/', ':', whitespace or a control character")
    } else {
        None
    }
}

pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Env> {
    let command = match get("CNI_COMMAND") {
        None => return Err(CniError::env("CNI_COMMAND", "not set")),
        Some(c) => Command::parse(&c).ok_or_else(|| {
            CniError::env(
                "CNI_COMMAND",
                format!("{c:?} is not ADD, DEL, CHECK, GC, STATUS or VERSION"),
            )
        })?,
    };
    let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
    let attachment = if needs_attachment {
        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        if !valid_container_id(&container_id) {
            return Err(CniError::env(
                "CNI_CONTAINERID",
                format!("{container_id:?} does not match [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
            ));
        }
        let ifname = get("CNI_IFNAME").unwrap_or_default();
        if let Some(why) = ifname_problem(&ifname) {
            return Err(CniError::env("CNI_IFNAME", format!("{ifname:?}: {why}")));
        }
        Some(Attachment {
            container_id,
            ifname,
        })
    } else {
        None
    };
    let netns = get("CNI_NETNS").filter(|s| !s.is_empty());
    if matches!(command, Command::Add | Command::Check) && netns.is_none() {
        return Err(CniError::env(
            "CNI_NETNS",
            "not set (required for ADD and CHECK)",
        ));
    }
    if let Some(ns) = &netns
        && needs_attachment
        && (!ns.starts_with('/') || ns.contains('\0'))
    {
        return Err(CniError::env(
            "CNI_NETNS",
            format!("{ns:?} is not an absolute path"),
        ));
    }
    let args = parse_args(&get("CNI_ARGS").unwrap_or_default())?;
    Ok(Env {
        command,
        attachment,
        netns,
        args,
    })
}

/// `K=V;K=V`: every non-empty segment must have a key and an '='.
fn parse_args(raw: &str) -> Result<Vec<(String, String)>> {
    raw.split(';')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CniError::env(
                "CNI_ARGS",
                format!("segment {kv:?} is not KEY=VALUE"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::error::INVALID_ENV;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Env> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(|k| map.get(k).cloned())
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/var/run/netns/x"),
        ]
    }

    fn with(key: &'static str, value: &'static str) -> Result<Env> {
        let mut pairs = base();
        pairs.retain(|(k, _)| *k != key);
        pairs.push((key, value));
        env(&pairs)
    }

    #[test]
    fn valid_add() {
        let e = env(&base()).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.attachment.unwrap().ifname, "eth0");
    }

    #[test]
    fn each_invalid_variable_is_named() {
        for (key, value) in [
            ("CNI_COMMAND", "FROB"),
            ("CNI_CONTAINERID", ""),
            ("CNI_CONTAINERID", "-abc"),
            ("CNI_CONTAINERID", "a/b"),
            ("CNI_IFNAME", ""),
            ("CNI_IFNAME", "."),
            ("CNI_IFNAME", ".."),
            ("CNI_IFNAME", "0123456789abcdef"),
            ("CNI_IFNAME", "a/b"),
            ("CNI_IFNAME", "a:b"),
            ("CNI_IFNAME", "a b"),
            ("CNI_NETNS", ""),
            ("CNI_NETNS", "relative/path"),
            ("CNI_ARGS", "K8S_POD_NAME"),
            ("CNI_ARGS", "=v"),
        ] {
            let err = with(key, value).unwrap_err();
            assert_eq!(err.code, INVALID_ENV, "{key}={value:?}");
            assert!(err.msg.contains(key), "{key}={value:?}: {}", err.msg);
        }
    }

    #[test]
    fn del_without_netns_is_fine() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(e.netns, None);
    }

    #[test]
    fn version_needs_nothing_else() {
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
    }
}
