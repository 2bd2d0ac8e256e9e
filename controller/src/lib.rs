//! cni-cloud-controller: keeps every Node's PodCIDRs routed in the cloud's route tables.

pub mod cluster;
pub mod commands;
pub mod health;
pub mod kube;
pub mod metrics;
pub mod planner;
pub mod reconcile;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
