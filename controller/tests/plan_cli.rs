//! `cni-cloud-controller plan` against the mock EC2: the diff, the JSON form, and the exit
//! code (2 while changes are pending, 0 once converged). It never writes.

mod common;

use std::process::Command;

use cni_cloud_mocks::ec2::{Origin, Target};
use serde_json::{Value, json};

use common::{TABLE, cidr, eni_id, instance_id};

fn plan(url: &str, nodes: &std::path::Path, output: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cni-cloud-controller"))
        .args(["plan", "--cloud", "aws", "--cluster-name", common::CLUSTER])
        .args(["--cluster-cidrs", "100.64.0.0/10", "--aws-endpoint", url])
        .arg("--nodes-file")
        .arg(nodes)
        .args(["--output", output])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDPLAN")
        .env("AWS_SECRET_ACCESS_KEY", "plan")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_diff_and_exits_2_until_converged() {
    let cloud = common::cloud(3, 50.0).await;
    let url = cloud.server.url();
    let dir = tempfile::tempdir().unwrap();
    let nodes_file = dir.path().join("nodes.json");
    let nodes: Vec<Value> = (0..3)
        .map(|i| {
            json!({"name": format!("node-{i:03}"), "uid": format!("u{i}"), "created_unix": i,
                   "provider_id": format!("aws:///us-east-1a/{}", instance_id(i)),
                   "pod_cidrs": [cidr(i)], "internal_ips": []})
        })
        .collect();
    std::fs::write(&nodes_file, serde_json::to_string(&nodes).unwrap()).unwrap();

    let (code, out, err) = {
        let (u, f) = (url.clone(), nodes_file.clone());
        tokio::task::spawn_blocking(move || plan(&u, &f, "text"))
            .await
            .unwrap()
    };
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        out.contains(&format!("+ {} -> {}", cidr(0), eni_id(0))),
        "{out}"
    );
    assert!(out.contains("3 change(s) pending"), "{out}");

    let (code, out, err) = {
        let (u, f) = (url.clone(), nodes_file.clone());
        tokio::task::spawn_blocking(move || plan(&u, &f, "json"))
            .await
            .unwrap()
    };
    assert_eq!(code, 2, "{err}");
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["tables"][0]["table"], TABLE);
    assert_eq!(p["tables"][0]["changes"].as_array().unwrap().len(), 3);
    // A dry run: nothing was written.
    assert!(cloud.ec2.mutations().is_empty());

    cloud.ec2.with_world(|w| {
        for i in 0..3 {
            w.insert_route(
                TABLE,
                cidr(i).parse().unwrap(),
                Target::NetworkInterface(eni_id(i)),
                Origin::CreateRoute,
                std::time::Instant::now(),
            )
            .unwrap();
        }
    });
    let (code, out, err) = {
        let (u, f) = (url.clone(), nodes_file.clone());
        tokio::task::spawn_blocking(move || plan(&u, &f, "text"))
            .await
            .unwrap()
    };
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("converged: nothing to change"), "{out}");
}

#[test]
fn plan_rejects_bad_cidrs_before_calling_anything() {
    let out = Command::new(env!("CARGO_BIN_EXE_cni-cloud-controller"))
        .args(["plan", "--cloud", "aws", "--cluster-name", "x"])
        .args([
            "--cluster-cidrs",
            "100.64.0.1/10",
            "--nodes-file",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean 100.64.0.0/10"), "{err}");
}
