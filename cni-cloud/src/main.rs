//! `cni-cloud`: the CNI plugin the container runtime executes for every sandbox. It links
//! only the plugin: the installer (`cni-cloud install`) is the sibling binary
//! `cni-cloud-install`, exec'd in place, so none of its dependencies (Kubernetes client,
//! async runtime, TLS, argument parser) is mapped, and above all relocated, at every ADD and
//! DEL — their ~420 KiB of `.data.rel.ro` cost ~110 copy-on-write page faults per exec.

use std::io::{Read, Write};

fn main() {
    let mut args = std::env::args_os();
    let argv0 = args.next();
    if args.next().is_some_and(|a| a == "install") {
        std::process::exit(exec_installer(argv0, args));
    }
    // The plugin path: no async runtime, no logging framework — stdin in, JSON out.
    let mut stdin = Vec::new();
    if std::io::stdin().read_to_end(&mut stdin).is_err() {
        stdin.clear();
    }
    let outcome = cni_cloud::plugin::run(|k| std::env::var(k).ok(), &stdin);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    std::process::exit(outcome.code);
}

/// `cni-cloud install …` runs `cni-cloud-install …` from this executable's directory, in
/// place (same pid, so signals and the exit code are the installer's). Only returns on error.
fn exec_installer(argv0: Option<std::ffi::OsString>, rest: std::env::ArgsOs) -> i32 {
    use std::os::unix::process::CommandExt;
    let installer = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(cni_cloud::INSTALLER_BINARY)));
    let Some(installer) = installer else {
        eprintln!("cni-cloud install: cannot find this executable's directory");
        return 1;
    };
    let err = std::process::Command::new(&installer)
        .arg0(argv0.unwrap_or_else(|| "cni-cloud".into()))
        .args(rest)
        .exec();
    eprintln!(
        "cni-cloud install: cannot run {}: {err}; it ships next to cni-cloud",
        installer.display()
    );
    1
}
