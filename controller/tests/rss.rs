//! Memory at scale: `cni-cloud-controller run` watching 5,000 realistic Nodes (~10 KB each
//! as kubelets report them: images, managedFields, labels, annotations, conditions),
//! leading, writing every Node's condition and an Event each. The node cache keeps only
//! what routing and the status writer read, so the same cluster with bare Nodes costs
//! almost the same: the test compares the two in the same binary. With the release build
//! (`CNI_CLOUD_REPLICA_BIN=target/release/cni-cloud-controller`) it also holds the
//! absolute goal, peak RSS < 64 MiB (measured: 49 MiB).

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const NODES: u32 = match option_env!("RSS_NODES") {
    Some(_) => 10,
    None => 5_000,
};
const LIMIT_KIB: u64 = 64 * 1024;
/// What 10 KB Nodes may cost over bare ones (same count): the cache strips them.
const SIZE_COST_KIB: u64 = 8 * 1024;

/// A Node the size kubelets make them.
fn realistic_node(i: u32) -> Value {
    let mut n = common::node_json(i, &common::cidr(i));
    let images: Vec<Value> = (0..40)
        .map(|k| {
            json!({"names": [format!("registry.example.com/team-{k}/service-{k}@sha256:{:064x}", k * 7919 + i),
                             format!("registry.example.com/team-{k}/service-{k}:v1.{k}.{i}")],
                   "sizeBytes": 100_000_000 + k})
        })
        .collect();
    n["metadata"]["labels"] = json!({
        "kubernetes.io/hostname": format!("node-{i:03}"),
        "topology.kubernetes.io/zone": "us-east-1a",
        "node.kubernetes.io/instance-type": "m7i.2xlarge",
        "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
    });
    n["metadata"]["annotations"] = json!({
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
    });
    n["metadata"]["managedFields"] = json!([
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}, "f:images": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:podCIDR": {}, "f:podCIDRs": {}}}}
    ]);
    n["status"]["images"] = json!(images);
    n["status"]["capacity"] = json!({"cpu": "8", "memory": "32Gi", "pods": "110"});
    n["status"]["allocatable"] = json!({"cpu": "7910m", "memory": "31Gi", "pods": "110"});
    n["status"]["nodeInfo"] = json!({"kubeletVersion": "v1.33.5", "containerRuntimeVersion": "containerd://2.1.4",
        "kernelVersion": "6.8.0", "osImage": "Ubuntu 24.04", "machineID": format!("{i:032x}"),
        "systemUUID": format!("{i:032x}"), "bootID": format!("{i:032x}"), "architecture": "amd64",
        "operatingSystem": "linux", "kubeProxyVersion": "", "containerRuntime": ""});
    n["status"]["conditions"] = json!(
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
            .iter()
            .map(
                |t| json!({"type": t, "status": if *t == "Ready" {"True"} else {"False"},
                        "reason": format!("Kubelet{t}"), "message": format!("kubelet reports {t}"),
                        "lastHeartbeatTime": "2026-11-30T00:00:00Z",
                        "lastTransitionTime": "2026-11-30T00:00:00Z"})
            )
            .collect::<Vec<_>>()
    );
    n
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing in /proc/{pid}/status"))
}

/// Peak RSS (KiB) of a replica that led through `NODES` Nodes made by `make`.
async fn peak_rss(make: fn(u32) -> Value) -> u64 {
    let cloud = common::cloud(0, common::REPLICA_TIME_SCALE).await;
    let (kube, kube_server) = common::kube(0).await;
    for i in 0..NODES {
        kube.upsert_node(make(i)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = common::kubeconfig_file(&kube, &kube_server, dir.path());
    let replica = common::spawn("rss", &kubeconfig, &cloud.server.url(), "AKIDRSS");
    let pid = replica.child.id();
    // It took the Lease and wrote NetworkUnavailable on every Node (no instance exists, so
    // every Node is reported, with an Event each: the costly case).
    let deadline = Instant::now() + Duration::from_secs(120);
    while common::holder(&kube).as_deref() != Some("rss")
        || kube.stats().count("patch nodes/status", "200") < u64::from(NODES)
    {
        assert!(
            Instant::now() < deadline,
            "the controller never got through the nodes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    status_kib(pid, "VmHWM:")
}

fn bare_node(i: u32) -> Value {
    common::node_json(i, &common::cidr(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_size_costs_the_controller_almost_nothing() {
    let size = serde_json::to_vec(&realistic_node(1)).unwrap().len();
    assert!(
        size >= 9_000,
        "a realistic Node is ~10 KB, this one {size} B"
    );
    let bare = peak_rss(bare_node).await;
    let realistic = peak_rss(realistic_node).await;
    let mib = |k: u64| k as f64 / 1024.0;
    eprintln!(
        "{NODES} Nodes: peak RSS {:.1} MiB bare, {:.1} MiB at {size} B each",
        mib(bare),
        mib(realistic)
    );
    assert!(
        realistic < bare + SIZE_COST_KIB,
        "10 KB Nodes cost {:.1} MiB more than bare ones",
        mib(realistic.saturating_sub(bare))
    );
    if std::env::var_os("CNI_CLOUD_REPLICA_BIN").is_some() {
        assert!(
            realistic < LIMIT_KIB,
            "peak RSS {:.1} MiB ≥ 64 MiB",
            mib(realistic)
        );
    }
}
