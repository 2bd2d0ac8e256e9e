//! Shared support for the AWS provider tests: a seeded mock EC2, provider construction,
//! and a moto_server started on a free loopback port.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::ec2::{Ec2Config, Ec2Mock, Eni, Instance, Seed, SeedTable, Vpc};
use cni_cloud_providers::aws::{AwsConfig, AwsProvider, StaticCredentials};
use cni_cloud_providers::pacing::PacingConfig;
use cni_cloud_providers::retry::RetryPolicy;

pub const CLUSTER: &str = "test";
pub const TAG: &str = "kubernetes.io/cluster/test";

pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn instance(id: &str, n: u8, cluster: bool, extra_enis: u8) -> Instance {
    let mut enis = vec![Eni {
        id: format!("eni-{id}-0"),
        device_index: 0,
        private_ip: Ipv4Addr::new(10, 0, 1, n),
        ipv6: Some(format!("2600:1f18::{n:x}").parse().unwrap()),
        source_dest_check: true,
    }];
    for k in 1..=extra_enis {
        enis.push(Eni {
            id: format!("eni-{id}-{k}"),
            device_index: k as u32,
            private_ip: Ipv4Addr::new(10, 0, 2 + k, n),
            ipv6: None,
            source_dest_check: true,
        });
    }
    Instance {
        id: id.to_owned(),
        availability_zone: "us-east-1a".into(),
        tags: if cluster {
            tags(&[(TAG, "owned"), ("Name", id)])
        } else {
            tags(&[("Name", id)])
        },
        terminated: false,
        network_interfaces: enis,
    }
}

/// One dual-stack VPC, two tagged tables, one untagged table; three cluster instances
/// (the third with two ENIs) and one foreign instance.
pub fn seed() -> Seed {
    Seed {
        vpcs: vec![Vpc {
            id: "vpc-1".into(),
            cidr: "10.0.0.0/16".parse().unwrap(),
            ipv6_cidr: Some("2600:1f18::/56".parse().unwrap()),
        }],
        route_tables: vec![
            SeedTable {
                id: "rtb-a".into(),
                vpc_id: "vpc-1".into(),
                tags: tags(&[(TAG, "owned"), ("Name", "az-a")]),
                routes: vec![],
            },
            SeedTable {
                id: "rtb-b".into(),
                vpc_id: "vpc-1".into(),
                tags: tags(&[(TAG, "shared")]),
                routes: vec![],
            },
            SeedTable {
                id: "rtb-other".into(),
                vpc_id: "vpc-1".into(),
                tags: tags(&[("kubernetes.io/cluster/other", "owned")]),
                routes: vec![],
            },
        ],
        instances: vec![
            instance("i-01", 1, true, 0),
            instance("i-02", 2, true, 0),
            instance("i-03", 3, true, 1),
            instance("i-0f", 15, false, 0),
        ],
    }
}

pub fn creds() -> StaticCredentials {
    StaticCredentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
    }
}

pub fn config(endpoint: &str, time_scale: f64) -> AwsConfig {
    let mut c = AwsConfig::new(CLUSTER, "us-east-1");
    c.endpoint = Some(endpoint.to_owned());
    c.credentials = Some(creds());
    c.pacing = PacingConfig {
        share: 1.0,
        time_scale,
    };
    c.retry = RetryPolicy::default().scaled(time_scale);
    c.call_timeout = Duration::from_secs(5);
    c
}

pub async fn start_mock(config: Ec2Config, seed: Seed) -> (Ec2Mock, RunningServer) {
    let mock = Ec2Mock::new(config, seed).expect("valid mock config");
    let server = mock
        .clone()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("mock starts");
    (mock, server)
}

pub async fn provider(config: AwsConfig) -> AwsProvider {
    AwsProvider::new(config).await.expect("provider builds")
}

/// A moto_server child on a free loopback port; killed on drop.
pub struct Moto {
    pub url: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start moto, or skip loudly (None) — and fail when CNI_CLOUD_REQUIRE_ALL=1.
pub fn start_moto(test: &str) -> Option<Moto> {
    let path = std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/moto_server").to_owned()
    });
    if !std::path::Path::new(&path).exists() {
        let msg = format!("{test}: moto_server not found at {path} (run scripts/setup)");
        if std::env::var("CNI_CLOUD_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{msg}; CNI_CLOUD_REQUIRE_ALL=1 forbids skipping");
        }
        eprintln!("SKIPPED !!! {msg}");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(&path)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moto_server starts");
    // moto (werkzeug) logs "Running on http://127.0.0.1:PORT" on stderr once bound.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Running on")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("moto_server did not come up within 30 s");
    Some(Moto {
        url: format!("http://127.0.0.1:{port}"),
        child,
    })
}
