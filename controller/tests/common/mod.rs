//! The world the controller's end-to-end tests run in: a time-scaled mock EC2 with one
//! tagged table (plus foreign routes) and one instance per node, and the mock Kubernetes
//! API enforcing deploy/base's RBAC with the matching Nodes.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::ec2::{Ec2Config, Ec2Mock, Eni, Instance, Origin, Seed, Target, Vpc};
use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig};
use ipnet::IpNet;
use serde_json::{Value, json};

pub const CLUSTER: &str = "fo";
pub const TABLE: &str = "rtb-0f000000000000001";
/// The cloud time scale `spawn`ed replicas pace for (the mock EC2 must run at it too).
pub const REPLICA_TIME_SCALE: f64 = 20.0;

pub fn cidr(i: u32) -> String {
    format!("100.{}.{}.0/24", 64 + i / 256, i % 256)
}

pub fn instance_id(i: u32) -> String {
    format!("i-0f{i:015x}")
}

pub fn eni_id(i: u32) -> String {
    format!("eni-0f{i:015x}")
}

pub fn node_json(i: u32, pod_cidr: &str) -> Value {
    json!({
        "metadata": {"name": format!("node-{i:03}")},
        "spec": {"providerID": format!("aws:///us-east-1a/{}", instance_id(i)),
                 "podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
    })
}

pub struct Cloud {
    pub ec2: Ec2Mock,
    pub server: RunningServer,
    pub foreign: BTreeMap<IpNet, Target>,
}

/// Mock EC2 with `instances` cluster instances (room for more to be added later).
pub async fn cloud(instances: u32, time_scale: f64) -> Cloud {
    let ec2 = Ec2Mock::new(
        Ec2Config {
            route_limit: 1000,
            time_scale,
            ..Ec2Config::default()
        },
        Seed::default(),
    )
    .unwrap();
    let foreign: BTreeMap<IpNet, Target> = [
        ("0.0.0.0/0", Target::Gateway("igw-0f00000000000001".into())),
        (
            "192.168.0.0/16",
            Target::VpcPeeringConnection("pcx-0f00000000000001".into()),
        ),
    ]
    .into_iter()
    .map(|(d, t)| (d.parse().unwrap(), t))
    .collect();
    ec2.with_world(|w| {
        w.vpcs.insert(
            "vpc-0f01".into(),
            Vpc {
                id: "vpc-0f01".into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
                ipv6_cidr: None,
            },
        );
        w.add_table(TABLE, "vpc-0f01", cluster_tags()).unwrap();
        for (d, t) in &foreign {
            w.insert_route(
                TABLE,
                *d,
                t.clone(),
                Origin::CreateRoute,
                std::time::Instant::now(),
            )
            .unwrap();
        }
        for i in 0..instances {
            w.add_instance(instance(i)).unwrap();
        }
    });
    let server = ec2
        .clone()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Cloud {
        ec2,
        server,
        foreign,
    }
}

pub fn cluster_tags() -> BTreeMap<String, String> {
    BTreeMap::from([(
        format!("kubernetes.io/cluster/{CLUSTER}"),
        "owned".to_owned(),
    )])
}

pub fn instance(i: u32) -> Instance {
    Instance {
        id: instance_id(i),
        availability_zone: "us-east-1a".into(),
        tags: cluster_tags(),
        terminated: false,
        network_interfaces: vec![Eni {
            id: eni_id(i),
            device_index: 0,
            private_ip: Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 4),
            ipv6: None,
            source_dest_check: false,
        }],
    }
}

/// destination → ENI of every ENI-targeted route in the table.
pub fn node_routes(ec2: &Ec2Mock) -> BTreeMap<String, String> {
    ec2.with_world(|w| {
        w.tables[TABLE]
            .routes
            .iter()
            .filter_map(|r| match &r.target {
                Target::NetworkInterface(eni) => Some((r.destination.to_string(), eni.clone())),
                _ => None,
            })
            .collect()
    })
}

/// Every foreign route is still there with its target.
pub fn foreign_intact(cloud: &Cloud) -> bool {
    cloud.ec2.with_world(|w| {
        let t = &w.tables[TABLE];
        cloud.foreign.iter().all(|(d, tg)| {
            t.routes
                .iter()
                .any(|r| r.destination == *d && r.target == *tg)
        })
    })
}

