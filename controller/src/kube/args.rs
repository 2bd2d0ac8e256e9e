//! The Kubernetes flags of `run` (every flag also from an env var), to be flattened into
//! the `run` subcommand with `#[command(flatten)]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::lease::LeaseTiming;
use super::runtime::LogFormat;

/// Parse `15s`, `500ms`, `2m` or plain seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (use e.g. 15s, 500ms, 2m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "invalid duration {text:?}: must be a non-negative number"
        ));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig to use; default: in-cluster ServiceAccount, then KUBECONFIG/~/.kube/config.
    #[arg(long, env = "CNI_CLOUD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Name of the coordination.k8s.io/v1 Lease used for leader election.
    #[arg(
        long,
        env = "CNI_CLOUD_LEASE_NAME",
        default_value = "cni-cloud-controller"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (the controller's own namespace).
    #[arg(long, env = "CNI_CLOUD_LEASE_NAMESPACE", default_value = "cni-cloud")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (defaults to the pod name / hostname). It is
    /// also the Events' `reportingInstance`, which the API server caps at 128 bytes.
    #[arg(long, env = "CNI_CLOUD_POD_NAME", value_parser = parse_identity)]
    pub identity: Option<String>,
    /// How long a leader's claim lasts without renewal.
    #[arg(long, env = "CNI_CLOUD_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The leader steps down if it could not renew for this long.
    #[arg(long, env = "CNI_CLOUD_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// Pause between election attempts.
    #[arg(long, env = "CNI_CLOUD_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "CNI_CLOUD_METRICS_ADDR", default_value = "0.0.0.0:9965")]
    pub metrics_addr: SocketAddr,
    /// Quiet period that groups bursts of route-relevant Node changes into one reconcile.
    #[arg(long, env = "CNI_CLOUD_NODE_DEBOUNCE", default_value = "200ms", value_parser = parse_duration)]
    pub node_debounce: Duration,
    /// The longest a route-relevant Node change waits for a quiet period: however busy
    /// the cluster, a new node is planned within this.
    #[arg(long, env = "CNI_CLOUD_NODE_MAX_DELAY", default_value = "1s", value_parser = parse_duration)]
    pub node_max_delay: Duration,
    /// Log format on stderr.
    #[arg(long, env = "CNI_CLOUD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The API server refuses an Event whose `reportingInstance` is longer than this.
const IDENTITY_MAX_BYTES: usize = 128;

fn parse_identity(s: &str) -> Result<String, String> {
    if s.len() > IDENTITY_MAX_BYTES {
        return Err(format!(
            "{} bytes; at most {IDENTITY_MAX_BYTES} (it is every Event's reportingInstance)",
            s.len()
        ));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("no whitespace or control characters".into());
    }
    Ok(s.to_owned())
}

impl KubeArgs {
    /// The election timing, validated (duration > renew deadline > retry period > 0).
    pub fn lease_timing(&self) -> Result<LeaseTiming, String> {
        let t = LeaseTiming {
            duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        t.validate()?;
        Ok(t)
    }

    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .filter(|i| !i.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("cni-cloud-controller-{}", std::process::id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kube: KubeArgs,
    }

    #[test]
    fn an_identity_no_event_could_carry_is_refused() {
        let ok = Cli::try_parse_from(["x", "--identity", &"a".repeat(128)]).unwrap();
        assert_eq!(ok.kube.identity().len(), 128);
        let long = Cli::try_parse_from(["x", "--identity", &"a".repeat(129)])
            .err()
            .expect("129 bytes refused")
            .to_string();
        assert!(long.contains("at most 128"), "{long}");
        assert!(Cli::try_parse_from(["x", "--identity", "two words"]).is_err());
    }

    #[test]
    fn durations_parse_and_defaults_are_client_go() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.kube.lease_timing().unwrap(), LeaseTiming::default());
    }

    #[test]
    fn inconsistent_timing_is_rejected() {
        let cli = Cli::try_parse_from(["x", "--renew-deadline", "20s"]).unwrap();
        assert!(cli.kube.lease_timing().is_err());
    }
}
