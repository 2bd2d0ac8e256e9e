//! The Azure provider against the in-process mock ARM: one PUT per table per pass, exact
//! ownership, byte-for-byte preservation of foreign routes, races, locks, throttling,
//! long-running-operation failures, quota trimming and NIC preparation.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cni_cloud_mocks::arm::{ArmConfig, ArmMock, Bucket, NicSpec, PUBLIC_IP_JOIN, SUBNET_JOIN};
use cni_cloud_mocks::common::RunningServer;
use cni_cloud_providers::azure::credential::StaticToken;
use cni_cloud_providers::azure::{AzureConfig, AzureProvider, LINKED_OPERATIONS, OPERATIONS};
use cni_cloud_providers::pacing::PacingConfig;
use cni_cloud_providers::{
    Claim, CloudProvider, ErrorKind, ForwardingChange, NextHop, RouteChange, TableId,
};
use ipnet::IpNet;
use serde_json::{Value, json};

const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
const RG: &str = "k8s";
const LOC: &str = "westeurope";
/// Cloud time runs 100× faster: a 10 s LRO takes 100 ms.
const SCALE: f64 = 100.0;

struct Env {
    mock: Arc<ArmMock>,
    _server: RunningServer,
    url: String,
}

async fn env(config: ArmConfig) -> Env {
    let mock = ArmMock::new(ArmConfig {
        time_scale: SCALE,
        ..config
    })
    .unwrap();
    let server = mock.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env {
        url: server.url(),
        mock,
        _server: server,
    }
}

fn provider(env: &Env, tables: &[&str], prefix: &str) -> AzureProvider {
    provider_with_token(env, tables, prefix, "test-token")
}

fn provider_with_token(env: &Env, tables: &[&str], prefix: &str, token: &str) -> AzureProvider {
    let mut config = AzureConfig::new(SUB, tables.iter().map(|t| t.to_string()).collect(), prefix);
    config.endpoint = env.url.clone();
    config.pacing = PacingConfig {
        share: 1.0,
        time_scale: SCALE,
    };
    AzureProvider::new(config, Arc::new(StaticToken::new(token))).unwrap()
}

fn ipv4_nic(ip: &str, ip_forwarding: bool) -> NicSpec {
    NicSpec {
        ipv4: ip.parse().unwrap(),
        ipv6: None,
        ip_forwarding,
    }
}
fn public_ip(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/publicIPAddresses/{name}"
    )
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn hop(s: &str) -> NextHop {
    NextHop::IpAddress(s.parse::<IpAddr>().unwrap())
}
fn create(d: &str, h: &str) -> RouteChange {
    RouteChange::Create {
        destination: net(d),
        next_hop: hop(h),
    }
}
fn route(name: &str, prefix: &str, ip: &str) -> Value {
    json!({"name": name, "properties": {"addressPrefix": prefix, "nextHopType": "VirtualAppliance", "nextHopIpAddress": ip}})
}
fn names(routes: &[Value]) -> BTreeSet<String> {
    routes
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}
fn writes(mock: &ArmMock, outcome: &str) -> u64 {
    mock.stats()
        .count("Microsoft.Network/routeTables/write", outcome)
}

