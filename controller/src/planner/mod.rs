//! The route planner: a pure function from (nodes, cluster CIDRs, listed tables, options)
//! to a [`Plan`]. No I/O and no clock, so every decision is unit- and property-testable.
//!
//! Ownership (see ARCHITECTURE.md): a route is *ours* only when the provider marked it
//! [`Claim::Cluster`], its origin is [`RouteOrigin::Manual`] and its destination lies
//! inside a cluster CIDR. Only ours are ever changed. Anything else inside a cluster CIDR
//! that shadows a desired route (same prefix, or a more specific one inside it) is a
//! conflict: reported on the node, never touched.

mod desired;
mod table;

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use serde::Serialize;

use cni_cloud_providers::{Family, NextHop, NodeTarget, Route, RouteChange, RouteTable, TableId};

use crate::cluster::{ClusterNode, NodeReport, NodeRouteStatus};

pub use desired::{Claimed, DesiredSet};

/// Why a node has no usable target: decides whether it is invalid input (the operator must
/// act) or merely pending (the cloud could not answer right now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Missing, malformed or unknown providerID, or an instance outside this cluster.
    Invalid(String),
    /// The lookup failed transiently; the node's existing routes are kept untouched and
    /// its condition stays as last verified.
    Unavailable(String),
    /// The cloud refused to prepare the node (forwarding could not be switched on): the
    /// node is not routable, its existing routes are kept, and it is reported pending.
    Refused(String),
}

/// A node together with the target its providerID resolved to (resolution is I/O, so
/// the caller does it).
#[derive(Debug, Clone)]
pub struct PlanNode {
    pub node: ClusterNode,
    pub target: Result<NodeTarget, TargetError>,
}

/// The deletion guard and the node list's trust level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanOptions {
    /// Hold back a plan deleting more than this share of our routes…
    pub guard_share: f64,
    /// …and more than this many routes…
    pub guard_min: usize,
    /// …unless the node list is known to be complete.
    pub authoritative: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            guard_share: 0.5,
            guard_min: 5,
            authoritative: false,
        }
    }
}

/// Quota use of one table for one family (or for the whole table when the quota is shared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaUse {
    /// `None` when the quota is shared by both families (Azure).
    pub family: Option<Family>,
    /// Routes counted after the plan is applied.
    pub used: u32,
    pub limit: u32,
}

/// A route we do not own that sits where a node's route must go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub destination: IpNet,
    pub next_hop: NextHop,
    /// The node whose podCIDR it shadows.
    pub node: String,
    pub node_cidr: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaBlocked {
    pub node: String,
    pub destination: IpNet,
}

/// Everything planned for one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePlan {
    pub table: TableId,
    pub name: String,
    /// In execution order: deletes (free quota first), replaces, creates (oldest node first).
    pub changes: Vec<RouteChange>,
    /// Deletes the deletion guard held back.
    pub held_deletes: Vec<RouteChange>,
    pub conflicts: Vec<Conflict>,
    pub quota_blocked: Vec<QuotaBlocked>,
    /// Routes the nodes need in this table.
    pub desired: u32,
    /// Of those, present with the right target.
    pub present: u32,
    pub quota: Vec<QuotaUse>,
    /// Blackhole routes inside the cluster CIDRs that no node needs and that we cannot
    /// prove ours: reported, never deleted.
    pub dead_routes: Vec<Route>,
    /// Node targets the cloud shows gone (our route to them is a blackhole): not written
    /// again; the caller looks those nodes up afresh.
    pub dead_targets: Vec<NextHop>,
}

impl TablePlan {
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.changes
            .iter()
            .filter(|c| ChangeKind::of(c) == kind)
            .count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Create,
    Replace,
    Delete,
}

impl ChangeKind {
    pub fn of(change: &RouteChange) -> ChangeKind {
        match change {
            RouteChange::Create { .. } => ChangeKind::Create,
            RouteChange::Replace { .. } => ChangeKind::Replace,
            RouteChange::Delete { .. } => ChangeKind::Delete,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// One entry per table, sorted by table id.
    pub tables: Vec<TablePlan>,
    /// One report per node, sorted by node name.
    pub nodes: Vec<NodeReport>,
    pub warnings: Vec<String>,
    pub guard_tripped: bool,
}

impl Plan {
    /// No change is planned (held deletes do not count: they wait for an authoritative list).
    pub fn is_converged(&self) -> bool {
        self.tables.iter().all(|t| t.changes.is_empty())
    }

    pub fn change_count(&self) -> usize {
        self.tables.iter().map(|t| t.changes.len()).sum()
    }

    pub fn status_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for r in &self.nodes {
            *out.entry(status_name(&r.status)).or_default() += 1;
        }
        out
    }
}

pub fn status_name(status: &NodeRouteStatus) -> &'static str {
    match status {
        NodeRouteStatus::Routed => "routed",
        NodeRouteStatus::Pending { .. } => "pending",
        NodeRouteStatus::QuotaExceeded { .. } => "quota_exceeded",
        NodeRouteStatus::Conflict { .. } => "conflict",
        NodeRouteStatus::InvalidInput { .. } => "invalid_input",
        NodeRouteStatus::Unknown { .. } => "unknown",
    }
}

/// Severity order for folding several findings about one node into one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    /// Only when nothing verified is known about the node.
    Unknown,
    Pending,
    QuotaExceeded,
    Conflict,
    InvalidInput,
}

/// Collects findings per node; the most severe kind wins, every reason is kept.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    by_node: HashMap<usize, Vec<(Severity, String)>>,
}

