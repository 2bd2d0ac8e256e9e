//! ARM's wire protocol: path parsing, auth, api-version, throttling, headers, error bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::world::{Accepted, ArmError, OpStatus, find_route, not_found};
use super::{ArmMock, RequestClass};

pub(super) fn router(mock: Arc<ArmMock>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(mock)
}

/// What a request addresses. Ids keep the caller's spelling; lookups ignore case, as ARM's do.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Operation {
        id: String,
    },
    /// Every route table of a subscription (`route_tables.list_all()`).
    SubscriptionTableList {
        subscription: String,
    },
    TableList {
        scope: String,
    },
    Table {
        id: String,
        name: String,
    },
    RouteList {
        table: String,
    },
    Route {
        table: String,
        name: String,
    },
    Nic {
        id: String,
    },
    NicList {
        scope: String,
    },
    Vm {
        id: String,
    },
    VmList {
        scope: String,
    },
    VmssVm {
        id: String,
    },
    VmssNicList {
        vm: String,
    },
    VmssNic {
        id: String,
    },
    Unknown,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn parse(path: &str) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [s, sub, p, ns, t]
            if eq(s, "subscriptions")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Network")
                && eq(t, "routeTables") =>
        {
            Target::SubscriptionTableList {
                subscription: (*sub).to_owned(),
            }
        }
        ["subscriptions", _, p, ns, l, _, o, id]
            if eq(p, "providers")
                && eq(ns, "Microsoft.Network")
                && eq(l, "locations")
                && eq(o, "operations") =>
        {
            Target::Operation {
                id: (*id).to_owned(),
            }
        }
        [s, sub, r, rg, p, ns, rest @ ..]
            if eq(s, "subscriptions") && eq(r, "resourceGroups") && eq(p, "providers") =>
        {
            let base = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}");
            let join = |parts: &[&str]| format!("{base}/{}", parts.join("/"));
            if eq(ns, "Microsoft.Network") {
                match rest {
                    [t] if eq(t, "routeTables") => Target::TableList { scope: join(rest) },
                    [t, n] if eq(t, "routeTables") => Target::Table {
                        id: join(rest),
                        name: (*n).to_owned(),
                    },
                    [t, _, r] if eq(t, "routeTables") && eq(r, "routes") => Target::RouteList {
                        table: join(&rest[..2]),
                    },
                    [t, _, r, n] if eq(t, "routeTables") && eq(r, "routes") => Target::Route {
                        table: join(&rest[..2]),
                        name: (*n).to_owned(),
                    },
                    [t, _] if eq(t, "networkInterfaces") => Target::Nic { id: join(rest) },
                    [t] if eq(t, "networkInterfaces") => Target::NicList { scope: join(rest) },
                    _ => Target::Unknown,
                }
            } else if eq(ns, "Microsoft.Compute") {
                match rest {
                    [t, _] if eq(t, "virtualMachines") => Target::Vm { id: join(rest) },
                    [t] if eq(t, "virtualMachines") => Target::VmList { scope: join(rest) },
                    [t, _, v, _]
                        if eq(t, "virtualMachineScaleSets") && eq(v, "virtualMachines") =>
                    {
                        Target::VmssVm { id: join(rest) }
                    }
                    [t, _, v, _, n]
                        if eq(t, "virtualMachineScaleSets")
                            && eq(v, "virtualMachines")
                            && eq(n, "networkInterfaces") =>
                    {
                        Target::VmssNicList {
                            vm: join(&rest[..4]),
                        }
                    }
                    [t, _, v, _, n, _]
                        if eq(t, "virtualMachineScaleSets")
                            && eq(v, "virtualMachines")
                            && eq(n, "networkInterfaces") =>
                    {
                        Target::VmssNic { id: join(rest) }
                    }
                    _ => Target::Unknown,
                }
            } else {
                Target::Unknown
            }
        }
        _ => Target::Unknown,
    }
}

