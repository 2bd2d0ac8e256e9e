//! What a simulation reports: the mock's own view of the result (never the controller's
//! claims), and the text / JSON renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// Calls a mock received, by action, whatever their outcome.
pub fn calls_by_action(stats: &cni_cloud_mocks::common::Stats) -> BTreeMap<String, u64> {
    stats
        .snapshot()
        .into_iter()
        .map(|(action, outcomes)| (action, outcomes.values().sum()))
        .collect()
}

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
    pub tables: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub cloud: String,
    pub nodes: u64,
    /// The fabric at the end (its fields appear at the top level of the JSON).
    #[serde(flatten)]
    pub fabric: Inspection,
    /// Nodes the controller reported RouteQuotaExceeded on (must equal the above).
    pub quota_blocked_reported: u64,
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
    /// `--kube`: replicas, leader changes, failover, duplicates, conditions.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub kube: Option<super::kube_mode::KubeSummary>,
}

/// Per-node reads among the mock's calls: `DescribeInstances`, or an ARM read of a VM or
/// a NIC.
pub fn node_reads(api_calls: &BTreeMap<String, u64>) -> u64 {
    api_calls
        .iter()
        .filter(|(action, _)| {
            *action == "DescribeInstances"
                || ((action.contains("/virtualMachines") || action.contains("/networkInterfaces"))
                    && action.ends_with("/read"))
        })
        .map(|(_, n)| n)
        .sum()
}

pub fn per_node(reads: u64, nodes: u64) -> f64 {
    reads as f64 / nodes.max(1) as f64
}

impl SimReport {
    pub fn render(&self) -> String {
        let mut o = String::new();
        let ratio = if self.floor_seconds > 0.0 {
            format!("{:.2}× the floor", self.seconds / self.floor_seconds)
        } else {
            "no floor (within the burst)".to_owned()
        };
        let _ = writeln!(o, "cloud            {}", self.cloud);
        let _ = writeln!(o, "nodes            {}", self.nodes);
        let _ = writeln!(
            o,
            "routes           {} of {} present, {} wrong",
            self.fabric.routes_present, self.fabric.routes_expected, self.fabric.routes_wrong
        );
        let _ = writeln!(
            o,
            "foreign routes   {} ({} touched)",
            self.fabric.foreign_routes, self.fabric.foreign_routes_touched
        );
        let _ = writeln!(
            o,
            "quota-blocked    {} nodes (controller reported {})",
            self.fabric.quota_blocked_nodes, self.quota_blocked_reported
        );
        let _ = writeln!(
            o,
            "converged        {} in {:.2} s (floor {:.2} s: {ratio}, time scale ×{})",
            self.converged, self.seconds, self.floor_seconds, self.time_scale
        );
        let _ = writeln!(
            o,
            "mutating calls   {} ({} node prep), throttled {}, faults injected {}",
            self.mutating_calls, self.node_prep_calls, self.throttled, self.faults_injected
        );
        let calls: Vec<String> = self
            .api_calls
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(o, "api calls        {}", calls.join(" "));
        let _ = writeln!(
            o,
            "node reads       {:.3} per node (instance / VM / NIC lookups and checks)",
            self.reads_per_node
        );
        if let Some(s) = &self.steady_state {
            let _ = writeln!(
                o,
                "resync pass      {} mutating, {} listings for {} tables",
                s.mutating_calls, s.list_calls, s.tables
            );
        }
        if let Some(k) = &self.kube {
            let _ = writeln!(
                o,
                "kubernetes       {} replicas, {} leader changes, failover {}, {} duplicate writes, {} of {} node conditions correct",
                k.replicas,
                k.leader_changes,
                k.failover_seconds
                    .map(|s| format!("{s:.2} s"))
                    .unwrap_or_else(|| "n/a".into()),
                k.duplicate_mutations,
                k.nodes_condition_correct,
                self.nodes
            );
        }
        if let Some(c) = &self.churn {
            let _ = writeln!(
                o,
                "churn            {} nodes replaced: converged {} in {:.2} s with {} mutating calls",
                c.nodes_replaced, c.converged, c.seconds, c.mutating_calls
            );
        }
        o
    }
}

/// A progress bar on a terminal, nothing otherwise.
pub struct Progress(
    Option<indicatif::ProgressBar>,
    Option<std::sync::Arc<super::plot::Timeline>>,
);

impl Progress {
    pub fn new(interactive: bool, total: u64) -> Self {
        if !interactive {
            return Progress(None, None);
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} routes {pos}/{len} [{bar:40}] {elapsed_precise}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress(Some(bar), None)
    }

    /// Also record every update (the mock's routes present) for `--plot`.
    pub fn with_timeline(
        mut self,
        timeline: Option<std::sync::Arc<super::plot::Timeline>>,
    ) -> Self {
        self.1 = timeline;
        self
    }

    pub fn update(&self, present: u64) {
        if let Some(t) = &self.1 {
            t.sample(present);
        }
        if let Some(b) = &self.0 {
            b.set_position(present);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
