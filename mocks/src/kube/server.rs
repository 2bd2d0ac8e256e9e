//! The HTTP edge: Kubernetes API paths, authentication by bearer token, RBAC, Status
//! bodies, chunked watch streams, and the `/_mock/*` admin endpoints.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::KubeMock;
use super::patch::{merge_patch, strategic_merge_patch};
use super::rbac::{Rbac, Request};
use super::state::{StoreError, WatchEvent};

pub fn router(mock: KubeMock) -> Router {
    Router::new().fallback(handle).with_state(mock)
}

fn status(
    code: StatusCode,
    reason: &str,
    message: String,
    kind: &str,
    name: Option<&str>,
) -> Response {
    let mut details = json!({"kind": kind});
    if let Some(n) = name {
        details["name"] = json!(n);
    }
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": details, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn ok(code: StatusCode, body: Value) -> Response {
    (code, axum::Json(body)).into_response()
}

/// A parsed resource path.
#[derive(Debug)]
struct Target<'a> {
    group: &'a str,
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_path(path: &str) -> Option<Target<'_>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, "v1", rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        _ => (None, rest),
    };
    match rest {
        [resource] => Some(Target {
            group,
            namespace,
            resource,
            name: None,
            subresource: None,
        }),
        [resource, name] => Some(Target {
            group,
            namespace,
            resource,
            name: Some(name),
            subresource: None,
        }),
        [resource, name, sub] => Some(Target {
            group,
            namespace,
            resource,
            name: Some(name),
            subresource: Some(sub),
        }),
        _ => None,
    }
}

fn query(uri: &Uri) -> std::collections::BTreeMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn handle(
    State(mock): State<KubeMock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if let Some(admin) = path.strip_prefix("/_mock/") {
        return super::admin::handle(&mock, &method, admin, &body);
    }
    // Authentication: bearer token → ServiceAccount.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(who) = token.and_then(|t| mock.inner.tokens.get(t)).cloned() else {
        mock.inner.stats.record("authenticate", "401");
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
            "",
            None,
        );
    };
    if let Some(doc) = discovery(&mock, &path) {
        return ok(StatusCode::OK, doc);
    }
    let Some(target) = parse_path(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            "",
            None,
        );
    };
    let q = query(&uri);
    let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (&method, target.name, watch) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, Some(_), false) => "get",
        (&Method::GET, None, false) => "list",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, _, _) => "delete",
        _ => {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "method not allowed".into(),
                "",
                None,
            );
        }
    };
    let rbac_resource = match target.subresource {
        Some(sub) => format!("{}/{sub}", target.resource),
        None => target.resource.to_owned(),
    };
    // POST carries the name in the body; RBAC sees no name for create.
    let name = if verb == "create" { None } else { target.name };
    let req = Request {
        verb,
        api_group: target.group,
        resource: &rbac_resource,
        namespace: target.namespace,
        name,
    };
    let action = format!(
        "{verb} {}{rbac_resource}",
        if target.group.is_empty() {
            String::new()
        } else {
            format!("{}/", target.group)
        }
    );
    if !mock.inner.superusers.contains(&who) && !mock.inner.rbac.allows(&who, &req) {
        mock.inner.stats.record(&action, "403");
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Rbac::forbidden_message(&who, &req),
            target.resource,
            name,
        );
    }
    let resp = dispatch(&mock, &target, verb, &q, &headers, &body).await;
    mock.inner.stats.record(&action, resp.status().as_str());
    resp
}

fn discovery(mock: &KubeMock, path: &str) -> Option<Value> {
    let resource = |name: &str, kind: &str, namespaced: bool, verbs: &[&str]| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs});
    let group = |name: &str| {
        json!({"name": name, "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}],
               "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"}})
    };
    Some(match path.trim_end_matches('/') {
        "/version" => {
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-cni-cloud-mock", "platform": "linux/amd64"})
        }
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": mock.addr_hint()}]}),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [group("coordination.k8s.io"), group("events.k8s.io")]}),
        "/api/v1" => json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            resource("nodes", "Node", false, &["get", "list", "watch", "patch"]),
            resource("nodes/status", "Node", false, &["get", "patch"]),
            resource("events", "Event", true, &["create", "patch"])]}),
        "/apis/coordination.k8s.io/v1" => {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "coordination.k8s.io/v1",
            "resources": [resource("leases", "Lease", true, &["get", "create", "update"])]})
        }
        "/apis/events.k8s.io/v1" => {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "events.k8s.io/v1",
            "resources": [resource("events", "Event", true, &["create", "patch"])]})
        }
        "/apis/coordination.k8s.io" => group("coordination.k8s.io"),
        "/apis/events.k8s.io" => group("events.k8s.io"),
        _ => return None,
    })
}

