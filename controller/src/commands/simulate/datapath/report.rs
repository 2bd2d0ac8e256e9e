//! What the lab found, from packets and the fabric's kernel tables only: plain data,
//! rendered as text or serialized as JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// Checks of one kind: how many were tried, how many passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    pub tested: u64,
    pub passed: u64,
}

impl Check {
    pub fn add(&mut self, ok: bool) {
        self.tested += 1;
        self.passed += u64::from(ok);
    }

    pub fn ok(&self) -> bool {
        self.tested > 0 && self.passed == self.tested
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Nodes the quantiles are over (those reached).
    pub nodes: u64,
}

/// Nearest-rank quantiles; `None` for no samples.
pub fn quantiles(samples: &[f64]) -> Option<Quantiles> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Quantiles {
        p50: q(0.5),
        p99: q(0.99),
        max: v[v.len() - 1],
        nodes: v.len() as u64,
    })
}

/// The node removed from Kubernetes (its machine and pods left running, so a stale path
/// would still deliver).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removal {
    pub node: String,
    /// Its podCIDR left every fabric table.
    pub routes_gone: bool,
    /// From the Node's deletion to the last table without it (wall seconds).
    pub routes_gone_seconds: Option<f64>,
    /// Probes (ICMP and TCP) to its pods after that, and how many its pods answered.
    pub probes: u64,
    pub answered: u64,
}

/// A new node given the removed node's podCIDR.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reuse {
    pub node: String,
    /// Every one of its pods answered under its own name at the reused addresses.
    pub reachable: bool,
    /// From its Node's creation to the first answer from its pod (wall seconds).
    pub seconds: Option<f64>,
    /// Connections the old node's pods accepted meanwhile (must be 0).
    pub answered_by_old: u64,
}

/// A node whose machine died while its Node was still listed (its namespace and pods left
/// running, so only the fabric could stop delivery), then its podCIDR given to a new node
/// on a new machine once the Node was deleted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Terminated {
    pub node: String,
    /// Its podCIDR became a blackhole in every fabric table.
    pub blackholed: bool,
    /// From the termination to the last table with the blackhole (wall seconds).
    pub blackholed_seconds: Option<f64>,
    /// Probes (ICMP and TCP) to its pods after that, from another node's pod, and how many
    /// its pods answered.
    pub probes: u64,
    pub answered: u64,
    /// The new node: every one of its pods answered under its own name at the addresses.
    pub replaced_by: String,
    pub replaced_reachable: bool,
    /// From the new Node's creation to the first answer from its pod (wall seconds).
    pub replaced_seconds: Option<f64>,
    /// Answers from the dead machine's pods while the new node was probed (must be 0).
    pub answered_by_old: u64,
}

