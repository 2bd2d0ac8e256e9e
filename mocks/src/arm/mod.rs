//! Mock Azure Resource Manager: the Microsoft.Network / Microsoft.Compute subset
//! cni-cloud's Azure provider calls (route tables, routes, network interfaces, the VMs and
//! scale-set instances behind Kubernetes providerIDs) plus the async-operation status
//! endpoint, with ARM's status codes, headers, error bodies, etags, per-resource write
//! locks, long-running operations and per-subscription token buckets.
//!
//! Run it with `cni-cloud-mocks arm`, or in-process with [`ArmMock::serve`]; build its
//! state programmatically through [`ArmMock::world`] ([`World`]) or from a seed file
//! ([`Seed`]).

mod authz;
mod http;
mod seed;
mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use authz::{PUBLIC_IP_JOIN, SUBNET_JOIN};
pub use seed::{Seed, SeedTable, SeedVm, SeedVmssInstance};
pub use world::{Mutation, NicSpec, NodeIds, World};

use crate::common::{RunningServer, ServerBucket, Stats};

/// The Microsoft.Network api-version whose shapes the mock serves (any version is
/// accepted, as long as one is given).
pub const NETWORK_API_VERSION: &str = "2024-05-01";

/// A published ARM token bucket, in cloud time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub burst: u32,
    pub per_second: f64,
}

/// Knobs of one mock ARM.
#[derive(Debug, Clone)]
pub struct ArmConfig {
    /// Cloud time runs this many times faster than wall time: bucket refills, LRO durations
    /// and `Retry-After` values (which stay in cloud seconds on the wire) all scale with it.
    pub time_scale: f64,
    /// How long a PUT's long-running operation stays `InProgress` (cloud time).
    pub lro_duration: Duration,
    /// Wall-clock delay added before every answer.
    pub latency: Duration,
    /// Share (0..=1) of long-running operations that end `Failed`.
    pub fault_rate: f64,
    /// Routes per route table (ARM: 400).
    pub route_limit: usize,
    /// ARM per-subscription buckets: reads 250 / 25 per s, writes 200 / 10, deletes 200 / 10.
    pub reads: Bucket,
    pub writes: Bucket,
    pub deletes: Bucket,
    /// Items per page of a resource-group list (VMs, NICs); further pages are reached
    /// through `nextLink`, as in ARM.
    pub list_page_size: usize,
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            time_scale: 1.0,
            lro_duration: Duration::from_secs(10),
            latency: Duration::ZERO,
            fault_rate: 0.0,
            route_limit: 400,
            reads: Bucket {
                burst: 250,
                per_second: 25.0,
            },
            writes: Bucket {
                burst: 200,
                per_second: 10.0,
            },
            deletes: Bucket {
                burst: 200,
                per_second: 10.0,
            },
            list_page_size: 100,
        }
    }
}

impl ArmConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!("time scale must be > 0, got {}", self.time_scale));
        }
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err(format!(
                "fault rate must be within 0..=1, got {}",
                self.fault_rate
            ));
        }
        for (name, b) in [
            ("reads", self.reads),
            ("writes", self.writes),
            ("deletes", self.deletes),
        ] {
            if b.burst == 0 || !(b.per_second.is_finite() && b.per_second > 0.0) {
                return Err(format!("{name} bucket needs burst ≥ 1 and rate > 0"));
            }
        }
        Ok(())
    }

    /// Wall-clock duration of `cloud` seconds of cloud time.
    pub fn wall(&self, cloud: Duration) -> Duration {
        cloud.div_f64(self.time_scale)
    }

    /// Cloud seconds (rounded up, as `Retry-After` carries whole seconds) of a wall wait.
    pub fn cloud_secs_ceil(&self, wall: Duration) -> u64 {
        (wall.as_secs_f64() * self.time_scale).ceil() as u64
    }
}

