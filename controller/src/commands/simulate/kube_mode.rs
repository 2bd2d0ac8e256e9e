//! `simulate --kube`: the same generated cluster, but driven through the mock Kubernetes
//! API (which enforces deploy/base's RBAC) by `--replicas` separate `cni-cloud-controller
//! run` processes competing for the Lease; `--kill-leader-at F` SIGKILLs the leader once a
//! share F of the routes is in. Lease timing and pacing are scaled like everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::time::Instant;

use cni_cloud_mocks::kube::rbac::yaml_documents;
use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig, Rbac};

use super::args::SimulateArgs;
use super::aws::AwsSim;
use super::cloud::{Judgement, SimCloud};
use super::cluster::SimCluster;
use super::progress::Progress;
use super::report::{Inspection, KubeSummary};
use crate::kube::lease::LeaseTiming;

const LEASE_NAME: &str = "cni-cloud-controller";
const LEASE_NAMESPACE: &str = "cni-cloud";

struct Replica {
    identity: String,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

fn holder(kube: &KubeMock) -> Option<String> {
    kube.lease(LEASE_NAMESPACE, LEASE_NAME)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

/// deploy/base's RBAC, built into the binary: what the mock API enforces.
const DEPLOY_RBAC: [&str; 2] = [
    include_str!("../../../../deploy/base/controller-rbac.yaml"),
    include_str!("../../../../deploy/base/installer-rbac.yaml"),
];

/// The RBAC the mock API enforces: deploy/base's as built in, or `--deploy-dir`'s.
fn rbac(args: &SimulateArgs) -> anyhow::Result<Rbac> {
    let Some(dir) = &args.deploy_dir else {
        let mut docs = Vec::new();
        for text in DEPLOY_RBAC {
            docs.extend(yaml_documents(text)?);
        }
        return Rbac::from_objects(&docs);
    };
    if !dir.join("kustomization.yaml").exists() {
        bail!(
            "{} holds no deploy/base (its RBAC is what the mock API enforces)",
            dir.display()
        );
    }
    Rbac::load(&[dir])
}

fn spawn(
    identity: String,
    kubeconfig: &Path,
    ec2_url: &str,
    args: &SimulateArgs,
    timing: LeaseTiming,
) -> anyhow::Result<Replica> {
    let secs = |d: Duration| format!("{}ms", d.as_millis().max(1));
    let child = Command::new(std::env::current_exe().context("locating this binary")?)
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--identity", &identity, "--metrics-addr", "127.0.0.1:0"])
        .args(["--lease-duration", &secs(timing.duration)])
        .args(["--renew-deadline", &secs(timing.renew_deadline)])
        .args(["--retry-period", &secs(timing.retry_period)])
        .args([
            "--node-debounce",
            &secs(Duration::from_millis(500).div_f64(args.time_scale)),
        ])
        .args([
            "--resync",
            &secs(Duration::from_secs(60).div_f64(args.time_scale)),
        ])
        .env("CNI_CLOUD_CLOUD", "aws")
        .env("CNI_CLOUD_CLUSTER_NAME", "sim")
        .env("CNI_CLOUD_CLUSTER_CIDRS", "100.64.0.0/10,fd00:10:244::/48")
        .env(
            "CNI_CLOUD_ROUTE_LIMIT",
            args.route_limit.unwrap_or(1000).to_string(),
        )
        .env("CNI_CLOUD_AWS_ENDPOINT", ec2_url)
        .env("CNI_CLOUD_TIME_SCALE", args.time_scale.to_string())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATE")
        .env("AWS_SECRET_ACCESS_KEY", "simulate")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a controller replica")?;
    Ok(Replica { identity, child })
}

/// What the Node's condition must say, given the cloud's state.
fn condition_correct(
    node: &serde_json::Value,
    routed: bool,
    blocked: bool,
    conflicted: bool,
) -> bool {
    let Some(c) = node["status"]["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == crate::kube::status::CONDITION)
    }) else {
        return false;
    };
    // A conflict is reported whether or not the node's own route could be written.
    let want = if conflicted {
        ("True", "RouteConflict")
    } else if routed {
        ("False", "RouteCreated")
    } else if blocked {
        ("True", "RouteQuotaExceeded")
    } else {
        return false;
    };
    c["status"] == want.0 && c["reason"] == want.1
}

pub struct KubeOutcome {
    pub converged: bool,
    pub seconds: f64,
    pub mutating_first: u64,
    pub summary: KubeSummary,
    /// What the Nodes said at the end.
    pub reported: Conditions,
    pub state: Inspection,
}

pub async fn run(
    args: &SimulateArgs,
    cluster: &SimCluster,
    sim: &AwsSim,
    progress: &Progress,
) -> anyhow::Result<KubeOutcome> {
    let kube = KubeMock::new(KubeMockConfig::with_rbac(rbac(args)?));
    let kube_server = kube.clone().start("127.0.0.1:0".parse()?).await?;
    for n in &cluster.nodes {
        kube.upsert_node(json!({
            "metadata": {"name": n.node.name, "creationTimestamp":
                jiff::Timestamp::from_second(n.node.created_unix)?.to_string()},
            "spec": {"providerID": n.node.provider_id, "podCIDR": n.node.pod_cidrs[0],
                     "podCIDRs": n.node.pod_cidrs},
            "status": {"addresses": n.node.internal_ips.iter()
                .map(|ip| json!({"type": "InternalIP", "address": ip.to_string()}))
                .collect::<Vec<_>>()}
        }))
        .map_err(|e| anyhow::anyhow!("seeding node {}: {e:?}", n.node.name))?;
    }
    let kubeconfig = std::env::temp_dir().join(format!(
        "cni-cloud-simulate-{}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(
        &kubeconfig,
        kube.kubeconfig(&kube_server.url(), KubeMockConfig::CONTROLLER_TOKEN),
    )?;
    // The Lease carries its duration in whole seconds: round the scaled duration up and keep
    // client-go's 15 : 10 : 2 ratios, so the bound below is the one the replicas obey.
    let duration = (15.0 / args.time_scale).ceil().max(1.0);
    let timing = LeaseTiming {
        duration: Duration::from_secs_f64(duration),
        renew_deadline: Duration::from_secs_f64(duration * 10.0 / 15.0),
        retry_period: Duration::from_secs_f64(duration * 2.0 / 15.0),
    };
    let mut replicas = Vec::new();
    for r in 0..args.replicas {
        replicas.push(spawn(
            format!("replica-{r}"),
            &kubeconfig,
            &sim.server.url(),
            args,
            timing,
        )?);
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.timeout);
    let mut kill: Option<(u128, f64)> = None; // (wall ms, mock clock seconds)
    let mut seconds = None;
    let mut mutating_first = 0;
    let (state, reported) = loop {
        let judgement = sim.judge(cluster);
        let state = judgement.fabric.clone();
        progress.update(state.routes_present);
        if kill.is_none()
            && args
                .kill_leader_at
                .is_some_and(|f| state.routes_present as f64 >= f * state.routes_expected as f64)
            && let Some(leader) = holder(&kube)
            && let Some(i) = replicas.iter().position(|r| r.identity == leader)
        {
            let at = sim
                .mock
                .mutations()
                .last()
                .map(|m| m.at)
                .unwrap_or_default();
            let mut dead = replicas.remove(i);
            let _ = dead.child.kill();
            let _ = dead.child.wait();
            kill = Some((now_ms(), at));
        }
        let reported = conditions(&kube, cluster, &judgement);
        let all = reported.correct == cluster.nodes.len() as u64;
        if state.is_converged() && seconds.is_none() {
            seconds = Some(started.elapsed().as_secs_f64());
            mutating_first = sim.mutating_calls();
        }
        if state.is_converged() && all && (args.kill_leader_at.is_none() || kill.is_some()) {
            break (state, reported);
        }
        if Instant::now() > deadline {
            break (state, reported);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(replicas);
    let _ = std::fs::remove_file(&kubeconfig);

    let mutations = sim.mock.mutations();
    let mut seen = BTreeSet::new();
    let duplicate_mutations = mutations
        .iter()
        .filter(|m| m.action != "ModifyNetworkInterfaceAttribute")
        .filter(|m| !seen.insert((m.action, m.subject.clone(), m.detail.clone())))
        .count() as u64;
    let log = kube.lease_log();
    let holders: Vec<&str> = log.iter().filter_map(|w| w.holder.as_deref()).collect();
    let leader_changes = holders.windows(2).filter(|w| w[0] != w[1]).count() as u64;
    let mut leader_changes_unix_ms = Vec::new();
    let mut previous: Option<&str> = None;
    for w in &log {
        if let Some(h) = w.holder.as_deref() {
            if previous.is_some_and(|p| p != h) {
                leader_changes_unix_ms.push(w.at_unix_ms);
            }
            previous = Some(h);
        }
    }
    let lease_takeover_seconds = kill.and_then(|(kill_ms, _)| {
        let w = log
            .iter()
            .find(|w| w.at_unix_ms >= kill_ms && w.holder.is_some())?;
        Some((w.at_unix_ms - kill_ms) as f64 / 1000.0)
    });
    let failover_seconds = kill.and_then(|(kill_ms, kill_at)| {
        let took_over_ms = log
            .iter()
            .find(|w| w.at_unix_ms >= kill_ms && w.holder.is_some())?
            .at_unix_ms;
        let after = kill_at + (took_over_ms - kill_ms) as f64 / 1000.0;
        mutations
            .iter()
            .find(|m| m.at >= after)
            .map(|m| m.at - kill_at)
    });
    let converged =
        seconds.is_some() && reported.correct == cluster.nodes.len() as u64 && state.is_converged();
    Ok(KubeOutcome {
        converged,
        seconds: seconds.unwrap_or_else(|| started.elapsed().as_secs_f64()),
        mutating_first,
        summary: KubeSummary {
            replicas: args.replicas,
            leader_changes,
            failover_seconds,
            lease_takeover_seconds,
            failover_bound_seconds: (timing.duration + timing.retry_period).as_secs_f64(),
            duplicate_mutations,
            nodes_condition_correct: reported.correct,
            leader_changes_unix_ms,
            leader_killed_unix_ms: kill.map(|(ms, _)| ms),
        },
        reported,
        state,
    })
}

/// What the Nodes say, counted against the cloud's state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions {
    /// Nodes whose condition matches the cloud.
    pub correct: u64,
    /// Nodes reported RouteQuotaExceeded.
    pub quota: u64,
    /// Nodes reported RouteConflict.
    pub conflict: u64,
}

fn conditions(kube: &KubeMock, cluster: &SimCluster, judgement: &Judgement) -> Conditions {
    let nodes: BTreeMap<String, serde_json::Value> = kube
        .nodes()
        .into_iter()
        .filter_map(|n| Some((n["metadata"]["name"].as_str()?.to_owned(), n)))
        .collect();
    let mut out = Conditions::default();
    for (n, &routed) in cluster.nodes.iter().zip(&judgement.routed) {
        let Some(obj) = nodes.get(&n.node.name) else {
            continue;
        };
        let name = &n.node.name;
        if condition_correct(
            obj,
            routed,
            judgement.blocked.contains(name),
            judgement.conflicted.contains(name),
        ) {
            out.correct += 1;
        }
        let says = |reason: &str| {
            obj["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["reason"] == reason))
        };
        out.quota += u64::from(says("RouteQuotaExceeded"));
        out.conflict += u64::from(says("RouteConflict"));
    }
    out
}
