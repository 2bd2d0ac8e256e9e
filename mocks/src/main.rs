use clap::{Parser, Subcommand};

/// Mock cloud and Kubernetes API servers for cni-cloud's tests, benchmarks and `simulate`.
#[derive(Debug, Parser)]
#[command(name = "cni-cloud-mocks", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mock EC2 (Query protocol, XML answers): route tables, instances, ENIs.
    Ec2(cni_cloud_mocks::ec2::Args),
    /// Mock Azure Resource Manager: route tables, routes, network interfaces, LROs.
    Arm(cni_cloud_mocks::arm::Args),
    /// Mock Kubernetes API subset: nodes, leases, events, with RBAC enforcement.
    Kube(cni_cloud_mocks::kube::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Ec2(args) => cni_cloud_mocks::ec2::serve_cli(args).await,
        Command::Arm(args) => cni_cloud_mocks::arm::serve_cli(args).await,
        Command::Kube(args) => cni_cloud_mocks::kube::serve_cli(args).await,
    }
}
