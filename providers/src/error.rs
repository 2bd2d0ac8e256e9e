//! Classified cloud errors. The class decides retrying; the cloud's own code and message
//! are kept verbatim so an operator can search for them.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Rate limited (EC2 `RequestLimitExceeded` / 503, ARM 429): slow down and retry.
    Throttled,
    /// The table is full (EC2 `RouteLimitExceeded`, ARM route quota): do not retry.
    QuotaExceeded,
    NotFound,
    /// Conflicting state (route exists with another target, etag mismatch, table locked by
    /// another operation). Retrying after a re-read may succeed.
    Conflict,
    /// 5xx, timeouts, connection errors: retry with backoff.
    Transient,
    /// Auth, validation, anything a retry cannot fix.
    Permanent,
    /// Not sent (or abandoned): the write fence's deadline passed. Never retried here; the
    /// next leader's pass decides afresh.
    Fenced,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Fenced => "fenced",
        }
    }
}

/// The longest `Retry-After` honoured (ARM documents minutes at most).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CloudError {
    pub kind: ErrorKind,
    /// The cloud's error code (`RouteLimitExceeded`, `AnotherOperationInProgress`, …) or a
    /// local one (`Timeout`, `Connection`).
    pub code: String,
    /// The cloud's message, verbatim.
    pub message: String,
    pub http_status: Option<u16>,
    /// The cloud's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl CloudError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        CloudError {
            kind,
            code: code.into(),
            message: message.into(),
            http_status: None,
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Keep the cloud's `Retry-After`, capped: a hostile or broken value must neither
    /// overflow a clock nor park the controller for a day.
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after.map(|d| d.min(MAX_RETRY_AFTER));
        self
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.kind.as_str())?;
        if let Some(status) = self.http_status {
            write!(f, " HTTP {status}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// An error and its sources, one line (hyper's top-level text alone says little).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
