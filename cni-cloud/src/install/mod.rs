//! `cni-cloud install`: the CNI DaemonSet's entrypoint.
//!
//! Follows the self-hosting practice from "Kubernetes and the CNI" (KubeCon EU 2018): copy the
//! plugin to the host, set up the node, and install the configuration file **last**, since
//! its appearance tells the kubelet the network is ready. Then keep running, re-asserting the
//! binary, the config and the nftables table if anything removes or changes them; SIGTERM
//! leaves all of it in place so running pods keep their network through an upgrade.
//!
//! The plugin's own ADD/DEL path never reaches this module: the async runtime and the
//! Kubernetes client start only here.

mod conflist;
mod error;
mod files;
mod firewall;
mod installer;
mod masquerade;
mod node;
mod options;
mod sysctl;

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{SignalKind, signal};

pub use conflist::{ConflistSpec, DEFAULT_CNI_VERSION, PLUGIN_CNI_VERSIONS};
pub use error::InstallError;
pub use masquerade::MasqueradeSpec;
pub use options::InstallArgs;

use firewall::NftCli;
use installer::Settings;
use node::KubeNodes;
use options::LogFormat;
use sysctl::Sysctls;

/// Runs `cni-cloud install` with the arguments that follow `install` on the command line.
/// Returns the process exit code: 0 done (or stopped by SIGTERM), 1 failed, 2 bad usage.
pub fn main(args: &[String]) -> i32 {
    let argv = std::iter::once("cni-cloud install".to_owned()).chain(args.iter().cloned());
    let args = match InstallArgs::try_parse_from(argv) {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return 1;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => 0,
        Err(InstallError::Interrupted) => {
            tracing::info!("{}", InstallError::Interrupted);
            0
        }
        Err(err) => {
            tracing::error!("{err}");
            match err {
                InstallError::Config(_) => 2,
                _ => 1,
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    // The Kubernetes client logs each failed request itself; the installer already says why
    // it waits, once per change of reason, so its own lines are off unless RUST_LOG asks.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn run(args: InstallArgs) -> Result<(), InstallError> {
    let firewall = NftCli {
        binary: args.nft.clone(),
    };
    if args.check {
        return installer::check_installed(
            &args.cni_bin_dir,
            &args.cni_conf_dir,
            &args.conflist_name,
        );
    }
    if args.uninstall {
        // Refuse while an installer runs: it would put everything straight back.
        let _lock = lock_conf_dir(&args.cni_conf_dir, false).await?;
        return installer::uninstall(
            &args.cni_bin_dir,
            &args.cni_conf_dir,
            &args.nft_table,
            &firewall,
        );
    }

    let node_name = args
        .node_name
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            InstallError::Config(
                "the Node name is unknown: set NODE_NAME (downward API spec.nodeName) or --node-name"
                    .into(),
            )
        })?;
    if args.masquerade && args.cluster_cidrs.is_empty() {
        return Err(InstallError::Config(
            "set --cluster-cidrs (CNI_CLOUD_CLUSTER_CIDRS): pod traffic to the cluster must not be \
             masqueraded (or pass --masquerade=false)"
                .into(),
        ));
    }
    let source_binary = match &args.source_binary {
        Some(path) => path.clone(),
        // The plugin ships next to this installer.
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(crate::PLUGIN_BINARY)))
            .ok_or_else(|| {
                InstallError::Config("cannot find this executable's directory".into())
            })?,
    };
    let mut settings = Settings {
        bin_dir: args.cni_bin_dir.clone(),
        conf_dir: args.cni_conf_dir.clone(),
        conflist_name: args.conflist_name.clone(),
        source_binary,
        data_dir: args.data_dir.clone(),
        nft_table: args.nft_table.clone(),
        masquerade: args.masquerade,
        no_masquerade: [
            &args.cluster_cidrs,
            &args.vpc_cidrs,
            &args.no_masquerade_cidrs,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect(),
        portmap: args.portmap,
        replace_conflicting: args.replace_conflicting,
        conflist: ConflistSpec {
            network_name: args.network_name.clone(),
            cni_version: args
                .cni_version
                .clone()
                .unwrap_or_else(|| conflist::DEFAULT_CNI_VERSION.to_owned()),
            cni_versions: args
                .cni_versions
                .clone()
                .unwrap_or_else(|| PLUGIN_CNI_VERSIONS.iter().map(|v| v.to_string()).collect()),
            data_dir: args.data_dir.clone(),
            mtu: args.mtu,
            portmap: args.portmap,
            pod_cidrs: Vec::new(),
        },
    };
    // A `.conf` would be parsed as a single plugin; the file holds a list.
    if !settings.conflist_name.ends_with(".conflist")
        || settings.conflist_name.len() == ".conflist".len()
        || settings.conflist_name.contains('/')
    {
        return Err(InstallError::Config(format!(
            "--conflist-name {:?} must be a file name ending in .conflist",
            settings.conflist_name
        )));
    }
    // The chained portmap must serve every version a runtime may pick from the conflist:
    // libcni stops a DEL at the first plugin that fails, so a version portmap refuses leaves
    // the pod's address and veth behind on every retry. Versions given explicitly are
    // checked (pre-flight refuses); the default list is cut to what portmap serves.
    if settings.portmap && args.cni_versions.is_none() && settings.bin_dir.join("portmap").exists()
    {
        let served = installer::portmap_versions(&settings.bin_dir)?;
        let before = settings.conflist.cni_versions.clone();
        // An explicit --cni-version portmap cannot serve stays, for the pre-flight to refuse.
        let wanted = settings.conflist.cni_version.clone();
        settings
            .conflist
            .cni_versions
            .retain(|v| served.contains(v) || *v == wanted);
        if settings.conflist.cni_versions != before {
            tracing::info!(
                versions = %settings.conflist.cni_versions.join(","),
                "cniVersions cut to the versions the chained portmap serves"
            );
        }
    }
    settings.conflist.validate().map_err(InstallError::Config)?;
    if !masquerade::valid_table_name(&settings.nft_table) {
        return Err(InstallError::Config(format!(
            "invalid --nft-table {:?}",
            settings.nft_table
        )));
    }

    let mut sigterm = signal(SignalKind::terminate()).map_err(InstallError::signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(InstallError::signals)?;

    // Everything that can be checked without the Node fails now, before any waiting.
    installer::preflight_paths(&settings)?;
    let nodes = KubeNodes::connect(args.kubeconfig.as_ref()).await?;
    let _lock = tokio::select! {
        lock = lock_conf_dir(&settings.conf_dir, true) => lock?,
        _ = sigterm.recv() => return Err(InstallError::Interrupted),
        _ = sigint.recv() => return Err(InstallError::Interrupted),
    };

    let pod_cidrs = tokio::select! {
        cidrs = node::wait_for_pod_cidrs(&nodes, &node_name, args.pod_cidr_timeout, args.poll_interval) => cidrs?,
        _ = sigterm.recv() => return Err(InstallError::Interrupted),
        _ = sigint.recv() => return Err(InstallError::Interrupted),
    };
    drop(nodes); // No more API calls: the Node's CIDRs never change once set.
    settings.conflist.pod_cidrs = pod_cidrs;
    ensure_data_dir(&settings.data_dir)?;

    let sysctls = Sysctls {
        root: args.proc_sys_dir.clone(),
    };
    let mut installed = installer::install(&settings, &sysctls, &firewall)?;
    if args.once {
        return Ok(());
    }

    tracing::info!(interval = ?args.poll_interval, "watching the installation");
    let mut tick = tokio::time::interval(args.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        match installer::reassert(&settings, &mut installed, &sysctls, &firewall) {
            Ok(repairs) => {
                for repair in repairs {
                    tracing::warn!(?repair, "put back something that was removed or changed");
                }
            }
            Err(err) => tracing::error!("cannot re-assert the installation: {err}"),
        }
    }
    tracing::info!(
        "stopping; the plugin, its config and the nftables table stay in place for running pods"
    );
    Ok(())
}

/// Serializes installers on one node (a DaemonSet update can briefly run two): the lock is a
/// `flock` on the conf dir itself, so no extra file lands on the host.
async fn lock_conf_dir(dir: &Path, wait: bool) -> Result<Flock<File>, InstallError> {
    let mut logged = false;
    loop {
        let handle = File::open(dir).map_err(InstallError::io("CNI conf dir", dir))?;
        match Flock::lock(handle, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, Errno::EWOULDBLOCK)) if wait => {
                if !logged {
                    tracing::info!(dir = %dir.display(), "waiting for another cni-cloud installer on this node to stop");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(InstallError::Locked {
                    dir: dir.to_owned(),
                });
            }
            Err((_, errno)) => {
                return Err(InstallError::io("cannot lock", dir)(std::io::Error::from(
                    errno,
                )));
            }
        }
    }
}

/// The plugin keeps its IPAM state in the data dir: root-only, and on tmpfs so reservations
/// do not outlive a reboot (the host-local failure the talk describes).
fn ensure_data_dir(dir: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(InstallError::io("plugin data dir", dir))?;
    }
    match nix::sys::statfs::statfs(dir) {
        Ok(stat) if stat.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC => {}
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "the plugin data dir is not on tmpfs: IPAM reservations will survive a reboot")
        }
        Err(err) => {
            tracing::warn!(dir = %dir.display(), "cannot statfs the plugin data dir: {err}")
        }
    }
    Ok(())
}
