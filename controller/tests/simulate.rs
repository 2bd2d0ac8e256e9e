//! `simulate` end to end: the real binary, the real provider, the in-process mock clouds
//! over HTTP. Every number checked here is the mock's own view, not the controller's claim.

use std::process::Command;

use serde_json::Value;

fn simulate(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cni-cloud-controller"))
        .arg("simulate")
        .args(["--output", "json", "--timeout", "90"])
        .args(args)
        .output()
        .expect("run cni-cloud-controller");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// The foreign routes seeded inside the cluster CIDR put two nodes in conflict (one at its
/// podCIDR, one inside it); the controller must report exactly those.
fn assert_conflicts_reported(r: &Value) {
    assert_eq!(u(r, "conflicts_expected"), 2, "{r}");
    assert_eq!(u(r, "conflicts_reported"), 2, "{r}");
    assert_eq!(u(r, "routes_present"), u(r, "routes_expected"), "{r}");
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn aws_converges_within_quota_and_never_touches_foreign_routes() {
    let (code, r, err) = simulate(&[
        "--cloud",
        "aws",
        "--nodes",
        "60",
        "--tables",
        "2",
        "--foreign-routes",
        "10",
        "--route-limit",
        "40",
        "--time-scale",
        "50",
        "--churn",
        "0.2",
    ]);
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["converged"], true);
    assert_eq!(u(&r, "foreign_routes"), 10);
    assert_eq!(u(&r, "foreign_routes_touched"), 0);
    assert_eq!(u(&r, "routes_wrong"), 0);
    assert_eq!(u(&r, "routes_present"), u(&r, "routes_expected"));
    // 40 per table minus the local route and 5 foreign routes: 34 node routes fit in each
    // (the first table's oldest 34 bar node 1, whose podCIDR a foreign route holds there).
    assert_eq!(u(&r, "routes_expected"), 2 * 34);
    assert_eq!(u(&r, "quota_blocked_nodes"), 26);
    assert_eq!(u(&r, "quota_blocked_reported"), 26);
    assert_conflicts_reported(&r);
    assert_eq!(u(&r, "throttled"), 0);
    // No write is wasted: one per route plus node preparation.
    assert!(
        u(&r, "mutating_calls") <= u(&r, "routes_expected") + u(&r, "node_prep_calls"),
        "{r}"
    );
    let steady = &r["steady_state"];
    assert_eq!(u(steady, "mutating_calls"), 0, "{r}");
    assert_eq!(u(steady, "list_calls"), 2, "one listing per table: {r}");
    assert_eq!(r["churn"]["converged"], true, "{r}");
    assert_eq!(u(&r["churn"], "nodes_replaced"), 12);
}

#[test]
fn aws_converges_through_injected_faults() {
    let (code, r, err) = simulate(&[
        "--cloud",
        "aws",
        "--nodes",
        "40",
        "--dual-stack",
        "--faults",
        "0.1",
        "--time-scale",
        "50",
    ]);
    assert_eq!(code, 0, "{r}\n{err}");
    assert!(u(&r, "faults_injected") > 0, "{r}");
    // Every node route in both families and tables but one: node 1's IPv4 podCIDR holds a
    // foreign route in the first table (a conflict, left alone).
    assert_eq!(u(&r, "routes_present"), 2 * 2 * 40 - 1);
    assert_conflicts_reported(&r);
    assert_eq!(u(&r, "routes_wrong"), 0);
    assert_eq!(u(&r, "foreign_routes_touched"), 0);
}

#[test]
fn azure_writes_one_put_per_table_and_keeps_foreign_routes_verbatim() {
    let (code, r, err) = simulate(&[
        "--cloud",
        "azure",
        "--nodes",
        "50",
        "--tables",
        "3",
        "--dual-stack",
        "--foreign-routes",
        "9",
        "--time-scale",
        "50",
        "--churn",
        "0.1",
    ]);
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(u(&r, "routes_present"), 3 * 2 * 50 - 1);
    assert_conflicts_reported(&r);
    assert_eq!(u(&r, "foreign_routes_touched"), 0);
    let puts = u(&r["api_calls"], "Microsoft.Network/routeTables/write");
    // Initial pass and churn pass: one PUT per table each.
    assert_eq!(puts, 6, "{r}");
    assert_eq!(u(&r["steady_state"], "mutating_calls"), 0, "{r}");
}

#[test]
fn azure_quota_is_reported_not_exceeded() {
    let (code, r, err) = simulate(&[
        "--cloud",
        "azure",
        "--nodes",
        "30",
        "--tables",
        "1",
        "--foreign-routes",
        "4",
        "--route-limit",
        "20",
        "--time-scale",
        "50",
    ]);
    assert_eq!(code, 0, "{r}\n{err}");
    // 20 slots less 4 foreign routes; node 1 is in conflict (a foreign route holds its
    // podCIDR), so 16 of the other 29 nodes fit, oldest first, and 13 wait for room.
    assert_eq!(u(&r, "routes_expected"), 16);
    assert_eq!(u(&r, "routes_present"), 16);
    assert_eq!(u(&r, "quota_blocked_nodes"), 13);
    assert_eq!(u(&r, "quota_blocked_reported"), 13);
    assert_conflicts_reported(&r);
}

#[test]
fn bad_flags_fail_clearly_and_start_nothing() {
    for (args, needle) in [
        (vec!["--faults", "2"], "--faults"),
        (vec!["--nodes", "0"], "--nodes"),
        (vec!["--time-scale=-1"], "--time-scale"),
        (vec!["--cloud", "gcp"], "gcp"),
    ] {
        let (code, r, err) = simulate(&args);
        assert_ne!(code, 0, "{args:?} must fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(r, Value::Null, "nothing printed on stdout for {args:?}");
    }
}

#[test]
fn kube_mode_survives_a_killed_leader() {
    let (code, r, err) = simulate(&[
        "--kube",
        "--replicas",
        "2",
        "--kill-leader-at",
        "0.5",
        "--nodes",
        "80",
        "--time-scale",
        "20",
    ]);
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["converged"], true);
    assert_eq!(u(&r, "replicas"), 2);
    assert!(u(&r, "leader_changes") >= 1, "{r}");
    assert!(r["failover_seconds"].as_f64().is_some(), "{r}");
    assert_eq!(u(&r, "duplicate_mutations"), 0, "{r}");
    assert_eq!(u(&r, "nodes_condition_correct"), 80, "{r}");
    assert_eq!(u(&r, "routes_present"), 160 - 1);
    assert_conflicts_reported(&r);
    assert_eq!(u(&r, "foreign_routes_touched"), 0);
}

#[test]
fn node_reads_do_not_grow_with_the_cluster_cold_or_after_cache_expiry() {
    // 1,000 nodes; lookups trusted for 5 cloud seconds, so every cached target expires
    // (and is refreshed) several times during the run and its steady state.
    let (code, r, err) = simulate(&[
        "--cloud",
        "aws",
        "--nodes",
        "1000",
        "--tables",
        "1",
        "--time-scale",
        "100",
        "--discovery-ttl",
        "5",
    ]);
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["converged"], true);
    let reads = r["reads_per_node"].as_f64().expect("reads_per_node");
    let describes = r["api_calls"]["DescribeInstances"].as_u64().unwrap_or(0);
    assert!(
        reads <= 0.05,
        "{reads} reads per node ({describes} DescribeInstances) at 1,000 nodes"
    );
    assert_eq!(reads, describes as f64 / 1000.0, "{r}");
}
