//! Mock Kubernetes API server: the subset cni-cloud uses (discovery, Nodes list/watch/get,
//! `nodes/status` patches, Leases with optimistic concurrency, Events), good enough for
//! kube-rs and the official Python client. It **enforces RBAC** loaded from deploy/'s YAML:
//! callers are identified by bearer token → ServiceAccount, and anything the roles don't
//! grant gets a 403 Status, exactly as the API server words it.
//!
//! In-process use:
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig};
//! let mock = KubeMock::new(KubeMockConfig::from_deploy_dir("deploy/base")?);
//! let server = mock.clone().start("127.0.0.1:0".parse()?).await?;
//! let kubeconfig = mock.kubeconfig(&server.url(), KubeMockConfig::CONTROLLER_TOKEN);
//! # Ok(()) }
//! ```

mod admin;
mod list_watch;
pub mod patch;
pub mod rbac;
mod server;
pub mod state;
pub mod validation;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::{RunningServer, Stats};
pub use rbac::{Rbac, ServiceAccount};
pub use state::{LeaseWrite, StoreError};

/// Command-line options of `cni-cloud-mocks kube`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// RBAC YAML files or directories (Roles, ClusterRoles and bindings); repeatable.
    #[arg(long, default_value = "deploy/base")]
    pub rbac: Vec<PathBuf>,
    /// Token → ServiceAccount, as `TOKEN=NAMESPACE:NAME`; repeatable. Defaults to the
    /// controller's and the installer's ServiceAccounts from deploy/.
    #[arg(long = "token")]
    pub tokens: Vec<String>,
    /// Nodes to start with: a JSON or YAML file holding a NodeList, a list of Nodes, or
    /// one Node per YAML document.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Also write the kubeconfig (for the first token) to this path.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
}

/// Who may call the mock and what the roles allow.
#[derive(Debug, Clone)]
pub struct KubeMockConfig {
    pub rbac: Rbac,
    pub tokens: BTreeMap<String, ServiceAccount>,
    /// Tokens that bypass RBAC (a test harness acting as cluster-admin).
    pub superuser_tokens: BTreeMap<String, ServiceAccount>,
}

impl KubeMockConfig {
    pub const CONTROLLER_TOKEN: &'static str = "cni-cloud-controller-token";
    pub const NODE_TOKEN: &'static str = "cni-cloud-node-token";
    pub const ADMIN_TOKEN: &'static str = "cluster-admin-token";

    /// RBAC from a directory (or file) of deploy/ YAML, with the default tokens for the
    /// controller and installer ServiceAccounts and one cluster-admin token.
    pub fn from_deploy_dir(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let rbac = Rbac::load(&[path.as_ref()])?;
        Ok(Self::with_rbac(rbac))
    }

    pub fn with_rbac(rbac: Rbac) -> Self {
        let sa = |name: &str| ServiceAccount {
            namespace: "cni-cloud".into(),
            name: name.into(),
        };
        KubeMockConfig {
            rbac,
            tokens: BTreeMap::from([
                (Self::CONTROLLER_TOKEN.into(), sa("cni-cloud-controller")),
                (Self::NODE_TOKEN.into(), sa("cni-cloud-node")),
            ]),
            superuser_tokens: BTreeMap::from([(
                Self::ADMIN_TOKEN.into(),
                ServiceAccount {
                    namespace: "kube-system".into(),
                    name: "cluster-admin".into(),
                },
            )]),
        }
    }
}

pub(crate) struct Inner {
    pub store: Mutex<state::Store>,
    pub rbac: Rbac,
    pub tokens: BTreeMap<String, ServiceAccount>,
    pub superusers: BTreeSet<ServiceAccount>,
    pub stats: Stats,
    pub watch_cut: Mutex<CancellationToken>,
    pub addr: Mutex<Option<SocketAddr>>,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Mutex<Duration>,
    /// Bumped to make every such watch send a bookmark now.
    pub bookmark_now: tokio::sync::watch::Sender<u64>,
}

/// The real API server sends a watch bookmark about once a minute.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// The mock; cheap to clone (shared state).
#[derive(Clone)]
pub struct KubeMock {
    pub(crate) inner: Arc<Inner>,
}

