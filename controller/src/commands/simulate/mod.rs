//! `cni-cloud-controller simulate`: the real planner, reconciler and provider against an
//! in-process mock cloud over real HTTP on loopback, with a generated cluster. Prints a
//! summary (or one JSON object) and exits 0 only when the fabric converged without a
//! foreign route touched.

mod aws;
mod azure;
mod cluster;
mod kube_mode;
mod plot;
mod report;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use cni_cloud_providers::CloudProvider;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::{AlwaysLeader, MemorySink, NodeSnapshot, SharedSnapshot};
use crate::commands::OutputFormat;
use crate::commands::cloud::CloudKind;
use crate::reconcile::{DriveTiming, PassSummary, Reconciler, ReconcilerConfig, drive};

pub use cluster::{SimCluster, SimNode};
pub use report::{Inspection, SimReport};

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Which mock cloud to run.
    #[arg(long, value_enum, default_value_t = CloudKind::Aws)]
    pub cloud: CloudKind,
    /// Nodes in the generated cluster.
    #[arg(long, default_value_t = 200)]
    pub nodes: u32,
    /// Managed route tables (one per availability zone / node subnet).
    #[arg(long, default_value_t = 2)]
    pub tables: u32,
    /// Routes we must not touch, spread over the tables (gateways, peering, NAT, another
    /// cluster's nodes).
    #[arg(long, default_value_t = 8)]
    pub foreign_routes: u32,
    /// Share (0..=1) of calls the mock fails (AWS: 500/503/dropped connections; Azure:
    /// failed long-running operations).
    #[arg(long, default_value_t = 0.0)]
    pub faults: f64,
    /// Routes per table (per family on AWS). Default: 1000 on AWS (the highest quota EC2
    /// grants), 400 on Azure.
    #[arg(long)]
    pub route_limit: Option<u32>,
    /// Give every node an IPv6 podCIDR too.
    #[arg(long)]
    pub dual_stack: bool,
    /// After converging, replace this share of nodes (new instances taking over their
    /// podCIDRs) and converge again.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Run the cloud (buckets, latencies, operations) and the controller's pacing this many
    /// times faster than real time.
    #[arg(long, default_value_t = 10.0)]
    pub time_scale: f64,
    /// Cloud-side latency of one API call, in cloud milliseconds.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// Give up after this many (wall) seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Seed of the generated cluster.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long discovered tables and node lookups are trusted, in cloud seconds (the
    /// controller's default is 600): short enough and cache expiry happens inside the run.
    #[arg(long, default_value_t = 600.0)]
    pub discovery_ttl: f64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Drive the cluster through the mock Kubernetes API with `--replicas` separate
    /// `cni-cloud-controller run` processes competing for the Lease (AWS).
    #[arg(long)]
    pub kube: bool,
    /// Controller processes in `--kube` mode.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// `--kube`: SIGKILL the leader once this share of the routes is present.
    #[arg(long)]
    pub kill_leader_at: Option<f64>,
    /// `--kube`: the deploy/base whose RBAC the mock API enforces (default: the source tree's).
    #[arg(long)]
    pub deploy_dir: Option<std::path::PathBuf>,
    /// Draw routes present over time (the mock cloud's state) against the rate-limit floor,
    /// with throttles, injected faults and (--kube) leader changes, into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

impl SimulateArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if self.nodes == 0 || self.nodes > 60_000 {
            bail!("--nodes must be within 1..=60000, got {}", self.nodes);
        }
        if self.tables == 0 || self.tables > 50 {
            bail!("--tables must be within 1..=50, got {}", self.tables);
        }
        if !(0.0..=1.0).contains(&self.faults) {
            bail!("--faults must be within 0..=1, got {}", self.faults);
        }
        if !(0.0..=1.0).contains(&self.churn) {
            bail!("--churn must be within 0..=1, got {}", self.churn);
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1000.0) {
            bail!(
                "--time-scale must be within (0, 1000], got {}",
                self.time_scale
            );
        }
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            bail!("--timeout must be > 0, got {}", self.timeout);
        }
        if self.kube && self.cloud != CloudKind::Aws {
            bail!("--kube runs the AWS scenario; use --cloud aws");
        }
        if !self.kube && (self.kill_leader_at.is_some() || self.deploy_dir.is_some()) {
            bail!("--kill-leader-at and --deploy-dir need --kube");
        }
        if self.kube && !(1..=5).contains(&self.replicas) {
            bail!("--replicas must be within 1..=5, got {}", self.replicas);
        }
        if let Some(f) = self.kill_leader_at
            && (!(f > 0.0 && f <= 1.0) || self.replicas < 2)
        {
            bail!("--kill-leader-at must be within (0, 1] and needs --replicas 2 or more, got {f}");
        }
        if self.kube && (self.churn > 0.0 || self.faults > 0.0) {
            bail!("--churn and --faults are not available with --kube");
        }
        if self.route_limit == Some(0) {
            bail!("--route-limit must be at least 1");
        }
        Ok(())
    }
}

/// The mock cloud behind a simulation.
pub enum Backend {
    Aws(aws::AwsSim),
    Azure(azure::AzureSim),
}