impl Findings {
    fn add(&mut self, node: usize, severity: Severity, reason: String) {
        self.by_node
            .entry(node)
            .or_default()
            .push((severity, reason));
    }
    pub(crate) fn invalid(&mut self, node: usize, reason: String) {
        self.add(node, Severity::InvalidInput, reason);
    }
    pub(crate) fn conflict(&mut self, node: usize, reason: String) {
        self.add(node, Severity::Conflict, reason);
    }
    pub(crate) fn quota(&mut self, node: usize, reason: String) {
        self.add(node, Severity::QuotaExceeded, reason);
    }
    pub(crate) fn pending(&mut self, node: usize, reason: String) {
        self.add(node, Severity::Pending, reason);
    }
    pub(crate) fn unknown(&mut self, node: usize, reason: String) {
        self.add(node, Severity::Unknown, reason);
    }

    fn status(&mut self, node: usize) -> NodeRouteStatus {
        let Some(mut found) = self.by_node.remove(&node) else {
            return NodeRouteStatus::Routed;
        };
        let worst = found.iter().map(|(s, _)| *s).max().expect("non-empty");
        found.retain(|(s, _)| *s == worst);
        // Cap the reason: a node in 50 tables must not produce a 50-line condition message.
        const MAX_REASONS: usize = 4;
        let total = found.len();
        let mut reason = found
            .iter()
            .take(MAX_REASONS)
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if total > MAX_REASONS {
            reason.push_str(&format!(" (and {} more)", total - MAX_REASONS));
        }
        match worst {
            Severity::Unknown => NodeRouteStatus::Unknown { reason },
            Severity::Pending => NodeRouteStatus::Pending { reason },
            Severity::QuotaExceeded => NodeRouteStatus::QuotaExceeded { reason },
            Severity::Conflict => NodeRouteStatus::Conflict { reason },
            Severity::InvalidInput => NodeRouteStatus::InvalidInput { reason },
        }
    }
}

/// Plan every managed table. Pure and deterministic: the result does not depend on the
/// order of `nodes`, `cluster_cidrs` or `tables`.
pub fn plan(
    nodes: &[PlanNode],
    cluster_cidrs: &[IpNet],
    tables: &[RouteTable],
    options: &PlanOptions,
) -> Plan {
    // Admission order: oldest first, then by name (uid breaks exact ties).
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&nodes[a].node, &nodes[b].node);
        (x.created_unix, &x.name, &x.uid).cmp(&(y.created_unix, &y.name, &y.uid))
    });
    let sorted: Vec<&PlanNode> = order.iter().map(|&i| &nodes[i]).collect();

    let mut cidrs: Vec<IpNet> = cluster_cidrs.iter().map(|c| c.trunc()).collect();
    cidrs.sort();
    cidrs.dedup();

    let mut findings = Findings::default();
    let desired = DesiredSet::build(&sorted, &cidrs, &mut findings);

    let mut table_order: Vec<&RouteTable> = tables.iter().collect();
    table_order.sort_by(|a, b| a.id.cmp(&b.id));

    let drafts: Vec<table::Draft<'_>> = table_order
        .iter()
        .map(|t| table::draft(t, &desired, &cidrs, &mut findings))
        .collect();

    // The guard decides before quota admission: held deletes free no room.
    let mut warnings = Vec::new();
    let guard_tripped = deletion_guard(&drafts, &desired, options, &mut warnings);
    let table_plans: Vec<TablePlan> = drafts
        .into_iter()
        .map(|d| table::finish(d, &desired, guard_tripped, &mut findings))
        .collect();
    for tp in &table_plans {
        table::warnings(tp, &mut warnings);
    }
    let waiting: usize = table_plans.iter().map(|t| t.held_deletes.len()).sum();
    if waiting > 0 && desired.unknown_targets > 0 {
        warnings.push(format!(
            "{waiting} stale routes kept: {} nodes could not be looked up, and a stale route \
             may be theirs; they are deleted once every node is resolved",
            desired.unknown_targets
        ));
    }

    let mut reports: Vec<NodeReport> = sorted
        .iter()
        .enumerate()
        .map(|(i, n)| NodeReport {
            node: n.node.name.clone(),
            uid: n.node.uid.clone(),
            status: findings.status(i),
        })
        .collect();
    reports.sort_by(|a, b| (&a.node, &a.uid).cmp(&(&b.node, &b.uid)));

    Plan {
        tables: table_plans,
        nodes: reports,
        warnings,
        guard_tripped,
    }
}

/// Hold back every delete when the plan would remove too large a share of our routes and
/// the node list might be incomplete (an API glitch returning few or no nodes).
fn deletion_guard(
    drafts: &[table::Draft<'_>],
    desired: &DesiredSet,
    options: &PlanOptions,
    warnings: &mut Vec<String>,
) -> bool {
    if options.authoritative {
        return false;
    }
    let ours: usize = drafts.iter().map(|d| d.owned()).sum();
    let deletes: usize = drafts.iter().map(|d| d.deletes()).sum();
    let share = if ours == 0 {
        0.0
    } else {
        deletes as f64 / ours as f64
    };
    // An empty list nobody confirmed is a glitch until proven otherwise: the controller
    // itself runs on a Node. It holds even a handful of deletes.
    let empty = desired.node_count() == 0 && deletes > 0;
    if !empty && (deletes <= options.guard_min || share <= options.guard_share) {
        return false;
    }
    warnings.push(format!(
        "deletion guard tripped: the plan would delete {deletes} of {ours} routes owned by this \
         cluster ({:.0} % > {:.0} %, more than {}) while the node list ({} nodes) is not known to \
         be complete; deletes are held back until it is",
        share * 100.0,
        options.guard_share * 100.0,
        options.guard_min,
        desired.node_count(),
    ));
    true
}

#[cfg(test)]
mod tests;
