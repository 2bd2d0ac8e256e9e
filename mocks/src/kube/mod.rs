//! Mock kube API server.

/// Command-line options of `cni-cloud-mocks kube`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

pub async fn serve_cli(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("the kube mock is not built yet (listen {})", args.listen)
}
