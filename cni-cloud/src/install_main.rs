//! `cni-cloud-install`: the DaemonSet's installer, run as `cni-cloud install …` (the plugin
//! binary execs it) or directly. Kept out of the plugin binary; see `main.rs`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(cni_cloud::install::main(&args));
}
