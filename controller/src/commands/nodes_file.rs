//! `--nodes-file`: the node list from a JSON file instead of the Kubernetes API (manual
//! runs against the mock clouds, `plan` previews). Shared by `run` and `plan`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cluster::{ClusterNode, NodeSnapshot};

#[derive(Debug, Clone, clap::Args)]
pub struct NodesFileArgs {
    /// Take the nodes from this JSON file (a list of {name, uid, created_unix,
    /// provider_id, pod_cidrs, internal_ips}) instead of the Kubernetes API, and run
    /// without election: for manual runs against the mock clouds.
    #[arg(long, env = "CNI_CLOUD_NODES_FILE")]
    pub nodes_file: Option<PathBuf>,
    /// Accept an empty nodes file as the complete list: every route this cluster owns is
    /// then deleted. Without it an empty file is refused (an empty list is far more often
    /// a mistake than a decommissioned cluster).
    #[arg(long, env = "CNI_CLOUD_ALLOW_EMPTY", requires = "nodes_file")]
    pub allow_empty: bool,
}

impl NodesFileArgs {
    /// The file's snapshot, or `None` when no file was given.
    pub fn load(&self) -> anyhow::Result<Option<NodeSnapshot>> {
        self.nodes_file
            .as_deref()
            .map(|path| load(path, self.allow_empty))
            .transpose()
    }
}

/// Read and check a nodes file. The list is authoritative: the operator wrote it.
pub fn load(path: &Path, allow_empty: bool) -> anyhow::Result<NodeSnapshot> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let nodes: Vec<ClusterNode> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON list of nodes", path.display()))?;
    if nodes.is_empty() && !allow_empty {
        anyhow::bail!(
            "{} lists no nodes; pass --allow-empty to treat that as the complete list (every \
             route this cluster owns would be deleted)",
            path.display()
        );
    }
    Ok(NodeSnapshot {
        nodes,
        authoritative: true,
        listed: true,
    })
}