#[tokio::test]
async fn one_put_carries_creates_replaces_deletes_and_keeps_foreign_routes_verbatim() {
    let env = env(ArmConfig::default()).await;
    // A foreign route with fields this client has never heard of, and a route of cluster
    // "k10" whose name starts with our prefix "k1".
    let foreign = json!({
        "name": "ops-vpn",
        "properties": {
            "addressPrefix": "172.16.0.0/12",
            "nextHopType": "VirtualNetworkGateway",
            "hasBgpOverride": false,
            "futureProperty": {"nested": [1, "two", null], "flag": true}
        }
    });
    let table = env.mock.world().add_route_table(
        SUB,
        RG,
        "rt",
        LOC,
        vec![
            foreign,
            route("k10--10.244.1.0_24", "10.244.1.0/24", "10.0.0.10"),
            route("k1--10.244.2.0_24", "10.244.2.0/24", "10.0.0.2"),
            route("k1--10.244.3.0_24", "10.244.3.0/24", "10.0.0.3"),
        ],
    );
    let before = env.mock.world().routes(&table);
    let p = provider(&env, &["k8s/rt"], "k1");

    let listed = p.list_table(&TableId(table.clone())).await.unwrap();
    let claims: Vec<(String, Claim)> = listed
        .routes
        .iter()
        .map(|r| (r.name.clone().unwrap(), r.claim))
        .collect();
    assert_eq!(
        claims,
        [
            ("ops-vpn".to_owned(), Claim::Foreign),
            ("k10--10.244.1.0_24".to_owned(), Claim::Foreign),
            ("k1--10.244.2.0_24".to_owned(), Claim::Cluster),
            ("k1--10.244.3.0_24".to_owned(), Claim::Cluster),
        ]
    );
    assert!(listed.version.is_some(), "etag is the table version");

    let changes = vec![
        create("10.244.4.0/24", "10.0.0.4"),
        create("fd00:10:244:4::/64", "fd00::4"),
        RouteChange::Replace {
            destination: net("10.244.2.0/24"),
            next_hop: hop("10.0.0.22"),
            previous: hop("10.0.0.2"),
        },
        RouteChange::Delete {
            destination: net("10.244.3.0/24"),
            next_hop: hop("10.0.0.3"),
        },
        // Same destination as k10's route: ours is deleted by exact name only.
        RouteChange::Delete {
            destination: net("10.244.1.0/24"),
            next_hop: hop("10.0.0.10"),
        },
    ];
    let out = p.apply(&TableId(table.clone()), &changes).await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(writes(&env.mock, "ok"), 1, "exactly one PUT for the pass");

    let after = env.mock.world().routes(&table);
    assert_eq!(
        names(&after),
        BTreeSet::from(
            [
                "ops-vpn",
                "k10--10.244.1.0_24",
                "k1--10.244.2.0_24",
                "k1--10.244.4.0_24",
                "k1--fd00-10-244-4--_64"
            ]
            .map(String::from)
        )
    );
    // Routes we don't own come back byte-for-byte (ARM's own fields included).
    for name in ["ops-vpn", "k10--10.244.1.0_24"] {
        let b = before.iter().find(|r| r["name"] == name).unwrap();
        let a = after.iter().find(|r| r["name"] == name).unwrap();
        assert_eq!(
            serde_json::to_string(a).unwrap(),
            serde_json::to_string(b).unwrap()
        );
    }
    let v6 = after
        .iter()
        .find(|r| r["name"] == "k1--fd00-10-244-4--_64")
        .unwrap();
    assert_eq!(v6["properties"]["addressPrefix"], "fd00:10:244:4::/64");
    assert_eq!(v6["properties"]["nextHopIpAddress"], "fd00::4");
    let replaced = after
        .iter()
        .find(|r| r["name"] == "k1--10.244.2.0_24")
        .unwrap();
    assert_eq!(replaced["properties"]["nextHopIpAddress"], "10.0.0.22");
    assert_eq!(
        env.mock.world().get(&table).unwrap()["properties"]["provisioningState"],
        "Succeeded",
        "the provider waited for the operation to finish"
    );

    // Applying the same batch again is a no-op: no write at all.
    let again = p.apply(&TableId(table.clone()), &changes[..3]).await;
    assert!(again.iter().all(|o| o.result.is_ok()));
    assert_eq!(writes(&env.mock, "ok"), 1);
}

#[tokio::test]
async fn a_second_writer_between_read_and_put_gets_412_and_we_reapply() {
    let env = env(ArmConfig::default()).await;
    let table = env.mock.world().add_route_table(SUB, RG, "rt", LOC, vec![]);
    env.mock.world().race_next_puts(&table, 2);
    let p = provider(&env, &[&table], "k1");
    let out = p
        .apply(
            &TableId(table.clone()),
            &[create("10.244.0.0/24", "10.0.0.4")],
        )
        .await;
    assert!(out[0].result.is_ok(), "{out:?}");
    assert_eq!(writes(&env.mock, "PreconditionFailed"), 2);
    assert_eq!(writes(&env.mock, "ok"), 1);
    let routes = env.mock.world().routes(&table);
    assert_eq!(
        routes.len(),
        3,
        "both second-writer routes kept: {routes:?}"
    );
    assert!(routes.iter().any(|r| r["name"] == "k1--10.244.0.0_24"));
}