impl Backend {
    fn provider(&self) -> Arc<dyn CloudProvider> {
        match self {
            Backend::Aws(s) => s.provider.clone(),
            Backend::Azure(s) => s.provider.clone(),
        }
    }

    fn inspect(&self, cluster: &SimCluster) -> Inspection {
        match self {
            Backend::Aws(s) => s.inspect(cluster),
            Backend::Azure(s) => s.inspect(cluster),
        }
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        match self {
            Backend::Aws(s) => s.api_calls(),
            Backend::Azure(s) => s.api_calls(),
        }
    }

    fn mutating_calls(&self) -> u64 {
        match self {
            Backend::Aws(s) => s.mutating_calls(),
            Backend::Azure(s) => s.mutating_calls(),
        }
    }

    fn list_calls(&self) -> u64 {
        match self {
            Backend::Aws(s) => s.list_calls(),
            Backend::Azure(s) => s.list_calls(),
        }
    }

    fn throttled(&self) -> u64 {
        match self {
            Backend::Aws(s) => s.throttled(),
            Backend::Azure(s) => s.throttled(),
        }
    }

    fn faults_injected(&self) -> u64 {
        match self {
            Backend::Aws(s) => s.faults_injected(),
            Backend::Azure(s) => s.faults_injected(),
        }
    }

    /// The rate-limit floor for `writes` mutating calls, in wall seconds at this time scale.
    fn floor_seconds(&self, writes: u64) -> f64 {
        match self {
            Backend::Aws(s) => s.floor_seconds(writes),
            Backend::Azure(s) => s.floor_seconds(),
        }
    }

    /// Replace `victims` with new instances (same podCIDRs); returns the new cluster.
    fn churn(&mut self, cluster: &SimCluster, victims: &[usize]) -> SimCluster {
        match self {
            Backend::Aws(s) => s.churn(cluster, victims),
            Backend::Azure(s) => s.churn(cluster, victims),
        }
    }
}

pub async fn simulate(args: SimulateArgs) -> anyhow::Result<i32> {
    args.validate()?;
    let interactive = args.output == OutputFormat::Text && std::io::stderr().is_terminal();
    let mut cluster = SimCluster::generate(&args);
    let mut backend = match args.cloud {
        CloudKind::Aws => Backend::Aws(aws::AwsSim::start(&args, &mut cluster).await?),
        CloudKind::Azure => Backend::Azure(azure::AzureSim::start(&args, &mut cluster).await?),
    };
    let expected = backend.inspect(&cluster);
    let prep_writes = cluster.nodes.iter().filter(|n| !n.forwarding).count() as u64;
    let timeline = (args.plot.as_ref()).map(|_| Arc::new(plot::Timeline::for_backend(&backend)));
    if args.kube {
        let Backend::Aws(sim) = &backend else {
            bail!("--kube runs the AWS scenario");
        };
        let progress = report::Progress::new(interactive, expected.routes_expected)
            .with_timeline(timeline.clone());
        let url = sim.server.url();
        let out = kube_mode::run(&args, &cluster, sim, &url, &progress).await?;
        progress.finish();
        let report = SimReport {
            cloud: args.cloud_name(),
            nodes: u64::from(args.nodes),
            fabric: out.state,
            quota_blocked_reported: out.quota_reported,
            converged: out.converged,
            seconds: out.seconds,
            floor_seconds: backend.floor_seconds(expected.routes_expected + prep_writes),
            reads_per_node: report::per_node(
                report::node_reads(&backend.api_calls()),
                u64::from(args.nodes),
            ),
            api_calls: backend.api_calls(),
            mutating_calls: out.mutating_first,
            node_prep_calls: prep_writes,
            throttled: backend.throttled(),
            faults_injected: backend.faults_injected(),
            time_scale: args.time_scale,
            steady_state: None,
            churn: None,
            kube: Some(out.summary),
        };
        return finish(&args, &report, timeline.as_deref());
    }

    let sink = Arc::new(MemorySink::default());
    let provider = backend.provider();
    let config = ReconcilerConfig {
        cluster_cidrs: cluster.cluster_cidrs.clone(),
        mutation_budget: Duration::from_secs_f64(30.0 / args.time_scale),
        discovery_ttl: Duration::from_secs_f64(args.discovery_ttl.max(0.0) / args.time_scale),
        ..ReconcilerConfig::default()
    };
    let mut reconciler = Reconciler::new(provider, config, Arc::new(AlwaysLeader), sink.clone());
    let first_snapshot: SharedSnapshot = Arc::new(cluster.snapshot());
    let (snap_tx, snap_rx) = watch::channel(first_snapshot.clone());
    let (_leader_tx, leader_rx) = watch::channel(true);
    let (sum_tx, mut sum_rx) = watch::channel(PassSummary {
        passes: 0,
        snapshot: None,
        report: None,
        error: None,
    });
    let timing = DriveTiming::default().scaled(args.time_scale);
    let stop = CancellationToken::new();
    let progress = report::Progress::new(interactive, expected.routes_expected)
        .with_timeline(timeline.clone());

    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let started = Instant::now();
    let driver = {
        let stop = stop.clone();
        async move {
            drive(&mut reconciler, snap_rx, leader_rx, timing, stop, sum_tx).await;
            reconciler
        }
    };
    let (reconciler_back, outcome) = tokio::join!(driver, async {
        let first = wait_converged(
            &backend,
            &cluster,
            &first_snapshot,
            &mut sum_rx,
            deadline,
            &progress,
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let mutating_first = backend.mutating_calls();
        let mut churn = None;
        let mut current = cluster.clone();
        if first.is_some() && args.churn > 0.0 {
            let victims = cluster.victims(args.churn);
            current = backend.churn(&cluster, &victims);
            let churn_start = Instant::now();
            let before = backend.mutating_calls();
            let snapshot: SharedSnapshot = Arc::new(current.snapshot());
            snap_tx.send_replace(snapshot.clone());
            let done = wait_converged(
                &backend,
                &current,
                &snapshot,
                &mut sum_rx,
                deadline,
                &progress,
            )
            .await;
            churn = Some(report::Churn {
                nodes_replaced: victims.len() as u64,
                converged: done.is_some(),
                seconds: churn_start.elapsed().as_secs_f64(),
                mutating_calls: backend.mutating_calls() - before,
            });
        }
        // Steady state: one more pass over a converged fabric must list and not write.
        let steady = if first.is_some() {
            let (mutating, lists) = (backend.mutating_calls(), backend.list_calls());
            let passes = sum_rx.borrow().passes;
            let wait = wait_pass(&mut sum_rx, passes + 1, deadline).await;
            wait.then(|| report::Steady {
                mutating_calls: backend.mutating_calls() - mutating,
                list_calls: backend.list_calls() - lists,
                tables: u64::from(args.tables),
            })
        } else {
            None
        };
        stop.cancel();
        (first, seconds, mutating_first, churn, steady, current)
    });
    drop(reconciler_back);
    let (first, seconds, mutating_first, churn, steady, current) = outcome;
    progress.finish();

    let final_state = backend.inspect(&current);
    let statuses = sink.latest();
    let quota_reported = statuses
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                crate::cluster::NodeRouteStatus::QuotaExceeded { .. }
            )
        })
        .count() as u64;
    let converged = first.is_some() && churn.as_ref().is_none_or(|c| c.converged);
    let report = SimReport {
        cloud: args.cloud_name(),
        nodes: u64::from(args.nodes),
        fabric: final_state,
        quota_blocked_reported: quota_reported,
        converged,
        seconds,
        floor_seconds: backend.floor_seconds(expected.routes_expected + prep_writes),
        reads_per_node: report::per_node(
            report::node_reads(&backend.api_calls()),
            u64::from(args.nodes),
        ),
        api_calls: backend.api_calls(),
        mutating_calls: mutating_first,
        node_prep_calls: prep_writes,
        throttled: backend.throttled(),
        faults_injected: backend.faults_injected(),
        time_scale: args.time_scale,
        steady_state: steady,
        churn,
        kube: None,
    };
    finish(&args, &report, timeline.as_deref())
}

