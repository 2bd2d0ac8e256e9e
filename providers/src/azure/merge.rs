//! The pure core of `apply`: fold a batch of changes into a table's route list.
//!
//! Routes we do not own are passed through as the exact JSON values we read. Our own
//! routes are edited in place (so fields we do not know survive too). New routes are
//! admitted in the caller's order while the table has room; the rest are refused as
//! quota-exceeded, so the PUT that follows can never fail for quota.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

use super::naming::RouteNamer;
use crate::{CloudError, ErrorKind, Family, NextHop, RouteChange};

/// What the batch means for one change.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// The new route list carries this change; it is done once the PUT succeeds.
    Write,
    /// The table already says so: nothing to write.
    AlreadyDone,
    Refused(CloudError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub routes: Vec<Value>,
    pub dispositions: Vec<Disposition>,
}

impl Merged {
    pub fn needs_write(&self) -> bool {
        self.dispositions.contains(&Disposition::Write)
    }
}

fn target_ip(destination: &IpNet, hop: &NextHop) -> Result<IpAddr, CloudError> {
    match hop {
        NextHop::IpAddress(ip) if Family::of(destination) == Family::of(&IpNet::from(*ip)) => {
            Ok(*ip)
        }
        other => Err(CloudError::new(
            ErrorKind::Permanent,
            "InvalidNextHop",
            format!(
                "route {destination}: Azure routes target a VirtualAppliance address of the same family, not {other}"
            ),
        )),
    }
}

fn hop_of(route: &Value) -> Option<IpAddr> {
    let props = &route["properties"];
    if props["nextHopType"].as_str()? != "VirtualAppliance" {
        return None;
    }
    props["nextHopIpAddress"].as_str()?.parse().ok()
}

fn prefix_of(route: &Value) -> Option<IpNet> {
    route["properties"]["addressPrefix"].as_str()?.parse().ok()
}

/// Whether `route` is ours: its name parses with our exact prefix to the very destination
/// the route carries.
pub fn owned_destination(namer: &RouteNamer, route: &Value) -> Option<IpNet> {
    let dest = namer.parse(route["name"].as_str()?)?;
    (prefix_of(route) == Some(dest)).then_some(dest)
}

fn new_route(namer: &RouteNamer, destination: &IpNet, ip: IpAddr) -> Value {
    json!({
        "name": namer.name(destination),
        "properties": {
            "addressPrefix": destination.to_string(),
            "nextHopType": "VirtualAppliance",
            "nextHopIpAddress": ip.to_string(),
        }
    })
}

fn retarget(route: &mut Value, ip: IpAddr) {
    if !route["properties"].is_object() {
        route["properties"] = json!({});
    }
    route["properties"]["nextHopType"] = json!("VirtualAppliance");
    route["properties"]["nextHopIpAddress"] = json!(ip.to_string());
}

