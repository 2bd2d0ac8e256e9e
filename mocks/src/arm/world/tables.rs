//! Route-table writes: a whole-table PUT (`If-Match` / `If-None-Match: *`, validation,
//! quota), one route's PUT and DELETE (the table stays locked while they run), and the
//! stored form of a table (server-owned fields set; a route whose content did not change
//! keeps its etag, so untouched routes read back byte-for-byte).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::validation::validate_routes;
use super::{Accepted, ArmError, World, find_route, key, new_etag, not_found};

impl World {
    /// PUT a whole route table.
    pub(crate) fn put_route_table(
        &mut self,
        id: &str,
        name: &str,
        body: &Value,
        if_match: Option<&str>,
        if_none_match: Option<&str>,
        route_limit: usize,
    ) -> Result<Accepted, ArmError> {
        self.interloper(id);
        let existing = self.resources.get(&key(id)).map(|r| r.json.clone());
        if if_none_match == Some("*") && existing.is_some() {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition specified using HTTP conditional header(s) is not met.",
            ));
        }
        self.check_writable(id, if_match)?;
        let location = body["location"]
            .as_str()
            .or_else(|| existing.as_ref().and_then(|e| e["location"].as_str()))
            .ok_or_else(|| {
                ArmError::new(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?
            .to_owned();
        validate_routes(body, route_limit, id)?;
        let table = normalize_table(id, name, body, existing.as_ref(), "Updating");
        self.accept(id, table, existing, &location)
    }

    /// PUT one route (the table stays locked while it runs).
    pub(crate) fn put_route(
        &mut self,
        table_id: &str,
        route_name: &str,
        body: &Value,
        route_limit: usize,
    ) -> Result<Accepted, ArmError> {
        let table = self
            .get(table_id)
            .ok_or_else(|| not_found(table_id, "Microsoft.Network/routeTables"))?;
        self.check_writable(table_id, None)?;
        let mut routes = table["properties"]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut route = body.clone();
        route["name"] = json!(route_name);
        let created = match routes
            .iter_mut()
            .find(|r| r["name"].as_str() == Some(route_name))
        {
            Some(slot) => {
                *slot = route;
                false
            }
            None => {
                routes.push(route);
                true
            }
        };
        let mut new_body = table.clone();
        new_body["properties"]["routes"] = json!(routes);
        validate_routes(&new_body, route_limit, table_id)?;
        let table_name = table["name"].as_str().unwrap_or_default().to_owned();
        let location = table["location"].as_str().unwrap_or_default().to_owned();
        let normalized =
            normalize_table(table_id, &table_name, &new_body, Some(&table), "Updating");
        let mut accepted = self.accept(table_id, normalized, Some(table), &location)?;
        accepted.created = created;
        accepted.body = find_route(&accepted.body, route_name).unwrap_or(Value::Null);
        Ok(accepted)
    }

    /// DELETE one route: `Ok(None)` when it did not exist (ARM answers 204).
    pub(crate) fn delete_route(
        &mut self,
        table_id: &str,
        route_name: &str,
    ) -> Result<Option<Accepted>, ArmError> {
        let table = self
            .get(table_id)
            .ok_or_else(|| not_found(table_id, "Microsoft.Network/routeTables"))?;
        if find_route(&table, route_name).is_none() {
            return Ok(None);
        }
        self.check_writable(table_id, None)?;
        let mut new_body = table.clone();
        if let Some(routes) = new_body["properties"]["routes"].as_array_mut() {
            routes.retain(|r| r["name"].as_str() != Some(route_name));
        }
        let table_name = table["name"].as_str().unwrap_or_default().to_owned();
        let location = table["location"].as_str().unwrap_or_default().to_owned();
        let normalized =
            normalize_table(table_id, &table_name, &new_body, Some(&table), "Updating");
        self.accept(table_id, normalized, Some(table), &location)
            .map(Some)
    }
}

/// Route fields the server owns; everything else is kept exactly as written.
pub(super) fn strip_server_fields(route: &Value) -> Value {
    let mut route = route.clone();
    if let Some(obj) = route.as_object_mut() {
        obj.remove("id");
        obj.remove("etag");
        obj.remove("type");
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove("provisioningState");
        }
    }
    route
}

