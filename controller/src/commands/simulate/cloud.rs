//! What `simulate` needs of a mock cloud, whichever it is: the provider to drive it with,
//! one walk over its route tables judged against the generated cluster, its counters, its
//! rate-limit floor, and churn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ipnet::IpNet;

use cni_cloud_providers::CloudProvider;

use super::cluster::SimCluster;
use super::report::Inspection;

/// Reads a mock's (throttled, faults injected) counters, from any thread (`--plot`).
pub type CounterProbe = Box<dyn Fn() -> (u64, u64) + Send + Sync>;

/// One request as the mock cloud received it, before throttling, faults or latency: the
/// per-client log a fencing verdict is judged from (a request counts even if it failed).
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// Seconds on the mock's clock (wall time since it started).
    pub at: f64,
    /// Who sent it: the credential the mock saw (an AWS access key, the client id an ARM
    /// token was issued to).
    pub client: String,
    pub action: String,
    /// A write: route create / replace / delete, a route table PUT, node preparation.
    pub mutating: bool,
}

/// One change the mock applied (accepted), in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The mock's clock, as [`Sent::at`].
    pub at: f64,
    /// A route change: the same key twice is the same write applied twice. `None` for node
    /// preparation (forwarding switched on), which is not judged for duplicates.
    pub route: Option<String>,
}

/// One mock cloud, started in-process, with the real provider pointed at it.
pub trait SimCloud: Send + Sync {
    fn provider(&self) -> Arc<dyn CloudProvider>;
    /// Every request received so far, in order of arrival, with its client.
    fn requests(&self) -> Vec<Sent>;
    /// How many requests [`requests`](Self::requests) holds now.
    fn request_count(&self) -> usize {
        self.requests().len()
    }
    /// Every change applied so far, in order.
    fn applied(&self) -> Vec<Applied>;
    /// What a separate `cni-cloud-controller run` process needs to drive this mock as
    /// replica number `replica`: the client the mock's request log will name it by, and
    /// its environment (endpoint, tables, its own credentials).
    fn replica_env(&self, replica: u32) -> (String, Vec<(String, String)>);
    /// One walk over the managed tables as the mock holds them.
    fn judge(&self, cluster: &SimCluster) -> Judgement;
    /// Calls the mock received, by action, whatever their outcome.
    fn api_calls(&self) -> BTreeMap<String, u64>;
    /// Route writes and node preparation (forwarding switched on).
    fn mutating_calls(&self) -> u64;
    /// Route table listings.
    fn list_calls(&self) -> u64;
    /// Per-node reads: instance / VM / NIC lookups and checks, not table listings.
    fn node_reads(&self) -> u64;
    fn throttled(&self) -> u64;
    fn faults_injected(&self) -> u64;
    /// From now on, fail this share of reads (listings, instance / VM / NIC lookups) with a
    /// transient error; 0 stops it.
    fn set_read_faults(&self, rate: f64);
    /// `throttled` and `faults_injected` for a `--plot` timeline.
    fn counter_probe(&self) -> CounterProbe;
    /// The rate-limit floor for `writes` mutating calls, in wall seconds at this time scale.
    fn floor_seconds(&self, writes: u64) -> f64;
    /// Replace `victims` with new instances (same podCIDRs); returns the new cluster.
    fn churn(&mut self, cluster: &SimCluster, victims: &[usize]) -> SimCluster;
    /// Terminate the instances of `victims` (their nodes stay in the cluster for now);
    /// returns how many of their routes now lead nowhere, as the mock shows them: EC2
    /// blackholes, or (ARM has no such state) routes to an address no NIC holds any more.
    /// No default: every cloud must be able to stage it.
    fn terminate(&mut self, cluster: &SimCluster, victims: &[usize]) -> u64;
    /// Take the last managed table out of the cluster: EC2 untags it (its routes are
    /// foreign from now on, never expected and never to be touched); ARM, whose tables are
    /// configured by id with no ownership tag, deletes it (it must stay deleted). Returns
    /// its id and the routes it held; `None` with fewer than two tables.
    fn lose_table(&mut self) -> Option<(String, u64)>;

