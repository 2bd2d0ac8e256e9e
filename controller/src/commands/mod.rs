//! The subcommands of `cni-cloud-controller`.

pub mod cloud;
pub mod nodes_file;
pub mod plan;
pub mod run;
#[cfg(feature = "simulate")]
pub mod simulate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}
