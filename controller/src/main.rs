use clap::{Parser, Subcommand};

#[cfg(feature = "simulate")]
use cni_cloud_controller::commands::simulate;
use cni_cloud_controller::commands::{plan, run};

/// Writes every Node's PodCIDRs into the AWS VPC / Azure VNet route tables.
#[derive(Parser)]
#[command(name = "cni-cloud-controller", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (leader-elected; watches Nodes, programs the route tables).
    Run(Box<run::RunArgs>),
    /// Show what `run` would change now, without changing it (exit 2 when changes are pending).
    Plan(Box<plan::PlanArgs>),
    /// Run the real controller against an in-process mock cloud with a generated cluster.
    #[cfg(feature = "simulate")]
    Simulate(Box<simulate::SimulateArgs>),
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(*args).await.map(|()| 0),
            Command::Plan(args) => plan::plan(*args).await,
            #[cfg(feature = "simulate")]
            Command::Simulate(args) => simulate::simulate(*args).await,
        }
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
