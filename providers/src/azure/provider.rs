//! [`AzureProvider`]: the `CloudProvider` the controller drives. Each call is answered by
//! the module that owns its job (`tables`, `nodes`, `forwarding`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::arm::ArmClient;
use super::config::AzureConfig;
use super::credential::TokenProvider;
use super::naming::RouteNamer;
use super::nodes::SeenNics;
use super::{OPERATIONS, tables};
use crate::fence::WriteFence;
use crate::{
    ApiCounters, ChangeOutcome, Cloud, CloudError, CloudProvider, ForwardingChange, NodeTarget,
    RouteChange, RouteTable, TableId,
};

pub struct AzureProvider {
    pub(super) arm: ArmClient,
    pub(super) tables: Vec<TableId>,
    pub(super) namer: RouteNamer,
    pub(super) route_limit: u32,
    pub(super) max_write_rounds: u32,
    pub(super) resolve_concurrency: usize,
    /// NIC bodies read while resolving, for the forwarding check that follows.
    pub(super) seen_nics: SeenNics,
}

impl AzureProvider {
    pub fn new(config: AzureConfig, tokens: Arc<dyn TokenProvider>) -> Result<Self, CloudError> {
        let checked = config.checked()?;
        Ok(AzureProvider {
            arm: ArmClient::new(
                checked.endpoint,
                tokens,
                config.pacing,
                config.retry,
                config.request_timeout,
                config.lro_timeout,
            )?,
            tables: checked.tables,
            namer: checked.namer,
            route_limit: config.route_limit,
            max_write_rounds: config.max_write_rounds,
            resolve_concurrency: 16,
            seen_nics: SeenNics::default(),
        })
    }

    pub fn namer(&self) -> &RouteNamer {
        &self.namer
    }
}

#[async_trait]
impl CloudProvider for AzureProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Azure
    }

    async fn discover_tables(&self) -> Result<Vec<TableId>, CloudError> {
        Ok(self.tables.clone())
    }

    async fn list_table(&self, table: &TableId) -> Result<RouteTable, CloudError> {
        self.list(table).await
    }

    async fn apply_fenced(
        &self,
        table: &TableId,
        changes: &[RouteChange],
        fence: &dyn WriteFence,
    ) -> Vec<ChangeOutcome> {
        if changes.is_empty() {
            return Vec::new();
        }
        tables::outcomes(changes, self.write_table(table, changes, fence).await)
    }

    async fn resolve_nodes(
        &self,
        provider_ids: &[String],
    ) -> HashMap<String, Result<NodeTarget, CloudError>> {
        self.resolve(provider_ids).await
    }

    async fn ensure_forwarding_fenced(
        &self,
        target: &NodeTarget,
        fence: &dyn WriteFence,
    ) -> Result<ForwardingChange, CloudError> {
        self.enable_forwarding(&target.interface_id, fence).await
    }

    fn counters(&self) -> &ApiCounters {
        self.arm.counters()
    }

    fn operations(&self) -> &'static [&'static str] {
        OPERATIONS
    }
}
