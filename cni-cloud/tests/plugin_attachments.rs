//! Two attachments in one pod (containerd's `max_conf_num` > 1, Multus) and a node that
//! already routes an address: cni-cloud never takes over a route it did not create. A second
//! attachment that would need the pod's default route is refused (106) with nothing left
//! behind; one configured as secondary (`"defaultRoute": false`) routes only its own ranges,
//! and each attachment's CHECK holds and DEL of one leaves the other intact.

pub mod plugin_support;

use plugin_support::*;
use serde_json::{Value, json};

/// The pod's routes of one family, as `ip route` prints them.
fn routes(ns: &Netns, v6: bool) -> String {
    ns.ip(&[if v6 { "-6" } else { "-4" }, "route", "show"])
}

fn check(node: &Netns, id: &str, ifname: &str, pod: &Netns, conf: &Value, prev: &Value) -> Reply {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    cni(node, &Call::new("CHECK", id, ifname, &pod.path()), &c)
}

/// A dual-stack network `name` with one /24 and one /64 (`n` picks them), its state in `data`.
fn dual_stack(data: &tempfile::TempDir, name: &str, n: u8) -> Value {
    conf(
        "1.1.0",
        name,
        data.path(),
        json!([[{"subnet": format!("10.{n}.0.0/24")}], [{"subnet": format!("fd{n}::/64")}]]),
    )
}

#[test]
fn a_secondary_attachment_keeps_the_primarys_default_route_and_each_checks_and_deletes_alone() {
    if !ready(&["ip", "ping"]) {
        return;
    }
    let (node, pod, data) = (Netns::new("node"), Netns::new("pod"), temp_dir());
    let primary = dual_stack(&data, "primary", 93);
    let mut secondary = dual_stack(&data, "secondary", 94);
    secondary["defaultRoute"] = json!(false);
    let id = unique("two");
    let add = |ifname: &str, c: &Value| cni(&node, &Call::new("ADD", &id, ifname, &pod.path()), c);
    let del = |ifname: &str, c: &Value| cni(&node, &Call::new("DEL", &id, ifname, &pod.path()), c);

    let first = add("eth0", &primary).ok();
    let second = add("net1", &secondary).ok();
    // The secondary result routes its subnets, not the default.
    assert_eq!(
        second["routes"],
        json!([{"dst": "10.94.0.0/24", "gw": "169.254.1.1"}, {"dst": "fd94::/64", "gw": "fe80::1"}]),
        "{second}"
    );
    for v6 in [false, true] {
        let r = routes(&pod, v6);
        let defaults: Vec<&str> = r.lines().filter(|l| l.starts_with("default")).collect();
        assert_eq!(defaults.len(), 1, "one default route, the primary's: {r}");
        assert!(defaults[0].contains("dev eth0"), "{r}");
        let subnet = if v6 { "fd94::/64" } else { "10.94.0.0/24" };
        assert!(
            r.lines()
                .any(|l| l.starts_with(subnet) && l.contains("dev net1")),
            "{r}"
        );
    }
    check(&node, &id, "eth0", &pod, &primary, &first).ok();
    check(&node, &id, "net1", &pod, &secondary, &second).ok();
    // The primary is reachable from the node, the secondary from another pod of its network
    // (the pod routes only the secondary's subnets through net1).
    node.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);
    assert!(node.ping(&pod_ip(&first, true)), "{first}");
    let peer = Netns::new("peer");
    let peer_id = unique("peer");
    cni(
        &node,
        &Call::new("ADD", &peer_id, "net1", &peer.path()),
        &secondary,
    )
    .ok();
    let over_secondary = |r: &Value| peer.ping(&pod_ip(r, true)) && peer.ping(&pod_ip(r, false));
    assert!(over_secondary(&second), "{second}");

    // DEL of the secondary leaves the primary whole.
    del("net1", &secondary).ok();
    check(&node, &id, "eth0", &pod, &primary, &first).ok();
    assert!(routes(&pod, false).contains("default via 169.254.1.1 dev eth0"));
    assert!(node.ping(&pod_ip(&first, true)));
    assert_eq!(
        state(data.path(), "secondary").1,
        vec![format!("{peer_id}:net1")],
        "only the peer's attachment is left on the secondary network"
    );

    // And the other way round: DEL of the primary leaves the secondary whole.
    let second = add("net1", &secondary).ok();
    assert!(over_secondary(&second), "{second}");
    del("eth0", &primary).ok();
    check(&node, &id, "net1", &pod, &secondary, &second).ok();
    assert!(over_secondary(&second), "{second}");
    del("net1", &secondary).ok();
    cni(
        &node,
        &Call::new("DEL", &peer_id, "net1", &peer.path()),
        &secondary,
    )
    .ok();
    assert_eq!(state(data.path(), "primary"), (vec![], vec![]));
    assert_eq!(state(data.path(), "secondary"), (vec![], vec![]));
}