#[tokio::test]
async fn a_table_locked_by_another_operation_is_retried_after_retry_after() {
    let env = env(ArmConfig::default()).await;
    let table = env.mock.world().add_route_table(SUB, RG, "rt", LOC, vec![]);
    env.mock
        .world()
        .lock_for(&table, Duration::from_millis(250))
        .unwrap();
    let p = provider(&env, &[&table], "k1");
    let out = p
        .apply(
            &TableId(table.clone()),
            &[create("10.244.0.0/24", "10.0.0.4")],
        )
        .await;
    assert!(out[0].result.is_ok(), "{out:?}");
    assert!(writes(&env.mock, "AnotherOperationInProgress") >= 1);
    assert_eq!(writes(&env.mock, "ok"), 1);
    assert_eq!(env.mock.world().routes(&table).len(), 1);
}

#[tokio::test]
async fn a_throttle_storm_is_ridden_out_with_one_successful_put_per_table() {
    // A tiny write bucket shared by 16 tables written at once.
    let env = env(ArmConfig {
        writes: Bucket {
            burst: 3,
            per_second: 1.0,
        },
        ..ArmConfig::default()
    })
    .await;
    let tables: Vec<String> = (0..16)
        .map(|i| {
            env.mock
                .world()
                .add_route_table(SUB, RG, &format!("rt{i}"), LOC, vec![])
        })
        .collect();
    let refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    let p = provider(&env, &refs, "k1");
    let results = futures::future::join_all(tables.iter().enumerate().map(|(i, t)| {
        let p = &p;
        async move {
            p.apply(
                &TableId(t.clone()),
                &[create(&format!("10.244.{i}.0/24"), "10.0.0.4")],
            )
            .await
        }
    }))
    .await;
    for out in &results {
        assert!(out[0].result.is_ok(), "{out:?}");
    }
    assert!(
        env.mock
            .stats()
            .count("Microsoft.Network/routeTables/write", "throttled")
            > 0
    );
    assert!(p.counters().throttled() > 0);
    assert_eq!(writes(&env.mock, "ok"), 16);
}

#[tokio::test]
async fn a_failed_or_canceled_operation_is_reported_as_failure_for_every_change() {
    let env = env(ArmConfig::default()).await;
    let table = env.mock.world().add_route_table(
        SUB,
        RG,
        "rt",
        LOC,
        vec![route("k1--10.244.9.0_24", "10.244.9.0/24", "10.0.0.9")],
    );
    let p = provider(&env, &[&table], "k1");
    let batch = [
        create("10.244.0.0/24", "10.0.0.4"),
        RouteChange::Delete {
            destination: net("10.244.9.0/24"),
            next_hop: hop("10.0.0.9"),
        },
    ];
    env.mock.world().fail_next_operations(1);
    let out = p.apply(&TableId(table.clone()), &batch).await;
    for o in &out {
        let err = o.result.as_ref().unwrap_err();
        assert_eq!(err.code, "InternalServerError", "{err}");
    }
    assert_eq!(
        names(&env.mock.world().routes(&table)),
        BTreeSet::from(["k1--10.244.9.0_24".to_owned()]),
        "the failed PUT changed nothing"
    );

    env.mock.world().cancel_next_operations(1);
    let out = p.apply(&TableId(table.clone()), &batch).await;
    assert!(out.iter().all(|o| o.result.is_err()), "{out:?}");

    let out = p.apply(&TableId(table.clone()), &batch).await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(
        names(&env.mock.world().routes(&table)),
        BTreeSet::from(["k1--10.244.0.0_24".to_owned()])
    );
}

