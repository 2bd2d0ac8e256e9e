//! Writes the cloud acknowledged that a listing does not show yet. EC2 is eventually
//! consistent: a route just created may be missing from the next `DescribeRouteTables`
//! for a while (and one just deleted may linger). The cloud's success answer is itself a
//! verified fact, so for a bounded window the listing is read with our acknowledged writes
//! applied: no false "route missing" on the node, no second CreateRoute that would fail
//! with RouteAlreadyExists. Once the listing shows the write, or the window has passed,
//! the listing alone decides again.

use std::collections::HashMap;
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

use cni_cloud_providers::{Route, RouteChange, RouteState, RouteTable, TableId};

#[derive(Debug, Default)]
pub struct Acknowledged {
    entries: HashMap<(TableId, IpNet), (RouteChange, Instant)>,
}

impl Acknowledged {
    /// The cloud answered success to `change` on `table`.
    pub fn record(&mut self, table: &TableId, change: &RouteChange) {
        self.entries.insert(
            (table.clone(), *change.destination()),
            (change.clone(), Instant::now()),
        );
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Read freshly listed `tables` with the acknowledged writes of the last `window`
    /// applied; forget the writes a listing already shows, and those past the window.
    pub fn overlay(&mut self, tables: &mut [RouteTable], window: Duration) {
        let now = Instant::now();
        self.entries
            .retain(|(table_id, destination), (change, at)| {
                let Some(table) = tables.iter_mut().find(|t| &t.id == table_id) else {
                    // Not listed this time: keep it for the next listing.
                    return now.duration_since(*at) < window;
                };
                let listed = table
                    .routes
                    .iter()
                    .position(|r| r.destination == *destination);
                let shown = match (&*change, listed) {
                    (RouteChange::Delete { .. }, None) => true,
                    (
                        RouteChange::Create { next_hop, .. }
                        | RouteChange::Replace { next_hop, .. },
                        Some(i),
                    ) => {
                        table.routes[i].next_hop == *next_hop
                            && table.routes[i].state == RouteState::Active
                    }
                    _ => false,
                };
                if shown || now.duration_since(*at) >= window {
                    return false;
                }
                match change {
                    RouteChange::Delete { .. } => {
                        table.routes.retain(|r| r.destination != *destination);
                    }
                    RouteChange::Create { next_hop, .. }
                    | RouteChange::Replace { next_hop, .. } => {
                        let ours = Route::written(*destination, next_hop.clone());
                        match listed {
                            Some(i) => table.routes[i] = ours,
                            None => table.routes.push(ours),
                        }
                    }
                }
                true
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_cloud_providers::{Families, NextHop, QuotaScope, RouteQuota};

    fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable {
            id: "rtb-a".into(),
            name: "a".into(),
            families: Families::BOTH,
            quota: RouteQuota {
                limit: 50,
                scope: QuotaScope::PerFamily,
            },
            routes,
            version: None,
            unlisted_routes: 0,
        }
    }

    fn create(dest: &str) -> RouteChange {
        RouteChange::Create {
            destination: dest.parse().unwrap(),
            next_hop: NextHop::NetworkInterface("eni-1".into()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_acknowledged_create_counts_until_listed_or_the_window_ends() {
        let mut acks = Acknowledged::default();
        let t: TableId = "rtb-a".into();
        acks.record(&t, &create("10.0.1.0/24"));
        acks.record(&t, &create("10.0.2.0/24"));
        let mut listed = vec![table(vec![])];
        acks.overlay(&mut listed, Duration::from_secs(10));
        assert_eq!(listed[0].routes.len(), 2, "both read as present");
        assert_eq!(acks.len(), 2);

        // The listing catches up with one of them: that entry is done.
        let mut listed = vec![table(vec![Route::written(
            "10.0.1.0/24".parse().unwrap(),
            NextHop::NetworkInterface("eni-1".into()),
        )])];
        acks.overlay(&mut listed, Duration::from_secs(10));
        assert_eq!(listed[0].routes.len(), 2);
        assert_eq!(acks.len(), 1);

        // Past the window the listing alone decides.
        tokio::time::advance(Duration::from_secs(11)).await;
        let mut listed = vec![table(vec![])];
        acks.overlay(&mut listed, Duration::from_secs(10));
        assert!(listed[0].routes.is_empty());
        assert_eq!(acks.len(), 0);
    }
}
