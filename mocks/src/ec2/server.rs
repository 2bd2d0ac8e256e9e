//! HTTP edge of the mock EC2: parse the Query request, apply pacing/fault knobs, dispatch.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ipnet::IpNet;
use rand::Rng;

use super::state::{ApiError, RouteWrite, Target, visible_after};
use super::{ApiClass, Ec2Mock, Mutation, xml};

pub fn router(mock: Ec2Mock) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/_mock/stats", get(stats))
        .route("/_mock/state", get(state))
        .with_state(mock)
}

async fn stats(State(mock): State<Ec2Mock>) -> Response {
    axum::Json(mock.stats().to_json()).into_response()
}

async fn state(State(mock): State<Ec2Mock>) -> Response {
    axum::Json(mock.state_json()).into_response()
}

/// The decoded form parameters of one request.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `Prefix.1`, `Prefix.2`, … in index order.
    fn list(&self, prefix: &str) -> Vec<String> {
        let mut items: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let idx = k.strip_prefix(prefix)?.strip_prefix('.')?.parse().ok()?;
                Some((idx, v.clone()))
            })
            .collect();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Filter.N.Name` / `Filter.N.Value.M` as name → values.
    fn filters(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for n in 1..=50 {
            let Some(name) = self.get(&format!("Filter.{n}.Name")) else {
                continue;
            };
            out.insert(name.to_owned(), self.list(&format!("Filter.{n}.Value")));
        }
        out
    }

    fn required(&self, key: &'static str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| {
            ApiError::client(
                "MissingParameter",
                format!("The request must contain the parameter {key}"),
            )
        })
    }
}

fn class_of(action: &str, params: &Params) -> ApiClass {
    match action {
        "CreateRoute" | "ReplaceRoute" | "DeleteRoute" | "ModifyNetworkInterfaceAttribute" => {
            ApiClass::Mutating
        }
        "DescribeInstances"
            if params.list("InstanceId").is_empty() && params.filters().is_empty() =>
        {
            ApiClass::UnfilteredDescribeInstances
        }
        _ => ApiClass::NonMutating,
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn xml_response(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).expect("valid status"),
        [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
        body,
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    xml_response(e.status, xml::error(e.code, &e.message, &request_id()))
}

/// A response whose body fails mid-stream: the client sees the connection drop.
fn dropped_connection() -> Response {
    let stream = futures::stream::iter(vec![Err::<Bytes, std::io::Error>(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "injected connection drop",
    ))]);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/xml;charset=UTF-8")
        .body(Body::from_stream(stream))
        .expect("valid response")
}

enum Fault {
    Internal,
    Unavailable,
    /// Apply the call, then drop the connection before the answer.
    DropAfterApply,
}

async fn handle(State(mock): State<Ec2Mock>, headers: HeaderMap, body: Bytes) -> Response {
    let shared = &mock.shared;
    let params = Params(form_urlencoded::parse(&body).into_owned().collect());
    let action = params.get("Action").unwrap_or("").to_owned();
    shared
        .requests
        .lock()
        .expect("requests lock")
        .push(super::Request {
            at: shared.started.elapsed().as_secs_f64(),
            client: access_key_of(&headers),
            action: action.clone(),
        });
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    let stat_action = if action.is_empty() {
        "(none)".to_owned()
    } else {
        action.clone()
    };
    if !headers.contains_key(header::AUTHORIZATION) {
        shared.stats.record(&stat_action, "auth_failure");
        return xml_response(
            401,
            xml::error(
                "AuthFailure",
                "AWS was not able to validate the provided access credentials",
                &request_id(),
            ),
        );
    }
    if params.get("Version") != Some("2016-11-15") {
        shared.stats.record(&stat_action, "client_error");
        return error_response(&ApiError::client(
            "InvalidParameterValue",
            "Version must be 2016-11-15",
        ));
    }
    if shared.config.throttle
        && let Err(_wait) = shared.bucket(class_of(&action, &params)).try_take()
    {
        shared.stats.record(&stat_action, "throttled");
        return xml_response(
            503,
            xml::error(
                "RequestLimitExceeded",
                "Request limit exceeded.",
                &request_id(),
            ),
        );
    }
    let read_faults = f64::from_bits(shared.read_fault_rate.load(Ordering::Relaxed));
    let fault = {
        let mut rng = rand::rng();
        if read_faults > 0.0
            && matches!(action.as_str(), "DescribeInstances" | "DescribeRouteTables")
            && rng.random_bool(read_faults)
        {
            Some(Fault::Unavailable)
        } else if shared.config.fault_rate > 0.0 && rng.random_bool(shared.config.fault_rate) {
            Some(match rng.random_range(0..3) {
                0 => Fault::Internal,
                1 => Fault::Unavailable,
                _ => Fault::DropAfterApply,
            })
        } else {
            None
        }
    };
    match fault {
        Some(Fault::Internal) => {
            shared.faults_injected.fetch_add(1, Ordering::Relaxed);
            shared.stats.record(&stat_action, "fault");
            return xml_response(
                500,
                xml::error(
                    "InternalError",
                    "An internal error has occurred",
                    &request_id(),
                ),
            );
        }
        Some(Fault::Unavailable) => {
            shared.faults_injected.fetch_add(1, Ordering::Relaxed);
            shared.stats.record(&stat_action, "fault");
            return xml_response(
                503,
                xml::error(
                    "Unavailable",
                    "The server is overloaded and can't handle the request.",
                    &request_id(),
                ),
            );
        }
        _ => {}
    }
    let result = dispatch(&mock, &action, &params);
    if matches!(fault, Some(Fault::DropAfterApply)) {
        shared.faults_injected.fetch_add(1, Ordering::Relaxed);
        shared.stats.record(&stat_action, "fault");
        return dropped_connection();
    }
    match result {
        Ok(body) => {
            shared.stats.record(&stat_action, "ok");
            xml_response(200, body)
        }
        Err(e) => {
            let outcome = match e.code {
                "RouteLimitExceeded" => "quota",
                _ if e.status >= 500 => "server_error",
                _ => "client_error",
            };
            shared.stats.record(&stat_action, outcome);
            error_response(&e)
        }
    }
}

fn dispatch(mock: &Ec2Mock, action: &str, params: &Params) -> Result<String, ApiError> {
    match action {
        "DescribeRouteTables" => describe_route_tables(mock, params),
        "DescribeInstances" => describe_instances(mock, params),
        "CreateRoute" => {
            let w = route_write(params, true)?;
            let lag = visible_after(mock.shared.config.describe_lag);
            let limit = mock.shared.config.route_limit;
            let detail = format!("{:?}", w.target);
            let (table, dest) = (w.table.clone(), w.destination);
            mock.with_world(|world| world.create_route(w, limit, lag))?;
            log_mutation(mock, "CreateRoute", &table, &format!("{dest} -> {detail}"));
            Ok(xml::boolean("CreateRoute", &request_id()))
        }
        "ReplaceRoute" => {
            let w = route_write(params, true)?;
            let detail = format!("{:?}", w.target);
            let (table, dest) = (w.table.clone(), w.destination);
            mock.with_world(|world| world.replace_route(w))?;
            log_mutation(mock, "ReplaceRoute", &table, &format!("{dest} -> {detail}"));
            Ok(xml::boolean("ReplaceRoute", &request_id()))
        }
        "DeleteRoute" => {
            let w = route_write(params, false)?;
            mock.with_world(|world| world.delete_route(&w.table, w.destination))?;
            log_mutation(mock, "DeleteRoute", &w.table, &w.destination.to_string());
            Ok(xml::boolean("DeleteRoute", &request_id()))
        }
        "ModifyNetworkInterfaceAttribute" => {
            let eni = params.required("NetworkInterfaceId")?.to_owned();
            let value = params.get("SourceDestCheck.Value").ok_or_else(|| {
                ApiError::client(
                    "InvalidParameterCombination",
                    "No attributes specified to modify (this mock supports SourceDestCheck)",
                )
            })?;
            let value = match value {
                "true" => true,
                "false" => false,
                other => {
                    return Err(ApiError::client(
                        "InvalidParameterValue",
                        format!("Invalid value '{other}' for SourceDestCheck"),
                    ));
                }
            };
            mock.with_world(|world| world.set_source_dest_check(&eni, value))?;
            log_mutation(
                mock,
                "ModifyNetworkInterfaceAttribute",
                &eni,
                &format!("SourceDestCheck={value}"),
            );
            Ok(xml::boolean(
                "ModifyNetworkInterfaceAttribute",
                &request_id(),
            ))
        }
        "" => Err(ApiError::client(
            "MissingAction",
            "The request must contain the parameter Action",
        )),
        other => Err(ApiError::client(
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/ec2/aws4_request, …` → `AKID`.
fn access_key_of(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

fn log_mutation(mock: &Ec2Mock, action: &'static str, subject: &str, detail: &str) {
    let at = mock.shared.started.elapsed().as_secs_f64();
    mock.shared
        .mutations
        .lock()
        .expect("mutations lock")
        .push(Mutation {
            at,
            action,
            subject: subject.to_owned(),
            detail: detail.to_owned(),
        });
}

fn route_write(params: &Params, needs_target: bool) -> Result<RouteWrite, ApiError> {
    let table = params.required("RouteTableId")?.to_owned();
    let destination = match (
        params.get("DestinationCidrBlock"),
        params.get("DestinationIpv6CidrBlock"),
    ) {
        (Some(v4), None) => parse_cidr(v4, false)?,
        (None, Some(v6)) => parse_cidr(v6, true)?,
        _ => {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                "Exactly one of DestinationCidrBlock and DestinationIpv6CidrBlock must be given",
            ));
        }
    };
    let targets: Vec<Target> = [
        params
            .get("NetworkInterfaceId")
            .map(|v| Target::NetworkInterface(v.to_owned())),
        params
            .get("InstanceId")
            .map(|v| Target::Instance(v.to_owned())),
        params
            .get("GatewayId")
            .map(|v| Target::Gateway(v.to_owned())),
        params
            .get("NatGatewayId")
            .map(|v| Target::NatGateway(v.to_owned())),
        params
            .get("VpcPeeringConnectionId")
            .map(|v| Target::VpcPeeringConnection(v.to_owned())),
        params
            .get("TransitGatewayId")
            .map(|v| Target::TransitGateway(v.to_owned())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let target = match (needs_target, targets.len()) {
        (false, _) => Target::Local,
        (true, 1) => targets.into_iter().next().expect("one target"),
        (true, 0) => {
            return Err(ApiError::client(
                "MissingParameter",
                "The request must contain exactly one route target",
            ));
        }
        (true, _) => {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                "More than one target specified for the route",
            ));
        }
    };
    Ok(RouteWrite {
        table,
        destination,
        target,
    })
}