#[tokio::test]
async fn a_pass_over_the_quota_is_trimmed_and_the_put_never_fails_for_quota() {
    let env = env(ArmConfig::default()).await;
    let foreign: Vec<Value> = (0..390)
        .map(|i| {
            route(
                &format!("ops-{i}"),
                &format!("172.16.{}.{}/32", i / 256, i % 256),
                "10.9.0.1",
            )
        })
        .collect();
    let table = env
        .mock
        .world()
        .add_route_table(SUB, RG, "rt", LOC, foreign);
    let p = provider(&env, &[&table], "k1");
    let batch: Vec<RouteChange> = (0..20)
        .map(|i| create(&format!("10.244.{i}.0/24"), "10.0.0.4"))
        .collect();
    let out = p.apply(&TableId(table.clone()), &batch).await;
    for (i, o) in out.iter().enumerate() {
        if i < 10 {
            assert!(o.result.is_ok(), "{i}: {o:?}");
        } else {
            assert_eq!(
                o.result.as_ref().unwrap_err().kind,
                ErrorKind::QuotaExceeded,
                "{i}"
            );
        }
    }
    assert_eq!(env.mock.world().routes(&table).len(), 400);
    assert_eq!(writes(&env.mock, "ok"), 1);
    assert_eq!(writes(&env.mock, "RouteTableRouteLimitExceeded"), 0);
}

#[tokio::test]
async fn nodes_resolve_and_nic_forwarding_is_written_only_when_off() {
    let env = env(ArmConfig::default()).await;
    let (off, on, ss_off, ss_on) = {
        let mut w = env.mock.world();
        (
            w.add_vm(
                SUB,
                RG,
                "node-a",
                LOC,
                NicSpec {
                    ipv4: "10.0.0.4".parse().unwrap(),
                    ipv6: Some("fd00::4".parse().unwrap()),
                    ip_forwarding: false,
                },
            ),
            w.add_vm(
                SUB,
                RG,
                "node-b",
                LOC,
                NicSpec {
                    ipv4: "10.0.0.5".parse().unwrap(),
                    ipv6: None,
                    ip_forwarding: true,
                },
            ),
            w.add_vmss_instance(
                SUB,
                RG,
                "pool",
                0,
                LOC,
                NicSpec {
                    ipv4: "10.0.1.4".parse().unwrap(),
                    ipv6: None,
                    ip_forwarding: false,
                },
            ),
            w.add_vmss_instance(
                SUB,
                RG,
                "pool",
                1,
                LOC,
                NicSpec {
                    ipv4: "10.0.1.5".parse().unwrap(),
                    ipv6: Some("fd00::1:5".parse().unwrap()),
                    ip_forwarding: true,
                },
            ),
        )
    };
    env.mock.world().add_route_table(SUB, RG, "rt", LOC, vec![]);
    let p = provider(&env, &["k8s/rt"], "k1");
    let missing = format!(
        "azure:///subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/gone"
    );
    let ids = vec![
        off.provider_id.clone(),
        on.provider_id.clone(),
        ss_off.provider_id.clone(),
        ss_on.provider_id.clone(),
        missing.clone(),
        "azure:///garbage".to_owned(),
    ];
    let resolved = p.resolve_nodes(&ids).await;
    assert_eq!(resolved.len(), ids.len());
    let a = resolved[&off.provider_id].as_ref().unwrap();
    assert_eq!(a.interface_id, off.nic_id);
    assert_eq!(a.next_hop_v4, Some(hop("10.0.0.4")));
    assert_eq!(a.next_hop_v6, Some(hop("fd00::4")));
    let s1 = resolved[&ss_on.provider_id].as_ref().unwrap();
    assert_eq!(s1.interface_id, ss_on.nic_id);
    assert_eq!(s1.ipv6, Some("fd00::1:5".parse().unwrap()));
    assert_eq!(
        resolved[&missing].as_ref().unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        resolved["azure:///garbage"].as_ref().unwrap_err().code,
        "InvalidProviderId"
    );

    let nic_writes = |m: &ArmMock| {
        m.stats()
            .count("Microsoft.Network/networkInterfaces/write", "ok")
    };
    assert_eq!(
        p.ensure_forwarding(a).await.unwrap(),
        ForwardingChange::Enabled
    );
    assert_eq!(nic_writes(&env.mock), 1);
    assert_eq!(
        env.mock.world().get(&off.nic_id).unwrap()["properties"]["enableIPForwarding"],
        true
    );
    assert_eq!(
        p.ensure_forwarding(a).await.unwrap(),
        ForwardingChange::AlreadyEnabled
    );
    let b = resolved[&on.provider_id].as_ref().unwrap();
    assert_eq!(
        p.ensure_forwarding(b).await.unwrap(),
        ForwardingChange::AlreadyEnabled
    );
    assert_eq!(
        p.ensure_forwarding(s1).await.unwrap(),
        ForwardingChange::AlreadyEnabled
    );
    let s0 = resolved[&ss_off.provider_id].as_ref().unwrap();
    assert_eq!(
        p.ensure_forwarding(s0).await.unwrap_err().code,
        "ScaleSetNicForwardingDisabled"
    );
    assert_eq!(
        nic_writes(&env.mock),
        1,
        "written exactly once, only when it was off"
    );
}

