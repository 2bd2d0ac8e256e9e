//! The reconciler: one pass observes (tables, node targets), plans, writes, re-lists to
//! verify, and hands the verified per-node result to the status sink.
//!
//! Writes are gated on the [`Fence`] right before every batch is sent, so a replica that
//! lost its lease stops mutating at once. On AWS a table's changes go out in small
//! batches (one call per change, paced by the provider); on Azure a table's whole pass is
//! one PUT, so it is one batch.

mod acknowledged;
mod driver;
mod observe;
mod targets;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use serde::Serialize;
use tokio::time::Instant;

use cni_cloud_providers::{
    CloudError, CloudProvider, ErrorKind, RouteChange, RouteTable, TableId, WriteFence,
    WriteGranularity,
};

use crate::cluster::{Fence, NodeReport, NodeRouteStatus, NodeSnapshot, StatusSink};
use crate::planner::{self, Plan, PlanNode, PlanOptions};
pub use observe::PassObserver;

pub use driver::{DriveTiming, PassSummary, drive};
pub use targets::TargetCache;

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// The cluster's pod CIDRs (IPv4 and/or IPv6): only routes inside them can be ours.
    pub cluster_cidrs: Vec<IpNet>,
    /// Deletion guard: hold back a plan deleting more than this share of our routes…
    pub guard_share: f64,
    /// …and more than this many, unless the node list is authoritative.
    pub guard_min: usize,
    /// Compute and report, never write.
    pub dry_run: bool,
    /// Tables written at the same time (the provider paces its own calls).
    pub table_concurrency: usize,
    /// Changes sent per fenced batch on clouds with one call per change.
    pub batch_size: usize,
    /// Lease time that must remain when a write batch starts. Must be below the lease's
    /// renew deadline, or a leader could never write (`run` uses half of it).
    pub mutation_budget: Duration,
    /// How long discovered tables and resolved targets are trusted.
    pub discovery_ttl: Duration,
    /// How long a write the cloud acknowledged counts as done while listings do not show
    /// it yet (EC2's describes are eventually consistent).
    pub consistency_window: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        let guard = PlanOptions::default();
        ReconcilerConfig {
            cluster_cidrs: Vec::new(),
            guard_share: guard.guard_share,
            guard_min: guard.guard_min,
            dry_run: false,
            table_concurrency: 4,
            batch_size: 16,
            mutation_budget: Duration::from_secs(5),
            discovery_ttl: Duration::from_secs(600),
            consistency_window: Duration::from_secs(10),
        }
    }
}

impl ReconcilerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster_cidrs.is_empty() {
            return Err("at least one cluster CIDR is required".into());
        }
        if !(self.guard_share > 0.0 && self.guard_share <= 1.0) {
            return Err(format!(
                "deletion guard share must be in (0, 1], got {}",
                self.guard_share
            ));
        }
        if self.table_concurrency == 0 || self.batch_size == 0 {
            return Err("table concurrency and batch size must be at least 1".into());
        }
        Ok(())
    }
}

/// A change the cloud refused or that failed after retries.
#[derive(Debug, Clone, Serialize)]
pub struct FailedChange {
    pub table: TableId,
    pub change: RouteChange,
    pub error: String,
    pub kind: ErrorKind,
}

/// What one pass did.
#[derive(Debug, Clone)]
pub struct PassReport {
    /// The plan computed from a fresh listing *after* the writes (the verified state); in
    /// a dry run or a converged pass, the only plan.
    pub plan: Plan,
    /// Changes sent to the cloud.
    pub attempted: usize,
    pub failed: Vec<FailedChange>,
    /// Writes skipped because the lease could not cover them.
    pub fenced: bool,
    /// Interfaces whose forwarding was switched on.
    pub prepared: usize,
    /// Nodes whose interface could not be prepared (retried with backoff).
    pub unprepared: usize,
    pub took: Duration,
}

impl PassReport {
    /// Nothing left to do: the verified plan is empty and nothing failed or was fenced.
    pub fn converged(&self) -> bool {
        !self.fenced
            && self.failed.is_empty()
            && self.unprepared == 0
            && self.plan.is_converged()
            && self.plan.tables.iter().all(|t| t.dead_targets.is_empty())
    }
}

/// Why a pass could not plan at all (statuses stay as they were).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("discovering route tables: {0}")]
    Discover(CloudError),
    #[error("listing route table {0}: {1}")]
    List(TableId, CloudError),
    #[error("no route tables are managed for this cluster (check the cluster tag / table list)")]
    NoTables,
}

