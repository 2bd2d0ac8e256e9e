//! The reconciler driven against the in-memory cloud: no HTTP, every decision visible.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cni_cloud_providers::{
    Claim, Cloud, Families, NextHop, NodeTarget, QuotaScope, Route, RouteOrigin, RouteQuota,
    RouteState, TableId, WriteFence,
};

use super::*;
use crate::cluster::{AlwaysLeader, ClusterNode, MemorySink};
use crate::testing::fake::FakeCloud;

struct NeverLeader;
impl WriteFence for NeverLeader {
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }
}
impl Fence for NeverLeader {}

fn eni(i: u32) -> NextHop {
    NextHop::NetworkInterface(format!("eni-{i:04}"))
}

fn pid(i: u32) -> String {
    format!("aws:///us-east-1a/i-{i:04}")
}

fn node(i: u32, cidr: &str) -> ClusterNode {
    ClusterNode {
        name: format!("node-{i:04}"),
        uid: format!("uid-{i}"),
        created_unix: 1_000 + i as i64,
        provider_id: Some(pid(i)),
        pod_cidrs: vec![cidr.to_owned()],
        internal_ips: vec![],
    }
}

fn empty_table(id: &str) -> RouteTable {
    RouteTable {
        id: id.into(),
        name: id.to_owned(),
        families: Families::BOTH,
        quota: RouteQuota {
            limit: 50,
            scope: QuotaScope::PerFamily,
        },
        routes: vec![Route {
            destination: "0.0.0.0/0".parse().unwrap(),
            next_hop: NextHop::Other("igw-1".into()),
            state: RouteState::Active,
            origin: RouteOrigin::Manual,
            claim: Claim::Foreign,
            name: None,
        }],
        version: None,
        unlisted_routes: 0,
    }
}

fn cloud(nodes: u32, tables: &[&str]) -> Arc<FakeCloud> {
    let c = FakeCloud::default();
    for t in tables {
        c.tables.lock().unwrap().insert((*t).into(), empty_table(t));
    }
    for i in 0..nodes {
        c.targets.lock().unwrap().insert(
            pid(i),
            NodeTarget {
                instance_id: format!("i-{i:04}"),
                interface_id: format!("eni-{i:04}"),
                ipv4: Some(Ipv4Addr::new(10, 0, 0, i as u8)),
                ipv6: None,
                cluster_member: true,
                next_hop_v4: Some(eni(i)),
                next_hop_v6: Some(eni(i)),
            },
        );
    }
    Arc::new(c)
}

fn snapshot(nodes: u32) -> NodeSnapshot {
    NodeSnapshot {
        nodes: (0..nodes)
            .map(|i| node(i, &format!("100.64.{i}.0/24")))
            .collect(),
        authoritative: true,
        listed: true,
    }
}

fn reconciler(c: &Arc<FakeCloud>, sink: &Arc<MemorySink>, fence: Arc<dyn Fence>) -> Reconciler {
    Reconciler::new(
        c.clone(),
        ReconcilerConfig {
            cluster_cidrs: vec!["100.64.0.0/16".parse().unwrap()],
            ..Default::default()
        },
        fence,
        sink.clone(),
    )
}

fn status_of(sink: &MemorySink, name: &str) -> NodeRouteStatus {
    sink.latest()
        .into_iter()
        .find(|r| r.node == name)
        .unwrap()
        .status
}