/// The ARM operation (RBAC action) a request performs.
fn operation_name(target: &Target, method: &Method) -> &'static str {
    let write = *method == Method::PUT;
    let delete = *method == Method::DELETE;
    match target {
        Target::Operation { .. } => "Microsoft.Network/locations/operations/read",
        Target::TableList { .. } | Target::SubscriptionTableList { .. } => {
            "Microsoft.Network/routeTables/read"
        }
        Target::Table { .. } if write => "Microsoft.Network/routeTables/write",
        Target::Table { .. } if delete => "Microsoft.Network/routeTables/delete",
        Target::Table { .. } => "Microsoft.Network/routeTables/read",
        Target::RouteList { .. } => "Microsoft.Network/routeTables/routes/read",
        Target::Route { .. } if write => "Microsoft.Network/routeTables/routes/write",
        Target::Route { .. } if delete => "Microsoft.Network/routeTables/routes/delete",
        Target::Route { .. } => "Microsoft.Network/routeTables/routes/read",
        Target::Nic { .. } if write => "Microsoft.Network/networkInterfaces/write",
        Target::Nic { .. } | Target::NicList { .. } => "Microsoft.Network/networkInterfaces/read",
        Target::Vm { .. } | Target::VmList { .. } => "Microsoft.Compute/virtualMachines/read",
        Target::VmssVm { .. } => "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
        Target::VmssNicList { .. } | Target::VmssNic { .. } => {
            "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read"
        }
        Target::Unknown => "unknown",
    }
}

fn error_response(err: &ArmError, mock: &ArmMock) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (
        status,
        axum::Json(json!({"error": {"code": err.code, "message": err.message}})),
    )
        .into_response();
    if let Some(after) = err.retry_after {
        let secs = mock.config.cloud_secs_ceil(after).max(1);
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    if err.status == 401 {
        resp.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static(
                "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\"",
            ),
        );
    }
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, axum::Json(body.clone())).into_response()
}

async fn handle(
    State(mock): State<Arc<ArmMock>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !mock.config.latency.is_zero() {
        tokio::time::sleep(mock.config.latency).await;
    }
    let path = uri.path();
    if method == Method::GET && path == super::IDENTITY_PATH {
        return identity_token(&mock, &uri, &headers);
    }
    if method == Method::GET && path == "/_mock/stats" {
        return axum::Json(mock.stats.to_json()).into_response();
    }
    if method == Method::GET && path == "/_mock/state" {
        return axum::Json(mock.world().snapshot()).into_response();
    }
    let target = parse(path);
    let op = operation_name(&target, &method);
    if !path.starts_with("/_mock/") {
        let token = header(&headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        mock.record_request(token, method.as_str(), op);
    }
    let class = match method {
        Method::GET | Method::HEAD => RequestClass::Read,
        Method::DELETE => RequestClass::Delete,
        _ => RequestClass::Write,
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let result = serve(
        &mock, &target, op, &method, &uri, &headers, &body, class, &host,
    );
    let (mut resp, outcome) = match result {
        Ok(resp) => (resp, "ok".to_owned()),
        Err(err) => {
            let outcome = if err.status == 429 {
                "throttled".to_owned()
            } else {
                err.code.clone()
            };
            (error_response(&err, &mock), outcome)
        }
    };
    mock.stats.record(op, &outcome);
    let h = resp.headers_mut();
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-ms-request-id", v.clone());
        h.insert("x-ms-correlation-request-id", v);
    }
    h.insert(
        class.header(),
        HeaderValue::from(mock.bucket(class).remaining()),
    );
    resp
}

/// An App Service managed-identity endpoint (`IDENTITY_ENDPOINT`, API 2019-08-01): a GET
/// with the `X-IDENTITY-HEADER` secret, `resource` and optionally `client_id` (a
/// user-assigned identity) gets a token for that client; [`ArmMock::requests`] names every
/// request carrying it by that client id (`system` without one).
fn identity_token(mock: &ArmMock, uri: &Uri, headers: &HeaderMap) -> Response {
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let bad = |status: StatusCode, error: &str, description: &str| {
        (
            status,
            axum::Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    if header(headers, "x-identity-header").is_none_or(str::is_empty) {
        return bad(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the X-IDENTITY-HEADER header is missing",
        );
    }
    let Some(resource) = get("resource").filter(|r| !r.is_empty()) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the resource parameter is required",
        );
    };
    let client = get("client_id")
        .filter(|c| !c.is_empty())
        .unwrap_or("system");
    let token = mock.issue_token(client);
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3600)
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client,
        }),
    )
}

