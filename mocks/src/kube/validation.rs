//! The API server's field validation for what the mock stores, worded as the real one
//! words it (k8s.io/apimachinery `field.Error`, `apierrors.NewInvalid`), so a client sees
//! the same 422 `Invalid` Status with the same `details.causes`:
//!
//! - Events (`pkg/apis/core/validation/events.go`): `legacyValidateEvent` for both APIs,
//!   plus `ValidateEventCreate` / `ValidateEventUpdate`'s strict rules for events.k8s.io/v1.
//!   Field paths are the internal type's (`message`, `involvedObject`, `count`, …) because
//!   the API server validates the internal object, whichever API was called.
//! - Object names (`ValidateObjectMeta` with `NameIsDNSSubdomain`) and Lease specs.

use serde_json::{Value, json};

/// One `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorKind,
    pub field: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Required,
    /// The bad value as Go's `field.Error` prints it (`"quoted"` for strings).
    Invalid(String),
    Forbidden,
    /// The bad value, then the supported values (already quoted).
    NotSupported(String, Vec<String>),
}

impl FieldError {
    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(ErrorKind::Required, field, detail)
    }

    /// `field.Invalid(path, value, detail)` with a string value.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        Self::new(ErrorKind::Invalid(go_quote(value)), field, detail)
    }

    /// `field.Invalid` with a value Go prints as-is (numbers, `0x0`, …).
    pub fn invalid_raw(field: &str, value: &str, detail: &str) -> Self {
        Self::new(ErrorKind::Invalid(value.to_owned()), field, detail)
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(ErrorKind::Forbidden, field, detail)
    }

    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        Self::new(
            ErrorKind::NotSupported(
                go_quote(value),
                supported.iter().map(|s| go_quote(s)).collect(),
            ),
            field,
            "",
        )
    }

    fn new(kind: ErrorKind, field: &str, detail: &str) -> Self {
        FieldError {
            kind,
            field: field.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// `metav1.CauseType`.
    pub fn cause_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Invalid(_) => "FieldValueInvalid",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::NotSupported(..) => "FieldValueNotSupported",
        }
    }

    /// `field.Error.ErrorBody()`.
    pub fn body(&self) -> String {
        let mut s = match &self.kind {
            ErrorKind::Required => "Required value".to_owned(),
            ErrorKind::Forbidden => "Forbidden".to_owned(),
            ErrorKind::Invalid(v) => format!("Invalid value: {v}"),
            ErrorKind::NotSupported(v, supported) => {
                format!(
                    "Unsupported value: {v}: supported values: {}",
                    supported.join(", ")
                )
            }
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Go's `%q` for the strings these messages quote.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as is, several in brackets,
/// duplicates once.
fn aggregate(errs: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `apierrors.NewInvalid(GroupKind{group, kind}, name, errs)` as a Status body.
pub fn invalid_status(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let message = if errs.is_empty() {
        format!("{qualified} {} is invalid", go_quote(name))
    } else {
        format!(
            "{qualified} {} is invalid: {}",
            go_quote(name),
            aggregate(errs)
        )
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.cause_type(), "message": e.body(), "field": e.field}))
        .collect();
    let mut details = json!({"kind": kind, "causes": causes});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": "Invalid",
        "details": details, "code": 422,
    })
}

// ------------------------------------------------------------ names

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `validation.IsDNS1123Subdomain`.
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    if !value.split('.').all(is_dns1123_label) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_owned());
    }
    errs
}

