//! The flags of `simulate`, and what they may be.

use anyhow::bail;

use crate::commands::OutputFormat;
use crate::commands::cloud::CloudKind;

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Which mock cloud to run.
    #[arg(long, value_enum, default_value_t = CloudKind::Aws)]
    pub cloud: CloudKind,
    /// Nodes in the generated cluster (4 with `--datapath`).
    #[arg(
        long,
        default_value_t = 200,
        default_value_if("datapath", clap::builder::ArgPredicate::IsPresent, Some("4"))
    )]
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
    /// After the first convergence, fail this share (0..=1) of reads (DescribeInstances /
    /// DescribeRouteTables; ARM table, VM and NIC GETs) with transient errors for a few
    /// resync passes; JSON `condition_flips` (condition changes on nodes whose route stayed
    /// present) must be 0. Pair it with a short `--discovery-ttl` so lookups happen.
    #[arg(long, default_value_t = 0.0)]
    pub read_faults: f64,
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
    /// After the first convergence, terminate this many instances (AWS: their routes go
    /// blackhole in the mock; Azure: the VM is deleted with its NIC, its routes keep pointing
    /// at the dead address), then give their podCIDRs to new nodes on new instances, which
    /// must be routed (the dead routes replaced). JSON `cloud_events`.
    #[arg(long, default_value_t = 0)]
    pub terminate: u32,
    /// After the first convergence, take the last managed table out of the cluster (AWS:
    /// untag it, its routes must stay untouched; Azure: delete it, it must stay deleted);
    /// the other tables keep converging (with `--terminate`, through the replacement).
    /// Needs `--tables` 2 or more.
    #[arg(long)]
    pub lose_table: bool,
    /// Cloud-side latency of one API call, in cloud milliseconds.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// EC2's eventual consistency: a route just created stays out of describes for this
    /// long (cloud milliseconds, ±50 % jitter per route), as EC2 does. 0 turns it off.
    #[arg(long, default_value_t = 300)]
    pub describe_lag_ms: u64,
    /// Azure: how long one long-running operation (a table or NIC PUT) runs, in cloud
    /// seconds. ARM's `Retry-After` stays its fixed 10 s whatever this is.
    #[arg(long, default_value_t = 10.0)]
    pub lro_seconds: f64,
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
    /// `cni-cloud-controller run` processes competing for the Lease (either cloud).
    #[arg(long)]
    pub kube: bool,
    /// Controller processes in `--kube` mode.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// `--kube`: SIGKILL the leader once this share of the routes is present.
    #[arg(long)]
    pub kill_leader_at: Option<f64>,
    /// `--kube`'s hostile world: paused and flapping leaders, Node updates, joins.
    #[command(flatten)]
    pub hostile_world: Box<HostileArgs>,
    /// `--kube`: the deploy/base whose RBAC the mock API enforces (default: deploy/base's,
    /// built into this binary).
    #[arg(long)]
    pub deploy_dir: Option<std::path::PathBuf>,
    /// The whole system on a real data path (root): nodes as network namespaces over
    /// `--tables` subnets, a fabric whose kernel routes follow the mock cloud's tables,
    /// `cni-cloud install` and pods on every node, `--replicas` controller processes; checks
    /// and times reachability from packets. See the README.
    #[arg(long)]
    pub datapath: bool,
    /// `--datapath`: pods per node, made by the installed plugin.
    #[arg(long, default_value_t = 2)]
    pub pods_per_node: u32,
    /// `--datapath`: the cni-cloud plugin binary (default: `cni-cloud` next to this binary).
    #[arg(long, env = "CNI_CLOUD_PLUGIN_BIN")]
    pub plugin_bin: Option<std::path::PathBuf>,
    /// Draw routes present over time (the mock cloud's state) against the rate-limit floor,
    /// with throttles, injected faults and (--kube) leader changes, into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

