//! `simulate --datapath`: the whole system on a real data path. Nodes are network
//! namespaces over several subnets, joined by a fabric namespace whose kernel routes follow
//! the mock cloud's route tables; `cni-cloud install` runs on every node against the mock
//! Kubernetes API, pods are made by the installed plugin, and real `cni-cloud-controller run`
//! replicas program the mock cloud. Pods on different nodes reach each other only through
//! the routes the controller wrote. Judged from packets and the fabric's kernel tables.
//!
//! Exit codes: 0 every check passed, 1 a check failed, 2 the lab could not run (not root,
//! a kernel feature missing, bad flags, another lab running), 130 / 143 interrupted. Every
//! way out removes what the lab made.

mod checks;
mod cloud;
mod fabric;
mod lab;
mod node;
mod plan;
mod probe;
mod report;
mod scenario;
mod topology;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::Context;

use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig};

use super::args::SimulateArgs;
use crate::commands::OutputFormat;

/// The run was interrupted (SIGINT / SIGTERM); the lab is removed on the way out.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// The plugin binary: `--plugin-bin` / `CNI_CLOUD_PLUGIN_BIN`, else `cni-cloud` next to this
/// executable (cargo puts both in target/<profile>/).
fn plugin_binary(args: &SimulateArgs) -> anyhow::Result<PathBuf> {
    let path = match &args.plugin_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .parent()
            .context("this binary has no directory")?
            .join("cni-cloud"),
    };
    if !path.is_file() {
        anyhow::bail!(
            "the cni-cloud plugin binary {} is missing: build it (cargo build -p cni-cloud) or \
             point --plugin-bin / CNI_CLOUD_PLUGIN_BIN at it",
            path.display()
        );
    }
    Ok(path)
}

/// What the lab can't run with, before anything is made.
fn usage(args: &SimulateArgs) -> anyhow::Result<(plan::Plan, PathBuf)> {
    args.validate()?;
    let plan = plan::Plan::new(args.nodes, args.tables, args.pods_per_node)?;
    Ok((plan, plugin_binary(args)?))
}

pub async fn simulate(args: SimulateArgs) -> anyhow::Result<i32> {
    let (plan, plugin) = match usage(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(2);
        }
    };
    if let Err(e) = lab::preflight() {
        eprintln!("error: {e:#}");
        return Ok(2);
    }
    // Signals first: from here on Ctrl-C must reach the cleanup, not kill the process.
    let stop = Arc::new(AtomicBool::new(false));
    let signalled = Arc::new(AtomicI32::new(0));
    let watcher = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (stop, signalled) = (stop.clone(), signalled.clone());
        tokio::spawn(async move {
            let code = tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
            };
            signalled.store(code, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            eprintln!("interrupted: removing the lab");
        })
    };
    let mut lab = match lab::Lab::new() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            watcher.abort();
            return Ok(2);
        }
    };
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());

    let outcome = async {
        let kube = KubeMock::new(KubeMockConfig::with_rbac(super::replicas::rbac(&args)?));
        let kube_server = kube.clone().start("127.0.0.1:0".parse()?).await?;
        let cloud = Arc::new(cloud::LabCloud::start(&args, &plan).await?);
        let ctx = scenario::Ctx {
            args: args.clone(),
            plan,
            plugin,
            kube,
            kube_url: kube_server.url(),
            cloud,
            stop: stop.clone(),
        };
        // The lab is blocking work on its own threads (setns is per thread); the mocks keep
        // serving on this runtime meanwhile.
        let (result, lab) = tokio::task::spawn_blocking(move || {
            let r = scenario::run(&ctx, &mut lab);
            (r, lab)
        })
        .await?;
        drop(lab);
        kube_server.stop().await;
        result
    }
    .await;
    let leftovers = lab::Lab::leftovers(&prefix, &dir);
    watcher.abort();

    let code = signalled.load(Ordering::Relaxed);
    let mut report = match outcome {
        Ok(r) if code == 0 => r,
        Ok(_) => return Ok(code),
        Err(e) => {
            if e.downcast_ref::<Interrupted>().is_some() || code != 0 {
                return Ok(if code != 0 { code } else { 130 });
            }
            if !leftovers.is_empty() {
                eprintln!("left behind: {}", leftovers.join(", "));
            }
            eprintln!("error: {e:#}");
            return Ok(1);
        }
    };
    report.leftovers = leftovers;
    report.passed = report.verdict();
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Text => print!("{}", report.render()),
    }
    Ok(if report.passed { 0 } else { 1 })
}

impl SimulateArgs {
    /// What `--datapath` can't be combined with: the lab runs one scenario, on IPv4, with
    /// the replicas as its only controller.
    pub fn validate_datapath(&self) -> anyhow::Result<()> {
        let h = &self.hostile_world;
        let other = [
            ("--kube", self.kube),
            ("--churn", self.churn > 0.0),
            ("--faults", self.faults > 0.0),
            ("--read-faults", self.read_faults > 0.0),
            ("--terminate", self.terminate > 0),
            ("--lose-table", self.lose_table),
            ("--dual-stack", self.dual_stack),
            ("--plot", self.plot.is_some()),
            ("--flap-leadership", h.flap_leadership > 0),
            (
                "--node-updates-per-second",
                h.node_updates_per_second != 0.0,
            ),
            ("--join-rate", h.join_rate != 0.0),
            ("--hostile", h.hostile),
        ];
        if let Some((flag, _)) = other.iter().find(|(_, on)| *on) {
            anyhow::bail!("{flag} is not available with --datapath");
        }
        if self.kill_leader_at.is_some() && h.pause_leader_at.is_some() {
            anyhow::bail!("--datapath takes one blow: --kill-leader-at or --pause-leader-at");
        }
        if !(1..=16).contains(&self.pods_per_node) {
            anyhow::bail!(
                "--pods-per-node must be within 1..=16, got {}",
                self.pods_per_node
            );
        }
        Ok(())
    }
}
