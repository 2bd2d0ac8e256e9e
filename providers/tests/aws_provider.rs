//! The AWS provider against the mock EC2 (in-process, loopback).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cni_cloud_mocks::ec2::{ApiClass, Ec2Config, Origin, Target};
use cni_cloud_providers::aws::OPERATIONS;
use cni_cloud_providers::{
    CallOutcome, Claim, CloudProvider, ErrorKind, Families, ForwardingChange, NextHop, QuotaScope,
    RouteChange, RouteState, TableId,
};
use common::*;
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn eni(id: &str) -> NextHop {
    NextHop::NetworkInterface(id.to_owned())
}

fn create(dest: &str, to: &str) -> RouteChange {
    RouteChange::Create {
        destination: net(dest),
        next_hop: eni(to),
    }
}

fn no_throttle() -> Ec2Config {
    Ec2Config {
        throttle: false,
        ..Ec2Config::default()
    }
}

#[tokio::test]
async fn discovers_tagged_tables_and_explicit_ids() {
    let (_mock, server) = start_mock(no_throttle(), seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    assert_eq!(
        p.discover_tables().await.unwrap(),
        vec![TableId::from("rtb-a"), TableId::from("rtb-b")]
    );
    let mut cfg = config(&server.url(), 1.0);
    cfg.table_ids = vec!["rtb-other".into()];
    let explicit = provider(cfg.clone()).await;
    assert_eq!(
        explicit.discover_tables().await.unwrap(),
        vec![TableId::from("rtb-other")]
    );
    cfg.table_ids = vec!["rtb-other".into(), "rtb-missing".into()];
    let missing = provider(cfg).await.discover_tables().await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    assert!(missing.message.contains("rtb-missing"), "{missing}");
}

#[tokio::test]
async fn dual_stack_create_replace_delete_are_idempotent() {
    let (mock, server) = start_mock(no_throttle(), seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    let t = TableId::from("rtb-a");
    let batch = [
        create("10.100.1.0/24", "eni-i-01-0"),
        create("2600:1f18:100:1::/64", "eni-i-01-0"),
        create("10.100.2.0/24", "eni-i-02-0"),
    ];
    for o in p.apply(&t, &batch).await {
        o.result.unwrap();
    }
    // Again: RouteAlreadyExists with the same target is success.
    for o in p.apply(&t, &batch).await {
        o.result.unwrap();
    }
    let table = p.list_table(&t).await.unwrap();
    assert_eq!(table.families, Families::BOTH);
    assert_eq!(table.quota.limit, 50);
    assert_eq!(table.quota.scope, QuotaScope::PerFamily);
    assert_eq!(table.name, "az-a");
    let ours: Vec<_> = table
        .routes
        .iter()
        .filter(|r| r.claim == Claim::Cluster)
        .map(|r| (r.destination.to_string(), r.next_hop.clone()))
        .collect();
    assert_eq!(
        ours,
        vec![
            ("10.100.1.0/24".into(), eni("eni-i-01-0")),
            ("2600:1f18:100:1::/64".into(), eni("eni-i-01-0")),
            ("10.100.2.0/24".into(), eni("eni-i-02-0")),
        ]
    );
    assert_eq!(table.usage(cni_cloud_providers::Family::V4), 3); // + local
    assert_eq!(table.usage(cni_cloud_providers::Family::V6), 2); // + local

    // Same destination, another target, as a Create: a conflict, not a silent success.
    let clash = p
        .apply(&t, &[create("10.100.1.0/24", "eni-i-02-0")])
        .await
        .remove(0);
    let err = clash.result.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::Conflict, "RouteAlreadyExists")
    );

    let replace = RouteChange::Replace {
        destination: net("10.100.1.0/24"),
        next_hop: eni("eni-i-02-0"),
        previous: eni("eni-i-01-0"),
    };
    let delete = RouteChange::Delete {
        destination: net("2600:1f18:100:1::/64"),
        next_hop: eni("eni-i-01-0"),
    };
    for _ in 0..2 {
        for o in p.apply(&t, &[replace.clone(), delete.clone()]).await {
            o.result.unwrap();
        }
    }
    let table = p.list_table(&t).await.unwrap();
    let r = table
        .routes
        .iter()
        .find(|r| r.destination == net("10.100.1.0/24"))
        .unwrap();
    assert_eq!(r.next_hop, eni("eni-i-02-0"));
    assert!(
        !table
            .routes
            .iter()
            .any(|r| r.destination == net("2600:1f18:100:1::/64"))
    );
    // One ReplaceRoute per replace, one CreateRoute per create attempt, nothing more.
    let stats = mock.stats();
    assert_eq!(stats.count("ReplaceRoute", "ok"), 2);
    assert_eq!(stats.count("DeleteRoute", "ok"), 1);
    assert_eq!(stats.count("DeleteRoute", "client_error"), 1);
    // A next hop that is not an ENI is refused before any call.
    let bad = p
        .apply(
            &t,
            &[RouteChange::Create {
                destination: net("10.100.9.0/24"),
                next_hop: NextHop::Instance("i-01".into()),
            }],
        )
        .await
        .remove(0);
    assert_eq!(bad.result.unwrap_err().kind, ErrorKind::Permanent);
}