pub struct Reconciler {
    provider: Arc<dyn CloudProvider>,
    config: ReconcilerConfig,
    fence: Arc<dyn Fence>,
    sink: Arc<dyn StatusSink>,
    targets: TargetCache,
    tables: Option<(Vec<TableId>, Instant)>,
    observer: Option<Arc<dyn PassObserver>>,
    guard_was_tripped: bool,
    acknowledged: std::sync::Mutex<acknowledged::Acknowledged>,
}

impl Reconciler {
    pub fn new(
        provider: Arc<dyn CloudProvider>,
        config: ReconcilerConfig,
        fence: Arc<dyn Fence>,
        sink: Arc<dyn StatusSink>,
    ) -> Self {
        Reconciler {
            provider,
            config,
            fence,
            sink,
            targets: TargetCache::default(),
            tables: None,
            observer: None,
            acknowledged: Default::default(),
            guard_was_tripped: false,
        }
    }

    /// Report passes and progress to `observer` (metrics, health).
    pub fn with_observer(mut self, observer: Arc<dyn PassObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn provider(&self) -> &Arc<dyn CloudProvider> {
        &self.provider
    }

    /// Mark progress for `/healthz`.
    pub fn beat(&self) {
        if let Some(o) = &self.observer {
            o.progress();
        }
    }

    /// We just took the lease: decide from the world as it is, not from what this replica
    /// remembers of its last term (another leader wrote in between).
    pub async fn leadership_gained(&mut self) {
        self.guard_was_tripped = false;
        self.sink.leadership_gained().await;
    }

    pub fn config(&self) -> &ReconcilerConfig {
        &self.config
    }

    async fn managed_tables(&mut self) -> Result<Vec<TableId>, PassError> {
        if let Some((ids, at)) = &self.tables
            && at.elapsed() < self.config.discovery_ttl
        {
            return Ok(ids.clone());
        }
        let ids = self
            .provider
            .discover_tables()
            .await
            .map_err(PassError::Discover)?;
        if ids.is_empty() {
            return Err(PassError::NoTables);
        }
        self.tables = Some((ids.clone(), Instant::now()));
        Ok(ids)
    }

    async fn list(&self, ids: &[TableId]) -> Result<Vec<RouteTable>, PassError> {
        let provider = &self.provider;
        let listed: Vec<Result<RouteTable, PassError>> = futures::stream::iter(ids.iter())
            .map(|id| async move {
                provider
                    .list_table(id)
                    .await
                    .map_err(|e| PassError::List(id.clone(), e))
            })
            .buffered(self.config.table_concurrency)
            .collect()
            .await;
        listed.into_iter().collect()
    }

    fn options(&self, snapshot: &NodeSnapshot) -> PlanOptions {
        PlanOptions {
            guard_share: self.config.guard_share,
            guard_min: self.config.guard_min,
            authoritative: snapshot.authoritative,
        }
    }

    /// Standby: discover the tables and resolve node targets (reads only), so that the
    /// first pass after a takeover goes straight to listing and writing.
    pub async fn warm(&mut self, snapshot: &NodeSnapshot) -> Result<(), PassError> {
        self.managed_tables().await?;
        self.targets
            .resolve(&self.provider, &snapshot.nodes, self.config.discovery_ttl)
            .await;
        Ok(())
    }

    /// Compute the plan without writing anything (the `plan` command).
    pub async fn preview(&mut self, snapshot: &NodeSnapshot) -> Result<Plan, PassError> {
        let ids = self.managed_tables().await?;
        let nodes = self
            .targets
            .resolve(&self.provider, &snapshot.nodes, self.config.discovery_ttl)
            .await;
        let tables = self.list(&ids).await?;
        Ok(planner::plan(
            &nodes,
            &self.config.cluster_cidrs,
            &tables,
            &self.options(snapshot),
        ))
    }

    /// One full pass: observe, plan, write (fenced), verify, report.
    pub async fn pass(&mut self, snapshot: &NodeSnapshot) -> Result<PassReport, PassError> {
        let started = Instant::now();
        let result = self.pass_inner(snapshot, started).await;
        if let Err(PassError::List(table, e)) = &result
            && e.kind == ErrorKind::NotFound
        {
            // A table gone or no longer ours: discover the managed set again next pass
            // instead of writing to it until the discovery cache expires.
            tracing::warn!(%table, error = %e, "a managed route table is gone; rediscovering");
            self.tables = None;
        }
        if let Some(o) = &self.observer {
            o.pass_ended(started.elapsed(), &result);
        }
        if let Err(e) = &result {
            tracing::warn!(error = %e, "reconcile pass failed; will retry");
        }
        result
    }

    async fn pass_inner(
        &mut self,
        snapshot: &NodeSnapshot,
        started: Instant,
    ) -> Result<PassReport, PassError> {
        let ids = self.managed_tables().await?;
        let mut nodes = self
            .targets
            .resolve(&self.provider, &snapshot.nodes, self.config.discovery_ttl)
            .await;
        let may_write = !self.config.dry_run && self.fence.may_mutate(self.config.mutation_budget);
        let options = self.options(snapshot);

        // List first (so the listing never queues behind preparation's reads), then node
        // preparation and the route writes side by side: preparation mostly reads, the
        // writes spend the write bucket, so neither waits for the other.
        let mut tables = self.list(&ids).await?;
        self.read_acknowledged(&mut tables);
        let mut targets = std::mem::take(&mut self.targets);
        let (prepared, work) = {
            let this = &*self;
            let nodes = &nodes;
            let work = async move {
                let plan = planner::plan(nodes, &this.config.cluster_cidrs, &tables, &options);
                let (attempted, failed, fenced) = if this.config.dry_run || plan.is_converged() {
                    (0, Vec::new(), false)
                } else {
                    this.write(&plan).await
                };
                Ok::<_, PassError>((tables, plan, attempted, failed, fenced))
            };
            let fence: &dyn WriteFence = &*self.fence;
            tokio::join!(
                targets.prepare(&self.provider, nodes, may_write, fence),
                work
            )
        };
        self.targets = targets;
        let (mut tables, plan, attempted, failed, fenced) = work?;
        for hop in plan.tables.iter().flat_map(|t| &t.dead_targets) {
            // Its instance is gone: the next pass looks the node up again.
            self.targets.forget_interface(&hop.to_string());
        }

        for f in &failed {
            if f.kind == ErrorKind::NotFound
                && let Some(hop) = next_hop_of(&f.change)
            {
                // The interface is gone (instance replaced): look the node up afresh.
                self.targets.forget_interface(&hop);
            }
        }
        for failure in &prepared.failed {
            // Its routes stay (protected) but it is not reported routed: pending when the
            // cloud refused, unknown (condition untouched) when the check itself failed.
            nodes[failure.node].target = Err(if failure.refused {
                crate::planner::TargetError::Refused(failure.reason.clone())
            } else {
                crate::planner::TargetError::Unavailable(failure.reason.clone())
            });
        }
        self.beat();

        let verified = if attempted == 0 && prepared.failed.is_empty() {
            plan
        } else {
            // Verify: re-list what we wrote to, and plan again from the cloud's answer.
            let written: Vec<TableId> = plan
                .tables
                .iter()
                .filter(|t| !t.changes.is_empty())
                .map(|t| t.table.clone())
                .collect();
            let mut fresh = if attempted == 0 {
                Vec::new()
            } else {
                self.list(&written).await?
            };
            self.read_acknowledged(&mut fresh);
            for table in fresh {
                if let Some(slot) = tables.iter_mut().find(|t| t.id == table.id) {
                    *slot = table;
                }
            }
            planner::plan(&nodes, &self.config.cluster_cidrs, &tables, &options)
        };
        self.finish(&verified, &failed, &nodes).await;
        Ok(PassReport {
            plan: verified,
            attempted,
            failed,
            fenced,
            prepared: prepared.writes,
            unprepared: prepared.failed.len(),
            took: started.elapsed(),
        })
    }

    /// Listed tables as the cloud's acknowledged writes say they are (see `acknowledged`).
    fn read_acknowledged(&self, tables: &mut [RouteTable]) {
        self.acknowledged
            .lock()
            .expect("acknowledged")
            .overlay(tables, self.config.consistency_window);
    }

    /// Send every table's changes, batch by batch, each batch only while the fence allows.
    async fn write(&self, plan: &Plan) -> (usize, Vec<FailedChange>, bool) {
        let batch_size = match self.provider.write_granularity() {
            WriteGranularity::PerChange => self.config.batch_size,
            WriteGranularity::WholeTable => usize::MAX,
        };
        let results: Vec<(usize, Vec<FailedChange>, bool)> =
            futures::stream::iter(plan.tables.iter().filter(|t| !t.changes.is_empty()))
                .map(|tp| async move {
                    let mut attempted = 0;
                    let mut failed = Vec::new();
                    for batch in tp.changes.chunks(batch_size) {
                        if !self.fence.may_mutate(self.config.mutation_budget) {
                            tracing::warn!(table = %tp.table,
                                "lease cannot cover the next write; stopping mutations");
                            return (attempted, failed, true);
                        }
                        attempted += batch.len();
                        let outcomes = self
                            .provider
                            .apply_fenced(&tp.table, batch, &*self.fence)
                            .await;
                        self.beat();
                        for outcome in outcomes {
                            if outcome.result.is_ok() {
                                self.acknowledged
                                    .lock()
                                    .expect("acknowledged")
                                    .record(&tp.table, &outcome.change);
                            }
                            if let Err(e) = outcome.result {
                                tracing::warn!(table = %tp.table, change = ?outcome.change,
                                    error = %e, "route change failed");
                                failed.push(FailedChange {
                                    table: tp.table.clone(),
                                    change: outcome.change,
                                    kind: e.kind,
                                    error: e.to_string(),
                                });
                            }
                        }
                    }
                    (attempted, failed, false)
                })
                .buffer_unordered(self.config.table_concurrency)
                .collect()
                .await;
        let mut attempted = 0;
        let mut failed = Vec::new();
        let mut fenced = false;
        for (a, f, x) in results {
            attempted += a;
            failed.extend(f);
            fenced |= x;
        }
        (attempted, failed, fenced)
    }

    /// Publish verified statuses (with the reason of any failed change) and metrics.
    async fn finish(&mut self, plan: &Plan, failed: &[FailedChange], nodes: &[PlanNode]) {
        for w in &plan.warnings {
            tracing::warn!("{w}");
        }
        let reports = with_failures(&plan.nodes, failed, nodes);
        if plan.guard_tripped && !self.guard_was_tripped {
            let note = plan
                .warnings
                .iter()
                .find(|w| w.starts_with("deletion guard"))
                .cloned()
                .unwrap_or_else(|| "deletion guard tripped".to_owned());
            self.sink.deletion_guard_tripped(&note, &reports).await;
        }
        self.guard_was_tripped = plan.guard_tripped;
        // Node conditions are writes too: a replica that lost the lease mid-pass says
        // nothing about the network any more.
        if !self.config.dry_run && self.fence.may_mutate(Duration::ZERO) {
            self.sink.publish(&reports).await;
        }
    }
}

fn next_hop_of(change: &RouteChange) -> Option<String> {
    match change {
        RouteChange::Create { next_hop, .. } | RouteChange::Replace { next_hop, .. } => {
            Some(next_hop.to_string())
        }
        RouteChange::Delete { .. } => None,
    }
}

/// Attach the cloud's error to every still-pending node whose CIDR a failed change was for,
/// so the condition and the `FailedToCreateRoute` event say what went wrong and where.
fn with_failures(
    reports: &[NodeReport],
    failed: &[FailedChange],
    nodes: &[PlanNode],
) -> Vec<NodeReport> {
    if failed.is_empty() {
        return reports.to_vec();
    }
    let mut owner: HashMap<IpNet, &str> = HashMap::new();
    for n in nodes {
        for cidr in &n.node.pod_cidrs {
            if let Ok(net) = cidr.trim().parse::<IpNet>() {
                owner.insert(net.trunc(), n.node.name.as_str());
            }
        }
    }
    let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut quota: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in failed {
        // A fenced change was never sent: nothing to say about the node.
        if f.change.is_delete() || f.kind == ErrorKind::Fenced {
            continue;
        }
        if f.kind == ErrorKind::QuotaExceeded
            && let Some(node) = owner.get(f.change.destination())
        {
            // The cloud counts routes we cannot see (or another writer filled the table):
            // its refusal is the verified fact.
            quota.entry(node).or_default().push(format!(
                "table {} refused route {}: {}",
                f.table,
                f.change.destination(),
                f.error
            ));
            continue;
        }
        if let Some(node) = owner.get(f.change.destination()) {
            by_node.entry(node).or_default().push(format!(
                "failed to {} route {} in table {}: {}; retrying",
                verb(&f.change),
                f.change.destination(),
                f.table,
                f.error
            ));
        }
    }
    reports
        .iter()
        .map(|r| {
            let name = r.node.as_str();
            match (&r.status, quota.get(name), by_node.get(name)) {
                (NodeRouteStatus::Pending { .. }, Some(reasons), _) => NodeReport {
                    status: NodeRouteStatus::QuotaExceeded {
                        reason: reasons.join("; "),
                    },
                    ..r.clone()
                },
                (NodeRouteStatus::Pending { .. }, None, Some(reasons)) => NodeReport {
                    status: NodeRouteStatus::Pending {
                        reason: reasons.join("; "),
                    },
                    ..r.clone()
                },
                _ => r.clone(),
            }
        })
        .collect()
}

fn verb(change: &RouteChange) -> &'static str {
    match change {
        RouteChange::Create { .. } => "create",
        RouteChange::Replace { .. } => "replace",
        RouteChange::Delete { .. } => "delete",
    }
}

#[cfg(test)]
mod tests;
