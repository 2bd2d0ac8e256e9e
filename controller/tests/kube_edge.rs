//! The Kubernetes edge against the mock API server, which enforces deploy/base's RBAC:
//! lease races (409), release → immediate takeover, 403 when a verb is missing, the
//! status writer's write-once behaviour, and the node watch surviving cut watches and 410.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cni_cloud_controller::cluster::{Fence, NodeReport, NodeRouteStatus, StatusSink};
use cni_cloud_controller::kube::lease::{LeaseElector, LeaseTiming};
use cni_cloud_controller::kube::{nodes, status};
use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig, Rbac};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn deploy_base() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/base")
}

async fn start(config: KubeMockConfig) -> (KubeMock, RunningServer, kube::Client) {
    let mock = KubeMock::new(config);
    let server = mock
        .clone()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = client_for(&mock, &server, KubeMockConfig::CONTROLLER_TOKEN).await;
    (mock, server, client)
}

async fn client_for(mock: &KubeMock, server: &RunningServer, token: &str) -> kube::Client {
    let text = mock.kubeconfig(&server.url(), token);
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn timing() -> LeaseTiming {
    LeaseTiming {
        duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    }
}

fn node(name: &str, cidr: &str) -> serde_json::Value {
    json!({"metadata": {"name": name},
           "spec": {"providerID": format!("aws:///us-east-1a/i-{name}"), "podCIDR": cidr, "podCIDRs": [cidr]},
           "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}})
}

#[tokio::test]
async fn lease_race_has_one_winner_and_release_hands_over_at_once() {
    let (mock, _server, client) =
        start(KubeMockConfig::from_deploy_dir(deploy_base()).unwrap()).await;
    let api: Api<Lease> = Api::namespaced(client.clone(), "cni-cloud");
    let mut a = LeaseElector::new(api.clone(), "cni-cloud-controller", "a", timing());
    let mut b = LeaseElector::new(api.clone(), "cni-cloud-controller", "b", timing());
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra ^ rb, "exactly one candidate wins: a={ra} b={rb}");
    let (mut leader, mut standby) = if ra { (a, b) } else { (b, a) };
    assert!(leader.fence().may_mutate(Duration::from_secs(1)));
    assert!(!standby.fence().may_mutate(Duration::ZERO));
    // The standby keeps waiting while the claim is live.
    assert!(!standby.try_acquire_or_renew().await.unwrap());
    assert!(leader.try_acquire_or_renew().await.unwrap());
    // Release: the standby takes over on its next round, without waiting out the lease.
    leader.release().await;
    assert!(!leader.fence().may_mutate(Duration::ZERO));
    let t = Instant::now();
    assert!(standby.try_acquire_or_renew().await.unwrap());
    assert!(t.elapsed() < timing().duration);
    let holders: Vec<_> = mock.lease_log().into_iter().map(|w| w.holder).collect();
    assert_eq!(
        holders.iter().filter(|h| h.is_none()).count(),
        1,
        "{holders:?}"
    );
    // A 409 was answered to the loser of the create race or of an update.
    let conflicts: u64 = mock
        .stats()
        .snapshot()
        .iter()
        .filter(|(k, _)| k.contains("leases"))
        .filter_map(|(_, o)| o.get("409"))
        .sum();
    assert!(conflicts >= 1, "{:?}", mock.stats().snapshot());
}

#[tokio::test]
async fn stale_lease_update_gets_409() {
    let (_mock, _server, client) =
        start(KubeMockConfig::from_deploy_dir(deploy_base()).unwrap()).await;
    let api: Api<Lease> = Api::namespaced(client, "cni-cloud");
    let mut a = LeaseElector::new(api.clone(), "l", "a", timing());
    assert!(a.try_acquire_or_renew().await.unwrap());
    let stale = api.get("l").await.unwrap();
    assert!(a.try_acquire_or_renew().await.unwrap());
    let err = api
        .replace("l", &Default::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected 409, got {other}"),
    }
}

#[tokio::test]
async fn missing_verb_in_rbac_is_403_and_deploy_rbac_covers_the_controller() {
    // deploy/base's Role, narrowed: no "update" on leases.
    let text = std::fs::read_to_string(deploy_base().join("controller-rbac.yaml")).unwrap();
    let mut docs = cni_cloud_mocks::kube::rbac::yaml_documents(&text).unwrap();
    for d in &mut docs {
        if d["kind"] == "Role" {
            d["rules"][0]["verbs"] = json!(["get", "create"]);
        }
    }
    let narrowed = KubeMockConfig::with_rbac(Rbac::from_objects(&docs).unwrap());
    let (_mock, _server, client) = start(narrowed).await;
    let api: Api<Lease> = Api::namespaced(client, "cni-cloud");
    let mut a = LeaseElector::new(api, "l", "a", timing());
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "create is still allowed"
    );
    match a.try_acquire_or_renew().await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("cannot update resource \"leases\""),
                "{}",
                s.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // Leases in another namespace are forbidden even with the full deploy/ RBAC.
    let (_mock, _server, client) =
        start(KubeMockConfig::from_deploy_dir(deploy_base()).unwrap()).await;
    let other: Api<Lease> = Api::namespaced(client, "kube-system");
    let err = other.get_opt("l").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
}

#[tokio::test]
async fn status_written_once_with_events_and_watch_survives_cuts_and_410() {
    let (mock, _server, client) =
        start(KubeMockConfig::from_deploy_dir(deploy_base()).unwrap()).await;
    mock.upsert_node(node("n1", "100.64.1.0/24")).unwrap();
    mock.upsert_node(node("n2", "100.64.2.0/24")).unwrap();
    let shutdown = CancellationToken::new();
    let watch = nodes::start(
        client.clone(),
        nodes::Publish::new(Duration::from_millis(50), Duration::from_millis(500)),
        shutdown.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(watch.snapshots.borrow().authoritative && watch.snapshots.borrow().nodes.len() == 2) {
        assert!(Instant::now() < deadline, "initial list never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let writer = status::KubeStatusWriter::new(client.clone(), watch.store.clone(), "replica-a");
    let reports = vec![
        NodeReport {
            node: "n1".into(),
            uid: String::new(),
            status: NodeRouteStatus::Routed,
        },
        NodeReport {
            node: "n2".into(),
            uid: String::new(),
            status: NodeRouteStatus::QuotaExceeded {
                reason: "table rtb-1: IPv4 routes 50 of 50".into(),
            },
        },
    ];
    writer.publish(&reports).await;
    writer.publish(&reports).await;
    let n1 = mock.node("n1").unwrap();
    let c = &n1["status"]["conditions"][0];
    assert_eq!(
        (
            c["type"].as_str(),
            c["status"].as_str(),
            c["reason"].as_str()
        ),
        (
            Some("NetworkUnavailable"),
            Some("False"),
            Some("RouteCreated")
        )
    );
    let n2 = mock.node("n2").unwrap();
    assert_eq!(
        n2["status"]["conditions"][0]["reason"],
        "RouteQuotaExceeded"
    );
    assert_eq!(
        n2["status"]["conditions"][0]["message"],
        "table rtb-1: IPv4 routes 50 of 50"
    );
    assert_eq!(
        mock.stats().count("patch nodes/status", "200"),
        2,
        "{:?}",
        mock.stats().snapshot()
    );
    let events = mock.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "RouteQuotaExceeded");
    assert_eq!(events[0]["regarding"]["name"], "n2");

    // Cut every watch, compact history (the re-watch gets 410), then change the world:
    // the reflector re-lists and converges.
    mock.close_watches();
    mock.compact();
    mock.delete_node("n1").unwrap();
    mock.upsert_node(node("n3", "100.64.3.0/24")).unwrap();
    mock.upsert_node(node("n2", "100.64.9.0/24")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let snap = watch.snapshots.borrow().clone();
        let names: Vec<_> = snap.nodes.iter().map(|n| n.name.as_str()).collect();
        if names == ["n2", "n3"] && snap.nodes[0].pod_cidrs == ["100.64.9.0/24"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never converged after cut + 410: {snap:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An empty list (API glitch) is published, but never as authoritative.
    let mut snaps = watch.snapshots.clone();
    mock.empty_next_lists(1);
    // A write the node watch does not see moves the resource version on, so the cut
    // watch's resume point is compacted away (410) and the reflector must re-list.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "cni-cloud");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "bump"}})).unwrap();
    leases.create(&Default::default(), &lease).await.unwrap();
    mock.compact();
    mock.close_watches();
    let snap = tokio::time::timeout(
        Duration::from_secs(10),
        snaps.wait_for(|s| s.nodes.is_empty()),
    )
    .await
    .expect("the reflector published the empty relist")
    .unwrap()
    .clone();
    assert!(snap.listed);
    assert!(!snap.authoritative, "{snap:?}");
    shutdown.cancel();
}

fn routed(node: &str, uid: &str) -> NodeReport {
    NodeReport {
        node: node.into(),
        uid: uid.into(),
        status: NodeRouteStatus::Routed,
    }
}

fn missing(node: &str, uid: &str) -> NodeReport {
    NodeReport {
        node: node.into(),
        uid: uid.into(),
        status: NodeRouteStatus::Pending {
            reason: "route missing".into(),
        },
    }
}

fn condition_status(mock: &KubeMock, name: &str) -> Option<String> {
    let n = mock.node(name)?;
    n["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "NetworkUnavailable")
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

async fn wait_for_condition(
    mock: &KubeMock,
    name: &str,
    store_sees: impl Fn() -> bool,
    want: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(condition_status(mock, name).as_deref() == Some(want) && store_sees()) {
        assert!(Instant::now() < deadline, "{name} never became {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_leader_back_after_another_wrote_corrects_the_node_and_recreated_nodes_are_new() {
    let (mock, _server, client) =
        start(KubeMockConfig::from_deploy_dir(deploy_base()).unwrap()).await;
    mock.upsert_node(node("n1", "100.64.1.0/24")).unwrap();
    let shutdown = CancellationToken::new();
    let watch = nodes::start(
        client.clone(),
        nodes::Publish::new(Duration::from_millis(20), Duration::from_millis(100)),
        shutdown.clone(),
    );
    let mut synced = watch.synced.clone();
    synced.wait_for(|s| *s).await.unwrap();
    let uid = mock.node("n1").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let store_has = |want: &'static str| {
        let store = watch.store.clone();
        move || {
            store
                .get(&kube::runtime::reflector::ObjectRef::new("n1"))
                .and_then(|n| status::current_condition(&n).map(|c| c.status == want))
                .unwrap_or(false)
        }
    };

    // A writes False; B (another replica) then writes True; A leads again.
    let a = status::KubeStatusWriter::new(client.clone(), watch.store.clone(), "replica-a");
    let b = status::KubeStatusWriter::new(client.clone(), watch.store.clone(), "replica-b");
    a.publish(&[routed("n1", &uid)]).await;
    wait_for_condition(&mock, "n1", store_has("False"), "False").await;
    b.publish(&[missing("n1", &uid)]).await;
    wait_for_condition(&mock, "n1", store_has("True"), "True").await;
    a.leadership_gained().await;
    a.publish(&[routed("n1", &uid)]).await;
    assert_eq!(
        condition_status(&mock, "n1").as_deref(),
        Some("False"),
        "A must correct what B wrote"
    );
    // Even without the leadership reset, A compares with the Node as it is now.
    b.publish(&[missing("n1", &uid)]).await;
    wait_for_condition(&mock, "n1", store_has("True"), "True").await;
    a.publish(&[routed("n1", &uid)]).await;
    assert_eq!(condition_status(&mock, "n1").as_deref(), Some("False"));

    // The Node is deleted and recreated under the same name (no condition): A writes it.
    mock.delete_node("n1").unwrap();
    mock.upsert_node(node("n1", "100.64.1.0/24")).unwrap();
    let uid2 = mock.node("n1").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(uid, uid2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while watch
        .store
        .get(&kube::runtime::reflector::ObjectRef::new("n1"))
        .and_then(|n| n.metadata.uid.clone())
        != Some(uid2.clone())
    {
        assert!(Instant::now() < deadline, "reflector never saw the new n1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A report about the old incarnation writes nothing to the new one.
    let patches = mock.stats().count("patch nodes/status", "200");
    a.publish(&[routed("n1", &uid)]).await;
    assert_eq!(mock.stats().count("patch nodes/status", "200"), patches);
    a.publish(&[routed("n1", &uid2)]).await;
    assert_eq!(condition_status(&mock, "n1").as_deref(), Some("False"));

    // A failed read (Unknown) never writes.
    let patches = mock.stats().count("patch nodes/status", "200");
    a.publish(&[NodeReport {
        node: "n1".into(),
        uid: uid2.clone(),
        status: NodeRouteStatus::Unknown {
            reason: "DescribeInstances throttled".into(),
        },
    }])
    .await;
    assert_eq!(mock.stats().count("patch nodes/status", "200"), patches);
    shutdown.cancel();
}

#[tokio::test]
async fn shutdown_releases_so_the_standby_leads_within_a_retry_period() {
    let (_mock, _server, client) =
        start(KubeMockConfig::from_deploy_dir(deploy_base()).unwrap()).await;
    let api: Api<Lease> = Api::namespaced(client, "cni-cloud");
    let a = LeaseElector::new(api.clone(), "run-lease", "a", timing());
    let mut a_leads = a.subscribe();
    let a_stop = CancellationToken::new();
    let a_task = tokio::spawn(a.run(a_stop.clone()));
    tokio::time::timeout(Duration::from_secs(5), a_leads.wait_for(|l| *l))
        .await
        .expect("a becomes leader")
        .unwrap();
    let b = LeaseElector::new(api, "run-lease", "b", timing());
    let b_fence = b.fence();
    let mut b_leads = b.subscribe();
    let b_stop = CancellationToken::new();
    let b_task = tokio::spawn(b.run(b_stop.clone()));
    tokio::time::sleep(timing().retry_period * 3).await;
    assert!(!*b_leads.borrow(), "b must not lead while a renews");
    let stopped = Instant::now();
    a_stop.cancel();
    a_task.await.unwrap();
    tokio::time::timeout(timing().duration, b_leads.wait_for(|l| *l))
        .await
        .expect("b takes over before the lease would have expired")
        .unwrap();
    assert!(
        stopped.elapsed() <= timing().retry_period * 2,
        "took {:?}",
        stopped.elapsed()
    );
    assert!(b_fence.may_mutate(Duration::from_millis(500)));
    b_stop.cancel();
    b_task.await.unwrap();
    assert!(
        !b_fence.may_mutate(Duration::ZERO),
        "stopping drops the fence at once"
    );
}
