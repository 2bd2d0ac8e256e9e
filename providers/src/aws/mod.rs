//! AWS: VPC route tables through `aws-sdk-ec2`.
//!
//! - Tables: tagged `kubernetes.io/cluster/<name>` (any value) or given by id, filtered
//!   server-side and paginated.
//! - Routes always target the node's primary ENI (`NetworkInterfaceId`, never
//!   `InstanceId`, which fails on multi-ENI instances); IPv6 via
//!   `DestinationIpv6CidrBlock`; a changed target is one `ReplaceRoute`.
//! - A route is claimed for the cluster only when its target ENI / instance belongs to an
//!   instance carrying the cluster tag (one paginated, filtered DescribeInstances per
//!   listing). A blackhole has lost its ENI (EC2 deletes it with the instance), so it is
//!   claimed only when this process saw that ENI on a cluster instance before, or EC2
//!   still reports the terminated cluster instance on the route. Anything else stays
//!   foreign: a route we cannot attribute is never ours.
//! - Every call goes through [`crate::retry::call`] with one [`Pacer`] per EC2 API class;
//!   the SDK's own retries are off.

mod convert;
mod errors;
mod gated_http;
mod provider;

use std::time::Duration;

pub use convert::{Membership, instance_id_of};
pub use errors::{classify, kind_of};
pub use provider::AwsProvider;

use crate::pacing::PacingConfig;
use crate::retry::RetryPolicy;

/// Exactly the EC2 actions [`AwsProvider`] can call (the IAM policy grants these).
pub const OPERATIONS: &[&str] = &[
    "ec2:CreateRoute",
    "ec2:DeleteRoute",
    "ec2:DescribeInstances",
    "ec2:DescribeRouteTables",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:ReplaceRoute",
];

/// EC2's default routes-per-table quota (per address family).
pub const DEFAULT_ROUTE_LIMIT: u32 = 50;

/// Static credentials, for tests and the mock only: production uses the default chain.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The cluster name in `kubernetes.io/cluster/<name>`.
    pub cluster_name: String,
    pub region: String,
    /// An EC2 endpoint other than AWS's (tests, the mock, moto).
    pub endpoint: Option<String>,
    /// `None`: the default chain (env, IRSA web identity, IMDS, …).
    pub credentials: Option<StaticCredentials>,
    /// Manage exactly these tables instead of the tagged ones.
    pub table_ids: Vec<String>,
    /// Routes per table per family (EC2 quota; 50 by default, raised on request).
    pub route_limit: u32,
    pub pacing: PacingConfig,
    pub retry: RetryPolicy,
    /// Changes of one batch in flight at once.
    pub apply_concurrency: usize,
    /// Timeout of one call attempt.
    pub call_timeout: Duration,
}

impl AwsConfig {
    pub fn new(cluster_name: impl Into<String>, region: impl Into<String>) -> Self {
        AwsConfig {
            cluster_name: cluster_name.into(),
            region: region.into(),
            endpoint: None,
            credentials: None,
            table_ids: Vec::new(),
            route_limit: DEFAULT_ROUTE_LIMIT,
            pacing: PacingConfig::default(),
            retry: RetryPolicy::default(),
            apply_concurrency: 8,
            call_timeout: Duration::from_secs(30),
        }
    }

    /// The tag key that marks the cluster's tables and instances.
    pub fn cluster_tag(&self) -> String {
        format!("kubernetes.io/cluster/{}", self.cluster_name)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.cluster_name.is_empty() {
            return Err("cluster name must not be empty".into());
        }
        if self.region.is_empty() {
            return Err("region must not be empty".into());
        }
        if !(1..=1000).contains(&self.route_limit) {
            return Err(format!(
                "route limit must be within 1..=1000 (EC2's maximum), got {}",
                self.route_limit
            ));
        }
        if self.apply_concurrency == 0 {
            return Err("apply concurrency must be at least 1".into());
        }
        if let Some(bad) = self.table_ids.iter().find(|t| !t.starts_with("rtb-")) {
            return Err(format!("route table id {bad:?} does not start with rtb-"));
        }
        self.pacing.validate()
    }
}
