//! The data path with real packets: two simulated nodes (each a netns playing the host)
//! joined by a "fabric" netns that routes each node's PodCIDR to that node — what the
//! controller programs into a VPC route table — and the lifecycle verbs against the kernel.

pub mod plugin_support;

use plugin_support::*;
use serde_json::{Value, json};

/// A node: its host namespace, its PodCIDRs and its address on the fabric.
struct Node {
    ns: Netns,
    v4: &'static str,
    v6: &'static str,
    ip4: &'static str,
    ip6: &'static str,
}

struct Fabric {
    ns: Netns,
    nodes: Vec<Node>,
}

/// Fabric links 192.168.<i>.0/24 and fd55:<i>::/64 (the fabric is .1 / ::1, the node .2 / ::2);
/// node i's PodCIDRs 10.100.<i>.0/24 and fd10:<i>::/64 routed to it.
fn fabric(count: usize) -> Fabric {
    const POD4: [&str; 2] = ["10.100.1.0/24", "10.100.2.0/24"];
    const POD6: [&str; 2] = ["fd10:1::/64", "fd10:2::/64"];
    const IP4: [&str; 2] = ["192.168.1.2", "192.168.2.2"];
    const IP6: [&str; 2] = ["fd55:1::2", "fd55:2::2"];
    let fab = Netns::new("fab");
    fab.exec_ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    fab.exec_ok("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);
    let mut nodes = Vec::new();
    for i in 0..count {
        let n = i + 1;
        let ns = Netns::new(&format!("node{n}"));
        let fab_if = format!("n{n}");
        ns.ip(&[
            "link", "add", "fab0", "type", "veth", "peer", "name", &fab_if, "netns", &fab.name,
        ]);
        ns.ip(&["addr", "add", &format!("192.168.{n}.2/24"), "dev", "fab0"]);
        ns.ip(&[
            "addr",
            "add",
            &format!("fd55:{n}::2/64"),
            "dev",
            "fab0",
            "nodad",
        ]);
        ns.ip(&["link", "set", "fab0", "up"]);
        ns.ip(&["route", "add", "default", "via", &format!("192.168.{n}.1")]);
        ns.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("fd55:{n}::1"),
        ]);
        fab.ip(&["addr", "add", &format!("192.168.{n}.1/24"), "dev", &fab_if]);
        fab.ip(&[
            "addr",
            "add",
            &format!("fd55:{n}::1/64"),
            "dev",
            &fab_if,
            "nodad",
        ]);
        fab.ip(&["link", "set", &fab_if, "up"]);
        fab.ip(&["route", "add", POD4[i], "via", &format!("192.168.{n}.2")]);
        fab.ip(&[
            "-6",
            "route",
            "add",
            POD6[i],
            "via",
            &format!("fd55:{n}::2"),
        ]);
        nodes.push(Node {
            ns,
            v4: POD4[i],
            v6: POD6[i],
            ip4: IP4[i],
            ip6: IP6[i],
        });
    }
    Fabric { ns: fab, nodes }
}

struct Pod {
    ns: Netns,
    id: String,
    result: Value,
}

fn node_conf(node: &Node, data: &std::path::Path) -> Value {
    conf(
        "1.1.0",
        "fabric",
        data,
        json!([[{"subnet": node.v4}], [{"subnet": node.v6}]]),
    )
}

fn add_pod(node: &Node, data: &std::path::Path) -> Pod {
    let ns = Netns::new("pod");
    let id = unique("pod");
    let result = cni(
        &node.ns,
        &Call::new("ADD", &id, "eth0", &ns.path()),
        &node_conf(node, data),
    )
    .ok();
    Pod { ns, id, result }
}