#[tokio::test]
async fn a_resource_group_of_nodes_is_resolved_from_paged_lists() {
    let env = env(ArmConfig {
        list_page_size: 4,
        ..ArmConfig::default()
    })
    .await;
    let nodes: Vec<_> = {
        let mut w = env.mock.world();
        (0..9)
            .map(|i| {
                w.add_vm(
                    SUB,
                    RG,
                    &format!("node-{i}"),
                    LOC,
                    NicSpec {
                        ipv4: format!("10.0.2.{}", 10 + i).parse().unwrap(),
                        ipv6: None,
                        ip_forwarding: true,
                    },
                )
            })
            .collect()
    };
    // Two VMs in another group stay below the listing threshold: read one by one.
    let small: Vec<_> = {
        let mut w = env.mock.world();
        (0..2)
            .map(|i| {
                w.add_vm(
                    SUB,
                    "other-rg",
                    &format!("lone-{i}"),
                    LOC,
                    NicSpec {
                        ipv4: format!("10.0.3.{}", 10 + i).parse().unwrap(),
                        ipv6: None,
                        ip_forwarding: true,
                    },
                )
            })
            .collect()
    };
    env.mock.world().add_route_table(SUB, RG, "rt", LOC, vec![]);
    let p = provider(&env, &["k8s/rt"], "k1");
    let gone = format!(
        "azure:///subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/gone"
    );
    let mut ids: Vec<String> = nodes.iter().map(|n| n.provider_id.clone()).collect();
    ids.extend(small.iter().map(|n| n.provider_id.clone()));
    ids.push(gone.clone());
    let resolved = p.resolve_nodes(&ids).await;
    assert_eq!(resolved.len(), ids.len());
    for (i, n) in nodes.iter().enumerate() {
        let t = resolved[&n.provider_id].as_ref().unwrap();
        assert_eq!(t.interface_id, n.nic_id);
        assert_eq!(t.ipv4, Some(format!("10.0.2.{}", 10 + i).parse().unwrap()));
    }
    for n in &small {
        assert_eq!(
            resolved[&n.provider_id].as_ref().unwrap().interface_id,
            n.nic_id
        );
    }
    // Not in the list: resolved on its own, which says exactly what is wrong.
    assert_eq!(
        resolved[&gone].as_ref().unwrap_err().kind,
        ErrorKind::NotFound
    );

    let reads = |op: &str| env.mock.stats().count(op, "ok");
    // 9 VMs at 4 a page: 3 pages of VMs and 3 of NICs (followed through nextLink), plus one
    // VM and one NIC read per node of the small group; `gone` is one 404 VM read.
    assert_eq!(reads("Microsoft.Compute/virtualMachines/read"), 3 + 2);
    assert_eq!(reads("Microsoft.Network/networkInterfaces/read"), 3 + 2);
    assert_eq!(
        env.mock
            .stats()
            .count("Microsoft.Compute/virtualMachines/read", "ResourceNotFound"),
        1
    );
    // The listed NIC bodies serve the forwarding checks that follow.
    for n in &nodes {
        let t = resolved[&n.provider_id].as_ref().unwrap();
        assert_eq!(
            p.ensure_forwarding(t).await.unwrap(),
            ForwardingChange::AlreadyEnabled
        );
    }
    assert_eq!(reads("Microsoft.Network/networkInterfaces/read"), 3 + 2);
}

