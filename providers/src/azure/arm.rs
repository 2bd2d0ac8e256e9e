//! The thin ARM HTTP client: bearer auth, api-version, ARM error bodies → [`CloudError`],
//! `Retry-After`, pacing and retries through [`retry::call`], and long-running operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::credential::TokenProvider;
use super::models::{AsyncOperationView, ErrorEnvelope};
use crate::fence::WriteFence;
use crate::fence::socket::{GatedClient, Proxies, WriteGate, gated_client};
use crate::pacing::{ARM_READS, ARM_WRITES, Pacer, PacingConfig};
use crate::retry::{self, RetryPolicy};
use crate::{ApiCounters, CloudError, ErrorKind};

/// The first look at a running operation, in cloud time: about what a route table or NIC
/// write takes. ARM's `Retry-After` on an accepted write is a fixed hint (10 s for
/// Microsoft.Network) whatever the operation has left, so sleeping it first makes every
/// shorter write look as long as the hint.
pub const LRO_FIRST_POLL: Duration = Duration::from_millis(1500);
/// Each later wait is this much longer than the one before…
pub const LRO_POLL_GROWTH: f64 = 1.5;
/// …up to ARM's latest `Retry-After`, or this without one (cloud time).
pub const LRO_POLL_MAX: Duration = Duration::from_secs(10);

/// The wait before look number `n` (from 0) at a running operation, in cloud time: a short
/// first look, then growing waits, never longer than `hint` (ARM's `Retry-After`, an upper
/// bound) or [`LRO_POLL_MAX`] without one. Waits of 1.5, 2.25, 3.4, 5.1… s: an operation
/// of D seconds is seen done by about 1.25 D (a 3 s one at 3.75 s, not 10).
pub fn lro_poll_delay(n: u32, hint: Option<Duration>) -> Duration {
    let cap = hint.filter(|h| !h.is_zero()).unwrap_or(LRO_POLL_MAX);
    // Capped before the power: past the cap it no longer grows anyway.
    let grown = LRO_FIRST_POLL.mul_f64(LRO_POLL_GROWTH.powi(n.min(16) as i32));
    grown.min(cap)
}

/// An ARM JSON document (a response body, or one item of a list) as a typed view.
pub fn parse_value<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, CloudError> {
    serde_json::from_value(value.clone()).map_err(|e| {
        CloudError::new(
            ErrorKind::Permanent,
            "UnexpectedResponse",
            format!("{what}: {e}"),
        )
    })
}

/// An answer ARM accepted (2xx).
#[derive(Debug, Clone)]
pub struct ArmResponse {
    pub status: u16,
    pub body: Value,
    /// `Azure-AsyncOperation` (or, failing that, `Location`) of a long-running write.
    pub async_operation: Option<String>,
    /// `Retry-After`, already converted to wall time.
    pub retry_after: Option<Duration>,
}

impl ArmResponse {
    pub fn parse<T: DeserializeOwned>(&self, what: &str) -> Result<T, CloudError> {
        parse_value(&self.body, what)
    }
}

const USER_AGENT: &str = concat!("cni-cloud/", env!("CARGO_PKG_VERSION"));

pub struct ArmClient {
    /// Reads.
    http: reqwest::Client,
    /// Writes: its sockets write only while `gate` is open (see `fence::socket`), armed
    /// from the write's fence before every attempt.
    writer: GatedClient<Full<Bytes>>,
    gate: WriteGate,
    request_timeout: Duration,
    base: String,
    tokens: Arc<dyn TokenProvider>,
    reads: Pacer,
    writes: Pacer,
    retry: RetryPolicy,
    counters: ApiCounters,
    time_scale: f64,
    lro_timeout: Duration,
    /// ARM refused the operation-status URL (403) once: writes are followed through their
    /// resource's `provisioningState` from then on.
    polling_refused: AtomicBool,
}

/// The resource a long-running write changes, read for its `provisioningState` when the
/// operation-status URL is refused.
#[derive(Debug, Clone, Copy)]
pub struct WrittenResource<'a> {
    pub read_op: &'static str,
    pub path: &'a str,
    pub api_version: &'a str,
}

/// One look at a running write.
enum Poll {
    Done(LroOutcome),
    /// Still running; ask again after this (`Retry-After`), or on the fallback schedule.
    Running(Option<Duration>),
}

