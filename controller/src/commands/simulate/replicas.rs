//! The controller replicas `simulate --kube` (and `--datapath`) run: real `cni-cloud-controller
//! run` processes against the mock Kubernetes API, each with its own cloud credentials so the
//! mock cloud's request log tells them apart; the Lease they compete for; the RBAC the mock
//! API enforces.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use cni_cloud_mocks::kube::rbac::yaml_documents;
use cni_cloud_mocks::kube::{KubeMock, Rbac};

use super::args::SimulateArgs;
use crate::kube::lease::LeaseTiming;

pub const LEASE_NAME: &str = "cni-cloud-controller";
pub const LEASE_NAMESPACE: &str = "cni-cloud";

pub struct Replica {
    pub identity: String,
    /// The client the mock cloud logs its every request under (its own AWS access key, or
    /// the client id its ARM token was issued to).
    pub key: String,
    pub child: Child,
}

/// Stop (`STOP`) or continue (`CONT`) a replica, as a GC pause or a frozen VM would.
pub fn signal(child: &Child, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .context("running kill")?
        .success();
    if !ok {
        bail!("kill -{sig} {} failed", child.id());
    }
    Ok(())
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn holder(kube: &KubeMock) -> Option<String> {
    kube.lease(LEASE_NAMESPACE, LEASE_NAME)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

/// deploy/base's RBAC, built into the binary: what the mock API enforces.
const DEPLOY_RBAC: [&str; 2] = [
    include_str!("../../../../deploy/base/controller-rbac.yaml"),
    include_str!("../../../../deploy/base/installer-rbac.yaml"),
];

/// The RBAC the mock API enforces: deploy/base's as built in, or `--deploy-dir`'s.
pub fn rbac(args: &SimulateArgs) -> anyhow::Result<Rbac> {
    let Some(dir) = &args.deploy_dir else {
        let mut docs = Vec::new();
        for text in DEPLOY_RBAC {
            docs.extend(yaml_documents(text)?);
        }
        return Rbac::from_objects(&docs);
    };
    if !dir.join("kustomization.yaml").exists() {
        bail!(
            "{} holds no deploy/base (its RBAC is what the mock API enforces)",
            dir.display()
        );
    }
    Rbac::load(&[dir])
}

/// A child of the simulation: logs errors only (unless `RUST_LOG` says otherwise) to our
/// stderr, reads and prints nothing else.
pub fn quiet_child(command: &mut Command) -> &mut Command {
    command
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
}

pub fn spawn(
    identity: String,
    key: String,
    kubeconfig: &Path,
    cloud_env: &[(String, String)],
    args: &SimulateArgs,
    timing: LeaseTiming,
) -> anyhow::Result<Replica> {
    let secs = |d: Duration| format!("{}ms", d.as_millis().max(1));
    let mut command = Command::new(std::env::current_exe().context("locating this binary")?);
    command
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--identity", &identity, "--metrics-addr", "127.0.0.1:0"])
        .args(["--lease-duration", &secs(timing.duration)])
        .args(["--renew-deadline", &secs(timing.renew_deadline)])
        .args(["--retry-period", &secs(timing.retry_period)])
        .args([
            "--node-debounce",
            &secs(Duration::from_millis(500).div_f64(args.time_scale)),
        ])
        .args([
            "--discovery-ttl",
            &secs(Duration::from_secs_f64(
                args.discovery_ttl.max(0.0) / args.time_scale,
            )),
        ])
        .args([
            "--resync",
            &secs(Duration::from_secs(60).div_f64(args.time_scale)),
        ])
        .env("CNI_CLOUD_CLUSTER_NAME", "sim")
        .env("CNI_CLOUD_CLUSTER_CIDRS", "100.64.0.0/10,fd00:10:244::/48")
        .env("CNI_CLOUD_TIME_SCALE", args.time_scale.to_string())
        .envs(cloud_env.iter().map(|(k, v)| (k, v)));
    let child = quiet_child(&mut command)
        .spawn()
        .context("starting a controller replica")?;
    Ok(Replica {
        identity,
        key,
        child,
    })
}