#[test]
fn packets_flow_between_pods_nodes_and_back_to_the_same_pod() {
    if !ready(&["ip", "ping", "nft", "sysctl"]) {
        return;
    }
    let fab = fabric(2);
    let (a, b) = (&fab.nodes[0], &fab.nodes[1]);
    let (da, db) = (temp_dir(), temp_dir());
    let a1 = add_pod(a, da.path());
    let a2 = add_pod(a, da.path());
    let b1 = add_pod(b, db.path());
    let ip = |p: &Pod, v4| pod_ip(&p.result, v4);

    // The IPv6 address is usable at once: no tentative (DAD) state to wait for.
    // (The kernel's own link-local address may still be tentative: the pod never uses it.)
    let addrs = a1.ns.ip(&["-6", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains(&ip(&a1, false)), "{addrs}");
    let tentative = a1
        .ns
        .ip(&["-6", "addr", "show", "dev", "eth0", "tentative"]);
    assert!(!tentative.contains(&ip(&a1, false)), "{tentative}");

    assert!(a1.ns.ping(&ip(&a2, true)), "pod -> pod, same node");
    assert!(a1.ns.ping(&ip(&b1, true)), "pod -> pod, across nodes");
    assert!(
        b1.ns.ping(&ip(&a2, true)),
        "pod -> pod, across nodes (back)"
    );
    assert!(a1.ns.ping(a.ip4), "pod -> its host");
    assert!(a.ns.ping(&ip(&a1, true)), "host -> its pod");
    assert!(a1.ns.ping(b.ip4), "pod -> the other node");
    assert!(a1.ns.ping(&ip(&a2, false)), "IPv6 pod -> pod, same node");
    assert!(a1.ns.ping(&ip(&b1, false)), "IPv6 pod -> pod, across nodes");
    assert!(a1.ns.ping(a.ip6), "IPv6 pod -> its host");
    assert!(b1.ns.ping(a.ip6), "IPv6 pod -> the other node");

    // Hairpin, as kube-proxy programs it: the service IP is DNAT'd to the pod itself, and a
    // connection from an endpoint to itself is masqueraded (KUBE-MARK-MASQ for the
    // endpoint's own source), so the reply comes back from the host, not from itself.
    let me = ip(&a1, true);
    let rules = format!(
        "table ip hairpin {{
            chain pre {{
                type nat hook prerouting priority dstnat;
                ip daddr 10.96.0.10 counter dnat to {me}
            }}
            chain post {{
                type nat hook postrouting priority srcnat;
                ip saddr {me} ip daddr {me} masquerade
            }}
        }}\n"
    );
    let mut nft = a.ns.command("nft");
    nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
    let mut child = nft.spawn().expect("nft");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "nft ruleset");
    assert!(
        a1.ns.ping("10.96.0.10"),
        "hairpin: pod -> service IP -> same pod"
    );
    let listed = a.ns.exec_ok("nft", &["list", "table", "ip", "hairpin"]);
    assert!(
        !listed.contains("packets 0 "),
        "the DNAT rule saw no packet: {listed}"
    );

    // Forwarding was switched on in the node's namespace by the plugin, not elsewhere.
    let fwd = a.ns.exec_ok("sysctl", &["-n", "net.ipv4.ip_forward"]);
    assert_eq!(fwd.trim(), "1");

    for (node, data, pod) in [(a, &da, &a1), (a, &da, &a2), (b, &db, &b1)] {
        cni(
            &node.ns,
            &Call::new("DEL", &pod.id, "eth0", &pod.ns.path()),
            &node_conf(node, data.path()),
        )
        .ok();
    }
    assert!(a.ns.host_veths().is_empty() && b.ns.host_veths().is_empty());
    assert_eq!(state(da.path(), "fabric"), (vec![], vec![]));
    drop(fab.ns);
}

fn single_node() -> (Netns, tempfile::TempDir) {
    let node = Netns::new("node");
    (node, temp_dir())
}

fn v4conf(version: &str, data: &std::path::Path) -> Value {
    conf(version, "life", data, json!([[{"subnet": "10.50.0.0/24"}]]))
}

