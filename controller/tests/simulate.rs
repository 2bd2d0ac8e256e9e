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

/// `--kube` runs start several controller processes each: one at a time, so a run's
/// timing (a paused leader's resume, the fence's margin) is not decided by CPU starvation
/// from its neighbours (see controller/README.md on the fence's limit).
fn kube_run() -> std::sync::MutexGuard<'static, ()> {
    static KUBE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    KUBE.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn kube_mode_survives_a_killed_leader() {
    let _one_at_a_time = kube_run();
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

/// `--read-faults`: reads fail for a few resync passes after convergence, with lookups
/// expiring every cloud second; a node whose route stayed present must never change
/// condition (a failed read is `Unknown`, never a false "no route").
fn assert_read_faults_flip_nothing(cloud: &str) {
    let (code, r, err) = simulate(&[
        "--cloud",
        cloud,
        "--nodes",
        "30",
        "--tables",
        "2",
        "--time-scale",
        "50",
        "--discovery-ttl",
        "1",
        "--read-faults",
        "0.4",
    ]);
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["converged"], true, "{r}");
    assert!(u(&r, "read_fault_passes") >= 3, "{r}");
    assert!(u(&r, "read_faults_injected") > 0, "{r}");
    assert_eq!(u(&r, "condition_flips"), 0, "{r}");
    assert_eq!(u(&r, "routes_wrong"), 0, "{r}");
    assert_eq!(u(&r, "foreign_routes_touched"), 0, "{r}");
    assert_conflicts_reported(&r);
}

#[test]
fn aws_read_faults_flip_no_condition() {
    assert_read_faults_flip_nothing("aws");
}

#[test]
fn azure_read_faults_flip_no_condition() {
    assert_read_faults_flip_nothing("azure");
}

/// The resync pass counts every call by kind: only listings (one per table) and lookups
/// whose cache expired, no write, and the per-node reads stay far below one per node.
#[test]
fn steady_state_counts_every_call_by_kind() {
    for (cloud, listing) in [
        ("aws", "DescribeRouteTables"),
        ("azure", "Microsoft.Network/routeTables/read"),
    ] {
        let (code, r, err) = simulate(&[
            "--cloud",
            cloud,
            "--nodes",
            "40",
            "--tables",
            "2",
            "--time-scale",
            "50",
        ]);
        assert_eq!(code, 0, "{r}\n{err}");
        let s = &r["steady_state"];
        let calls = s["calls"].as_object().expect("steady_state.calls");
        assert_eq!(u(&s["calls"], listing), 2, "one listing per table: {r}");
        let total: u64 = calls.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(
            total,
            u(s, "list_calls") + u(s, "node_reads") + u(s, "mutating_calls"),
            "every call is a listing, a node read or a write: {r}"
        );
        assert_eq!(u(s, "mutating_calls"), 0, "{r}");
        let per_node = s["reads_per_node"].as_f64().expect("reads_per_node");
        assert_eq!(per_node, u(s, "node_reads") as f64 / 40.0, "{r}");
        assert!(per_node <= 0.05, "{r}");
    }
}

/// `simulate --kube` with a hostile flag: the JSON, after the exit code and every common
/// verdict (all routes, no foreign route touched, conflicts reported, conditions right).
fn hostile(nodes: u64, flags: &[&str]) -> Value {
    hostile_on("aws", nodes, 2, flags).0
}

/// [`hostile`] on `cloud` with `tables` route tables; the JSON and stderr.
fn hostile_on(cloud: &str, nodes: u64, tables: u64, flags: &[&str]) -> (Value, String) {
    let _one_at_a_time = kube_run();
    let (n, t) = (nodes.to_string(), tables.to_string());
    let mut args = vec!["--kube", "--cloud", cloud, "--nodes", &n, "--tables", &t];
    args.extend_from_slice(&["--time-scale", "20"]);
    args.extend_from_slice(flags);
    let (code, r, err) = simulate(&args);
    assert_eq!(code, 0, "{flags:?}: {r}\n{err}");
    assert_eq!(r["converged"], true, "{r}");
    assert_eq!(u(&r, "nodes_condition_correct"), nodes, "{r}");
    // One route per node in every table, but where a foreign route holds a podCIDR.
    assert_eq!(u(&r, "routes_present"), tables * nodes - 1, "{r}");
    assert_eq!(u(&r, "routes_wrong"), 0, "{r}");
    assert_eq!(u(&r, "foreign_routes_touched"), 0, "{r}");
    assert_eq!(u(&r, "duplicate_mutations"), 0, "{r}");
    assert_conflicts_reported(&r);
    (r, err)
}

