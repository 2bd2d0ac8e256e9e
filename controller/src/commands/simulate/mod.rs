//! `cni-cloud-controller simulate`: the real planner, reconciler and provider against an
//! in-process mock cloud over real HTTP on loopback, with a generated cluster. Prints a
//! summary (or one JSON object) and exits 0 only when the fabric converged without a
//! foreign route touched.

mod args;
mod aws;
mod azure;
mod cloud;
mod cluster;
mod datapath;
mod kube_mode;
mod plot;
mod progress;
mod render;
mod replicas;
mod report;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::{AlwaysLeader, NodeSnapshot, SharedSnapshot};
use crate::commands::OutputFormat;
use crate::commands::cloud::CloudKind;
use crate::reconcile::{DriveTiming, PassSummary, Reconciler, ReconcilerConfig, drive};

use aws::AwsSim;
use azure::AzureSim;
use cloud::SimCloud;
use plot::Timeline;
use progress::Progress;
use report::{Churn, CloudEvents, ReadFaults, Steady};

pub use args::SimulateArgs;
use cluster::StatusWatch;
pub use cluster::{SimCluster, SimNode};
pub use report::{Inspection, SimReport};

/// Resync passes run with `--read-faults` failing reads.
const READ_FAULT_PASSES: u64 = 3;

/// The work a run has ahead of it, and what watches it being done.
struct Work {
    routes_expected: u64,
    /// Interfaces that must be switched to forwarding first.
    prep_writes: u64,
    timeline: Option<Arc<Timeline>>,
    progress: Progress,
}

impl Work {
    fn new(args: &SimulateArgs, cloud: &dyn SimCloud, cluster: &SimCluster) -> Work {
        let interactive = args.output == OutputFormat::Text && std::io::stderr().is_terminal();
        let routes_expected = cloud.inspect(cluster).routes_expected;
        let timeline = (args.plot.as_ref()).map(|_| Arc::new(Timeline::new(cloud.counter_probe())));
        Work {
            routes_expected,
            prep_writes: cluster.nodes.iter().filter(|n| !n.forwarding).count() as u64,
            progress: Progress::new(interactive, routes_expected).with_timeline(timeline.clone()),
            timeline,
        }
    }

    /// The report's counters, read from the mock now; the run's own findings (the fabric,
    /// convergence, seconds, mutating calls, steady state, churn, `--kube`) are the caller's.
    fn counted(&self, args: &SimulateArgs, cloud: &dyn SimCloud) -> SimReport {
        SimReport {
            cloud: args.cloud_name(),
            nodes: u64::from(args.nodes),
            floor_seconds: cloud.floor_seconds(self.routes_expected + self.prep_writes),
            reads_per_node: cloud.node_reads() as f64 / f64::from(args.nodes.max(1)),
            api_calls: cloud.api_calls(),
            node_prep_calls: self.prep_writes,
            throttled: cloud.throttled(),
            faults_injected: cloud.faults_injected(),
            time_scale: args.time_scale,
            ..SimReport::default()
        }
    }
}

pub async fn simulate(args: SimulateArgs) -> anyhow::Result<i32> {
    if args.datapath {
        return datapath::simulate(args).await;
    }
    args.validate()?;
    let mut cluster = SimCluster::generate(&args);
    let cloud: Box<dyn SimCloud> = match args.cloud {
        CloudKind::Aws => Box::new(AwsSim::start(&args, &mut cluster).await?),
        CloudKind::Azure => Box::new(AzureSim::start(&args, &mut cluster).await?),
    };
    if args.kube {
        return in_kube(&args, &cluster, cloud.as_ref()).await;
    }
    in_process(&args, cluster, cloud).await
}

/// `--kube`: separate `run` processes against `sim`, through the mock Kubernetes API.
async fn in_kube(
    args: &SimulateArgs,
    cluster: &SimCluster,
    sim: &dyn SimCloud,
) -> anyhow::Result<i32> {
    let work = Work::new(args, sim, cluster);
    let out = kube_mode::run(args, cluster, sim, &work.progress).await?;
    work.progress.finish();
    let report = SimReport {
        fabric: out.state,
        quota_blocked_reported: out.reported.quota,
        conflicts_reported: out.reported.conflict,
        converged: out.converged,
        seconds: out.seconds,
        mutating_calls: out.mutating_first,
        kube: Some(out.summary),
        read_faults: out.read_faults,
        ..work.counted(args, sim)
    };
    finish(args, &report, work.timeline.as_deref())
}

