//! Planning one table: classify its routes against the desired set (draft), then admit
//! creates within the quota once the deletion guard has decided (finish).

use std::collections::HashMap;

use ipnet::IpNet;

use cni_cloud_providers::{
    Claim, Family, NextHop, QuotaScope, Route, RouteChange, RouteOrigin, RouteState, RouteTable,
};

use super::desired::{DesiredSet, range};
use super::{Conflict, Findings, QuotaBlocked, QuotaUse, TablePlan};

/// Ours: provider says this cluster wrote it, it was created by a call (not the table
/// itself, not propagated), and it routes part of a cluster CIDR.
pub fn is_ours(route: &Route, cluster_cidrs: &[IpNet]) -> bool {
    route.claim == Claim::Cluster
        && route.origin == RouteOrigin::Manual
        && cluster_cidrs.iter().any(|c| c.contains(&route.destination))
}

/// A route nobody can use: a blackhole we write over when a node needs its destination
/// (it carries no traffic, so no memory of its owner is needed to replace it).
fn is_dead(route: &Route) -> bool {
    route.state == RouteState::Blackhole && route.origin == RouteOrigin::Manual
}

/// The classification of one table, before quota admission.
pub(crate) struct Draft<'t> {
    table: &'t RouteTable,
    deletes: Vec<RouteChange>,
    /// Stale routes kept this pass because some node could not be looked up.
    waiting: Vec<RouteChange>,
    /// Targets the cloud shows dead (our route to them is a blackhole).
    dead_targets: Vec<NextHop>,
    dead: Vec<&'t Route>,
    replaces: Vec<RouteChange>,
    /// Indexes into `DesiredSet::entries`, in admission order.
    creates: Vec<usize>,
    conflicts: Vec<Conflict>,
    desired: u32,
    present: u32,
}

impl Draft<'_> {
    pub(crate) fn owned(&self) -> usize {
        self.present as usize + self.replaces.len() + self.deletes.len()
    }
    pub(crate) fn deletes(&self) -> usize {
        self.deletes.len()
    }
}

