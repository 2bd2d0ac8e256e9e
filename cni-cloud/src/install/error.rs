//! Installer errors. Each says what failed, where, and what to do about it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error(
        "{what} {path} is not writable ({source}); mount the host path read-write and run the \
         installer as root"
    )]
    NotWritable {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error(
        "conflicting CNI configuration in {dir}: {files}. Another network plugin is installed on \
         this node; remove it, or pass --replace-conflicting (CNI_CLOUD_REPLACE_CONFLICTING=true) \
         to move these files aside as <name>.cni-cloud-disabled"
    )]
    Conflicting { dir: PathBuf, files: String },

    #[error(
        "node {node} still has no spec.podCIDRs after {waited:?} (last: {last}). cni-cloud \
         allocates pods from the Node's podCIDRs: run kube-controller-manager with \
         --allocate-node-cidrs=true and --cluster-cidr, or assign them with your IPAM"
    )]
    NoPodCidrs {
        node: String,
        waited: Duration,
        last: String,
    },

    #[error("node {node} has an invalid podCIDR {value:?}: {reason}")]
    InvalidPodCidr {
        node: String,
        value: String,
        reason: String,
    },

    #[error("not installed: {0}")]
    NotInstalled(String),

    #[error("Kubernetes client: {0}")]
    Kube(String),

    #[error("nftables: {0}")]
    Nft(String),

    #[error("another cni-cloud installer is running on this node (it holds the lock on {dir})")]
    Locked { dir: PathBuf },

    #[error("stopped by a signal before the installation finished; nothing was changed")]
    Interrupted,
}

impl InstallError {
    pub fn signals(source: io::Error) -> Self {
        InstallError::Io {
            what: "cannot install signal handlers",
            path: PathBuf::new(),
            source,
        }
    }

    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| {
            if matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ) {
                InstallError::NotWritable { what, path, source }
            } else {
                InstallError::Io { what, path, source }
            }
        }
    }
}