/// The controller's reconciler and driver in this process, against `cloud`.
async fn in_process(
    args: &SimulateArgs,
    cluster: SimCluster,
    mut cloud: Box<dyn SimCloud>,
) -> anyhow::Result<i32> {
    let work = Work::new(args, cloud.as_ref(), &cluster);
    let sink = Arc::new(StatusWatch::default());
    let config = ReconcilerConfig {
        cluster_cidrs: cluster.cluster_cidrs.clone(),
        mutation_budget: Duration::from_secs_f64(30.0 / args.time_scale),
        discovery_ttl: Duration::from_secs_f64(args.discovery_ttl.max(0.0) / args.time_scale),
        consistency_window: ReconcilerConfig::default()
            .consistency_window
            .div_f64(args.time_scale),
        ..ReconcilerConfig::default()
    };
    let mut reconciler = Reconciler::new(
        cloud.provider(),
        config,
        Arc::new(AlwaysLeader),
        sink.clone(),
    );
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
    let progress = &work.progress;

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
            cloud.as_ref(),
            &cluster,
            &first_snapshot,
            &mut sum_rx,
            deadline,
            progress,
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let mutating_first = cloud.mutating_calls();
        let mut churn = None;
        let mut current = cluster.clone();
        // Cloud events: a table leaves the cluster, instances die and their podCIDRs go to
        // new nodes.
        let mut events = None;
        if first.is_some() && (args.terminate > 0 || args.lose_table) {
            let start = Instant::now();
            let before = cloud.mutating_calls();
            let lost = if args.lose_table {
                cloud.lose_table()
            } else {
                None
            };
            let victims = current.victims_n(args.terminate as usize);
            let blackholed = cloud.terminate(&current, &victims);
            // The dead nodes stay listed for a pass, as they do until Kubernetes drops them.
            let passes = sum_rx.borrow().passes;
            wait_pass(&mut sum_rx, passes + 1, deadline).await;
            current = cloud.churn(&current, &victims);
            let done = converge_on(
                cloud.as_ref(),
                &current,
                &snap_tx,
                &mut sum_rx,
                deadline,
                progress,
            )
            .await;
            events = Some(CloudEvents {
                instances_terminated: victims.len() as u64,
                routes_blackholed: blackholed,
                lost_table_routes: lost.as_ref().map_or(0, |(_, n)| *n),
                table_lost: lost.map(|(id, _)| id),
                converged: done,
                seconds: start.elapsed().as_secs_f64(),
                mutating_calls: cloud.mutating_calls() - before,
            });
        }
        if first.is_some() && args.churn > 0.0 {
            let victims = current.victims(args.churn);
            current = cloud.churn(&current, &victims);
            let churn_start = Instant::now();
            let before = cloud.mutating_calls();
            let done = converge_on(
                cloud.as_ref(),
                &current,
                &snap_tx,
                &mut sum_rx,
                deadline,
                progress,
            )
            .await;
            churn = Some(Churn {
                nodes_replaced: victims.len() as u64,
                converged: done,
                seconds: churn_start.elapsed().as_secs_f64(),
                mutating_calls: cloud.mutating_calls() - before,
            });
        }
        // Read faults: a few resync passes with reads failing, watching the conditions of
        // every node routed now (the controller must not flip them, nor claim a route gone).
        let mut read_faults = None;
        if first.is_some() && args.read_faults > 0.0 {
            let judged = cloud.judge(&current);
            let routed = (current.nodes.iter().zip(&judged.routed))
                .filter(|(_, r)| **r)
                .map(|(n, _)| n.node.name.clone());
            sink.watch(routed);
            let injected = cloud.faults_injected();
            cloud.set_read_faults(args.read_faults);
            let passes = sum_rx.borrow().passes;
            wait_pass(&mut sum_rx, passes + READ_FAULT_PASSES, deadline).await;
            cloud.set_read_faults(0.0);
            read_faults = Some((
                sum_rx.borrow().passes - passes,
                cloud.faults_injected() - injected,
            ));
        }
        // Steady state: one more pass over a converged fabric must list and not write.
        let steady = if first.is_some() {
            let (mutating, lists) = (cloud.mutating_calls(), cloud.list_calls());
            let (calls, reads) = (cloud.api_calls(), cloud.node_reads());
            let passes = sum_rx.borrow().passes;
            let wait = wait_pass(&mut sum_rx, passes + 1, deadline).await;
            wait.then(|| {
                let node_reads = cloud.node_reads() - reads;
                Steady {
                    mutating_calls: cloud.mutating_calls() - mutating,
                    list_calls: cloud.list_calls() - lists,
                    // The tables still managed: a lost one is listed no more.
                    tables: u64::from(args.tables) - u64::from(args.lose_table),
                    calls: calls_since(&calls, &cloud.api_calls()),
                    node_reads,
                    reads_per_node: node_reads as f64 / f64::from(args.nodes.max(1)),
                }
            })
        } else {
            None
        };
        stop.cancel();
        (
            first,
            seconds,
            mutating_first,
            churn,
            steady,
            current,
            read_faults,
            events,
        )
    });
    drop(reconciler_back);
    let (first, seconds, mutating_first, churn, steady, current, read_faults, events) = outcome;
    let read_faults = read_faults.map(|(passes, injected)| ReadFaults {
        read_fault_passes: passes,
        read_faults_injected: injected,
        condition_flips: sink.flips(),
    });
    progress.finish();

    let reported = |want: fn(&crate::cluster::NodeRouteStatus) -> bool| {
        sink.sink
            .latest()
            .iter()
            .filter(|r| want(&r.status))
            .count() as u64
    };
    use crate::cluster::NodeRouteStatus as S;
    let quota_reported = reported(|s| matches!(s, S::QuotaExceeded { .. }));
    let conflicts_reported = reported(|s| matches!(s, S::Conflict { .. }));
    // The verdict is the final fabric's, after the steady-state pass: a controller that
    // converged once and then broke something (or wrote again) does not pass.
    let fabric = cloud.inspect(&current);
    let converged = first.is_some()
        && churn.as_ref().is_none_or(|c| c.converged)
        && events.as_ref().is_none_or(|e| e.converged)
        && fabric.is_converged()
        && steady.as_ref().is_some_and(|s| s.mutating_calls == 0);
    let report = SimReport {
        fabric,
        quota_blocked_reported: quota_reported,
        conflicts_reported,
        converged,
        seconds,
        mutating_calls: mutating_first,
        steady_state: steady,
        churn,
        read_faults,
        cloud_events: events,
        ..work.counted(args, cloud.as_ref())
    };
    finish(args, &report, work.timeline.as_deref())
}

