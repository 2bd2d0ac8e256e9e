//! Helpers shared by the planner's tests and the in-memory fake cloud: apply a change set
//! to a listed table the way a cloud would.

use cni_cloud_providers::{Claim, Route, RouteChange, RouteState, RouteTable};

/// Apply `changes` to `table` as the cloud would (our writes are `Manual` and `Cluster`).
pub fn apply_changes(table: &mut RouteTable, changes: &[RouteChange]) {
    for change in changes {
        match change {
            RouteChange::Create {
                destination,
                next_hop,
            } => {
                if !table.routes.iter().any(|r| &r.destination == destination) {
                    table
                        .routes
                        .push(Route::written(*destination, next_hop.clone()));
                }
            }
            RouteChange::Replace {
                destination,
                next_hop,
                ..
            } => {
                if let Some(r) = table
                    .routes
                    .iter_mut()
                    .find(|r| &r.destination == destination)
                {
                    r.next_hop = next_hop.clone();
                    r.state = RouteState::Active;
                    // It now targets our interface: the cloud's evidence says ours.
                    r.claim = Claim::Cluster;
                }
            }
            RouteChange::Delete { destination, .. } => {
                table.routes.retain(|r| &r.destination != destination);
            }
        }
    }
}

/// An in-memory cloud for driving the reconciler without HTTP: tables, node targets, a
/// mutation log, scripted failures.
pub mod fake {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;
    use cni_cloud_providers::{
        ApiCounters, CallOutcome, ChangeOutcome, Cloud, CloudError, CloudProvider, ErrorKind,
        ForwardingChange, NodeTarget, RouteChange, RouteTable, TableId, WriteFence,
    };

    fn throttled() -> CloudError {
        CloudError::new(
            ErrorKind::Throttled,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        )
    }

    use super::apply_changes;

    #[derive(Default)]
    pub struct FakeCloud {
        pub tables: Mutex<BTreeMap<TableId, RouteTable>>,
        /// providerID → target.
        pub targets: Mutex<HashMap<String, NodeTarget>>,
        /// Interfaces with forwarding off.
        pub not_forwarding: Mutex<Vec<String>>,
        /// Interfaces whose forwarding cannot be switched on (the call fails).
        pub stuck_forwarding: Mutex<Vec<String>>,
        /// Every change applied, in order.
        pub applied: Mutex<Vec<(TableId, RouteChange)>>,
        /// The next N creates/replaces fail with a transient error.
        pub fail_writes: AtomicUsize,
        /// Listing fails while set.
        pub fail_lists: AtomicBool,
        /// Node lookups fail (throttled) while set.
        pub fail_resolves: AtomicBool,
        /// Forwarding checks fail (throttled) while set.
        pub fail_forwarding_checks: AtomicBool,
        /// Changes refused because the write fence was closed.
        pub fenced: AtomicUsize,
        /// Forwarding checks made.
        pub forwarding_checks: AtomicUsize,
        /// Eventual consistency: a route created is missing from this many of its table's
        /// next listings.
        pub list_lag: AtomicUsize,
        /// (table, destination) → listings it stays hidden from.
        pub hidden: Mutex<HashMap<(TableId, ipnet::IpNet), usize>>,
        pub lists: AtomicUsize,
        pub resolves: AtomicUsize,
        pub counters: ApiCounters,
    }

    impl FakeCloud {
        pub fn mutations(&self) -> usize {
            self.applied.lock().unwrap().len()
        }

        pub fn table(&self, id: &str) -> RouteTable {
            self.tables.lock().unwrap()[&TableId::from(id)].clone()
        }
    }

    #[async_trait]
    impl CloudProvider for FakeCloud {
        fn cloud(&self) -> Cloud {
            Cloud::Aws
        }

        async fn discover_tables(&self) -> Result<Vec<TableId>, CloudError> {
            Ok(self.tables.lock().unwrap().keys().cloned().collect())
        }

