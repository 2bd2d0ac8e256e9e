//! What the kube mock's wire tests share: the mock with deploy/base's RBAC on loopback.

use std::path::PathBuf;

use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::kube::{KubeMock, KubeMockConfig};

pub fn deploy_base() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/base")
}

pub async fn start() -> (KubeMock, RunningServer) {
    let mock = KubeMock::new(KubeMockConfig::from_deploy_dir(deploy_base()).unwrap());
    let server = mock
        .clone()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (mock, server)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}
