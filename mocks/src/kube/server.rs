//! The HTTP edge: Kubernetes API paths, authentication by bearer token, RBAC, Status
//! bodies, chunked watch streams, and the `/_mock/*` admin endpoints.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::KubeMock;
use super::list_watch::{list_nodes, watch_nodes};
use super::patch::{merge_patch, strategic_merge_patch};
use super::rbac::{Rbac, Request};
use super::state::StoreError;
use super::validation::{self, EventApi, FieldError, invalid_status};

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

/// A plain error the API server did not turn into a Status: 500, no reason.
fn internal(message: String) -> Response {
    ok(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
               "status": "Failure", "message": message, "code": 500}),
    )
}

/// What the store refused, as the API server's Status for `resource` in `group`
/// (`kind` names the object kind in a validation error).
fn store_error(err: StoreError, group: &str, resource: &str, kind: &str, name: &str) -> Response {
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let resource_status = |code: StatusCode, reason: &str, message: String| {
        let mut details = json!({"name": name, "kind": resource});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        ok(
            code,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "details": details, "code": code.as_u16()}),
        )
    };
    match err {
        StoreError::NotFound => resource_status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{qualified} {name:?} not found"),
        ),
        StoreError::AlreadyExists => resource_status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{qualified} {name:?} already exists"),
        ),
        StoreError::Conflict => resource_status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        ),
        StoreError::Invalid(errs) => ok(
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid_status(group, kind, name, &errs),
        ),
        // The generic registry names the resource where the kind would be (#18526).
        StoreError::ResourceVersionRequired => ok(
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid_status(
                group,
                resource,
                name,
                &[FieldError::invalid_raw(
                    "metadata.resourceVersion",
                    "0x0",
                    "must be specified for an update",
                )],
            ),
        ),
        StoreError::MalformedResourceVersion(message) => internal(message),
    }
}

fn bad_request(message: String) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, "", None)
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
                Some(n) => ok(StatusCode::OK, (**n).clone()),
                None => store_error(StoreError::NotFound, "", "nodes", "Node", name),
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
    let Some(mut node) = store.nodes.get(name).map(|n| (**n).clone()) else {
        return store_error(StoreError::NotFound, "", "nodes", "Node", name);
    };
    // The status subresource ignores everything but status.
    let Some(new_status) = patch.get("status") else {
        return ok(StatusCode::OK, node);
    };
    match ctype.as_str() {
        "application/strategic-merge-patch+json" => {
            // Merge keys are declared by path from the Node root.
            let mut whole = json!({"status": node["status"].take()});
            // strategicpatch's errors other than its few sentinels reach the client as
            // a plain 500 (interpretStrategicMergePatchError), e.g. a missing merge key.
            if let Err(message) = strategic_merge_patch(&mut whole, &json!({"status": new_status}))
            {
                return internal(message);
            }
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

/// The namespace in a body, when it disagrees with the request's.
fn body_namespace_mismatch<'a>(obj: &'a Value, ns: &str) -> Option<&'a str> {
    obj["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty() && *n != ns)
}

fn leases(mock: &KubeMock, t: &Target<'_>, verb: &str, body: &Bytes) -> Response {
    let ns = t.namespace.unwrap_or("default");
    let (group, resource, kind) = ("coordination.k8s.io", "leases", "Lease");
    let mut store = mock.inner.store.lock().expect("store");
    match verb {
        "get" => {
            let name = t.name.unwrap_or_default();
            match store.leases.get(&(ns.to_owned(), name.to_owned())) {
                Some(l) => ok(StatusCode::OK, l.clone()),
                None => store_error(StoreError::NotFound, group, resource, kind, name),
            }
        }
        "create" => {
            let lease = match parse_body(body) {
                Ok(l) => l,
                Err(r) => return *r,
            };
            if body_namespace_mismatch(&lease, ns).is_some() {
                return bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                );
            }
            let name = lease["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match store.create_lease(ns, lease) {
                Ok(l) => ok(StatusCode::CREATED, l),
                Err(e) => store_error(e, group, resource, kind, &name),
            }
        }
        "update" => {
            let lease = match parse_body(body) {
                Ok(l) => l,
                Err(r) => return *r,
            };
            let name = t.name.unwrap_or_default();
            let body_name = lease["metadata"]["name"].as_str().unwrap_or_default();
            if body_name != name {
                return bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                ));
            }
            if let Some(other) = body_namespace_mismatch(&lease, ns) {
                return bad_request(format!(
                    "the namespace of the object ({other}) does not match the namespace on the request ({ns})"
                ));
            }
            match store.update_lease(ns, name, lease) {
                Ok(l) => ok(StatusCode::OK, l),
                Err(e) => store_error(e, group, resource, kind, name),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{verb} is not supported on leases by this mock"),
            "leases.coordination.k8s.io",
            t.name,
        ),
    }
}

/// Event create and patch, validated as the API server validates them for the API
/// they came through (events.k8s.io/v1 strictly, core/v1 with the legacy rules).
fn events(mock: &KubeMock, t: &Target<'_>, verb: &str, body: &Bytes) -> Response {
    let ns = t.namespace.unwrap_or("default");
    let (api, group, api_version) = if t.group.is_empty() {
        (EventApi::CoreV1, "", "v1")
    } else {
        (EventApi::EventsV1, "events.k8s.io", "events.k8s.io/v1")
    };
    let obj = match parse_body(body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let invalid = |name: &str, errs: &[FieldError]| {
        // Validation runs on the internal core.Event, whichever API was called.
        ok(
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid_status("", "Event", name, errs),
        )
    };
    let mut store = mock.inner.store.lock().expect("store");
    if verb == "create" {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if body_namespace_mismatch(&obj, ns).is_some() {
            return status(StatusCode::BAD_REQUEST, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request".into(), "events", Some(&name));
        }
        let errs = validation::event_create(&obj, ns, api);
        if !errs.is_empty() {
            return invalid(&name, &errs);
        }
        let mut obj = obj;
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!("Event");
        match store.create_event(ns, obj) {
            Ok(e) => ok(StatusCode::CREATED, e),
            Err(e) => store_error(e, group, "events", "Event", &name),
        }
    } else {
        let name = t.name.unwrap_or_default();
        let Some(old) = store.events.get(&(ns.to_owned(), name.to_owned())).cloned() else {
            return store_error(StoreError::NotFound, group, "events", "Event", name);
        };
        let mut new = old.clone();
        merge_patch(&mut new, &obj);
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = json!("Event");
        let errs = validation::event_update(&new, &old, ns, api);
        if !errs.is_empty() {
            return invalid(name, &errs);
        }
        ok(StatusCode::OK, store.replace_event(ns, name, new))
    }
}
