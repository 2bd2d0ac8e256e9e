//! Command line of `cni-cloud install`. Every flag can also come from the environment so the
//! DaemonSet passes its configuration through a ConfigMap, and tests point every host path at
//! a temporary directory.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use ipnet::IpNet;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "cni-cloud install",
    about = "Install cni-cloud on this node (the DaemonSet entrypoint): copy the plugin, wait for \
             the Node's podCIDRs, enable forwarding and masquerading, write the CNI config last, \
             then keep all of it in place."
)]
pub struct InstallArgs {
    /// Remove cni-cloud from this node instead: the CNI config first, then the nftables
    /// table, then the plugin binary.
    #[arg(long)]
    pub uninstall: bool,

    /// Exit 0 when the plugin and its config are installed, 1 otherwise (the DaemonSet's
    /// readiness probe). Changes nothing.
    #[arg(long, conflicts_with = "uninstall")]
    pub check: bool,

    /// Install once and exit instead of staying to re-assert the installation.
    #[arg(long, env = "CNI_CLOUD_INSTALL_ONCE")]
    pub once: bool,

    /// Host directory the container runtime executes CNI plugins from (as mounted here).
    #[arg(
        long,
        env = "CNI_CLOUD_CNI_BIN_DIR",
        default_value = "/host/opt/cni/bin"
    )]
    pub cni_bin_dir: PathBuf,

    /// Host directory the container runtime reads CNI configs from (as mounted here).
    #[arg(
        long,
        env = "CNI_CLOUD_CNI_CONF_DIR",
        default_value = "/host/etc/cni/net.d"
    )]
    pub cni_conf_dir: PathBuf,

    /// File name of the conflist. It must sort before every other config in the directory:
    /// the runtime uses the lexically first one.
    #[arg(
        long,
        env = "CNI_CLOUD_CONFLIST_NAME",
        default_value = "05-cni-cloud.conflist"
    )]
    pub conflist_name: String,

    /// The plugin binary to install; defaults to `cni-cloud` next to this installer.
    #[arg(long, env = "CNI_CLOUD_SOURCE_BINARY")]
    pub source_binary: Option<PathBuf>,

    /// The plugin's state directory on the host (written into the conflist as `dataDir`).
    /// Keep it on tmpfs (/run) so no stale reservation survives a reboot.
    #[arg(long, env = "CNI_CLOUD_DATA_DIR", default_value = "/run/cni-cloud")]
    pub data_dir: PathBuf,

    /// Name of this Node (the DaemonSet sets it from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// kubeconfig to reach the API server; without it the in-cluster config is used.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// How long to wait for the Node's spec.podCIDRs before giving up (e.g. 90s, 10m).
    #[arg(long, env = "CNI_CLOUD_POD_CIDR_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub pod_cidr_timeout: Duration,

    /// How often to re-read the Node while waiting, and to re-assert the installation.
    #[arg(long, env = "CNI_CLOUD_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// The cluster's pod CIDRs (comma separated, one per family). Pod traffic to them is
    /// never masqueraded, and every Node podCIDR must lie inside one of them.
    #[arg(long, env = "CNI_CLOUD_CLUSTER_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub cluster_cidrs: Vec<IpNet>,

    /// The VPC / VNet address space (comma separated): reachable without masquerading.
    #[arg(long, env = "CNI_CLOUD_VPC_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub vpc_cidrs: Vec<IpNet>,

    /// More destinations reachable without masquerading (peered networks, VPN ranges).
    #[arg(long, env = "CNI_CLOUD_NO_MASQUERADE_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub no_masquerade_cidrs: Vec<IpNet>,

    /// Masquerade pod traffic leaving the non-masquerade CIDRs (`--masquerade=false` when
    /// a NAT gateway must see pod addresses).
    #[arg(long, env = "CNI_CLOUD_MASQUERADE", default_value_t = true, action = ArgAction::Set)]
    pub masquerade: bool,

    /// The `nft` executable.
    #[arg(long, env = "CNI_CLOUD_NFT", default_value = "nft")]
    pub nft: PathBuf,

    /// Name of the `inet` nftables table cni-cloud owns (nothing else is touched).
    #[arg(long, env = "CNI_CLOUD_NFT_TABLE", default_value = "cni-cloud")]
    pub nft_table: String,

    /// Where the host's /proc/sys is mounted (forwarding sysctls).
    #[arg(long, env = "CNI_CLOUD_PROC_SYS_DIR", default_value = "/proc/sys")]
    pub proc_sys_dir: PathBuf,

    /// MTU of pod interfaces (e.g. 9001 on AWS); the plugin's default when unset.
    #[arg(long, env = "CNI_CLOUD_MTU")]
    pub mtu: Option<u32>,

    /// Chain the reference `portmap` plugin (hostPort support). It must already be in the
    /// CNI bin dir.
    #[arg(long, env = "CNI_CLOUD_PORTMAP")]
    pub portmap: bool,

    /// `cniVersion` of the conflist: what runtimes whose libcni predates 1.2 (containerd
    /// 1.6/1.7) use; they refuse 1.1.0. Default 1.0.0.
    #[arg(long, env = "CNI_CLOUD_CNI_VERSION")]
    pub cni_version: Option<String>,

    /// `cniVersions` of the conflist (comma separated): libcni >= 1.2 (containerd 2.x) picks
    /// the newest it supports. Default: every version the plugin speaks, up to 1.1.0 — cut to
    /// what the chained portmap serves with --portmap.
    #[arg(long, env = "CNI_CLOUD_CNI_VERSIONS", value_delimiter = ',')]
    pub cni_versions: Option<Vec<String>>,

    /// Network name in the conflist.
    #[arg(long, env = "CNI_CLOUD_NETWORK_NAME", default_value = "cni-cloud")]
    pub network_name: String,

    /// Move other CNI configs in the conf dir aside (renamed to `<name>.cni-cloud-disabled`)
    /// instead of refusing to install.
    #[arg(long, env = "CNI_CLOUD_REPLACE_CONFLICTING")]
    pub replace_conflicting: bool,

    /// Log format: text or json.
    #[arg(long, env = "CNI_CLOUD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `250ms`, `90s`, `10m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 90s, 10m, 1h)"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(value),
        "ms" => Duration::from_millis(value),
        "m" => Duration::from_secs(value * 60),
        "h" => Duration::from_secs(value * 3600),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok(duration)
}

/// A CIDR in canonical form: host bits set are a typo worth reporting, not rounding away.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR (e.g. 10.244.0.0/16 or fd00:10::/56)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn cidrs_must_be_canonical() {
        assert_eq!(parse_cidr(" 10.0.0.0/8"), Ok("10.0.0.0/8".parse().unwrap()));
        let err = parse_cidr("10.0.0.1/8").unwrap_err();
        assert!(err.contains("did you mean 10.0.0.0/8"), "{err}");
        assert!(parse_cidr("10.0.0.0").is_err());
    }

    #[test]
    fn every_flag_has_an_env_and_defaults_parse() {
        let args =
            InstallArgs::try_parse_from(["install", "--cluster-cidrs", "10.244.0.0/16,fd00::/56"])
                .unwrap();
        assert_eq!(args.cluster_cidrs.len(), 2);
        assert!(args.masquerade);
        assert_eq!(args.conflist_name, "05-cni-cloud.conflist");
        let args =
            InstallArgs::try_parse_from(["install", "--masquerade=false", "--once"]).unwrap();
        assert!(!args.masquerade && args.once);
    }
}