pub(crate) fn draft<'t>(
    table: &'t RouteTable,
    desired: &DesiredSet,
    cluster_cidrs: &[IpNet],
    findings: &mut Findings,
) -> Draft<'t> {
    let mut ours: HashMap<IpNet, &Route> = HashMap::new();
    // Foreign routes inside the cluster CIDRs, by start address: the shadow candidates.
    let mut foreign: Vec<(Family, u128, u128, &Route)> = Vec::new();
    let mut dead = Vec::new();
    for r in &table.routes {
        let inside = cluster_cidrs.iter().any(|c| c.contains(&r.destination));
        if is_ours(r, cluster_cidrs) {
            ours.entry(r.destination).or_insert(r);
        } else if inside && is_dead(r) && desired.by_destination.contains_key(&r.destination) {
            // Exactly where a node's route must go: replaced like one of ours.
            ours.entry(r.destination).or_insert(r);
        } else if inside {
            if is_dead(r) {
                dead.push(r);
            }
            let (s, e) = range(&r.destination);
            foreign.push((Family::of(&r.destination), s, e, r));
        }
    }
    foreign.sort_unstable_by_key(|(f, s, e, _)| (*f, *s, *e));

    let mut d = Draft {
        table,
        deletes: Vec::new(),
        waiting: Vec::new(),
        dead_targets: Vec::new(),
        dead: Vec::new(),
        replaces: Vec::new(),
        creates: Vec::new(),
        conflicts: Vec::new(),
        desired: 0,
        present: 0,
    };
    let mut matched: Vec<IpNet> = Vec::new();
    for (ei, e) in desired.entries.iter().enumerate() {
        let family = e.family();
        if !table.families.holds(family) {
            findings.invalid(
                e.node,
                format!(
                    "table {} cannot hold {family} routes (podCIDR {})",
                    table.id, e.destination
                ),
            );
            continue;
        }
        d.desired += 1;
        // A foreign route with the same prefix, or a more specific one inside it, steals
        // (part of) the node's traffic.
        let (start, end) = range(&e.destination);
        let from = foreign.partition_point(|(f, s, _, _)| (*f, *s) < (family, start));
        let mut blocked = false;
        for (f, s, fe, r) in &foreign[from..] {
            if *f != family || *s > end {
                break;
            }
            if *fe > end {
                continue;
            }
            blocked |= r.destination == e.destination;
            findings.conflict(
                e.node,
                format!(
                    "route {} in table {} points to {} and is not owned by this cluster; it \
                     shadows podCIDR {}",
                    r.destination, table.id, r.next_hop, e.destination
                ),
            );
            d.conflicts.push(Conflict {
                destination: r.destination,
                next_hop: r.next_hop.clone(),
                node: desired.names[e.node].clone(),
                node_cidr: e.destination,
            });
        }
        if let Some(r) = ours.get(&e.destination) {
            matched.push(e.destination);
            if r.next_hop == e.next_hop && r.state == RouteState::Active {
                d.present += 1;
            } else if r.next_hop == e.next_hop {
                // The cloud says the very target we would write is gone: writing it again
                // would only make another blackhole. Look the node up afresh instead.
                findings.pending(
                    e.node,
                    format!(
                        "route {} in table {} is a blackhole: interface {} is gone; looking \
                         the node up again",
                        e.destination, table.id, r.next_hop
                    ),
                );
                d.dead_targets.push(r.next_hop.clone());
            } else {
                let why = if r.state == RouteState::Blackhole {
                    "is a blackhole"
                } else {
                    "points to a previous target"
                };
                findings.pending(
                    e.node,
                    format!(
                        "route {} in table {} {why} ({}); replacing it with {}",
                        e.destination, table.id, r.next_hop, e.next_hop
                    ),
                );
                d.replaces.push(RouteChange::Replace {
                    destination: e.destination,
                    next_hop: e.next_hop.clone(),
                    previous: r.next_hop.clone(),
                });
            }
        } else if !blocked {
            d.creates.push(ei);
        }
    }
    for m in matched {
        ours.remove(&m);
    }
    let mut stale: Vec<&Route> = ours
        .into_values()
        .filter(|r| !desired.protected.contains(&r.destination))
        .filter(|r| match desired.protected_hops.get(&r.next_hop) {
            None => true,
            Some(&(node, empty)) => {
                if empty {
                    findings.invalid(
                        node,
                        format!(
                            "the node has no podCIDR, but its route {} → {} in table {} \
                             exists; kept until a podCIDR is assigned again or the node \
                             is deleted",
                            r.destination, r.next_hop, table.id
                        ),
                    );
                }
                false
            }
        })
        .collect();
    stale.sort_by_key(|a| a.destination);
    let deletes = stale.into_iter().map(|r| RouteChange::Delete {
        destination: r.destination,
        next_hop: r.next_hop.clone(),
    });
    if desired.unknown_targets > 0 {
        d.waiting = deletes.collect();
    } else {
        d.deletes = deletes.collect();
    }
    d.dead = dead;
    d
}

