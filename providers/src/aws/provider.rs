//! [`AwsProvider`]: the [`CloudProvider`] edge for EC2.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Region};
use aws_sdk_ec2::types as ec2;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use futures::StreamExt;
use ipnet::IpNet;

use super::convert::{self, Membership};
use super::errors::classify;
use super::gated_http::GatedHttpClient;
use super::{AwsConfig, OPERATIONS};
use crate::error::{CloudError, ErrorKind};
use crate::fence::WriteFence;
use crate::fence::socket::WriteGate;
use crate::model::{
    ChangeOutcome, Cloud, Families, ForwardingChange, NextHop, NodeTarget, QuotaScope, RouteChange,
    RouteQuota, RouteTable, TableId,
};
use crate::pacing::{EC2_MUTATING, EC2_NON_MUTATING, Pacer};
use crate::{ApiCounters, CloudProvider, retry};

/// Values per filter in one describe call (EC2 accepts up to 200 per filter).
const FILTER_BATCH: usize = 200;
/// Page size of describes (EC2's maximum for DescribeInstances is 1000, tables 100).
const INSTANCE_PAGE: i32 = 1000;
const TABLE_PAGE: i32 = 100;

pub struct AwsProvider {
    /// Reads.
    client: Client,
    /// Mutations only: its sockets write only while `gate` is open (see `fence::socket`).
    writer: Client,
    gate: WriteGate,
    config: AwsConfig,
    mutating: Pacer,
    non_mutating: Pacer,
    counters: ApiCounters,
    /// ENIs seen on cluster instances during this process's life: the only evidence left
    /// for a blackhole route once the instance and its ENI are gone.
    seen_enis: Mutex<HashSet<String>>,
    /// Source/dest check of ENIs as the last instance lookup showed it, and when: the
    /// forwarding check right after a resolution needs no read of its own.
    seen_source_dest: Mutex<HashMap<String, (bool, std::time::Instant)>>,
}

/// How long a source/dest check seen in a lookup stands in for a read of its own.
const SEEN_CHECK_TTL: std::time::Duration = std::time::Duration::from_secs(300);