fn parse_cidr(value: &str, v6: bool) -> Result<IpNet, ApiError> {
    let net: IpNet = value.parse().map_err(|_| {
        ApiError::client("InvalidParameterValue", format!("Value ({value}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."))
    })?;
    if matches!(net, IpNet::V6(_)) != v6 {
        return Err(ApiError::client(
            "InvalidParameterValue",
            format!(
                "Value ({value}) is not a valid {} CIDR block",
                if v6 { "IPv6" } else { "IPv4" }
            ),
        ));
    }
    if net.trunc() != net {
        return Err(ApiError::client(
            "InvalidParameterValue",
            format!(
                "Value ({value}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."
            ),
        ));
    }
    Ok(net)
}

/// Page through `items` with EC2's MaxResults / NextToken (an opaque offset here).
fn page<T>(
    items: Vec<T>,
    params: &Params,
    max_cap: usize,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start: usize = match params.get("NextToken") {
        Some(t) => t.parse().map_err(|_| {
            ApiError::client("InvalidNextToken", format!("The token '{t}' is invalid"))
        })?,
        None => 0,
    };
    let max = match params.get("MaxResults") {
        Some(m) => {
            let m: usize = m.parse().map_err(|_| {
                ApiError::client("InvalidParameterValue", format!("Invalid MaxResults '{m}'"))
            })?;
            if !(5..=max_cap).contains(&m) {
                return Err(ApiError::client(
                    "InvalidParameterValue",
                    format!(
                        "Value ( {m} ) for parameter maxResults is invalid. Expecting a value between 5 and {max_cap}."
                    ),
                ));
            }
            m
        }
        None => usize::MAX,
    };
    let total = items.len();
    let end = start.saturating_add(max).min(total);
    let next = (end < total).then(|| end.to_string());
    Ok((
        items
            .into_iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect(),
        next,
    ))
}