/// Where the mock serves an App Service style managed-identity endpoint: point
/// `IDENTITY_ENDPOINT` at it (with any `IDENTITY_HEADER`) and `AZURE_CLIENT_ID` at a client
/// id of your choosing, and the token it issues is that client's in [`ArmMock::requests`].
pub const IDENTITY_PATH: &str = "/_mock/msi/token";

/// One request as it arrived, before throttling, faults or latency: who sent what, when.
/// The per-client log a fencing test judges from (a request counts even if it failed).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Request {
    /// Seconds since the mock started (the mock's clock, wall time).
    pub at: f64,
    /// The client id the bearer token was issued to by the mock's identity endpoint
    /// ([`IDENTITY_PATH`]), or else the bearer token itself (the mock's tokens are no
    /// secrets); empty without one.
    pub client: String,
    /// `GET`, `PUT`, `PATCH`, `DELETE`, …
    pub method: String,
    /// The ARM operation (`Microsoft.Network/routeTables/write`, …).
    pub action: String,
}

impl Request {
    /// Whether it asks for a change (anything but a read): a route table, route or NIC write
    /// or delete, whatever its outcome.
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// Which ARM bucket a request spends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    Read,
    Write,
    Delete,
}

impl RequestClass {
    fn header(self) -> &'static str {
        match self {
            RequestClass::Read => "x-ms-ratelimit-remaining-subscription-reads",
            RequestClass::Write => "x-ms-ratelimit-remaining-subscription-writes",
            RequestClass::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }
}

/// One mock ARM: configuration, resources, buckets and call statistics.
pub struct ArmMock {
    config: ArmConfig,
    world: Mutex<World>,
    stats: Stats,
    linked: Stats,
    reads: ServerBucket,
    writes: ServerBucket,
    deletes: ServerBucket,
    /// Share of resource GETs (tables, VMs, NICs and their lists; not operation polls)
    /// failed with a transient 500, as f64 bits: [`ArmMock::set_read_faults`].
    read_fault_rate: std::sync::atomic::AtomicU64,
    read_faults_injected: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    requests: Mutex<Vec<Request>>,
    /// Tokens the identity endpoint issued → the client id each was issued to.
    identities: Mutex<std::collections::HashMap<String, String>>,
}

impl ArmMock {
    pub fn new(config: ArmConfig) -> Result<Arc<Self>, String> {
        config.validate()?;
        let bucket = |b: Bucket| ServerBucket::new(b.burst, b.per_second * config.time_scale);
        let started = std::time::Instant::now();
        let mut world = World::new(
            config.lro_duration.div_f64(config.time_scale),
            config.fault_rate,
        );
        world.started = started;
        Ok(Arc::new(ArmMock {
            reads: bucket(config.reads),
            writes: bucket(config.writes),
            deletes: bucket(config.deletes),
            world: Mutex::new(world),
            stats: Stats::default(),
            linked: Stats::default(),
            read_fault_rate: Default::default(),
            read_faults_injected: Default::default(),
            started,
            requests: Mutex::default(),
            identities: Mutex::default(),
            config,
        }))
    }

    /// Every request received so far (identity-endpoint and `/_mock/` calls aside), in order
    /// of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// How many requests [`requests`](Self::requests) holds now.
    pub fn request_count(&self) -> usize {
        self.requests.lock().expect("requests lock").len()
    }

    /// Route changes and NIC writes the mock accepted, in order (see [`Mutation`]).
    pub fn mutations(&self) -> Vec<Mutation> {
        self.world().mutations().to_vec()
    }

    pub(crate) fn record_request(&self, token: &str, method: &str, action: &str) {
        let client = if token.is_empty() {
            String::new()
        } else {
            (self.identities.lock().expect("identities lock").get(token))
                .cloned()
                .unwrap_or_else(|| token.to_owned())
        };
        let at = self.started.elapsed().as_secs_f64();
        self.requests.lock().expect("requests lock").push(Request {
            at,
            client,
            method: method.to_owned(),
            action: action.to_owned(),
        });
    }

