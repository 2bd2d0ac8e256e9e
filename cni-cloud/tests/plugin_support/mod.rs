//! Shared by the plugin_*.rs tests: network namespaces that clean up after themselves, and
//! running the plugin binary (or a reference plugin) the way a runtime does, from inside a
//! namespace that plays the node's host namespace. Nothing here touches the real host's
//! network: every plugin process and every command runs in a namespace the test created.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_cni-cloud");
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// True when the test can run; otherwise says why loudly, or panics under
/// CNI_CLOUD_REQUIRE_ALL=1.
pub fn ready(needs: &[&str]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root".to_string());
    }
    for tool in needs {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            std::env::var_os("PATH").is_some_and(|p| {
                std::env::split_paths(&p).any(|d| d.join(tool).is_file())
                    || ["/usr/sbin", "/sbin"]
                        .iter()
                        .any(|d| Path::new(d).join(tool).is_file())
            })
        };
        if !found {
            missing.push((*tool).to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "needs {} (apt-get install -y containernetworking-plugins nftables iproute2 iputils-ping; run as root)",
        missing.join(", ")
    );
    if std::env::var("CNI_CLOUD_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("CNI_CLOUD_REQUIRE_ALL=1 but this test {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique name for this process: `<prefix><pid>x<n>` (netns names and container IDs).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
    file: File,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = unique(&format!("cnit-{tag}-"));
        run_ok("ip", &["netns", "add", &name]);
        let file = File::open(format!("/run/netns/{name}")).expect("open new netns");
        let ns = Self { name, file };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n <ns> …`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// A command inside the namespace (only the network namespace changes).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let fd = self.file.as_raw_fd();
        // SAFETY: setns between fork and exec touches only the child; fd stays open in the parent.
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

    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} in {}: {e}", self.name))
    }

    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.exec(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in {}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One echo reply within 5 s (ping keeps trying until the deadline).
    pub fn ping(&self, dst: &str) -> bool {
        self.exec("ping", &["-n", "-c", "1", "-w", "5", dst])
            .status
            .success()
    }

    /// Runs `work` on a fresh thread that has joined this namespace.
    pub fn run_in<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on this short-lived thread only.
                assert_eq!(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }, 0);
                work()
            })
            .join()
            .expect("netns thread")
        })
    }

    /// Interface names in the namespace.
    pub fn links(&self) -> Vec<String> {
        let out = self.ip(&["-o", "link", "show"]);
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// Links of DELeted attachments still waiting for their detached deletion (`cnix…`).
    pub fn retired(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l.starts_with("cnix"))
            .collect()
    }

    /// Waits up to 10 s for the detached deleters to finish; false if links are left.
    pub fn retired_drain(&self) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.retired().is_empty() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }

    pub fn host_veths(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l.starts_with("cnic"))
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a plugin process answered.
#[derive(Debug)]
pub struct Reply {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// Asserts success and returns the JSON result (Null for verbs that print nothing).
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.exit, 0,
            "plugin failed: {} {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts the spec's error shape and returns its code.
    pub fn err_code(&self) -> u64 {
        assert_eq!(self.exit, 1, "expected failure, got {:?}", self.stdout);
        let v = self.json();
        assert!(v["msg"].is_string(), "error has no msg: {v}");
        assert!(v["cniVersion"].is_string(), "error has no cniVersion: {v}");
        v["code"].as_u64().expect("error code")
    }
}

/// The CNI_* variables of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub command: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub args: String,
}

impl Call {
    pub fn new(command: &str, container_id: &str, ifname: &str, netns: &str) -> Self {
        Self {
            command: command.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            netns: netns.into(),
            args: String::new(),
        }
    }

    pub fn verb(command: &str) -> Self {
        Self::new(command, "", "", "")
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("CNI_PATH", REFERENCE_DIR.to_string())];
        for (k, val) in [
            ("CNI_COMMAND", &self.command),
            ("CNI_CONTAINERID", &self.container_id),
            ("CNI_IFNAME", &self.ifname),
            ("CNI_NETNS", &self.netns),
            ("CNI_ARGS", &self.args),
        ] {
            if !val.is_empty() {
                v.push((k, val.clone()));
            }
        }
        v
    }
}

/// Starts `binary` in `node` (the node's host namespace) with a clean environment.
pub fn spawn(node: &Netns, binary: &str, call: &Call, raw_env: &[(&str, &str)]) -> Child {
    let mut cmd = node.command(binary);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(call.env())
        .envs(raw_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"))
}

pub fn finish(mut child: Child, stdin: &[u8]) -> Reply {
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().expect("plugin output");
    Reply {
        exit: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the cni-cloud binary once.
pub fn cni(node: &Netns, call: &Call, conf: &Value) -> Reply {
    finish(spawn(node, PLUGIN, call, &[]), conf.to_string().as_bytes())
}

/// Runs any plugin binary with raw stdin and extra (possibly invalid) environment.
pub fn raw(node: &Netns, binary: &str, call: &Call, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
    finish(spawn(node, binary, call, env), stdin)
}

/// A cni-cloud network config with its state under `data_dir`.
pub fn conf(version: &str, name: &str, data_dir: &Path, ranges: Value) -> Value {
    serde_json::json!({
        "cniVersion": version,
        "name": name,
        "type": "cni-cloud",
        "dataDir": data_dir.to_string_lossy(),
        "ranges": ranges,
    })
}

/// What libcni does for one plugin of a conflist: copy name and cniVersion in, add the
/// previous result and the runtime config.
pub fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>, runtime: &Value) -> Value {
    let mut c = plugin.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        let mut rc = serde_json::Map::new();
        for (k, on) in caps {
            if on.as_bool() == Some(true)
                && let Some(v) = runtime.get(k)
            {
                rc.insert(k.clone(), v.clone());
            }
        }
        if !rc.is_empty() {
            c["runtimeConfig"] = Value::Object(rc);
        }
    }
    c
}

/// IPAM state files of network `name` under `data_dir`: (reservations, attachment records).
pub fn state(data_dir: &Path, name: &str) -> (Vec<String>, Vec<String>) {
    let list = |sub: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(data_dir.join(name).join(sub))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    (list("ips"), list("attachments"))
}

/// The pod's address of the given family from an ADD result.
pub fn pod_ip(result: &Value, v4: bool) -> String {
    result["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .find(|a| a.contains('.') == v4)
        .unwrap_or_else(|| panic!("no IPv{} address in {result}", if v4 { 4 } else { 6 }))
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cni-cloud-test-")
        .tempdir()
        .expect("tempdir")
}

pub fn path_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}