fn tag_match(tags: &BTreeMap<String, String>, name: &str, values: &[String]) -> Option<bool> {
    if name == "tag-key" {
        return Some(values.iter().any(|v| tags.contains_key(v)));
    }
    let key = name.strip_prefix("tag:")?;
    Some(tags.get(key).is_some_and(|v| values.iter().any(|x| x == v)))
}

fn describe_route_tables(mock: &Ec2Mock, params: &Params) -> Result<String, ApiError> {
    let ids = params.list("RouteTableId");
    let filters = params.filters();
    let now = Instant::now();
    mock.with_world(|world| {
        for id in &ids {
            if !world.tables.contains_key(id) {
                return Err(ApiError::client(
                    "InvalidRouteTableID.NotFound",
                    format!("The routeTable ID '{id}' does not exist"),
                ));
            }
        }
        let mut selected = Vec::new();
        for t in world.tables.values() {
            if !ids.is_empty() && !ids.contains(&t.id) {
                continue;
            }
            let mut keep = true;
            for (name, values) in &filters {
                let ok = match name.as_str() {
                    "route-table-id" => values.contains(&t.id),
                    "vpc-id" => values.contains(&t.vpc_id),
                    other => tag_match(&t.tags, other, values).ok_or_else(|| {
                        ApiError::client(
                            "InvalidParameterValue",
                            format!("The filter '{other}' is invalid"),
                        )
                    })?,
                };
                keep &= ok;
            }
            if keep {
                selected.push(t);
            }
        }
        let (pageful, next) = page(selected, params, 100)?;
        let with_routes: Vec<_> = pageful
            .into_iter()
            .map(|t| (t, world.visible_routes(t, now)))
            .collect();
        Ok(xml::describe_route_tables(
            &with_routes,
            next.as_deref(),
            &request_id(),
        ))
    })
}