#[test]
fn azure_kube_mode_converges_and_every_condition_ends_right() {
    // Two `run` processes against the mock ARM, each with its own managed identity (the
    // mock's identity endpoint): the leader writes each table in one PUT, both read.
    let (r, _) = hostile_on("azure", 30, 2, &[]);
    assert_eq!(r["cloud"], "azure", "{r}");
    assert_eq!(u(&r, "replicas"), 2, "{r}");
    assert_eq!(
        u(&r["api_calls"], "Microsoft.Network/routeTables/write"),
        2,
        "{r}"
    );
    assert!(r["writes_by_deposed_leader"].is_null(), "no pause: {r}");
}

#[test]
fn azure_kube_mode_a_paused_leader_writes_nothing_after_its_successor() {
    // Six tables, four written at a time: the leader is stopped with its first four PUTs'
    // operations running and two tables still to write, which its successor writes. The
    // mock ARM's per-client log (by the client id each token was issued to) must show no
    // write of the old leader after its successor's first.
    let (r, err) = hostile_on("azure", 30, 6, &["--pause-leader-at", "0.3"]);
    assert_eq!(u(&r, "leader_pauses"), 1, "{r}");
    assert!(u(&r, "leader_changes") >= 1, "{r}");
    assert_eq!(u(&r, "writes_by_deposed_leader"), 0, "{r}\n{err}");
    // The verdict has teeth: the successor did write while the old leader was deposed.
    assert!(
        err.contains("1 of 1 pauses had a successor write"),
        "the pause came after the work was done: {err}"
    );
}

#[test]
fn azure_kube_mode_hostile_world_all_at_once() {
    // Lookups expire every 5 cloud s, so the read faults after convergence hit them too;
    // 0.4 of reads failing makes "no fault injected" (a run proving nothing) ~1e-5 likely.
    let (r, err) = hostile_on(
        "azure",
        60,
        2,
        &["--hostile", "--discovery-ttl", "5", "--read-faults", "0.4"],
    );
    assert!(u(&r, "leader_pauses") >= 1, "{r}");
    assert!(u(&r, "leader_kills") >= 1, "{r}");
    assert!(u(&r, "leader_changes") >= 3, "{r}");
    assert_eq!(u(&r, "writes_by_deposed_leader"), 0, "{r}\n{err}");
    assert!(u(&r, "node_updates") > 0, "{r}");
    assert_eq!(u(&r, "nodes_joined"), 6, "{r}");
    assert_eq!(u(&r["readiness_seconds"], "nodes"), 6, "{r}");
    assert_read_faults_seen_and_no_flip(&r);
}

/// `--hostile` ends with reads failing for three resync periods: they happened, and no Node
/// whose route stayed present changed its condition on the mock API.
fn assert_read_faults_seen_and_no_flip(r: &Value) {
    assert!(u(r, "read_faults_injected") > 0, "{r}");
    assert!(u(r, "read_fault_passes") >= 2, "{r}");
    assert_eq!(u(r, "condition_flips"), 0, "{r}");
}

#[test]
fn kube_mode_a_paused_leader_writes_nothing_after_its_successor() {
    // Stopped at 30 % of the routes for twice the Lease, then continued: the standby took
    // over and wrote; the mock EC2's per-client log must show no write from the old one
    // after that.
    let r = hostile(80, &["--pause-leader-at", "0.3"]);
    assert_eq!(u(&r, "leader_pauses"), 1, "{r}");
    assert!(u(&r, "leader_changes") >= 1, "{r}");
    assert_eq!(u(&r, "writes_by_deposed_leader"), 0, "{r}");
    let (code, _, err) = simulate(&[
        "--kube",
        "--pause-leader-at",
        "0.3",
        "--pause-seconds",
        "0.5",
    ]);
    assert_ne!(code, 0, "a pause shorter than the Lease proves nothing");
    assert!(err.contains("--pause-seconds"), "{err}");
}

#[test]
fn kube_mode_leadership_flaps_and_every_condition_ends_right() {
    // Three changes: kill (replaced by a fresh replica), pause, kill.
    let r = hostile(60, &["--flap-leadership", "3"]);
    assert_eq!(u(&r, "leader_kills"), 2, "{r}");
    assert_eq!(u(&r, "leader_pauses"), 1, "{r}");
    assert!(u(&r, "leader_changes") >= 3, "{r}");
    assert_eq!(u(&r, "writes_by_deposed_leader"), 0, "{r}");
}