/// How a long-running operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum LroOutcome {
    Succeeded,
    /// `Failed` or `Canceled`, with ARM's error.
    Failed(CloudError),
}

/// ARM answers carrying these codes mean "the resource is locked by another write".
pub fn is_lock_conflict(err: &CloudError) -> bool {
    matches!(
        err.code.as_str(),
        "AnotherOperationInProgress" | "RetryableErrorDueToAnotherOperation"
    )
}

fn classify(status: StatusCode, code: &str, message: &str) -> ErrorKind {
    let lower = code.to_ascii_lowercase();
    match status.as_u16() {
        429 => ErrorKind::Throttled,
        409 | 412 => ErrorKind::Conflict,
        404 => ErrorKind::NotFound,
        400 if lower.contains("limit") || lower.contains("quota") => ErrorKind::QuotaExceeded,
        408 => ErrorKind::Transient,
        s if s >= 500 => ErrorKind::Transient,
        _ if message.is_empty() && code.is_empty() => ErrorKind::Permanent,
        _ => ErrorKind::Permanent,
    }
}

impl ArmClient {
    pub fn new(
        base: &str,
        tokens: Arc<dyn TokenProvider>,
        pacing: PacingConfig,
        retry: RetryPolicy,
        request_timeout: Duration,
        lro_timeout: Duration,
    ) -> Result<Self, CloudError> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Permanent, "HttpClient", e.to_string()))?;
        let gate = WriteGate::default();
        let writer =
            gated_client(gate.clone(), request_timeout, Proxies::FromEnv).map_err(|e| {
                CloudError::new(
                    ErrorKind::Permanent,
                    "TlsRoots",
                    format!("loading the system's TLS roots: {e}"),
                )
            })?;
        Ok(ArmClient {
            http,
            writer,
            gate,
            request_timeout,
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            reads: Pacer::new("arm-reads", ARM_READS, pacing),
            writes: Pacer::new("arm-writes", ARM_WRITES, pacing),
            retry: retry.scaled(pacing.time_scale),
            counters: ApiCounters::default(),
            time_scale: pacing.time_scale,
            lro_timeout: lro_timeout.div_f64(pacing.time_scale),
            polling_refused: AtomicBool::new(false),
        })
    }

    pub fn counters(&self) -> &ApiCounters {
        &self.counters
    }

    /// Cloud seconds → wall time (tests and `simulate` run the cloud faster).
    pub fn wall(&self, cloud: Duration) -> Duration {
        cloud.div_f64(self.time_scale)
    }

    fn url(&self, path: &str, api_version: &str) -> String {
        format!("{}{path}?api-version={api_version}", self.base)
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let secs: u64 = headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // Capped before any arithmetic: a huge value must not overflow (ARM sends tens of
        // seconds at most).
        let cloud = Duration::from_secs(secs).min(crate::error::MAX_RETRY_AFTER);
        Some(self.wall(cloud))
    }

    /// One exchange: reads through the plain client, writes through the gated one.
    async fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<ArmResponse, CloudError> {
        let token = self.tokens.token().await?;
        let (status, headers, bytes) = if method == Method::GET {
            self.read_exchange(url, &token.header_value()).await?
        } else {
            self.write_exchange(method, url, &token.header_value(), body, if_match)
                .await?
        };
        let retry_after = self.retry_after(&headers);
        if status.is_success() {
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    CloudError::new(ErrorKind::Transient, "UnexpectedResponse", e.to_string())
                })?
            };
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            return Ok(ArmResponse {
                status: status.as_u16(),
                body,
                async_operation: header("azure-asyncoperation").or_else(|| {
                    (status == StatusCode::ACCEPTED)
                        .then(|| header("location"))
                        .flatten()
                }),
                retry_after,
            });
        }
        let envelope: Option<ErrorEnvelope> = serde_json::from_slice(&bytes).ok();
        let (code, message) = match envelope {
            Some(e) => (e.error.code, e.error.message),
            None => (
                status
                    .canonical_reason()
                    .unwrap_or("HttpError")
                    .replace(' ', ""),
                String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            ),
        };
        let kind = classify(status, &code, &message);
        Err(CloudError::new(kind, code, message)
            .with_status(status.as_u16())
            .with_retry_after(retry_after))
    }

    async fn read_exchange(
        &self,
        url: &str,
        authorization: &str,
    ) -> Result<(StatusCode, HeaderMap, Bytes), CloudError> {
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| {
                let code = if e.is_timeout() {
                    "Timeout"
                } else {
                    "Connection"
                };
                // reqwest's error text names the URL, never the headers.
                CloudError::new(ErrorKind::Transient, code, e.without_url().to_string())
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| {
            CloudError::new(
                ErrorKind::Transient,
                "Connection",
                e.without_url().to_string(),
            )
        })?;
        Ok((status, headers, bytes))
    }

    async fn write_exchange(
        &self,
        method: Method,
        url: &str,
        authorization: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), CloudError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(url)
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::USER_AGENT, USER_AGENT);
        if let Some(tag) = if_match {
            req = req.header(http::header::IF_MATCH, tag);
        }
        let payload = match body {
            Some(body) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body).map_err(|e| {
                    CloudError::new(ErrorKind::Permanent, "InvalidRequest", e.to_string())
                })?)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| CloudError::new(ErrorKind::Permanent, "InvalidRequest", e.to_string()))?;
        let exchange = async {
            let resp = self.writer.request(req).await?;
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts.status, parts.headers, bytes))
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            // hyper's error text names neither the URL nor the headers.
            Ok(Err(e)) => Err(CloudError::new(
                ErrorKind::Transient,
                "Connection",
                crate::error::error_chain(e.as_ref()),
            )),
            Err(_) => Err(CloudError::new(
                ErrorKind::Transient,
                "Timeout",
                format!("no answer within {:?}", self.request_timeout),
            )),
        }
    }

    /// GET `path` (or an absolute URL on the same endpoint), paced as a read.
    pub async fn get(
        &self,
        op: &'static str,
        path: &str,
        api_version: &str,
    ) -> Result<ArmResponse, CloudError> {
        let url = self.url(path, api_version);
        retry::call(&self.reads, &self.retry, &self.counters, op, || {
            self.send_once(Method::GET, &url, None, None)
        })
        .await
    }

    /// Every item of a list, following `nextLink` page by page (each page paced as a read).
    /// A `nextLink` off the configured endpoint is refused: the bearer token goes nowhere
    /// else.
    pub async fn list(
        &self,
        op: &'static str,
        path: &str,
        api_version: &str,
    ) -> Result<Vec<Value>, CloudError> {
        /// Far beyond any resource group this controller lists; guards against a loop.
        const MAX_PAGES: usize = 1000;
        let mut url = self.url(path, api_version);
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = retry::call(&self.reads, &self.retry, &self.counters, op, || {
                self.send_once(Method::GET, &url, None, None)
            })
            .await?;
            let mut body = page.body;
            if let Some(Value::Array(values)) = body.get_mut("value").map(Value::take) {
                items.extend(values);
            }
            match body.get("nextLink").and_then(Value::as_str) {
                None | Some("") => return Ok(items),
                Some(next) if next.starts_with(&format!("{}/", self.base)) => {
                    url = next.to_owned();
                }
                Some(_) => {
                    return Err(CloudError::new(
                        ErrorKind::Permanent,
                        "UntrustedNextLink",
                        format!("a list's nextLink is not on {}", self.base),
                    ));
                }
            }
        }
        Err(CloudError::new(
            ErrorKind::Permanent,
            "TooManyPages",
            format!("{path}: more than {MAX_PAGES} pages"),
        ))
    }

    /// PUT `body` to `path`, paced as a write and fenced; `if_match` makes it conditional.
    pub async fn put(
        &self,
        op: &'static str,
        path: &str,
        api_version: &str,
        body: &Value,
        if_match: Option<&str>,
        fence: &dyn crate::fence::WriteFence,
    ) -> Result<ArmResponse, CloudError> {
        let url = self.url(path, api_version);
        retry::call_fenced(&self.writes, &self.retry, &self.counters, op, fence, || {
            self.gate.arm(fence.deadline());
            self.send_once(Method::PUT, &url, Some(body), if_match)
        })
        .await
    }

    /// Follow a write's long-running operation to its end. A write without an operation
    /// header finished synchronously. Looks come on [`lro_poll_delay`]'s schedule: a first
    /// one after about a typical write, then growing waits, none longer than ARM's latest
    /// `Retry-After` (an upper bound, not the time left); and one is made whenever that
    /// hint comes due (acceptance + 10 s, …), so a write is never seen done later than by
    /// sleeping the hint. ARM's fixed 10 s: looks at 1.5, 3.75, 7.1, 10, 17.6, 20, 30 s, …
    ///
    /// Within the write fence: no look is sent, nor awaited, past `fence`'s deadline (read
    /// afresh before each, so a renewed lease carries on). A write followed that far is
    /// abandoned with a `Fenced` error: it was accepted, its outcome is unknown, the next
    /// leader's pass decides afresh.
    ///
    /// The operation-status URL (`…/providers/Microsoft.Network/locations/<l>/operations/<id>`)
    /// lies outside the resources an identity may be scoped to, and ARM may refuse it (403)
    /// although it accepted the write. Then the write is followed through `resource`'s own
    /// `provisioningState` (`Succeeded`, `Failed`, `Canceled` end it), and every later write
    /// too: the refusal is remembered.
    pub async fn wait(
        &self,
        op: &'static str,
        accepted: &ArmResponse,
        resource: WrittenResource<'_>,
        fence: &dyn WriteFence,
    ) -> Result<LroOutcome, CloudError> {
        let Some(url) = accepted.async_operation.clone() else {
            return Ok(LroOutcome::Succeeded);
        };
        // The bearer token goes only to the endpoint we were configured with.
        if !url.starts_with(&format!("{}/", self.base)) {
            return Err(CloudError::new(
                ErrorKind::Permanent,
                "UntrustedOperationUrl",
                format!("the async-operation URL is not on {}", self.base),
            ));
        }
        let deadline = tokio::time::Instant::now() + self.lro_timeout;
        // ARM's latest `Retry-After`, in cloud time: the longest any wait may be.
        let mut hint = accepted.retry_after.map(|h| h.mul_f64(self.time_scale));
        // When ARM asked to be asked again (acceptance + hint, then a hint after each look
        // made at or past it): a look is due then at the latest, so no write is seen done
        // later than sleeping every hint would see it.
        let mut due = accepted
            .retry_after
            .map(|h| tokio::time::Instant::now() + h);
        let mut looks = 0u32;
        loop {
            let now = tokio::time::Instant::now();
            let mut delay = self.wall(lro_poll_delay(looks, hint));
            if let Some(due) = due {
                delay = delay.min(due.saturating_duration_since(now));
            }
            looks = looks.saturating_add(1);
            let wake = now + delay;
            if wake > deadline {
                return Err(CloudError::new(
                    ErrorKind::Transient,
                    "OperationTimeout",
                    format!(
                        "the long-running operation did not finish within {:?}; its outcome is unknown",
                        self.lro_timeout
                    ),
                ));
            }
            sleep_fenced(wake, fence).await?;
            let poll = crate::fence::within(fence, op, self.poll(op, &url, resource))
                .await
                .map_err(|e| {
                    if e.kind == ErrorKind::Fenced {
                        abandoned()
                    } else {
                        e
                    }
                })?;
            match poll {
                Poll::Done(outcome) => return Ok(outcome),
                Poll::Running(retry_after) => {
                    if let Some(h) = retry_after {
                        hint = Some(h.mul_f64(self.time_scale));
                        let now = tokio::time::Instant::now();
                        due = Some(match due {
                            Some(d) if d > now => d.min(now + h),
                            _ => now + h,
                        });
                    }
                }
            }
        }
    }

    /// One look at a running write: its operation status, or (once ARM refused that) its
    /// resource's `provisioningState`.
    async fn poll(
        &self,
        op: &'static str,
        url: &str,
        resource: WrittenResource<'_>,
    ) -> Result<Poll, CloudError> {
        if self.polling_refused.load(Ordering::Relaxed) {
            return self.poll_resource(resource).await;
        }
        match self.poll_operation(op, url).await {
            Err(e) if e.http_status == Some(403) => {
                if !self.polling_refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        code = %e.code,
                        "ARM refused reading the operation status ({op}); following writes through their resources' provisioningState from now on"
                    );
                }
                self.poll_resource(resource).await
            }
            other => other,
        }
    }

    async fn poll_operation(&self, op: &'static str, url: &str) -> Result<Poll, CloudError> {
        let resp = retry::call(&self.reads, &self.retry, &self.counters, op, || {
            self.send_once(Method::GET, url, None, None)
        })
        .await?;
        let status: AsyncOperationView = resp.parse("async operation status")?;
        Ok(match status.status.as_str() {
            "Succeeded" => Poll::Done(LroOutcome::Succeeded),
            "Failed" | "Canceled" => {
                let error = status.error.unwrap_or_default();
                let code = if error.code.is_empty() {
                    format!("Operation{}", status.status)
                } else {
                    error.code
                };
                Poll::Done(LroOutcome::Failed(CloudError::new(
                    ErrorKind::Transient,
                    code,
                    format!(
                        "long-running operation {}: {}",
                        status.status, error.message
                    ),
                )))
            }
            _ => Poll::Running(resp.retry_after),
        })
    }

    /// ARM's rule: `Succeeded`, `Failed` and `Canceled` are terminal; no provisioningState at
    /// all means the write finished and succeeded; anything else is still running.
    async fn poll_resource(&self, resource: WrittenResource<'_>) -> Result<Poll, CloudError> {
        let resp = self
            .get(resource.read_op, resource.path, resource.api_version)
            .await?;
        let state = resp.body["properties"]["provisioningState"].as_str();
        Ok(match state {
            None | Some("Succeeded") => Poll::Done(LroOutcome::Succeeded),
            Some(state @ ("Failed" | "Canceled")) => {
                Poll::Done(LroOutcome::Failed(CloudError::new(
                    ErrorKind::Transient,
                    format!("ProvisioningState{state}"),
                    format!(
                        "the write ended {state} (read from {}'s provisioningState: the operation status was refused)",
                        resource.path
                    ),
                )))
            }
            Some(_) => Poll::Running(None),
        })
    }
}