fn describe_instances(mock: &Ec2Mock, params: &Params) -> Result<String, ApiError> {
    let ids = params.list("InstanceId");
    let filters = params.filters();
    mock.with_world(|world| {
        for id in &ids {
            if !world.instances.contains_key(id) {
                return Err(ApiError::client(
                    "InvalidInstanceID.NotFound",
                    format!("The instance ID '{id}' does not exist"),
                ));
            }
        }
        let mut selected = Vec::new();
        for inst in world.instances.values() {
            if !ids.is_empty() && !ids.contains(&inst.id) {
                continue;
            }
            let mut keep = true;
            for (name, values) in &filters {
                let ok = match name.as_str() {
                    "instance-id" => values.contains(&inst.id),
                    "instance-state-name" => values.iter().any(|v| {
                        v == if inst.terminated {
                            "terminated"
                        } else {
                            "running"
                        }
                    }),
                    "network-interface.network-interface-id" => inst
                        .network_interfaces
                        .iter()
                        .any(|n| values.contains(&n.id)),
                    other => tag_match(&inst.tags, other, values).ok_or_else(|| {
                        ApiError::client(
                            "InvalidParameterValue",
                            format!("The filter '{other}' is invalid"),
                        )
                    })?,
                };
                keep &= ok;
            }
            if keep {
                selected.push(inst);
            }
        }
        if !ids.is_empty() && params.get("MaxResults").is_some() {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        let (pageful, next) = page(selected, params, 1000)?;
        Ok(xml::describe_instances(
            &pageful,
            next.as_deref(),
            &request_id(),
        ))
    })
}