impl AwsProvider {
    /// Build the provider. Credentials come from the default chain unless static ones are
    /// configured.
    pub async fn new(config: AwsConfig) -> Result<Self, CloudError> {
        config
            .validate()
            .map_err(|e| CloudError::new(ErrorKind::Permanent, "InvalidConfig", e))?;
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(config.call_timeout)
            .build();
        // retry::call is the only retry loop: one SDK attempt per call.
        let retries = RetryConfig::standard().with_max_attempts(1);
        let mut builder = match &config.credentials {
            Some(creds) => aws_sdk_ec2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    creds.access_key_id.clone(),
                    creds.secret_access_key.clone(),
                    None,
                    None,
                    "cni-cloud-static",
                )),
            None => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(config.region.clone()))
                    .load()
                    .await;
                aws_sdk_ec2::config::Builder::from(&shared)
            }
        };
        builder = builder
            .region(Region::new(config.region.clone()))
            .retry_config(retries)
            .timeout_config(timeouts);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        let gate = WriteGate::default();
        let gated = GatedHttpClient::new(gate.clone(), config.call_timeout).map_err(|e| {
            CloudError::new(
                ErrorKind::Permanent,
                "TlsRoots",
                format!("loading the system's TLS roots: {e}"),
            )
        })?;
        let writer = Client::from_conf(builder.clone().http_client(gated).build());
        Ok(AwsProvider {
            client: Client::from_conf(builder.build()),
            writer,
            gate,
            mutating: Pacer::new("ec2-mutating", EC2_MUTATING, config.pacing),
            non_mutating: Pacer::new("ec2-non-mutating", EC2_NON_MUTATING, config.pacing),
            config,
            counters: ApiCounters::default(),
            seen_enis: Mutex::new(HashSet::new()),
            seen_source_dest: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &AwsConfig {
        &self.config
    }

    pub fn mutating_pacer(&self) -> &Pacer {
        &self.mutating
    }

    fn filter(name: &str, values: impl IntoIterator<Item = String>) -> ec2::Filter {
        ec2::Filter::builder()
            .name(name)
            .set_values(Some(values.into_iter().collect()))
            .build()
    }

    /// Every table matching `filter`, through all pages.
    async fn describe_tables(
        &self,
        filter: ec2::Filter,
    ) -> Result<Vec<ec2::RouteTable>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retry::call(
                &self.non_mutating,
                &self.config.retry,
                &self.counters,
                "DescribeRouteTables",
                || {
                    let req = self
                        .client
                        .describe_route_tables()
                        .filters(filter.clone())
                        .max_results(TABLE_PAGE)
                        .set_next_token(token.clone());
                    async move { req.send().await.map_err(classify) }
                },
            )
            .await?;
            out.extend(page.route_tables().iter().cloned());
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every instance matching `filters`, through all pages.
    async fn describe_instances(
        &self,
        filters: Vec<ec2::Filter>,
    ) -> Result<Vec<ec2::Instance>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retry::call(
                &self.non_mutating,
                &self.config.retry,
                &self.counters,
                "DescribeInstances",
                || {
                    let req = self
                        .client
                        .describe_instances()
                        .set_filters(Some(filters.clone()))
                        .max_results(INSTANCE_PAGE)
                        .set_next_token(token.clone());
                    async move { req.send().await.map_err(classify) }
                },
            )
            .await?;
            for reservation in page.reservations() {
                out.extend(reservation.instances().iter().cloned());
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The cluster's instances and ENIs (plus every ENI remembered from earlier listings).
    async fn membership(&self) -> Result<Membership, CloudError> {
        let instances = self
            .describe_instances(vec![Self::filter("tag-key", [self.config.cluster_tag()])])
            .await?;
        let mut members = Membership::default();
        for inst in &instances {
            if let Some(id) = inst.instance_id() {
                members.instances.insert(id.to_owned());
            }
            for eni in inst.network_interfaces() {
                if let Some(id) = eni.network_interface_id() {
                    members.enis.insert(id.to_owned());
                }
            }
        }
        let mut seen = self.seen_enis.lock().expect("seen ENIs lock");
        seen.extend(members.enis.iter().cloned());
        members.enis.extend(seen.iter().cloned());
        Ok(members)
    }

    /// One mutation through the gated writer client, the gate armed from `fence` before
    /// every attempt (a renewal between retries extends it; a lost lease closes it).
    async fn mutate<T, F, Fut>(
        &self,
        action: &'static str,
        fence: &dyn WriteFence,
        mut op: F,
    ) -> Result<T, CloudError>
    where
        F: FnMut(&Client) -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        retry::call_fenced(
            &self.mutating,
            &self.config.retry,
            &self.counters,
            action,
            fence,
            || {
                self.gate.arm(fence.deadline());
                op(&self.writer)
            },
        )
        .await
    }

    /// The current target of `destination` in `table`, if the route exists.
    async fn current_target(
        &self,
        table: &TableId,
        destination: &IpNet,
    ) -> Result<Option<NextHop>, CloudError> {
        let tables = self
            .describe_tables(Self::filter("route-table-id", [table.0.clone()]))
            .await?;
        Ok(tables
            .iter()
            .flat_map(|t| t.routes())
            .find(|r| convert::destination(r).as_ref() == Some(destination))
            .map(convert::next_hop))
    }

    async fn create(
        &self,
        table: &TableId,
        destination: &IpNet,
        eni: &str,
        fence: &dyn WriteFence,
    ) -> Result<(), CloudError> {
        let result = self
            .mutate("CreateRoute", fence, |writer| {
                let req = writer
                    .create_route()
                    .route_table_id(&table.0)
                    .network_interface_id(eni);
                let req = match destination {
                    IpNet::V4(_) => req.destination_cidr_block(destination.to_string()),
                    IpNet::V6(_) => req.destination_ipv6_cidr_block(destination.to_string()),
                };
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await;
        match result {
            // A retry after a lost answer, or a concurrent writer: fine if it is our target.
            Err(e) if e.code == "RouteAlreadyExists" => {
                match self.current_target(table, destination).await? {
                    Some(NextHop::NetworkInterface(current)) if current == eni => Ok(()),
                    current => Err(CloudError::new(
                        ErrorKind::Conflict,
                        e.code,
                        format!(
                            "{} (it targets {})",
                            e.message,
                            current.map_or_else(|| "nothing visible".to_owned(), |h| h.to_string())
                        ),
                    )
                    .with_status(e.http_status.unwrap_or(400))),
                }
            }
            other => other,
        }
    }

    async fn replace(
        &self,
        table: &TableId,
        destination: &IpNet,
        eni: &str,
        fence: &dyn WriteFence,
    ) -> Result<(), CloudError> {
        let result = self
            .mutate("ReplaceRoute", fence, |writer| {
                let req = writer
                    .replace_route()
                    .route_table_id(&table.0)
                    .network_interface_id(eni);
                let req = match destination {
                    IpNet::V4(_) => req.destination_cidr_block(destination.to_string()),
                    IpNet::V6(_) => req.destination_ipv6_cidr_block(destination.to_string()),
                };
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await;
        match result {
            // The route vanished since the plan: the desired end state is a route to `eni`.
            // EC2 says so with InvalidParameterValue ("There is no route defined for … Use
            // CreateRoute instead"), which also covers malformed requests: only a read that
            // shows the route gone turns it into a create.
            Err(e) if e.code == "InvalidRoute.NotFound" => {
                self.create(table, destination, eni, fence).await
            }
            Err(e) if e.code == "InvalidParameterValue" => {
                match self.current_target(table, destination).await? {
                    None => self.create(table, destination, eni, fence).await,
                    Some(_) => Err(e),
                }
            }
            other => other,
        }
    }

    async fn delete(
        &self,
        table: &TableId,
        destination: &IpNet,
        fence: &dyn WriteFence,
    ) -> Result<(), CloudError> {
        let result = self
            .mutate("DeleteRoute", fence, |writer| {
                let req = writer.delete_route().route_table_id(&table.0);
                let req = match destination {
                    IpNet::V4(_) => req.destination_cidr_block(destination.to_string()),
                    IpNet::V6(_) => req.destination_ipv6_cidr_block(destination.to_string()),
                };
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await;
        match result {
            Err(e) if e.code == "InvalidRoute.NotFound" => Ok(()),
            other => other,
        }
    }

    /// Turn the ENI's source/dest check off (idempotent on EC2's side).
    async fn disable_source_dest_check(
        &self,
        target: &NodeTarget,
        fence: &dyn WriteFence,
    ) -> Result<(), CloudError> {
        self.mutate("ModifyNetworkInterfaceAttribute", fence, |writer| {
            let req = writer
                .modify_network_interface_attribute()
                .network_interface_id(&target.interface_id)
                .source_dest_check(ec2::AttributeBooleanValue::builder().value(false).build());
            async move { req.send().await.map(|_| ()).map_err(classify) }
        })
        .await
    }

    async fn apply_one(
        &self,
        table: &TableId,
        change: &RouteChange,
        fence: &dyn WriteFence,
    ) -> Result<(), CloudError> {
        match change {
            RouteChange::Create {
                destination,
                next_hop,
            } => {
                self.create(table, destination, eni_of(next_hop)?, fence)
                    .await
            }
            RouteChange::Replace {
                destination,
                next_hop,
                ..
            } => {
                self.replace(table, destination, eni_of(next_hop)?, fence)
                    .await
            }
            RouteChange::Delete { destination, .. } => self.delete(table, destination, fence).await,
        }
    }
}

fn eni_of(next_hop: &NextHop) -> Result<&str, CloudError> {
    match next_hop {
        NextHop::NetworkInterface(eni) => Ok(eni),
        other => Err(CloudError::new(
            ErrorKind::Permanent,
            "InvalidNextHop",
            format!("AWS routes target a network interface (eni-…), not {other:?}"),
        )),
    }
}

fn target_of(inst: &ec2::Instance, cluster_tag: &str) -> Result<NodeTarget, CloudError> {
    let id = inst.instance_id().unwrap_or_default().to_owned();
    let state = inst.state().and_then(|s| s.name());
    if matches!(
        state,
        Some(ec2::InstanceStateName::Terminated | ec2::InstanceStateName::ShuttingDown)
    ) {
        return Err(CloudError::new(
            ErrorKind::NotFound,
            "InstanceTerminated",
            format!("instance {id} is {}", state.map_or("gone", |s| s.as_str())),
        ));
    }
    let primary = inst
        .network_interfaces()
        .iter()
        .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::NotFound,
                "NoPrimaryNetworkInterface",
                format!("instance {id} has no network interface at device index 0"),
            )
        })?;
    let eni = primary
        .network_interface_id()
        .unwrap_or_default()
        .to_owned();
    let ipv4 = primary.private_ip_address().and_then(|s| s.parse().ok());
    let ipv6 = primary
        .ipv6_addresses()
        .iter()
        .find_map(|a| a.ipv6_address().and_then(|s| s.parse().ok()));
    let cluster_member = inst.tags().iter().any(|t| t.key() == Some(cluster_tag));
    let hop = NextHop::NetworkInterface(eni.clone());
    Ok(NodeTarget {
        instance_id: id,
        interface_id: eni,
        ipv4,
        ipv6,
        cluster_member,
        next_hop_v4: Some(hop.clone()),
        next_hop_v6: Some(hop),
    })
}

#[async_trait]
impl CloudProvider for AwsProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Aws
    }

    async fn discover_tables(&self) -> Result<Vec<TableId>, CloudError> {
        let mut ids: Vec<TableId> = if self.config.table_ids.is_empty() {
            self.describe_tables(Self::filter("tag-key", [self.config.cluster_tag()]))
                .await?
                .iter()
                .filter_map(|t| t.route_table_id().map(TableId::from))
                .collect()
        } else {
            let mut found = Vec::new();
            for batch in self.config.table_ids.chunks(FILTER_BATCH) {
                let tables = self
                    .describe_tables(Self::filter("route-table-id", batch.iter().cloned()))
                    .await?;
                found.extend(
                    tables
                        .iter()
                        .filter_map(|t| t.route_table_id().map(TableId::from)),
                );
            }
            // A configured table that does not exist is an operator error worth stopping for.
            if let Some(missing) = self
                .config
                .table_ids
                .iter()
                .find(|id| !found.iter().any(|t| &t.0 == *id))
            {
                return Err(CloudError::new(
                    ErrorKind::NotFound,
                    "InvalidRouteTableID.NotFound",
                    format!("configured route table {missing} does not exist"),
                ));
            }
            found
        };
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn list_table(&self, table: &TableId) -> Result<RouteTable, CloudError> {
        let tables = self
            .describe_tables(Self::filter("route-table-id", [table.0.clone()]))
            .await?;
        let found = tables
            .into_iter()
            .find(|t| t.route_table_id() == Some(table.0.as_str()))
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::NotFound,
                    "InvalidRouteTableID.NotFound",
                    format!("route table {table} does not exist"),
                )
            })?;
        // Discovered by its tag: once the tag is gone, so is our claim on the table.
        if self.config.table_ids.is_empty() {
            let tag = self.config.cluster_tag();
            if !found.tags().iter().any(|t| t.key() == Some(tag.as_str())) {
                return Err(CloudError::new(
                    ErrorKind::NotFound,
                    "RouteTableNotManaged",
                    format!("route table {table} no longer carries the tag {tag}"),
                ));
            }
        }
        let members = self.membership().await?;
        let routes = found
            .routes()
            .iter()
            .filter_map(|r| convert::route(r, &members))
            .collect();
        let name = found
            .tags()
            .iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value())
            .unwrap_or(&table.0)
            .to_owned();
        Ok(RouteTable {
            id: table.clone(),
            name,
            families: Families {
                v4: true,
                v6: convert::has_ipv6_local_route(found.routes()),
            },
            quota: RouteQuota {
                limit: self.config.route_limit,
                scope: QuotaScope::PerFamily,
            },
            routes,
            version: None,
            unlisted_routes: found
                .routes()
                .iter()
                .filter(|r| convert::destination(r).is_none())
                .count() as u32,
        })
    }

    async fn apply_fenced(
        &self,
        table: &TableId,
        changes: &[RouteChange],
        fence: &dyn WriteFence,
    ) -> Vec<ChangeOutcome> {
        let calls: Vec<_> = changes
            .iter()
            .map(|change| async move {
                ChangeOutcome {
                    change: change.clone(),
                    result: self.apply_one(table, change, fence).await,
                }
            })
            .collect();
        futures::stream::iter(calls)
            .buffered(self.config.apply_concurrency)
            .collect()
            .await
    }

    async fn resolve_nodes(
        &self,
        provider_ids: &[String],
    ) -> HashMap<String, Result<NodeTarget, CloudError>> {
        let mut out = HashMap::new();
        let mut by_instance: HashMap<String, Vec<String>> = HashMap::new();
        for pid in provider_ids {
            match convert::instance_id_of(pid) {
                Ok(id) => by_instance.entry(id).or_default().push(pid.clone()),
                Err(e) => {
                    out.insert(pid.clone(), Err(e));
                }
            }
        }
        let wanted: Vec<String> = by_instance.keys().cloned().collect();
        let tag = self.config.cluster_tag();
        for batch in wanted.chunks(FILTER_BATCH) {
            // The instance-id *filter* (not InstanceIds) so one unknown id does not fail
            // the whole batch with InvalidInstanceID.NotFound.
            let found = self
                .describe_instances(vec![Self::filter("instance-id", batch.iter().cloned())])
                .await;
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    for id in batch {
                        for pid in &by_instance[id] {
                            out.insert(pid.clone(), Err(e.clone()));
                        }
                    }
                    continue;
                }
            };
            for id in batch {
                let result = match found.iter().find(|i| i.instance_id() == Some(id)) {
                    Some(inst) => target_of(inst, &tag),
                    None => Err(CloudError::new(
                        ErrorKind::NotFound,
                        "InvalidInstanceID.NotFound",
                        format!("instance {id} does not exist"),
                    )),
                };
                if let Ok(target) = &result
                    && target.cluster_member
                {
                    self.seen_enis
                        .lock()
                        .expect("seen ENIs lock")
                        .insert(target.interface_id.clone());
                    if let Some(check) = found
                        .iter()
                        .flat_map(|i| i.network_interfaces())
                        .find(|n| n.network_interface_id() == Some(&target.interface_id))
                        .and_then(|n| n.source_dest_check())
                    {
                        self.seen_source_dest
                            .lock()
                            .expect("seen checks lock")
                            .insert(
                                target.interface_id.clone(),
                                (check, std::time::Instant::now()),
                            );
                    }
                }
                for pid in &by_instance[id] {
                    out.insert(pid.clone(), result.clone());
                }
            }
        }
        out
    }

    async fn ensure_forwarding_fenced(
        &self,
        target: &NodeTarget,
        fence: &dyn WriteFence,
    ) -> Result<ForwardingChange, CloudError> {
        // What the node's lookup just showed, if recent: no read of our own.
        let seen = self
            .seen_source_dest
            .lock()
            .expect("seen checks lock")
            .remove(&target.interface_id)
            .filter(|(_, at)| at.elapsed() < self.config.pacing.wall(SEEN_CHECK_TTL))
            .map(|(check, _)| check);
        match seen {
            Some(false) => return Ok(ForwardingChange::AlreadyEnabled),
            Some(true) => {
                self.disable_source_dest_check(target, fence).await?;
                return Ok(ForwardingChange::Enabled);
            }
            None => {}
        }
        // Read the ENI's current setting: a write only when the check is on.
        let instances = self
            .describe_instances(vec![Self::filter(
                "instance-id",
                [target.instance_id.clone()],
            )])
            .await?;
        let eni = instances
            .iter()
            .flat_map(|i| i.network_interfaces())
            .find(|n| n.network_interface_id() == Some(target.interface_id.as_str()))
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::NotFound,
                    "InvalidNetworkInterfaceID.NotFound",
                    format!(
                        "network interface {} is not attached to instance {}",
                        target.interface_id, target.instance_id
                    ),
                )
            })?;
        if eni.source_dest_check() == Some(false) {
            return Ok(ForwardingChange::AlreadyEnabled);
        }
        self.disable_source_dest_check(target, fence).await?;
        Ok(ForwardingChange::Enabled)
    }

    fn counters(&self) -> &ApiCounters {
        &self.counters
    }

    fn operations(&self) -> &'static [&'static str] {
        OPERATIONS
    }
}