#[tokio::test]
async fn the_forwarding_check_right_after_resolution_reuses_its_nic_read() {
    let env = env(ArmConfig::default()).await;
    let nic = |ip: &str, on: bool| NicSpec {
        ipv4: ip.parse().unwrap(),
        ipv6: None,
        ip_forwarding: on,
    };
    let (on, off) = {
        let mut w = env.mock.world();
        (
            w.add_vm(SUB, RG, "node-on", LOC, nic("10.0.0.6", true)),
            w.add_vm(SUB, RG, "node-off", LOC, nic("10.0.0.7", false)),
        )
    };
    env.mock.world().add_route_table(SUB, RG, "rt", LOC, vec![]);
    let p = provider(&env, &["k8s/rt"], "k1");
    let nic_reads = |m: &ArmMock| {
        m.stats()
            .count("Microsoft.Network/networkInterfaces/read", "ok")
    };
    let resolved = p
        .resolve_nodes(&[on.provider_id.clone(), off.provider_id.clone()])
        .await;
    assert_eq!(nic_reads(&env.mock), 2, "one NIC read per node to resolve");

    // Already on: the resolution's read answers, no second read.
    let a = resolved[&on.provider_id].as_ref().unwrap();
    assert_eq!(
        p.ensure_forwarding(a).await.unwrap(),
        ForwardingChange::AlreadyEnabled
    );
    assert_eq!(nic_reads(&env.mock), 2);
    // The remembered read is used once: a later check reads the NIC as it is now.
    assert_eq!(
        p.ensure_forwarding(a).await.unwrap(),
        ForwardingChange::AlreadyEnabled
    );
    assert_eq!(nic_reads(&env.mock), 3);

    // Off, and somebody writes the NIC after we resolved it: the PUT from the remembered
    // body is refused on its etag (412), the NIC is read again, and the write goes through
    // against the current body.
    env.mock.world().race_next_puts(&off.nic_id, 1);
    let b = resolved[&off.provider_id].as_ref().unwrap();
    assert_eq!(
        p.ensure_forwarding(b).await.unwrap(),
        ForwardingChange::Enabled
    );
    assert_eq!(
        env.mock.world().get(&off.nic_id).unwrap()["properties"]["enableIPForwarding"],
        true
    );
    assert_eq!(
        nic_reads(&env.mock),
        4,
        "one re-read after the 412, none before the PUT"
    );
    assert_eq!(
        env.mock
            .stats()
            .count("Microsoft.Network/networkInterfaces/write", "ok"),
        1
    );
}

