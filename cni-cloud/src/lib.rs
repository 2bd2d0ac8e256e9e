//! cni-cloud: the node-local CNI plugin and its DaemonSet installer.

pub mod install;
pub mod plugin;

/// The plugin binary (`"type": "cni-cloud"`), installed into the CNI bin dir.
pub const PLUGIN_BINARY: &str = "cni-cloud";
/// The installer binary, shipped next to the plugin; `cni-cloud install` execs it.
pub const INSTALLER_BINARY: &str = "cni-cloud-install";
