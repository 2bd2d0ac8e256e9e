//! Faithful mock cloud and Kubernetes API servers: EC2 (Query/XML), Azure ARM (JSON) and a
//! Kubernetes API subset. Each can run as a subcommand of the `cni-cloud-mocks` binary or
//! in-process on a loopback port for tests, benchmarks and `simulate`.

pub mod arm;
pub mod common;
pub mod ec2;
pub mod kube;
