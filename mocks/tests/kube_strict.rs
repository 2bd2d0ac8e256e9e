//! The mock Kubernetes API rejects what the real kube-apiserver rejects, with the real
//! Status codes and bodies, so a client can't pass against the mock and fail on a cluster:
//! Leases allow no unconditional update, events.k8s.io/v1 validation, a strategic-merge
//! list item without its merge key, list pagination (`limit` / `continue`), watches that
//! start with the current state, and bookmarks.

mod kube_support;

use std::time::Duration;

use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::kube::KubeMockConfig;
use kube_support::{http, start};
use serde_json::{Value, json};

const ADMIN: &str = KubeMockConfig::ADMIN_TOKEN;

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn causes(status: &Value) -> Vec<(String, String)> {
    status["details"]["causes"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- Leases

#[tokio::test]
async fn lease_update_without_resource_version_is_invalid_and_a_stale_one_conflicts() {
    let (_mock, server) = start().await;
    let url = format!(
        "{}/apis/coordination.k8s.io/v1/namespaces/cni-cloud/leases",
        server.url()
    );
    let (code, created) = send(
        http()
            .post(&url)
            .bearer_auth(ADMIN)
            .json(&json!({"metadata": {"name": "cni-cloud-controller"},
                          "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let one = format!("{url}/cni-cloud-controller");

    // No resourceVersion: Leases allow no unconditional update (the real apiserver's
    // generic registry, AllowUnconditionalUpdate() == false).
    let mut body = created.clone();
    body["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    body["spec"]["holderIdentity"] = json!("b");
    let (code, status) = send(http().put(&one).bearer_auth(ADMIN).json(&body)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["code"], 422);
    assert_eq!(
        status["message"],
        "leases.coordination.k8s.io \"cni-cloud-controller\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
    assert_eq!(status["details"]["group"], "coordination.k8s.io");
    assert_eq!(status["details"]["kind"], "leases");
    assert_eq!(status["details"]["name"], "cni-cloud-controller");
    assert_eq!(
        causes(&status),
        [(
            "metadata.resourceVersion".into(),
            "FieldValueInvalid".into()
        )]
    );
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Invalid value: 0x0: must be specified for an update"
    );
    // An empty string is the same as none.
    body["metadata"]["resourceVersion"] = json!("");
    let (code, _) = send(http().put(&one).bearer_auth(ADMIN).json(&body)).await;
    assert_eq!(code, 422);

    // The current resourceVersion: accepted. Then the old one again: 409 Conflict.
    let mut good = created.clone();
    good["spec"]["holderIdentity"] = json!("b");
    let (code, updated) = send(http().put(&one).bearer_auth(ADMIN).json(&good)).await;
    assert_eq!(code, 200, "{updated}");
    let (code, status) = send(http().put(&one).bearer_auth(ADMIN).json(&good)).await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
}

// ---------------------------------------------------------------- Events

fn event(name: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2026-01-02T03:04:05.123456Z",
        "reportingController": "cni-cloud-controller",
        "reportingInstance": "cni-cloud-controller-abc",
        "action": "CreateRoute", "reason": "RouteCreated", "type": "Warning",
        "note": "route created",
        "regarding": {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u1"},
    })
}

async fn post_event(server: &RunningServer, ns: &str, ev: &Value) -> (u16, Value) {
    send(
        http()
            .post(format!(
                "{}/apis/events.k8s.io/v1/namespaces/{ns}/events",
                server.url()
            ))
            .bearer_auth(ADMIN)
            .json(ev),
    )
    .await
}

#[tokio::test]
async fn event_note_is_at_most_1024_bytes() {
    let (mock, server) = start().await;
    let mut ok = event("n1.1");
    ok["note"] = json!("x".repeat(1024));
    let (code, body) = post_event(&server, "default", &ok).await;
    assert_eq!(code, 201, "{body}");

    let mut long = event("n1.2");
    long["note"] = json!("x".repeat(1025));
    let (code, status) = post_event(&server, "default", &long).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "Event \"n1.2\" is invalid: message: Invalid value: \"\": can have at most 1024 characters"
    );
    assert_eq!(status["details"]["kind"], "Event");
    assert_eq!(status["details"]["name"], "n1.2");
    assert_eq!(
        causes(&status),
        [("message".into(), "FieldValueInvalid".into())]
    );

    // The API server counts bytes (Go's len), not characters: 600 'é' are 1200 bytes.
    let mut wide = event("n1.3");
    wide["note"] = json!("é".repeat(600));
    let (code, status) = post_event(&server, "default", &wide).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(mock.events().len(), 1, "refused events are not stored");
}

#[tokio::test]
async fn event_without_reporting_fields_is_invalid_with_every_cause() {
    let (_mock, server) = start().await;
    let mut ev = event("n1.1");
    for field in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        ev.as_object_mut().unwrap().remove(field);
    }
    let (code, status) = post_event(&server, "default", &ev).await;
    assert_eq!(code, 422, "{status}");
    // An empty reportingController also fails IsQualifiedName, twice, as on a cluster.
    assert!(
        status["message"].as_str().unwrap().starts_with(
            "Event \"n1.1\" is invalid: [reportingController: Required value, reportingController: Invalid value: \"\": name part must be non-empty, reportingController: Invalid value: \"\": name part must consist of alphanumeric characters"
        ),
        "{status}"
    );
    assert!(
        status["message"].as_str().unwrap().ends_with(
            ", reportingInstance: Required value, action: Required value, reason: Required value]"
        ),
        "{status}"
    );
    assert_eq!(
        causes(&status),
        [
            ("reportingController".into(), "FieldValueRequired".into()),
            ("reportingController".into(), "FieldValueInvalid".into()),
            ("reportingController".into(), "FieldValueInvalid".into()),
            ("reportingInstance".into(), "FieldValueRequired".into()),
            ("action".into(), "FieldValueRequired".into()),
            ("reason".into(), "FieldValueRequired".into()),
        ]
    );

    // No eventTime and no type: events.k8s.io/v1 requires both.
    let mut ev = event("n1.2");
    ev.as_object_mut().unwrap().remove("eventTime");
    ev.as_object_mut().unwrap().remove("type");
    let (code, status) = post_event(&server, "default", &ev).await;
    assert_eq!(code, 422, "{status}");
    let fields: Vec<String> = causes(&status).into_iter().map(|c| c.0).collect();
    assert_eq!(fields, ["eventTime", "type"], "{status}");

    // Neither name nor generateName.
    let mut ev = event("x");
    ev["metadata"] = json!({});
    let (code, status) = post_event(&server, "default", &ev).await;
    assert_eq!(code, 422, "{status}");
    assert!(
        causes(&status).contains(&("metadata.name".into(), "FieldValueRequired".into())),
        "{status}"
    );
}

#[tokio::test]
async fn event_action_reason_and_instance_are_at_most_128_bytes() {
    let (_mock, server) = start().await;
    let mut ev = event("n1.1");
    ev["action"] = json!("a".repeat(129));
    ev["reason"] = json!("r".repeat(129));
    ev["reportingInstance"] = json!("i".repeat(129));
    let (code, status) = post_event(&server, "default", &ev).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [
            ("reportingInstance".into(), "FieldValueInvalid".into()),
            ("action".into(), "FieldValueInvalid".into()),
            ("reason".into(), "FieldValueInvalid".into()),
        ]
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("action: Invalid value: \"\": can have at most 128 characters"),
        "{status}"
    );
    let mut ev = event("n1.2");
    ev["action"] = json!("a".repeat(128));
    ev["reason"] = json!("r".repeat(128));
    let (code, body) = post_event(&server, "default", &ev).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn event_type_deprecated_fields_controller_name_and_namespace_are_checked() {
    let (_mock, server) = start().await;
    let mut ev = event("n1.1");
    ev["type"] = json!("Bogus");
    ev["deprecatedCount"] = json!(3);
    ev["deprecatedSource"] = json!({"component": "x"});
    ev["reportingController"] = json!("not a qualified name!");
    let (code, status) = post_event(&server, "default", &ev).await;
    assert_eq!(code, 422, "{status}");
    let fields: Vec<String> = causes(&status).into_iter().map(|c| c.0).collect();
    assert_eq!(
        fields,
        ["reportingController", "type", "count", "source"],
        "{status}"
    );

    // A cluster-scoped object's Event (regarding has no namespace) belongs in "default"
    // or "kube-system".
    let (code, status) = post_event(&server, "cni-cloud", &event("n1.2")).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Event \"n1.2\" is invalid: involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
    );
    let (code, _) = post_event(&server, "kube-system", &event("n1.3")).await;
    assert_eq!(code, 201);
    // A namespaced object's Event: in that namespace.
    let mut ev = event("lease.1");
    ev["regarding"] = json!({"kind": "Lease", "namespace": "cni-cloud", "name": "l"});
    let (code, body) = post_event(&server, "cni-cloud", &ev).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn event_patch_keeps_immutable_fields_and_validates_the_series() {
    let (_mock, server) = start().await;
    let ev = event("n1.1");
    let (code, _) = post_event(&server, "default", &ev).await;
    assert_eq!(code, 201);
    let url = format!(
        "{}/apis/events.k8s.io/v1/namespaces/default/events/n1.1",
        server.url()
    );
    let patch = |body: Value| {
        http()
            .patch(&url)
            .bearer_auth(ADMIN)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
    };
    // What kube-runtime's Recorder sends for a repeat: the whole Event plus a series.
    let mut repeat = ev.clone();
    repeat["series"] = json!({"count": 2, "lastObservedTime": "2026-01-02T03:05:00.000000Z"});
    let (code, body) = send(patch(repeat)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["series"]["count"], 2);

    let (code, status) = send(patch(json!({"note": "something else"}))).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [("message".into(), "FieldValueInvalid".into())]
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable"),
        "{status}"
    );
    let (code, status) = send(patch(
        json!({"series": {"count": 1, "lastObservedTime": null}}),
    ))
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [
            ("series.count".into(), "FieldValueInvalid".into()),
            (
                "series.lastObservedTime".into(),
                "FieldValueRequired".into()
            ),
        ]
    );
}

#[tokio::test]
async fn core_v1_event_with_event_time_gets_the_legacy_checks() {
    let (_mock, server) = start().await;
    let url = format!("{}/api/v1/namespaces/default/events", server.url());
    let ev = json!({"metadata": {"name": "n1.1"},
        "involvedObject": {"kind": "Node", "name": "n1"},
        "eventTime": "2026-01-02T03:04:05.000000Z", "reason": "R", "action": "A",
        "reportingComponent": "cni-cloud-controller", "reportingInstance": "i",
        "type": "Warning", "message": "m".repeat(1025)});
    let (code, status) = send(http().post(&url).bearer_auth(ADMIN).json(&ev)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [("message".into(), "FieldValueInvalid".into())]
    );
    // Without eventTime core/v1 checks only the namespace.
    let old = json!({"metadata": {"name": "n1.2"}, "involvedObject": {"kind": "Node", "name": "n1"},
                     "reason": "R", "message": "m".repeat(2000)});
    let (code, body) = send(http().post(&url).bearer_auth(ADMIN).json(&old)).await;
    assert_eq!(code, 201, "{body}");
}

// ---------------------------------------------------------------- strategic merge

#[tokio::test]
async fn strategic_merge_list_item_without_merge_key_is_refused_like_the_apiserver() {
    let (mock, server) = start().await;
    mock.upsert_node(json!({"metadata": {"name": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
    let before = mock.node("n1").unwrap();
    let url = format!("{}/api/v1/nodes/n1/status", server.url());
    let patch_status = |ctype: &'static str, patch: &Value| {
        send(
            http()
                .patch(&url)
                .bearer_auth(ADMIN)
                .header("content-type", ctype)
                .body(patch.to_string()),
        )
    };
    const SMP: &str = "application/strategic-merge-patch+json";
    let patch = json!({"status": {"conditions": [{"status": "False", "reason": "RouteCreated"}]}});
    let (code, status) = patch_status(SMP, &patch).await;
    // The apiserver passes strategicpatch's ErrNoMergeKey through as a plain error: 500
    // with no reason, the message as Go prints the map.
    assert_eq!(code, 500, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert!(status.get("reason").is_none_or(|r| r == ""), "{status}");
    assert_eq!(
        status["message"],
        "map: map[reason:RouteCreated status:False] does not contain declared merge key: type"
    );
    assert_eq!(mock.node("n1").unwrap(), before, "nothing written");

    // `$patch: delete` needs the key too; addresses merge by type as well.
    for patch in [
        json!({"status": {"conditions": [{"$patch": "delete"}]}}),
        json!({"status": {"addresses": [{"address": "10.0.0.1"}]}}),
    ] {
        let (code, status) = patch_status(SMP, &patch).await;
        assert_eq!(code, 500, "{patch} → {status}");
    }
    // JSON merge patch has no merge keys: the same list is fine there.
    let (code, body) = patch_status("application/merge-patch+json", &patch).await;
    assert_eq!(code, 200, "{body}");
}

// ---------------------------------------------------------------- pagination

async fn list(server: &RunningServer, query: &str) -> (u16, Value) {
    send(
        http()
            .get(format!("{}/api/v1/nodes?{query}", server.url()))
            .bearer_auth(ADMIN),
    )
    .await
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_from_one_snapshot() {
    let (mock, server) = start().await;
    for i in 1..=7 {
        mock.upsert_node(json!({"metadata": {"name": format!("n{i}")}}))
            .unwrap();
    }
    let (code, p1) = list(&server, "limit=3").await;
    assert_eq!(code, 200, "{p1}");
    assert_eq!(names(&p1), ["n1", "n2", "n3"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 4);
    let rv = p1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = p1["metadata"]["continue"].as_str().unwrap().to_owned();

    // The cluster changes between pages; the rest of the list is still the snapshot.
    mock.upsert_node(json!({"metadata": {"name": "n0"}}))
        .unwrap();
    mock.delete_node("n5").unwrap();
    mock.upsert_node(json!({"metadata": {"name": "n4", "labels": {"changed": "yes"}}}))
        .unwrap();
    mock.upsert_node(json!({"metadata": {"name": "n8"}}))
        .unwrap();

    let (code, p2) = list(&server, &format!("limit=3&continue={}", enc(&token))).await;
    assert_eq!(code, 200, "{p2}");
    assert_eq!(names(&p2), ["n4", "n5", "n6"]);
    assert!(p2["items"][0]["metadata"]["labels"].is_null(), "{p2}");
    assert_eq!(p2["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(p2["metadata"]["remainingItemCount"], 1);
    let token = p2["metadata"]["continue"].as_str().unwrap().to_owned();
    let (code, p3) = list(&server, &format!("limit=3&continue={}", enc(&token))).await;
    assert_eq!(code, 200, "{p3}");
    assert_eq!(names(&p3), ["n7"]);
    assert!(
        p3["metadata"].get("continue").is_none_or(|c| c == ""),
        "{p3}"
    );
    assert!(p3["metadata"].get("remainingItemCount").is_none(), "{p3}");

    // Without a limit: everything, now.
    let (_, all) = list(&server, "").await;
    assert_eq!(
        names(&all),
        ["n0", "n1", "n2", "n3", "n4", "n6", "n7", "n8"]
    );
    // A selector: no remainingItemCount (the apiserver can't count it cheaply).
    let (_, sel) = list(&server, "limit=1&fieldSelector=metadata.name%3Dn1").await;
    assert_eq!(names(&sel), ["n1"]);
    assert!(sel["metadata"].get("remainingItemCount").is_none(), "{sel}");
    // resourceVersion=0 is served from the watch cache: the limit is ignored.
    let (_, rv0) = list(&server, "limit=2&resourceVersion=0").await;
    assert_eq!(names(&rv0).len(), 8);
    assert!(rv0["metadata"].get("continue").is_none_or(|c| c == ""));
}

#[tokio::test]
async fn bad_or_expired_continue_tokens_are_refused_like_the_apiserver() {
    let (mock, server) = start().await;
    for i in 1..=4 {
        mock.upsert_node(json!({"metadata": {"name": format!("n{i}")}}))
            .unwrap();
    }
    let (code, status) = list(&server, "limit=2&continue=garbage!").await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid continue token: continue key is not valid"),
        "{status}"
    );
    let (_, p1) = list(&server, "limit=2").await;
    let token = p1["metadata"]["continue"].as_str().unwrap().to_owned();
    // A resourceVersion together with continue.
    let (code, status) = list(
        &server,
        &format!("limit=2&resourceVersion=5&continue={}", enc(&token)),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    // Compacted away: 410 Expired, with a token that continues inconsistently.
    mock.upsert_node(json!({"metadata": {"name": "n9"}}))
        .unwrap();
    mock.compact();
    let (code, status) = list(&server, &format!("limit=2&continue={}", enc(&token))).await;
    assert_eq!(code, 410, "{status}");
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old"),
        "{status}"
    );
    let fresh = status["metadata"]["continue"].as_str().unwrap().to_owned();
    let (code, rest) = list(&server, &format!("limit=10&continue={}", enc(&fresh))).await;
    assert_eq!(code, 200, "{rest}");
    assert_eq!(names(&rest), ["n3", "n4", "n9"]);
}

// ---------------------------------------------------------------- watch

async fn watch_lines(server: &RunningServer, query: &str) -> Vec<Value> {
    let body = http()
        .get(format!(
            "{}/api/v1/nodes?watch=true&timeoutSeconds=1&{query}",
            server.url()
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn kinds_and_names(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn watch_from_empty_or_zero_resource_version_starts_with_every_object() {
    let (mock, server) = start().await;
    mock.upsert_node(json!({"metadata": {"name": "a"}}))
        .unwrap();
    mock.upsert_node(json!({"metadata": {"name": "b"}}))
        .unwrap();
    mock.upsert_node(json!({"metadata": {"name": "a", "labels": {"x": "1"}}}))
        .unwrap();
    for query in ["", "resourceVersion=", "resourceVersion=0"] {
        let later = mock.clone();
        let add = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            later
                .upsert_node(json!({"metadata": {"name": "c"}}))
                .unwrap();
            later.delete_node("c").unwrap();
        });
        let events = watch_lines(&server, query).await;
        add.await.unwrap();
        assert_eq!(
            kinds_and_names(&events),
            [
                ("ADDED".into(), "a".into()),
                ("ADDED".into(), "b".into()),
                ("ADDED".into(), "c".into()),
                ("DELETED".into(), "c".into()),
            ],
            "query {query:?}"
        );
        assert_eq!(events[0]["object"]["metadata"]["labels"]["x"], "1");
    }
    // sendInitialEvents=false: no synthetic ADDED, only what happens from now.
    let events = watch_lines(
        &server,
        "sendInitialEvents=false&resourceVersionMatch=NotOlderThan",
    )
    .await;
    assert!(events.is_empty(), "{events:?}");
    // The field selector also filters the initial events.
    let events = watch_lines(&server, "resourceVersion=0&fieldSelector=metadata.name%3Db").await;
    assert_eq!(kinds_and_names(&events), [("ADDED".into(), "b".into())]);
}

#[tokio::test]
async fn watch_bookmarks_only_when_allowed() {
    let (mock, server) = start().await;
    mock.upsert_node(json!({"metadata": {"name": "a"}}))
        .unwrap();
    let (_, l) = list(&server, "").await;
    let rv: u64 = l["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Bookmarks every 200 ms (the real apiserver: about once a minute).
    let r = http()
        .post(format!("{}/_mock/bookmarks", server.url()))
        .body(r#"{"interval_ms": 200}"#)
        .send()
        .await
        .unwrap();
    let _ = r.status();

    let events = watch_lines(
        &server,
        &format!("resourceVersion={rv}&allowWatchBookmarks=true"),
    )
    .await;
    let bookmarks: Vec<&Value> = events.iter().filter(|e| e["type"] == "BOOKMARK").collect();
    assert!(bookmarks.len() >= 2, "{events:?}");
    for b in &bookmarks {
        assert_eq!(b["object"]["kind"], "Node");
        assert_eq!(b["object"]["apiVersion"], "v1");
        let brv: u64 = b["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(brv >= rv);
    }
    let events = watch_lines(&server, &format!("resourceVersion={rv}")).await;
    assert!(events.iter().all(|e| e["type"] != "BOOKMARK"), "{events:?}");
}

#[tokio::test]
async fn watch_bookmark_progresses_past_the_last_event_sent() {
    let (mock, server) = start().await;
    let r = http()
        .post(format!("{}/_mock/bookmarks", server.url()))
        .body(r#"{"interval_ms": 150}"#)
        .send()
        .await
        .unwrap();
    let _ = r.status();
    let later = mock.clone();
    let add = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        later
            .upsert_node(json!({"metadata": {"name": "a"}}))
            .unwrap()
    });
    let events = watch_lines(&server, "allowWatchBookmarks=true").await;
    let added = add.await.unwrap();
    let added_rv: u64 = added["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let pos = events
        .iter()
        .position(|e| e["type"] == "ADDED")
        .expect("the ADDED event");
    let after: Vec<u64> = events[pos..]
        .iter()
        .filter(|e| e["type"] == "BOOKMARK")
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(!after.is_empty(), "{events:?}");
    assert!(after.iter().all(|&rv| rv >= added_rv), "{events:?}");
}

#[tokio::test]
async fn watch_list_sends_initial_events_then_the_end_bookmark() {
    let (mock, server) = start().await;
    mock.upsert_node(json!({"metadata": {"name": "a"}}))
        .unwrap();
    mock.upsert_node(json!({"metadata": {"name": "b"}}))
        .unwrap();
    let (_, l) = list(&server, "").await;
    let rv = l["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = watch_lines(
        &server,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    .await;
    assert_eq!(
        kinds_and_names(&events)[..3],
        [
            ("ADDED".into(), "a".into()),
            ("ADDED".into(), "b".into()),
            ("BOOKMARK".into(), "".into()),
        ]
    );
    let end = &events[2]["object"];
    assert_eq!(
        end["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(end["metadata"]["resourceVersion"], rv.as_str());

    // sendInitialEvents needs resourceVersionMatch=NotOlderThan; resourceVersionMatch
    // on a watch needs sendInitialEvents.
    for query in [
        "sendInitialEvents=true",
        "resourceVersionMatch=NotOlderThan",
        "sendInitialEvents=true&resourceVersionMatch=Exact",
    ] {
        let (code, status) = send(
            http()
                .get(format!(
                    "{}/api/v1/nodes?watch=true&timeoutSeconds=1&{query}",
                    server.url()
                ))
                .bearer_auth(ADMIN),
        )
        .await;
        assert_eq!(code, 422, "{query}: {status}");
        assert_eq!(status["reason"], "Invalid", "{query}: {status}");
        assert_eq!(status["details"]["kind"], "ListOptions", "{status}");
        assert_eq!(status["details"]["group"], "meta.k8s.io", "{status}");
    }
}