/// Admit creates within the quota (never evicting a correct route), given whether the
/// deletion guard holds the deletes back.
pub(crate) fn finish(
    d: Draft<'_>,
    desired: &DesiredSet,
    hold_deletes: bool,
    findings: &mut Findings,
) -> TablePlan {
    let table = d.table;
    let freed = |family: Option<Family>| -> u32 {
        if hold_deletes {
            return 0;
        }
        d.deletes
            .iter()
            .filter(|c| family.is_none_or(|f| Family::of(c.destination()) == f))
            .count() as u32
    };
    let scopes: Vec<Option<Family>> = match table.quota.scope {
        QuotaScope::Shared => vec![None],
        QuotaScope::PerFamily => [Family::V4, Family::V6]
            .into_iter()
            .filter(|f| table.families.holds(*f) || table.usage(*f) > 0)
            .map(Some)
            .collect(),
    };
    let mut used: Vec<u32> = scopes
        .iter()
        .map(|s| {
            let now = match s {
                None => table.routes.len() as u32,
                Some(f) => table.usage(*f),
            };
            now - freed(*s)
        })
        .collect();
    let scope_of = |family: Family| {
        scopes
            .iter()
            .position(|s| s.is_none_or(|f| f == family))
            .expect("a held family has a scope")
    };

    let mut admitted = Vec::new();
    let mut refused: Vec<usize> = Vec::new();
    for &ei in &d.creates {
        let s = scope_of(desired.entries[ei].family());
        if used[s] < table.quota.limit {
            used[s] += 1;
            admitted.push(ei);
        } else {
            refused.push(ei);
        }
    }
    let mut quota_blocked = Vec::new();
    for &ei in &refused {
        let e = &desired.entries[ei];
        let s = scope_of(e.family());
        let what = match scopes[s] {
            None => "routes".to_owned(),
            Some(f) => format!("{f} routes"),
        };
        let waiting = refused
            .iter()
            .filter(|&&o| scope_of(desired.entries[o].family()) == s)
            .count();
        findings.quota(
            e.node,
            format!(
                "table {} is full: {what} at {}/{} (limit reached), no room for podCIDR {} \
                 ({waiting} routes waiting)",
                table.id, used[s], table.quota.limit, e.destination
            ),
        );
        quota_blocked.push(QuotaBlocked {
            node: desired.names[e.node].clone(),
            destination: e.destination,
        });
    }

    let mut changes = Vec::with_capacity(d.deletes.len() + d.replaces.len() + admitted.len());
    let mut held_deletes = d.waiting;
    if hold_deletes {
        held_deletes.extend(d.deletes);
    } else {
        changes.extend(d.deletes);
    }
    changes.extend(d.replaces);
    for ei in admitted {
        let e = &desired.entries[ei];
        findings.pending(
            e.node,
            format!(
                "route {} → {} missing in table {}",
                e.destination, e.next_hop, table.id
            ),
        );
        changes.push(RouteChange::Create {
            destination: e.destination,
            next_hop: e.next_hop.clone(),
        });
    }
    TablePlan {
        table: table.id.clone(),
        name: table.name.clone(),
        changes,
        held_deletes,
        conflicts: d.conflicts,
        quota_blocked,
        desired: d.desired,
        present: d.present,
        dead_routes: d.dead.into_iter().cloned().collect(),
        dead_targets: d.dead_targets,
        quota: scopes
            .iter()
            .zip(used)
            .map(|(s, used)| QuotaUse {
                family: *s,
                used,
                limit: table.quota.limit,
            })
            .collect(),
    }
}

pub(crate) fn warnings(tp: &TablePlan, out: &mut Vec<String>) {
    for q in &tp.quota {
        if q.limit > 0 && q.used as u64 * 5 >= q.limit as u64 * 4 {
            let what = q.family.map(|f| format!("{f} ")).unwrap_or_default();
            out.push(format!(
                "table {} {what}routes at {}/{} ({:.0} % of the quota)",
                tp.table,
                q.used,
                q.limit,
                q.used as f64 * 100.0 / q.limit as f64
            ));
        }
    }
    if !tp.quota_blocked.is_empty() {
        out.push(format!(
            "table {}: {} node routes do not fit the route quota",
            tp.table,
            tp.quota_blocked.len()
        ));
    }
    if !tp.dead_routes.is_empty() {
        let sample = tp
            .dead_routes
            .iter()
            .take(3)
            .map(|r| format!("{} → {}", r.destination, r.next_hop))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(format!(
            "table {}: {} blackhole routes inside the cluster CIDRs are not provably ours and \
             no node needs them; left in place: {sample}{}",
            tp.table,
            tp.dead_routes.len(),
            if tp.dead_routes.len() > 3 {
                ", …"
            } else {
                ""
            }
        ));
    }
    if !tp.conflicts.is_empty() {
        let sample = tp
            .conflicts
            .iter()
            .take(3)
            .map(|c| format!("{} → {} (node {})", c.destination, c.next_hop, c.node))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(format!(
            "table {}: {} routes not owned by this cluster shadow node routes: {sample}{}",
            tp.table,
            tp.conflicts.len(),
            if tp.conflicts.len() > 3 { ", …" } else { "" }
        ));
    }
}
