//! A node as the DaemonSet and the runtime see it: `cni-cloud install` running inside the
//! node's namespace against the mock Kubernetes API (conflist, forwarding, masquerade), and
//! pods made by invoking the *installed* plugin as a runtime does: CNI environment, the
//! written conflist's plugin config on stdin, CHECK right after ADD, DEL on removal.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::super::replicas::quiet_child;
use super::lab::Ns;
use super::plan::{CLUSTER_CIDR, LabNode, VPC};

pub const CONFLIST: &str = "05-cni-cloud.conflist";

/// A node's host paths, all under the lab's scratch dir.
pub struct Paths {
    pub bin: PathBuf,
    pub conf: PathBuf,
    pub data: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Paths {
    pub fn new(lab_dir: &Path, node: &LabNode) -> anyhow::Result<Paths> {
        let root = lab_dir.join(&node.name);
        let p = Paths {
            bin: root.join("opt-cni-bin"),
            conf: root.join("etc-cni-net.d"),
            data: root.join("run-cni-cloud"),
            kubeconfig: root.join("kubeconfig"),
        };
        for d in [&p.bin, &p.conf] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(p)
    }
}

/// The installer, as the DaemonSet runs it: it stays to re-assert the installation.
pub struct Installer {
    child: Child,
}

impl Installer {
    pub fn start(
        ns: &Ns,
        node: &LabNode,
        paths: &Paths,
        plugin: &Path,
    ) -> anyhow::Result<Installer> {
        let mut command = ns.command(plugin);
        command
            .arg("install")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("NODE_NAME", &node.name)
            .env("KUBECONFIG", &paths.kubeconfig)
            .env("CNI_CLOUD_CNI_BIN_DIR", &paths.bin)
            .env("CNI_CLOUD_CNI_CONF_DIR", &paths.conf)
            .env("CNI_CLOUD_DATA_DIR", &paths.data)
            .env("CNI_CLOUD_SOURCE_BINARY", plugin)
            .env("CNI_CLOUD_CLUSTER_CIDRS", CLUSTER_CIDR)
            .env("CNI_CLOUD_VPC_CIDRS", VPC)
            .env("CNI_CLOUD_POLL_INTERVAL", "200ms")
            .env("CNI_CLOUD_POD_CIDR_TIMEOUT", "10m");
        let child = quiet_child(&mut command)
            .spawn()
            .with_context(|| format!("starting `cni-cloud install` on {}", node.name))?;
        Ok(Installer { child })
    }

    /// Whether it is still running (it must: it exits only on a fatal error).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Installer {
    fn drop(&mut self) {
        // SIGTERM: the installer leaves its work in place for running pods and exits 0.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The conflist the installer wrote, once it is there.
pub fn conflist(paths: &Paths) -> Option<Value> {
    let text = std::fs::read_to_string(paths.conf.join(CONFLIST)).ok()?;
    serde_json::from_str(&text).ok()
}

/// What libcni hands the first plugin of a conflist: the plugin's entry with the list's
/// name and cniVersion, plus the previous result for CHECK and DEL.
pub fn plugin_config(list: &Value, prev: Option<&Value>) -> anyhow::Result<Value> {
    let mut c = list["plugins"]
        .get(0)
        .cloned()
        .context("the conflist has no plugins")?;
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    Ok(c)
}

/// A pod: its namespace, container id and ADD result.
pub struct Pod {
    pub name: String,
    pub ns: Arc<Ns>,
    pub container_id: String,
    pub result: Value,
    pub ip: Ipv4Addr,
}

fn invoke(
    node: &Ns,
    paths: &Paths,
    verb: &str,
    container_id: &str,
    pod_ns: &str,
    stdin: &Value,
) -> anyhow::Result<String> {
    let plugin = paths.bin.join("cni-cloud");
    let mut child = node
        .command(&plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", pod_ns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &paths.bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running the installed plugin {}", plugin.display()))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "CNI {verb} of {container_id}: {} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

/// ADD, then CHECK with the result as prevResult (as CRI-O does); the pod's IPv4 address.
pub fn add(
    node: &Ns,
    paths: &Paths,
    list: &Value,
    name: &str,
    pod_ns: Arc<Ns>,
) -> anyhow::Result<Pod> {
    let container_id = format!("{name}-{}", std::process::id());
    let out = invoke(
        node,
        paths,
        "ADD",
        &container_id,
        &pod_ns.path(),
        &plugin_config(list, None)?,
    )?;
    let result: Value = serde_json::from_str(&out).context("the ADD result is not JSON")?;
    invoke(
        node,
        paths,
        "CHECK",
        &container_id,
        &pod_ns.path(),
        &plugin_config(list, Some(&result))?,
    )?;
    let ip = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .find_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
        .context("the ADD result has no IPv4 address")?;
    Ok(Pod {
        name: name.to_owned(),
        ns: pod_ns,
        container_id,
        result,
        ip,
    })
}

pub fn del(node: &Ns, paths: &Paths, list: &Value, pod: &Pod) -> anyhow::Result<()> {
    invoke(
        node,
        paths,
        "DEL",
        &pod.container_id,
        &pod.ns.path(),
        &plugin_config(list, Some(&pod.result))?,
    )
    .map(drop)
}

/// kube-proxy's hairpin on a ptp data path: the service IP is DNAT'd to `pod`, and a
/// connection from the endpoint to itself is masqueraded, so the reply comes back through
/// the node. The table lives in the node's namespace and goes with it.
pub fn hairpin(node: &Ns, service: Ipv4Addr, pod: Ipv4Addr) -> anyhow::Result<()> {
    let rules = format!(
        "table ip lab-hairpin {{
            chain pre {{ type nat hook prerouting priority dstnat; ip daddr {service} dnat to {pod}; }}
            chain post {{ type nat hook postrouting priority srcnat; ip saddr {pod} ip daddr {pod} masquerade; }}
        }}\n"
    );
    node.run("nft", &["-f", "-"], Some(&rules)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plugin_config_is_the_first_plugin_with_the_lists_name_and_version() {
        let list = json!({"cniVersion": "1.0.0", "name": "cni-cloud",
            "plugins": [{"type": "cni-cloud", "dataDir": "/run/x"}, {"type": "portmap"}]});
        let c = plugin_config(&list, None).unwrap();
        assert_eq!(
            c,
            json!({"type": "cni-cloud", "dataDir": "/run/x",
            "name": "cni-cloud", "cniVersion": "1.0.0"})
        );
        let prev = json!({"ips": []});
        assert_eq!(
            plugin_config(&list, Some(&prev)).unwrap()["prevResult"],
            prev
        );
        assert!(plugin_config(&json!({"plugins": []}), None).is_err());
    }
}
