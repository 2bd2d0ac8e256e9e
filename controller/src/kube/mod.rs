//! The Kubernetes side of `cni-cloud-controller run`: the node reflector ([`nodes`]), the
//! NetworkUnavailable/Event writer ([`status`]), leader election with a fence ([`lease`]),
//! and process plumbing ([`runtime`]: logs, signals, client). Metrics and health live in
//! `crate::metrics`, outside this edge.

pub mod args;
pub mod lease;
pub mod nodes;
pub mod runtime;
pub mod status;