/// The custom role is assigned on resources; ARM may refuse the operation-status URL (it is
/// not under any of them). Every write must still be reported truthfully: from the resource's
/// own provisioningState.
#[tokio::test]
async fn a_refused_operation_poll_falls_back_to_the_resource_provisioning_state() {
    let env = env(ArmConfig::default()).await;
    let table = env.mock.world().add_route_table(SUB, RG, "rt", LOC, vec![]);
    let node = env
        .mock
        .world()
        .add_vm(SUB, RG, "node-a", LOC, ipv4_nic("10.0.0.4", false));
    env.mock
        .world()
        .deny("test-token", "Microsoft.Network/locations/operations/read");
    let p = provider(&env, &["k8s/rt"], "k1");
    let polls = |outcome: &str| {
        env.mock
            .stats()
            .count("Microsoft.Network/locations/operations/read", outcome)
    };
    let table_reads = || {
        env.mock
            .stats()
            .count("Microsoft.Network/routeTables/read", "ok")
    };

    let out = p
        .apply(
            &TableId(table.clone()),
            &[create("10.244.0.0/24", "10.0.0.4")],
        )
        .await;
    assert!(out[0].result.is_ok(), "{out:?}");
    assert_eq!(
        env.mock.world().get(&table).unwrap()["properties"]["provisioningState"],
        "Succeeded",
        "reported only once the write had finished"
    );
    assert_eq!(polls("AuthorizationFailed"), 1);
    assert!(
        table_reads() >= 2,
        "the table itself was read to follow the write"
    );

    // A write that fails is reported failed through the fallback too.
    env.mock.world().fail_next_operations(1);
    let out = p
        .apply(
            &TableId(table.clone()),
            &[create("10.244.1.0/24", "10.0.0.5")],
        )
        .await;
    let err = out[0].result.as_ref().unwrap_err();
    assert_eq!(err.code, "ProvisioningStateFailed", "{err:?}");
    assert_eq!(env.mock.world().routes(&table).len(), 1);

    // NIC forwarding follows its write the same way; the refusal is remembered, so the
    // operation URL is not asked again.
    let target = p
        .resolve_nodes(std::slice::from_ref(&node.provider_id))
        .await;
    let target = target[&node.provider_id].as_ref().unwrap();
    assert_eq!(
        p.ensure_forwarding(target).await.unwrap(),
        ForwardingChange::Enabled
    );
    assert_eq!(
        env.mock.world().get(&node.nic_id).unwrap()["properties"]["provisioningState"],
        "Succeeded"
    );
    assert_eq!(polls("AuthorizationFailed"), 1);
    assert_eq!(polls("ok"), 0);
}

/// Turning forwarding on is a NIC PUT, which ARM checks against the resources the NIC links:
/// an identity without `subnets/join/action` (or `publicIPAddresses/join/action` on a NIC
/// with a public IP) is refused, and the provider says so instead of claiming success.
#[tokio::test]
async fn nic_forwarding_without_the_linked_join_actions_is_refused_and_reported() {
    let env = env(ArmConfig::default()).await;
    let (plain, public) = {
        let mut w = env.mock.world();
        let plain = w.add_vm(SUB, RG, "node-a", LOC, ipv4_nic("10.0.0.4", false));
        let public = w.add_vm(SUB, RG, "node-b", LOC, ipv4_nic("10.0.0.5", false));
        w.attach_public_ip(&public.nic_id, &public_ip("node-b"))
            .unwrap();
        w.add_route_table(SUB, RG, "rt", LOC, vec![]);
        (plain, public)
    };
    let p = provider(&env, &["k8s/rt"], "k1");
    let ids = [plain.provider_id.clone(), public.provider_id.clone()];
    let resolved = p.resolve_nodes(&ids).await;
    let targets: Vec<_> = ids.iter().map(|id| resolved[id].clone().unwrap()).collect();

    for (token, action, refused) in [
        ("no-subnet-join", SUBNET_JOIN, [true, true]),
        ("no-public-ip-join", PUBLIC_IP_JOIN, [false, true]),
    ] {
        env.mock.world().deny(token, action);
        let p = provider_with_token(&env, &["k8s/rt"], "k1", token);
        for (target, refused) in targets.iter().zip(refused) {
            let result = p.ensure_forwarding(target).await;
            if refused {
                let err = result.unwrap_err();
                assert_eq!(
                    (err.code.as_str(), err.http_status, err.kind),
                    ("LinkedAuthorizationFailed", Some(403), ErrorKind::Permanent)
                );
                assert!(err.message.contains(action), "{}", err.message);
            } else {
                assert_eq!(result.unwrap(), ForwardingChange::Enabled);
            }
        }
    }
    assert_eq!(
        env.mock
            .stats()
            .count("Microsoft.Network/networkInterfaces/write", "ok"),
        1,
        "only the NIC without a public IP, by the identity that may join its subnet"
    );
}

