//! The one conditional-update loop: ARM's rules for a read-modify-write of one resource.
//!
//! A round reads the resource and decides; a write is a PUT with `If-Match: <etag>`
//! (through [`ArmClient::put`], so the write fence sees it) followed to the end of its
//! long-running operation.
//! - 412 `PreconditionFailed`: somebody wrote the resource between our read and our PUT.
//!   Re-read at once: an etag race is resolved by reading, not waiting.
//! - 409 `AnotherOperationInProgress` / `RetryableErrorDueToAnotherOperation`: another
//!   write holds the resource. Wait as long as ARM says (`Retry-After`), or a jittered
//!   exponential backoff (1–30 s cloud time) when it says nothing, then read again.
//! - Anything else (and a `Failed` / `Canceled` operation) ends the update.
//!
//! After `rounds` rounds lost to races the last race's error is returned.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde_json::Value;

use super::OP_OPERATION_READ;
use super::arm::{ArmClient, LroOutcome, WrittenResource, is_lock_conflict};
use crate::fence::WriteFence;
use crate::{CloudError, ErrorKind};

/// What one round decided after reading the resource.
pub(super) enum Round<T> {
    /// Nothing to write: the update is over with this answer.
    Done(T),
    /// PUT `body` conditional on `etag`; once its operation succeeds the answer is `then`.
    Write {
        body: Value,
        etag: Option<String>,
        then: T,
    },
}

/// Runs rounds of `round` against `resource` (written with `write_op`) until one is done,
/// a write succeeds, or an error other than a lost race ends it.
pub(super) async fn update<T, F, Fut>(
    arm: &ArmClient,
    write_op: &'static str,
    resource: WrittenResource<'_>,
    rounds: u32,
    fence: &dyn WriteFence,
    mut round: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Round<T>, CloudError>>,
{
    let path = resource.path;
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(arm.wall(Duration::from_secs(1)))
        .with_max_delay(arm.wall(Duration::from_secs(30)))
        .with_jitter()
        .without_max_times()
        .build();
    let mut last = CloudError::new(
        ErrorKind::Conflict,
        "TooManyConflicts",
        format!("{path} kept changing under us"),
    );
    for _ in 0..rounds {
        let (body, etag, then) = match round().await? {
            Round::Done(answer) => return Ok(answer),
            Round::Write { body, etag, then } => (body, etag, then),
        };
        let put = arm
            .put(
                write_op,
                path,
                resource.api_version,
                &body,
                etag.as_deref(),
                fence,
            )
            .await;
        match put {
            Ok(accepted) => {
                return match arm
                    .wait(OP_OPERATION_READ, &accepted, resource, fence)
                    .await?
                {
                    LroOutcome::Succeeded => Ok(then),
                    LroOutcome::Failed(err) => Err(err),
                };
            }
            Err(e) if e.http_status == Some(412) => {
                tracing::debug!(%path, "resource changed since read (412): re-reading");
                last = CloudError::new(
                    ErrorKind::Conflict,
                    "PreconditionFailed",
                    format!("{path} changed between read and write on every attempt"),
                )
                .with_status(412);
            }
            Err(e) if is_lock_conflict(&e) => {
                let delay = e
                    .retry_after
                    .unwrap_or_else(|| backoff.next().unwrap_or_default());
                tracing::debug!(%path, ?delay, "resource locked by another operation");
                tokio::time::sleep(delay).await;
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}
