//! The lab's story, in order: nodes join (Node with podCIDR, the installer, pods) while the
//! replicas program the cloud and the fabric follows it; reachability is timed from packets;
//! a leader is killed or paused mid-way under continuous probes; then every pair is tested,
//! a node is removed (its traffic must stop) and its podCIDR reused (reachable at the new
//! node, never the old), and another node's machine is terminated under its listed Node
//! (its podCIDR must turn blackhole, its still-running pods hear nothing, and its podCIDR
//! serve a new node once the Node goes). Blocking code on plain threads: setns is per
//! thread.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig};

use super::super::args::SimulateArgs;
use super::super::replicas::{self, Replica, holder, signal};
use super::Interrupted;
use super::checks::{self, Pair, PodRef};
use super::cloud::LabCloud;
use super::fabric::{Applier, KernelRoute, kernel_tables};
use super::lab::{Lab, Ns};
use super::node::{self, Installer, Paths, Pod};
use super::plan::{LabNode, POD_PORT, Plan, SERVICE_IP, host};
use super::probe::{self, Answer, Icmp, Server};
use super::report::{DatapathReport, Failover, Removal, Reuse, Terminated, quantiles};
use super::topology::{Topology, pod_name};
use crate::kube::lease::LeaseTiming;

/// Above this many pod pairs, a fixed seeded sample of this size is tested.
const MAX_PAIRS: usize = 2000;
/// Pairs probed continuously through a failover.
const STREAM_PAIRS: usize = 8;
/// One probe per pair every this long (10/s).
const STREAM_EVERY: Duration = Duration::from_millis(100);
/// How long a terminated machine's podCIDR may take to become a blackhole in every fabric
/// table. The cloud shows the dead target at once and the fabric reads it every 50 ms, so
/// anything near this is a fabric that does not follow the cloud.
const TERMINATED_BOUND: Duration = Duration::from_secs(5);

pub struct Ctx {
    pub args: SimulateArgs,
    pub plan: Plan,
    pub plugin: PathBuf,
    pub kube: KubeMock,
    /// The mock API as the replicas (in the root namespace) reach it.
    pub kube_url: String,
    pub cloud: Arc<LabCloud>,
    pub stop: Arc<AtomicBool>,
}

impl Ctx {
    fn check(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            bail!(Interrupted);
        }
        Ok(())
    }

    /// Polls `f` every `every` until it holds (true), the deadline passes (false) or the
    /// run is interrupted (an error).
    fn wait(
        &self,
        deadline: Instant,
        every: Duration,
        mut f: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<bool> {
        loop {
            self.check()?;
            if f()? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(every);
        }
    }
}

/// Sets a flag when dropped: threads watching it stop on every way out, errors included.
struct Raise(Arc<AtomicBool>);

