//! A busy cluster cannot starve a new node: 5,000 Nodes whose kubelets keep reporting
//! status (route-irrelevant updates at ≥ 50/s, far more than a 200 ms quiet period ever
//! allows) and a node that joins in the middle of it. Its route must be written within the
//! reflector's publish bound plus one pass, judged from the cloud's route table.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cni_cloud_controller::kube::nodes;
use cni_cloud_controller::reconcile::{DriveTiming, PassSummary, drive};
use cni_cloud_controller::testing::fake::FakeCloud;
use cni_cloud_providers::{
    Claim, Families, NextHop, NodeTarget, QuotaScope, Route, RouteOrigin, RouteQuota, RouteState,
    RouteTable, TableId,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use common::{cidr, eni_id};

const NODES: u32 = 5_000;
const SCALE: f64 = 20.0;
const DEBOUNCE: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(1);
/// One pass for one new node at this scale: resolve it, list the table, create, re-list.
const PASS_BUDGET: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_a_busy_cluster_is_routed_within_the_bound() {
    // The cloud side is the in-memory fake (one EC2 table holds at most 1,000 routes; this
    // test is about the Kubernetes side), already converged for the 5,000 nodes.
    let cloud = Arc::new(FakeCloud::default());
    {
        let mut routes = vec![];
        let mut targets = cloud.targets.lock().unwrap();
        for i in 0..=NODES {
            let eni = NextHop::NetworkInterface(eni_id(i));
            targets.insert(
                format!("aws:///us-east-1a/{}", common::instance_id(i)),
                NodeTarget {
                    instance_id: common::instance_id(i),
                    interface_id: eni_id(i),
                    ipv4: None,
                    ipv6: None,
                    cluster_member: true,
                    next_hop_v4: Some(eni.clone()),
                    next_hop_v6: Some(eni.clone()),
                },
            );
            if i < NODES {
                routes.push(Route {
                    destination: cidr(i).parse().unwrap(),
                    next_hop: eni,
                    state: RouteState::Active,
                    origin: RouteOrigin::Manual,
                    claim: Claim::Cluster,
                    name: None,
                });
            }
        }
        cloud.tables.lock().unwrap().insert(
            TableId::from(common::TABLE),
            RouteTable {
                id: TableId::from(common::TABLE),
                name: "nodes".into(),
                families: Families::BOTH,
                quota: RouteQuota {
                    limit: 10_000,
                    scope: QuotaScope::PerFamily,
                },
                routes,
                version: None,
                unlisted_routes: 0,
            },
        );
    }
    let routed_to = |i: u32| {
        let t = cloud.table(common::TABLE);
        t.routes
            .iter()
            .find(|r| r.destination.to_string() == cidr(i))
            .map(|r| r.next_hop.to_string())
    };
    let (kube, kube_server) = common::kube(NODES).await;
    let client = common::kube_client(&kube, &kube_server).await;
    let provider = cloud.clone();

    let stop = CancellationToken::new();
    let watch = nodes::start(
        client.clone(),
        nodes::Publish::new(DEBOUNCE, MAX_DELAY),
        stop.clone(),
    );
    watch.synced.clone().wait_for(|s| *s).await.unwrap();
    let mut reconciler = common::leader_reconciler(provider, &client, &watch.store, "busy");
    let (_leader_tx, leader_rx) = watch::channel(true);
    let (sum_tx, mut sum_rx) = watch::channel(PassSummary {
        passes: 0,
        snapshot: None,
        report: None,
        error: None,
    });
    let driver = drive(
        &mut reconciler,
        watch.snapshots.clone(),
        leader_rx,
        DriveTiming::default().scaled(SCALE),
        stop.clone(),
        sum_tx,
    );
    let scenario = async {
        // The first pass sees the converged fabric.
        sum_rx
            .wait_for(|s| s.report.as_ref().is_some_and(|r| r.converged()))
            .await
            .unwrap();

        // Kubelets report status: one Node update every 10 ms (100/s), none of which
        // changes anything routing reads.
        let storming = Arc::new(AtomicBool::new(true));
        let updates = Arc::new(AtomicU64::new(0));
        let storm = {
            let (kube, storming, updates) = (kube.clone(), storming.clone(), updates.clone());
            tokio::spawn(async move {
                let mut beat = 0u64;
                while storming.load(Ordering::Relaxed) {
                    let i = (beat % NODES as u64) as u32;
                    let mut n = common::node_json(i, &cidr(i));
                    n["metadata"]["labels"] = serde_json::json!({"heartbeat": beat.to_string()});
                    kube.upsert_node(n).unwrap();
                    beat += 1;
                    updates.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let joined = Instant::now();
        let before = updates.load(Ordering::Relaxed);
        kube.upsert_node(common::node_json(NODES, &cidr(NODES)))
            .unwrap();
        let bound = MAX_DELAY + PASS_BUDGET;
        let routed = loop {
            if routed_to(NODES) == Some(eni_id(NODES)) {
                break joined.elapsed();
            }
            assert!(
                joined.elapsed() < Duration::from_secs(20),
                "the new node was never routed while the cluster was busy"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let rate =
            (updates.load(Ordering::Relaxed) - before) as f64 / joined.elapsed().as_secs_f64();
        storming.store(false, Ordering::Relaxed);
        storm.await.unwrap();
        eprintln!("new node routed after {routed:?} under {rate:.0} Node updates/s");
        assert!(
            rate >= 50.0,
            "the storm was too weak to prove anything: {rate:.0}/s"
        );
        assert!(routed <= bound, "routed after {routed:?}, bound {bound:?}");
        assert_eq!(
            cloud.mutations(),
            1,
            "only the new node's route was written"
        );
        stop.cancel();
    };
    tokio::join!(driver, scenario);
}
