//! `simulate --kube`: the same generated cluster, but driven through the mock Kubernetes
//! API (which enforces deploy/base's RBAC) by `--replicas` separate `cni-cloud-controller
//! run` processes competing for the Lease; `--kill-leader-at F` SIGKILLs the leader once a
//! share F of the routes is in. Lease timing and pacing are scaled like everything else.
//!
//! The hostile world (`--hostile`, or each flag on its own): leaders paused (SIGSTOP past
//! the Lease, then SIGCONT) and flapped (killed and paused in turn), kubelet-like Node
//! updates throughout, and nodes joining mid-run, whose readiness is timed from podCIDR
//! assigned to `NetworkUnavailable=False` with the route present in the mock cloud.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig};

use super::args::SimulateArgs;
use super::cloud::{Judgement, Sent, SimCloud};
use super::cluster::SimCluster;
use super::progress::Progress;
use super::replicas::{holder, rbac, signal, spawn};
use super::report::{Inspection, KubeSummary, ReadFaults, Readiness};
use crate::kube::lease::LeaseTiming;

/// What the leaders go through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blow {
    Kill,
    Pause,
}

/// The hostile dynamics this run applies, resolved from the flags (`--hostile` fills in
/// what is not set) and scaled to wall time.
struct Hostile {
    /// Blows to the leader in order, each once a share of the routes is in (or as soon as
    /// the previous one settled).
    blows: VecDeque<(Blow, Option<f64>)>,
    pause: Duration,
    /// Node updates per wall second.
    updates_per_second: f64,
    /// Joins per wall second (how many: [`hostile_joins`]).
    join_rate: f64,
    /// Share of reads failed after convergence ([`read_fault_phase`]).
    read_faults: f64,
}

impl Hostile {
    fn new(args: &SimulateArgs, lease: Duration) -> anyhow::Result<Self> {
        let h = args.hostile_world.hostile;
        let mut blows = VecDeque::new();
        if let Some(f) = args.hostile_world.pause_leader_at.or(h.then_some(0.3)) {
            blows.push_back((Blow::Pause, Some(f)));
        }
        let flaps = if h && args.hostile_world.flap_leadership == 0 {
            2
        } else {
            args.hostile_world.flap_leadership
        };
        for k in 0..flaps {
            let blow = if k % 2 == 0 { Blow::Kill } else { Blow::Pause };
            blows.push_back((blow, None));
        }
        let pause = args
            .hostile_world
            .pause_seconds
            .map(Duration::from_secs_f64)
            .unwrap_or(lease * 2);
        if blows.iter().any(|(b, _)| *b == Blow::Pause) && pause <= lease {
            bail!(
                "--pause-seconds ({:.2} s) must be longer than the Lease ({:.2} s)",
                pause.as_secs_f64(),
                lease.as_secs_f64()
            );
        }
        let or = |v: f64, default: f64| if h && v == 0.0 { default } else { v };
        Ok(Self {
            blows,
            pause,
            updates_per_second: or(args.hostile_world.node_updates_per_second, 50.0)
                * args.time_scale,
            join_rate: or(args.hostile_world.join_rate, 2.0) * args.time_scale,
            read_faults: or(args.read_faults, 0.2),
        })
    }
}

/// A Node as the simulation seeds it; `with_cidr: false` is a node just registered, before
/// the IPAM gave it a podCIDR.
fn node_object(n: &super::cluster::SimNode, with_cidr: bool) -> anyhow::Result<serde_json::Value> {
    let mut spec = json!({"providerID": n.node.provider_id});
    if with_cidr {
        spec["podCIDR"] = json!(n.node.pod_cidrs[0]);
        spec["podCIDRs"] = json!(n.node.pod_cidrs);
    }
    Ok(json!({
        "metadata": {"name": n.node.name, "creationTimestamp":
            jiff::Timestamp::from_second(n.node.created_unix)?.to_string()},
        "spec": spec,
        "status": {"addresses": n.node.internal_ips.iter()
            .map(|ip| json!({"type": "InternalIP", "address": ip.to_string()}))
            .collect::<Vec<_>>()}
    }))
}