#[tokio::test]
async fn foreign_routes_are_never_claimed_and_v4_only_vpc_has_no_v6() {
    let mut s = seed();
    s.vpcs.push(cni_cloud_mocks::ec2::Vpc {
        id: "vpc-2".into(),
        cidr: "172.16.0.0/16".parse().unwrap(),
        ipv6_cidr: None,
    });
    s.route_tables.push(cni_cloud_mocks::ec2::SeedTable {
        id: "rtb-v4".into(),
        vpc_id: "vpc-2".into(),
        tags: tags(&[(TAG, "owned")]),
        routes: vec![],
    });
    let (mock, server) = start_mock(no_throttle(), s).await;
    mock.with_world(|w| {
        let now = std::time::Instant::now();
        w.insert_route(
            "rtb-a",
            net("10.100.7.0/24"),
            Target::NetworkInterface("eni-i-0f-0".into()),
            Origin::CreateRoute,
            now,
        )
        .unwrap();
        w.insert_route(
            "rtb-a",
            net("0.0.0.0/0"),
            Target::Gateway("igw-1".into()),
            Origin::CreateRoute,
            now,
        )
        .unwrap();
    });
    let p = provider(config(&server.url(), 1.0)).await;
    let table = p.list_table(&TableId::from("rtb-a")).await.unwrap();
    for r in &table.routes {
        assert_eq!(r.claim, Claim::Foreign, "{r:?}");
    }
    let v4 = p.list_table(&TableId::from("rtb-v4")).await.unwrap();
    assert_eq!(
        v4.families,
        Families {
            v4: true,
            v6: false
        }
    );
}