impl Drop for Raise {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The mock API served inside the lab's API namespace, for the installers on the nodes:
/// the listener is opened by a thread that joined that namespace, on its own runtime.
struct ApiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    fn start(ns: &Ns, kube: KubeMock) -> anyhow::Result<ApiServer> {
        let listen = SocketAddr::new(host(super::plan::API_NET, 2).into(), 0);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = ns.thread(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(anyhow::anyhow!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                match kube.start(listen).await {
                    Ok(server) => {
                        let _ = addr_tx.send(Ok(server.addr));
                        let _ = stop_rx.await;
                        server.stop().await;
                    }
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.into()));
                    }
                }
            });
        })?;
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the API server in the lab did not start")??;
        Ok(ApiServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A Node as the kubelet registers it and the IPAM completes it.
fn node_object(n: &LabNode, provider_id: &str) -> Value {
    json!({
        "metadata": {"name": n.name, "creationTimestamp": jiff::Timestamp::now().to_string()},
        "spec": {"providerID": provider_id, "podCIDR": n.pod_cidr.to_string(),
                 "podCIDRs": [n.pod_cidr.to_string()]},
        "status": {"addresses": [{"type": "InternalIP", "address": n.address.to_string()}]}
    })
}

/// A node brought up: the installer running, the conflist it wrote, the pods made.
struct NodeUp {
    list: Value,
    pods: Vec<Pod>,
    servers: Vec<Server>,
}

/// splitmix64: a fixed sample for a given seed.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `k` of `items`, chosen by `seed` (all of them, in order, when there are no more).
pub fn sample<T: Clone>(items: &[T], k: usize, seed: u64) -> Vec<T> {
    if items.len() <= k {
        return items.to_vec();
    }
    let mut keyed: Vec<(u64, usize)> = (0..items.len()).map(|i| (mix(seed, i as u64), i)).collect();
    keyed.sort_unstable();
    let mut picked: Vec<usize> = keyed[..k].iter().map(|&(_, i)| i).collect();
    picked.sort_unstable();
    picked.into_iter().map(|i| items[i].clone()).collect()
}

/// The pod pairs on different nodes, as (node, pod) indices.
pub fn cross_pairs(nodes: usize, pods: usize) -> Vec<Pair> {
    let all: Vec<(usize, usize)> = (0..nodes)
        .flat_map(|n| (0..pods).map(move |p| (n, p)))
        .collect();
    let mut out = Vec::new();
    for &a in &all {
        for &b in &all {
            if a.0 != b.0 {
                out.push((a, b));
            }
        }
    }
    out
}

pub fn run(ctx: &Ctx, lab: &mut Lab) -> anyhow::Result<DatapathReport> {
    let started = Instant::now();
    let args = &ctx.args;
    let plan = &ctx.plan;
    let deadline = started + Duration::from_secs_f64(args.timeout);
    let topo = Topology::build(lab, plan, &|| ctx.stop.load(Ordering::Relaxed))?;
    let api = ApiServer::start(&topo.api, ctx.kube.clone())?;
    let threads_stop = Arc::new(AtomicBool::new(false));
    let _raise = Raise(threads_stop.clone());
    let mut threads: Vec<JoinHandle<()>> = Vec::new();

    let mut applier = Applier::start(plan.clone(), &topo.fabric, ctx.cloud.reader());
    let (internet, t) =
        Server::start(&topo.internet, POD_PORT, Answer::Peer, threads_stop.clone())?;
    threads.push(t);
    drop(internet);

    // The replicas, as `simulate --kube` runs them, Lease timing scaled likewise.
    let controller_kubeconfig = lab.dir.join("controller.kubeconfig");
    std::fs::write(
        &controller_kubeconfig,
        ctx.kube
            .kubeconfig(&ctx.kube_url, KubeMockConfig::CONTROLLER_TOKEN),
    )?;
    let lease = (15.0 / args.time_scale).ceil().max(1.0);
    let timing = LeaseTiming {
        duration: Duration::from_secs_f64(lease),
        renew_deadline: Duration::from_secs_f64(lease * 10.0 / 15.0),
        retry_period: Duration::from_secs_f64(lease * 2.0 / 15.0),
    };
    let mut replicas: Vec<Replica> = Vec::new();
    for r in 0..args.replicas {
        let (key, env) = ctx.cloud.replica_env(r);
        replicas.push(replicas::spawn(
            format!("replica-{r}"),
            key,
            &controller_kubeconfig,
            &env,
            args,
            timing,
        )?);
    }

    // Every node's paths and kubeconfig (the API as the node reaches it, the installer's
    // own token).
    let api_url = format!("http://{}", api.addr);
    let mut paths = Vec::new();
    for n in plan.all() {
        let p = Paths::new(&lab.dir, n)?;
        std::fs::write(
            &p.kubeconfig,
            ctx.kube.kubeconfig(&api_url, KubeMockConfig::NODE_TOKEN),
        )?;
        paths.push(p);
    }

    // Reachability watchers: each node's first pod echoes every other node's first pod
    // until it answers; the first answer times the target's reachability.
    let count = plan.nodes.len();
    let first_ips: Arc<Mutex<Vec<Option<Ipv4Addr>>>> = Arc::new(Mutex::new(vec![None; count]));
    let reached: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count]));
    let watch_stop = Arc::new(AtomicBool::new(false));
    let _raise_watch = Raise(watch_stop.clone());
    for i in 0..count {
        let (ips, reached, stop) = (first_ips.clone(), reached.clone(), watch_stop.clone());
        threads.push(topo.pods[i][0].thread(move || {
            let Ok(icmp) = Icmp::open(0x4000 + i as u16) else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                let targets: Vec<(usize, Ipv4Addr)> = {
                    let ips = ips.lock().expect("ips");
                    let r = reached.lock().expect("reached");
                    (0..ips.len())
                        .filter(|&j| j != i && r[j].is_none())
                        .filter_map(|j| Some((j, ips[j]?)))
                        .collect()
                };
                for &(j, ip) in &targets {
                    icmp.send(ip, j as u16);
                }
                let replies = icmp.replies(Duration::from_millis(50));
                let now = Instant::now();
                let ips = ips.lock().expect("ips");
                let mut r = reached.lock().expect("reached");
                for (src, seq) in replies {
                    let j = usize::from(seq);
                    if j < ips.len() && ips[j] == Some(src) && r[j].is_none() {
                        r[j] = Some(now);
                    }
                }
            }
        })?);
    }

    // Nodes join: the machine, the Node with its podCIDR, the installer.
    let mut joined = Vec::new();
    let mut installers: Vec<Installer> = Vec::new();
    // Each machine's providerID: what the terminated check kills.
    let mut providers = Vec::new();
    for (i, n) in plan.nodes.iter().enumerate() {
        let provider = ctx.cloud.add_node(n)?;
        ctx.kube
            .upsert_node(node_object(n, &provider))
            .map_err(|e| anyhow::anyhow!("creating Node {}: {e:?}", n.name))?;
        providers.push(provider);
        joined.push(Instant::now());
        installers.push(Installer::start(&topo.nodes[i], n, &paths[i], &ctx.plugin)?);
    }

    // Failover: the blow lands once a share of the node podCIDRs is in every table.
    let blow = match (args.kill_leader_at, args.hostile_world.pause_leader_at) {
        (Some(f), _) => Some(("kill", f)),
        (None, Some(f)) => Some(("pause", f)),
        _ => None,
    };
    let pause_for = (args.hostile_world.pause_seconds)
        .map(Duration::from_secs_f64)
        .unwrap_or(timing.duration * 2);
    let mut failover = blow.map(|(b, _)| Failover {
        blow: b.to_owned(),
        ..Failover::default()
    });
    let mut landed: Option<Instant> = None;
    let mut resume: Option<(usize, Instant)> = None;
    let stream_stop = Arc::new(AtomicBool::new(false));
    let _raise_streams = Raise(stream_stop.clone());
    let mut streams: Vec<JoinHandle<probe::Stream>> = Vec::new();

    let failed = Arc::new(AtomicBool::new(false));
    // When each node's podCIDR was first in every fabric table (the controller's share of
    // the reachability time; the rest is the node's installer and its pods starting).
    let mut routed_at: Vec<Option<Instant>> = vec![None; count];
    let ups: Vec<anyhow::Result<NodeUp>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .map(|i| {
                let (topo, paths, first_ips, installer_ns) =
                    (&topo, &paths, &first_ips, topo.nodes[i].clone());
                let threads_stop = threads_stop.clone();
                let failed = &failed;
                s.spawn(move || -> anyhow::Result<(NodeUp, Vec<JoinHandle<()>>)> {
                    // A node that fails ends the join phase at once, not at the deadline.
                    let _fail = Raise(failed.clone());
                    let n = &plan.nodes[i];
                    let p = &paths[i];
                    let mut list = None;
                    ctx.wait(deadline, Duration::from_millis(50), || {
                        list = node::conflist(p);
                        Ok(list.is_some())
                    })?;
                    let list = list.with_context(|| {
                        format!("{}: the installer wrote no conflist in time", n.name)
                    })?;
                    let mut pods = Vec::new();
                    let mut servers = Vec::new();
                    let mut handles = Vec::new();
                    for k in 0..plan.pods_per_node {
                        ctx.check()?;
                        let name = pod_name(n, k);
                        let ns = topo.pods[i][k as usize].clone();
                        let pod = node::add(&installer_ns, p, &list, &name, ns.clone())?;
                        let (server, t) =
                            Server::start(&ns, POD_PORT, Answer::Name(name), threads_stop.clone())?;
                        servers.push(server);
                        handles.push(t);
                        if k == 0 {
                            node::hairpin(&installer_ns, SERVICE_IP, pod.ip)?;
                            first_ips.lock().expect("ips")[i] = Some(pod.ip);
                        }
                        pods.push(pod);
                    }
                    std::mem::forget(_fail);
                    Ok((
                        NodeUp {
                            list,
                            pods,
                            servers,
                        },
                        handles,
                    ))
                })
            })
            .collect();

        // Meanwhile: the blow, the pause's end, and waiting for every node to be reached.
        let monitor = (|| -> anyhow::Result<()> {
            loop {
                ctx.check()?;
                for (n, at) in plan.nodes.iter().zip(routed_at.iter_mut()) {
                    if at.is_none() && applier.routed_everywhere(&n.pod_cidr) {
                        *at = Some(Instant::now());
                    }
                }
                let share = routed_at.iter().filter(|a| a.is_some()).count() as f64 / count as f64;
                if let (Some((kind, f)), None) = (blow, landed)
                    && share >= f
                    && let Some(leader) = holder(&ctx.kube)
                    && let Some(r) = replicas.iter().position(|r| r.identity == leader)
                {
                    let fo = failover.as_mut().expect("set with the blow");
                    fo.at_share = share;
                    fo.leader_before = Some(leader);
                    // Continuous probes between pods on different nodes, from now on.
                    let pairs = sample(&cross_pairs(count, 1), STREAM_PAIRS, args.seed);
                    fo.pairs = pairs.len() as u64;
                    for (k, ((a, _), (b, _))) in pairs.into_iter().enumerate() {
                        let (ips, stop) = (first_ips.clone(), stream_stop.clone());
                        streams.push(topo.pods[a][0].thread(move || {
                            let Ok(icmp) = Icmp::open(0x8000 + k as u16) else {
                                return probe::Stream::default();
                            };
                            let dst = loop {
                                if stop.load(Ordering::Relaxed) {
                                    return probe::Stream::default();
                                }
                                if let Some(ip) = ips.lock().expect("ips")[b] {
                                    break ip;
                                }
                                std::thread::sleep(Duration::from_millis(20));
                            };
                            probe::stream(&icmp, dst, STREAM_EVERY, &stop)
                        })?);
                    }
                    if kind == "kill" {
                        let mut dead = replicas.remove(r);
                        let _ = dead.child.kill();
                        let _ = dead.child.wait();
                    } else {
                        signal(&replicas[r].child, "STOP")?;
                        resume = Some((r, Instant::now() + pause_for));
                    }
                    landed = Some(Instant::now());
                }
                if let Some((r, at)) = resume
                    && Instant::now() >= at
                {
                    signal(&replicas[r].child, "CONT")?;
                    resume = None;
                }
                let all_reached = reached.lock().expect("reached").iter().all(Option::is_some);
                let settled = match (blow, landed) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(_), Some(at)) => {
                        let fo = failover.as_ref().expect("set with the blow");
                        let now_leader = holder(&ctx.kube);
                        resume.is_none()
                            && now_leader.is_some()
                            && now_leader != fo.leader_before
                            && at.elapsed() >= timing.duration
                    }
                };
                if (all_reached && settled)
                    || Instant::now() >= deadline
                    || failed.load(Ordering::Relaxed)
                {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })();
        let ups: Vec<anyhow::Result<NodeUp>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a node thread panicked"))?
                    .map(|(up, hs)| {
                        threads.extend(hs);
                        up
                    })
            })
            .collect();
        monitor.map(|()| ups)
    })?;
    let ups = ups.into_iter().collect::<anyhow::Result<Vec<NodeUp>>>()?;
    watch_stop.store(true, Ordering::Relaxed);
    // A second or more of probing after everything settled, then the streams' verdict.
    std::thread::sleep(Duration::from_secs(1));
    stream_stop.store(true, Ordering::Relaxed);
    if let Some(fo) = failover.as_mut() {
        fo.leader_after = holder(&ctx.kube);
        let mut lost_at = Vec::new();
        for s in streams {
            let r = s.join().unwrap_or_default();
            fo.probes_sent += r.sent;
            fo.probes_lost += r.lost;
            lost_at.extend(r.lost_at);
        }
        if let (Some(first), Some(last), Some(at)) =
            (lost_at.iter().min(), lost_at.iter().max(), landed)
        {
            explain_losses(at, *first, *last, &applier.log.lock().expect("log"));
        }
        if landed.is_none() {
            eprintln!(
                "the {} never landed: the routes never reached the share asked",
                fo.blow
            );
        }
    }
    let reach: Vec<f64> = {
        let r = reached.lock().expect("reached");
        (r.iter().zip(&joined))
            .filter_map(|(at, j)| Some(at.as_ref()?.duration_since(*j).as_secs_f64()))
            .collect()
    };
    let never = (count - reach.len()) as u64;

    // Every pair (or the sample), pod → node, hairpin, masquerade.
    let pods_meta: Vec<Vec<(String, Ipv4Addr, Arc<Ns>)>> = ups
        .iter()
        .map(|u| {
            u.pods
                .iter()
                .map(|p| (p.name.clone(), p.ip, p.ns.clone()))
                .collect()
        })
        .collect();
    let pairs = sample(
        &cross_pairs(count, plan.pods_per_node as usize),
        MAX_PAIRS,
        args.seed,
    );
    let mut report = DatapathReport {
        cloud: ctx.cloud.name().to_owned(),
        nodes: count as u64,
        subnets: u64::from(plan.subnets),
        pods_per_node: u64::from(plan.pods_per_node),
        replicas: u64::from(args.replicas),
        time_scale: args.time_scale,
        reachability_seconds: quantiles(&reach),
        routed_seconds: quantiles(
            &(routed_at.iter().zip(&joined))
                .filter_map(|(at, j)| Some(at.as_ref()?.duration_since(*j).as_secs_f64()))
                .collect::<Vec<_>>(),
        ),
        nodes_never_reached: never,
        ..DatapathReport::default()
    };
    let refs: Vec<Vec<PodRef>> = pods_meta
        .iter()
        .map(|pods| {
            (pods.iter())
                .map(|(name, ip, ns)| PodRef {
                    name: name.clone(),
                    ip: *ip,
                    ns: ns.clone(),
                })
                .collect()
        })
        .collect();
    let found = checks::run(plan, &refs, &pairs)?;
    report.pairs_tested = found.pairs.tested;
    report.pairs_reachable = found.pairs.passed;
    report.pod_to_node = found.to_node;
    report.hairpin = found.hairpin;
    report.masquerade = found.masquerade;
    ctx.check()?;

    // Removal: the last node leaves Kubernetes; its machine and pods keep running, so only
    // the fabric's routes decide whether its old podCIDR is still reachable.
    let victim = count - 1;
    let vnode = &plan.nodes[victim];
    let prober = pods_meta[0][0].2.clone();
    let accepted_before = accepted(&ups[victim]);
    ctx.kube
        .delete_node(&vnode.name)
        .map_err(|e| anyhow::anyhow!("deleting Node {}: {e:?}", vnode.name))?;
    let removed = Instant::now();
    let gone = |cidr: Ipv4Net| -> anyhow::Result<bool> {
        Ok(kernel_tables(&topo.fabric, plan)?
            .values()
            .all(|t| !t.contains_key(&cidr)))
    };
    let routes_gone = ctx.wait(deadline, Duration::from_millis(50), || gone(vnode.pod_cidr))?;
    let mut removal = Removal {
        node: vnode.name.clone(),
        routes_gone,
        routes_gone_seconds: routes_gone.then(|| removed.elapsed().as_secs_f64()),
        ..Removal::default()
    };
    let targets: Vec<Ipv4Addr> = pods_meta[victim].iter().map(|p| p.1).collect();
    (removal.probes, removal.answered) = probe_all(&prober, &targets, 0x7000)?;

    // Reuse: a new node on a new machine gets the old podCIDR.
    let rep = &plan.replacement;
    let mut late = Late {
        ctx,
        topo: &topo,
        paths: &paths,
        deadline,
        installers: &mut installers,
        threads: &mut threads,
        threads_stop: &threads_stop,
    };
    let (created, new_pods) = late.join(rep)?;
    let old_names: Vec<String> = pods_meta[victim].iter().map(|p| p.0.clone()).collect();
    let (first, all_new, by_old) = late.reach(&prober, &new_pods, old_names)?;
    ctx.check()?;
    let reuse = Reuse {
        node: rep.name.clone(),
        reachable: all_new,
        seconds: first.map(|f: Instant| f.duration_since(created).as_secs_f64()),
        answered_by_old: by_old + accepted(&ups[victim]).saturating_sub(accepted_before),
    };
    // The removed node's pods go, as its kubelet's runtime would tear them down: DEL.
    let vup = &ups[victim];
    for pod in &vup.pods {
        node::del(&topo.nodes[victim], &paths[victim], &vup.list, pod)?;
    }
    report.removal = Some(removal);
    report.reuse = Some(reuse);

    // Terminated: a machine dies while its Node is still listed. Its namespace and pods
    // keep running, so only the fabric can stop delivery: the cloud shows the route's
    // target gone (EC2 a blackhole, ARM a next hop no NIC holds), which the fabric must
    // drop, never carry to the old address.
    let dead = plan.terminated();
    let dnode = &plan.nodes[dead];
    // From a pod on a node still up: the first node neither removed nor terminated, else
    // (two nodes) the reuse node.
    let from = (0..count).find(|&i| i != victim && i != dead).map_or_else(
        || topo.pods[rep.index][0].clone(),
        |i| pods_meta[i][0].2.clone(),
    );
    ctx.cloud.terminate(&providers[dead])?;
    let killed = Instant::now();
    let blackholed = ctx.wait(
        // Its own bound, past the run's deadline too: the check is cheap and always runs.
        killed + TERMINATED_BOUND,
        Duration::from_millis(50),
        || {
            Ok(kernel_tables(&topo.fabric, plan)?
                .values()
                .all(|t| t.get(&dnode.pod_cidr) == Some(&KernelRoute::Blackhole)))
        },
    )?;
    let blackholed_seconds = blackholed.then(|| killed.elapsed().as_secs_f64());
    let targets: Vec<Ipv4Addr> = pods_meta[dead].iter().map(|p| p.1).collect();
    let (probes, answered) = probe_all(&from, &targets, 0x7100)?;
    // Kubernetes drops the dead Node (the node lifecycle controller's job); its podCIDR
    // goes to a new node on a new machine. The old pods, still running, must hear nothing.
    let accepted_before = accepted(&ups[dead]);
    ctx.kube
        .delete_node(&dnode.name)
        .map_err(|e| anyhow::anyhow!("deleting Node {}: {e:?}", dnode.name))?;
    let succ = &plan.successor;
    let (created, new_pods) = late.join(succ)?;
    let old_names: Vec<String> = pods_meta[dead].iter().map(|p| p.0.clone()).collect();
    let (first, replaced_reachable, by_old) = late.reach(&from, &new_pods, old_names)?;
    ctx.check()?;
    // No DEL for the dead machine's pods: no runtime is left there to run it; the lab's
    // teardown removes their namespaces.
    report.terminated = Some(Terminated {
        node: dnode.name.clone(),
        blackholed,
        blackholed_seconds,
        probes,
        answered,
        replaced_by: succ.name.clone(),
        replaced_reachable,
        replaced_seconds: first.map(|f| f.duration_since(created).as_secs_f64()),
        answered_by_old: by_old + accepted(&ups[dead]).saturating_sub(accepted_before),
    });
    if let Some(fo) = failover.as_mut() {
        report.probes_lost = fo.probes_lost;
        fo.landed = landed.is_some();
    }
    report.failover = failover;

    // Every installer still running: none may have died on the way.
    for (i, inst) in installers.iter_mut().enumerate() {
        if let Some(status) = inst.exited() {
            bail!("the installer of node {i} exited: {status}");
        }
    }
    threads_stop.store(true, Ordering::Relaxed);
    applier.stop();
    report.fabric_errors = applier.errors.lock().expect("errors").len() as u64;
    drop(replicas);
    drop(installers);
    drop(api);
    for t in threads {
        let _ = t.join();
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Connections a node's pods accepted so far.
fn accepted(up: &NodeUp) -> u64 {
    (up.servers.iter())
        .map(|s| s.accepted.load(Ordering::Relaxed))
        .sum()
}

/// Every address probed at once from `from`, an echo and a TCP connect each with 1 s to
/// answer: (probes, answered). At once, so paths that must be dead cost one timeout, not
/// one per probe.
fn probe_all(from: &Ns, targets: &[Ipv4Addr], id: u16) -> anyhow::Result<(u64, u64)> {
    const WAIT: Duration = Duration::from_secs(1);
    let mut handles: Vec<JoinHandle<anyhow::Result<bool>>> = Vec::new();
    for (k, &ip) in targets.iter().enumerate() {
        let id = id + k as u16;
        handles.push(from.thread(move || Ok(Icmp::open(id)?.ping(ip, 1, WAIT)))?);
        handles.push(from.thread(move || Ok(probe::tcp_read(ip, POD_PORT, WAIT).is_some()))?);
    }
    let probes = handles.len() as u64;
    let mut answered = 0;
    for h in handles {
        let got = (h.join()).map_err(|_| anyhow::anyhow!("a probe thread panicked"))??;
        answered += u64::from(got);
    }
    Ok((probes, answered))
}

/// What a node joining after the others needs: where its installer and pod servers go.
struct Late<'a> {
    ctx: &'a Ctx,
    topo: &'a Topology,
    paths: &'a [Paths],
    deadline: Instant,
    installers: &'a mut Vec<Installer>,
    threads: &'a mut Vec<JoinHandle<()>>,
    threads_stop: &'a Arc<AtomicBool>,
}

