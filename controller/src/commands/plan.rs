//! `cni-cloud-controller plan`: what `run` would change right now, without changing it.
//! Exit code 0 when converged, 2 when changes are pending.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;

use cni_cloud_providers::RouteChange;

use crate::cluster::{AlwaysLeader, MemorySink, NodeRouteStatus};
use crate::commands::OutputFormat;
use crate::commands::cloud::CloudArgs;
use crate::commands::nodes_file::NodesFileArgs;
use crate::kube::{nodes, runtime};
use crate::planner::Plan;
use crate::reconcile::Reconciler;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Kubeconfig (default: in-cluster, then KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "CNI_CLOUD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub nodes: NodesFileArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Returns the process exit code.
pub async fn plan(args: PlanArgs) -> anyhow::Result<i32> {
    runtime::init_logging(runtime::LogFormat::Text);
    let snapshot = match args.nodes.load()? {
        Some(snapshot) => snapshot,
        None => {
            let client = runtime::client(args.kubeconfig.as_deref()).await?;
            let list = kube::Api::<Node>::all(client)
                .list(&ListParams::default())
                .await
                .context("listing Nodes")?;
            let all: Vec<Arc<Node>> = list.items.into_iter().map(Arc::new).collect();
            nodes::snapshot(&all, true)
        }
    };
    let config = args.cloud.reconciler_config(true)?;
    let provider = args
        .cloud
        .provider()
        .await
        .context("setting up the cloud provider")?;
    let mut reconciler = Reconciler::new(
        provider,
        config,
        Arc::new(AlwaysLeader),
        Arc::new(MemorySink::default()),
    );
    let plan = reconciler.preview(&snapshot).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        OutputFormat::Text => print!("{}", render(&plan)),
    }
    Ok(if plan.is_converged() { 0 } else { 2 })
}

/// The human-readable diff: one block per table, then nodes that need attention.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>7} {:>8} {:>7} {:>9} {:>6} {:>8} {:>8}",
        "TABLE", "CREATE", "REPLACE", "DELETE", "CONFLICT", "QUOTA", "PRESENT", "DESIRED"
    );
    for t in &plan.tables {
        use crate::planner::ChangeKind::*;
        let _ = writeln!(
            out,
            "{:<24} {:>7} {:>8} {:>7} {:>9} {:>6} {:>8} {:>8}",
            t.table.to_string(),
            t.count(Create),
            t.count(Replace),
            t.count(Delete),
            t.conflicts.len(),
            t.quota_blocked.len(),
            t.present,
            t.desired
        );
    }
    for t in &plan.tables {
        for c in &t.changes {
            let line = match c {
                RouteChange::Create {
                    destination,
                    next_hop,
                } => {
                    format!("+ {destination} -> {next_hop}")
                }
                RouteChange::Replace {
                    destination,
                    next_hop,
                    previous,
                } => {
                    format!("~ {destination} -> {next_hop} (was {previous})")
                }
                RouteChange::Delete {
                    destination,
                    next_hop,
                } => {
                    format!("- {destination} -> {next_hop}")
                }
            };
            let _ = writeln!(out, "  {}: {line}", t.table);
        }
        for c in &t.held_deletes {
            let _ = writeln!(
                out,
                "  {}: held by the deletion guard: - {}",
                t.table,
                c.destination()
            );
        }
        for c in &t.conflicts {
            let _ = writeln!(
                out,
                "  {}: conflict: {} -> {} shadows {} of {}",
                t.table, c.destination, c.next_hop, c.node_cidr, c.node
            );
        }
    }
    for n in &plan.nodes {
        let (kind, reason) = match &n.status {
            NodeRouteStatus::Routed => continue,
            NodeRouteStatus::Pending { reason } => ("pending", reason),
            NodeRouteStatus::QuotaExceeded { reason } => ("quota-exceeded", reason),
            NodeRouteStatus::Conflict { reason } => ("conflict", reason),
            NodeRouteStatus::InvalidInput { reason } => ("invalid", reason),
            NodeRouteStatus::Unknown { reason } => ("unknown", reason),
        };
        let _ = writeln!(out, "node {}: {kind}: {reason}", n.node);
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "{}",
        if plan.is_converged() {
            "converged: nothing to change".to_owned()
        } else {
            format!("{} change(s) pending", plan.change_count())
        }
    );
    out
}