#[test]
fn kube_mode_kubelet_updates_wake_no_writes() {
    // 100 Node updates per cloud second (2,000 per wall second here), none of them about
    // routing: no write beyond one per route plus node preparation (and a retry per
    // throttled call).
    let r = hostile(60, &["--node-updates-per-second", "100"]);
    assert!(u(&r, "node_updates") >= 500, "{r}");
    assert!(
        u(&r, "mutating_calls")
            <= u(&r, "routes_expected") + u(&r, "node_prep_calls") + u(&r, "throttled"),
        "{r}"
    );
}

#[test]
fn kube_mode_joining_nodes_become_ready_with_their_route_in_place() {
    // The youngest tenth joins after the rest converged, at 2 per cloud second; each is
    // ready (NetworkUnavailable=False with its route present in the mock) within bounds.
    let r = hostile(
        100,
        &["--join-rate", "2", "--node-updates-per-second", "50"],
    );
    assert_eq!(u(&r, "nodes_joined"), 10, "{r}");
    let ready = &r["readiness_seconds"];
    assert_eq!(u(ready, "nodes"), 10, "every joined node ready: {r}");
    let p99 = ready["p99"].as_f64().expect("p99");
    assert!(
        p99 > 0.0 && p99 <= 30.0,
        "readiness p99 {p99} cloud seconds: {r}"
    );
}

#[test]
fn kube_mode_hostile_world_all_at_once() {
    let r = hostile(
        60,
        &["--hostile", "--discovery-ttl", "5", "--read-faults", "0.4"],
    );
    assert!(u(&r, "leader_pauses") >= 1, "{r}");
    assert!(u(&r, "leader_kills") >= 1, "{r}");
    assert!(u(&r, "leader_changes") >= 3, "{r}");
    assert_eq!(u(&r, "writes_by_deposed_leader"), 0, "{r}");
    assert!(u(&r, "node_updates") > 0, "{r}");
    assert_eq!(u(&r, "nodes_joined"), 6, "{r}");
    assert_eq!(u(&r["readiness_seconds"], "nodes"), 6, "{r}");
    assert_read_faults_seen_and_no_flip(&r);
    let (code, _, err) = simulate(&["--hostile"]);
    assert_ne!(code, 0, "--hostile needs --kube");
    assert!(err.contains("--kube"), "{err}");
}

/// 30 nodes on `cloud`, three of whose instances (VMs, with their NICs) are terminated after
/// the first convergence, with the controller's default lookup TTL (600 s: a dead instance's
/// target is still cached when its routes go dead); the run must pass.
fn cloud_events(cloud: &str, flags: &[&str]) -> Value {
    let mut args = vec!["--cloud", cloud, "--nodes", "30", "--time-scale", "50"];
    args.extend_from_slice(&["--terminate", "3"]);
    args.extend_from_slice(flags);
    let (code, r, err) = simulate(&args);
    assert_eq!(code, 0, "{r}\n{err}");
    r
}

/// `--terminate`: instances die mid-run (their routes blackhole in the mock), then new
/// nodes on new instances take over their podCIDRs and must be routed to the new ones.
#[test]
fn aws_terminated_instances_podcidrs_are_routed_to_their_new_nodes() {
    let r = cloud_events("aws", &["--tables", "2"]);
    let e = &r["cloud_events"];
    assert_eq!(u(e, "instances_terminated"), 3, "{r}");
    // Three nodes' routes in two tables, all blackholed by the terminations.
    assert_eq!(u(e, "routes_blackholed"), 6, "{r}");
    assert_eq!(e["converged"], true, "{r}");
    // The final fabric: every podCIDR routed to its current node, no blackhole left.
    assert_two_tables_of_30_nodes_routed(&r);
    // Each dead route replaced once, plus at most the new nodes' forwarding switch: the
    // dead target still cached is never written again.
    assert!(u(e, "mutating_calls") >= 6, "each dead route replaced: {r}");
    assert!(
        u(e, "mutating_calls") <= 6 + 3,
        "a dead route written twice: {r}"
    );
    assert_eq!(u(&r, "foreign_routes_touched"), 0, "{r}");
    assert_conflicts_reported(&r);
}

