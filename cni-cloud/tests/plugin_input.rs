//! Bad input: every invalid CNI_* variable and malformed config gets the spec's error code
//! as JSON on stdout (exit 1) and nothing is created; plus a bounded proptest fuzz of the
//! environment and config parsers.

pub mod plugin_support;

use std::collections::HashMap;

use cni_cloud::plugin::{config, env};
use plugin_support::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The codes input validation may answer with (SPEC.md "Error").
const INPUT_CODES: [u32; 5] = [1, 2, 4, 6, 7];

#[test]
fn invalid_environment_is_code_4_naming_the_variable_and_creates_nothing() {
    if !ready(&["ip"]) {
        return;
    }
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let data = temp_dir();
    let dir = data.path().join("state");
    let good = conf("1.1.0", "bad", &dir, json!([[{"subnet": "10.40.0.0/24"}]]));
    let regular_file = data.path().join("not-a-netns");
    std::fs::write(&regular_file, "").unwrap();
    let pod_path = pod.path();
    let rf = regular_file.to_string_lossy().into_owned();
    let tmp = data.path().to_string_lossy().into_owned();
    let long = "a".repeat(16);
    // (variable, value or None to unset, command)
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("CNI_COMMAND", None, "ADD"),
        ("CNI_COMMAND", Some("FROB"), "ADD"),
        ("CNI_COMMAND", Some("add"), "ADD"),
        ("CNI_CONTAINERID", None, "ADD"),
        ("CNI_CONTAINERID", Some("-starts-with-dash"), "ADD"),
        ("CNI_CONTAINERID", Some("has/slash"), "ADD"),
        ("CNI_CONTAINERID", Some("has space"), "DEL"),
        ("CNI_CONTAINERID", Some("ünicode"), "CHECK"),
        ("CNI_IFNAME", None, "ADD"),
        ("CNI_IFNAME", Some("."), "ADD"),
        ("CNI_IFNAME", Some(".."), "DEL"),
        ("CNI_IFNAME", Some(&long), "ADD"),
        ("CNI_IFNAME", Some("a/b"), "ADD"),
        ("CNI_IFNAME", Some("a:b"), "ADD"),
        ("CNI_IFNAME", Some("a b"), "ADD"),
        ("CNI_IFNAME", Some("a\tb"), "CHECK"),
        ("CNI_NETNS", None, "ADD"),
        ("CNI_NETNS", None, "CHECK"),
        ("CNI_NETNS", Some("relative/path"), "ADD"),
        ("CNI_NETNS", Some("/does/not/exist"), "ADD"),
        ("CNI_NETNS", Some(&rf), "ADD"),
        ("CNI_NETNS", Some(&tmp), "ADD"),
        // nsfs, but a mount namespace.
        ("CNI_NETNS", Some("/proc/self/ns/mnt"), "ADD"),
        // The plugin's own network namespace (the node's): refusing protects the host.
        ("CNI_NETNS", Some("/proc/self/ns/net"), "ADD"),
        ("CNI_NETNS", Some("/proc/self/ns/net"), "CHECK"),
        ("CNI_ARGS", Some("K8S_POD_NAME"), "ADD"),
        ("CNI_ARGS", Some("=value"), "ADD"),
    ];
    for (var, value, command) in cases {
        let mut call = Call::new(command, &unique("ok"), "eth0", &pod_path);
        let mut extra: Vec<(&str, &str)> = Vec::new();
        match (var, value) {
            ("CNI_COMMAND", v) => {
                call.command = String::new();
                if let Some(v) = v {
                    extra.push(("CNI_COMMAND", v));
                }
            }
            ("CNI_CONTAINERID", v) => call.container_id = v.unwrap_or("").into(),
            ("CNI_IFNAME", v) => call.ifname = v.unwrap_or("").into(),
            ("CNI_NETNS", v) => call.netns = v.unwrap_or("").into(),
            ("CNI_ARGS", v) => call.args = v.unwrap_or("").into(),
            _ => unreachable!(),
        }
        let mut stdin = good.clone();
        if command == "CHECK" {
            stdin["prevResult"] = json!({"cniVersion": "1.1.0", "ips": []});
        }
        let r = raw(&node, PLUGIN, &call, &extra, stdin.to_string().as_bytes());
        assert_eq!(r.err_code(), 4, "{var}={value:?} {command}: {r:?}");
        let msg = r.json()["msg"].as_str().unwrap().to_string();
        assert!(msg.contains(var), "{var}={value:?}: {msg}");
        assert_eq!(node.links(), vec!["lo"], "{var}={value:?} created links");
        assert!(!dir.exists(), "{var}={value:?} created IPAM state");
    }
    assert_eq!(pod.links(), vec!["lo"]);
}

