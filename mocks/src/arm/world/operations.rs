//! The operations engine: every accepted write is a long-running operation that holds the
//! resource (ARM's per-resource lock: another write gets 409 `AnotherOperationInProgress`)
//! until it settles `Succeeded`, `Failed` or `Canceled` (then the resource keeps its last
//! good configuration); `If-Match` checks; the scripted second writer of
//! [`World::race_next_puts`].

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    Accepted, ArmError, OpStatus, Resource, World, for_each_route, key, new_etag, set_provisioning,
};

#[derive(Debug)]
pub(super) struct Operation {
    resource: String,
    deadline: Instant,
    /// Decided when the write is accepted, revealed when it settles.
    final_status: OpStatus,
    pub(super) status: OpStatus,
    /// The resource before the write, restored when the operation fails. `None` when the
    /// write created it (a failed create leaves the resource in state Failed).
    previous: Option<Value>,
}

impl World {
    /// Long-running operations the random fault rate made fail so far.
    pub fn faults_injected(&self) -> u64 {
        self.faults_injected
    }

    /// Make the next `n` long-running operations end `Failed`.
    pub fn fail_next_operations(&mut self, n: u32) {
        self.fail_next = n;
    }

    /// Make the next `n` long-running operations end `Canceled`.
    pub fn cancel_next_operations(&mut self, n: u32) {
        self.cancel_next = n;
    }

    /// Another writer holds `id` for `wall` (its own long-running PUT): writes get 409.
    pub fn lock_for(&mut self, id: &str, wall: Duration) -> Result<(), String> {
        let res = self
            .resources
            .get_mut(&key(id))
            .ok_or_else(|| format!("no resource {id}"))?;
        let op = uuid::Uuid::new_v4().to_string();
        res.busy = Some(op.clone());
        // What any reader sees while another write is in flight.
        set_provisioning(&mut res.json, "Updating");
        self.operations.insert(
            op,
            Operation {
                resource: key(id),
                deadline: Instant::now() + wall,
                final_status: OpStatus::Succeeded,
                status: OpStatus::InProgress,
                previous: None,
            },
        );
        Ok(())
    }

    /// Finish every operation whose time has come, now. The mock settles lazily, on the next
    /// request; an observer of the cloud's effect (simulate's data-path fabric) calls this
    /// so that a write takes effect when its operation ends, not when somebody next asks.
    pub fn settle_due(&mut self) {
        self.settle(Instant::now());
    }

    /// Finish every operation whose time has come.
    pub(crate) fn settle(&mut self, now: Instant) {
        let due: Vec<String> = self
            .operations
            .iter()
            .filter(|(_, op)| op.status == OpStatus::InProgress && op.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let op = self.operations.get_mut(&id).expect("due op");
            op.status = op.final_status;
            let previous = op.previous.take();
            let status = op.status;
            let resource_key = op.resource.clone();
            let Some(res) = self.resources.get_mut(&resource_key) else {
                continue;
            };
            if res.busy.as_deref() == Some(id.as_str()) {
                res.busy = None;
            }
            match (status, previous) {
                (OpStatus::Succeeded, _) => {
                    set_provisioning(&mut res.json, "Succeeded");
                    for_each_route(&mut res.json, |r| set_provisioning(r, "Succeeded"));
                }
                (_, Some(previous)) => {
                    // The goal state was never reached: ARM keeps the last good
                    // configuration and marks the resource Failed.
                    res.json = previous;
                    set_provisioning(&mut res.json, "Failed");
                }
                (_, None) => set_provisioning(&mut res.json, "Failed"),
            }
        }
    }

    pub(crate) fn operation(&self, id: &str) -> Option<(OpStatus, Duration)> {
        self.operations.get(id).map(|op| {
            (
                op.status,
                op.deadline.saturating_duration_since(Instant::now()),
            )
        })
    }

    pub(super) fn check_writable(&self, id: &str, if_match: Option<&str>) -> Result<(), ArmError> {
        let res = self.resources.get(&key(id));
        if let Some(res) = res
            && let Some(op) = &res.busy
        {
            // ARM sends no Retry-After here: the client must back off on its own.
            let err = ArmError::new(
                409,
                "AnotherOperationInProgress",
                format!(
                    "Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: operations/{op}. Resource: {id}"
                ),
            );
            return Err(err);
        }
        match (if_match, res) {
            (None, _) => Ok(()),
            (Some("*"), Some(_)) => Ok(()),
            (Some(tag), Some(res)) if res.json["etag"].as_str() == Some(tag) => Ok(()),
            _ => Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition specified using HTTP conditional header(s) is not met.",
            )),
        }
    }

    fn start_operation(&mut self, id: &str, previous: Option<Value>) -> (String, OpStatus) {
        let final_status = if self.cancel_next > 0 {
            self.cancel_next -= 1;
            OpStatus::Canceled
        } else if self.fail_next > 0 {
            self.fail_next -= 1;
            OpStatus::Failed
        } else if self.fault_rate > 0.0 && rand::random::<f64>() < self.fault_rate {
            self.faults_injected += 1;
            OpStatus::Failed
        } else {
            OpStatus::Succeeded
        };
        let op_id = uuid::Uuid::new_v4().to_string();
        self.operations.insert(
            op_id.clone(),
            Operation {
                resource: key(id),
                deadline: Instant::now() + self.lro_wall,
                final_status,
                status: OpStatus::InProgress,
                previous,
            },
        );
        (op_id, final_status)
    }

    /// The second writer of [`World::race_next_puts`], if one is due for `id`.
    pub(super) fn interloper(&mut self, id: &str) {
        let k = key(id);
        let Some(n) = self.interlopers.get_mut(&k) else {
            return;
        };
        if *n == 0 {
            return;
        }
        *n -= 1;
        if let Some(res) = self.resources.get_mut(&k) {
            let name = format!("second-writer-{}", uuid::Uuid::new_v4().simple());
            let route = json!({
                "name": name,
                "id": format!("{id}/routes/{name}"),
                "etag": res.json["etag"],
                "type": "Microsoft.Network/routeTables/routes",
                "properties": {
                    "addressPrefix": "192.0.2.0/24",
                    "nextHopType": "VirtualAppliance",
                    "nextHopIpAddress": "10.255.0.1",
                    "provisioningState": "Succeeded",
                    "hasBgpOverride": false
                }
            });
            if let Some(routes) = res.json["properties"]["routes"].as_array_mut() {
                routes.push(route);
            } else {
                // Not a table (a NIC): the other writer sets a tag.
                res.json["tags"]["second-writer"] = json!(name);
            }
            res.json["etag"] = json!(new_etag());
        }
    }

    /// Start the write of `json` to `id`: the resource shows it `Updating` and is held until
    /// the operation settles.
    pub(super) fn accept(
        &mut self,
        id: &str,
        mut json: Value,
        previous: Option<Value>,
        location: &str,
    ) -> Result<Accepted, ArmError> {
        let created = previous.is_none();
        self.log_changes(id, previous.as_ref(), &json);
        let (op_id, _) = self.start_operation(id, previous);
        set_provisioning(&mut json, "Updating");
        self.resources.insert(
            key(id),
            Resource {
                json: json.clone(),
                busy: Some(op_id.clone()),
            },
        );
        let subscription = id.split('/').nth(2).unwrap_or_default().to_owned();
        Ok(Accepted {
            created,
            body: json,
            operation_id: op_id,
            remaining: self.lro_wall,
            location: location.to_owned(),
            subscription,
        })
    }
}