pub async fn kube(nodes: u32) -> (KubeMock, RunningServer) {
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/base");
    let kube = KubeMock::new(KubeMockConfig::from_deploy_dir(deploy).unwrap());
    let server = kube
        .clone()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for i in 0..nodes {
        kube.upsert_node(node_json(i, &cidr(i))).unwrap();
    }
    (kube, server)
}

/// The controller's kubeconfig for `kube`, written into `dir`.
pub fn kubeconfig_file(kube: &KubeMock, server: &RunningServer, dir: &std::path::Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        kube.kubeconfig(&server.url(), KubeMockConfig::CONTROLLER_TOKEN),
    )
    .unwrap();
    path
}

/// The NetworkUnavailable condition of a node: (status, reason).
pub fn condition(kube: &KubeMock, name: &str) -> Option<(String, String)> {
    let n = kube.node(name)?;
    n["status"]["conditions"].as_array()?.iter().find_map(|c| {
        (c["type"] == "NetworkUnavailable").then(|| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
    })
}

pub struct Replica {
    pub name: &'static str,
    pub child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A `cni-cloud-controller run` replica against the mock Kubernetes API and mock EC2,
/// signing with `access_key` (the mock EC2 logs requests per access key).
pub fn spawn(
    name: &'static str,
    kubeconfig: &std::path::Path,
    ec2: &str,
    access_key: &str,
) -> Replica {
    // CNI_CLOUD_REPLICA_BIN runs another build of the binary (e.g. the release build, for
    // memory measurements); by default the one cargo built for this test.
    let bin = std::env::var("CNI_CLOUD_REPLICA_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cni-cloud-controller").to_owned());
    let child = Command::new(bin)
        .arg("run")
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--identity", name, "--metrics-addr", "127.0.0.1:0"])
        .args([
            "--lease-duration",
            "3s",
            "--renew-deadline",
            "2s",
            "--retry-period",
            "500ms",
        ])
        .args(["--node-debounce", "100ms"])
        .env("CNI_CLOUD_CLOUD", "aws")
        .env("CNI_CLOUD_CLUSTER_NAME", "fo")
        .env("CNI_CLOUD_CLUSTER_CIDRS", "100.64.0.0/10")
        .env("CNI_CLOUD_ROUTE_LIMIT", "1000")
        .env("CNI_CLOUD_AWS_ENDPOINT", ec2)
        .env("CNI_CLOUD_TIME_SCALE", REPLICA_TIME_SCALE.to_string())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", "failover")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn cni-cloud-controller run");
    Replica { name, child }
}

pub fn holder(kube: &KubeMock) -> Option<String> {
    kube.lease("cni-cloud", "cni-cloud-controller")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

/// A kube client for `kube`, as the controller's ServiceAccount.
pub async fn kube_client(kube: &KubeMock, server: &RunningServer) -> kube::Client {
    let text = kube.kubeconfig(&server.url(), KubeMockConfig::CONTROLLER_TOKEN);
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let config = kube::config::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The reconciler the in-process end-to-end tests drive: always leader, writing Node
/// conditions through the real status writer.
pub fn leader_reconciler(
    provider: std::sync::Arc<dyn cni_cloud_providers::CloudProvider>,
    client: &kube::Client,
    nodes: &kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Node>,
    instance: &str,
) -> cni_cloud_controller::reconcile::Reconciler {
    let writer = std::sync::Arc::new(cni_cloud_controller::kube::status::KubeStatusWriter::new(
        client.clone(),
        nodes.clone(),
        instance,
    ));
    cni_cloud_controller::reconcile::Reconciler::new(
        provider,
        cni_cloud_controller::reconcile::ReconcilerConfig {
            cluster_cidrs: vec!["100.64.0.0/10".parse().unwrap()],
            mutation_budget: std::time::Duration::from_millis(100),
            ..Default::default()
        },
        std::sync::Arc::new(cni_cloud_controller::cluster::AlwaysLeader),
        writer,
    )
}