fn finish(
    args: &SimulateArgs,
    report: &SimReport,
    timeline: Option<&Timeline>,
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
        .is_none_or(|k| k.duplicate_mutations == 0)
        && (report.read_faults.as_ref()).is_none_or(|f| f.condition_flips == 0);
    Ok(
        if report.converged && report.fabric.foreign_routes_touched == 0 && clean {
            0
        } else {
            1
        },
    )
}

/// Wait until a pass reports convergence *and* the mock's own state agrees; `None` on
/// timeout.
async fn wait_converged(
    cloud: &dyn SimCloud,
    cluster: &SimCluster,
    snapshot: &SharedSnapshot,
    summaries: &mut watch::Receiver<PassSummary>,
    deadline: Instant,
    progress: &Progress,
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
        let state = cloud.inspect(cluster);
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

/// The calls of each action made between `before` and `now` (actions with none left out).
fn calls_since(
    before: &std::collections::BTreeMap<String, u64>,
    now: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    now.iter()
        .map(|(k, &v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Hand the controller `cluster`'s node list and wait until it converged on it.
async fn converge_on(
    cloud: &dyn SimCloud,
    cluster: &SimCluster,
    snapshots: &watch::Sender<SharedSnapshot>,
    summaries: &mut watch::Receiver<PassSummary>,
    deadline: Instant,
    progress: &Progress,
) -> bool {
    let snapshot: SharedSnapshot = Arc::new(cluster.snapshot());
    snapshots.send_replace(snapshot.clone());
    wait_converged(cloud, cluster, &snapshot, summaries, deadline, progress)
        .await
        .is_some()
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
