//! IPAM under concurrent plugin processes, exhaustion and `kill -9`, against the kernel.

pub mod plugin_support;

use std::collections::HashSet;
use std::time::Duration;

use plugin_support::*;
use serde_json::json;

#[test]
fn sixty_four_concurrent_adds_get_distinct_addresses_and_concurrent_dels_free_them() {
    if !ready(&["ip"]) {
        return;
    }
    let node = Netns::new("node");
    let data = temp_dir();
    let c = conf(
        "1.1.0",
        "conc",
        data.path(),
        json!([[{"subnet": "10.80.0.0/24"}], [{"subnet": "fd80::/64"}]]),
    );
    let pods: Vec<(Netns, String)> = (0..64).map(|_| (Netns::new("pod"), unique("cc"))).collect();
    let stdin = c.to_string();
    // All 64 processes are started before any is waited for.
    let children: Vec<_> = pods
        .iter()
        .map(|(ns, id)| {
            spawn(
                &node,
                PLUGIN,
                &Call::new("ADD", id, "eth0", &ns.path()),
                &[],
            )
        })
        .collect();
    let results: Vec<_> = children
        .into_iter()
        .map(|ch| finish(ch, stdin.as_bytes()).ok())
        .collect();
    let v4: HashSet<String> = results.iter().map(|r| pod_ip(r, true)).collect();
    let v6: HashSet<String> = results.iter().map(|r| pod_ip(r, false)).collect();
    assert_eq!((v4.len(), v6.len()), (64, 64), "duplicate addresses");
    assert_eq!(node.host_veths().len(), 64);
    let (ips, records) = state(data.path(), "conc");
    assert_eq!((ips.len(), records.len()), (128, 64));
    // Every pod really has its address.
    for ((ns, _), r) in pods.iter().zip(&results) {
        assert!(
            ns.ip(&["addr", "show", "dev", "eth0"])
                .contains(&pod_ip(r, true))
        );
    }

    let children: Vec<_> = pods
        .iter()
        .map(|(ns, id)| {
            spawn(
                &node,
                PLUGIN,
                &Call::new("DEL", id, "eth0", &ns.path()),
                &[],
            )
        })
        .collect();
    for ch in children {
        finish(ch, stdin.as_bytes()).ok();
    }
    assert!(node.host_veths().is_empty());
    assert_eq!(state(data.path(), "conc"), (vec![], vec![]));
}