fn store_error(err: StoreError, qualified: &str, name: &str) -> Response {
    match err {
        StoreError::NotFound => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{qualified} {name:?} not found"),
            qualified,
            Some(name),
        ),
        StoreError::AlreadyExists => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{qualified} {name:?} already exists"),
            qualified,
            Some(name),
        ),
        StoreError::Conflict => status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
            ),
            qualified,
            Some(name),
        ),
        StoreError::Invalid(msg) => status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {msg}"),
            qualified,
            Some(name),
        ),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("the body of the request was in an unknown format: {e}"),
            "",
            None,
        ))
    })
}

async fn dispatch(
    mock: &KubeMock,
    t: &Target<'_>,
    verb: &str,
    q: &std::collections::BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    match (t.group, t.resource, t.subresource, verb) {
        ("", "nodes", None, "list") => list_nodes(mock, q),
        ("", "nodes", None, "watch") => watch_nodes(mock, q),
        ("", "nodes", None | Some("status"), "get") => {
            let name = t.name.unwrap_or_default();
            match mock.inner.store.lock().expect("store").nodes.get(name) {
                Some(n) => ok(StatusCode::OK, n.clone()),
                None => store_error(StoreError::NotFound, "nodes", name),
            }
        }
        ("", "nodes", Some("status"), "patch") => patch_node_status(mock, t.name.unwrap_or_default(), headers, body),
        ("coordination.k8s.io", "leases", None, _) => leases(mock, t, verb, body),
        ("events.k8s.io" | "", "events", None, "create" | "patch") => events(mock, t, verb, body),
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource (this mock serves only what cni-cloud uses)".into(),
            t.resource,
            t.name,
        ),
    }
}

fn name_selector(q: &std::collections::BTreeMap<String, String>) -> Option<String> {
    q.get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned)
}

fn list_nodes(mock: &KubeMock, q: &std::collections::BTreeMap<String, String>) -> Response {
    let mut store = mock.inner.store.lock().expect("store");
    let only = name_selector(q);
    let items: Vec<Value> = if store.empty_lists > 0 {
        store.empty_lists -= 1;
        Vec::new()
    } else {
        store
            .nodes
            .values()
            .filter(|n| only.as_deref().is_none_or(|o| n["metadata"]["name"] == o))
            .cloned()
            .collect()
    };
    ok(
        StatusCode::OK,
        json!({"kind": "NodeList", "apiVersion": "v1",
               "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items}),
    )
}

fn watch_line(ev: &WatchEvent) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": ev.kind, "object": ev.object})).expect("json");
    line.push(b'\n');
    Bytes::from(line)
}

fn gone_line(message: String) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Expired", "code": 410}}))
    .expect("json");
    line.push(b'\n');
    Bytes::from(line)
}

fn watch_nodes(mock: &KubeMock, q: &std::collections::BTreeMap<String, String>) -> Response {
    let only = name_selector(q);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let cut = mock.inner.watch_cut.lock().expect("cut").clone();
    let store = mock.inner.store.lock().expect("store");
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => store.resource_version(),
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => rv,
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("invalid resource version {rv:?}"),
                    "",
                    None,
                );
            }
        },
    };
    let head: Vec<Bytes>;
    let rx = match store.watch_from(from) {
        Ok((backlog, rx)) => {
            head = backlog.iter().map(watch_line).collect();
            Some(rx)
        }
        Err(super::state::Gone) => {
            head = vec![gone_line(format!(
                "too old resource version: {from} ({})",
                store.resource_version()
            ))];
            None
        }
    };
    drop(store);
    let live = futures::stream::unfold((rx, only.clone()), |(rx, only)| async move {
        let mut rx = rx?;
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if only
                        .as_deref()
                        .is_some_and(|o| ev.object["metadata"]["name"] != o)
                    {
                        continue;
                    }
                    return Some((watch_line(&ev), (Some(rx), only)));
                }
                // The watcher fell behind the history: the client must re-list.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    return Some((
                        gone_line("watch fell behind; too old resource version".into()),
                        (None, only),
                    ));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let head = futures::stream::iter(head.into_iter().filter(move |line| {
        only.as_deref().is_none_or(|o| {
            serde_json::from_slice::<Value>(line)
                .is_ok_and(|v| v["object"]["metadata"]["name"] == o || v["type"] == "ERROR")
        })
    }));
    let stream = head
        .chain(live)
        .take_until(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {}
                _ = cut.cancelled() => {}
            }
        })
        .map(Ok::<_, std::convert::Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}