/// `--lose-table`: a managed table is untagged mid-run; its routes are no longer expected
/// and must stay exactly as they were, while the other tables keep converging through new
/// nodes taking over dead ones' podCIDRs.
#[test]
fn aws_lost_table_is_left_alone_and_the_others_keep_converging() {
    let r = cloud_events(
        "aws",
        &["--tables", "3", "--foreign-routes", "9", "--lose-table"],
    );
    let e = &r["cloud_events"];
    assert!(e["table_lost"].is_string(), "{r}");
    // The 30 node routes and 3 foreign routes it held, and its local route.
    assert_eq!(u(e, "lost_table_routes"), 34, "{r}");
    assert_eq!(e["converged"], true, "{r}");
    // Two tables left.
    assert_two_tables_of_30_nodes_routed(&r);
    // Every route of the lost table, the controller's own included, is foreign now.
    assert_eq!(u(&r, "foreign_routes_touched"), 0, "{r}");
    assert_eq!(u(&r, "foreign_routes"), 6 + 34, "{r}");
    assert_steady_state_lists_the_tables_left(&r);
}

/// The final fabric of [`cloud_events`] with two tables: every node's route in both, right,
/// but where a foreign route holds node 1's podCIDR in the first.
fn assert_two_tables_of_30_nodes_routed(r: &Value) {
    assert_eq!(u(r, "routes_expected"), 2 * 30 - 1, "{r}");
    assert_eq!(u(r, "routes_present"), u(r, "routes_expected"), "{r}");
    assert_eq!(u(r, "routes_wrong"), 0, "{r}");
}

/// After `--lose-table`, the steady-state pass manages and lists the two tables left only.
fn assert_steady_state_lists_the_tables_left(r: &Value) {
    let s = &r["steady_state"];
    assert_eq!(u(s, "tables"), 2, "{r}");
    assert_eq!(u(s, "list_calls"), 2, "{r}");
}

/// `--terminate` on Azure: VMs are deleted with their NICs mid-run. ARM has no blackhole
/// state, so their routes keep pointing at addresses no NIC holds; new nodes on new VMs take
/// over their podCIDRs and must be routed to the new NICs' addresses.
#[test]
fn azure_terminated_vms_podcidrs_are_routed_to_their_new_nodes() {
    let r = cloud_events("azure", &["--tables", "2"]);
    let e = &r["cloud_events"];
    assert_eq!(u(e, "instances_terminated"), 3, "{r}");
    // Three nodes' routes in two tables, left pointing at the deleted NICs' addresses.
    assert_eq!(u(e, "routes_blackholed"), 6, "{r}");
    assert_eq!(e["converged"], true, "{r}");
    // The final fabric: every podCIDR routed to its current node's NIC, none to a dead one.
    assert_two_tables_of_30_nodes_routed(&r);
    // One PUT per table carries its three replacements, plus at most the new nodes'
    // forwarding switch: a table written again (a dead address rewritten) is one too many.
    assert!(u(e, "mutating_calls") >= 2, "each table rewritten: {r}");
    assert!(
        u(e, "mutating_calls") <= 2 + 3,
        "a table written twice: {r}"
    );
    assert_eq!(u(&r, "foreign_routes_touched"), 0, "{r}");
    assert_conflicts_reported(&r);
}

/// `--lose-table` on Azure: a managed table is deleted mid-run (Azure tables are configured
/// by id; there is no ownership tag to remove). The controller must go on converging the
/// others through new nodes taking over dead ones' podCIDRs — not fail every pass on the
/// missing table — and must never write it back.
#[test]
fn azure_lost_table_stays_deleted_and_the_others_keep_converging() {
    let r = cloud_events(
        "azure",
        &["--tables", "3", "--foreign-routes", "9", "--lose-table"],
    );
    let e = &r["cloud_events"];
    assert!(e["table_lost"].is_string(), "{r}");
    // The 30 node routes and 3 foreign routes it held.
    assert_eq!(u(e, "lost_table_routes"), 33, "{r}");
    assert_eq!(e["converged"], true, "{r}");
    // Two tables left.
    assert_two_tables_of_30_nodes_routed(&r);
    // The deleted table's foreign routes went with it; had it been written back, its routes
    // would count as touched.
    assert_eq!(u(&r, "foreign_routes"), 6, "{r}");
    assert_eq!(u(&r, "foreign_routes_touched"), 0, "{r}");
    // The two tables left, one PUT each, plus at most the new nodes' forwarding switch.
    assert!(u(e, "mutating_calls") <= 2 + 3, "{r}");
    assert_conflicts_reported(&r);
    assert_steady_state_lists_the_tables_left(&r);
}
