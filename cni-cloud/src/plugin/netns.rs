//! Network namespaces: validating CNI_NETNS, and running work inside a namespace on a
//! dedicated OS thread (`setns` is per-thread, so the plugin's own thread never moves).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;

use super::error::{CniError, Result};

/// `NSFS_MAGIC` from linux/magic.h: the filesystem of /proc/*/ns/* and bind-mounted netns files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Opens CNI_NETNS and proves it is a network namespace other than the plugin's own.
pub fn open_pod_netns(path: &str) -> Result<File> {
    let file = File::open(path).map_err(|e| CniError::env("CNI_NETNS", format!("{path}: {e}")))?;
    // SAFETY: fstatfs into a zeroed struct on a descriptor we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(CniError::env(
            "CNI_NETNS",
            format!("{path}: {}", std::io::Error::last_os_error()),
        ));
    }
    if st.f_type as i64 != NSFS_MAGIC {
        return Err(CniError::env(
            "CNI_NETNS",
            format!("{path} is not a network namespace (not on nsfs)"),
        ));
    }
    // nsfs also holds mount, pid… namespaces: only a net namespace is accepted.
    // SAFETY: ioctl(NS_GET_NSTYPE) takes no argument.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind >= 0 && kind != libc::CLONE_NEWNET {
        return Err(CniError::env(
            "CNI_NETNS",
            format!("{path} is a namespace, but not a network namespace"),
        ));
    }
    let own = std::fs::metadata("/proc/self/ns/net")
        .map_err(|e| CniError::kernel("stat own netns", e))?;
    let pod = file
        .metadata()
        .map_err(|e| CniError::env("CNI_NETNS", format!("{path}: {e}")))?;
    if (own.dev(), own.ino()) == (pod.dev(), pod.ino()) {
        return Err(CniError::env(
            "CNI_NETNS",
            format!("{path} is the plugin's own network namespace; refusing to configure the host"),
        ));
    }
    Ok(file)
}

/// Runs `work` on a fresh OS thread that has joined `netns`; the thread ends with the work,
/// so no other code ever runs in the pod's namespace by accident.
pub fn run_in<T: Send>(
    netns: BorrowedFd<'_>,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let raw = netns.as_fd().as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(move || {
            join_thread_to(raw)?;
            work()
        })
        .join()
        .unwrap_or_else(|_| Err(CniError::kernel("pod netns thread", "panicked")))
    })
}

/// Moves the calling thread (only) into the network namespace `raw`. For threads made to
/// do one namespace's work and end; the fd must stay open while it runs.
pub fn join_thread_to(raw: std::os::fd::RawFd) -> Result<()> {
    // SAFETY: setns changes only the calling thread's namespace.
    if unsafe { libc::setns(raw, libc::CLONE_NEWNET) } != 0 {
        return Err(CniError::kernel(
            "setns into the pod netns",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Writes a sysctl of the calling thread's network namespace (/proc/sys/net is resolved
/// against the opener's netns), skipping the write when it already holds `value`.
pub fn sysctl(path: &str, value: &str) -> std::io::Result<()> {
    let full = format!("/proc/sys/{path}");
    if std::fs::read_to_string(&full).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&full, value)
}