#[test]
fn a_second_attachment_wanting_the_default_route_is_refused_and_leaves_nothing() {
    if !ready(&["ip"]) {
        return;
    }
    let (node, pod, data) = (Netns::new("node"), Netns::new("pod"), temp_dir());
    let first_conf = dual_stack(&data, "first", 96);
    let id = unique("dup");
    let first = cni(
        &node,
        &Call::new("ADD", &id, "eth0", &pod.path()),
        &first_conf,
    )
    .ok();
    let before_pod = (routes(&pod, false), routes(&pod, true));

    // Another network without "defaultRoute": false, IPv4 only and dual-stack.
    for (name, ranges) in [
        ("second", json!([[{"subnet": "10.97.0.0/24"}]])),
        (
            "second6",
            dual_stack(&data, "second6", 98)["ranges"].clone(),
        ),
    ] {
        let c = conf("1.1.0", name, data.path(), ranges);
        let r = cni(&node, &Call::new("ADD", &id, "net1", &pod.path()), &c);
        assert_eq!(r.err_code(), 106, "{r:?}");
        let msg = r.json()["msg"].as_str().unwrap().to_string();
        assert!(
            msg.contains("default route") && msg.contains("dev eth0"),
            "names the route and its interface: {msg}"
        );
        assert!(
            msg.contains("\"defaultRoute\": false"),
            "says what to do: {msg}"
        );
        // Nothing left: no interface, no host veth, no reservation; the first is untouched.
        assert!(
            !pod.links().contains(&"net1".to_string()),
            "{:?}",
            pod.links()
        );
        assert_eq!(node.host_veths().len(), 1, "{:?}", node.host_veths());
        assert_eq!(state(data.path(), name), (vec![], vec![]));
        assert_eq!((routes(&pod, false), routes(&pod, true)), before_pod);
        check(&node, &id, "eth0", &pod, &first_conf, &first).ok();
    }
    cni(
        &node,
        &Call::new("DEL", &id, "eth0", &pod.path()),
        &first_conf,
    )
    .ok();
}

#[test]
fn an_address_the_node_already_routes_elsewhere_is_not_taken_over() {
    if !ready(&["ip"]) {
        return;
    }
    let (node, pod, data) = (Netns::new("node"), Netns::new("pod"), temp_dir());
    // Something else on the node (another network with an overlapping range) owns
    // 10.99.0.7 and fd99::7.
    node.ip(&[
        "link", "add", "other0", "type", "veth", "peer", "name", "other1",
    ]);
    node.ip(&["link", "set", "other0", "up"]);
    node.ip(&["link", "set", "other1", "up"]);
    node.ip(&["route", "add", "10.99.0.7/32", "dev", "other0"]);
    node.ip(&["-6", "route", "add", "fd99::7/128", "dev", "other0"]);
    let before = (routes(&node, false), routes(&node, true));
    for (v6, ranges) in [
        (
            false,
            json!([[{"subnet": "10.99.0.0/24", "rangeStart": "10.99.0.7", "rangeEnd": "10.99.0.7"}]]),
        ),
        (
            true,
            json!([[{"subnet": "10.99.1.0/24"}],
                   [{"subnet": "fd99::/64", "rangeStart": "fd99::7", "rangeEnd": "fd99::7"}]]),
        ),
    ] {
        let c = conf("1.1.0", "overlap", data.path(), ranges);
        let r = cni(
            &node,
            &Call::new("ADD", &unique("ov"), "eth0", &pod.path()),
            &c,
        );
        assert_eq!(r.err_code(), 106, "{r:?}");
        let msg = r.json()["msg"].as_str().unwrap().to_string();
        let taken = if v6 { "fd99::7/128" } else { "10.99.0.7/32" };
        assert!(
            msg.contains(taken) && msg.contains("dev other0"),
            "names the address and who routes it: {msg}"
        );
        assert!(node.host_veths().is_empty(), "{:?}", node.host_veths());
        assert!(!pod.links().contains(&"eth0".to_string()));
        assert_eq!(state(data.path(), "overlap"), (vec![], vec![]));
        assert_eq!(
            (routes(&node, false), routes(&node, true)),
            before,
            "the node's routes are untouched"
        );
    }
}
