//! `simulate --datapath` end to end: real network namespaces, the real installer and plugin,
//! real controller replicas against the mock clouds. Three nodes over two subnets, two pods
//! each: every pair reachable, a node removed and its podCIDR reused, another node's
//! machine terminated under its listed Node (blackholed, unreachable, its podCIDR reused),
//! a leader killed (or paused) with no continuous probe lost, nothing left behind. Bad
//! input exits 2 and leaves nothing either.
//!
//! The lab needs root (network namespaces). Without it these tests skip loudly, and fail
//! under CNI_CLOUD_REQUIRE_ALL=1.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cni-cloud-controller");

/// One lab at a time (the lab holds a lock; a second run would exit 2).
static LAB: Mutex<()> = Mutex::new(());

fn root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let message = format!("SKIPPED {test}: needs root (network namespaces, nftables)");
    if std::env::var("CNI_CLOUD_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{message}, and CNI_CLOUD_REQUIRE_ALL=1 forbids skipping");
    }
    eprintln!("\n!!!!! {message} !!!!!\n");
    false
}

/// The cni-cloud plugin binary: `CNI_CLOUD_PLUGIN_BIN` when set (scripts/test points it at
/// the one `cargo test --workspace` builds: a `cargo build -p cni-cloud` from here would
/// resolve features for that crate alone and compile a second dependency tree), else built
/// for this profile next to the controller's binary.
fn plugin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("CNI_CLOUD_PLUGIN_BIN").map(PathBuf::from) {
                assert!(
                    path.is_file(),
                    "CNI_CLOUD_PLUGIN_BIN={} is no file",
                    path.display()
                );
                return path;
            }
            let dir = PathBuf::from(BIN).parent().unwrap().to_path_buf();
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "-q", "-p", "cni-cloud", "--bin", "cni-cloud"]);
            if dir.ends_with("release") {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("running cargo build -p cni-cloud");
            assert!(status.success(), "cargo build -p cni-cloud failed");
            let path = dir.join("cni-cloud");
            assert!(path.is_file(), "{} was not built", path.display());
            path
        })
        .clone()
}

