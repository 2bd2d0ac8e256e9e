//! Helpers shared by the planner's tests and the in-memory fake cloud: apply a change set
//! to a listed table the way a cloud would.

use cni_cloud_providers::{Claim, Route, RouteChange, RouteOrigin, RouteState, RouteTable};

/// Apply `changes` to `table` as the cloud would (our writes are `Manual` and `Cluster`).
pub fn apply_changes(table: &mut RouteTable, changes: &[RouteChange]) {
    for change in changes {
        match change {
            RouteChange::Create {
                destination,
                next_hop,
            } => {
                if !table.routes.iter().any(|r| &r.destination == destination) {
                    table.routes.push(Route {
                        destination: *destination,
                        next_hop: next_hop.clone(),
                        state: RouteState::Active,
                        origin: RouteOrigin::Manual,
                        claim: Claim::Cluster,
                        name: None,
                    });
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
                }
            }
            RouteChange::Delete { destination, .. } => {
                table.routes.retain(|r| &r.destination != destination);
            }
        }
    }
}
