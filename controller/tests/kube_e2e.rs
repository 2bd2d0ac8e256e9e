//! The controller's Kubernetes loop end to end, in one process: the real node reflector,
//! reconciler, AWS provider and NetworkUnavailable writer against the RBAC-enforcing mock
//! API and a time-scaled mock EC2. Node removal, podCIDR change, a node added during a
//! throttle storm, and an API glitch that returns an empty node list.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_cloud_controller::kube::nodes;
use cni_cloud_controller::reconcile::{DriveTiming, PassSummary, drive};
use cni_cloud_mocks::ec2::ApiClass;
use cni_cloud_providers::aws::{AwsConfig, AwsProvider, StaticCredentials};
use cni_cloud_providers::pacing::PacingConfig;
use cni_cloud_providers::retry::RetryPolicy;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use common::{cidr, eni_id, node_routes};

const SCALE: f64 = 20.0;

/// Make the reflector relist: a write it does not watch (a Lease) moves the resource
/// version past it, compaction forgets the history, and the cut watch gets 410 Gone.
async fn force_relist(client: &kube::Client, kube: &cni_cloud_mocks::kube::KubeMock, name: &str) {
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "cni-cloud");
    let lease: Lease =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    leases.create(&Default::default(), &lease).await.unwrap();
    kube.compact();
    kube.close_watches();
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_come_and_go_through_storms_and_glitches() {
    let cloud = common::cloud(21, SCALE).await;
    let (kube, kube_server) = common::kube(20).await;
    let client = common::kube_client(&kube, &kube_server).await;

    let mut aws = AwsConfig::new(common::CLUSTER, "us-east-1");
    aws.endpoint = Some(cloud.server.url());
    aws.credentials = Some(StaticCredentials {
        access_key_id: "AKIDE2E".into(),
        secret_access_key: "e2e".into(),
    });
    aws.route_limit = 1000;
    aws.pacing = PacingConfig {
        share: 1.0,
        time_scale: SCALE,
    };
    aws.retry = RetryPolicy::default().scaled(SCALE);
    let provider = Arc::new(AwsProvider::new(aws).await.unwrap());

    let stop = CancellationToken::new();
    let watch = nodes::start(
        client.clone(),
        nodes::Publish::new(Duration::from_millis(50), Duration::from_millis(500)),
        stop.clone(),
    );
    let mut synced = watch.synced.clone();
    synced.wait_for(|s| *s).await.unwrap();
    let mut reconciler = common::leader_reconciler(provider, &client, &watch.store, "e2e");
    let (_leader_tx, leader_rx) = watch::channel(true);
    let (sum_tx, _sum_rx) = watch::channel(PassSummary {
        passes: 0,
        snapshot: None,
        report: None,
        error: None,
    });
    let snapshots = watch.snapshots.clone();
    let driver = drive(
        &mut reconciler,
        snapshots,
        leader_rx,
        DriveTiming::default().scaled(SCALE),
        stop.clone(),
        sum_tx,
    );
    let scenario = async {
        // 1. Converge: 20 routes, every node says RouteCreated.
        eventually("20 routes and 20 conditions", || {
            node_routes(&cloud.ec2).len() == 20
                && (0..20).all(|i| {
                    common::condition(&kube, &format!("node-{i:03}"))
                        == Some(("False".into(), "RouteCreated".into()))
                })
        })
        .await;

        // 2. A node leaves: its route goes, nothing else changes.
        kube.delete_node("node-003").unwrap();
        eventually("node-003's route removed", || {
            !node_routes(&cloud.ec2).contains_key(&cidr(3))
        })
        .await;
        assert_eq!(node_routes(&cloud.ec2).len(), 19);

        // 3. A node's podCIDR changes: the old route goes, the new one points at it.
        let moved = "100.65.200.0/24";
        kube.upsert_node(common::node_json(4, moved)).unwrap();
        eventually("node-004's route follows its podCIDR", || {
            let routes = node_routes(&cloud.ec2);
            routes.get(moved) == Some(&eni_id(4)) && !routes.contains_key(&cidr(4))
        })
        .await;

        // 4. A node joins while a noisy neighbour keeps the write bucket empty: routed after.
        let storm = {
            let ec2 = cloud.ec2.clone();
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < until {
                    ec2.drain_bucket(ApiClass::Mutating);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        kube.upsert_node(common::node_json(20, &cidr(20))).unwrap();
        storm.await.unwrap();
        assert!(
            cloud.ec2.stats().total("throttled") > 0,
            "the storm must have throttled something"
        );
        eventually("node-020 routed after the storm", || {
            node_routes(&cloud.ec2).get(&cidr(20)) == Some(&eni_id(20))
                && common::condition(&kube, "node-020")
                    == Some(("False".into(), "RouteCreated".into()))
        })
        .await;

        // 5. The API answers one relist with no nodes: the guard holds every route.
        let before = node_routes(&cloud.ec2);
        let mut snaps = watch.snapshots.clone();
        kube.empty_next_lists(1);
        force_relist(&client, &kube, "glitch").await;
        tokio::time::timeout(
            Duration::from_secs(20),
            snaps.wait_for(|s| s.nodes.is_empty()),
        )
        .await
        .expect("the reflector saw the empty list")
        .unwrap();
        // Give the reconciler several passes over the empty snapshot.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            node_routes(&cloud.ec2),
            before,
            "an empty list wiped routes"
        );
        force_relist(&client, &kube, "recover").await;
        eventually("the reflector recovers the nodes", || {
            watch.snapshots.borrow().nodes.len() == 20
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(node_routes(&cloud.ec2), before);
        assert!(common::foreign_intact(&cloud));

        stop.cancel();
    };
    tokio::join!(driver, scenario);
}