#[tokio::test]
async fn resolves_provider_ids_to_primary_enis_in_one_call() {
    let (mock, server) = start_mock(no_throttle(), seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    let ids: Vec<String> = [
        "aws:///us-east-1a/i-01",
        "aws:///us-east-1a/i-03",
        "aws:///us-east-1a/i-0f",
        "aws:///us-east-1a/i-0404",
        "gce://nope",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = p.resolve_nodes(&ids).await;
    assert_eq!(out.len(), 5);
    let multi = out[&ids[1]].as_ref().unwrap();
    // The multi-ENI instance resolves to its device-index-0 ENI.
    assert_eq!(multi.interface_id, "eni-i-03-0");
    assert_eq!(multi.next_hop_v4, Some(eni("eni-i-03-0")));
    assert_eq!(multi.next_hop_v6, Some(eni("eni-i-03-0")));
    assert_eq!(multi.ipv4, Some("10.0.1.3".parse().unwrap()));
    assert_eq!(multi.ipv6, Some("2600:1f18::3".parse().unwrap()));
    assert!(multi.cluster_member);
    assert!(!out[&ids[2]].as_ref().unwrap().cluster_member);
    assert_eq!(out[&ids[3]].as_ref().unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(
        out[&ids[4]].as_ref().unwrap_err().kind,
        ErrorKind::Permanent
    );
    assert_eq!(mock.stats().count("DescribeInstances", "ok"), 1);

    // A route to the multi-ENI instance goes to the ENI and works.
    let t = TableId::from("rtb-b");
    p.apply(&t, &[create("10.100.3.0/24", &multi.interface_id)])
        .await
        .remove(0)
        .result
        .unwrap();
}

#[tokio::test]
async fn forwarding_is_enabled_once() {
    let (mock, server) = start_mock(no_throttle(), seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    let pid = "aws:///us-east-1a/i-02".to_owned();
    let target = p
        .resolve_nodes(std::slice::from_ref(&pid))
        .await
        .remove(&pid)
        .unwrap()
        .unwrap();
    assert_eq!(
        p.ensure_forwarding(&target).await.unwrap(),
        ForwardingChange::Enabled
    );
    assert_eq!(
        p.ensure_forwarding(&target).await.unwrap(),
        ForwardingChange::AlreadyEnabled
    );
    assert_eq!(
        mock.stats().count("ModifyNetworkInterfaceAttribute", "ok"),
        1
    );
    let check = mock.with_world(|w| w.find_eni_mut("eni-i-02-0").unwrap().source_dest_check);
    assert!(!check);
}

#[tokio::test]
async fn quota_is_per_family_and_not_retried() {
    let cfg = Ec2Config {
        route_limit: 3,
        ..no_throttle()
    };
    let (mock, server) = start_mock(cfg, seed()).await;
    let mut pc = config(&server.url(), 1.0);
    pc.route_limit = 3;
    pc.apply_concurrency = 1;
    let p = provider(pc).await;
    let t = TableId::from("rtb-a");
    // local + 2 = 3 IPv4 routes; the third create is over quota. IPv6 has its own count.
    let out = p
        .apply(
            &t,
            &[
                create("10.100.1.0/24", "eni-i-01-0"),
                create("10.100.2.0/24", "eni-i-02-0"),
                create("10.100.3.0/24", "eni-i-03-0"),
                create("2600:1f18:100:1::/64", "eni-i-01-0"),
            ],
        )
        .await;
    assert!(out[0].result.is_ok() && out[1].result.is_ok() && out[3].result.is_ok());
    let e = out[2].result.as_ref().unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::QuotaExceeded, "RouteLimitExceeded")
    );
    assert!(!e.message.is_empty(), "the cloud's message is kept");
    assert_eq!(mock.stats().count("CreateRoute", "quota"), 1);
    assert_eq!(p.list_table(&t).await.unwrap().quota.limit, 3);
}

#[tokio::test]
async fn throttle_storm_alone_never_throttles() {
    // EC2's buckets at ×20 speed: 150 creates spend the 50 burst and then ride the refill.
    let cfg = Ec2Config {
        time_scale: 20.0,
        // A raised quota (EC2 allows up to 1,000): this test is about the buckets.
        route_limit: 1000,
        ..Ec2Config::default()
    };
    let (mock, server) = start_mock(cfg, seed()).await;
    let mut pc = config(&server.url(), 20.0);
    pc.route_limit = 1000;
    pc.apply_concurrency = 32;
    let p = provider(pc).await;
    let changes: Vec<_> = (0..150)
        .map(|i| {
            create(
                &format!("10.{}.{}.0/24", 100 + i / 200, i % 200),
                "eni-i-01-0",
            )
        })
        .collect();
    for o in p.apply(&TableId::from("rtb-a"), &changes).await {
        o.result.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(mock.stats().total("throttled"), 0);
    assert_eq!(p.counters().throttled(), 0);
    assert_eq!(mock.stats().count("CreateRoute", "ok"), 150);
}

#[tokio::test]
async fn noisy_neighbour_backs_off_and_finishes() {
    let cfg = Ec2Config {
        time_scale: 20.0,
        // A raised quota (EC2 allows up to 1,000): this test is about the buckets.
        route_limit: 1000,
        ..Ec2Config::default()
    };
    let (mock, server) = start_mock(cfg, seed()).await;
    let mut pc = config(&server.url(), 20.0);
    pc.route_limit = 1000;
    pc.apply_concurrency = 16;
    let p = provider(pc).await;
    // Another client in the account just spent the whole mutating bucket.
    mock.drain_bucket(ApiClass::Mutating);
    let changes: Vec<_> = (0..60)
        .map(|i| create(&format!("10.101.{i}.0/24"), "eni-i-02-0"))
        .collect();
    for o in p.apply(&TableId::from("rtb-a"), &changes).await {
        o.result.unwrap_or_else(|e| panic!("{e}"));
    }
    let throttled = mock.stats().count("CreateRoute", "throttled");
    assert!(throttled > 0, "the drained bucket must push back");
    assert_eq!(p.counters().throttled(), throttled);
    assert!(p.mutating_pacer().factor() <= 1.0);
    let ours = p
        .list_table(&TableId::from("rtb-a"))
        .await
        .unwrap()
        .routes
        .iter()
        .filter(|r| r.claim == Claim::Cluster)
        .count();
    assert_eq!(ours, 60);
}

#[tokio::test]
async fn injected_faults_are_retried_to_the_same_end_state() {
    let cfg = Ec2Config {
        fault_rate: 0.25,
        ..no_throttle()
    };
    let (mock, server) = start_mock(cfg, seed()).await;
    let mut pc = config(&server.url(), 50.0);
    pc.retry.max_attempts = 12;
    let p = provider(pc).await;
    let t = TableId::from("rtb-a");
    let changes: Vec<_> = (0..40)
        .map(|i| create(&format!("10.102.{i}.0/24"), "eni-i-03-0"))
        .collect();
    for o in p.apply(&t, &changes).await {
        o.result.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(mock.faults_injected() > 0);
    assert!(
        p.counters()
            .count("CreateRoute", CallOutcome::Error(ErrorKind::Transient))
            > 0
    );
    let listed = loop {
        if let Ok(t) = p.list_table(&t).await {
            break t;
        }
    };
    let ours = listed
        .routes
        .iter()
        .filter(|r| r.claim == Claim::Cluster)
        .count();
    assert_eq!(ours, 40);
}

#[tokio::test]
async fn describe_lag_hides_fresh_routes_for_a_while() {
    let cfg = Ec2Config {
        describe_lag: Duration::from_millis(400),
        ..no_throttle()
    };
    let (_mock, server) = start_mock(cfg, seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    let t = TableId::from("rtb-a");
    p.apply(&t, &[create("10.103.0.0/24", "eni-i-01-0")])
        .await
        .remove(0)
        .result
        .unwrap();
    let has = |table: &cni_cloud_providers::RouteTable| {
        table
            .routes
            .iter()
            .any(|r| r.destination == net("10.103.0.0/24"))
    };
    assert!(
        !has(&p.list_table(&t).await.unwrap()),
        "eventual consistency"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(has(&p.list_table(&t).await.unwrap()));
}

#[tokio::test]
async fn blackholes_are_claimed_only_with_evidence() {
    let (mock, server) = start_mock(no_throttle(), seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    let t = TableId::from("rtb-a");
    p.apply(&t, &[create("10.104.0.0/24", "eni-i-02-0")])
        .await
        .remove(0)
        .result
        .unwrap();
    assert_eq!(
        p.list_table(&t)
            .await
            .unwrap()
            .routes
            .iter()
            .filter(|r| r.claim == Claim::Cluster)
            .count(),
        1
    );
    assert!(mock.with_world(|w| w.terminate("i-02")));
    let route = |table: cni_cloud_providers::RouteTable| {
        table
            .routes
            .into_iter()
            .find(|r| r.destination == net("10.104.0.0/24"))
            .unwrap()
    };
    // This process saw eni-i-02-0 on a cluster instance: the blackhole is ours to clean up.
    let r = route(p.list_table(&t).await.unwrap());
    assert_eq!((r.state, r.claim), (RouteState::Blackhole, Claim::Cluster));
    // A fresh process has no evidence: the blackhole is reported, never claimed.
    let fresh = provider(config(&server.url(), 1.0)).await;
    let r = route(fresh.list_table(&t).await.unwrap());
    assert_eq!((r.state, r.claim), (RouteState::Blackhole, Claim::Foreign));
    // Deleting it works (and is idempotent).
    let del = RouteChange::Delete {
        destination: net("10.104.0.0/24"),
        next_hop: eni("eni-i-02-0"),
    };
    for _ in 0..2 {
        p.apply(&t, std::slice::from_ref(&del))
            .await
            .remove(0)
            .result
            .unwrap();
    }
}

#[tokio::test]
async fn operations_list_is_exactly_what_the_provider_calls() {
    let (mock, server) = start_mock(no_throttle(), seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    assert_eq!(p.operations(), OPERATIONS);
    let t = p.discover_tables().await.unwrap().remove(0);
    let pid = "aws:///us-east-1a/i-01".to_owned();
    let target = p
        .resolve_nodes(std::slice::from_ref(&pid))
        .await
        .remove(&pid)
        .unwrap()
        .unwrap();
    p.ensure_forwarding(&target).await.unwrap();
    let changes = [
        create("10.105.0.0/24", &target.interface_id),
        RouteChange::Replace {
            destination: net("10.105.0.0/24"),
            next_hop: eni("eni-i-02-0"),
            previous: eni(&target.interface_id),
        },
        RouteChange::Delete {
            destination: net("10.105.0.0/24"),
            next_hop: eni("eni-i-02-0"),
        },
    ];
    for c in changes {
        p.apply(&t, &[c]).await.remove(0).result.unwrap();
    }
    p.list_table(&t).await.unwrap();
    let seen: BTreeSet<String> = mock
        .stats()
        .snapshot()
        .keys()
        .map(|a| format!("ec2:{a}"))
        .collect();
    let declared: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, declared);
}

#[tokio::test]
async fn replacing_a_vanished_route_creates_it() {
    let (mock, server) = start_mock(no_throttle(), seed()).await;
    let p = provider(config(&server.url(), 1.0)).await;
    let t = TableId::from("rtb-a");
    let replace = RouteChange::Replace {
        destination: net("10.106.0.0/24"),
        next_hop: eni("eni-i-02-0"),
        previous: eni("eni-i-01-0"),
    };
    p.apply(&t, &[replace]).await.remove(0).result.unwrap();
    let stats = mock.stats();
    // EC2 answers InvalidParameterValue ("no route defined … Use CreateRoute instead"):
    // one read proves the route is gone, then one create.
    assert_eq!(stats.count("ReplaceRoute", "client_error"), 1);
    assert_eq!(stats.count("DescribeRouteTables", "ok"), 1);
    assert_eq!(stats.count("CreateRoute", "ok"), 1);
    let listed = p.list_table(&t).await.unwrap();
    let r = listed
        .routes
        .iter()
        .find(|r| r.destination == net("10.106.0.0/24"))
        .unwrap();
    assert_eq!(r.next_hop, eni("eni-i-02-0"));
    // A replace refused for another reason (the local route) is not turned into a create.
    let local = RouteChange::Replace {
        destination: net("10.0.0.0/16"),
        next_hop: eni("eni-i-02-0"),
        previous: NextHop::Other("local".into()),
    };
    let err = p.apply(&t, &[local]).await.remove(0).result.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::Permanent, "InvalidParameterValue")
    );
}

/// A process that was stopped between the fence's check and the socket write: the deadline
/// the provider arms its write gate with has passed, while the check around the attempt
/// (asked next) still sees time left — as it did before the pause.
struct StoppedBetweenCheckAndWrite {
    calls: std::sync::atomic::AtomicU32,
}

impl cni_cloud_providers::WriteFence for StoppedBetweenCheckAndWrite {
    fn deadline(&self) -> Option<std::time::Instant> {
        let now = std::time::Instant::now();
        match self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Some(now - Duration::from_millis(1)),
            _ => Some(now + Duration::from_secs(30)),
        }
    }
}

#[tokio::test]
async fn the_socket_refuses_a_mutation_whose_deadline_passed_after_the_check() {
    let (mock, server) = start_mock(no_throttle(), seed()).await;
    let mut cfg = config(&server.url(), 1.0);
    cfg.retry.max_attempts = 1;
    let p = provider(cfg).await;
    let fence = StoppedBetweenCheckAndWrite {
        calls: Default::default(),
    };
    let table = TableId::from("rtb-a");
    let out = p
        .apply_fenced(&table, &[create("10.100.7.0/24", "eni-i-01-0")], &fence)
        .await;
    let err = out[0].result.as_ref().expect_err("refused at the socket");
    assert_ne!(
        err.kind,
        ErrorKind::Fenced,
        "the check around the attempt let it through; the socket must be what refused: {err}"
    );
    let sent: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.action == "CreateRoute")
        .collect();
    assert!(sent.is_empty(), "no byte of it reached EC2: {sent:?}");

    // The same provider writes again once its fence is open.
    let ok = p
        .apply_fenced(
            &table,
            &[create("10.100.7.0/24", "eni-i-01-0")],
            &cni_cloud_providers::Unfenced,
        )
        .await;
    assert!(ok[0].result.is_ok(), "{:?}", ok[0].result);
    assert_eq!(
        mock.requests()
            .iter()
            .filter(|r| r.action == "CreateRoute")
            .count(),
        1
    );
}
