//! The Kubernetes side of `cni-cloud-controller run`: the node reflector ([`nodes`]), the
//! NetworkUnavailable/Event writer ([`status`]), leader election with a fence ([`lease`]),
//! metrics and health endpoints ([`metrics`]), and process plumbing ([`runtime`]: logs,
//! signals, client).

pub mod args;
pub mod lease;
pub mod metrics;
pub mod nodes;
pub mod runtime;
pub mod status;