fn api_version(uri: &Uri) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[allow(clippy::too_many_arguments)]
fn serve(
    mock: &ArmMock,
    target: &Target,
    op: &'static str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    class: RequestClass,
    host: &str,
) -> Result<Response, ArmError> {
    let token = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ArmError::new(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    }
    let Some(version) = api_version(uri) else {
        return Err(ArmError::new(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    if let Err(wait) = mock.bucket(class).try_take() {
        let kind = match class {
            RequestClass::Read => "read",
            RequestClass::Write => "write",
            RequestClass::Delete => "delete",
        };
        let secs = mock.config.cloud_secs_ceil(wait).max(1);
        let mut err = ArmError::new(
            429,
            "SubscriptionRequestsThrottled",
            format!(
                "Number of '{kind}' requests for subscription exceeded the limit. Please try again after '{secs}' seconds after the additional tokens are refilled."
            ),
        );
        err.retry_after = Some(wait);
        return Err(err);
    }
    if *method == Method::GET && !matches!(target, Target::Operation { .. }) && mock.read_fault() {
        return Err(ArmError::new(
            500,
            "InternalServerError",
            "An error occurred. (injected transient read failure)",
        ));
    }
    let mut world = mock.world();
    world.settle(Instant::now());
    world.grants().authorize(token, op, uri.path())?;
    let parse_body = || -> Result<Value, ArmError> {
        serde_json::from_slice(body).map_err(|e| {
            ArmError::new(
                400,
                "InvalidRequestFormat",
                format!("Cannot parse the request: {e}"),
            )
        })
    };
    let accepted = |a: Accepted| -> Response {
        let status = if a.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut resp = json_response(status, &a.body);
        let url = format!(
            "http://{host}/subscriptions/{}/providers/Microsoft.Network/locations/{}/operations/{}?api-version={version}",
            a.subscription, a.location, a.operation_id
        );
        if let Ok(v) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert("azure-asyncoperation", v);
        }
        resp.headers_mut().insert(
            "retry-after",
            HeaderValue::from(retry_hint(mock, a.remaining)),
        );
        resp
    };
    let limit = mock.config.route_limit;
    match (target, method) {
        (Target::Operation { id }, &Method::GET) => {
            let (status, remaining) = world.operation(id).ok_or_else(|| {
                ArmError::new(
                    404,
                    "OperationNotFound",
                    format!("Operation {id} was not found."),
                )
            })?;
            let mut body = json!({"name": id, "status": status.as_str()});
            if matches!(status, OpStatus::Failed | OpStatus::Canceled) {
                body["error"] = json!({
                    "code": "InternalServerError",
                    "message": "An error occurred while provisioning the resource; the last successful configuration is kept."
                });
            }
            let mut resp = json_response(StatusCode::OK, &body);
            if status == OpStatus::InProgress {
                resp.headers_mut().insert(
                    "retry-after",
                    HeaderValue::from(retry_hint(mock, remaining)),
                );
            }
            Ok(resp)
        }
        (Target::TableList { scope }, &Method::GET) => {
            page(mock, uri, host, &version, world.list_prefix(scope, 1))
        }
        (Target::SubscriptionTableList { subscription }, &Method::GET) => {
            let tables = world.list_prefix(&format!("/subscriptions/{subscription}"), 6);
            let tables = tables
                .into_iter()
                .filter(|t| {
                    t["type"]
                        .as_str()
                        .is_some_and(|ty| eq(ty, "Microsoft.Network/routeTables"))
                })
                .collect();
            page(mock, uri, host, &version, tables)
        }
        (Target::Table { id, .. }, &Method::GET) => world
            .get(id)
            .map(|t| json_response(StatusCode::OK, &t))
            .ok_or_else(|| not_found(id, "Microsoft.Network/routeTables")),
        (Target::Table { id, name }, &Method::PUT) => {
            let body = parse_body()?;
            world
                .put_route_table(
                    id,
                    name,
                    &body,
                    header(headers, "if-match"),
                    header(headers, "if-none-match"),
                    limit,
                )
                .map(accepted)
        }
        (Target::RouteList { table }, &Method::GET) => {
            let t = world
                .get(table)
                .ok_or_else(|| not_found(table, "Microsoft.Network/routeTables"))?;
            let routes = t["properties"]["routes"].clone();
            Ok(json_response(StatusCode::OK, &json!({"value": routes})))
        }
        (Target::Route { table, name }, &Method::GET) => {
            let t = world
                .get(table)
                .ok_or_else(|| not_found(table, "Microsoft.Network/routeTables"))?;
            find_route(&t, name)
                .map(|r| json_response(StatusCode::OK, &r))
                .ok_or_else(|| {
                    ArmError::new(
                        404,
                        "NotFound",
                        format!("Resource {table}/routes/{name} not found."),
                    )
                })
        }
        (Target::Route { table, name }, &Method::PUT) => {
            let body = parse_body()?;
            world.put_route(table, name, &body, limit).map(accepted)
        }
        (Target::Route { table, name }, &Method::DELETE) => {
            match world.delete_route(table, name)? {
                None => Ok(StatusCode::NO_CONTENT.into_response()),
                Some(a) => {
                    let mut resp = accepted(a);
                    *resp.status_mut() = StatusCode::ACCEPTED;
                    *resp.body_mut() = axum::body::Body::empty();
                    resp.headers_mut().remove("content-type");
                    if let Some(op) = resp.headers().get("azure-asyncoperation").cloned() {
                        resp.headers_mut().insert("location", op);
                    }
                    Ok(resp)
                }
            }
        }
        (Target::Nic { id }, &Method::GET) => world
            .get(id)
            .map(|n| json_response(StatusCode::OK, &n))
            .ok_or_else(|| not_found(id, "Microsoft.Network/networkInterfaces")),
        (Target::Nic { id }, &Method::PUT) => {
            let body = parse_body()?;
            world
                .put_nic(
                    token,
                    op,
                    id,
                    &body,
                    header(headers, "if-match"),
                    &mock.linked,
                )
                .map(accepted)
        }
        (Target::Vm { id }, &Method::GET) => world
            .get(id)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(|| not_found(id, "Microsoft.Compute/virtualMachines")),
        (Target::VmssVm { id }, &Method::GET) => world
            .get(id)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(|| {
                not_found(
                    id,
                    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
                )
            }),
        (Target::NicList { scope } | Target::VmList { scope }, &Method::GET) => {
            page(mock, uri, host, &version, world.list_prefix(scope, 1))
        }
        (Target::VmssNicList { vm }, &Method::GET) => {
            if world.get(vm).is_none() {
                return Err(not_found(
                    vm,
                    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"value": world.list_prefix(&format!("{vm}/networkInterfaces"), 1)}),
            ))
        }
        (Target::VmssNic { id }, &Method::GET) => world
            .get(id)
            .map(|n| json_response(StatusCode::OK, &n))
            .ok_or_else(|| not_found(id, "Microsoft.Network/networkInterfaces")),
        (Target::Unknown, _) => Err(ArmError::new(
            404,
            "InvalidResourceType",
            format!("The resource type for '{}' could not be found.", uri.path()),
        )),
        _ => Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The method '{method}' is not allowed for '{}'.", uri.path()),
        )),
    }
}