        async fn list_table(&self, table: &TableId) -> Result<RouteTable, CloudError> {
            self.lists.fetch_add(1, Ordering::Relaxed);
            self.counters.record("DescribeRouteTables", CallOutcome::Ok);
            if self.fail_lists.load(Ordering::Relaxed) {
                return Err(CloudError::new(ErrorKind::Transient, "Unavailable", "down"));
            }
            let mut listed = self
                .tables
                .lock()
                .unwrap()
                .get(table)
                .cloned()
                .ok_or_else(|| CloudError::new(ErrorKind::NotFound, "NotFound", "no table"))?;
            let mut hidden = self.hidden.lock().unwrap();
            hidden.retain(|(t, dest), left| {
                if t != table {
                    return true;
                }
                listed.routes.retain(|r| r.destination != *dest);
                *left -= 1;
                *left > 0
            });
            Ok(listed)
        }

        async fn apply_fenced(
            &self,
            table: &TableId,
            changes: &[RouteChange],
            fence: &dyn WriteFence,
        ) -> Vec<ChangeOutcome> {
            let mut out = Vec::new();
            for c in changes {
                if fence
                    .deadline()
                    .is_none_or(|d| d <= std::time::Instant::now())
                {
                    self.fenced.fetch_add(1, Ordering::Relaxed);
                    out.push(ChangeOutcome {
                        change: c.clone(),
                        result: Err(cni_cloud_providers::fence::fenced("write")),
                    });
                    continue;
                }
                let fail = !c.is_delete()
                    && self
                        .fail_writes
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok();
                let result = if fail {
                    Err(CloudError::new(
                        ErrorKind::Transient,
                        "InternalError",
                        "An internal error has occurred",
                    ))
                } else {
                    let mut tables = self.tables.lock().unwrap();
                    let t = tables.get_mut(table).expect("known table");
                    apply_changes(t, std::slice::from_ref(c));
                    let lag = self.list_lag.load(Ordering::Relaxed);
                    if lag > 0 && matches!(c, RouteChange::Create { .. }) {
                        self.hidden
                            .lock()
                            .unwrap()
                            .insert((table.clone(), *c.destination()), lag);
                    }
                    self.applied
                        .lock()
                        .unwrap()
                        .push((table.clone(), c.clone()));
                    Ok(())
                };
                out.push(ChangeOutcome {
                    change: c.clone(),
                    result,
                });
            }
            out
        }

        async fn resolve_nodes(
            &self,
            provider_ids: &[String],
        ) -> HashMap<String, Result<NodeTarget, CloudError>> {
            self.resolves.fetch_add(1, Ordering::Relaxed);
            if self.fail_resolves.load(Ordering::Relaxed) {
                return provider_ids
                    .iter()
                    .map(|id| (id.clone(), Err(throttled())))
                    .collect();
            }
            let targets = self.targets.lock().unwrap();
            provider_ids
                .iter()
                .map(|id| {
                    let r = targets.get(id).cloned().ok_or_else(|| {
                        CloudError::new(
                            ErrorKind::NotFound,
                            "InvalidInstanceID.NotFound",
                            format!("{id} does not exist"),
                        )
                    });
                    (id.clone(), r)
                })
                .collect()
        }

        async fn ensure_forwarding_fenced(
            &self,
            target: &NodeTarget,
            _fence: &dyn WriteFence,
        ) -> Result<ForwardingChange, CloudError> {
            self.forwarding_checks.fetch_add(1, Ordering::Relaxed);
            if self.fail_forwarding_checks.load(Ordering::Relaxed) {
                return Err(throttled());
            }
            if self
                .stuck_forwarding
                .lock()
                .unwrap()
                .contains(&target.interface_id)
            {
                return Err(CloudError::new(
                    ErrorKind::Permanent,
                    "UnauthorizedOperation",
                    "You are not authorized to perform this operation.",
                ));
            }
            let mut off = self.not_forwarding.lock().unwrap();
            if let Some(i) = off.iter().position(|i| *i == target.interface_id) {
                off.remove(i);
                return Ok(ForwardingChange::Enabled);
            }
            Ok(ForwardingChange::AlreadyEnabled)
        }

        fn counters(&self) -> &ApiCounters {
            &self.counters
        }

        fn operations(&self) -> &'static [&'static str] {
            &[]
        }
    }
}