#[test]
fn a_store_locked_past_lock_timeout_answers_11_and_creates_nothing() {
    if !ready(&["ip"]) {
        return;
    }
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let data = temp_dir();
    let mut c = conf(
        "1.1.0",
        "busy",
        data.path(),
        json!([[{"subnet": "10.82.0.0/24"}]]),
    );
    c["lockTimeoutMs"] = json!(150);
    let add = Call::new("ADD", &unique("l"), "eth0", &pod.path());
    // First ADD creates the store; then another "plugin process" holds its lock.
    let first = Netns::new("pod");
    cni(
        &node,
        &Call::new("ADD", &unique("l"), "eth0", &first.path()),
        &c,
    )
    .ok();
    let lock = std::fs::File::open(data.path().join("busy/lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns; released when it is dropped.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let before = state(data.path(), "busy");
    let r = cni(&node, &add, &c);
    assert_eq!(r.err_code(), 11, "{r:?}");
    assert!(
        r.json()["msg"].as_str().unwrap().contains("locked"),
        "{r:?}"
    );
    assert_eq!(state(data.path(), "busy"), before);
    assert_eq!(node.host_veths().len(), 1);
    assert!(!pod.links().contains(&"eth0".to_string()));
    // DEL waits for the same lock and says so the same way; the runtime retries later.
    let del = Call::new("DEL", &unique("l"), "eth0", &pod.path());
    assert_eq!(cni(&node, &del, &c).err_code(), 11);
    drop(lock);
    cni(&node, &add, &c).ok();
    assert_eq!(node.host_veths().len(), 2);

    // The knob itself is validated: out of range is an invalid config (7), nothing created.
    for bad in [json!(0), json!(-5), json!("1s"), json!(600_001)] {
        let mut b = c.clone();
        b["lockTimeoutMs"] = bad.clone();
        let r = cni(
            &node,
            &Call::new("ADD", &unique("l"), "eth0", &pod.path()),
            &b,
        );
        assert_eq!(r.err_code(), 7, "lockTimeoutMs {bad}: {r:?}");
    }
    assert_eq!(node.host_veths().len(), 2);
}

#[test]
fn exhaustion_answers_code_100_and_creates_nothing() {
    if !ready(&["ip"]) {
        return;
    }
    let node = Netns::new("node");
    let data = temp_dir();
    // A /29 narrowed to 4 addresses.
    let c = conf(
        "1.1.0",
        "full",
        data.path(),
        json!([[{"subnet": "10.81.0.0/29", "rangeStart": "10.81.0.2", "rangeEnd": "10.81.0.5"}]]),
    );
    let pods: Vec<Netns> = (0..5).map(|_| Netns::new("pod")).collect();
    let mut got = HashSet::new();
    for p in &pods[..4] {
        let r = cni(
            &node,
            &Call::new("ADD", &unique("x"), "eth0", &p.path()),
            &c,
        )
        .ok();
        got.insert(pod_ip(&r, true));
    }
    let expect: HashSet<String> = (2..=5).map(|i| format!("10.81.0.{i}")).collect();
    assert_eq!(got, expect);
    let r = cni(
        &node,
        &Call::new("ADD", &unique("x"), "eth0", &pods[4].path()),
        &c,
    );
    assert_eq!(r.err_code(), 100);
    // The message names the range that is full, not just its subnet.
    assert_eq!(
        r.json()["msg"],
        "no free address in 10.81.0.2\u{2013}10.81.0.5 in 10.81.0.0/29"
    );
    assert_eq!(node.host_veths().len(), 4);
    assert!(!pods[4].links().contains(&"eth0".to_string()));
    assert_eq!(state(data.path(), "full").1.len(), 4);
    let status = cni(&node, &Call::verb("STATUS"), &c);
    assert_eq!(status.err_code(), 50);
    assert_eq!(
        status.json()["msg"],
        "no free address in 10.81.0.2\u{2013}10.81.0.5 in 10.81.0.0/29"
    );

    // A dual-stack ADD whose IPv6 set has room but IPv4 has none reserves nothing at all.
    let dual = conf(
        "1.1.0",
        "full",
        data.path(),
        json!([[{"subnet": "10.81.0.0/29", "rangeStart": "10.81.0.2", "rangeEnd": "10.81.0.5"}],
               [{"subnet": "fd81::/64"}]]),
    );
    let r = cni(
        &node,
        &Call::new("ADD", &unique("x"), "eth0", &pods[4].path()),
        &dual,
    );
    assert_eq!(r.err_code(), 100);
    assert_eq!(state(data.path(), "full").0.len(), 4);
}

#[test]
fn kill_9_mid_add_then_gc_leaves_no_leak_and_no_duplicate() {
    if !ready(&["ip"]) {
        return;
    }
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let data = temp_dir();
    let c = conf(
        "1.1.0",
        "kill",
        data.path(),
        json!([[{"subnet": "10.82.0.0/24"}], [{"subnet": "fd82::/64"}]]),
    );
    let stdin = c.to_string();
    // Interrupt ADDs at every point from "before it read stdin" to "done": 0..8 ms in steps.
    let mut killed = Vec::new();
    for i in 0..40u64 {
        let id = unique("k");
        let ifname = format!("k{i}");
        let mut ch = spawn(
            &node,
            PLUGIN,
            &Call::new("ADD", &id, &ifname, &pod.path()),
            &[],
        );
        {
            let mut input = ch.stdin.take().unwrap();
            std::io::Write::write_all(&mut input, stdin.as_bytes()).unwrap();
        }
        std::thread::sleep(Duration::from_micros(i * 200));
        let _ = ch.kill(); // SIGKILL
        let _ = ch.wait();
        killed.push((id, ifname));
    }
    // Meanwhile a healthy pod on the same node, which GC must keep.
    let keep_ns = Netns::new("pod");
    let keep_id = unique("keep");
    let keep = cni(
        &node,
        &Call::new("ADD", &keep_id, "eth0", &keep_ns.path()),
        &c,
    )
    .ok();

    // Nothing a killed ADD left may be handed out twice, even before GC.
    let before_gc = Netns::new("pod");
    let r = cni(
        &node,
        &Call::new("ADD", &unique("pre"), "eth0", &before_gc.path()),
        &c,
    )
    .ok();
    assert_ne!(pod_ip(&r, true), pod_ip(&keep, true));

    let (ips_before, records_before) = state(data.path(), "kill");
    eprintln!(
        "before GC: {} records, {} reservations, {} host veths, {} pod ends from killed ADDs",
        records_before.len(),
        ips_before.len(),
        node.host_veths().len(),
        pod.links().iter().filter(|l| l.starts_with('k')).count()
    );
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": keep_id, "ifname": "eth0"}]);
    cni(&node, &Call::verb("GC"), &gc).ok();
    let (ips, records) = state(data.path(), "kill");
    assert_eq!(records, vec![format!("{keep_id}:eth0")], "records after GC");
    let mut kept_ips = vec![pod_ip(&keep, true), pod_ip(&keep, false)];
    kept_ips.sort();
    assert_eq!(ips, kept_ips, "reservations after GC");
    assert_eq!(node.host_veths().len(), 1, "{:?}", node.links());
    assert!(
        pod.links().iter().all(|l| !l.starts_with('k')),
        "pod ends left: {:?}",
        pod.links()
    );
    let leftovers: Vec<_> = std::fs::read_dir(data.path().join("kill"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files: {leftovers:?}");

    // The range is whole again: the next ADDs get fresh, distinct addresses.
    let mut seen: HashSet<String> = kept_ips.into_iter().collect();
    for _ in 0..5 {
        let ns = Netns::new("pod");
        let r = cni(
            &node,
            &Call::new("ADD", &unique("after"), "eth0", &ns.path()),
            &c,
        )
        .ok();
        assert!(seen.insert(pod_ip(&r, true)), "duplicate {r}");
        assert!(seen.insert(pod_ip(&r, false)), "duplicate {r}");
    }
    drop(killed);
}