impl Terminated {
    pub fn ok(&self) -> bool {
        self.blackholed
            && self.probes > 0
            && self.answered == 0
            && self.replaced_reachable
            && self.answered_by_old == 0
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Failover {
    /// `kill` (SIGKILL) or `pause` (SIGSTOP past the Lease, then SIGCONT).
    pub blow: String,
    /// Whether it happened at all (the share was reached and a leader was there to hit);
    /// a blow asked for and never landed fails the run.
    pub landed: bool,
    /// Share of the node podCIDRs in every fabric table when it landed.
    pub at_share: f64,
    pub leader_before: Option<String>,
    pub leader_after: Option<String>,
    /// Pod pairs probed continuously (ICMP, 10/s each) through the failover.
    pub pairs: u64,
    pub probes_sent: u64,
    pub probes_lost: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DatapathReport {
    pub cloud: String,
    pub nodes: u64,
    pub subnets: u64,
    pub pods_per_node: u64,
    pub replicas: u64,
    pub time_scale: f64,
    /// Pod → pod across nodes, each pair an ICMP echo and a TCP connect answered by the
    /// right pod; all pairs for small clusters, a fixed seeded sample for large ones.
    pub pairs_tested: u64,
    pub pairs_reachable: u64,
    pub pod_to_node: Check,
    pub hairpin: Check,
    pub masquerade: Check,
    /// Node joined (Node created with its podCIDR) → first echo answered by a pod on it
    /// from a pod on another node (wall seconds).
    pub reachability_seconds: Option<Quantiles>,
    /// Node joined → its podCIDR in every fabric table (the cloud's tables as a describe
    /// sees them), polled every 50 ms (wall seconds).
    pub routed_seconds: Option<Quantiles>,
    pub nodes_never_reached: u64,
    pub removal: Option<Removal>,
    pub reuse: Option<Reuse>,
    pub terminated: Option<Terminated>,
    pub failover: Option<Failover>,
    /// Continuous probes lost during the failover (0 without one).
    pub probes_lost: u64,
    /// Fabric updates that failed to apply.
    pub fabric_errors: u64,
    /// Namespaces, links or files of this run still present after cleanup.
    pub leftovers: Vec<String>,
    pub seconds: f64,
    pub passed: bool,
}

impl DatapathReport {
    pub fn verdict(&self) -> bool {
        self.pairs_tested > 0
            && self.pairs_reachable == self.pairs_tested
            && self.pod_to_node.ok()
            && self.hairpin.ok()
            && self.masquerade.ok()
            && self.nodes_never_reached == 0
            && self
                .removal
                .as_ref()
                .is_some_and(|r| r.routes_gone && r.answered == 0)
            && (self.reuse.as_ref()).is_some_and(|r| r.reachable && r.answered_by_old == 0)
            && self.terminated.as_ref().is_some_and(Terminated::ok)
            && self.probes_lost == 0
            && self.failover.as_ref().is_none_or(|f| f.landed)
            && self.fabric_errors == 0
            && self.leftovers.is_empty()
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        let yes = |b: bool| if b { "ok" } else { "FAILED" };
        let _ = writeln!(
            o,
            "data path lab    {} nodes over {} subnets, {} pods each, the mock cloud on {} ({} replicas, time scale ×{})",
            self.nodes,
            self.subnets,
            self.pods_per_node,
            self.cloud,
            self.replicas,
            self.time_scale
        );
        let _ = writeln!(
            o,
            "pod pairs        {} of {} reachable (ICMP + TCP, across nodes)",
            self.pairs_reachable, self.pairs_tested
        );
        for (name, c) in [
            ("pod → node", self.pod_to_node),
            ("hairpin", self.hairpin),
            ("masquerade", self.masquerade),
        ] {
            let _ = writeln!(o, "{name:<16} {} of {} {}", c.passed, c.tested, yes(c.ok()));
        }
        match &self.reachability_seconds {
            Some(q) => {
                let _ = writeln!(
                    o,
                    "reachability     p50 {:.2} s, p99 {:.2} s, max {:.2} s over {} nodes ({} never reached)",
                    q.p50, q.p99, q.max, q.nodes, self.nodes_never_reached
                );
            }
            None => {
                let _ = writeln!(o, "reachability     no node reached");
            }
        }
        if let Some(q) = &self.routed_seconds {
            let _ = writeln!(
                o,
                "routed           p50 {:.2} s, p99 {:.2} s (Node created → its podCIDR in every fabric table)",
                q.p50, q.p99
            );
        }
        if let Some(r) = &self.removal {
            let _ = writeln!(
                o,
                "node removed     {}: routes gone {} ({}), {} of {} probes answered afterwards",
                r.node,
                yes(r.routes_gone),
                r.routes_gone_seconds
                    .map_or("never".into(), |s| format!("{s:.2} s")),
                r.answered,
                r.probes
            );
        }
        if let Some(r) = &self.reuse {
            let _ = writeln!(
                o,
                "podCIDR reused   {}: reachable {} ({}), answered by the old node {}",
                r.node,
                yes(r.reachable),
                r.seconds.map_or("never".into(), |s| format!("{s:.2} s")),
                r.answered_by_old
            );
        }
        if let Some(t) = &self.terminated {
            let _ = writeln!(
                o,
                "node terminated  {}: blackholed {} ({}), {} of {} probes answered afterwards",
                t.node,
                yes(t.blackholed),
                (t.blackholed_seconds).map_or("never".into(), |s| format!("{s:.2} s")),
                t.answered,
                t.probes
            );
            let _ = writeln!(
                o,
                "  replaced by    {}: reachable {} ({}), answered by the dead machine {}",
                t.replaced_by,
                yes(t.replaced_reachable),
                (t.replaced_seconds).map_or("never".into(), |s| format!("{s:.2} s")),
                t.answered_by_old
            );
        }
        if let Some(f) = &self.failover {
            let _ = writeln!(
                o,
                "failover         {} at {:.0} % routed: leader {} → {}, {} pairs, {} probes sent, {} lost",
                f.blow,
                f.at_share * 100.0,
                f.leader_before.as_deref().unwrap_or("none"),
                f.leader_after.as_deref().unwrap_or("none"),
                f.pairs,
                f.probes_sent,
                f.probes_lost
            );
        }
        if self.fabric_errors > 0 {
            let _ = writeln!(o, "fabric errors    {}", self.fabric_errors);
        }
        let _ = writeln!(
            o,
            "cleanup          {}",
            if self.leftovers.is_empty() {
                "nothing left behind".to_owned()
            } else {
                format!("LEFT BEHIND: {}", self.leftovers.join(", "))
            }
        );
        let _ = writeln!(
            o,
            "verdict          {} in {:.1} s",
            if self.passed { "PASSED" } else { "FAILED" },
            self.seconds
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        assert_eq!(quantiles(&[]), None);
        let q = quantiles(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((q.p50, q.p99, q.max, q.nodes), (2.0, 3.0, 3.0, 3));
    }

    #[test]
    fn the_verdict_needs_every_check() {
        let mut r = DatapathReport {
            pairs_tested: 2,
            pairs_reachable: 2,
            pod_to_node: Check {
                tested: 1,
                passed: 1,
            },
            hairpin: Check {
                tested: 1,
                passed: 1,
            },
            masquerade: Check {
                tested: 1,
                passed: 1,
            },
            removal: Some(Removal {
                routes_gone: true,
                ..Removal::default()
            }),
            reuse: Some(Reuse {
                reachable: true,
                ..Reuse::default()
            }),
            terminated: Some(Terminated {
                blackholed: true,
                probes: 4,
                replaced_reachable: true,
                ..Terminated::default()
            }),
            ..DatapathReport::default()
        };
        assert!(r.verdict());
        // Each way a dead machine can still be reached, or its podCIDR not come back.
        let good = r.terminated.clone();
        for broken in [
            |t: &mut Terminated| t.blackholed = false,
            |t: &mut Terminated| t.probes = 0,
            |t: &mut Terminated| t.answered = 1,
            |t: &mut Terminated| t.replaced_reachable = false,
            |t: &mut Terminated| t.answered_by_old = 1,
        ] {
            broken(r.terminated.as_mut().unwrap());
            assert!(!r.verdict(), "{:?}", r.terminated);
            r.terminated = good.clone();
        }
        r.terminated = None;
        assert!(!r.verdict(), "the check never ran");
        r.terminated = good;
        assert!(r.verdict());
        r.probes_lost = 1;
        assert!(!r.verdict());
        r.probes_lost = 0;
        r.failover = Some(Failover::default());
        assert!(!r.verdict(), "a blow that never landed");
        r.failover = None;
        r.leftovers.push("ccdp1-fab".into());
        assert!(!r.verdict());
        r.leftovers.clear();
        r.reuse.as_mut().unwrap().answered_by_old = 1;
        assert!(!r.verdict());
    }
}
