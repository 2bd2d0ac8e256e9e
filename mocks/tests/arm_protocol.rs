//! The mock ARM's wire behaviour, checked with plain HTTP: auth, api-version, error bodies,
//! rate-limit headers, etags, locks, LROs, quota, routes endpoints and the seed file.

use std::time::Duration;

use cni_cloud_mocks::arm::{ArmConfig, ArmMock, Bucket, Seed};
use serde_json::{Value, json};

const API: &str = "api-version=2024-05-01";
const TABLE: &str =
    "/subscriptions/sub1/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt";

async fn start(
    config: ArmConfig,
) -> (
    std::sync::Arc<ArmMock>,
    cni_cloud_mocks::common::RunningServer,
) {
    let mock = ArmMock::new(config).unwrap();
    let server = mock.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (mock, server)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn body(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

fn table_body(routes: Value) -> Value {
    json!({"location": "westeurope", "properties": {"routes": routes}})
}

#[tokio::test]
async fn auth_and_api_version_are_required_with_arm_error_bodies() {
    let (_mock, server) = start(ArmConfig::default()).await;
    let url = format!("{}{TABLE}?{API}", server.url());
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(body(resp).await["error"]["code"], "AuthenticationFailed");

    let resp = client()
        .get(format!("{}{TABLE}", server.url()))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        body(resp).await["error"]["code"],
        "MissingApiVersionParameter"
    );

    let resp = client().get(&url).bearer_auth("t").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()
            .contains_key("x-ms-ratelimit-remaining-subscription-reads")
    );
    assert!(resp.headers().contains_key("x-ms-request-id"));
    let b = body(resp).await;
    assert_eq!(b["error"]["code"], "ResourceNotFound");
    assert!(b["error"]["message"].as_str().unwrap().contains("rt"));
}

