//! The cloud edge: everything the controller asks of a cloud goes through this trait.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::fence::{Unfenced, WriteFence};
use crate::model::{
    ChangeOutcome, Cloud, ForwardingChange, NodeTarget, RouteChange, RouteTable, TableId,
};
use crate::{ApiCounters, CloudError};

/// How a cloud applies a table's changes, which decides how the reconciler fences them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteGranularity {
    /// One call per change (EC2): changes go out in small fenced batches.
    PerChange,
    /// The whole table in one write (ARM's PUT): a table's pass is one fenced batch.
    WholeTable,
}

#[async_trait]
pub trait CloudProvider: Send + Sync {
    fn cloud(&self) -> Cloud;

    /// How this cloud applies a table's changes.
    fn write_granularity(&self) -> WriteGranularity {
        match self.cloud() {
            Cloud::Aws => WriteGranularity::PerChange,
            Cloud::Azure => WriteGranularity::WholeTable,
        }
    }

    /// The tables this cluster manages: tagged / configured ones, in a stable order.
    async fn discover_tables(&self) -> Result<Vec<TableId>, CloudError>;

    /// One table with every route in it, its families and its quota.
    async fn list_table(&self, table: &TableId) -> Result<RouteTable, CloudError>;

    /// Apply a batch of changes to one table. Returns one outcome per change, in order.
    /// Idempotent: creating a route that already exists with the same target, or deleting
    /// one that is already gone, succeeds. Every write attempt (retries and re-PUTs
    /// included) starts only while `fence` allows and is abandoned at its deadline; a
    /// change not sent for that reason fails with [`crate::ErrorKind::Fenced`].
    async fn apply_fenced(
        &self,
        table: &TableId,
        changes: &[RouteChange],
        fence: &dyn WriteFence,
    ) -> Vec<ChangeOutcome>;

    /// [`CloudProvider::apply_fenced`] without a lease (tools, tests, single replicas).
    async fn apply(&self, table: &TableId, changes: &[RouteChange]) -> Vec<ChangeOutcome> {
        self.apply_fenced(table, changes, &Unfenced).await
    }

    /// Resolve providerIDs (`aws:///us-east-1a/i-…`, `azure:///subscriptions/…`) to their
    /// targets in as few calls as the cloud allows. Every input id gets an entry.
    async fn resolve_nodes(
        &self,
        provider_ids: &[String],
    ) -> HashMap<String, Result<NodeTarget, CloudError>>;

    /// Make the node's interface forward pod traffic, writing only when it does not. The
    /// write is fenced like [`CloudProvider::apply_fenced`].
    async fn ensure_forwarding_fenced(
        &self,
        target: &NodeTarget,
        fence: &dyn WriteFence,
    ) -> Result<ForwardingChange, CloudError>;

    /// [`CloudProvider::ensure_forwarding_fenced`] without a lease.
    async fn ensure_forwarding(&self, target: &NodeTarget) -> Result<ForwardingChange, CloudError> {
        self.ensure_forwarding_fenced(target, &Unfenced).await
    }

    /// Calls made so far, by action and outcome.
    fn counters(&self) -> &ApiCounters;

    /// Every cloud API operation this provider can invoke (EC2 action names such as
    /// `ec2:CreateRoute`, or ARM operations such as
    /// `Microsoft.Network/routeTables/write`). The identities in terraform/ must grant
    /// exactly these; a test holds the provider to this list.
    fn operations(&self) -> &'static [&'static str];
}
