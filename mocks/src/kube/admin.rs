//! `/_mock/*`: the test harness's levers (no auth: loopback only, like the other mocks).
//!
//! - `PUT /_mock/nodes` body: a Node → create or replace (watchers see ADDED/MODIFIED)
//! - `DELETE /_mock/nodes/{name}` → remove (watchers see DELETED)
//! - `POST /_mock/empty-lists?` body `{"count": N}` → the next N node lists return no items
//! - `POST /_mock/compact` → watches from older resourceVersions get 410 Gone
//! - `POST /_mock/close-watches` → end every open watch (clients must re-watch)
//! - `POST /_mock/bookmarks` body `{"interval_ms": N}` → watches that allow bookmarks get
//!   one every N ms (default 60 s); `{"now": true}` → each gets one now
//! - `GET /_mock/nodes`, `/_mock/leases`, `/_mock/lease-log`, `/_mock/events`, `/_mock/stats`

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::KubeMock;
use super::state::StoreError;

fn answer(code: StatusCode, body: Value) -> Response {
    (code, axum::Json(body)).into_response()
}

fn bad(msg: String) -> Response {
    answer(StatusCode::BAD_REQUEST, json!({"error": msg}))
}

pub fn handle(mock: &KubeMock, method: &Method, path: &str, body: &Bytes) -> Response {
    let parsed =
        || serde_json::from_slice::<Value>(body).map_err(|e| format!("invalid JSON body: {e}"));
    match (method, path.split('/').collect::<Vec<_>>().as_slice()) {
        (&Method::GET, ["stats"]) => answer(StatusCode::OK, mock.inner.stats.to_json()),
        (&Method::GET, ["nodes"]) => answer(StatusCode::OK, json!(mock.nodes())),
        (&Method::GET, ["leases"]) => {
            let store = mock.inner.store.lock().expect("store");
            answer(
                StatusCode::OK,
                json!(store.leases.values().collect::<Vec<_>>()),
            )
        }
        (&Method::GET, ["lease-log"]) => answer(StatusCode::OK, json!(mock.lease_log())),
        (&Method::GET, ["events"]) => answer(StatusCode::OK, json!(mock.events())),
        (&Method::PUT, ["nodes"]) => match parsed() {
            Ok(node) => match mock.upsert_node(node) {
                Ok(n) => answer(StatusCode::OK, n),
                Err(e) => bad(format!("{e:?}")),
            },
            Err(msg) => bad(msg),
        },
        (&Method::DELETE, ["nodes", name]) => match mock.delete_node(name) {
            Ok(()) => answer(StatusCode::OK, json!({"deleted": name})),
            Err(StoreError::NotFound) => answer(
                StatusCode::NOT_FOUND,
                json!({"error": format!("node {name:?} not found")}),
            ),
            Err(e) => bad(format!("{e:?}")),
        },
        (&Method::POST, ["empty-lists"]) => match parsed() {
            Ok(v) => match v["count"].as_u64() {
                Some(n) => {
                    mock.empty_next_lists(n as u32);
                    answer(StatusCode::OK, json!({"empty_lists": n}))
                }
                None => bad("body must be {\"count\": N}".into()),
            },
            Err(msg) => bad(msg),
        },
        (&Method::POST, ["compact"]) => {
            mock.compact();
            answer(StatusCode::OK, json!({}))
        }
        (&Method::POST, ["bookmarks"]) => match parsed() {
            Ok(v) if v["interval_ms"].is_u64() || v["now"] == true => {
                if let Some(ms) = v["interval_ms"].as_u64() {
                    mock.set_bookmark_interval(std::time::Duration::from_millis(ms));
                }
                if v["now"] == true {
                    mock.send_bookmarks();
                }
                answer(StatusCode::OK, v)
            }
            Ok(_) => bad("body must be {\"interval_ms\": N} and/or {\"now\": true}".into()),
            Err(msg) => bad(msg),
        },
        (&Method::POST, ["close-watches"]) => {
            mock.close_watches();
            answer(StatusCode::OK, json!({}))
        }
        _ => answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no admin endpoint {method} /_mock/{path}")}),
        ),
    }
}