fn lab(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("simulate")
        .arg("--datapath")
        .arg("--plugin-bin")
        .arg(plugin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running simulate --datapath")
}

/// Namespaces and scratch dirs of the run with this pid still present.
fn leftovers(pid: u32) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("ccdp{pid}-")))
                .collect()
        })
        .unwrap_or_default();
    let dir = format!("/run/cni-cloud-datapath-{pid}");
    if std::path::Path::new(&dir).exists() {
        left.push(dir);
    }
    left
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The end-to-end verdict, field by field (a failure names what broke).
fn passes_everything(cloud: &str, blow: &[&str]) {
    let _one = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = vec![
        "--cloud",
        cloud,
        "--nodes",
        "3",
        "--tables",
        "2",
        "--pods-per-node",
        "2",
        "--time-scale",
        "10",
        "--timeout",
        "90",
        "--output",
        "json",
    ];
    args.extend_from_slice(blow);
    let out = lab(&args);
    let r = report(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 3 nodes × 2 pods, each pod to the 4 pods on the other nodes.
    assert_eq!(r["pairs_tested"], 24, "{r}\n{stderr}");
    assert_eq!(r["pairs_reachable"], 24, "{r}\n{stderr}");
    for check in ["pod_to_node", "hairpin", "masquerade"] {
        assert!(r[check]["tested"].as_u64().unwrap() > 0, "{check}: {r}");
        assert_eq!(r[check]["tested"], r[check]["passed"], "{check}: {r}");
    }
    assert_eq!(r["nodes_never_reached"], 0, "{r}");
    let reach = &r["reachability_seconds"];
    assert_eq!(reach["nodes"], 3, "{r}");
    assert!(reach["p50"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["removal"]["routes_gone"], true, "{r}");
    assert_eq!(
        r["removal"]["answered"], 0,
        "stale path to a removed node: {r}"
    );
    assert!(r["removal"]["probes"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["reuse"]["reachable"], true, "{r}");
    assert_eq!(
        r["reuse"]["answered_by_old"], 0,
        "the old node answered: {r}"
    );
    // A machine terminated under its listed Node: the middle node (3 nodes: the last is
    // the removed one). Its namespace and pods still run; only the fabric can stop them.
    let t = &r["terminated"];
    assert_eq!(t["node"], "lab-node-001", "{r}");
    assert_eq!(t["blackholed"], true, "not a blackhole in every table: {r}");
    let bh = t["blackholed_seconds"].as_f64().unwrap_or(f64::NAN);
    // The cloud shows the dead target at once; the fabric polls it every 50 ms.
    assert!((0.0..2.0).contains(&bh), "blackholed after {bh} s: {r}");
    assert_eq!(
        t["probes"], 4,
        "an echo and a connect to each of 2 pods: {r}"
    );
    assert_eq!(t["answered"], 0, "a dead machine still reached: {r}");
    assert_eq!(t["replaced_by"], "lab-node-001-new", "{r}");
    assert_eq!(t["replaced_reachable"], true, "{r}");
    assert!(t["replaced_seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(
        t["answered_by_old"], 0,
        "the dead machine's pods answered for the new node: {r}"
    );
    let f = &r["failover"];
    assert_eq!(f["landed"], true, "the blow never landed: {r}");
    assert!(f["leader_before"].is_string(), "{r}");
    assert!(f["leader_after"].is_string(), "{r}");
    assert_ne!(f["leader_before"], f["leader_after"], "{r}");
    assert!(f["probes_sent"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["probes_lost"], 0, "{r}");
    assert_eq!(r["fabric_errors"], 0, "{r}");
    assert_eq!(r["leftovers"], serde_json::json!([]), "{r}");
    assert_eq!(r["passed"], true, "{r}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn aws_pods_reach_each_other_only_through_the_routes_the_controller_wrote() {
    if !root("aws_datapath") {
        return;
    }
    passes_everything("aws", &["--kill-leader-at", "0.5"]);
}

#[test]
fn azure_pods_reach_each_other_only_through_the_routes_the_controller_wrote() {
    if !root("azure_datapath") {
        return;
    }
    passes_everything("azure", &["--kill-leader-at", "0.5"]);
}

#[test]
fn a_paused_leader_loses_no_packet() {
    if !root("paused_leader_datapath") {
        return;
    }
    passes_everything("aws", &["--pause-leader-at", "0.5"]);
}

#[test]
fn bad_input_exits_2_and_leaves_nothing() {
    if !root("datapath_bad_input") {
        return;
    }
    let _one = LAB.lock().unwrap_or_else(|e| e.into_inner());
    for (args, says) in [
        (vec!["--no-such-flag"], "unexpected argument"),
        (vec!["--nodes", "300"], "address plan"),
        (vec!["--kube"], "--kube is not available with --datapath"),
        (vec!["--pods-per-node", "0"], "--pods-per-node"),
        (
            vec!["--plugin-bin", "/nonexistent/cni-cloud"],
            "plugin binary",
        ),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["simulate", "--datapath"]).args(&args);
        if !args.contains(&"--plugin-bin") {
            cmd.arg("--plugin-bin").arg(plugin());
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(leftovers(pid), Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn without_root_it_says_so_and_exits_2() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let out = lab(&["--nodes", "3"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
        return;
    }
    // As root: drop to nobody for the one run.
    let plugin = plugin();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["simulate", "--datapath", "--nodes", "3", "--plugin-bin"])
        .arg(plugin)
        .output();
    let Ok(out) = out else {
        eprintln!("\n!!!!! SKIPPED without_root: no setpriv to drop root !!!!!\n");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run it as root"), "{stderr}");
}

#[test]
fn a_second_lab_at_once_is_refused_and_the_first_is_untouched() {
    if !root("datapath_twice") {
        return;
    }
    let _one = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut first = Command::new(BIN)
        .args(["simulate", "--datapath", "--nodes", "2", "--output", "json"])
        .arg("--plugin-bin")
        .arg(plugin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first holds the lock once its lab exists.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::path::Path::new(&format!("/run/cni-cloud-datapath-{}", first.id())).exists() {
        assert!(Instant::now() < deadline, "the first lab never started");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first lab exited early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = Command::new(BIN)
        .args(["simulate", "--datapath", "--nodes", "2"])
        .arg("--plugin-bin")
        .arg(plugin())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another `simulate --datapath`"), "{stderr}");
    let pid = first.id();
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report(&out)["passed"], true);
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn interrupted_it_removes_everything() {
    if !root("datapath_interrupted") {
        return;
    }
    let _one = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let child = Command::new(BIN)
        .args(["simulate", "--datapath", "--nodes", "3"])
        .arg("--plugin-bin")
        .arg(plugin())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Mid-run: the lab's namespaces exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    while leftovers(pid).len() < 5 {
        assert!(Instant::now() < deadline, "the lab never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(pid), Vec::<String>::new());
}
