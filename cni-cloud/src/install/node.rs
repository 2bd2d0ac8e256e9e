//! Kubernetes edge: read this installer's own Node and wait for its spec.podCIDRs.
//!
//! The installer only ever GETs one Node by name (its RBAC grants nothing else), polling
//! instead of watching: one small request every few seconds until the CIDRs appear, and
//! none afterwards.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::InstallError;

/// What the API says about the Node right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeLookup {
    /// spec.podCIDRs (or the older spec.podCIDR) is set.
    PodCidrs(Vec<String>),
    /// The Node exists without pod CIDRs yet (the IPAM controller has not assigned them).
    NoPodCidrs,
    /// No such Node (yet): the kubelet registers it.
    NotFound,
}

/// One trait per edge: tests substitute the API with a scripted sequence of answers.
pub trait NodeSource {
    /// `Err` carries a human-readable reason worth retrying (API down, 403, timeout).
    fn lookup(&self, node: &str) -> impl Future<Output = Result<NodeLookup, String>>;
}

pub struct KubeNodes {
    api: Api<Node>,
    request_timeout: Duration,
}

impl KubeNodes {
    /// The in-cluster config (the DaemonSet's ServiceAccount), or the given kubeconfig.
    pub async fn connect(kubeconfig: Option<&PathBuf>) -> Result<Self, InstallError> {
        let mut config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|err| {
                    InstallError::Kube(format!("cannot read kubeconfig {}: {err}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|err| {
                        InstallError::Kube(format!("kubeconfig {}: {err}", path.display()))
                    })?
            }
            None => kube::Config::incluster().map_err(|err| {
                InstallError::Kube(format!(
                    "no kubeconfig given and not running in a pod ({err}); set --kubeconfig or \
                     KUBECONFIG"
                ))
            })?,
        };
        let request_timeout = Duration::from_secs(10);
        config.connect_timeout = Some(request_timeout);
        config.read_timeout = Some(request_timeout);
        let client = kube::Client::try_from(config)
            .map_err(|err| InstallError::Kube(format!("cannot build the client: {err}")))?;
        Ok(Self {
            api: Api::all(client),
            request_timeout,
        })
    }
}

impl NodeSource for KubeNodes {
    async fn lookup(&self, node: &str) -> Result<NodeLookup, String> {
        let answer = tokio::time::timeout(self.request_timeout, self.api.get_opt(node))
            .await
            .map_err(|_| format!("GET node {node} timed out after {:?}", self.request_timeout))?;
        match answer {
            Ok(None) => Ok(NodeLookup::NotFound),
            Ok(Some(found)) => {
                let spec = found.spec.unwrap_or_default();
                let cidrs = match spec.pod_cidrs {
                    Some(list) if !list.is_empty() => list,
                    _ => spec.pod_cidr.into_iter().collect(),
                };
                Ok(if cidrs.is_empty() {
                    NodeLookup::NoPodCidrs
                } else {
                    NodeLookup::PodCidrs(cidrs)
                })
            }
            Err(kube::Error::Api(status)) if status.code == 403 => Err(format!(
                "the API server refused GET node {node} (403 {}): the installer's \
                 ServiceAccount needs the cni-cloud-node ClusterRole (get nodes)",
                status.message
            )),
            Err(kube::Error::Api(status)) => Err(format!(
                "the API server answered {} {}: {}",
                status.code, status.reason, status.message
            )),
            Err(err) => Err(format!("cannot reach the API server: {err}")),
        }
    }
}

/// Parses the Node's CIDRs strictly: a malformed value is permanent, not worth waiting for.
pub fn parse_pod_cidrs(node: &str, values: &[String]) -> Result<Vec<IpNet>, InstallError> {
    values
        .iter()
        .map(|value| {
            let invalid = |reason: String| InstallError::InvalidPodCidr {
                node: node.to_owned(),
                value: value.clone(),
                reason,
            };
            let net: IpNet = value.parse().map_err(|err| invalid(format!("{err}")))?;
            if net.trunc() != net {
                return Err(invalid("host bits are set".into()));
            }
            Ok(net)
        })
        .collect()
}

/// Polls until the Node has pod CIDRs, logging each new reason for waiting (and a reminder
/// every 30 s), up to `timeout`.
pub async fn wait_for_pod_cidrs(
    source: &impl NodeSource,
    node: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<Vec<IpNet>, InstallError> {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut last_reason = String::new();
    let mut last_logged = started;
    loop {
        let reason = match source.lookup(node).await {
            Ok(NodeLookup::PodCidrs(values)) => {
                let cidrs = parse_pod_cidrs(node, &values)?;
                tracing::info!(node, pod_cidrs = ?values, waited = ?started.elapsed(), "node has pod CIDRs");
                return Ok(cidrs);
            }
            Ok(NodeLookup::NoPodCidrs) => format!(
                "node {node} has no spec.podCIDRs yet (assigned by kube-controller-manager's \
                 node IPAM)"
            ),
            Ok(NodeLookup::NotFound) => {
                format!("node {node} does not exist yet (the kubelet registers it)")
            }
            Err(reason) => reason,
        };
        let now = tokio::time::Instant::now();
        if reason != last_reason || now.duration_since(last_logged) >= Duration::from_secs(30) {
            tracing::info!(node, waited = ?started.elapsed(), "waiting: {reason}");
            last_logged = now;
        }
        last_reason = reason;
        if now >= deadline {
            return Err(InstallError::NoPodCidrs {
                node: node.to_owned(),
                waited: timeout,
                last: last_reason,
            });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    struct Scripted(RefCell<VecDeque<Result<NodeLookup, String>>>);

    impl NodeSource for Scripted {
        async fn lookup(&self, _node: &str) -> Result<NodeLookup, String> {
            let mut answers = self.0.borrow_mut();
            if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers.front().cloned().unwrap()
            }
        }
    }

    fn scripted(answers: Vec<Result<NodeLookup, String>>) -> Scripted {
        Scripted(RefCell::new(answers.into()))
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_missing_node_errors_and_empty_cidrs() {
        let source = scripted(vec![
            Ok(NodeLookup::NotFound),
            Err("cannot reach the API server".into()),
            Ok(NodeLookup::NoPodCidrs),
            Ok(NodeLookup::PodCidrs(vec![
                "10.244.1.0/24".into(),
                "fd00::/64".into(),
            ])),
        ]);
        let cidrs = wait_for_pod_cidrs(
            &source,
            "n1",
            Duration::from_secs(60),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(cidrs.len(), 2);
        assert!(
            source.0.borrow().len() == 1,
            "every scripted answer was consumed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_reason() {
        let source = scripted(vec![Ok(NodeLookup::NoPodCidrs)]);
        let err = wait_for_pod_cidrs(
            &source,
            "n1",
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("node n1 still has no spec.podCIDRs after 5s"),
            "{text}"
        );
        assert!(text.contains("--allocate-node-cidrs"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_cidr_fails_at_once() {
        let source = scripted(vec![Ok(NodeLookup::PodCidrs(vec!["10.244.1.7/24".into()]))]);
        let err = wait_for_pod_cidrs(
            &source,
            "n1",
            Duration::from_secs(60),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("host bits"), "{err}");
    }
}