#[tokio::test]
async fn converges_verifies_and_then_resyncs_without_writes() {
    let c = cloud(6, &["rtb-a", "rtb-b"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    let first = r.pass(&snapshot(6)).await.unwrap();
    assert_eq!(first.attempted, 12);
    assert!(first.converged(), "{:?}", first.plan.warnings);
    assert_eq!(c.mutations(), 12);
    assert!(sink.latest().iter().all(|n| n.status.is_routed()));
    assert_eq!(sink.latest().len(), 6);

    // Steady state: one list per table, no resolve, no mutation.
    let lists = c.lists.load(Ordering::Relaxed);
    let resolves = c.resolves.load(Ordering::Relaxed);
    let again = r.pass(&snapshot(6)).await.unwrap();
    assert!(again.converged());
    assert_eq!(again.attempted, 0);
    assert_eq!(c.mutations(), 12);
    assert_eq!(c.lists.load(Ordering::Relaxed) - lists, 2);
    assert_eq!(c.resolves.load(Ordering::Relaxed), resolves);
    // The foreign default route is still there, untouched.
    assert!(
        c.table("rtb-a")
            .routes
            .iter()
            .any(|r| r.next_hop == NextHop::Other("igw-1".into()))
    );
}

#[tokio::test]
async fn node_removal_deletes_and_cidr_move_replaces() {
    let c = cloud(8, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    r.pass(&snapshot(8)).await.unwrap();
    // node 7 leaves; node 6's CIDR now belongs to node 7's replacement (node 8).
    c.targets.lock().unwrap().insert(
        pid(8),
        NodeTarget {
            instance_id: "i-0008".into(),
            interface_id: "eni-0008".into(),
            ipv4: None,
            ipv6: None,
            cluster_member: true,
            next_hop_v4: Some(eni(8)),
            next_hop_v6: Some(eni(8)),
        },
    );
    let mut snap = snapshot(6);
    snap.nodes.push(node(8, "100.64.6.0/24"));
    let before = c.mutations();
    let report = r.pass(&snap).await.unwrap();
    assert!(report.converged());
    let applied = c.applied.lock().unwrap()[before..].to_vec();
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert!(applied.iter().any(|(_, ch)| matches!(ch,
        RouteChange::Replace { destination, next_hop, .. }
            if destination.to_string() == "100.64.6.0/24" && *next_hop == eni(8))));
    assert!(applied.iter().any(|(_, ch)| matches!(ch,
        RouteChange::Delete { destination, .. } if destination.to_string() == "100.64.7.0/24")));
}

#[tokio::test]
async fn an_empty_unconfirmed_node_list_never_wipes_the_table() {
    let c = cloud(8, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    r.pass(&snapshot(8)).await.unwrap();
    let before = c.mutations();
    let glitch = NodeSnapshot::default();
    let report = r.pass(&glitch).await.unwrap();
    assert!(report.plan.guard_tripped);
    assert_eq!(c.mutations(), before);
    assert_eq!(c.table("rtb-a").routes.len(), 9);
    assert_eq!(sink.guard_trips(), 1);
    // Still tripped: not announced again.
    r.pass(&glitch).await.unwrap();
    assert_eq!(sink.guard_trips(), 1);
}

#[tokio::test]
async fn a_failed_create_is_reported_and_retried() {
    let c = cloud(3, &["rtb-a"]);
    c.fail_writes.store(1, Ordering::Relaxed);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    let first = r.pass(&snapshot(3)).await.unwrap();
    assert_eq!(first.failed.len(), 1);
    assert!(!first.converged());
    let failed_node = sink
        .latest()
        .into_iter()
        .find(|n| !n.status.is_routed())
        .expect("one node is pending");
    match &failed_node.status {
        NodeRouteStatus::Pending { reason } => {
            assert!(reason.contains("failed to create route"), "{reason}");
            assert!(
                reason.contains("rtb-a") && reason.contains("InternalError"),
                "{reason}"
            );
        }
        other => panic!("expected pending, got {other:?}"),
    }
    let second = r.pass(&snapshot(3)).await.unwrap();
    assert!(second.converged());
    assert!(status_of(&sink, &failed_node.node).is_routed());
    assert_eq!(c.mutations(), 3);
}

#[tokio::test]
async fn without_the_lease_nothing_is_written() {
    let c = cloud(3, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(NeverLeader));
    let report = r.pass(&snapshot(3)).await.unwrap();
    assert!(report.fenced);
    assert_eq!(report.attempted, 0);
    assert_eq!(c.mutations(), 0);
    assert!(!report.converged());
}

#[tokio::test]
async fn dry_run_plans_but_never_writes_or_publishes() {
    let c = cloud(3, &["rtb-a"]);
    c.not_forwarding.lock().unwrap().push("eni-0000".into());
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    r.config.dry_run = true;
    let report = r.pass(&snapshot(3)).await.unwrap();
    assert_eq!(report.plan.change_count(), 3);
    assert_eq!(c.mutations(), 0);
    assert_eq!(c.not_forwarding.lock().unwrap().len(), 1);
    assert!(sink.latest().is_empty());
}

#[tokio::test]
async fn forwarding_is_enabled_once_before_routing() {
    let c = cloud(2, &["rtb-a"]);
    c.not_forwarding.lock().unwrap().push("eni-0001".into());
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    let report = r.pass(&snapshot(2)).await.unwrap();
    assert_eq!(report.prepared, 1);
    assert!(report.converged());
    let again = r.pass(&snapshot(2)).await.unwrap();
    assert_eq!(again.prepared, 0);
}

#[tokio::test]
async fn a_failed_listing_publishes_nothing() {
    let c = cloud(2, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    c.fail_lists.store(true, Ordering::Relaxed);
    let err = r.pass(&snapshot(2)).await.unwrap_err();
    assert!(matches!(err, PassError::List(ref t, _) if *t == TableId::from("rtb-a")));
    assert!(sink.latest().is_empty());
    assert_eq!(c.mutations(), 0);
}

#[tokio::test]
async fn unknown_provider_ids_are_invalid_and_touch_nothing_else() {
    let c = cloud(2, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    let mut snap = snapshot(2);
    snap.nodes.push(node(40, "100.64.40.0/24"));
    let mut no_pid = node(41, "100.64.41.0/24");
    no_pid.provider_id = None;
    snap.nodes.push(no_pid);
    let report = r.pass(&snap).await.unwrap();
    assert!(report.converged());
    assert_eq!(c.mutations(), 2);
    assert!(matches!(
        status_of(&sink, "node-0040"),
        NodeRouteStatus::InvalidInput { .. }
    ));
    assert!(matches!(
        status_of(&sink, "node-0041"),
        NodeRouteStatus::InvalidInput { .. }
    ));
}

#[tokio::test]
async fn a_node_whose_interface_cannot_forward_is_pending_and_retried() {
    let c = cloud(2, &["rtb-a"]);
    c.not_forwarding.lock().unwrap().push("eni-0001".into());
    c.stuck_forwarding.lock().unwrap().push("eni-0001".into());
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    let report = r.pass(&snapshot(2)).await.unwrap();
    assert_eq!(report.unprepared, 1);
    assert!(!report.converged(), "a retry must be scheduled");
    match status_of(&sink, "node-0001") {
        NodeRouteStatus::Pending { reason } => {
            assert!(
                reason.contains("forwarding") && reason.contains("UnauthorizedOperation"),
                "{reason}"
            )
        }
        other => panic!("expected pending, got {other:?}"),
    }
    assert!(status_of(&sink, "node-0000").is_routed());
    // Fixed (e.g. the IAM policy): the next pass prepares it and reports it routed.
    c.stuck_forwarding.lock().unwrap().clear();
    let again = r.pass(&snapshot(2)).await.unwrap();
    assert!(again.converged());
    assert_eq!(again.prepared, 1);
    assert!(status_of(&sink, "node-0001").is_routed());
}

// ---- real-cluster dynamics (issue 11) ----

/// No status that would set NetworkUnavailable=True (or move it at all) when a read failed.
fn only_verified_routed_or_unknown(sink: &MemorySink) -> Result<(), String> {
    for r in sink.latest() {
        match &r.status {
            NodeRouteStatus::Routed | NodeRouteStatus::Unknown { .. } => {}
            other => return Err(format!("{}: {other:?}", r.node)),
        }
    }
    Ok(())
}

#[tokio::test]
async fn failed_lookups_and_forwarding_checks_change_no_condition_and_no_route() {
    let c = cloud(6, &["rtb-a", "rtb-b"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    assert!(r.pass(&snapshot(6)).await.unwrap().converged());
    let writes = c.mutations();
    let checks = c.forwarding_checks.load(Ordering::Relaxed);

    // Every cached target expires, and every lookup is throttled: the cached targets
    // stay in use, the listing still verifies every route.
    r.config.discovery_ttl = Duration::ZERO;
    c.fail_resolves.store(true, Ordering::Relaxed);
    c.fail_forwarding_checks.store(true, Ordering::Relaxed);
    r.pass(&snapshot(6)).await.unwrap();
    assert_eq!(c.mutations(), writes);
    assert!(sink.latest().iter().all(|n| n.status.is_routed()));
    assert_eq!(
        c.forwarding_checks.load(Ordering::Relaxed),
        checks,
        "verified forwarding is kept while the interface is the same"
    );

    // A fresh replica (nothing cached) in the same outage: nothing it could verify
    // changes a condition, nothing is written.
    let sink2 = Arc::new(MemorySink::default());
    let mut fresh = reconciler(&c, &sink2, Arc::new(AlwaysLeader));
    fresh.pass(&snapshot(6)).await.unwrap();
    assert_eq!(c.mutations(), writes);
    only_verified_routed_or_unknown(&sink2).unwrap();
    assert!(
        sink2
            .latest()
            .iter()
            .all(|n| matches!(n.status, NodeRouteStatus::Unknown { .. }))
    );

    // Lookups work again but forwarding checks are throttled: still no verdict flips.
    c.fail_resolves.store(false, Ordering::Relaxed);
    let sink3 = Arc::new(MemorySink::default());
    let mut third = reconciler(&c, &sink3, Arc::new(AlwaysLeader));
    third.pass(&snapshot(6)).await.unwrap();
    assert_eq!(c.mutations(), writes);
    only_verified_routed_or_unknown(&sink3).unwrap();
}

#[tokio::test]
async fn a_snapshot_that_was_never_listed_is_never_planned() {
    // The lease is won before the node cache has listed anything, then the first list is
    // empty (an API glitch): no route may go.
    let c = cloud(3, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    r.pass(&snapshot(3)).await.unwrap();
    let routes = c.table("rtb-a").routes.len();
    let before = c.mutations();

    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    let (snap_tx, snap_rx) = tokio::sync::watch::channel(Arc::new(NodeSnapshot::default()));
    let (_leader_tx, leader_rx) = tokio::sync::watch::channel(true);
    let (sum_tx, mut sum_rx) = tokio::sync::watch::channel(PassSummary {
        passes: 0,
        snapshot: None,
        report: None,
        error: None,
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let timing = DriveTiming {
        resync: Duration::from_millis(20),
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(20),
    };
    let scenario = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sum_rx.borrow().passes, 0, "planned from the placeholder");
        snap_tx.send_replace(Arc::new(NodeSnapshot {
            nodes: vec![],
            authoritative: false,
            listed: true,
        }));
        sum_rx.wait_for(|s| s.passes >= 3).await.unwrap();
        stop.cancel();
    };
    tokio::join!(
        drive(&mut r, snap_rx, leader_rx, timing, stop.clone(), sum_tx),
        scenario
    );
    assert_eq!(c.mutations(), before);
    assert_eq!(c.table("rtb-a").routes.len(), routes);
}

/// A fence whose deadline the test moves.
struct Movable(std::sync::Mutex<Option<std::time::Instant>>);
impl WriteFence for Movable {
    fn deadline(&self) -> Option<std::time::Instant> {
        *self.0.lock().unwrap()
    }
}
impl Fence for Movable {}

#[tokio::test]
async fn a_closed_fence_sends_nothing_and_publishes_nothing() {
    let c = cloud(3, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    // The batch check passes (budget zero) but the deadline is already behind us when
    // the provider gets the call: the provider itself refuses every change.
    let fence = Arc::new(Movable(std::sync::Mutex::new(Some(
        std::time::Instant::now() + Duration::from_millis(1),
    ))));
    let mut r = reconciler(&c, &sink, fence.clone());
    r.config.mutation_budget = Duration::ZERO;
    tokio::time::sleep(Duration::from_millis(5)).await;
    *fence.0.lock().unwrap() = Some(std::time::Instant::now() - Duration::from_millis(1));
    let report = r.pass(&snapshot(3)).await.unwrap();
    assert_eq!(c.mutations(), 0);
    assert!(!report.converged());
    assert!(
        sink.latest().is_empty(),
        "a deposed leader writes no condition"
    );
}

#[tokio::test]
async fn a_route_the_cloud_refuses_for_quota_is_quota_exceeded() {
    struct FullCloud(Arc<FakeCloud>);
    #[async_trait::async_trait]
    impl CloudProvider for FullCloud {
        fn cloud(&self) -> Cloud {
            Cloud::Aws
        }
        async fn discover_tables(&self) -> Result<Vec<TableId>, CloudError> {
            self.0.discover_tables().await
        }
        async fn list_table(&self, t: &TableId) -> Result<RouteTable, CloudError> {
            self.0.list_table(t).await
        }
        async fn apply_fenced(
            &self,
            _t: &TableId,
            changes: &[RouteChange],
            _f: &dyn WriteFence,
        ) -> Vec<cni_cloud_providers::ChangeOutcome> {
            changes
                .iter()
                .map(|c| cni_cloud_providers::ChangeOutcome {
                    change: c.clone(),
                    result: Err(CloudError::new(
                        ErrorKind::QuotaExceeded,
                        "RouteLimitExceeded",
                        "The maximum number of routes has been reached.",
                    )),
                })
                .collect()
        }
        async fn resolve_nodes(
            &self,
            ids: &[String],
        ) -> std::collections::HashMap<String, Result<NodeTarget, CloudError>> {
            self.0.resolve_nodes(ids).await
        }
        async fn ensure_forwarding_fenced(
            &self,
            t: &NodeTarget,
            f: &dyn WriteFence,
        ) -> Result<cni_cloud_providers::ForwardingChange, CloudError> {
            self.0.ensure_forwarding_fenced(t, f).await
        }
        fn counters(&self) -> &cni_cloud_providers::ApiCounters {
            self.0.counters()
        }
        fn operations(&self) -> &'static [&'static str] {
            &[]
        }
    }
    let c = cloud(2, &["rtb-a"]);
    let sink = Arc::new(MemorySink::default());
    let mut r = Reconciler::new(
        Arc::new(FullCloud(c.clone())),
        ReconcilerConfig {
            cluster_cidrs: vec!["100.64.0.0/16".parse().unwrap()],
            ..Default::default()
        },
        Arc::new(AlwaysLeader),
        sink.clone(),
    );
    r.pass(&snapshot(2)).await.unwrap();
    assert!(
        matches!(status_of(&sink, "node-0001"), NodeRouteStatus::QuotaExceeded { reason } if reason.contains("RouteLimitExceeded")),
        "{:?}",
        status_of(&sink, "node-0001")
    );
}

#[tokio::test]
async fn a_dead_route_is_replaced_by_a_restarted_controller() {
    // A blackhole to an ENI this process never saw (its instance is gone, the previous
    // controller that knew it restarted) sits at a new node's podCIDR.
    let c = cloud(2, &["rtb-a"]);
    c.tables
        .lock()
        .unwrap()
        .get_mut(&TableId::from("rtb-a"))
        .unwrap()
        .routes
        .push(Route {
            destination: "100.64.1.0/24".parse().unwrap(),
            next_hop: NextHop::NetworkInterface("eni-gone".into()),
            state: RouteState::Blackhole,
            origin: RouteOrigin::Manual,
            claim: Claim::Foreign,
            name: None,
        });
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    assert!(r.pass(&snapshot(2)).await.unwrap().converged());
    let applied = c.applied.lock().unwrap().clone();
    assert!(applied.iter().any(|(_, ch)| matches!(ch,
        RouteChange::Replace { destination, next_hop, .. }
            if destination.to_string() == "100.64.1.0/24" && *next_hop == eni(1))));
    assert!(status_of(&sink, "node-0001").is_routed());
}

#[tokio::test]
async fn a_route_the_cloud_acknowledged_but_does_not_list_yet_is_neither_missing_nor_written_twice()
{
    // EC2's describes lag behind its writes: every new route stays out of its table's next
    // three listings.
    let c = cloud(4, &["rtb-a"]);
    c.list_lag.store(3, Ordering::Relaxed);
    let sink = Arc::new(MemorySink::default());
    let mut r = reconciler(&c, &sink, Arc::new(AlwaysLeader));
    for pass in 0..4 {
        let report = r.pass(&snapshot(4)).await.unwrap();
        assert!(
            report.converged(),
            "pass {pass}: {:?}",
            report.plan.warnings
        );
        assert!(
            sink.latest().iter().all(|n| n.status.is_routed()),
            "pass {pass}: a created route reported missing: {:?}",
            sink.latest()
        );
    }
    assert_eq!(c.mutations(), 4, "each route written once");
    assert!(
        c.hidden.lock().unwrap().is_empty(),
        "the listings caught up"
    );
}