    /// Issue a token for `client` (the identity endpoint's answer).
    pub(crate) fn issue_token(&self, client: &str) -> String {
        let mut ids = self.identities.lock().expect("identities lock");
        let token = format!("mock-mi-{}-{}", ids.len(), uuid::Uuid::new_v4().simple());
        ids.insert(token.clone(), client.to_owned());
        token
    }

    /// From now on, fail this share (0..=1) of resource GETs (route tables, VMs, NICs, their
    /// lists; never operation polls) with a transient 500; 0 stops it.
    pub fn set_read_faults(&self, rate: f64) {
        self.read_fault_rate.store(
            rate.clamp(0.0, 1.0).to_bits(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Reads failed by [`ArmMock::set_read_faults`] so far.
    pub fn read_faults_injected(&self) -> u64 {
        self.read_faults_injected
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether to fail this read (and count it).
    pub(crate) fn read_fault(&self) -> bool {
        let rate = f64::from_bits(
            self.read_fault_rate
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let hit = rate > 0.0 && rand::random::<f64>() < rate;
        if hit {
            self.read_faults_injected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        hit
    }

    pub fn config(&self) -> &ArmConfig {
        &self.config
    }

    /// The resources, to build or inspect state programmatically.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("arm world lock")
    }

    /// Calls by ARM operation (`Microsoft.Network/routeTables/write`, …) and outcome
    /// (`ok`, `throttled`, or the ARM error code).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// ARM's linked-authorization checks of NIC writes, by linked action
    /// (`Microsoft.Network/virtualNetworks/subnets/join/action`, …) and outcome (`ok` or
    /// `LinkedAuthorizationFailed`): what an identity must grant besides the calls it makes.
    /// Kept apart from [`stats`](Self::stats), which counts requests.
    pub fn linked_checks(&self) -> &Stats {
        &self.linked
    }

    pub fn bucket(&self, class: RequestClass) -> &ServerBucket {
        match class {
            RequestClass::Read => &self.reads,
            RequestClass::Write => &self.writes,
            RequestClass::Delete => &self.deletes,
        }
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        http::router(self.clone())
    }

    /// Serve on a loopback port inside this process.
    pub async fn serve(self: &Arc<Self>, listen: SocketAddr) -> std::io::Result<RunningServer> {
        crate::common::serve(listen, self.router()).await
    }
}

/// Command-line options of `cni-cloud-mocks arm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// JSON seed file with route tables, VMs and scale-set instances (see mocks/README.md).
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Cloud time runs this many times faster than wall time.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Cloud seconds a PUT's long-running operation stays InProgress.
    #[arg(long, default_value_t = 10.0)]
    pub lro_seconds: f64,
    /// Wall-clock milliseconds added before every answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0..=1) of long-running operations that end Failed.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Routes per route table.
    #[arg(long, default_value_t = 400)]
    pub route_limit: usize,
    /// Items per page of a resource-group list of VMs or NICs (the rest via nextLink).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub list_page_size: u64,
}

impl Args {
    pub fn config(&self) -> anyhow::Result<ArmConfig> {
        if !(self.lro_seconds.is_finite() && self.lro_seconds >= 0.0) {
            anyhow::bail!("--lro-seconds must be ≥ 0, got {}", self.lro_seconds);
        }
        Ok(ArmConfig {
            time_scale: self.time_scale,
            lro_duration: Duration::from_secs_f64(self.lro_seconds),
            latency: Duration::from_millis(self.latency_ms),
            fault_rate: self.fault_rate,
            route_limit: self.route_limit,
            list_page_size: self.list_page_size as usize,
            ..ArmConfig::default()
        })
    }
}

pub async fn serve_cli(args: Args) -> anyhow::Result<()> {
    let mock = ArmMock::new(args.config()?).map_err(anyhow::Error::msg)?;
    if let Some(path) = &args.seed {
        let seed = Seed::load(path)?;
        seed.apply(&mut mock.world())
            .map_err(|e| anyhow::anyhow!("seed file {}: {e}", path.display()))?;
    }
    crate::common::serve_forever(args.listen, mock.router()).await
}
