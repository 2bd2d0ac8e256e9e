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
/// keyed list merge, `null` deletes a field, `$patch: delete` in a keyed list item).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    strategic(target, patch, &mut Vec::new());
}

fn strategic<'a>(target: &mut Value, patch: &'a Value, path: &mut Vec<&'a str>) {
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
                strategic(obj.entry(k.clone()).or_insert(Value::Null), v, path);
                path.pop();
            }
        }
        Value::Array(items) => match merge_key(path) {
            Some(key) => {
                let mut list = target.as_array().cloned().unwrap_or_default();
                for item in items {
                    let id = &item[key];
                    let pos = list.iter().position(|x| &x[key] == id);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => merge_patch(&mut list[i], item),
                        (None, false) => list.push(item.clone()),
                    }
                }
                *target = Value::Array(list);
            }
            None => *target = patch.clone(),
        },
        other => *target = other.clone(),
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
        );
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
        );
        assert_eq!(n["status"]["conditions"].as_array().unwrap().len(), 1);
        merge_patch(&mut n, &json!({"status":null}));
        assert!(n.get("status").is_none());
    }
}