/// `validation.IsQualifiedName`.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_owned());
    }
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    let ok = !b.is_empty()
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'));
    if !ok {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// `ValidateObjectMeta(meta, namespaced, NameIsDNSSubdomain, "metadata")` for the parts
/// a client controls on create: a name (or generateName) that is a DNS subdomain.
pub fn object_meta(obj: &Value) -> Vec<FieldError> {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    let generate = meta["generateName"].as_str().unwrap_or("");
    let mut errs = Vec::new();
    if !generate.is_empty() {
        // Validated as a name with its trailing dash masked.
        let masked = generate
            .strip_suffix('-')
            .map_or(generate.to_owned(), |g| format!("{g}a"));
        for msg in dns1123_subdomain_errors(&masked) {
            errs.push(FieldError::invalid("metadata.generateName", generate, &msg));
        }
    }
    if name.is_empty() && generate.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !name.is_empty() {
        for msg in dns1123_subdomain_errors(name) {
            errs.push(FieldError::invalid("metadata.name", name, &msg));
        }
    }
    errs
}

// ------------------------------------------------------------ Leases

/// `ValidateLeaseSpec` (the parts a Lease holder writes).
pub fn lease_spec(lease: &Value) -> Vec<FieldError> {
    let spec = &lease["spec"];
    let mut errs = Vec::new();
    if let Some(d) = spec["leaseDurationSeconds"].as_i64()
        && d <= 0
    {
        errs.push(FieldError::invalid_raw(
            "spec.leaseDurationSeconds",
            &d.to_string(),
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec["leaseTransitions"].as_i64()
        && t < 0
    {
        errs.push(FieldError::invalid_raw(
            "spec.leaseTransitions",
            &t.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    errs
}

// ------------------------------------------------------------ Events

/// The limits in `pkg/apis/core/validation/events.go`; Go's `len` counts bytes.
pub const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
pub const ACTION_LENGTH_LIMIT: usize = 128;
pub const REASON_LENGTH_LIMIT: usize = 128;
pub const NOTE_LENGTH_LIMIT: usize = 1024;

/// Which API an Event came through: core/v1 gets only the legacy checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventApi {
    CoreV1,
    EventsV1,
}

/// An Event as the internal `core.Event` sees it, whichever API sent it.
struct Internal<'a> {
    namespace: &'a str,
    involved: &'a Value,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    action: &'a str,
    reason: &'a str,
    message: &'a str,
    event_time: Option<&'a str>,
    type_: &'a str,
    first_timestamp: &'a Value,
    last_timestamp: &'a Value,
    count: i64,
    source: &'a Value,
    series: &'a Value,
    related: &'a Value,
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn is_set(v: &Value) -> bool {
    !(v.is_null() || v.as_str() == Some(""))
}

impl<'a> Internal<'a> {
    fn of(ev: &'a Value, ns: &'a str, api: EventApi) -> Self {
        let (involved, controller, message, first, last, count, source) = match api {
            EventApi::EventsV1 => (
                "regarding",
                "reportingController",
                "note",
                "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp",
                "deprecatedCount",
                "deprecatedSource",
            ),
            EventApi::CoreV1 => (
                "involvedObject",
                "reportingComponent",
                "message",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "source",
            ),
        };
        Internal {
            namespace: ns,
            involved: &ev[involved],
            reporting_controller: s(ev, controller),
            reporting_instance: s(ev, "reportingInstance"),
            action: s(ev, "action"),
            reason: s(ev, "reason"),
            message: s(ev, message),
            event_time: ev["eventTime"].as_str().filter(|t| !t.is_empty()),
            type_: s(ev, "type"),
            first_timestamp: &ev[first],
            last_timestamp: &ev[last],
            count: ev[count].as_i64().unwrap_or(0),
            source: &ev[source],
            series: &ev["series"],
            related: &ev["related"],
        }
    }

    /// `legacyValidateEvent`.
    fn legacy(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let involved_ns = s(self.involved, "namespace");
        let ns_mismatch = || {
            FieldError::invalid(
                "involvedObject.namespace",
                involved_ns,
                "does not match event.namespace",
            )
        };
        match self.event_time {
            None => {
                if involved_ns.is_empty() {
                    if !self.namespace.is_empty() && self.namespace != "default" {
                        errs.push(ns_mismatch());
                    }
                } else if self.namespace != involved_ns {
                    errs.push(ns_mismatch());
                }
            }
            Some(_) => {
                if involved_ns.is_empty()
                    && self.namespace != "default"
                    && self.namespace != "kube-system"
                {
                    errs.push(ns_mismatch());
                }
                if self.reporting_controller.is_empty() {
                    errs.push(FieldError::required("reportingController", ""));
                }
                for msg in qualified_name_errors(self.reporting_controller) {
                    errs.push(FieldError::invalid(
                        "reportingController",
                        self.reporting_controller,
                        &msg,
                    ));
                }
                let too_long = |field: &str, limit: usize| {
                    FieldError::invalid(field, "", &format!("can have at most {limit} characters"))
                };
                if self.reporting_instance.is_empty() {
                    errs.push(FieldError::required("reportingInstance", ""));
                }
                if self.reporting_instance.len() > REPORTING_INSTANCE_LENGTH_LIMIT {
                    errs.push(too_long(
                        "reportingInstance",
                        REPORTING_INSTANCE_LENGTH_LIMIT,
                    ));
                }
                if self.action.is_empty() {
                    errs.push(FieldError::required("action", ""));
                }
                if self.action.len() > ACTION_LENGTH_LIMIT {
                    errs.push(too_long("action", ACTION_LENGTH_LIMIT));
                }
                if self.reason.is_empty() {
                    errs.push(FieldError::required("reason", ""));
                }
                if self.reason.len() > REASON_LENGTH_LIMIT {
                    errs.push(too_long("reason", REASON_LENGTH_LIMIT));
                }
                if self.message.len() > NOTE_LENGTH_LIMIT {
                    errs.push(too_long("message", NOTE_LENGTH_LIMIT));
                }
            }
        }
        for msg in dns1123_subdomain_errors(self.namespace) {
            errs.push(FieldError::invalid("namespace", self.namespace, &msg));
        }
        errs
    }

    /// `validateV1EventSeries`.
    fn series(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.series.is_object() {
            if self.series["count"].as_i64().unwrap_or(0) < 2 {
                errs.push(FieldError::invalid(
                    "series.count",
                    "",
                    "should be at least 2",
                ));
            }
            if !is_set(&self.series["lastObservedTime"]) {
                errs.push(FieldError::required("series.lastObservedTime", ""));
            }
        }
        errs
    }
}

/// `ValidateEventCreate`: the legacy checks, and for events.k8s.io/v1 the strict ones.
pub fn event_create(ev: &Value, ns: &str, api: EventApi) -> Vec<FieldError> {
    let e = Internal::of(ev, ns, api);
    let mut errs = e.legacy();
    if api == EventApi::CoreV1 {
        return errs;
    }
    errs.extend(object_meta(ev));
    errs.extend(e.series());
    if e.event_time.is_none() {
        errs.push(FieldError::required("eventTime", ""));
    }
    if e.type_ != "Normal" && e.type_ != "Warning" {
        errs.push(FieldError::invalid(
            "type",
            "",
            &format!("has invalid value: {}", e.type_),
        ));
    }
    let unset = "needs to be unset";
    if is_set(e.first_timestamp) {
        errs.push(FieldError::invalid("firstTimestamp", "", unset));
    }
    if is_set(e.last_timestamp) {
        errs.push(FieldError::invalid("lastTimestamp", "", unset));
    }
    if e.count != 0 {
        errs.push(FieldError::invalid("count", "", unset));
    }
    if !s(e.source, "component").is_empty() || !s(e.source, "host").is_empty() {
        errs.push(FieldError::invalid("source", "", unset));
    }
    errs
}

/// A timestamp compared as the API server's decoded `metav1.MicroTime` / `Time`.
fn same_time(a: &Value, b: &Value) -> bool {
    let parse = |v: &Value| v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => is_set(a) == is_set(b) && (!is_set(a) || a == b),
    }
}

/// `ValidateEventUpdate` of `new` (the stored Event after the patch) against `old`.
pub fn event_update(new: &Value, old: &Value, ns: &str, api: EventApi) -> Vec<FieldError> {
    let n = Internal::of(new, ns, api);
    let mut errs = n.legacy();
    if api == EventApi::CoreV1 {
        return errs;
    }
    let o = Internal::of(old, ns, api);
    if n.series != o.series {
        errs.extend(n.series());
    }
    let immutable =
        |field: &str, shown: String| FieldError::invalid_raw(field, &shown, "field is immutable");
    let quoted = |v: &str| go_quote(v);
    if n.involved != o.involved {
        errs.push(immutable("involvedObject", n.involved.to_string()));
    }
    if n.reason != o.reason {
        errs.push(immutable("reason", quoted(n.reason)));
    }
    if n.message != o.message {
        errs.push(immutable("message", quoted(n.message)));
    }
    if n.source != o.source {
        errs.push(immutable("source", n.source.to_string()));
    }
    if !same_time(n.first_timestamp, o.first_timestamp) {
        errs.push(immutable("firstTimestamp", n.first_timestamp.to_string()));
    }
    if !same_time(n.last_timestamp, o.last_timestamp) {
        errs.push(immutable("lastTimestamp", n.last_timestamp.to_string()));
    }
    if n.count != o.count {
        errs.push(immutable("count", n.count.to_string()));
    }
    if n.type_ != o.type_ {
        errs.push(immutable("type", quoted(n.type_)));
    }
    if !same_time(&new["eventTime"], &old["eventTime"]) {
        errs.push(immutable("eventTime", new["eventTime"].to_string()));
    }
    if n.action != o.action {
        errs.push(immutable("action", quoted(n.action)));
    }
    if n.related != o.related {
        errs.push(immutable("related", n.related.to_string()));
    }
    if n.reporting_controller != o.reporting_controller {
        errs.push(immutable(
            "reportingController",
            quoted(n.reporting_controller),
        ));
    }
    if n.reporting_instance != o.reporting_instance {
        errs.push(immutable("reportingInstance", quoted(n.reporting_instance)));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_messages_as_go_prints_them() {
        assert!(dns1123_subdomain_errors("a.b-c").is_empty());
        assert_eq!(dns1123_subdomain_errors("A_b").len(), 1);
        assert!(qualified_name_errors("cni-cloud-controller").is_empty());
        assert!(qualified_name_errors("example.com/My_Name").is_empty());
        assert_eq!(qualified_name_errors("").len(), 2);
        let e = FieldError::invalid("message", "", "can have at most 1024 characters");
        assert_eq!(
            e.to_string(),
            "message: Invalid value: \"\": can have at most 1024 characters"
        );
        let body = invalid_status("", "Event", "x", &[e.clone(), e]);
        assert_eq!(
            body["message"],
            "Event \"x\" is invalid: message: Invalid value: \"\": can have at most 1024 characters"
        );
        assert_eq!(body["details"]["causes"].as_array().unwrap().len(), 2);
        assert!(body["details"].get("group").is_none());
    }
}
