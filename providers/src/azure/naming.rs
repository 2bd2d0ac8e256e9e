//! Route names: `<cluster prefix>--<destination>` where the destination CIDR is written
//! with `:` → `-` and `/` → `_` (`k1--10.244.3.0_24`, `k1--fd00-10-244-3--_64`), so the
//! name is valid for ARM (≤ 80 characters of letters, digits, `_`, `.`, `-`, starting with a
//! letter or digit) and parses back to exactly one CIDR.
//!
//! Ownership is decided by an exact parse: the name must be the prefix, the separator and a
//! destination that re-encodes to the same text. `k10--…` is never mistaken for `k1`'s
//! route (the upstream provider's prefix match deleted `node-10` together with `node-1`).

use std::net::IpAddr;

use ipnet::IpNet;

const SEPARATOR: &str = "--";
/// The longest encoded destination: a full IPv6 address (39) plus `_128`.
const MAX_DESTINATION: usize = 43;
pub const MAX_NAME: usize = 80;
pub const MAX_PREFIX: usize = MAX_NAME - SEPARATOR.len() - MAX_DESTINATION;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteNamer {
    prefix: String,
}

impl RouteNamer {
    /// `prefix` identifies this cluster's routes; it must be unique among the writers of
    /// the tables.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let ok_chars = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if prefix.is_empty() || prefix.len() > MAX_PREFIX {
            return Err(format!(
                "route name prefix must be 1..={MAX_PREFIX} characters, got {:?}",
                prefix
            ));
        }
        if !ok_chars || !prefix.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(format!(
                "route name prefix {prefix:?} must start with a letter or digit and contain only letters, digits, '_', '.', '-'"
            ));
        }
        if prefix.contains(SEPARATOR) || prefix.ends_with('-') {
            return Err(format!(
                "route name prefix {prefix:?} must not contain \"--\" or end with '-' (the separator)"
            ));
        }
        Ok(RouteNamer {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn name(&self, destination: &IpNet) -> String {
        format!("{}{SEPARATOR}{}", self.prefix, encode(destination))
    }

    /// The destination a route name of ours stands for; `None` for anybody else's name.
    pub fn parse(&self, name: &str) -> Option<IpNet> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix(SEPARATOR)?;
        decode(rest)
    }
}

fn encode(net: &IpNet) -> String {
    let addr = net.network().to_string().replace(':', "-");
    format!("{addr}_{}", net.prefix_len())
}

fn decode(text: &str) -> Option<IpNet> {
    let (addr, len) = text.rsplit_once('_')?;
    let addr: IpAddr = if addr.contains('-') {
        addr.replace('-', ":").parse().ok()?
    } else {
        addr.parse().ok()?
    };
    let net = IpNet::new(addr, len.parse().ok()?).ok()?;
    // Exactly one spelling per destination: anything else is not a name we wrote.
    (encode(&net) == text).then_some(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_both_families() {
        let n = RouteNamer::new("k1").unwrap();
        let v4: IpNet = "10.244.3.0/24".parse().unwrap();
        let v6: IpNet = "fd00:10:244:3::/64".parse().unwrap();
        assert_eq!(n.name(&v4), "k1--10.244.3.0_24");
        assert_eq!(n.name(&v6), "k1--fd00-10-244-3--_64");
        assert_eq!(n.parse(&n.name(&v4)), Some(v4));
        assert_eq!(n.parse(&n.name(&v6)), Some(v6));
    }

    #[test]
    fn ownership_is_exact_never_by_prefix() {
        let k1 = RouteNamer::new("node-1").unwrap();
        let k10 = RouteNamer::new("node-10").unwrap();
        let net: IpNet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(k1.parse(&k10.name(&net)), None);
        assert_eq!(k10.parse(&k1.name(&net)), None);
        for foreign in [
            "node-1",
            "node-1--",
            "node-1--10.0.0.0",
            "node-1--010.0.0.0_24",
            "node-1--10.0.0.1_24",
            "node-1---10.0.0.0_24",
            "node-1--10.0.0.0_24x",
        ] {
            assert_eq!(k1.parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn rejects_bad_prefixes() {
        for bad in ["", "-a", "a--b", "a-", "a/b", &"a".repeat(MAX_PREFIX + 1)] {
            assert!(RouteNamer::new(bad).is_err(), "{bad:?}");
        }
        assert!(RouteNamer::new(&"a".repeat(MAX_PREFIX)).is_ok());
    }

    proptest! {
        #[test]
        fn names_are_valid_arm_names(
            prefix in "[a-z0-9][a-z0-9_.]{0,20}",
            a in any::<u128>(),
            len in 0u8..=128,
            v4 in any::<u32>(),
            len4 in 0u8..=32,
        ) {
            let n = RouteNamer::new(&prefix).unwrap();
            let nets = [
                IpNet::new(std::net::Ipv6Addr::from(a).into(), len).unwrap().trunc(),
                IpNet::new(std::net::Ipv4Addr::from(v4).into(), len4).unwrap().trunc(),
            ];
            for net in nets {
                let name = n.name(&net);
                prop_assert!(name.len() <= MAX_NAME);
                prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
                prop_assert!(name.as_bytes()[0].is_ascii_alphanumeric());
                prop_assert_eq!(n.parse(&name), Some(net));
            }
        }
    }
}