#[test]
fn check_del_and_lifecycle_edges() {
    if !ready(&["ip"]) {
        return;
    }
    let (node, data) = single_node();
    let pod = Netns::new("pod");
    let id = unique("c");
    let c = v4conf("1.1.0", data.path());
    let add = Call::new("ADD", &id, "eth0", &pod.path());
    let result = cni(&node, &add, &c).ok();
    let ip = pod_ip(&result, true);

    // A second ADD of the same attachment without DEL is refused, nothing changes.
    assert_eq!(cni(&node, &add, &c).err_code(), 101);
    assert_eq!(node.host_veths().len(), 1);

    // CHECK right after ADD.
    let mut with_prev = c.clone();
    with_prev["prevResult"] = result.clone();
    let check = Call::new("CHECK", &id, "eth0", &pod.path());
    cni(&node, &check, &with_prev).ok();

    // CHECK of an attachment that was never made: unknown container (3).
    let other = Call::new("CHECK", &unique("none"), "eth0", &pod.path());
    assert_eq!(cni(&node, &other, &with_prev).err_code(), 3);

    // Someone removes the pod's default route: CHECK fails with our CHECK code.
    pod.ip(&["route", "del", "default"]);
    assert_eq!(cni(&node, &check, &with_prev).err_code(), 104);
    pod.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ]);
    cni(&node, &check, &with_prev).ok();
    // … or the host route to the pod.
    node.ip(&["route", "del", &format!("{ip}/32")]);
    let r = cni(&node, &check, &with_prev);
    assert_eq!(r.err_code(), 104);
    assert!(
        r.json()["msg"].as_str().unwrap().contains("host route"),
        "{r:?}"
    );

    // DEL twice: both succeed, everything is gone.
    let del = Call::new("DEL", &id, "eth0", &pod.path());
    cni(&node, &del, &c).ok();
    cni(&node, &del, &c).ok();
    assert!(node.host_veths().is_empty());
    assert_eq!(state(data.path(), "life"), (vec![], vec![]));
    assert!(!pod.links().contains(&"eth0".to_string()));

    // DEL after the netns is gone: still releases the address and the host side.
    let pod2 = Netns::new("pod");
    let id2 = unique("c");
    cni(&node, &Call::new("ADD", &id2, "eth0", &pod2.path()), &c).ok();
    assert_eq!(node.host_veths().len(), 1);
    let path2 = pod2.path();
    drop(pod2);
    cni(&node, &Call::new("DEL", &id2, "eth0", &path2), &c).ok();
    cni(&node, &Call::new("DEL", &id2, "eth0", ""), &c).ok();
    assert!(node.host_veths().is_empty());
    assert_eq!(state(data.path(), "life"), (vec![], vec![]));

    // DEL of something never added, with no state dir at all: fine.
    let fresh = temp_dir();
    cni(
        &node,
        &Call::new("DEL", &unique("never"), "eth0", ""),
        &v4conf("1.1.0", &fresh.path().join("nothing")),
    )
    .ok();
}

#[test]
fn del_answers_before_the_kernel_has_unregistered_the_pair_and_leaves_nothing() {
    if !ready(&["ip", "ping"]) {
        return;
    }
    let (node, data) = single_node();
    // An address for the node to ping from (its only other interfaces are the host veths).
    node.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);
    let pod = Netns::new("pod");
    let id = unique("d");
    let c = conf(
        "1.1.0",
        "life",
        data.path(),
        json!([[{"subnet": "10.50.0.0/24"}], [{"subnet": "fd50::/64"}]]),
    );
    let add = Call::new("ADD", &id, "eth0", &pod.path());
    let del = Call::new("DEL", &id, "eth0", &pod.path());
    let added = cni(&node, &add, &c).ok();
    let (ip, ip6) = (pod_ip(&added, true), pod_ip(&added, false));
    assert_ne!(
        node.ip(&["-6", "route", "show", &format!("{ip6}/128")])
            .trim(),
        ""
    );

    // The moment DEL answers: no host route to the pod (either family), no interface under
    // either name, the addresses released — whatever the kernel still has to unregister is
    // renamed aside.
    cni(&node, &del, &c).ok();
    assert_eq!(node.ip(&["route", "show", &format!("{ip}/32")]).trim(), "");
    assert_eq!(
        node.ip(&["-6", "route", "show", &format!("{ip6}/128")])
            .trim(),
        ""
    );
    assert!(node.host_veths().is_empty(), "{:?}", node.links());
    assert!(
        !pod.links().contains(&"eth0".to_string()),
        "{:?}",
        pod.links()
    );
    assert_eq!(state(data.path(), "life"), (vec![], vec![]));

    // So the same container and ifname can be ADDed straight back into the same netns, and
    // it works end to end.
    let again = pod_ip(&cni(&node, &add, &c).ok(), true);
    assert!(
        node.ping(&again),
        "node cannot reach the re-added pod at {again}"
    );
    cni(&node, &del, &c).ok();

    // The detached deleters finish on their own: nothing is left on either side.
    assert!(
        node.retired_drain(),
        "retired links left: {:?}",
        node.links()
    );
    assert!(pod.retired().is_empty(), "{:?}", pod.links());
}

