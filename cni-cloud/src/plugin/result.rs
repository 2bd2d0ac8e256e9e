//! The ADD result: built as values, rendered in the caller's cniVersion, and read back from
//! prevResult (chaining, CHECK).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use super::error::{CniError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// The netns path for a container-side interface; None on the host.
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<RouteEntry>,
    /// Passed through untouched from prevResult.
    pub dns: Option<Value>,
}

impl CniResult {
    /// Appends our attachment to a previous plugin's result, re-indexing our interfaces.
    pub fn extend(mut self, ours: CniResult) -> CniResult {
        let offset = self.interfaces.len();
        self.interfaces.extend(ours.interfaces);
        self.ips.extend(ours.ips.into_iter().map(|ip| IpConfig {
            interface: ip.interface.map(|i| i + offset),
            ..ip
        }));
        self.routes.extend(ours.routes);
        self
    }

    /// The result object in `version`'s format: 0.3.x and 0.4.0 carry `"version"` per IP.
    pub fn render(&self, version: &str) -> Value {
        let legacy = version.starts_with("0.");
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), json!(i.name));
                o.insert("mac".into(), json!(i.mac));
                if let Some(s) = &i.sandbox {
                    o.insert("sandbox".into(), json!(s));
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if legacy {
                    o.insert(
                        "version".into(),
                        json!(if ip.address.addr().is_ipv4() {
                            "4"
                        } else {
                            "6"
                        }),
                    );
                }
                o.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    o.insert("gateway".into(), json!(gw.to_string()));
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), json!(i));
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| match r.gw {
                Some(gw) => json!({"dst": r.dst.to_string(), "gw": gw.to_string()}),
                None => json!({"dst": r.dst.to_string()}),
            })
            .collect();
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version));
        out.insert("interfaces".into(), Value::Array(interfaces));
        out.insert("ips".into(), Value::Array(ips));
        out.insert("routes".into(), Value::Array(routes));
        out.insert("dns".into(), self.dns.clone().unwrap_or_else(|| json!({})));
        Value::Object(out)
    }

    /// Reads any supported version's result (prevResult).
    pub fn parse(v: &Value) -> Result<CniResult> {
        let bad = |what: &str| CniError::config(format!("prevResult: {what}"));
        let list = |key: &str| -> Result<Vec<Value>> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(_) => Err(bad(&format!("{key} must be a list"))),
            }
        };
        let str_of = |o: &Value, key: &str| o.get(key).and_then(Value::as_str).map(str::to_string);
        let interfaces = list("interfaces")?
            .iter()
            .map(|i| {
                Ok(Interface {
                    name: str_of(i, "name").ok_or_else(|| bad("an interface has no name"))?,
                    mac: str_of(i, "mac").unwrap_or_default(),
                    sandbox: str_of(i, "sandbox").filter(|s| !s.is_empty()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ips = list("ips")?
            .iter()
            .map(|ip| {
                let address = str_of(ip, "address")
                    .and_then(|a| a.parse::<IpNet>().ok())
                    .ok_or_else(|| bad("an ip has no valid address"))?;
                let gateway = match str_of(ip, "gateway") {
                    None => None,
                    Some(g) => Some(g.parse().map_err(|_| bad("an ip has an invalid gateway"))?),
                };
                let interface = ip
                    .get("interface")
                    .and_then(Value::as_u64)
                    .map(|i| i as usize);
                Ok(IpConfig {
                    address,
                    gateway,
                    interface,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let routes = list("routes")?
            .iter()
            .map(|r| {
                let dst = str_of(r, "dst")
                    .and_then(|d| d.parse::<IpNet>().ok())
                    .ok_or_else(|| bad("a route has no valid dst"))?;
                let gw = match str_of(r, "gw") {
                    None => None,
                    Some(g) => Some(g.parse().map_err(|_| bad("a route has an invalid gw"))?),
                };
                Ok(RouteEntry { dst, gw })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CniResult {
            interfaces,
            ips,
            routes,
            dns: v.get("dns").cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cnic1".into(),
                    mac: "ee:ee:ee:ee:ee:ee".into(),
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    sandbox: Some("/run/netns/p".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.0.0.2/32".parse().unwrap(),
                gateway: Some("169.254.1.1".parse().unwrap()),
                interface: Some(1),
            }],
            routes: vec![RouteEntry {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
            dns: None,
        }
    }

    #[test]
    fn legacy_versions_carry_ip_version() {
        assert_eq!(sample().render("0.3.1")["ips"][0]["version"], "4");
        assert!(sample().render("1.0.0")["ips"][0].get("version").is_none());
    }

    #[test]
    fn round_trips_and_extends() {
        let parsed = CniResult::parse(&sample().render("1.1.0")).unwrap();
        assert_eq!(parsed.ips, sample().ips);
        let chained = sample().extend(sample());
        assert_eq!(chained.ips[1].interface, Some(3));
    }
}
