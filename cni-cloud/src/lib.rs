//! cni-cloud: the node-local CNI plugin and its DaemonSet installer.

pub mod install;
pub mod plugin;