impl Late<'_> {
    /// A new machine, its Node with its podCIDR, the installer, the pods with their servers.
    /// Returns when the Node was created and the pods' (address, name).
    fn join(&mut self, n: &LabNode) -> anyhow::Result<(Instant, Vec<(Ipv4Addr, String)>)> {
        let ctx = self.ctx;
        let i = n.index;
        let provider = ctx.cloud.add_node(n)?;
        ctx.kube
            .upsert_node(node_object(n, &provider))
            .map_err(|e| anyhow::anyhow!("creating Node {}: {e:?}", n.name))?;
        let created = Instant::now();
        let p = &self.paths[i];
        let node_ns = &self.topo.nodes[i];
        self.installers
            .push(Installer::start(node_ns, n, p, &ctx.plugin)?);
        let mut list = None;
        ctx.wait(self.deadline, Duration::from_millis(50), || {
            list = node::conflist(p);
            Ok(list.is_some())
        })?;
        let list = list.with_context(|| format!("{}: no conflist in time", n.name))?;
        let mut pods = Vec::new();
        for k in 0..ctx.plan.pods_per_node {
            let name = pod_name(n, k);
            let ns = self.topo.pods[i][k as usize].clone();
            let pod = node::add(node_ns, p, &list, &name, ns.clone())?;
            let answer = Answer::Name(name.clone());
            let (_server, t) = Server::start(&ns, POD_PORT, answer, self.threads_stop.clone())?;
            self.threads.push(t);
            pods.push((pod.ip, name));
        }
        Ok((created, pods))
    }

    /// Connects from `from` to each of `want` (address → the name its new pod answers with)
    /// until every one answered under its own name: (the first such answer, all answered,
    /// answers under one of `old` instead). At least 5 s, even past the run's deadline.
    fn reach(
        &self,
        from: &Ns,
        want: &[(Ipv4Addr, String)],
        old: Vec<String>,
    ) -> anyhow::Result<(Option<Instant>, bool, u64)> {
        let stop = self.ctx.stop.clone();
        let deadline = self.deadline.max(Instant::now() + Duration::from_secs(5));
        let want = want.to_vec();
        from.thread(move || {
            let mut first = None;
            let mut done = vec![false; want.len()];
            let mut by_old = 0u64;
            while !done.iter().all(|d| *d)
                && Instant::now() < deadline
                && !stop.load(Ordering::Relaxed)
            {
                for (k, (ip, name)) in want.iter().enumerate() {
                    match probe::tcp_read(*ip, POD_PORT, Duration::from_millis(500)) {
                        Some(got) if got == *name => {
                            first.get_or_insert_with(Instant::now);
                            done[k] = true;
                        }
                        Some(got) if old.contains(&got) => by_old += 1,
                        _ => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (first, done.iter().all(|d| *d), by_old)
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("the probe of a new node panicked"))
    }
}

/// Lost probes, told with what the fabric did around them (stderr; the JSON stays data).
fn explain_losses(blow: Instant, first: Instant, last: Instant, log: &[(Instant, String)]) {
    let rel = |t: Instant| {
        if t >= blow {
            (t - blow).as_secs_f64()
        } else {
            -(blow - t).as_secs_f64()
        }
    };
    eprintln!(
        "probes lost between {:+.2} s and {:+.2} s after the blow; fabric changes from 2 s before:",
        rel(first),
        rel(last)
    );
    let from = first.checked_sub(Duration::from_secs(2)).unwrap_or(first);
    for (at, line) in log.iter().filter(|(at, _)| *at >= from && *at <= last) {
        eprintln!("  {:+.2} s  {line}", rel(*at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_cross_nodes_only_and_samples_are_fixed_by_seed() {
        let p = cross_pairs(3, 2);
        assert_eq!(p.len(), 6 * 4);
        assert!(p.iter().all(|(a, b)| a.0 != b.0));
        assert_eq!(sample(&p, 100, 1), p, "small sets are tested whole");
        let s1 = sample(&p, 5, 7);
        assert_eq!(s1.len(), 5);
        assert_eq!(s1, sample(&p, 5, 7));
        assert_ne!(s1, sample(&p, 5, 8));
    }
}