pub fn merge(
    current: &[Value],
    changes: &[RouteChange],
    namer: &RouteNamer,
    limit: usize,
) -> Merged {
    let mut slots: Vec<Option<Value>> = current.iter().cloned().map(Some).collect();
    let mut ours: HashMap<IpNet, usize> = HashMap::new();
    let mut foreign: HashMap<IpNet, String> = HashMap::new();
    for (i, route) in current.iter().enumerate() {
        match owned_destination(namer, route) {
            Some(dest) => {
                ours.insert(dest, i);
            }
            None => {
                if let Some(dest) = prefix_of(route) {
                    foreign.insert(dest, route["name"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
    // New routes waiting for room: (change index, route).
    let mut pending: Vec<(usize, Value)> = Vec::new();
    let mut dispositions = vec![Disposition::AlreadyDone; changes.len()];

    for (i, change) in changes.iter().enumerate() {
        let dest = *change.destination();
        dispositions[i] = match change {
            RouteChange::Create { next_hop, .. } | RouteChange::Replace { next_hop, .. } => {
                match target_ip(&dest, next_hop) {
                    Err(e) => Disposition::Refused(e),
                    Ok(ip) => {
                        if let Some(&idx) = ours.get(&dest) {
                            let slot = slots[idx].as_mut().expect("owned route present");
                            if hop_of(slot) == Some(ip) {
                                Disposition::AlreadyDone
                            } else {
                                retarget(slot, ip);
                                Disposition::Write
                            }
                        } else if let Some(name) = foreign.get(&dest) {
                            Disposition::Refused(CloudError::new(
                                ErrorKind::Conflict,
                                "RouteConflict",
                                format!(
                                    "{dest} is already routed by route {name:?}, which is not ours"
                                ),
                            ))
                        } else if let Some(p) =
                            pending.iter_mut().find(|(_, r)| prefix_of(r) == Some(dest))
                        {
                            // The same destination twice in one batch: the later one wins.
                            dispositions[p.0] = Disposition::AlreadyDone;
                            p.0 = i;
                            retarget(&mut p.1, ip);
                            Disposition::Write
                        } else {
                            pending.push((i, new_route(namer, &dest, ip)));
                            Disposition::Write
                        }
                    }
                }
            }
            RouteChange::Delete { next_hop, .. } => match ours.get(&dest) {
                Some(&idx) => {
                    let slot = slots[idx].as_ref().expect("owned route present");
                    let planned = match next_hop {
                        NextHop::IpAddress(ip) => Some(*ip),
                        _ => None,
                    };
                    if planned.is_some() && hop_of(slot) != planned {
                        Disposition::Refused(CloudError::new(
                            ErrorKind::Conflict,
                            "RouteChangedHands",
                            format!("{dest} now targets another address than planned; not deleted"),
                        ))
                    } else {
                        slots[idx] = None;
                        ours.remove(&dest);
                        Disposition::Write
                    }
                }
                None => {
                    pending.retain(|(_, r)| prefix_of(r) != Some(dest));
                    Disposition::AlreadyDone
                }
            },
        };
    }

    let mut routes: Vec<Value> = slots.into_iter().flatten().collect();
    for (i, route) in pending {
        if routes.len() < limit {
            routes.push(route);
        } else {
            dispositions[i] = Disposition::Refused(CloudError::new(
                ErrorKind::QuotaExceeded,
                "RouteTableRouteLimitExceeded",
                format!(
                    "the route table holds its limit of {limit} routes; this route did not fit"
                ),
            ));
        }
    }
    Merged {
        routes,
        dispositions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namer() -> RouteNamer {
        RouteNamer::new("k1").unwrap()
    }
    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn hop(s: &str) -> NextHop {
        NextHop::IpAddress(s.parse().unwrap())
    }
    fn create(d: &str, h: &str) -> RouteChange {
        RouteChange::Create {
            destination: net(d),
            next_hop: hop(h),
        }
    }

    #[test]
    fn create_replace_delete_keep_foreign_verbatim() {
        let n = namer();
        let foreign = json!({"name": "k10--10.0.1.0_24", "etag": "W/\"x\"", "properties": {"addressPrefix": "10.0.1.0/24", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.9", "futureField": {"a": [1, 2]}}});
        let mine_a = json!({"name": "k1--10.0.2.0_24", "properties": {"addressPrefix": "10.0.2.0/24", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.2", "x-extra": 1}});
        let mine_b = json!({"name": "k1--10.0.3.0_24", "properties": {"addressPrefix": "10.0.3.0/24", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.3"}});
        let current = vec![foreign.clone(), mine_a, mine_b];
        let changes = vec![
            create("10.0.4.0/24", "10.1.0.4"),
            RouteChange::Replace {
                destination: net("10.0.2.0/24"),
                next_hop: hop("10.1.0.22"),
                previous: hop("10.1.0.2"),
            },
            RouteChange::Delete {
                destination: net("10.0.3.0/24"),
                next_hop: hop("10.1.0.3"),
            },
            create("fd00:1::/64", "fd00::4"),
        ];
        let m = merge(&current, &changes, &n, 400);
        assert!(m.dispositions.iter().all(|d| *d == Disposition::Write));
        assert_eq!(m.routes[0], foreign);
        assert_eq!(m.routes[1]["properties"]["nextHopIpAddress"], "10.1.0.22");
        assert_eq!(m.routes[1]["properties"]["x-extra"], 1);
        let names: Vec<&str> = m
            .routes
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "k10--10.0.1.0_24",
                "k1--10.0.2.0_24",
                "k1--10.0.4.0_24",
                "k1--fd00-1--_64"
            ]
        );
    }

    #[test]
    fn idempotent_and_conflicts_are_reported() {
        let n = namer();
        let current = vec![
            json!({"name": "k1--10.0.2.0_24", "properties": {"addressPrefix": "10.0.2.0/24", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.2"}}),
            json!({"name": "ops", "properties": {"addressPrefix": "10.0.5.0/24", "nextHopType": "None"}}),
            // Named like ours but pointing at another prefix: not ours.
            json!({"name": "k1--10.0.6.0_24", "properties": {"addressPrefix": "10.0.7.0/24", "nextHopType": "None"}}),
        ];
        let changes = vec![
            create("10.0.2.0/24", "10.1.0.2"),
            RouteChange::Delete {
                destination: net("10.0.9.0/24"),
                next_hop: hop("10.1.0.9"),
            },
            create("10.0.5.0/24", "10.1.0.5"),
            RouteChange::Delete {
                destination: net("10.0.2.0/24"),
                next_hop: hop("10.9.9.9"),
            },
            create("10.0.8.0/24", "fd00::1"),
            RouteChange::Delete {
                destination: net("10.0.6.0/24"),
                next_hop: hop("10.1.0.6"),
            },
        ];
        let m = merge(&current, &changes, &n, 400);
        assert_eq!(m.dispositions[0], Disposition::AlreadyDone);
        assert_eq!(m.dispositions[1], Disposition::AlreadyDone);
        let code = |d: &Disposition| match d {
            Disposition::Refused(e) => e.code.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(code(&m.dispositions[2]), "RouteConflict");
        assert_eq!(code(&m.dispositions[3]), "RouteChangedHands");
        assert_eq!(code(&m.dispositions[4]), "InvalidNextHop");
        assert_eq!(m.dispositions[5], Disposition::AlreadyDone);
        assert!(!m.needs_write());
        assert_eq!(m.routes, current);
    }

    #[test]
    fn quota_trims_new_routes_in_caller_order_after_deletes() {
        let n = namer();
        let current: Vec<Value> = (0..4)
            .map(|i| json!({"name": format!("other{i}"), "properties": {"addressPrefix": format!("172.16.{i}.0/24"), "nextHopType": "None"}}))
            .chain([json!({"name": "k1--10.0.0.0_24", "properties": {"addressPrefix": "10.0.0.0/24", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.1"}})])
            .collect();
        let mut changes: Vec<RouteChange> = (1..5)
            .map(|i| create(&format!("10.0.{i}.0/24"), "10.1.0.1"))
            .collect();
        changes.push(RouteChange::Delete {
            destination: net("10.0.0.0/24"),
            next_hop: hop("10.1.0.1"),
        });
        let m = merge(&current, &changes, &n, 6);
        // 4 foreign + room for 2 after the delete frees one slot.
        assert_eq!(m.routes.len(), 6);
        assert_eq!(m.dispositions[0], Disposition::Write);
        assert_eq!(m.dispositions[1], Disposition::Write);
        for d in &m.dispositions[2..4] {
            assert!(matches!(d, Disposition::Refused(e) if e.kind == ErrorKind::QuotaExceeded));
        }
        assert_eq!(m.dispositions[4], Disposition::Write);
    }
}