fn finish(
    args: &SimulateArgs,
    report: &SimReport,
    timeline: Option<&plot::Timeline>,
) -> anyhow::Result<i32> {
    if let (Some(path), Some(timeline)) = (&args.plot, timeline) {
        plot::write(path, timeline, report)?;
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(report)?),
        OutputFormat::Text => print!("{}", report.render()),
    }
    let clean = report
        .kube
        .as_ref()
        .is_none_or(|k| k.duplicate_mutations == 0);
    Ok(
        if report.converged && report.fabric.foreign_routes_touched == 0 && clean {
            0
        } else {
            1
        },
    )
}

impl SimulateArgs {
    fn cloud_name(&self) -> String {
        match self.cloud {
            CloudKind::Aws => "aws".into(),
            CloudKind::Azure => "azure".into(),
        }
    }
}

/// Wait until a pass reports convergence *and* the mock's own state agrees; `None` on
/// timeout.
async fn wait_converged(
    backend: &Backend,
    cluster: &SimCluster,
    snapshot: &SharedSnapshot,
    summaries: &mut watch::Receiver<PassSummary>,
    deadline: Instant,
    progress: &report::Progress,
) -> Option<Inspection> {
    loop {
        let converged = {
            let s = summaries.borrow_and_update();
            // Only a pass over this very node list counts.
            s.snapshot
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, snapshot))
                && s.report.as_ref().is_some_and(|r| r.converged())
        };
        let state = backend.inspect(cluster);
        progress.update(state.routes_present);
        if converged && state.is_converged() {
            return Some(state);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return None,
            r = summaries.changed() => if r.is_err() { return None },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn wait_pass(
    summaries: &mut watch::Receiver<PassSummary>,
    passes: u64,
    deadline: Instant,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => false,
        r = summaries.wait_for(|s| s.passes >= passes) => r.is_ok(),
    }
}

impl SimCluster {
    pub fn snapshot(&self) -> NodeSnapshot {
        NodeSnapshot {
            nodes: self.nodes.iter().map(|n| n.node.clone()).collect(),
            authoritative: true,
            listed: true,
        }
    }
}