#[test]
fn gc_removes_retired_links_a_killed_deleter_left_and_nothing_else() {
    if !ready(&["ip"]) {
        return;
    }
    let (node, data) = single_node();
    let peer = Netns::new("pod");
    // What a deleter killed before it ran leaves: a down veth pair named aside.
    node.ip(&[
        "link",
        "add",
        "cnix0000000abcd",
        "type",
        "veth",
        "peer",
        "name",
        "cnix0000000abcd",
        "netns",
        &peer.name,
    ]);
    // Not ours to remove though the name matches: a bridge, and a veth that is up.
    node.ip(&["link", "add", "cnixbridge", "type", "bridge"]);
    node.ip(&[
        "link", "add", "cnixup", "type", "veth", "peer", "name", "p0", "netns", &peer.name,
    ]);
    node.ip(&["link", "set", "cnixup", "up"]);
    let mut gc = v4conf("1.1.0", data.path());
    gc["cni.dev/valid-attachments"] = json!([]);
    cni(&node, &Call::verb("GC"), &gc).ok();
    let mut left = node.retired();
    left.sort();
    assert_eq!(left, vec!["cnixbridge".to_string(), "cnixup".to_string()]);
    assert!(peer.retired().is_empty(), "{:?}", peer.links());
}

#[test]
fn gc_keeps_valid_attachments_and_reclaims_the_rest() {
    if !ready(&["ip"]) {
        return;
    }
    let (node, data) = single_node();
    let pods: Vec<(Netns, String)> = (0..3).map(|_| (Netns::new("pod"), unique("g"))).collect();
    let c = v4conf("1.1.0", data.path());
    for (ns, id) in &pods {
        cni(&node, &Call::new("ADD", id, "eth0", &ns.path()), &c).ok();
    }
    assert_eq!(node.host_veths().len(), 3);
    // Keep pod 0 (new key) and pod 1 (the older key name); pod 2 is gone from the runtime.
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": pods[0].1, "ifname": "eth0"}]);
    gc["cni.dev/valid-attachments"]
        .as_array_mut()
        .unwrap()
        .push(json!({"containerID": pods[1].1, "ifname": "eth0"}));
    cni(&node, &Call::verb("GC"), &gc).ok();
    assert_eq!(node.host_veths().len(), 2);
    assert_eq!(state(data.path(), "life").0.len(), 2);
    assert!(!pods[2].0.links().contains(&"eth0".to_string()));
    assert!(pods[0].0.links().contains(&"eth0".to_string()));

    // The older `cni.dev/attachments` key works too.
    let mut old = c.clone();
    old["cni.dev/attachments"] = json!([{"containerID": pods[1].1, "ifname": "eth0"}]);
    cni(&node, &Call::verb("GC"), &old).ok();
    assert_eq!(node.host_veths().len(), 1);
    assert_eq!(
        state(data.path(), "life").1,
        vec![format!("{}:eth0", pods[1].1)]
    );

    // GC needs its list and cniVersion 1.1.0.
    assert_eq!(cni(&node, &Call::verb("GC"), &c).err_code(), 7);
    let mut v100 = v4conf("1.0.0", data.path());
    v100["cni.dev/valid-attachments"] = json!([]);
    assert_eq!(cni(&node, &Call::verb("GC"), &v100).err_code(), 1);

    let mut none = c.clone();
    none["cni.dev/valid-attachments"] = json!([]);
    cni(&node, &Call::verb("GC"), &none).ok();
    assert!(node.host_veths().is_empty());
    assert_eq!(state(data.path(), "life"), (vec![], vec![]));
}

