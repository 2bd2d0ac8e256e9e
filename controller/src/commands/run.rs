//! `cni-cloud-controller run`: the controller itself. Watches Nodes, elects a leader on a
//! Lease, and while leading keeps the route tables right; standby replicas keep their
//! caches warm and take over as soon as the lease is free.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::{AlwaysLeader, Fence, NodeReport, SharedSnapshot, StatusSink};
use crate::commands::cloud::CloudArgs;
use crate::commands::nodes_file::NodesFileArgs;
use crate::health::Heartbeat;
use crate::kube::args::{KubeArgs, parse_duration};
use crate::kube::lease::{LeaseElector, LeaseTiming};
use crate::kube::{nodes, runtime, status};
use crate::metrics::{self, Metrics, Observer, Readiness};
use crate::planner::status_name;
use crate::reconcile::{DriveTiming, PassSummary, Reconciler, drive};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Drift check: re-list every table this often even when nothing changed.
    #[arg(long, env = "CNI_CLOUD_RESYNC", default_value = "60s", value_parser = parse_duration)]
    pub resync: Duration,
    /// Plan and report, never write to the cloud or to Nodes.
    #[arg(long, env = "CNI_CLOUD_DRY_RUN")]
    pub dry_run: bool,
    #[command(flatten)]
    pub nodes: NodesFileArgs,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    runtime::init_logging(args.kube.log_format);
    let timing = args.kube.lease_timing().map_err(anyhow::Error::msg)?;
    let mut config = args.cloud.reconciler_config(args.dry_run)?;
    // A batch may start only with half the renew deadline left on the lease: a renewal
    // is due every retry period, so a healthy leader always has more than that.
    config.mutation_budget = timing.renew_deadline / 2;
    if args.resync.is_zero() {
        anyhow::bail!("--resync must be greater than zero");
    }
    let drive_timing = DriveTiming {
        resync: args.resync,
        ..DriveTiming::default()
    };
    let shutdown = runtime::shutdown_on_signal();
    let provider = args
        .cloud
        .provider()
        .await
        .context("setting up the cloud provider")?;
    let metrics = Arc::new(Metrics::new());
    metrics.track_api_counters(provider.clone());
    let ready = Readiness {
        heartbeat: Heartbeat::for_resync(args.resync),
        ..Readiness::default()
    };

    // A bad nodes file is refused before anything is served.
    let nodes_from_file = args.nodes.load()?;
    let bound = metrics::serve(
        args.kube.metrics_addr,
        metrics.clone(),
        ready.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("serving metrics on {}", args.kube.metrics_addr))?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");

    // Where nodes, leadership and statuses come from: a file (one replica, no election)
    // or the Kubernetes API. Either way one reconciler and one driver run below.
    let wiring = match nodes_from_file {
        Some(snapshot) => {
            ready.caches_synced.store(true, Ordering::Relaxed);
            ready.leader.store(true, Ordering::Relaxed);
            metrics.leader.set(1);
            let (snapshot_tx, snapshots) = watch::channel(Arc::new(snapshot));
            let (leader_tx, leader) = watch::channel(true);
            Wiring {
                snapshots,
                leader,
                fence: Arc::new(AlwaysLeader),
                sink: Arc::new(LogSink),
                elector: None,
                _fixed: Some((snapshot_tx, leader_tx)),
            }
        }
        None => match kube_wiring(&args, timing, &ready, &metrics, &shutdown).await? {
            Some(wiring) => wiring,
            None => return Ok(()),
        },
    };
    let mut reconciler = Reconciler::new(provider, config, wiring.fence, wiring.sink)
        .with_observer(Arc::new(Observer { metrics, ready }));
    let (tx, _rx) = watch::channel(PassSummary {
        passes: 0,
        snapshot: None,
        report: None,
        error: None,
    });
    drive(
        &mut reconciler,
        wiring.snapshots,
        wiring.leader,
        drive_timing,
        shutdown.clone(),
        tx,
    )
    .await;

    // SIGTERM: the pass in flight was dropped by `drive`; give the lease up so the standby
    // takes over at once instead of after the lease duration.
    if let Some((stop, task)) = wiring.elector {
        stop.cancel();
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The edges the reconciler runs between.
struct Wiring {
    snapshots: watch::Receiver<SharedSnapshot>,
    leader: watch::Receiver<bool>,
    fence: Arc<dyn Fence>,
    sink: Arc<dyn StatusSink>,
    /// The election loop, to stop (and release the Lease) on shutdown.
    elector: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    /// A nodes file's snapshot and leadership never change, but their channels must stay
    /// open: a closed one tells the driver to stop.
    _fixed: Option<(watch::Sender<SharedSnapshot>, watch::Sender<bool>)>,
}

/// The Kubernetes edges: node reflector (waited for until synced), Lease election with its
/// fence, the NetworkUnavailable/Event writer. `None` when shutdown came first.
async fn kube_wiring(
    args: &RunArgs,
    timing: LeaseTiming,
    ready: &Readiness,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Wiring>> {
    let client = runtime::client(args.kube.kubeconfig.as_deref()).await?;
    let identity = args.kube.identity();
    tracing::info!(%identity, "running against the Kubernetes API");

    let watch = nodes::start(
        client.clone(),
        nodes::Publish::new(args.kube.node_debounce, args.kube.node_max_delay),
        shutdown.clone(),
    );
    {
        let mut synced = watch.synced.clone();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            r = synced.wait_for(|s| *s) => { r.context("node watch ended before its first list")?; }
        }
    }
    ready.caches_synced.store(true, Ordering::Relaxed);
    tracing::info!("node cache synced");

    let elector = LeaseElector::new(
        kube::Api::<Lease>::namespaced(client.clone(), &args.kube.lease_namespace),
        &args.kube.lease_name,
        &identity,
        timing,
    );
    let fence = Arc::new(elector.fence());
    let leader_rx = elector.subscribe();
    let elector_stop = CancellationToken::new();
    let elector_task = tokio::spawn(elector.run(elector_stop.clone()));
    {
        // Mirror leadership into /readyz and the leader gauge.
        let mut rx = leader_rx.clone();
        let (ready, metrics, stop) = (ready.clone(), metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let leading = *rx.borrow_and_update();
                ready.leader.store(leading, Ordering::Relaxed);
                metrics.leader.set(i64::from(leading));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = rx.changed() => if r.is_err() { return },
                }
            }
        });
    }

    let sink: Arc<dyn StatusSink> = if args.dry_run {
        Arc::new(LogSink)
    } else {
        Arc::new(
            status::KubeStatusWriter::new(client, watch.store.clone(), &identity)
                .with_guard_object(ObjectReference {
                    api_version: Some("coordination.k8s.io/v1".into()),
                    kind: Some("Lease".into()),
                    namespace: Some(args.kube.lease_namespace.clone()),
                    name: Some(args.kube.lease_name.clone()),
                    ..Default::default()
                }),
        )
    };
    Ok(Some(Wiring {
        snapshots: watch.snapshots.clone(),
        leader: leader_rx,
        fence,
        sink,
        elector: Some((elector_stop, elector_task)),
        _fixed: None,
    }))
}

/// Logs status transitions (dry runs and `--nodes-file` runs have no Nodes to write to).
struct LogSink;

#[async_trait::async_trait]
impl StatusSink for LogSink {
    async fn publish(&self, reports: &[NodeReport]) {
        for r in reports.iter().filter(|r| !r.status.is_routed()) {
            tracing::debug!(node = %r.node, status = status_name(&r.status), detail = ?r.status, "node not routed");
        }
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for r in reports {
            *counts.entry(status_name(&r.status)).or_default() += 1;
        }
        tracing::info!(
            total = reports.len(),
            ?counts,
            "node route status (RUST_LOG=debug lists the nodes)"
        );
    }
}
