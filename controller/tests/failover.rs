//! Failover: two `cni-cloud-controller run` processes against the RBAC-enforcing mock
//! Kubernetes API and a time-scaled mock EC2. The leader is killed (SIGKILL, no lease
//! release) when half the routes are in; the standby must take over within one lease
//! duration plus one retry period, finish the job without repeating a single write, touch
//! no foreign route, and leave every Node with a correct NetworkUnavailable condition.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cni_cloud_mocks::ec2::{Ec2Mock, Target};

use common::{TABLE, cidr, holder, now_ms, spawn};

const NODES: u32 = 500;
const SCALE: f64 = common::REPLICA_TIME_SCALE;
const LEASE: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_finishes_the_job_after_the_leader_is_killed() {
    let cloud = common::cloud(NODES, SCALE).await;
    let ec2 = cloud.ec2.clone();
    let ec2_server = &cloud.server;
    let (kube, kube_server) = common::kube(NODES).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = common::kubeconfig_file(&kube, &kube_server, dir.path());

    let url = ec2_server.url();
    let mut replicas = vec![
        spawn("a", &kubeconfig, &url, "AKIDFAILOVER"),
        spawn("b", &kubeconfig, &url, "AKIDFAILOVER"),
    ];
    let routes = |ec2: &Ec2Mock| common::node_routes(ec2).len() as u32;

    // Kill the leader at 50 %.
    let deadline = Instant::now() + Duration::from_secs(120);
    while routes(&ec2) < NODES / 2 {
        assert!(
            Instant::now() < deadline,
            "the first leader never got to 50 %"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = holder(&kube).expect("someone leads");
    let at_kill = routes(&ec2);
    assert!(
        at_kill < NODES,
        "killed too late to test anything: {at_kill}"
    );
    let killed_ms = now_ms();
    let idx = replicas.iter().position(|r| r.name == leader).unwrap();
    let mut dead = replicas.remove(idx);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let survivor = replicas[0].name;

    // The survivor converges and every Node says so.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = routes(&ec2) == NODES
            && kube.nodes().iter().all(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "NetworkUnavailable"
                            && c["status"] == "False"
                            && c["reason"] == "RouteCreated"
                    })
                })
            });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence after failover: {} routes",
            routes(&ec2)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let took_over = kube
        .lease_log()
        .into_iter()
        .find(|w| w.at_unix_ms >= killed_ms && w.holder.as_deref() == Some(survivor))
        .expect("the survivor wrote the lease");
    let failover = Duration::from_millis((took_over.at_unix_ms - killed_ms) as u64);
    eprintln!(
        "failover_seconds={:.3} (killed at {at_kill} routes)",
        failover.as_secs_f64()
    );
    assert!(failover <= LEASE + RETRY, "failover took {failover:?}");

    assert!(
        common::foreign_intact(&cloud),
        "a foreign route was touched"
    );
    ec2.with_world(|w| {
        let table = &w.tables[TABLE];
        let mut wrong = 0;
        for r in &table.routes {
            if let Target::NetworkInterface(eni) = &r.target {
                let i = (0..NODES)
                    .find(|i| r.destination.to_string() == cidr(*i))
                    .unwrap();
                if *eni != format!("eni-0f{i:015x}") {
                    wrong += 1;
                }
            }
        }
        assert_eq!(wrong, 0, "routes_wrong");
    });
    let creates: Vec<_> = ec2
        .mutations()
        .into_iter()
        .filter(|m| m.action == "CreateRoute")
        .map(|m| (m.subject, m.detail))
        .collect();
    let unique: BTreeSet<_> = creates.iter().cloned().collect();
    assert_eq!(creates.len(), unique.len(), "duplicate_mutations");
    assert_eq!(creates.len() as u32, NODES);
}