#[test]
fn status_and_version() {
    if !ready(&["ip"]) {
        return;
    }
    let (node, data) = single_node();
    let small = conf(
        "1.1.0",
        "st",
        data.path(),
        json!([[{"subnet": "10.60.0.0/30"}]]),
    );
    cni(&node, &Call::verb("STATUS"), &small).ok();
    let mut no_ranges = small.clone();
    no_ranges.as_object_mut().unwrap().remove("ranges");
    let r = cni(&node, &Call::verb("STATUS"), &no_ranges);
    assert_eq!(r.err_code(), 50);
    assert_eq!(
        cni(
            &node,
            &Call::verb("STATUS"),
            &conf(
                "1.0.0",
                "st",
                data.path(),
                json!([[{"subnet": "10.60.0.0/30"}]])
            )
        )
        .err_code(),
        1
    );
    // Fill the /30 (two addresses): STATUS says 50 and names the range.
    let pods: Vec<Netns> = (0..2).map(|_| Netns::new("pod")).collect();
    for p in &pods {
        cni(
            &node,
            &Call::new("ADD", &unique("s"), "eth0", &p.path()),
            &small,
        )
        .ok();
    }
    let r = cni(&node, &Call::verb("STATUS"), &small);
    assert_eq!(r.err_code(), 50);
    assert!(r.json()["msg"].as_str().unwrap().contains("10.60.0.0/30"));

    for asked in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let v = cni(&node, &Call::verb("VERSION"), &json!({"cniVersion": asked})).ok();
        assert_eq!(v["cniVersion"], asked);
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }
    // VERSION with no stdin at all still answers.
    let v = raw(&node, PLUGIN, &Call::verb("VERSION"), &[], b"");
    assert_eq!(v.ok()["supportedVersions"].as_array().unwrap().len(), 5);
}

#[test]
fn every_cni_version_gets_its_result_format() {
    if !ready(&["ip"]) {
        return;
    }
    let (node, data) = single_node();
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let pod = Netns::new("pod");
        let id = unique("v");
        let c = conf(
            version,
            "ver",
            data.path(),
            json!([[{"subnet": "10.70.0.0/24"}], [{"subnet": "fd70::/80"}]]),
        );
        let r = cni(&node, &Call::new("ADD", &id, "eth0", &pod.path()), &c).ok();
        assert_eq!(r["cniVersion"], version);
        let ifaces = r["interfaces"].as_array().unwrap();
        assert_eq!(ifaces.len(), 2);
        assert_eq!(ifaces[1]["name"], "eth0");
        assert_eq!(ifaces[1]["sandbox"], pod.path());
        assert!(ifaces[0].get("sandbox").is_none());
        let ips = r["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 2);
        for ip in ips {
            assert_eq!(ip["interface"], 1);
            let v4 = ip["address"].as_str().unwrap().contains('.');
            if version.starts_with("0.") {
                // 0.3.x / 0.4.0: every IP names its family.
                assert_eq!(ip["version"], if v4 { "4" } else { "6" }, "{version}: {r}");
            } else {
                assert!(ip.get("version").is_none(), "{version}: {r}");
            }
            assert_eq!(
                ip["gateway"],
                if v4 { "169.254.1.1" } else { "fe80::1" },
                "{r}"
            );
        }
        assert!(pod_ip(&r, false).starts_with("fd70::"), "{r}");
        assert_eq!(r["routes"].as_array().unwrap().len(), 2);
        if version != "0.3.0" && version != "0.3.1" {
            let mut chk = c.clone();
            chk["prevResult"] = r.clone();
            cni(&node, &Call::new("CHECK", &id, "eth0", &pod.path()), &chk).ok();
        } else {
            // CHECK came with 0.4.0.
            let mut chk = c.clone();
            chk["prevResult"] = r.clone();
            assert_eq!(
                cni(&node, &Call::new("CHECK", &id, "eth0", &pod.path()), &chk).err_code(),
                1
            );
        }
        cni(&node, &Call::new("DEL", &id, "eth0", &pod.path()), &c).ok();
    }
    assert!(node.host_veths().is_empty());
}
