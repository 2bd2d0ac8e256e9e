//! The two patch types the controller may use on `nodes/status`: JSON merge patch
//! (RFC 7386: lists are replaced whole) and strategic merge patch (lists with a merge key
//! — `status.conditions` and `status.addresses` by `type` — are merged item by item).

use serde_json::Value;

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let obj = target.as_object_mut().expect("object");
    for (k, v) in patch {
        if v.is_null() {
            obj.remove(k);
        } else {
            merge_patch(obj.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The patchMergeKey of the list at `path` in a Node, as k8s.io/api declares it.
fn merge_key(path: &[&str]) -> Option<&'static str> {
    match path {
        ["status", "conditions"] | ["status", "addresses"] => Some("type"),
        _ => None,
    }
}

/// Strategic merge patch for a Node (the subset of the directives Kubernetes clients send:
/// keyed list merge, `null` deletes a field, `$patch: delete` and `$patch: replace` in a
/// keyed list). A keyed-list item without its merge key is refused with the message of
/// apimachinery's `mergepatch.ErrNoMergeKey`, which the API server answers with a 500.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    strategic(target, patch, &mut Vec::new())
}

fn strategic<'a>(
    target: &mut Value,
    patch: &'a Value,
    path: &mut Vec<&'a str>,
) -> Result<(), String> {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let obj = target.as_object_mut().expect("object");
            for (k, v) in fields {
                if k.starts_with("$setElementOrder/") || k.starts_with("$retainKeys") {
                    continue;
                }
                if v.is_null() {
                    obj.remove(k);
                    continue;
                }
                path.push(k);
                strategic(obj.entry(k.clone()).or_insert(Value::Null), v, path)?;
                path.pop();
            }
        }
        Value::Array(items) => match merge_key(path) {
            Some(key) => {
                let mut list = target.as_array().cloned().unwrap_or_default();
                let mut replace = false;
                let mut merges = Vec::new();
                // Directives first, as strategicpatch's mergeSliceWithSpecialElements.
                for item in items {
                    match item.get("$patch").and_then(Value::as_str) {
                        None => merges.push(item),
                        Some("delete") => {
                            let Some(id) = item.get(key) else {
                                return Err(no_merge_key(item, key));
                            };
                            list.retain(|x| x.get(key) != Some(id));
                        }
                        Some("replace") => replace = true,
                        Some(other) => {
                            return Err(format!(
                                "Unknown patch type: {other} in map: {}",
                                go_format(item)
                            ));
                        }
                    }
                }
                if replace {
                    list.clear();
                }
                for item in merges {
                    let Some(id) = item.get(key) else {
                        return Err(no_merge_key(item, key));
                    };
                    match list.iter().position(|x| x.get(key) == Some(id)) {
                        Some(i) => merge_patch(&mut list[i], item),
                        None => list.push(item.clone()),
                    }
                }
                *target = Value::Array(list);
            }
            None => *target = patch.clone(),
        },
        other => *target = other.clone(),
    }
    Ok(())
}

/// `mergepatch.ErrNoMergeKey(m, k)`.
fn no_merge_key(item: &Value, key: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {key}",
        go_format(item)
    )
}

/// A decoded JSON value as Go's `%v` prints it (`map[k:v ...]` with sorted keys).
pub fn go_format(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_format(&map[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Value {
        json!({"status":{"conditions":[
            {"type":"Ready","status":"True"},
            {"type":"NetworkUnavailable","status":"True","reason":"NoRouteCreated"}]}})
    }

    #[test]
    fn strategic_merge_updates_one_condition_by_type() {
        let mut n = node();
        strategic_merge_patch(
            &mut n,
            &json!({"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","reason":"RouteCreated"}]}}),
        )
        .unwrap();
        let c = n["status"]["conditions"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["type"], "Ready");
        assert_eq!(c[1]["reason"], "RouteCreated");
    }

    #[test]
    fn json_merge_replaces_the_list() {
        let mut n = node();
        merge_patch(
            &mut n,
            &json!({"status":{"conditions":[{"type":"NetworkUnavailable","status":"False"}]}}),
        );
        assert_eq!(n["status"]["conditions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn null_removes_and_patch_delete_drops_item() {
        let mut n = node();
        strategic_merge_patch(
            &mut n,
            &json!({"status":{"conditions":[{"type":"Ready","$patch":"delete"}]}}),
        )
        .unwrap();
        assert_eq!(n["status"]["conditions"].as_array().unwrap().len(), 1);
        merge_patch(&mut n, &json!({"status":null}));
        assert!(n.get("status").is_none());
    }

    #[test]
    fn missing_merge_key_is_refused_and_replace_directive_replaces() {
        let mut n = node();
        let err = strategic_merge_patch(
            &mut n,
            &json!({"status":{"conditions":[{"status":"False","n":1,"x":{"b":[true,null]}}]}}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "map: map[n:1 status:False x:map[b:[true <nil>]]] does not contain declared merge key: type"
        );
        let mut n = node();
        strategic_merge_patch(
            &mut n,
            &json!({"status":{"conditions":[{"$patch":"replace"},{"type":"X","status":"True"}]}}),
        )
        .unwrap();
        assert_eq!(
            n["status"]["conditions"],
            json!([{"type":"X","status":"True"}])
        );
    }
}
