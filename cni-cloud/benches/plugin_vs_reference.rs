//! cni-cloud vs the reference `ptp` + `host-local` (Debian's containernetworking-plugins),
//! side by side in one run: same machine, same namespace setup, same number of sandboxes.
//!
//! `cargo bench -p cni-cloud --bench plugin_vs_reference` (root; BENCH_PODS, BENCH_ROUNDS
//! override the defaults). For each plugin, in a fresh node namespace:
//! 1. ROUNDS × (ADD + DEL of one sandbox) with nothing else allocated: "ADD at 0".
//! 2. PODS sandboxes ADDed one after another: "ADD p50".
//! 3. ROUNDS × (ADD + DEL of one more sandbox) with PODS allocated: "ADD at PODS".
//! 4. The PODS sandboxes DELeted: "DEL p50".
//!
//! Every number is one process invocation, from spawn to reap, as a runtime sees it: the
//! harness thread has joined the node namespace and spawns with `posix_spawn` (vfork), as
//! containerd's Go runtime does, so a fork of this (large) process is not charged to either
//! plugin. A DEL returns when the plugin exits and its stdout closes. Peak RSS
//! is the largest `ru_maxrss` of any invocation; `wait4` reports the maximum over the process
//! and the children it reaped, so ptp's figure covers the host-local it runs (max, not sum:
//! generous to the reference).

#[path = "../tests/plugin_support/mod.rs"]
pub mod plugin_support;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use plugin_support::*;
use serde_json::{Value, json};

struct Plugin {
    label: &'static str,
    binary: String,
    conf: Box<dyn Fn(&std::path::Path) -> Value + Sync>,
}

#[derive(Default)]
struct Stats {
    add_at_zero: Vec<Duration>,
    add: Vec<Duration>,
    add_at_full: Vec<Duration>,
    del: Vec<Duration>,
    /// From the first of the PODS DELs until no link but `lo` is left in the node.
    del_phase: Duration,
    max_rss_kib: i64,
}