/// What a kubelet writes all the time and routing never reads: a heartbeat on the Ready
/// condition and a label.
fn heartbeat(node: &mut serde_json::Value, beat: u64) {
    let now = jiff::Timestamp::now().to_string();
    if !node["metadata"]["labels"].is_object() {
        node["metadata"]["labels"] = json!({});
    }
    node["metadata"]["labels"]["simulate.cni-cloud.io/heartbeat"] = json!(beat.to_string());
    if !node["status"]["conditions"].is_array() {
        node["status"]["conditions"] = json!([]);
    }
    let conditions = node["status"]["conditions"]
        .as_array_mut()
        .expect("an array, just made so");
    match conditions.iter_mut().find(|c| c["type"] == "Ready") {
        Some(c) => c["lastHeartbeatTime"] = json!(now),
        None => conditions.push(json!({"type": "Ready", "status": "True",
            "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now})),
    }
}

/// `--node-updates-per-second`: heartbeats round the Nodes present until `stop`; returns
/// how many were written.
async fn kubelets(kube: KubeMock, names: Vec<String>, rate: f64, stop: CancellationToken) -> u64 {
    let started = Instant::now();
    let (mut due_done, mut written, mut next) = (0u64, 0u64, 0usize);
    loop {
        tokio::select! {
            () = stop.cancelled() => return written,
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while due_done < due {
            due_done += 1;
            // The next Node present (one yet to join is passed over, not counted).
            for _ in 0..names.len() {
                let name = &names[next % names.len()];
                next += 1;
                if let Some(Ok(_)) = kube.modify_node(name, |n| heartbeat(n, due_done)) {
                    written += 1;
                    break;
                }
            }
        }
    }
}

/// One joining node: when it appeared, when it got its podCIDR, when it was ready.
#[derive(Debug, Default, Clone, Copy)]
struct Join {
    appeared: bool,
    assigned: Option<Instant>,
    ready_seconds: Option<f64>,
}

fn readiness(joins: &[Join]) -> Option<Readiness> {
    let mut v: Vec<f64> = joins.iter().filter_map(|j| j.ready_seconds).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Readiness {
        p50: q(0.5),
        p99: q(0.99),
        max: v[v.len() - 1],
        nodes: v.len() as u64,
    })
}

/// A paused leader: its client (as the mock cloud logs it), and the request log's length
/// when it was stopped and at the next blow (after which it may lead again, legitimately).
struct Pause {
    key: String,
    from: usize,
    until: usize,
}

/// Mutating requests each paused replica sent after the first mutating request of anyone
/// else since its pause, until the next blow; and how many pauses had such a successor
/// write at all (a pause without one judges nothing: the work was done before it).
fn deposed_writes(requests: &[Sent], pauses: &[Pause]) -> (u64, usize) {
    let mutating = |r: &Sent| r.mutating;
    let mut judged = 0;
    let writes = pauses
        .iter()
        .map(|Pause { key, from, until }| {
            let until = (*until).min(requests.len());
            let after = requests.get(*from..until).unwrap_or_default();
            let Some(first) = after.iter().position(|r| mutating(r) && r.client != *key) else {
                return 0;
            };
            judged += 1;
            let late: Vec<String> = after[first..]
                .iter()
                .filter(|r| mutating(r) && r.client == *key)
                .map(|r| format!("{} at {:.3} s", r.action, r.at))
                .collect();
            if !late.is_empty() {
                eprintln!(
                    "{key}, paused at {:.3} s (mock clock), wrote after its successor's first write at {:.3} s: {}",
                    after.first().map(|r| r.at).unwrap_or_default(),
                    after[first].at,
                    late.join(", ")
                );
            }
            late.len() as u64
        })
        .sum();
    (writes, judged)
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// How many of the youngest nodes join during the run (0 without `--join-rate`).
fn hostile_joins(args: &SimulateArgs) -> usize {
    if args.hostile_world.join_rate > 0.0 || args.hostile_world.hostile {
        (args.nodes as usize / 10).max(1)
    } else {
        0
    }
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

/// Resync periods the replicas run with reads failing.
const READ_FAULT_PERIODS: u32 = 3;

/// A Node's NetworkUnavailable as written: status and last transition. A flip and back
/// still moves the transition time, so comparing the first and every later look misses
/// none.
fn network_condition(kube: &KubeMock, name: &str) -> Option<(String, String)> {
    let node = kube.node(name)?;
    let c = node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == crate::kube::status::CONDITION)?
        .clone();
    Some((
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["lastTransitionTime"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// `--read-faults` (and `--hostile`): after convergence, the mock cloud fails this share of
/// reads for a few of the replicas' resync periods; every node routed at the start is
/// watched on the mock API, and any change of its condition is a flip.
async fn read_fault_phase(
    kube: &KubeMock,
    cluster: &SimCluster,
    sim: &dyn SimCloud,
    args: &SimulateArgs,
    rate: f64,
) -> ReadFaults {
    let judged = sim.judge(cluster);
    let watched: Vec<(&str, Option<(String, String)>)> = (cluster.nodes.iter())
        .zip(&judged.routed)
        .filter(|(_, routed)| **routed)
        .map(|(n, _)| (n.node.name.as_str(), network_condition(kube, &n.node.name)))
        .collect();
    let (injected, lists) = (sim.faults_injected(), sim.list_calls());
    let window = Duration::from_secs(60).div_f64(args.time_scale) * READ_FAULT_PERIODS;
    let until = Instant::now() + window;
    sim.set_read_faults(rate);
    let mut flipped = BTreeSet::new();
    loop {
        for (name, first) in &watched {
            if network_condition(kube, name) != *first {
                flipped.insert(*name);
            }
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.set_read_faults(0.0);
    ReadFaults {
        // Listings of every table, retries included: about the passes that ran.
        read_fault_passes: (sim.list_calls() - lists) / u64::from(args.tables.max(1)),
        read_faults_injected: sim.faults_injected() - injected,
        condition_flips: flipped.len() as u64,
    }
}

pub struct KubeOutcome {
    pub converged: bool,
    pub read_faults: Option<ReadFaults>,
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
    sim: &dyn SimCloud,
    progress: &Progress,
) -> anyhow::Result<KubeOutcome> {
    let kube = KubeMock::new(KubeMockConfig::with_rbac(rbac(args)?));
    let kube_server = kube.clone().start("127.0.0.1:0".parse()?).await?;
    let total = cluster.nodes.len();
    let first_joiner = total.saturating_sub(hostile_joins(args));
    for n in &cluster.nodes[..first_joiner] {
        kube.upsert_node(node_object(n, true)?)
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
    let mut hostile = Hostile::new(args, timing.duration)?;
    let fresh = |r: u32| {
        let (key, cloud_env) = sim.replica_env(r);
        spawn(
            format!("replica-{r}"),
            key,
            &kubeconfig,
            &cloud_env,
            args,
            timing,
        )
    };
    let mut replicas = Vec::new();
    for r in 0..args.replicas {
        replicas.push(fresh(r)?);
    }
    let mut next_replica = args.replicas;
    let stop_kubelets = CancellationToken::new();
    let kubelets = (hostile.updates_per_second > 0.0).then(|| {
        tokio::spawn(kubelets(
            kube.clone(),
            cluster.nodes.iter().map(|n| n.node.name.clone()).collect(),
            hostile.updates_per_second,
            stop_kubelets.clone(),
        ))
    });
    let mut joins = vec![Join::default(); total - first_joiner];
    let mut join_clock: Option<Instant> = None;
    // Leaders stopped: (identity, when to continue it); each pause: (key, request log length).
    let mut paused: Option<(String, Instant)> = None;
    let mut last_resume: Option<Instant> = None;
    let mut last_victim: Option<String> = None;
    let mut pauses: Vec<Pause> = Vec::new();
    let mut kills = 0u64;

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.timeout);
    let mut kill: Option<(u128, f64)> = None; // (wall ms, mock clock seconds)
    let mut seconds = None;
    let mut mutating_first = 0;
    let (mut state, mut reported) = loop {
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
            let at = sim.applied().last().map(|m| m.at).unwrap_or_default();
            let mut dead = replicas.remove(i);
            let _ = dead.child.kill();
            let _ = dead.child.wait();
            kill = Some((now_ms(), at));
        }
        // Leaders paused and flapped, one blow after the previous one settled.
        if let Some((id, at)) = &paused
            && Instant::now() >= *at
        {
            if let Some(r) = replicas.iter().find(|r| r.identity == *id) {
                signal(&r.child, "CONT")?;
            }
            paused = None;
            last_resume = Some(Instant::now());
        }
        if paused.is_none()
            && let Some(&(blow, share)) = hostile.blows.front()
            && share.is_none_or(|f| state.routes_present as f64 >= f * state.routes_expected as f64)
            && let Some(leader) = holder(&kube)
            && last_victim.as_ref() != Some(&leader)
            && let Some(i) = replicas.iter().position(|r| r.identity == leader)
        {
            hostile.blows.pop_front();
            let now_at = sim.request_count();
            for p in &mut pauses {
                p.until = p.until.min(now_at);
            }
            match blow {
                Blow::Kill => {
                    let mut dead = replicas.remove(i);
                    let _ = dead.child.kill();
                    let _ = dead.child.wait();
                    replicas.push(fresh(next_replica)?);
                    next_replica += 1;
                    kills += 1;
                }
                Blow::Pause => {
                    pauses.push(Pause {
                        key: replicas[i].key.clone(),
                        from: now_at,
                        until: usize::MAX,
                    });
                    signal(&replicas[i].child, "STOP")?;
                    paused = Some((leader.clone(), Instant::now() + hostile.pause));
                }
            }
            last_victim = Some(leader);
        }
        // Nodes join once the seeded ones are routed and reported: the Node appears, and on
        // a later pass the IPAM gives it a podCIDR.
        let joined_due = match join_clock {
            Some(t) if hostile.join_rate > 0.0 => {
                ((t.elapsed().as_secs_f64() * hostile.join_rate) as usize + 1).min(joins.len())
            }
            _ => 0,
        };
        for (j, join) in joins.iter_mut().enumerate() {
            let n = &cluster.nodes[first_joiner + j];
            if join.appeared && join.assigned.is_none() {
                kube.modify_node(&n.node.name, |obj| {
                    obj["spec"]["podCIDR"] = json!(n.node.pod_cidrs[0]);
                    obj["spec"]["podCIDRs"] = json!(n.node.pod_cidrs);
                })
                .transpose()
                .map_err(|e| anyhow::anyhow!("podCIDR for {}: {e:?}", n.node.name))?;
                join.assigned = Some(Instant::now());
            } else if !join.appeared && j < joined_due {
                kube.upsert_node(node_object(n, false)?)
                    .map_err(|e| anyhow::anyhow!("joining node {}: {e:?}", n.node.name))?;
                join.appeared = true;
            }
        }
        let reported = conditions(&kube, cluster, &judgement);
        if join_clock.is_none() && reported.correct >= first_joiner as u64 {
            join_clock = Some(Instant::now());
        }
        // Ready: NetworkUnavailable=False on the Node, its routes present in the mock now.
        for (j, join) in joins.iter_mut().enumerate() {
            let i = first_joiner + j;
            if let (Some(assigned), None) = (join.assigned, join.ready_seconds)
                && judgement.routed[i]
                && kube.node(&cluster.nodes[i].node.name).is_some_and(|obj| {
                    obj["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c["type"] == crate::kube::status::CONDITION && c["status"] == "False"
                        })
                    })
                })
            {
                join.ready_seconds = Some(assigned.elapsed().as_secs_f64() * args.time_scale);
            }
        }
        let all = reported.correct == cluster.nodes.len() as u64;
        let hostile_done = hostile.blows.is_empty()
            && paused.is_none()
            && last_resume.is_none_or(|t| t.elapsed() >= timing.duration)
            && (last_victim.is_none() || holder(&kube) != last_victim)
            && joins.iter().all(|j| j.assigned.is_some());
        if state.is_converged() && seconds.is_none() {
            seconds = Some(started.elapsed().as_secs_f64());
            mutating_first = sim.mutating_calls();
        }
        if state.is_converged()
            && all
            && hostile_done
            && (args.kill_leader_at.is_none() || kill.is_some())
        {
            break (state, reported);
        }
        if Instant::now() > deadline {
            break (state, reported);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let read_faults = if state.is_converged() && hostile.read_faults > 0.0 {
        let faults = read_fault_phase(&kube, cluster, sim, args, hostile.read_faults).await;
        // The verdict is the fabric and the Nodes after the faults.
        let judgement = sim.judge(cluster);
        reported = conditions(&kube, cluster, &judgement);
        state = judgement.fabric;
        Some(faults)
    } else {
        None
    };
    drop(replicas);
    let _ = std::fs::remove_file(&kubeconfig);
    stop_kubelets.cancel();
    let node_updates = match kubelets {
        Some(task) => task.await.unwrap_or_default(),
        None => 0,
    };
    let writes_by_deposed_leader = (!pauses.is_empty()).then(|| {
        let (writes, judged) = deposed_writes(&sim.requests(), &pauses);
        // Said every time: a pause after the work was done proves nothing about fencing.
        eprintln!(
            "writes_by_deposed_leader: {judged} of {} pauses had a successor write to judge against",
            pauses.len()
        );
        writes
    });
    if let Some(w) = writes_by_deposed_leader.filter(|w| *w > 0) {
        eprintln!("a deposed leader sent {w} mutating requests after its successor's first");
    }

    let mutations = sim.applied();
    let mut seen = BTreeSet::new();
    let duplicate_mutations = (mutations.iter())
        .filter_map(|m| m.route.as_deref())
        .filter(|route| !seen.insert(*route))
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
    let converged = seconds.is_some()
        && reported.correct == cluster.nodes.len() as u64
        && state.is_converged()
        && writes_by_deposed_leader.unwrap_or(0) == 0;
    Ok(KubeOutcome {
        converged,
        read_faults,
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
            leader_pauses: pauses.len() as u64,
            leader_kills: kills,
            writes_by_deposed_leader,
            node_updates,
            nodes_joined: joins.iter().filter(|j| j.assigned.is_some()).count() as u64,
            readiness_seconds: readiness(&joins),
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

#[cfg(test)]
mod tests {
    use super::{Pause, Sent, deposed_writes};

    fn req(client: &str, action: &str) -> Sent {
        Sent {
            at: 0.0,
            client: client.into(),
            mutating: !action.starts_with("Describe"),
            action: action.into(),
        }
    }

    #[test]
    fn deposed_writes_count_only_after_the_successors_first_write() {
        let log = [
            req("old", "CreateRoute"),         // before the pause
            req("new", "DescribeRouteTables"), // a read: not a write
            req("old", "CreateRoute"),         // before the successor wrote
            req("new", "CreateRoute"),         // the successor's first write
            req("old", "DescribeRouteTables"), // a read
            req("old", "ReplaceRoute"),        // deposed
            req("old", "DeleteRoute"),         // deposed
        ];
        let pause = |from, until| Pause {
            key: "old".into(),
            from,
            until,
        };
        assert_eq!(deposed_writes(&log, &[pause(1, usize::MAX)]), (2, 1));
        // After the next blow it may lead again: those writes are its own.
        assert_eq!(deposed_writes(&log, &[pause(1, 6)]), (1, 1));
        // Nobody else wrote after the pause: nothing to be deposed by, nothing judged.
        assert_eq!(deposed_writes(&log[..3], &[pause(1, usize::MAX)]), (0, 0));
        assert_eq!(deposed_writes(&log, &[]), (0, 0));
    }
}