/// One page of a list: ARM pages every list, `nextLink` carrying the offset in
/// `$skiptoken` (an invalid one is a 400, as ARM answers).
fn page(
    mock: &ArmMock,
    uri: &Uri,
    host: &str,
    version: &str,
    items: Vec<Value>,
) -> Result<Response, ArmError> {
    let from = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "$skiptoken")
        .map(|(_, v)| {
            v.parse::<usize>().map_err(|_| {
                ArmError::new(
                    400,
                    "InvalidSkipToken",
                    format!("The skip token '{v}' is not valid."),
                )
            })
        })
        .transpose()?
        .unwrap_or(0);
    let to = (from + mock.config.list_page_size.max(1)).min(items.len());
    let mut page = json!({"value": items.get(from..to).unwrap_or_default()});
    if to < items.len() {
        page["nextLink"] = json!(format!(
            "http://{host}{}?api-version={version}&$skiptoken={to}",
            uri.path()
        ));
    }
    Ok(json_response(StatusCode::OK, &page))
}

/// `Retry-After` on an accepted write and on a running operation's poll, as ARM sends it:
/// a fixed hint (10 cloud seconds for Microsoft.Network), whatever the operation has left.
/// A client that sleeps the hint before its first poll waits the full 10 s even when the
/// operation takes less; it must not rely on the hint to tell it the time left.
pub const RETRY_HINT_SECS: u64 = 10;