    fn inspect(&self, cluster: &SimCluster) -> Inspection {
        self.judge(cluster).fabric
    }

    /// Calls of one action.
    fn calls_of(&self, action: &str) -> u64 {
        self.api_calls().get(action).copied().unwrap_or(0)
    }
}

/// The tables judged against the cluster: the fabric as a whole, and node by node.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    pub fabric: Inspection,
    /// Per node of the cluster (same order): every route of it present and right.
    pub routed: Vec<bool>,
    /// Nodes left without room in some table.
    pub blocked: BTreeSet<String>,
    /// Nodes a foreign route conflicts with (at or inside their podCIDR): the controller
    /// must report RouteConflict on them and leave the route alone.
    pub conflicted: BTreeSet<String>,
}

/// Counts one walk over the tables into a [`Judgement`]: a cloud reports each table's
/// expected routes and each route's verdict, the tally keeps the books.
pub struct Tally<'c> {
    cluster: &'c SimCluster,
    /// Every node CIDR → the node's index in the cluster.
    node_of: BTreeMap<IpNet, usize>,
    /// Per node: routes present and right, over all tables.
    good: Vec<usize>,
    /// Managed tables: a routed node has every CIDR present and right in each.
    tables: usize,
    out: Judgement,
}

impl<'c> Tally<'c> {
    pub fn new(cluster: &'c SimCluster, tables: usize, foreign_routes: u64) -> Self {
        let node_of = (cluster.nodes.iter().enumerate())
            .flat_map(|(i, n)| n.cidrs().map(move |c| (c, i)))
            .collect();
        Tally {
            cluster,
            node_of,
            good: vec![0; cluster.nodes.len()],
            tables,
            out: Judgement {
                fabric: Inspection {
                    foreign_routes,
                    ..Inspection::default()
                },
                ..Judgement::default()
            },
        }
    }

    /// Whether `destination` is some node's podCIDR.
    pub fn is_node_cidr(&self, destination: &IpNet) -> bool {
        self.node_of.contains_key(destination)
    }

    /// A table walked: `expected` routes it must hold, `blocked` nodes it has no room for.
    pub fn table(&mut self, expected: usize, blocked: BTreeSet<String>) {
        self.out.fabric.routes_expected += expected as u64;
        self.out.blocked.extend(blocked);
    }

    /// An expected route, present with the right target and active.
    pub fn present(&mut self, destination: &IpNet) {
        self.out.fabric.routes_present += 1;
        if let Some(&i) = self.node_of.get(destination) {
            self.good[i] += 1;
        }
    }

    /// A route for a node CIDR with a wrong target, blackholed, or not ours.
    pub fn wrong(&mut self) {
        self.out.fabric.routes_wrong += 1;
    }

    /// A foreign route seeded at or inside the podCIDR of the node in `slot`.
    pub fn conflict(&mut self, slot: u32) {
        if let Some(n) = self.cluster.nodes.iter().find(|n| n.slot == slot) {
            self.out.conflicted.insert(n.node.name.clone());
        }
    }

    /// A foreign route changed or removed.
    pub fn foreign_touched(&mut self) {
        self.out.fabric.foreign_routes_touched += 1;
    }

    pub fn finish(mut self) -> Judgement {
        self.out.fabric.quota_blocked_nodes = self.out.blocked.len() as u64;
        self.out.fabric.conflicts_expected = self.out.conflicted.len() as u64;
        self.out.routed = (self.cluster.nodes.iter().zip(&self.good))
            .map(|(n, &good)| good == self.tables * n.cidrs().count())
            .collect();
        self.out
    }
}

/// Calls a mock received, by action, whatever their outcome.
pub fn calls_by_action(stats: &cni_cloud_mocks::common::Stats) -> BTreeMap<String, u64> {
    stats
        .snapshot()
        .into_iter()
        .map(|(action, outcomes)| (action, outcomes.values().sum()))
        .collect()
}
