//! The mock Kubernetes API on the wire: authentication, RBAC 403 Status bodies, watch
//! streams with 410 after compaction, the two patch types on nodes/status, the admin
//! endpoints, and the CLI's kubeconfig.

mod kube_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cni_cloud_mocks::kube::KubeMockConfig;
use kube_support::{deploy_base, http, start};
use serde_json::{Value, json};

const CTL: &str = KubeMockConfig::CONTROLLER_TOKEN;
const NODE: &str = KubeMockConfig::NODE_TOKEN;

#[tokio::test]
async fn unknown_token_is_401_and_missing_grant_is_403_status() {
    let (mock, server) = start().await;
    mock.upsert_node(json!({"metadata": {"name": "n1"}}))
        .unwrap();
    let url = format!("{}/api/v1/nodes", server.url());
    let r = http().get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The installer may get its node but not list nodes.
    let r = http()
        .get(format!("{url}/n1"))
        .bearer_auth(NODE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http().get(&url).bearer_auth(NODE).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(body["code"], 403);
    assert!(
        body["message"].as_str().unwrap().contains(
            "User \"system:serviceaccount:cni-cloud:cni-cloud-node\" cannot list resource \"nodes\""
        ),
        "{body}"
    );
    // The controller may patch status but not the node itself.
    let r = http()
        .patch(format!("{url}/n1"))
        .bearer_auth(CTL)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"x":"y"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn watch_streams_changes_and_answers_410_after_compaction() {
    let (mock, server) = start().await;
    let list: Value = http()
        .get(format!("{}/api/v1/nodes", server.url()))
        .bearer_auth(CTL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    mock.upsert_node(json!({"metadata": {"name": "n1"}}))
        .unwrap();
    mock.delete_node("n1").unwrap();
    let body = http()
        .get(format!(
            "{}/api/v1/nodes?watch=true&resourceVersion={rv}&timeoutSeconds=1",
            server.url()
        ))
        .bearer_auth(CTL)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let types: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["ADDED", "DELETED"]);
    mock.compact();
    let body = http()
        .get(format!(
            "{}/api/v1/nodes?watch=1&resourceVersion={rv}&timeoutSeconds=1",
            server.url()
        ))
        .bearer_auth(CTL)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ev: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
}

#[tokio::test]
async fn strategic_merge_keeps_other_conditions_json_merge_replaces() {
    let (mock, server) = start().await;
    mock.upsert_node(json!({"metadata": {"name": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
    let url = format!("{}/api/v1/nodes/n1/status", server.url());
    let patch = json!({"status": {"conditions": [{"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated"}]}});
    let send = |ctype: &'static str| {
        http()
            .patch(&url)
            .bearer_auth(CTL)
            .header("content-type", ctype)
            .body(patch.to_string())
            .send()
    };
    assert_eq!(
        send("application/strategic-merge-patch+json")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        mock.node("n1").unwrap()["status"]["conditions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        send("application/merge-patch+json").await.unwrap().status(),
        200
    );
    assert_eq!(
        mock.node("n1").unwrap()["status"]["conditions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        send("application/json-patch+json").await.unwrap().status(),
        415
    );
}

#[tokio::test]
async fn admin_empty_list_then_normal() {
    let (mock, server) = start().await;
    mock.upsert_node(json!({"metadata": {"name": "n1"}}))
        .unwrap();
    let admin = format!("{}/_mock/empty-lists", server.url());
    assert_eq!(
        http()
            .post(&admin)
            .body(r#"{"count":1}"#)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let list = || async {
        http()
            .get(format!("{}/api/v1/nodes", server.url()))
            .bearer_auth(CTL)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(list().await, 0);
    assert_eq!(list().await, 1);
    assert_eq!(
        http().post(&admin).body("x").send().await.unwrap().status(),
        400
    );
}

#[test]
fn cli_prints_kubeconfig_and_serves_seeded_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("nodes.yaml");
    std::fs::write(&seed, "metadata:\n  name: a\n---\nmetadata:\n  name: b\n").unwrap();
    let kc_path = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cni-cloud-mocks"))
        .args(["kube", "--rbac"])
        .arg(deploy_base())
        .arg("--seed")
        .arg(&seed)
        .arg("--kubeconfig-out")
        .arg(&kc_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(u) = line.trim().strip_prefix("listening on ") {
            url = Some(u.to_owned());
            break;
        }
        line.clear();
    }
    let url = url.expect("listening line");
    let kc = std::fs::read_to_string(&kc_path).unwrap();
    assert!(kc.contains(&format!("server: {url}")), "{kc}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            http()
                .get(format!("{url}/api/v1/nodes"))
                .bearer_auth(CTL)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["items"]
                .as_array()
                .unwrap()
                .len()
        })
        .await
        .unwrap()
    });
    assert_eq!(n, 2);
    child.kill().unwrap();
    child.wait().unwrap();
}