#[test]
fn malformed_config_gets_its_code_and_creates_nothing() {
    if !ready(&["ip"]) {
        return;
    }
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let data = temp_dir();
    let dir = data.path().join("state");
    let d = dir.to_string_lossy().into_owned();
    let base = |extra: Value| -> String {
        let mut c = json!({"cniVersion": "1.1.0", "name": "bad", "type": "cni-cloud", "dataDir": d,
                           "ranges": [[{"subnet": "10.40.0.0/24"}]]});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.to_string()
    };
    let ranges = |r: Value| base(json!({ "ranges": r }));
    let cases: Vec<(String, u64)> = vec![
        (String::new(), 6),
        ("not json".into(), 6),
        ("{".into(), 6),
        ("[]".into(), 6),
        ("null".into(), 6),
        ("42".into(), 6),
        (base(json!({"cniVersion": "9.9.9"})), 1),
        (base(json!({"cniVersion": "0.2.0"})), 1),
        (base(json!({"cniVersion": null})), 7),
        (base(json!({"cniVersion": 1})), 7),
        (base(json!({"name": null})), 7),
        (base(json!({"name": "bad name!"})), 7),
        (base(json!({"ipam": {"type": "host-local"}})), 2),
        (
            ranges(json!([[{"subnet": "10.40.0.0/24", "gateway": "10.40.0.1"}]])),
            2,
        ),
        (base(json!({"ranges": null})), 7), // ADD with no ranges at all
        (ranges(json!("10.40.0.0/24")), 7),
        (ranges(json!([[]])), 7),
        (ranges(json!([[{}]])), 7),
        (ranges(json!([[{"subnet": "nope"}]])), 7),
        (ranges(json!([[{"subnet": "10.40.0.1/24"}]])), 7),
        (ranges(json!([[{"subnet": "10.40.0.0/31"}]])), 7),
        (ranges(json!([[{"subnet": "fd00::/127"}]])), 7),
        (
            ranges(json!([[{"subnet": "10.40.0.0/24"}], [{"subnet": "10.41.0.0/24"}]])),
            7,
        ),
        (
            ranges(json!([[{"subnet": "10.40.0.0/24"}, {"subnet": "fd00::/64"}]])),
            7,
        ),
        (
            ranges(json!([[{"subnet": "10.40.0.0/16"}, {"subnet": "10.40.1.0/24"}]])),
            7,
        ),
        (
            ranges(json!([[{"subnet": "10.40.0.0/24", "rangeStart": "10.41.0.1"}]])),
            7,
        ),
        (
            ranges(
                json!([[{"subnet": "10.40.0.0/24", "rangeStart": "10.40.0.9", "rangeEnd": "10.40.0.2"}]]),
            ),
            7,
        ),
        (
            ranges(json!([[{"subnet": "10.40.0.0/24", "rangeEnd": "x"}]])),
            7,
        ),
        (base(json!({"mtu": 10})), 7),
        (base(json!({"mtu": 70000})), 7),
        (base(json!({"mtu": "1500"})), 7),
        (base(json!({"defaultRoute": "false"})), 7),
        (base(json!({"dataDir": "relative"})), 7),
        (base(json!({"dataDir": 5})), 7),
        (base(json!({"prevResult": 3})), 7),
        (
            base(json!({"prevResult": {"ips": [{"address": "garbage"}]}})),
            7,
        ),
        (base(json!({"prevResult": {"interfaces": "x"}})), 7),
        (
            base(json!({"runtimeConfig": {"ipRanges": [[{"subnet": "bad"}]]}})),
            7,
        ),
    ];
    for (stdin, want) in &cases {
        let call = Call::new("ADD", &unique("c"), "eth0", &pod.path());
        let r = raw(&node, PLUGIN, &call, &[], stdin.as_bytes());
        assert_eq!(r.err_code(), *want, "{stdin}: {r:?}");
        assert_eq!(node.links(), vec!["lo"], "{stdin} created links");
        assert_eq!(pod.links(), vec!["lo"], "{stdin} created the pod end");
        assert!(!dir.exists(), "{stdin} created IPAM state");
    }
    // The error speaks the config's cniVersion when it could read one.
    let r = raw(
        &node,
        PLUGIN,
        &Call::new("ADD", "c", "eth0", &pod.path()),
        &[],
        json!({"cniVersion": "0.4.0", "name": "bad", "mtu": 1})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.json()["cniVersion"], "0.4.0");

    // GC's attachment list must be well-formed.
    for list in [json!("x"), json!([{"containerID": "a"}]), json!([3])] {
        let mut c: Value = serde_json::from_str(&base(json!({}))).unwrap();
        c["cni.dev/valid-attachments"] = list;
        assert_eq!(cni(&node, &Call::verb("GC"), &c).err_code(), 7);
    }
    assert!(!dir.exists());
}

