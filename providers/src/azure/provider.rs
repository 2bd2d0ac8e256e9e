//! [`AzureProvider`]: the `CloudProvider` the controller drives. Each call is answered by
//! the module that owns its job (`tables`, `nodes`, `forwarding`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

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
    /// Configured tables ARM last answered 404 for: left out of discovery until a read
    /// finds them again (see `tables::live_tables`).
    pub(super) gone_tables: Mutex<HashSet<TableId>>,
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
            gone_tables: Mutex::default(),
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
        self.live_tables().await
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cni_cloud_mocks::arm::{ArmConfig, ArmMock};

    use super::super::credential::StaticToken;
    use super::super::{AzureConfig, OP_TABLE_READ};
    use super::AzureProvider;
    use crate::{CloudProvider, ErrorKind, TableId};

    const SUB: &str = "00000000-0000-0000-0000-0000000000dd";

    fn table_reads(mock: &ArmMock) -> usize {
        (mock.requests().iter())
            .filter(|r| r.action == OP_TABLE_READ)
            .count()
    }

    /// A configured table deleted mid-run: its listing is NotFound, and discovery must
    /// leave it out — or every pass lists it again and fails, and the other tables never
    /// converge — until it exists again.
    #[tokio::test]
    async fn a_deleted_table_leaves_discovery_until_it_is_back() {
        let mock = ArmMock::new(ArmConfig {
            time_scale: 100.0,
            ..ArmConfig::default()
        })
        .unwrap();
        let (a, b) = {
            let mut w = mock.world();
            let a = w.add_route_table(SUB, "k8s", "rt-a", "westeurope", vec![]);
            let b = w.add_route_table(SUB, "k8s", "rt-b", "westeurope", vec![]);
            (a, b)
        };
        let server = mock.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut config = AzureConfig::new(SUB, vec![a.clone(), b.clone()], "k1");
        config.endpoint = server.url();
        let provider = AzureProvider::new(config, Arc::new(StaticToken::new("t"))).unwrap();
        let both = vec![TableId(a.clone()), TableId(b.clone())];
        assert_eq!(provider.discover_tables().await.unwrap(), both);
        // The configured list is trusted as long as nothing says otherwise: no reads.
        assert_eq!(table_reads(&mock), 0);

        mock.world().delete_route_table(&b).expect("table b");
        let err = provider.list_table(&TableId(b.clone())).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
        let reads = table_reads(&mock);
        assert_eq!(
            provider.discover_tables().await.unwrap(),
            vec![TableId(a.clone())],
            "a deleted table is no longer managed"
        );
        // Only the table seen gone is asked about again.
        assert_eq!(table_reads(&mock), reads + 1);
        assert!(provider.list_table(&TableId(a.clone())).await.is_ok());

        mock.world()
            .add_route_table(SUB, "k8s", "rt-b", "westeurope", vec![]);
        assert_eq!(
            provider.discover_tables().await.unwrap(),
            both,
            "a table that is back is managed again"
        );
        assert_eq!(provider.discover_tables().await.unwrap(), both);
        assert_eq!(table_reads(&mock), reads + 3, "and no longer probed");
    }
}