/// The stored form of a table: the caller's JSON with ARM's server-owned fields set.
/// A route keeps its etag when its content did not change.
pub(super) fn normalize_table(
    id: &str,
    name: &str,
    body: &Value,
    existing: Option<&Value>,
    state: &str,
) -> Value {
    let etag = new_etag();
    let mut props: Map<String, Value> = body["properties"].as_object().cloned().unwrap_or_default();
    let old_routes: HashMap<String, Value> = existing
        .and_then(|e| e["properties"]["routes"].as_array())
        .map(|rs| {
            rs.iter()
                .filter_map(|r| Some((r["name"].as_str()?.to_ascii_lowercase(), r.clone())))
                .collect()
        })
        .unwrap_or_default();
    let routes: Vec<Value> = props
        .get("routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|route| {
            let name = route["name"].as_str().unwrap_or_default().to_owned();
            if let Some(old) = old_routes.get(&name.to_ascii_lowercase())
                && strip_server_fields(old) == strip_server_fields(&route)
            {
                return old.clone();
            }
            let mut r = route;
            r["id"] = json!(format!("{id}/routes/{name}"));
            r["etag"] = json!(etag);
            r["type"] = json!("Microsoft.Network/routeTables/routes");
            if !r["properties"].is_object() {
                r["properties"] = json!({});
            }
            r["properties"]["provisioningState"] = json!(state);
            r
        })
        .collect();
    props.insert("routes".into(), json!(routes));
    props.insert("provisioningState".into(), json!(state));
    let guid = existing
        .and_then(|e| e["properties"]["resourceGuid"].as_str().map(str::to_owned))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    props.insert("resourceGuid".into(), json!(guid));
    props
        .entry("disableBgpRoutePropagation")
        .or_insert(json!(false));
    let location = body["location"]
        .as_str()
        .or_else(|| existing.and_then(|e| e["location"].as_str()))
        .unwrap_or_default();
    let mut table = json!({
        "name": name,
        "id": id,
        "etag": etag,
        "type": "Microsoft.Network/routeTables",
        "location": location,
        "properties": props,
    });
    if let Some(tags) = body.get("tags") {
        table["tags"] = tags.clone();
    }
    table
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::super::{OpStatus, World};

    #[test]
    fn quota_and_validation_errors_carry_arm_codes() {
        let mut w = World::new(Duration::ZERO, 0.0);
        let id = w.add_route_table("s", "rg", "rt", "westeurope", vec![]);
        let routes: Vec<Value> = (0..3)
            .map(|i| json!({"name": format!("r{i}"), "properties": {"addressPrefix": format!("10.0.{i}.0/24"), "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.4"}}))
            .collect();
        let body = json!({"location": "westeurope", "properties": {"routes": routes}});
        let err = w
            .put_route_table(&id, "rt", &body, None, None, 2)
            .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, "RouteTableRouteLimitExceeded")
        );
        let bad = json!({"location": "westeurope", "properties": {"routes": [{"name": "x", "properties": {"addressPrefix": "10.0.0.0/24", "nextHopType": "VirtualAppliance"}}]}});
        assert_eq!(
            w.put_route_table(&id, "rt", &bad, None, None, 400)
                .unwrap_err()
                .code,
            "InvalidNextHopIpAddress"
        );
        // Nothing changed by the refused writes.
        assert!(w.routes(&id).is_empty());
    }

    #[test]
    fn etag_lock_and_failed_operation_semantics() {
        let mut w = World::new(Duration::from_secs(3600), 0.0);
        let id = w.add_route_table("s", "rg", "rt", "westeurope", vec![]);
        let etag = w.get(&id).unwrap()["etag"].as_str().unwrap().to_owned();
        let body = json!({"properties": {"routes": [{"name": "r", "properties": {"addressPrefix": "10.0.0.0/24", "nextHopType": "None"}}]}});
        assert_eq!(
            w.put_route_table(&id, "rt", &body, Some("W/\"other\""), None, 400)
                .unwrap_err()
                .status,
            412
        );
        w.fail_next_operations(1);
        let ok = w
            .put_route_table(&id, "rt", &body, Some(&etag), None, 400)
            .unwrap();
        assert!(!ok.created);
        assert_eq!(
            w.put_route_table(&id, "rt", &body, None, None, 400)
                .unwrap_err()
                .code,
            "AnotherOperationInProgress"
        );
        w.settle(Instant::now() + Duration::from_secs(7200));
        assert_eq!(w.operation(&ok.operation_id).unwrap().0, OpStatus::Failed);
        let table = w.get(&id).unwrap();
        assert_eq!(table["properties"]["provisioningState"], "Failed");
        assert!(
            w.routes(&id).is_empty(),
            "a failed write leaves the old routes"
        );
    }
}