fn env_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[a-zA-Z0-9_.:/ \\-]{0,20}".prop_map(Some),
        any::<String>().prop_map(Some),
        Just(Some("eth0".to_string())),
        Just(Some("/var/run/netns/x".to_string())),
    ]
}

fn command() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "add", ""
        ])
        .prop_map(|s| Some(s.to_string())),
        any::<String>().prop_map(Some),
    ]
}

/// Arbitrary JSON of bounded depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        "[a-z0-9./:]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "10.0.0.0/24",
            "10.0.0.1",
            "fd00::/64",
            "fd00::/127",
            "1.1.0",
            "0.3.1",
            "/run/x",
            "10.0.0.0/8",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map(
                prop::sample::select(vec![
                    "subnet",
                    "rangeStart",
                    "rangeEnd",
                    "gateway",
                    "address",
                    "containerID",
                    "ifname",
                    "ips",
                    "interfaces",
                    "x"
                ]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn config_doc() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "cniVersion",
        "name",
        "type",
        "ranges",
        "dataDir",
        "mtu",
        "ipam",
        "prevResult",
        "runtimeConfig",
        "cni.dev/valid-attachments",
        "cni.dev/attachments",
    ]);
    prop::collection::vec((field, json_value()), 0..8).prop_map(|fields| {
        let mut c = json!({"cniVersion": "1.1.0", "name": "n",
                           "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]});
        for (k, v) in fields {
            c[k] = v;
        }
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Any environment: either a valid Env whose fields satisfy the spec's grammar, or
    /// code 4 naming a CNI_* variable. Never a panic.
    #[test]
    fn env_parser_fuzz(
        cmd in command(),
        id in env_value(),
        ifname in env_value(),
        netns in env_value(),
        args in env_value(),
    ) {
        let mut m = HashMap::new();
        for (k, v) in [("CNI_COMMAND", cmd), ("CNI_CONTAINERID", id), ("CNI_IFNAME", ifname),
                       ("CNI_NETNS", netns), ("CNI_ARGS", args)] {
            if let Some(v) = v { m.insert(k.to_string(), v); }
        }
        match env::parse(|k| m.get(k).cloned()) {
            Ok(e) => {
                if let Some(a) = &e.attachment {
                    prop_assert!(env::valid_container_id(&a.container_id));
                    prop_assert!(env::ifname_problem(&a.ifname).is_none());
                    prop_assert!(a.ifname.len() <= 15 && !a.ifname.contains(['/', ':']));
                }
                if matches!(e.command, env::Command::Add | env::Command::Check) {
                    prop_assert!(e.netns.as_deref().is_some_and(|n| n.starts_with('/')));
                }
            }
            Err(err) => {
                prop_assert_eq!(err.code, 4);
                prop_assert!(err.msg.contains("CNI_"), "{}", err.msg);
            }
        }
    }

    /// Any bytes: a decode error (6) or another input code, never a panic.
    #[test]
    fn config_parser_bytes_fuzz(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = config::parse(&raw) {
            prop_assert!(INPUT_CODES.contains(&e.code), "{e}");
        }
    }

    /// Structured mutations of a valid config: either a config whose invariants hold, or an
    /// input error code. The error JSON always parses and carries a supported cniVersion.
    #[test]
    fn config_parser_structure_fuzz(doc in config_doc()) {
        let raw = doc.to_string();
        match config::parse(raw.as_bytes()) {
            Ok(c) => {
                prop_assert!(config::SUPPORTED_VERSIONS.contains(&c.cni_version.as_str()));
                prop_assert!((576..=65535).contains(&c.mtu));
                prop_assert!(c.data_dir.is_absolute());
                prop_assert!(c.ranges.len() <= 2);
                for set in &c.ranges {
                    let v4 = set[0].subnet.addr().is_ipv4();
                    prop_assert!(set.iter().all(|r| r.subnet.addr().is_ipv4() == v4));
                    for r in set {
                        prop_assert!(r.subnet.max_prefix_len() - r.subnet.prefix_len() >= 2);
                    }
                }
            }
            Err(e) => {
                prop_assert!(INPUT_CODES.contains(&e.code), "{e}");
                let wire: Value = serde_json::from_str(&e.to_json(&config::version_of(raw.as_bytes()))).unwrap();
                prop_assert!(config::SUPPORTED_VERSIONS.contains(&wire["cniVersion"].as_str().unwrap()));
            }
        }
    }
}