fn retry_hint(_mock: &ArmMock, _remaining: Duration) -> u64 {
    RETRY_HINT_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The identity endpoint issues a token per client id; the request log names each
    /// request by the client its token was issued to (or the raw token), reads and writes
    /// alike, and the mutation log says what each accepted write changed.
    #[tokio::test]
    async fn requests_are_logged_by_the_client_their_token_was_issued_to() {
        let mock = ArmMock::new(super::super::ArmConfig::default()).unwrap();
        let table = mock
            .world()
            .add_route_table("s", "rg", "rt", "westeurope", vec![]);
        let server = mock.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::new();
        let identity = format!("{}{}", server.url(), super::super::IDENTITY_PATH);
        let query = [
            ("api-version", "2019-08-01"),
            ("resource", "https://management.azure.com"),
            ("client_id", "replica-7"),
        ];
        let refused = http.get(&identity).query(&query).send().await.unwrap();
        assert_eq!(refused.status(), 401, "no X-IDENTITY-HEADER");
        let answer: Value = http
            .get(&identity)
            .query(&query)
            .header("x-identity-header", "secret")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["access_token"].as_str().unwrap().to_owned();
        assert!(
            answer["expires_on"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
        assert_eq!(answer["token_type"], "Bearer");
        let url = format!("{}{table}?api-version=2024-05-01", server.url());
        let route = json!({"name": "r1", "properties": {"addressPrefix": "10.0.0.0/24",
            "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.1.0.4"}});
        let body = json!({"location": "westeurope", "properties": {"routes": [route]}});
        let put = http.put(&url).bearer_auth(&token).json(&body);
        assert_eq!(put.send().await.unwrap().status(), 200);
        let get = http.get(&url).bearer_auth("static-token");
        assert_eq!(get.send().await.unwrap().status(), 200);
        let log: Vec<(String, String, bool)> = (mock.requests().into_iter())
            .map(|r| (r.client.clone(), r.action.clone(), r.is_mutating()))
            .collect();
        assert_eq!(
            log,
            [
                (
                    "replica-7".to_owned(),
                    "Microsoft.Network/routeTables/write".to_owned(),
                    true
                ),
                (
                    "static-token".to_owned(),
                    "Microsoft.Network/routeTables/read".to_owned(),
                    false
                ),
            ],
            "the identity endpoint's own calls are not logged"
        );
        let changes = mock.mutations();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].action, "RouteCreated");
        assert!(changes[0].subject.ends_with("/routes/r1"), "{changes:?}");
        assert_eq!(
            changes[0].detail,
            "10.0.0.0/24 -> VirtualAppliance 10.1.0.4"
        );
    }

    #[test]
    fn paths_map_to_arm_operations() {
        let t =
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt");
        assert_eq!(
            t,
            Target::Table {
                id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt"
                    .into(),
                name: "rt".into()
            }
        );
        assert_eq!(
            operation_name(&t, &Method::PUT),
            "Microsoft.Network/routeTables/write"
        );
        let t = parse(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualMachineScaleSets/set/virtualMachines/3/networkInterfaces",
        );
        assert!(matches!(t, Target::VmssNicList { .. }));
        let t = parse(
            "/subscriptions/s/providers/Microsoft.Network/locations/westeurope/operations/abc",
        );
        assert_eq!(t, Target::Operation { id: "abc".into() });
        assert_eq!(parse("/nope"), Target::Unknown);
    }
}