/// A write followed to the write fence: accepted, its outcome unknown.
fn abandoned() -> CloudError {
    CloudError::new(
        ErrorKind::Fenced,
        "WriteFenced",
        "stopped following an accepted write at the write fence (the leader lease could lapse); its outcome is unknown",
    )
}

/// Sleep until `wake`, but not past the fence's deadline (re-read each time it is reached:
/// a renewed lease moves it). `Err` when the fence closes first.
async fn sleep_fenced(
    wake: tokio::time::Instant,
    fence: &dyn WriteFence,
) -> Result<(), CloudError> {
    loop {
        let Some(deadline) = fence.deadline().map(tokio::time::Instant::from_std) else {
            return Err(abandoned());
        };
        if wake < deadline {
            tokio::time::sleep_until(wake).await;
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(abandoned());
        }
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lro_polls_start_short_and_grow_up_to_the_retry_after_hint() {
        let secs =
            |n, hint: Option<u64>| lro_poll_delay(n, hint.map(Duration::from_secs)).as_secs_f64();
        // ARM's fixed 10 s hint is an upper bound, not the first wait.
        assert_eq!(secs(0, Some(10)), 1.5);
        assert_eq!(secs(1, Some(10)), 2.25);
        assert_eq!(secs(2, Some(10)), 3.375);
        assert_eq!(secs(6, Some(10)), 10.0);
        assert_eq!(secs(u32::MAX, Some(10)), 10.0);
        // A shorter hint caps every wait; none (or 0) falls back to LRO_POLL_MAX.
        assert_eq!(secs(0, Some(1)), 1.0);
        assert_eq!(secs(9, None), 10.0);
        assert_eq!(secs(0, Some(0)), 1.5);
        // A 3 s operation is seen done at the second look (1.5 + 2.25 = 3.75 s).
        let seen: f64 = (0..2).map(|n| secs(n, Some(10))).sum();
        assert!((3.0..5.0).contains(&seen), "{seen}");
    }

    #[test]
    fn arm_errors_are_classified() {
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                "SubscriptionRequestsThrottled",
                ""
            ),
            ErrorKind::Throttled
        );
        assert_eq!(
            classify(StatusCode::CONFLICT, "AnotherOperationInProgress", ""),
            ErrorKind::Conflict
        );
        assert_eq!(
            classify(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", ""),
            ErrorKind::Conflict
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, "RouteTableRouteLimitExceeded", ""),
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, "InvalidResourceName", ""),
            ErrorKind::Permanent
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, "", ""),
            ErrorKind::Transient
        );
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, "AuthenticationFailed", ""),
            ErrorKind::Permanent
        );
        assert!(is_lock_conflict(&CloudError::new(
            ErrorKind::Conflict,
            "RetryableErrorDueToAnotherOperation",
            ""
        )));
    }
}
