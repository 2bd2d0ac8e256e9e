//! Route tables: listing one, and the read-modify-write that applies a batch to it with
//! ONE conditional PUT (through [`conditional::update`]).

use std::net::IpAddr;

use serde_json::{Value, json};

use super::arm::WrittenResource;
use super::conditional::{self, Round};
use super::merge::{Disposition, merge, owned_destination};
use super::models::{self, NETWORK_API_VERSION, RouteTableView};
use super::provider::AzureProvider;
use super::{OP_TABLE_READ, OP_TABLE_WRITE};
use crate::fence::WriteFence;
use crate::{
    ChangeOutcome, Claim, CloudError, ErrorKind, Families, NextHop, QuotaScope, Route, RouteChange,
    RouteOrigin, RouteQuota, RouteState, RouteTable, TableId,
};

impl AzureProvider {
    async fn read_table(&self, table: &TableId) -> Result<(Value, RouteTableView), CloudError> {
        let resp = self
            .arm
            .get(OP_TABLE_READ, &table.0, NETWORK_API_VERSION)
            .await;
        {
            let mut gone = self.gone_tables.lock().expect("gone tables lock");
            match &resp {
                Ok(_) => {
                    gone.remove(table);
                }
                Err(e) if e.kind == ErrorKind::NotFound => {
                    gone.insert(table.clone());
                }
                Err(_) => {}
            }
        }
        let resp = resp?;
        let view: RouteTableView = resp.parse("route table")?;
        Ok((resp.body, view))
    }

    /// The configured tables the cluster can manage now: all of them, less those ARM said
    /// do not exist (deleted, or their resource group) and still says so when asked again.
    /// Without this, one deleted table failed every pass's listing — and discovery, which
    /// has nothing to find on Azure, handed it straight back — so the other tables stopped
    /// converging for good. Only tables already seen gone are read here; a table deleted
    /// since shows up as a 404 on its next listing, which makes the controller discover
    /// again. A table that comes back (recreated) is managed again from its next discovery.
    pub(super) async fn live_tables(&self) -> Result<Vec<TableId>, CloudError> {
        let mut live = Vec::with_capacity(self.tables.len());
        for table in &self.tables {
            let seen_gone = self
                .gone_tables
                .lock()
                .expect("gone tables lock")
                .contains(table);
            if seen_gone {
                match self.read_table(table).await {
                    Ok(_) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        tracing::warn!(%table, error = %e,
                            "configured route table does not exist; managing the others until it is back");
                        continue;
                    }
                    // Not known either way: fail discovery (retried next pass) rather than
                    // drop a table that may be there, or list one that may not.
                    Err(e) => return Err(e),
                }
            }
            live.push(table.clone());
        }
        Ok(live)
    }

    pub(super) async fn list(&self, table: &TableId) -> Result<RouteTable, CloudError> {
        let (raw, view) = self.read_table(table).await?;
        // While a write is in flight (ours or anyone's) ARM already shows the routes it
        // asked for; they are facts only once the table says Succeeded.
        if let Some(state) = view.properties.provisioning_state.as_deref()
            && state != "Succeeded"
        {
            return Err(CloudError::new(
                ErrorKind::Transient,
                "RouteTableNotSucceeded",
                format!(
                    "route table {table} is {state}: its routes are not verified until it is \
                     Succeeded{}",
                    if state == "Failed" {
                        " (its last write failed; the next write of the table clears it)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let raw_routes = raw["properties"]["routes"].as_array();
        let routes: Vec<Route> = raw_routes
            .map(|rs| rs.iter().filter_map(|r| self.to_route(r)).collect())
            .unwrap_or_default();
        // Service-tag routes are not in the model but count against the table's 400.
        let unlisted_routes = raw_routes.map_or(0, |rs| rs.len() - routes.len()) as u32;
        Ok(RouteTable {
            id: TableId(view.id),
            name: view.name,
            families: Families::BOTH,
            quota: RouteQuota {
                limit: self.route_limit,
                scope: QuotaScope::Shared,
            },
            routes,
            version: view.etag,
            unlisted_routes,
        })
    }

    fn to_route(&self, raw: &Value) -> Option<Route> {
        let view: models::RouteView = serde_json::from_value(raw.clone()).ok()?;
        // Service-tag destinations (`AzureCloud`, …) are not CIDRs and never ours.
        let destination = view.properties.address_prefix.as_deref()?.parse().ok()?;
        let hop_type = view.properties.next_hop_type.unwrap_or_default();
        let next_hop = match (
            hop_type.as_str(),
            view.properties
                .next_hop_ip_address
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        ) {
            ("VirtualAppliance", Some(ip)) => NextHop::IpAddress(ip),
            (other, Some(ip)) => NextHop::Other(format!("{other}:{ip}")),
            (other, None) => NextHop::Other(other.to_owned()),
        };
        let claim = if owned_destination(&self.namer, raw).is_some() {
            Claim::Cluster
        } else {
            Claim::Foreign
        };
        Some(Route {
            destination,
            next_hop,
            state: RouteState::Active,
            origin: RouteOrigin::Manual,
            claim,
            name: Some(view.name),
        })
    }

    /// Read the table, fold `changes` into its routes, and — if anything changed — PUT the
    /// whole table conditional on the etag read; 412 / 409 races are redone from the read.
    pub(super) async fn write_table(
        &self,
        table: &TableId,
        changes: &[RouteChange],
        fence: &dyn WriteFence,
    ) -> Result<Vec<Disposition>, CloudError> {
        let resource = WrittenResource {
            read_op: OP_TABLE_READ,
            path: &table.0,
            api_version: NETWORK_API_VERSION,
        };
        conditional::update(
            &self.arm,
            OP_TABLE_WRITE,
            resource,
            self.max_write_rounds,
            fence,
            || async {
                let (mut raw, view) = self.read_table(table).await?;
                let current: Vec<Value> = raw["properties"]["routes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let merged = merge(&current, changes, &self.namer, self.route_limit as usize);
                if !merged.needs_write() {
                    return Ok(Round::Done(merged.dispositions));
                }
                raw["properties"]["routes"] = json!(merged.routes);
                Ok(Round::Write {
                    body: raw,
                    etag: view.etag,
                    then: merged.dispositions,
                })
            },
        )
        .await
    }
}

/// One outcome per change: a write that failed as a whole fails every change in it (the
/// table kept its old routes).
pub(super) fn outcomes(
    changes: &[RouteChange],
    result: Result<Vec<Disposition>, CloudError>,
) -> Vec<ChangeOutcome> {
    match result {
        Ok(dispositions) => changes
            .iter()
            .zip(dispositions)
            .map(|(change, d)| ChangeOutcome {
                change: change.clone(),
                result: match d {
                    Disposition::Write | Disposition::AlreadyDone => Ok(()),
                    Disposition::Refused(e) => Err(e),
                },
            })
            .collect(),
        Err(err) => changes
            .iter()
            .map(|change| ChangeOutcome {
                change: change.clone(),
                result: Err(err.clone()),
            })
            .collect(),
    }
}
