//! `simulate --output text`: the report as the summary a person reads.

use std::fmt::Write as _;

use super::report::SimReport;

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
            "conflicts        {} nodes (controller reported {})",
            self.fabric.conflicts_expected, self.conflicts_reported
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
            let calls: Vec<String> = s.calls.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                o,
                "resync calls     {} ({} node reads, {:.3} per node)",
                calls.join(" "),
                s.node_reads,
                s.reads_per_node
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
            if k.leader_pauses + k.leader_kills > 0 {
                let _ = writeln!(
                    o,
                    "hostile leaders  {} paused, {} killed, {} writes by a deposed leader",
                    k.leader_pauses,
                    k.leader_kills,
                    k.writes_by_deposed_leader
                        .map(|w| w.to_string())
                        .unwrap_or_else(|| "n/a".into())
                );
            }
            if k.node_updates + k.nodes_joined > 0 {
                let readiness = k
                    .readiness_seconds
                    .as_ref()
                    .map(|r| {
                        format!(
                            "readiness p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} ready)",
                            r.p50, r.p99, r.max, r.nodes
                        )
                    })
                    .unwrap_or_else(|| "readiness n/a".into());
                let _ = writeln!(
                    o,
                    "hostile nodes    {} updates, {} joined, {readiness}",
                    k.node_updates, k.nodes_joined
                );
            }
        }
        if let Some(e) = &self.cloud_events {
            let _ = writeln!(
                o,
                "cloud events     {} instances terminated ({} routes blackholed), table lost {} ({} routes): converged {} in {:.2} s with {} mutating calls",
                e.instances_terminated,
                e.routes_blackholed,
                e.table_lost.as_deref().unwrap_or("none"),
                e.lost_table_routes,
                e.converged,
                e.seconds,
                e.mutating_calls
            );
        }
        if let Some(f) = &self.read_faults {
            let _ = writeln!(
                o,
                "read faults      {} reads failed over {} passes: {} condition flips",
                f.read_faults_injected, f.read_fault_passes, f.condition_flips
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