fn patch_node_status(mock: &KubeMock, name: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let patch = match parse_body(body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let mut store = mock.inner.store.lock().expect("store");
    let Some(mut node) = store.nodes.get(name).cloned() else {
        return store_error(StoreError::NotFound, "nodes", name);
    };
    // The status subresource ignores everything but status.
    let Some(new_status) = patch.get("status") else {
        return ok(StatusCode::OK, node);
    };
    match ctype.as_str() {
        "application/strategic-merge-patch+json" => {
            // Merge keys are declared by path from the Node root.
            let mut whole = json!({"status": node["status"].take()});
            strategic_merge_patch(&mut whole, &json!({"status": new_status}));
            node["status"] = whole["status"].take();
        }
        "application/merge-patch+json" => merge_patch(&mut node["status"], new_status),
        other => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
                ),
                "",
                None,
            );
        }
    }
    let written = store.write_node(node);
    ok(StatusCode::OK, written)
}

fn leases(mock: &KubeMock, t: &Target<'_>, verb: &str, body: &Bytes) -> Response {
    let ns = t.namespace.unwrap_or("default");
    let qualified = "leases.coordination.k8s.io";
    let mut store = mock.inner.store.lock().expect("store");
    match verb {
        "get" => {
            let name = t.name.unwrap_or_default();
            match store.leases.get(&(ns.to_owned(), name.to_owned())) {
                Some(l) => ok(StatusCode::OK, l.clone()),
                None => store_error(StoreError::NotFound, qualified, name),
            }
        }
        "create" => {
            let lease = match parse_body(body) {
                Ok(l) => l,
                Err(r) => return *r,
            };
            let name = lease["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match store.create_lease(ns, lease) {
                Ok(l) => ok(StatusCode::CREATED, l),
                Err(e) => store_error(e, qualified, &name),
            }
        }
        "update" => {
            let lease = match parse_body(body) {
                Ok(l) => l,
                Err(r) => return *r,
            };
            let name = t.name.unwrap_or_default();
            match store.update_lease(ns, name, lease) {
                Ok(l) => ok(StatusCode::OK, l),
                Err(e) => store_error(e, qualified, name),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{verb} is not supported on leases by this mock"),
            qualified,
            t.name,
        ),
    }
}

fn events(mock: &KubeMock, t: &Target<'_>, verb: &str, body: &Bytes) -> Response {
    let ns = t.namespace.unwrap_or("default");
    let qualified = if t.group.is_empty() {
        "events"
    } else {
        "events.events.k8s.io"
    };
    let obj = match parse_body(body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut store = mock.inner.store.lock().expect("store");
    if verb == "create" {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(body_ns) = obj["metadata"]["namespace"].as_str()
            && body_ns != ns
        {
            return status(StatusCode::BAD_REQUEST, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request".into(), qualified, Some(&name));
        }
        let mut obj = obj;
        obj["apiVersion"] = json!(if t.group.is_empty() {
            "v1"
        } else {
            "events.k8s.io/v1"
        });
        obj["kind"] = json!("Event");
        match store.create_event(ns, obj) {
            Ok(e) => ok(StatusCode::CREATED, e),
            Err(e) => store_error(e, qualified, &name),
        }
    } else {
        let name = t.name.unwrap_or_default();
        match store.patch_event(ns, name, &obj) {
            Ok(e) => ok(StatusCode::OK, e),
            Err(e) => store_error(e, qualified, name),
        }
    }
}