impl KubeMock {
    pub fn new(config: KubeMockConfig) -> Self {
        let mut tokens = config.tokens;
        let superusers = config.superuser_tokens.values().cloned().collect();
        tokens.extend(config.superuser_tokens);
        KubeMock {
            inner: Arc::new(Inner {
                store: Mutex::new(state::Store::default()),
                rbac: config.rbac,
                tokens,
                superusers,
                stats: Stats::default(),
                watch_cut: Mutex::new(CancellationToken::new()),
                addr: Mutex::new(None),
                bookmark_interval: Mutex::new(DEFAULT_BOOKMARK_INTERVAL),
                bookmark_now: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    pub async fn start(self, listen: SocketAddr) -> std::io::Result<RunningServer> {
        let server = crate::common::serve(listen, server::router(self.clone())).await?;
        *self.inner.addr.lock().expect("addr") = Some(server.addr);
        Ok(server)
    }

    pub(crate) fn addr_hint(&self) -> String {
        self.inner
            .addr
            .lock()
            .expect("addr")
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// A kubeconfig that points kube-rs / kubectl / the Python client at this mock.
    pub fn kubeconfig(&self, server_url: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: cni-cloud-mock\n  cluster:\n    server: {server_url}\ncontexts:\n- name: cni-cloud-mock\n  context:\n    cluster: cni-cloud-mock\n    user: mock-user\n    namespace: cni-cloud\ncurrent-context: cni-cloud-mock\nusers:\n- name: mock-user\n  user:\n    token: {token}\n"
        )
    }

    pub fn upsert_node(&self, node: Value) -> Result<Value, StoreError> {
        self.inner.store.lock().expect("store").upsert_node(node)
    }

    /// Read, change and write back one node under the store lock, as a kubelet's status
    /// update would, without losing another writer's change in between; `None` if there
    /// is no such node.
    pub fn modify_node(
        &self,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Result<Value, StoreError>> {
        let mut store = self.inner.store.lock().expect("store");
        let mut node = (**store.nodes.get(name)?).clone();
        change(&mut node);
        Some(store.upsert_node(node))
    }

    pub fn delete_node(&self, name: &str) -> Result<(), StoreError> {
        self.inner
            .store
            .lock()
            .expect("store")
            .delete_node(name)
            .map(|_| ())
    }

    pub fn node(&self, name: &str) -> Option<Value> {
        self.inner
            .store
            .lock()
            .expect("store")
            .nodes
            .get(name)
            .map(|n| (**n).clone())
    }

    pub fn nodes(&self) -> Vec<Value> {
        self.inner
            .store
            .lock()
            .expect("store")
            .nodes
            .values()
            .map(|n| (**n).clone())
            .collect()
    }

    /// The next `n` node lists answer with no items (an API glitch).
    pub fn empty_next_lists(&self, n: u32) {
        self.inner.store.lock().expect("store").empty_lists = n;
    }

    pub fn compact(&self) {
        self.inner.store.lock().expect("store").compact();
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default one
    /// minute, as the real API server); applies to watches started afterwards.
    pub fn set_bookmark_interval(&self, every: Duration) {
        *self.inner.bookmark_interval.lock().expect("bookmarks") =
            every.max(Duration::from_millis(1));
    }

    /// Every open watch with `allowWatchBookmarks=true` gets a BOOKMARK now.
    pub fn send_bookmarks(&self) {
        self.inner.bookmark_now.send_modify(|n| *n += 1);
    }

    pub fn close_watches(&self) {
        let mut cut = self.inner.watch_cut.lock().expect("cut");
        cut.cancel();
        *cut = CancellationToken::new();
    }

    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.inner
            .store
            .lock()
            .expect("store")
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every Lease create/update, in order, with its holder and wall-clock time.
    pub fn lease_log(&self) -> Vec<LeaseWrite> {
        self.inner.store.lock().expect("store").lease_log.clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.inner
            .store
            .lock()
            .expect("store")
            .events
            .values()
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Load nodes from a seed file (see [`Args::seed`]).
    pub fn seed_file(&self, path: &Path) -> anyhow::Result<usize> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading seed file {}", path.display()))?;
        let docs: Vec<Value> = match serde_json::from_str::<Value>(&text) {
            Ok(v) => vec![v],
            Err(_) => serde_saphyr::from_multiple(&text)
                .with_context(|| format!("parsing seed file {} (JSON or YAML)", path.display()))?,
        };
        let mut nodes = Vec::new();
        for doc in docs {
            match doc {
                Value::Array(items) => nodes.extend(items),
                Value::Object(_) if doc["items"].is_array() => {
                    nodes.extend(doc["items"].as_array().cloned().unwrap_or_default())
                }
                Value::Object(_) => nodes.push(doc),
                Value::Null => {}
                other => anyhow::bail!("seed file {}: unexpected document {other}", path.display()),
            }
        }
        let count = nodes.len();
        for node in nodes {
            self.upsert_node(node)
                .map_err(|e| anyhow::anyhow!("seed file {}: {e:?}", path.display()))?;
        }
        Ok(count)
    }
}

fn parse_token(spec: &str) -> anyhow::Result<(String, ServiceAccount)> {
    let (token, sa) = spec
        .split_once('=')
        .context("--token must look like TOKEN=NAMESPACE:NAME")?;
    let (namespace, name) = sa
        .split_once(':')
        .context("--token must look like TOKEN=NAMESPACE:NAME")?;
    anyhow::ensure!(
        !token.is_empty() && !namespace.is_empty() && !name.is_empty(),
        "--token {spec:?}: empty part"
    );
    Ok((
        token.to_owned(),
        ServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
    ))
}

pub async fn serve_cli(args: Args) -> anyhow::Result<()> {
    let rbac = Rbac::load(&args.rbac)?;
    let mut config = KubeMockConfig::with_rbac(rbac);
    let first_token = if args.tokens.is_empty() {
        KubeMockConfig::CONTROLLER_TOKEN.to_owned()
    } else {
        config.tokens.clear();
        let mut first = None;
        for spec in &args.tokens {
            let (token, sa) = parse_token(spec)?;
            first.get_or_insert_with(|| token.clone());
            config.tokens.insert(token, sa);
        }
        first.expect("non-empty")
    };
    let mock = KubeMock::new(config);
    if let Some(seed) = &args.seed {
        let n = mock.seed_file(seed)?;
        eprintln!("seeded {n} nodes from {}", seed.display());
    }
    let server = mock.clone().start(args.listen).await?;
    let kubeconfig = mock.kubeconfig(&server.url(), &first_token);
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, &kubeconfig)
            .with_context(|| format!("writing kubeconfig to {}", path.display()))?;
    }
    println!("{kubeconfig}---");
    println!("listening on {}", server.url());
    use std::io::Write;
    std::io::stdout().flush()?;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.stop().await;
    Ok(())
}
