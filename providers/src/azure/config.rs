//! What an [`AzureProvider`](super::AzureProvider) is built from, and the checks on it.

use std::time::Duration;

use super::ids;
use super::naming::RouteNamer;
use crate::pacing::PacingConfig;
use crate::retry::RetryPolicy;
use crate::{CloudError, ErrorKind, TableId};

/// ARM's published limit of routes per table.
pub const DEFAULT_ROUTE_LIMIT: u32 = 400;

#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// `https://management.azure.com` (or the mock's URL).
    pub endpoint: String,
    /// The subscription short table names (`<resource group>/<name>`) live in.
    pub subscription_id: String,
    /// Managed tables: `<resource group>/<name>` or full resource ids.
    pub tables: Vec<String>,
    /// This cluster's route-name prefix (see [`naming`](super::naming)).
    pub route_prefix: String,
    pub route_limit: u32,
    pub pacing: PacingConfig,
    pub retry: RetryPolicy,
    /// Read-modify-write rounds per `apply` before giving up on 412 / 409 races.
    pub max_write_rounds: u32,
    pub request_timeout: Duration,
    /// How long (cloud time) to follow one long-running operation.
    pub lro_timeout: Duration,
}

/// What [`AzureConfig::checked`] derives: the route namer, the table ids (full, without
/// duplicates) and the endpoint without a trailing `/`.
pub(super) struct Checked<'a> {
    pub namer: RouteNamer,
    pub tables: Vec<TableId>,
    pub endpoint: &'a str,
}

impl AzureConfig {
    pub fn new(subscription_id: &str, tables: Vec<String>, route_prefix: &str) -> Self {
        AzureConfig {
            endpoint: "https://management.azure.com".into(),
            subscription_id: subscription_id.into(),
            tables,
            route_prefix: route_prefix.into(),
            route_limit: DEFAULT_ROUTE_LIMIT,
            pacing: PacingConfig::default(),
            retry: RetryPolicy::default(),
            max_write_rounds: 12,
            request_timeout: Duration::from_secs(30),
            lro_timeout: Duration::from_secs(600),
        }
    }

    /// Every check a provider needs before it is built (`InvalidConfig` otherwise).
    pub(super) fn checked(&self) -> Result<Checked<'_>, CloudError> {
        let invalid = |m: String| CloudError::new(ErrorKind::Permanent, "InvalidConfig", m);
        self.pacing.validate().map_err(invalid)?;
        let namer = RouteNamer::new(&self.route_prefix).map_err(invalid)?;
        if self.subscription_id.is_empty() {
            return Err(invalid("the Azure subscription id is empty".into()));
        }
        if self.tables.is_empty() {
            return Err(invalid("no Azure route tables configured".into()));
        }
        if self.route_limit == 0 || self.max_write_rounds == 0 {
            return Err(invalid("route limit and write rounds must be ≥ 1".into()));
        }
        let mut tables = Vec::new();
        for t in &self.tables {
            let id = TableId(ids::table_id(&self.subscription_id, t).map_err(invalid)?);
            if !tables.contains(&id) {
                tables.push(id);
            }
        }
        let endpoint = self.endpoint.trim_end_matches('/');
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(invalid(format!(
                "endpoint {endpoint:?} is not an http(s) URL"
            )));
        }
        Ok(Checked {
            namer,
            tables,
            endpoint,
        })
    }
}