/// One invocation, timed from spawn to reap.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped with wait4, which also returns its rusage"
)]
fn invoke(binary: &str, call: &Call, stdin: &str, stats: &mut Stats) -> Duration {
    let start = Instant::now();
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(call.env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut status = 0;
    // SAFETY: reaping our own child; rusage is a plain out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(reaped, pid, "wait4");
    let code = std::process::ExitStatus::from_raw(status).code();
    if code != Some(0) {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("{binary} {} failed: {out} {err}", call.command);
    }
    stats.max_rss_kib = stats.max_rss_kib.max(usage.ru_maxrss);
    elapsed
}

fn p50(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn run(plugin: &Plugin, pods: usize, rounds: usize) -> Stats {
    let node = Netns::new("bnode");
    node.run_in(|| run_in_node(&node, plugin, pods, rounds))
}

fn run_in_node(node: &Netns, plugin: &Plugin, pods: usize, rounds: usize) -> Stats {
    let data = temp_dir();
    let conf = (plugin.conf)(data.path()).to_string();
    let mut stats = Stats::default();
    let spare = Netns::new("bpod");
    let once = |stats: &mut Stats, at_full: bool| {
        let id = unique("spare");
        let add = Call::new("ADD", &id, "eth0", &spare.path());
        let t = invoke(&plugin.binary, &add, &conf, stats);
        if at_full {
            stats.add_at_full.push(t);
        } else {
            stats.add_at_zero.push(t);
        }
        let del = Call::new("DEL", &id, "eth0", &spare.path());
        invoke(&plugin.binary, &del, &conf, stats);
    };
    for _ in 0..rounds {
        once(&mut stats, false);
    }
    let sandboxes: Vec<(Netns, String)> = (0..pods)
        .map(|_| (Netns::new("bpod"), unique("b")))
        .collect();
    for (ns, id) in &sandboxes {
        let t = invoke(
            &plugin.binary,
            &Call::new("ADD", id, "eth0", &ns.path()),
            &conf,
            &mut stats,
        );
        stats.add.push(t);
    }
    for _ in 0..rounds {
        once(&mut stats, true);
    }
    let del_phase = Instant::now();
    for (ns, id) in &sandboxes {
        let t = invoke(
            &plugin.binary,
            &Call::new("DEL", id, "eth0", &ns.path()),
            &conf,
            &mut stats,
        );
        stats.del.push(t);
    }
    // Until the kernel has finished too: cni-cloud's DEL leaves the unregistration of the
    // (already downed, routeless) pair to a detached child, so its last deletions may still be
    // running when its last DEL has answered.
    while node.links().iter().any(|l| l != "lo") {
        std::thread::sleep(Duration::from_millis(5));
    }
    stats.del_phase = del_phase.elapsed();
    assert!(node.host_veths().is_empty() || plugin.label != "cni-cloud");
    stats
}

/// The floor any veth plugin pays, timed the same way: one exec creating (deleting) a veth
/// pair with its peer in the pod namespace — by `binary` with the argument lists `add` and
/// `del` give for round `i`.
fn floor(
    rounds: usize,
    binary: &str,
    add_args: impl Fn(usize, &str) -> Vec<String> + Sync,
    del_args: impl Fn(usize) -> Vec<String> + Sync,
) -> (Duration, Duration) {
    let node = Netns::new("bfloor");
    let pod = Netns::new("bpod");
    let (mut add, mut del) = (Vec::new(), Vec::new());
    let timed = |args: Vec<String>| {
        let start = Instant::now();
        let out = std::process::Command::new(binary)
            .args(&args)
            .output()
            .expect("floor binary");
        assert!(out.status.success(), "{binary} {args:?}");
        start.elapsed()
    };
    node.run_in(|| {
        for i in 0..rounds {
            add.push(timed(add_args(i, &pod.path())));
            del.push(timed(del_args(i)));
        }
    });
    (p50(&add), p50(&del))
}

/// `benches/veth_floor.c` built static (`cc -O2 -static`): the one RTM_NEWLINK (RTM_DELLINK)
/// request any veth plugin sends, and nothing else. None when no C compiler or static libc.
fn static_floor_binary() -> Option<String> {
    let out = format!("{}/veth_floor", env!("CARGO_TARGET_TMPDIR"));
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/veth_floor.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = std::process::Command::new(&cc)
        .args(["-O2", "-static", "-o", &out, src])
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("NOTE: cannot build {src} with `{cc} -static`; no static floor row");
    }
    built.then_some(out)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "plugin_vs_reference: run it with `cargo bench -p cni-cloud --bench plugin_vs_reference`"
        );
        return;
    }
    if !ready(&["ip", "/usr/lib/cni/ptp", "/usr/lib/cni/host-local"]) {
        return;
    }
    let num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let pods = num("BENCH_PODS", 250);
    let rounds = num("BENCH_ROUNDS", 30);
    // IPv4 only: the reference ptp waits for IPv6 DAD (seconds), which would swamp the rest.
    // A /23 holds 250 pods plus the spare rounds without wrapping (max-pods 250 needs > /24).
    let subnet = "10.200.0.0/23";
    let cni_cloud_conf = move |dir: &std::path::Path| {
        json!({"cniVersion": "1.0.0", "name": "bench", "type": "cni-cloud", "mtu": 1500,
               "ranges": [[{"subnet": subnet}]], "dataDir": dir.to_string_lossy()})
    };
    let mut plugins = vec![
        Plugin {
            label: "reference ptp + host-local",
            binary: format!("{REFERENCE_DIR}/ptp"),
            conf: Box::new(move |dir| {
                json!({"cniVersion": "1.0.0", "name": "bench", "type": "ptp", "mtu": 1500,
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                                "dataDir": dir.to_string_lossy()}})
            }),
        },
        Plugin {
            label: "cni-cloud",
            // CNI_CLOUD_BENCH_BINARY: measure another build (e.g. a static deployment build).
            binary: std::env::var("CNI_CLOUD_BENCH_BINARY").unwrap_or_else(|_| PLUGIN.to_string()),
            conf: Box::new(cni_cloud_conf),
        },
    ];
    // CNI_CLOUD_BENCH_BASELINE: an older build measured in the same run, for before/after
    // side by side on a machine whose load drifts between runs.
    if let Ok(binary) = std::env::var("CNI_CLOUD_BENCH_BASELINE") {
        plugins.push(Plugin {
            label: "cni-cloud baseline (CNI_CLOUD_BENCH_BASELINE)",
            binary,
            conf: Box::new(cni_cloud_conf),
        });
    }
    let results: Vec<(&str, Stats)> = plugins
        .iter()
        .map(|p| {
            eprintln!("running {} ({pods} sandboxes, {rounds} rounds)…", p.label);
            (p.label, run(p, pods, rounds))
        })
        .collect();
    println!();
    println!(
        "| plugin | ADD p50 | DEL p50 | {pods} DELs until the kernel is done | ADD p50 at 0 allocated | ADD p50 at {pods} allocated | ratio {pods}/0 | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, s) in &results {
        let (z, f) = (p50(&s.add_at_zero), p50(&s.add_at_full));
        println!(
            "| {label} | {} | {} | {} | {} | {} | {:.2} | {:.1} MiB |",
            ms(p50(&s.add)),
            ms(p50(&s.del)),
            ms(s.del_phase),
            ms(z),
            ms(f),
            f.as_secs_f64() / z.as_secs_f64(),
            s.max_rss_kib as f64 / 1024.0
        );
    }
    let (floor_add, floor_del) = floor(
        rounds,
        "ip",
        |i, pod| {
            let pod = pod.trim_start_matches("/run/netns/").to_string();
            [
                "link",
                "add",
                &format!("floor{i}"),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
            ]
            .iter()
            .map(|a| a.to_string())
            .chain(["netns".into(), pod])
            .collect()
        },
        |i| vec!["link".into(), "del".into(), format!("floor{i}")],
    );
    println!(
        "| floor: `ip link add/del` of a veth pair (iproute2, one exec) | {} | {} | | | | | |",
        ms(floor_add),
        ms(floor_del)
    );
    let static_floor = static_floor_binary().map(|bin| {
        floor(
            rounds,
            &bin,
            |i, pod| vec!["add".into(), format!("floor{i}"), "eth0".into(), pod.into()],
            |i| vec!["del".into(), format!("floor{i}")],
        )
    });
    if let Some((add, del)) = static_floor {
        println!(
            "| floor: one exec of a static binary creating (deleting) the veth pair into the pod netns (`benches/veth_floor.c`) | {} | {} | | | | | |",
            ms(add),
            ms(del)
        );
    }
    let (r, o) = (&results[0].1, &results[1].1);
    let ratio = |a: &[Duration], b: &[Duration]| p50(a).as_secs_f64() / p50(b).as_secs_f64();
    println!();
    println!(
        "cni-cloud / reference: ADD p50 {:.3}, DEL p50 {:.3} (goal <= 0.25), \
         ADD at {pods} / at 0 {:.2} (goal <= 1.2), peak RSS {:.2} (goal <= 1)",
        ratio(&o.add, &r.add),
        ratio(&o.del, &r.del),
        p50(&o.add_at_full).as_secs_f64() / p50(&o.add_at_zero).as_secs_f64(),
        o.max_rss_kib as f64 / r.max_rss_kib as f64
    );
    if let Some((add, _)) = static_floor {
        let f = add.as_secs_f64();
        println!(
            "ADD p50 / static floor: cni-cloud {:.2} (goal <= 1.25), at 0 allocated {:.2}; reference {:.2}",
            p50(&o.add).as_secs_f64() / f,
            p50(&o.add_at_zero).as_secs_f64() / f,
            p50(&r.add).as_secs_f64() / f,
        );
        if let Some((_, b)) = results.get(2) {
            println!(
                "ADD p50 / static floor: baseline {:.2}, at 0 allocated {:.2}",
                p50(&b.add).as_secs_f64() / f,
                p50(&b.add_at_zero).as_secs_f64() / f,
            );
        }
    }
}