#[tokio::test]
async fn put_runs_a_long_running_operation_with_etags_and_a_write_lock() {
    let (_mock, server) = start(ArmConfig {
        time_scale: 20.0,
        lro_duration: Duration::from_secs(4), // 200 ms wall
        ..ArmConfig::default()
    })
    .await;
    let url = format!("{}{TABLE}?{API}", server.url());
    let routes = json!([{"name": "r1", "properties": {"addressPrefix": "10.1.0.0/16", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.0.4"}}]);
    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .json(&table_body(routes.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(
        resp.headers()
            .contains_key("x-ms-ratelimit-remaining-subscription-writes")
    );
    let op_url = resp.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(op_url.contains("/providers/Microsoft.Network/locations/westeurope/operations/"));
    // ARM's fixed hint, not the time the operation has left.
    assert_eq!(resp.headers()["retry-after"], "10");
    let created = body(resp).await;
    assert_eq!(created["properties"]["provisioningState"], "Updating");
    let etag = created["etag"].as_str().unwrap().to_owned();

    // A second write while the first runs: 409 AnotherOperationInProgress, no Retry-After
    // (as ARM sends it).
    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .json(&table_body(routes.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert!(!resp.headers().contains_key("retry-after"));
    assert_eq!(
        body(resp).await["error"]["code"],
        "AnotherOperationInProgress"
    );

    let status = body(client().get(&op_url).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(status["status"], "InProgress");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let status = body(client().get(&op_url).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(status["status"], "Succeeded");
    let table = body(client().get(&url).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(table["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        table["properties"]["routes"][0]["id"],
        format!("{TABLE}/routes/r1")
    );

    // Stale etag → 412; current etag → 200 (an update).
    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .header("if-match", "W/\"stale\"")
        .json(&table_body(json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    assert_eq!(body(resp).await["error"]["code"], "PreconditionFailed");
    assert_eq!(
        etag,
        table["etag"].as_str().unwrap(),
        "no write happened since"
    );
    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .header("if-match", &etag)
        .json(&table_body(json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn quota_validation_and_routes_endpoints() {
    let (mock, server) = start(ArmConfig {
        lro_duration: Duration::ZERO,
        route_limit: 3,
        ..ArmConfig::default()
    })
    .await;
    let url = format!("{}{TABLE}?{API}", server.url());
    let many: Vec<Value> = (0..4)
        .map(|i| json!({"name": format!("r{i}"), "properties": {"addressPrefix": format!("10.{i}.0.0/16"), "nextHopType": "None"}}))
        .collect();
    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .json(&table_body(json!(many)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        body(resp).await["error"]["code"],
        "RouteTableRouteLimitExceeded"
    );
    let bad_name = json!([{"name": "-x", "properties": {"addressPrefix": "10.0.0.0/16", "nextHopType": "None"}}]);
    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .json(&table_body(bad_name))
        .send()
        .await
        .unwrap();
    assert_eq!(body(resp).await["error"]["code"], "InvalidResourceName");
    assert!(
        mock.world().get(TABLE).is_none(),
        "refused writes create nothing"
    );

    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .json(&table_body(json!(many[..3])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let routes_url = format!("{}{TABLE}/routes?{API}", server.url());
    let list = body(
        client()
            .get(&routes_url)
            .bearer_auth("t")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 3);
    // One more route through the routes endpoint is over the limit.
    let r3 = format!("{}{TABLE}/routes/r3?{API}", server.url());
    let resp = client()
        .put(&r3)
        .bearer_auth("t")
        .json(&many[3])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let r0 = format!("{}{TABLE}/routes/r0?{API}", server.url());
    let resp = client().delete(&r0).bearer_auth("t").send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert!(resp.headers().contains_key("location"));
    assert!(
        resp.headers()
            .contains_key("x-ms-ratelimit-remaining-subscription-deletes")
    );
    let resp = client().delete(&r0).bearer_auth("t").send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = client()
        .put(&r3)
        .bearer_auth("t")
        .json(&many[3])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = body(client().get(&r3).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(got["properties"]["addressPrefix"], "10.3.0.0/16");
    let tables = body(
        client()
            .get(format!("{}/subscriptions/sub1/resourceGroups/rg/providers/Microsoft.Network/routeTables?{API}", server.url()))
            .bearer_auth("t")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tables["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn token_buckets_throttle_with_429_and_retry_after() {
    let (mock, server) = start(ArmConfig {
        reads: Bucket {
            burst: 2,
            per_second: 1.0,
        },
        ..ArmConfig::default()
    })
    .await;
    let url = format!("{}{TABLE}?{API}", server.url());
    for _ in 0..2 {
        assert_eq!(
            client()
                .get(&url)
                .bearer_auth("t")
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    let resp = client().get(&url).bearer_auth("t").send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        resp.headers()["x-ms-ratelimit-remaining-subscription-reads"],
        "0"
    );
    assert_eq!(
        body(resp).await["error"]["code"],
        "SubscriptionRequestsThrottled"
    );
    let stats = body(
        client()
            .get(format!("{}/_mock/stats", server.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stats["Microsoft.Network/routeTables/read"]["throttled"], 1);
    assert_eq!(mock.stats().total("throttled"), 1);
}

#[tokio::test]
async fn seed_file_builds_state_served_by_get_and_state_endpoint() {
    let seed: Seed = serde_json::from_value(json!({
        "routeTables": [{"subscription": "sub1", "resourceGroup": "rg", "name": "rt",
            "routes": [{"name": "ops", "properties": {"addressPrefix": "192.168.0.0/16", "nextHopType": "VirtualNetworkGateway"}}]}],
        "virtualMachines": [{"subscription": "sub1", "resourceGroup": "rg", "name": "node-a", "ipv4": "10.0.0.4", "ipv6": "fd00::4"}],
        "scaleSetInstances": [{"subscription": "sub1", "resourceGroup": "rg", "scaleSet": "pool", "instance": 3, "ipv4": "10.0.1.4", "ipForwarding": true}]
    }))
    .unwrap();
    assert!(
        serde_json::from_value::<Seed>(json!({"tables": []})).is_err(),
        "unknown keys are refused"
    );
    let (mock, server) = start(ArmConfig::default()).await;
    seed.apply(&mut mock.world()).unwrap();
    let get = |path: String| {
        let url = format!("{}{path}?{API}", server.url());
        async move { client().get(url).bearer_auth("t").send().await.unwrap() }
    };
    let table = body(get(TABLE.into()).await).await;
    assert_eq!(table["properties"]["routes"][0]["name"], "ops");
    let vm = body(get("/subscriptions/sub1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/node-a".into()).await).await;
    let nic_id = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let nic = body(get(nic_id).await).await;
    assert_eq!(nic["properties"]["enableIPForwarding"], false);
    assert_eq!(
        nic["properties"]["ipConfigurations"][1]["properties"]["privateIPAddress"],
        "fd00::4"
    );
    let nics = body(get("/subscriptions/sub1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/3/networkInterfaces".into()).await).await;
    assert_eq!(nics["value"][0]["properties"]["enableIPForwarding"], true);
    let state = body(
        client()
            .get(format!("{}/_mock/state", server.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(state["resources"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_caller_without_the_operations_read_gets_403_on_polling_but_reads_the_resource() {
    let (mock, server) = start(ArmConfig {
        time_scale: 20.0,
        lro_duration: Duration::from_secs(2), // 100 ms wall
        ..ArmConfig::default()
    })
    .await;
    mock.world()
        .deny("scoped", "Microsoft.Network/locations/operations/read");
    let url = format!("{}{TABLE}?{API}", server.url());
    let resp = client()
        .put(&url)
        .bearer_auth("scoped")
        .json(&table_body(json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "the write itself is allowed");
    let op_url = resp.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_owned();
    let resp = client()
        .get(&op_url)
        .bearer_auth("scoped")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let err = body(resp).await["error"].clone();
    assert_eq!(err["code"], "AuthorizationFailed");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(
            "does not have authorization to perform action 'Microsoft.Network/locations/operations/read' over scope '/subscriptions/sub1/providers/Microsoft.Network/locations/westeurope/operations/"
        ),
        "{message}"
    );
    // Another caller may poll; the refused one can still follow the resource itself.
    let status = body(client().get(&op_url).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(status["status"], "InProgress");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let table = body(
        client()
            .get(&url)
            .bearer_auth("scoped")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(table["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        mock.stats().count(
            "Microsoft.Network/locations/operations/read",
            "AuthorizationFailed"
        ),
        1
    );
}

#[tokio::test]
async fn a_nic_write_needs_join_on_its_subnet_and_public_ip_like_arm_linked_authorization() {
    use cni_cloud_mocks::arm::{NicSpec, PUBLIC_IP_JOIN, SUBNET_JOIN};
    let (mock, server) = start(ArmConfig {
        lro_duration: Duration::ZERO,
        ..ArmConfig::default()
    })
    .await;
    let node = mock.world().add_vm(
        "sub1",
        "rg",
        "node-a",
        "westeurope",
        NicSpec {
            ipv4: "10.0.0.4".parse().unwrap(),
            ipv6: None,
            ip_forwarding: false,
        },
    );
    let public_ip = "/subscriptions/sub1/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/node-a";
    {
        let mut w = mock.world();
        w.deny("no-subnet", SUBNET_JOIN);
        w.deny("no-public-ip", PUBLIC_IP_JOIN);
    }
    let url = format!("{}{}?{API}", server.url(), node.nic_id);
    let put = |token: &'static str, nic: Value| {
        let url = url.clone();
        async move {
            let resp = client()
                .put(&url)
                .bearer_auth(token)
                .json(&nic)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), body(resp).await)
        }
    };
    let mut nic = mock.world().get(&node.nic_id).unwrap();
    nic["properties"]["enableIPForwarding"] = json!(true);
    let subnet = nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, err) = put("no-subnet", nic.clone()).await;
    assert_eq!(status, 403);
    assert_eq!(err["error"]["code"], "LinkedAuthorizationFailed");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "has permission to perform action 'Microsoft.Network/networkInterfaces/write' on scope '{}'; however, it does not have permission to perform action '{SUBNET_JOIN}' on the linked scope(s) '{subnet}' or the linked scope(s) are invalid.",
            node.nic_id
        )),
        "{message}"
    );
    assert_eq!(
        mock.world().get(&node.nic_id).unwrap()["properties"]["enableIPForwarding"],
        false,
        "a refused write changes nothing"
    );
    // Without a public IP on the NIC, that action is not needed.
    let (status, _) = put("no-public-ip", nic.clone()).await;
    assert_eq!(status, 200);

    mock.world()
        .attach_public_ip(&node.nic_id, public_ip)
        .unwrap();
    let mut nic = mock.world().get(&node.nic_id).unwrap();
    nic["properties"]["enableIPForwarding"] = json!(true);
    let (status, err) = put("no-public-ip", nic.clone()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("LinkedAuthorizationFailed"))
    );
    assert!(err["error"]["message"].as_str().unwrap().contains(&format!(
        "'{PUBLIC_IP_JOIN}' on the linked scope(s) '{public_ip}'"
    )));
    let (status, _) = put("t", nic).await;
    assert_eq!(status, 200);
    // The linked checks are counted apart from the requests: what the identity must grant.
    let stats = mock.linked_checks();
    assert_eq!(stats.count(SUBNET_JOIN, "ok"), 3);
    assert_eq!(stats.count(SUBNET_JOIN, "LinkedAuthorizationFailed"), 1);
    assert_eq!(stats.count(PUBLIC_IP_JOIN, "ok"), 1);
    assert_eq!(stats.count(PUBLIC_IP_JOIN, "LinkedAuthorizationFailed"), 1);
    assert_eq!(mock.stats().count(SUBNET_JOIN, "ok"), 0, "not a request");
}

#[tokio::test]
async fn read_faults_fail_resource_gets_until_switched_off() {
    let (mock, server) = start(ArmConfig::default()).await;
    let url = format!("{}{TABLE}?{API}", server.url());
    let resp = client()
        .put(&url)
        .bearer_auth("t")
        .json(&table_body(json!([])))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    mock.set_read_faults(1.0);
    let resp = client().get(&url).bearer_auth("t").send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(body(resp).await["error"]["code"], "InternalServerError");
    assert_eq!(mock.read_faults_injected(), 1);
    mock.set_read_faults(0.0);
    let resp = client().get(&url).bearer_auth("t").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
