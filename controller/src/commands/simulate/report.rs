//! What a simulation reports: the mock's own view of the result (never the controller's
//! claims). Plain data: `render` writes it as text, `serde` as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

/// The route tables as the mock holds them, judged against the generated cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub routes_expected: u64,
    /// Expected routes present with the right target and active.
    pub routes_present: u64,
    /// Routes for a node CIDR with a wrong target or blackholed.
    pub routes_wrong: u64,
    pub foreign_routes: u64,
    /// Foreign routes changed or removed.
    pub foreign_routes_touched: u64,
    pub quota_blocked_nodes: u64,
    /// Nodes a foreign route sits at or inside the podCIDR of (seeded on purpose).
    pub conflicts_expected: u64,
}

impl Inspection {
    pub fn is_converged(&self) -> bool {
        self.routes_present == self.routes_expected && self.routes_wrong == 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Churn {
    pub nodes_replaced: u64,
    pub converged: bool,
    pub seconds: f64,
    pub mutating_calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Steady {
    /// Mutating calls during one resync pass over the converged fabric.
    pub mutating_calls: u64,
    /// Route table listings during that pass.
    pub list_calls: u64,
    /// Tables managed during that pass (`--lose-table` takes one away).
    pub tables: u64,
    /// Every call the mock received during that pass, by action (listings, instance / VM /
    /// NIC reads, writes), whatever its outcome.
    pub calls: BTreeMap<String, u64>,
    /// Instance / VM / NIC reads during that pass, and per node.
    pub node_reads: u64,
    pub reads_per_node: f64,
}

/// `--terminate` / `--lose-table`: cloud events after the first convergence.
#[derive(Debug, Clone, Serialize)]
pub struct CloudEvents {
    pub instances_terminated: u64,
    /// Routes of the terminated instances the mock showed as blackholes right after.
    pub routes_blackholed: u64,
    /// The table untagged, and the routes it held then (foreign from then on).
    pub table_lost: Option<String>,
    pub lost_table_routes: u64,
    /// The podCIDRs reused by new nodes all routed to them, the other tables converged.
    pub converged: bool,
    pub seconds: f64,
    pub mutating_calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadFaults {
    /// Resync passes run with reads failing.
    pub read_fault_passes: u64,
    /// Reads the mock failed during them.
    pub read_faults_injected: u64,
    pub condition_flips: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SimReport {
    pub cloud: String,
    pub nodes: u64,
    /// The fabric at the end (its fields appear at the top level of the JSON).
    #[serde(flatten)]
    pub fabric: Inspection,
    /// Nodes the controller reported RouteQuotaExceeded on (must equal the above).
    pub quota_blocked_reported: u64,
    /// Nodes the controller reported RouteConflict on (must equal `conflicts_expected`).
    pub conflicts_reported: u64,
    pub converged: bool,
    /// Wall seconds to the first verified convergence.
    pub seconds: f64,
    /// The rate-limit floor for the same work at this time scale, in wall seconds.
    pub floor_seconds: f64,
    /// Calls the mock cloud received, by action.
    pub api_calls: BTreeMap<String, u64>,
    /// Instance / VM / NIC reads (node lookups and forwarding checks, not table listings)
    /// per node over the whole run: what grows with the cluster if anything does.
    pub reads_per_node: f64,
    /// Mutating calls received until the first convergence (route writes + node prep).
    pub mutating_calls: u64,
    /// Of the work, node-prep writes (forwarding switched on).
    pub node_prep_calls: u64,
    pub throttled: u64,
    pub faults_injected: u64,
    pub time_scale: f64,
    pub steady_state: Option<Steady>,
    pub churn: Option<Churn>,
    /// `--read-faults`: reads failed on purpose after convergence, and the condition
    /// changes the controller published meanwhile on nodes whose route stayed present
    /// (`Unknown` is no change). Must be 0.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub read_faults: Option<ReadFaults>,
    /// `--terminate` / `--lose-table`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_events: Option<CloudEvents>,
    /// `--kube`: replicas, leader changes, failover, duplicates, conditions.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeSummary>,
}

/// `--kube`: how the replicas shared the work, judged from the mock API's and the mock
/// cloud's own logs.
#[derive(Debug, Clone, Serialize)]
pub struct KubeSummary {
    pub replicas: u32,
    pub leader_changes: u64,
    /// From the kill to the first mutation after the new leader took the Lease.
    pub failover_seconds: Option<f64>,
    /// From the kill to the new leader's first write of the Lease.
    pub lease_takeover_seconds: Option<f64>,
    /// Lease duration + one retry period the replicas ran with: the failover bound.
    pub failover_bound_seconds: f64,
    /// The same route write applied twice.
    pub duplicate_mutations: u64,
    /// Nodes whose NetworkUnavailable matches the cloud's verified state.
    pub nodes_condition_correct: u64,
    /// When the Lease changed hands and when the leader was killed (`--plot`).
    #[serde(skip)]
    pub leader_changes_unix_ms: Vec<u128>,
    #[serde(skip)]
    pub leader_killed_unix_ms: Option<u128>,
    /// `--pause-leader-at` / `--flap-leadership`: leaders stopped (SIGSTOP, later SIGCONT)
    /// and killed (SIGKILL, replaced) on purpose.
    pub leader_pauses: u64,
    pub leader_kills: u64,
    /// Mutating requests a paused leader sent after its successor's first one, from the
    /// mock cloud's per-client request log (`None` without a pause). Must be 0.
    pub writes_by_deposed_leader: Option<u64>,
    /// `--node-updates-per-second`: route-irrelevant Node updates written during the run.
    pub node_updates: u64,
    /// `--join-rate`: nodes that joined during the run.
    pub nodes_joined: u64,
    /// `--join-rate`: podCIDR assigned → `NetworkUnavailable=False` seen on the Node with
    /// the route present in the mock cloud at that moment, in cloud seconds.
    pub readiness_seconds: Option<Readiness>,
}

/// Node readiness over the joined nodes, in cloud seconds (wall × time scale).
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Joined nodes that became ready (the rest never did).
    pub nodes: u64,
}
