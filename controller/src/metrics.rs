//! Prometheus metrics (prometheus-client) and the `/metrics`, `/healthz`, `/readyz` server:
//! the observability edge. The reconciler reports to it through
//! [`crate::reconcile::PassObserver`] ([`Observer`]) and never imports it.
//!
//! The reconciler reports values through [`Metrics`]; cloud API call counts are mirrored
//! from the providers' [`ApiCounters`] at scrape time, so the providers stay free of any
//! metrics library.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use cni_cloud_providers::CloudProvider;

use crate::planner::Plan;
use crate::reconcile::{PassError, PassObserver, PassReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableState {
    pub table: String,
    /// desired | present | conflicting
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableFamily {
    pub table: String,
    /// ipv4 | ipv6
    pub family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCall {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeStatus {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassResult {
    /// converged | unfinished (changes failed or still pending) | failed (could not plan)
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Table {
    pub table: String,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    pub routes: Family<TableState, Gauge>,
    pub quota_used: Family<TableFamily, Gauge>,
    pub quota_limit: Family<TableFamily, Gauge>,
    pub api_calls: Family<ApiCall, Counter>,
    pub throttled: Counter,
    pub reconcile_duration: Histogram,
    pub nodes: Family<NodeStatus, Gauge>,
    pub leader: Gauge,
    pub reconcile_passes: Family<PassResult, Counter>,
    pub last_converged: Gauge<f64, AtomicU64>,
    pub deletion_guard_held: Family<Table, Gauge>,
    pub dead_routes: Family<Table, Gauge>,
    /// Counter values already mirrored from the providers' counters.
    mirrored: Mutex<BTreeMap<(String, String), u64>>,
    mirrored_throttled: AtomicU64,
    counters: Mutex<Option<Arc<dyn CloudProvider>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Everything a verified plan says: routes per table, quota use, nodes by status,
    /// held deletes, dead routes.
    pub fn record_plan(&self, plan: &Plan) {
        let m = self;
        m.routes.clear();
        m.quota_used.clear();
        m.quota_limit.clear();
        for tp in &plan.tables {
            let table = tp.table.to_string();
            for (state, n) in [
                ("desired", tp.desired as i64),
                ("present", tp.present as i64),
                ("conflicting", tp.conflicts.len() as i64),
            ] {
                m.routes
                    .get_or_create(&TableState {
                        table: table.clone(),
                        state: state.to_owned(),
                    })
                    .set(n);
            }
            for q in &tp.quota {
                let key = TableFamily {
                    table: table.clone(),
                    family: match q.family {
                        Some(cni_cloud_providers::Family::V4) => "ipv4",
                        Some(cni_cloud_providers::Family::V6) => "ipv6",
                        None => "all",
                    }
                    .to_owned(),
                };
                m.quota_used.get_or_create(&key).set(q.used as i64);
                m.quota_limit.get_or_create(&key).set(q.limit as i64);
            }
        }
        m.set_node_statuses(&plan.status_counts());
        m.set_guard_held(
            plan.tables
                .iter()
                .map(|t| (t.table.to_string(), t.held_deletes.len())),
        );
        m.dead_routes.clear();
        for tp in &plan.tables {
            m.dead_routes
                .get_or_create(&Table {
                    table: tp.table.to_string(),
                })
                .set(tp.dead_routes.len() as i64);
        }
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cni_cloud");
        let routes = Family::<TableState, Gauge>::default();
        let quota_used = Family::<TableFamily, Gauge>::default();
        let quota_limit = Family::<TableFamily, Gauge>::default();
        let api_calls = Family::<ApiCall, Counter>::default();
        let throttled = Counter::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let nodes = Family::<NodeStatus, Gauge>::default();
        let leader = Gauge::default();
        let reconcile_passes = Family::<PassResult, Counter>::default();
        for result in ["converged", "unfinished", "failed"] {
            // Present from the start, so rate()/increase() see the first pass.
            let _ = reconcile_passes.get_or_create(&PassResult {
                result: result.to_owned(),
            });
        }
        let last_converged = Gauge::<f64, AtomicU64>::default();
        let deletion_guard_held = Family::<Table, Gauge>::default();
        let dead_routes = Family::<Table, Gauge>::default();
        registry.register(
            "routes",
            "Routes per managed table: desired, present, conflicting",
            routes.clone(),
        );
        registry.register(
            "route_quota_used",
            "Routes in the table per address family",
            quota_used.clone(),
        );
        registry.register(
            "route_quota_limit",
            "Route quota of the table per address family",
            quota_limit.clone(),
        );
        registry.register(
            "cloud_api_calls",
            "Cloud API calls by action and outcome",
            api_calls.clone(),
        );
        registry.register(
            "cloud_api_throttled",
            "Cloud API calls answered with a throttle",
            throttled.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile pass",
            reconcile_duration.clone(),
        );
        registry.register("nodes", "Nodes by route status", nodes.clone());
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        registry.register(
            "reconcile_passes",
            "Reconcile passes by result: converged, unfinished, failed",
            reconcile_passes.clone(),
        );
        registry.register(
            "last_converged_timestamp_seconds",
            "Unix time of the last pass that left every table converged (0: none yet)",
            last_converged.clone(),
        );
        registry.register(
            "dead_routes",
            "Blackhole routes inside the cluster CIDRs no node needs and not provably ours \
             (reported, never deleted), per table",
            dead_routes.clone(),
        );
        registry.register(
            "deletion_guard_held_deletes",
            "Deletes of our routes held back by the deletion guard, per table",
            deletion_guard_held.clone(),
        );
        Metrics {
            registry,
            routes,
            quota_used,
            quota_limit,
            api_calls,
            throttled,
            reconcile_duration,
            nodes,
            leader,
            reconcile_passes,
            last_converged,
            deletion_guard_held,
            dead_routes,
            mirrored: Mutex::default(),
            mirrored_throttled: AtomicU64::new(0),
            counters: Mutex::default(),
        }
    }

    /// Mirror these provider counters into `cloud_api_calls` at every scrape.
    pub fn track_api_counters(&self, provider: Arc<dyn CloudProvider>) {
        *self.counters.lock().expect("counters") = Some(provider);
    }

    pub fn observe_reconcile(&self, took: Duration) {
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Count a finished pass; a converged one also stamps `last_converged_timestamp_seconds`.
    pub fn record_pass(&self, result: &'static str) {
        self.reconcile_passes
            .get_or_create(&PassResult {
                result: result.to_owned(),
            })
            .inc();
        if result == "converged" {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.last_converged.set(now);
        }
    }

    /// Deletes the deletion guard holds back, per managed table (0 when none).
    pub fn set_guard_held(&self, held: impl IntoIterator<Item = (String, usize)>) {
        self.deletion_guard_held.clear();
        for (table, n) in held {
            self.deletion_guard_held
                .get_or_create(&Table { table })
                .set(n as i64);
        }
    }

    pub fn set_node_statuses(&self, counts: &BTreeMap<&'static str, usize>) {
        self.nodes.clear();
        for (status, n) in counts {
            self.nodes
                .get_or_create(&NodeStatus {
                    status: (*status).to_owned(),
                })
                .set(*n as i64);
        }
    }

    fn mirror(&self) {
        let Some(provider) = self.counters.lock().expect("counters").clone() else {
            return;
        };
        let counters = provider.counters();
        let mut seen = self.mirrored.lock().expect("mirrored");
        for ((action, outcome), n) in counters.snapshot() {
            let key = (action.to_owned(), outcome.as_str().to_owned());
            let before = seen.get(&key).copied().unwrap_or(0);
            if n > before {
                self.api_calls
                    .get_or_create(&ApiCall {
                        action: key.0.clone(),
                        outcome: key.1.clone(),
                    })
                    .inc_by(n - before);
                seen.insert(key, n);
            }
        }
        let throttled = counters.throttled();
        let before = self
            .mirrored_throttled
            .swap(throttled, std::sync::atomic::Ordering::Relaxed);
        if throttled > before {
            self.throttled.inc_by(throttled - before);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        self.mirror();
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encode metrics");
        out
    }
}

/// What `/readyz` checks.
#[derive(Clone, Default)]
pub struct Readiness {
    /// The node cache finished its initial list.
    pub caches_synced: Arc<AtomicBool>,
    /// This replica leads (then the cloud must be reachable too).
    pub leader: Arc<AtomicBool>,
    /// The last cloud list succeeded.
    pub cloud_reachable: Arc<AtomicBool>,
    /// The control loop's liveness, for `/healthz`.
    pub heartbeat: crate::health::Heartbeat,
}

impl Readiness {
    /// `Ok` when ready, else the reason.
    pub fn check(&self) -> Result<(), &'static str> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.caches_synced.load(Relaxed) {
            return Err("node cache not synced");
        }
        if self.leader.load(Relaxed) && !self.cloud_reachable.load(Relaxed) {
            return Err("leader cannot reach the cloud API");
        }
        Ok(())
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    ready: Readiness,
}

pub fn router(metrics: Arc<Metrics>, ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState { metrics, ready })
}

async fn metrics_handler(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz(State(s): State<HttpState>) -> impl IntoResponse {
    match s.ready.heartbeat.check() {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    match s.ready.check() {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.to_owned()),
    }
}

/// Serve until `shutdown`; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(metrics, ready))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(bound)
}

/// The reconciler's [`PassObserver`]: pass outcomes into the metrics and readiness,
/// progress into the liveness heartbeat.
pub struct Observer {
    pub metrics: Arc<Metrics>,
    pub ready: Readiness,
}

impl PassObserver for Observer {
    fn progress(&self) {
        self.ready.heartbeat.beat();
    }

    fn pass_ended(&self, took: Duration, result: &Result<PassReport, PassError>) {
        self.ready.cloud_reachable.store(
            !matches!(result, Err(PassError::Discover(_) | PassError::List(..))),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.metrics.observe_reconcile(took);
        self.metrics.record_pass(match result {
            Ok(r) if r.converged() => "converged",
            Ok(_) => "unfinished",
            Err(_) => "failed",
        });
        if let Ok(report) = result {
            self.metrics.record_plan(&report.plan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_and_mirrors_counters() {
        let m = Metrics::new();
        m.leader.set(1);
        m.routes
            .get_or_create(&TableState {
                table: "rtb-1".into(),
                state: "present".into(),
            })
            .set(3);
        m.observe_reconcile(Duration::from_millis(20));
        m.record_pass("converged");
        m.record_pass("failed");
        m.set_guard_held([("rtb-1".to_owned(), 7), ("rtb-2".to_owned(), 0)]);
        let text = m.render();
        assert!(
            text.contains("cni_cloud_reconcile_passes_total{result=\"converged\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cni_cloud_reconcile_passes_total{result=\"unfinished\"} 0"),
            "every result is exported from the start: {text}"
        );
        assert!(
            text.contains("cni_cloud_reconcile_passes_total{result=\"failed\"} 1"),
            "{text}"
        );
        let stamp: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("cni_cloud_last_converged_timestamp_seconds "))
            .expect("timestamp exported")
            .parse()
            .expect("a number");
        assert!(stamp > 1.7e9, "{stamp}");
        assert!(
            text.contains("cni_cloud_deletion_guard_held_deletes{table=\"rtb-1\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("cni_cloud_deletion_guard_held_deletes{table=\"rtb-2\"} 0"),
            "{text}"
        );
        assert!(text.contains("cni_cloud_leader 1"), "{text}");
        assert!(
            text.contains("cni_cloud_routes{table=\"rtb-1\",state=\"present\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("cni_cloud_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn readiness_requires_sync_and_cloud_for_the_leader() {
        use std::sync::atomic::Ordering::Relaxed;
        let r = Readiness::default();
        assert!(r.check().is_err());
        r.caches_synced.store(true, Relaxed);
        assert!(r.check().is_ok());
        r.leader.store(true, Relaxed);
        assert_eq!(r.check(), Err("leader cannot reach the cloud API"));
        r.cloud_reachable.store(true, Relaxed);
        assert!(r.check().is_ok());
    }
}