#[tokio::test]
async fn the_provider_calls_exactly_its_declared_operations() {
    let env = env(ArmConfig::default()).await;
    let (vm, ss) = {
        let mut w = env.mock.world();
        (
            w.add_vm(
                SUB,
                RG,
                "node-a",
                LOC,
                NicSpec {
                    ipv4: "10.0.0.4".parse().unwrap(),
                    ipv6: None,
                    ip_forwarding: false,
                },
            ),
            w.add_vmss_instance(
                SUB,
                RG,
                "pool",
                0,
                LOC,
                NicSpec {
                    ipv4: "10.0.1.4".parse().unwrap(),
                    ipv6: None,
                    ip_forwarding: true,
                },
            ),
        )
    };
    // The NIC written links its subnet and a public IP: ARM checks both join actions.
    env.mock
        .world()
        .attach_public_ip(&vm.nic_id, &public_ip("node-a"))
        .unwrap();
    let table = env.mock.world().add_route_table(SUB, RG, "rt", LOC, vec![]);
    let p = provider(&env, &["k8s/rt"], "k1");
    assert_eq!(p.operations(), OPERATIONS);
    assert!(
        LINKED_OPERATIONS.iter().all(|op| OPERATIONS.contains(op)),
        "linked actions are part of what the identity must grant"
    );

    let tables = p.discover_tables().await.unwrap();
    assert_eq!(tables, vec![TableId(table.clone())]);
    p.list_table(&tables[0]).await.unwrap();
    let resolved = p
        .resolve_nodes(&[vm.provider_id.clone(), ss.provider_id.clone()])
        .await;
    for target in resolved.values() {
        p.ensure_forwarding(target.as_ref().unwrap()).await.unwrap();
    }
    let out = p
        .apply(&tables[0], &[create("10.244.0.0/24", "10.0.0.4")])
        .await;
    assert!(out[0].result.is_ok());

    let seen: BTreeSet<String> = env
        .mock
        .stats()
        .snapshot()
        .into_keys()
        .chain(env.mock.linked_checks().snapshot().into_keys())
        .collect();
    let declared: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        seen, declared,
        "the mock saw exactly the declared operations (the linked ones as ARM's checks)"
    );
    // Linked actions are checked by ARM, never called: the provider counts the rest.
    let counted: BTreeSet<String> = p
        .counters()
        .by_action()
        .keys()
        .map(|s| s.to_string())
        .collect();
    let called: BTreeSet<String> = declared
        .iter()
        .filter(|op| !LINKED_OPERATIONS.contains(&op.as_str()))
        .cloned()
        .collect();
    assert_eq!(counted, called);
}

#[tokio::test]
async fn bad_configuration_is_refused_up_front() {
    let token = Arc::new(StaticToken::new("t"));
    let mk = |tables: Vec<String>, prefix: &str| {
        AzureProvider::new(AzureConfig::new(SUB, tables, prefix), token.clone())
    };
    assert_eq!(mk(vec![], "k1").err().unwrap().code, "InvalidConfig");
    assert_eq!(
        mk(vec!["rt".into()], "k1").err().unwrap().code,
        "InvalidConfig"
    );
    assert_eq!(
        mk(vec!["rg/rt".into()], "k1--x").err().unwrap().code,
        "InvalidConfig"
    );
    assert!(mk(vec!["rg/rt".into()], "k1").is_ok());
}

#[tokio::test]
async fn a_table_is_verified_only_once_it_is_succeeded() {
    let env = env(ArmConfig::default()).await;
    let table = env.mock.world().add_route_table(
        SUB,
        RG,
        "rt",
        LOC,
        vec![route("k1--10.244.1.0_24", "10.244.1.0/24", "10.0.0.1")],
    );
    let p = provider(&env, &[&table], "k1");
    assert_eq!(
        p.list_table(&TableId(table.clone()))
            .await
            .unwrap()
            .routes
            .len(),
        1
    );
    // Another writer's PUT is in flight: the table reads Updating.
    env.mock
        .world()
        .lock_for(&table, Duration::from_millis(300))
        .unwrap();
    let err = p.list_table(&TableId(table.clone())).await.unwrap_err();
    assert_eq!(err.code, "RouteTableNotSucceeded", "{err}");
    assert_eq!(err.kind, ErrorKind::Transient);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(p.list_table(&TableId(table)).await.is_ok());
}
