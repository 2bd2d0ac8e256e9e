//! The fence against a paused leader: two `cni-cloud-controller run` processes signing with
//! different access keys. The leader is stopped (SIGSTOP, as a GC pause or a slow disk
//! would) for twice the lease while it is writing, the standby takes over and writes, then
//! the old leader continues (SIGCONT) believing it leads. Judged from the mock EC2's
//! per-client request log: after the new leader's first write the old one sends **zero**
//! mutating requests.

mod common;

use std::time::{Duration, Instant};

use common::{REPLICA_TIME_SCALE, holder, spawn};

const NODES: u32 = 500;
const LEASE: Duration = Duration::from_secs(3);
const MUTATING: [&str; 4] = [
    "CreateRoute",
    "ReplaceRoute",
    "DeleteRoute",
    "ModifyNetworkInterfaceAttribute",
];

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on a child we spawned and still own.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_sends_no_write_after_the_new_leader_starts() {
    let cloud = common::cloud(NODES, REPLICA_TIME_SCALE).await;
    let ec2 = cloud.ec2.clone();
    let (kube, kube_server) = common::kube(NODES).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = common::kubeconfig_file(&kube, &kube_server, dir.path());
    let url = cloud.server.url();
    let keys = [("a", "AKIDREPLICAA"), ("b", "AKIDREPLICAB")];
    let replicas: Vec<_> = keys
        .iter()
        .map(|(name, key)| spawn(name, &kubeconfig, &url, key))
        .collect();
    let routes = || common::node_routes(&ec2).len() as u32;

    // Pause the leader while it is writing: past the burst, well before the end.
    let deadline = Instant::now() + Duration::from_secs(120);
    while routes() < 100 {
        assert!(Instant::now() < deadline, "the first leader never wrote");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leader = holder(&kube).expect("someone leads");
    let idx = replicas.iter().position(|r| r.name == leader).unwrap();
    let paused_key = keys.iter().find(|(n, _)| *n == leader).unwrap().1;
    let other_key = keys.iter().find(|(n, _)| *n != leader).unwrap().1;
    let at_pause = routes();
    assert!(at_pause < NODES, "paused too late to test anything");
    signal(replicas[idx].child.id(), libc::SIGSTOP);
    tokio::time::sleep(LEASE * 2).await;
    signal(replicas[idx].child.id(), libc::SIGCONT);

    // Everything converges (by the new leader), and the old one stays quiet.
    let deadline = Instant::now() + Duration::from_secs(120);
    while routes() < NODES {
        assert!(
            Instant::now() < deadline,
            "no convergence after the pause: {} routes",
            routes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the resumed process time to act on anything it had queued.
    tokio::time::sleep(LEASE).await;

    let log = ec2.requests();
    let writes = |key: &str| -> Vec<f64> {
        log.iter()
            .filter(|r| r.client == key && MUTATING.contains(&r.action.as_str()))
            .map(|r| r.at)
            .collect()
    };
    let old = writes(paused_key);
    let new = writes(other_key);
    assert!(
        !old.is_empty(),
        "the paused leader had written before its pause"
    );
    let first_new = new.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(first_new.is_finite(), "the standby never wrote");
    let late: Vec<f64> = old.iter().copied().filter(|t| *t >= first_new).collect();
    eprintln!(
        "paused at {at_pause} routes; old leader {} writes, new leader {} writes from {first_new:.3} s; writes_by_deposed_leader={}",
        old.len(),
        new.len(),
        late.len()
    );
    assert!(late.is_empty(), "the deposed leader wrote at {late:?}");
    assert!(common::foreign_intact(&cloud));
}