/// `--kube`'s hostile dynamics (boxed: they keep `simulate`'s flags small).
#[derive(Debug, Clone, clap::Args)]
pub struct HostileArgs {
    /// `--kube`: SIGSTOP the leader once this share of the routes is present, for
    /// `--pause-seconds`, then SIGCONT it (a GC pause, a frozen VM); JSON
    /// `writes_by_deposed_leader` must be 0.
    #[arg(long)]
    pub pause_leader_at: Option<f64>,
    /// `--kube`: how long (wall seconds) a paused leader stays stopped; must exceed the
    /// Lease. Default: twice the Lease.
    #[arg(long)]
    pub pause_seconds: Option<f64>,
    /// `--kube`: this many leadership changes, alternately a SIGKILL (the replica replaced
    /// by a fresh one) and a pause.
    #[arg(long, default_value_t = 0)]
    pub flap_leadership: u32,
    /// `--kube`: route-irrelevant Node status updates per (cloud) second through the mock
    /// API during the whole run (kubelet heartbeats, a label).
    #[arg(long, default_value_t = 0.0)]
    pub node_updates_per_second: f64,
    /// `--kube`: the youngest tenth of the nodes join during the run at this many per (cloud)
    /// second (the Node appears, then gets its podCIDR); JSON `readiness_seconds`.
    #[arg(long, default_value_t = 0.0)]
    pub join_rate: f64,
    /// `--kube`: all of the above with sane defaults (pause at 0.3, 2 flaps, 50 Node
    /// updates/s, joins at 2/s) unless set explicitly.
    #[arg(long)]
    pub hostile: bool,
}

impl SimulateArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.nodes == 0 || self.nodes > 60_000 {
            bail!("--nodes must be within 1..=60000, got {}", self.nodes);
        }
        if self.tables == 0 || self.tables > 50 {
            bail!("--tables must be within 1..=50, got {}", self.tables);
        }
        if !(0.0..=1.0).contains(&self.faults) {
            bail!("--faults must be within 0..=1, got {}", self.faults);
        }
        if !(self.lro_seconds.is_finite() && (0.0..=600.0).contains(&self.lro_seconds)) {
            bail!(
                "--lro-seconds must be within 0..=600, got {}",
                self.lro_seconds
            );
        }
        if (self.terminate > 0 || self.lose_table) && self.kube {
            bail!("--terminate and --lose-table run on the in-process scenario (no --kube)");
        }
        if self.terminate > self.nodes {
            bail!(
                "--terminate must be at most --nodes ({}), got {}",
                self.nodes,
                self.terminate
            );
        }
        if self.lose_table && self.tables < 2 {
            bail!("--lose-table needs --tables 2 or more");
        }
        if !(0.0..=1.0).contains(&self.read_faults) {
            bail!(
                "--read-faults must be within 0..=1, got {}",
                self.read_faults
            );
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
        if self.datapath {
            self.validate_datapath()?;
        }
        if !self.kube
            && !self.datapath
            && (self.kill_leader_at.is_some() || self.deploy_dir.is_some())
        {
            bail!("--kill-leader-at and --deploy-dir need --kube or --datapath");
        }
        if (self.kube || self.datapath) && !(1..=5).contains(&self.replicas) {
            bail!("--replicas must be within 1..=5, got {}", self.replicas);
        }
        if let Some(f) = self.kill_leader_at
            && (!(f > 0.0 && f <= 1.0) || self.replicas < 2)
        {
            bail!("--kill-leader-at must be within (0, 1] and needs --replicas 2 or more, got {f}");
        }
        let h = &self.hostile_world;
        let hostile_flags = h.pause_leader_at.is_some()
            || h.pause_seconds.is_some()
            || h.flap_leadership > 0
            || h.node_updates_per_second != 0.0
            || h.join_rate != 0.0
            || h.hostile;
        let datapath_blow = h.pause_leader_at.is_some() || h.pause_seconds.is_some();
        if !self.kube && hostile_flags && !(self.datapath && datapath_blow) {
            bail!(
                "--pause-leader-at, --pause-seconds, --flap-leadership, --node-updates-per-second, --join-rate and --hostile need --kube"
            );
        }
        if let Some(f) = h.pause_leader_at
            && (!(f > 0.0 && f <= 1.0) || self.replicas < 2)
        {
            bail!(
                "--pause-leader-at must be within (0, 1] and needs --replicas 2 or more, got {f}"
            );
        }
        if h.pause_seconds.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            bail!("--pause-seconds must be > 0");
        }
        if (h.flap_leadership > 0 || h.hostile) && self.replicas < 2 {
            bail!("--flap-leadership and --hostile need --replicas 2 or more");
        }
        for (flag, v) in [
            ("--node-updates-per-second", h.node_updates_per_second),
            ("--join-rate", h.join_rate),
        ] {
            if !(v.is_finite() && (0.0..=10_000.0).contains(&v)) {
                bail!("{flag} must be within 0..=10000, got {v}");
            }
        }
        if self.kube && (self.churn > 0.0 || self.faults > 0.0) {
            bail!("--churn and --faults are not available with --kube");
        }
        if self.route_limit == Some(0) {
            bail!("--route-limit must be at least 1");
        }
        Ok(())
    }

    pub fn cloud_name(&self) -> String {
        match self.cloud {
            CloudKind::Aws => "aws".into(),
            CloudKind::Azure => "azure".into(),
        }
    }
}
