//! The lab's namespaces and links, and their removal. Every namespace is named
//! `ccdp<pid>-…` and lives under `/run/netns`; every link lives inside one of them, so
//! deleting the namespaces removes every link, route, rule and nftables table the lab made.
//! The root namespace is never touched. One run at a time: a lock file in /run.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Prefix of every namespace a lab creates; `<prefix><pid>-` makes a run's own.
pub const PREFIX: &str = "ccdp";
const LOCK: &str = "/run/cni-cloud-datapath.lock";

/// The fabric's bridge for subnet `s` (inside the fabric namespace).
pub fn bridge(s: u32) -> String {
    format!("br{s}")
}

/// A named network namespace (`ip netns add`), opened by fd.
pub struct Ns {
    pub name: String,
    file: File,
}

impl Ns {
    fn create(name: String) -> anyhow::Result<Ns> {
        run("ip", &["netns", "add", &name])?;
        let file = File::open(format!("/run/netns/{name}"))
            .with_context(|| format!("opening namespace {name}"))?;
        let ns = Ns { name, file };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n <ns> …`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A command whose process joins this namespace before it starts (nothing else changes).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        let fd = self.file.as_raw_fd();
        // SAFETY: setns between fork and exec touches only the child; the fd stays open
        // in the parent for as long as this Ns lives.
        unsafe {
            c.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut c = self.command(program);
        c.args(args);
        output(c, program, args, stdin)
    }

    /// A thread that joins this namespace, then runs `work`: sockets it opens belong here.
    /// setns is per thread, so this never runs on an async runtime's workers.
    pub fn thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<std::thread::JoinHandle<T>> {
        let file = self.file.try_clone()?;
        Ok(std::thread::Builder::new()
            .name(format!("ns-{}", self.name))
            .spawn(move || {
                // SAFETY: setns on this thread only; the file outlives the call.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    panic!("setns: {}", std::io::Error::last_os_error());
                }
                drop(file);
                work()
            })?)
    }

    /// Writes a sysctl of this namespace (`net.ipv4.ip_forward` → /proc/sys/net/ipv4/ip_forward,
    /// which a process sees for its own namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_owned();
        let p = path.clone();
        self.thread(move || std::fs::write(&p, value))?
            .join()
            .map_err(|_| anyhow::anyhow!("sysctl thread panicked"))?
            .with_context(|| format!("writing {path} in {}", self.name))
    }
}

fn output(
    mut c: Command,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().with_context(|| format!("running {program}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut c = Command::new(program);
    c.args(args);
    output(c, program, args, None)
}

/// Applies `lines` in namespace `ns` in one `ip -batch` run.
pub fn ip_batch(ns: &str, lines: &[String]) -> anyhow::Result<()> {
    let mut c = Command::new("ip");
    c.args(["-n", ns, "-batch", "-"]);
    let text = lines.join("\n") + "\n";
    output(c, "ip", &["-batch"], Some(&text)).map(drop)
}

/// The run's namespaces and scratch directory; dropping it removes all of them, in the
/// reverse order of creation (pods before their nodes before the fabric).
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    namespaces: Vec<String>,
    _lock: Lock,
}

impl Lab {
    /// Takes the lock, clears what a killed earlier run left, creates the scratch dir.
    pub fn new() -> anyhow::Result<Lab> {
        let lock = Lock::take()?;
        clear_stale();
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let dir = PathBuf::from(format!("/run/cni-cloud-datapath-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Lab {
            prefix,
            dir,
            namespaces: Vec::new(),
            _lock: lock,
        })
    }

    pub fn ns(&mut self, tag: &str) -> anyhow::Result<Ns> {
        let name = format!("{}{tag}", self.prefix);
        // Recorded before it exists: a failure half-way still gets it deleted.
        self.namespaces.push(name.clone());
        Ns::create(name)
    }

    /// Everything still there that this run made (for the cleanup check).
    pub fn leftovers(prefix: &str, dir: &Path) -> Vec<String> {
        let mut left: Vec<String> = list_netns()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect();
        if dir.exists() {
            left.push(dir.display().to_string());
        }
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.namespaces.iter().rev() {
            delete_ns(name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn delete_ns(name: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

fn list_netns() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Namespaces and dirs of a run that was SIGKILLed (its pid gone): removed, so one crash
/// does not leave the next run to trip over its addresses.
fn clear_stale() {
    let alive = |pid: &str| Path::new(&format!("/proc/{pid}")).exists();
    for name in list_netns() {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) && !alive(pid) {
            delete_ns(&name);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/run") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("cni-cloud-datapath-")
                && pid.chars().all(|c| c.is_ascii_digit())
                && !alive(pid)
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// One lab at a time: addresses, bridges and the lock on the lab's names are global.
struct Lock {
    file: File,
}

impl Lock {
    fn take() -> anyhow::Result<Lock> {
        use std::os::unix::fs::MetadataExt;
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(LOCK)
                .with_context(|| format!("opening {LOCK}"))?;
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                bail!(
                    "another `simulate --datapath` is running (it holds {LOCK}); one lab at a time"
                );
            }
            // The holder before us may have removed the file after we opened it: only the
            // file still at the path counts.
            let same = std::fs::metadata(LOCK)
                .is_ok_and(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0));
            if same {
                let mut f = &file;
                let _ = f.set_len(0);
                let _ = writeln!(f, "{}", std::process::id());
                return Ok(Lock { file });
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held, so nobody locks a file about to vanish.
        let _ = std::fs::remove_file(LOCK);
        let _ = &self.file;
    }
}

/// Root, the tools, and the kernel features the lab needs, tried in a scratch namespace
/// (veth, bridge, policy routing, nftables NAT). Leaves nothing behind.
pub fn preflight() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("--datapath builds network namespaces: run it as root");
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            bail!("--datapath needs `{tool}` (apt-get install iproute2 nftables)");
        }
    }
    let name = format!("{PREFIX}{}-preflight", std::process::id());
    let result = (|| -> anyhow::Result<()> {
        let ns = Ns::create(name.clone()).context("creating a network namespace")?;
        ns.ip(&[
            "link", "add", "name", "pfa", "type", "veth", "peer", "name", "pfb",
        ])
        .context("a veth pair")?;
        ns.ip(&["link", "add", "name", "pfbr", "type", "bridge"])
            .context("a bridge")?;
        ns.ip(&["rule", "add", "iif", "pfbr", "lookup", "100", "pref", "100"])
            .context("policy routing")?;
        ns.run(
            "nft",
            &["-f", "-"],
            Some("table ip t {\n chain p {\n type nat hook postrouting priority srcnat;\n masquerade\n }\n}\n"),
        )
        .context("nftables NAT")?;
        Ok(())
    })();
    delete_ns(&name);
    result.map_err(|e| anyhow::anyhow!("missing kernel feature: {e:#}"))
}
