//! Planner speed: 5,000 dual-stack nodes against tables already holding 5,000 routes.
//! `cargo bench -p cni-cloud-controller --bench planner`

use std::net::Ipv4Addr;

use cni_cloud_controller::cluster::ClusterNode;
use cni_cloud_controller::planner::{PlanNode, PlanOptions, plan};
use cni_cloud_providers::{
    Claim, Families, NextHop, NodeTarget, QuotaScope, Route, RouteOrigin, RouteQuota, RouteState,
    RouteTable,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::IpNet;

const NODES: u32 = 5_000;

fn v4(i: u32) -> IpNet {
    format!("100.{}.{}.0/24", 64 + i / 256, i % 256)
        .parse()
        .unwrap()
}

fn v6(i: u32) -> IpNet {
    format!("fd00:10:244:{i:x}::/64").parse().unwrap()
}

fn eni(i: u32) -> NextHop {
    NextHop::NetworkInterface(format!("eni-{i:08x}"))
}

fn nodes() -> Vec<PlanNode> {
    (0..NODES)
        .map(|i| PlanNode {
            node: ClusterNode {
                name: format!("node-{i:05}"),
                uid: format!("uid-{i}"),
                created_unix: i64::from(i),
                provider_id: Some(format!("aws:///us-east-1a/i-{i:08x}")),
                pod_cidrs: vec![v4(i).to_string(), v6(i).to_string()],
                internal_ips: vec![],
            },
            target: Ok(NodeTarget {
                instance_id: format!("i-{i:08x}"),
                interface_id: format!("eni-{i:08x}"),
                ipv4: Some(Ipv4Addr::from(0x0a00_0000 + i)),
                ipv6: None,
                cluster_member: true,
                next_hop_v4: Some(eni(i)),
                next_hop_v6: Some(eni(i)),
            }),
        })
        .collect()
}

/// 5,000 existing routes: 2,500 nodes fully routed, every 10th pointing at an old target,
/// and some stale routes of nodes that left.
fn table() -> RouteTable {
    let mut routes = Vec::new();
    for i in 0..2_500 {
        let hop = if i % 10 == 0 {
            eni(i + 100_000)
        } else {
            eni(i)
        };
        for dest in [v4(i), v6(i)] {
            routes.push(Route {
                destination: dest,
                next_hop: hop.clone(),
                state: RouteState::Active,
                origin: RouteOrigin::Manual,
                claim: Claim::Cluster,
                name: None,
            });
        }
    }
    RouteTable {
        id: "rtb-bench".into(),
        name: "bench".into(),
        families: Families::BOTH,
        quota: RouteQuota {
            limit: 10_000,
            scope: QuotaScope::PerFamily,
        },
        routes,
        version: None,
        unlisted_routes: 0,
    }
}

fn bench(c: &mut Criterion) {
    let nodes = nodes();
    let tables = vec![table()];
    let cidrs: Vec<IpNet> = vec![
        "100.64.0.0/10".parse().unwrap(),
        "fd00:10:244::/48".parse().unwrap(),
    ];
    let options = PlanOptions {
        authoritative: true,
        ..PlanOptions::default()
    };
    let p = plan(&nodes, &cidrs, &tables, &options);
    assert_eq!(p.nodes.len(), NODES as usize);
    assert!(p.change_count() > 5_000);
    c.bench_function("plan 5000 dual-stack nodes x 5000 routes", |b| {
        b.iter(|| plan(&nodes, &cidrs, &tables, &options))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
