//! The write fence as the providers see it: the instant by which every cloud mutation must
//! be over. The controller derives it from its leader lease; a provider checks it before
//! every attempt (retries included) and abandons an attempt still running at it.
//!
//! What this does and does not promise: no request leaves this process after the deadline,
//! and none is still awaited after it. A request sent just before the deadline may still be
//! applied by the cloud after it, while the cloud works on it; the lease holder's margin
//! (lease duration − renew deadline) is what keeps that inside its claim.
//!
//! Two checks make that promise. [`within`] checks the clock before every poll of an
//! attempt; [`socket::GatedIo`] checks it again in `poll_write`, because the bytes leave
//! later, from the HTTP client's connection task: a process stopped between the two (seen
//! in 6 of 30 runs with debug builds starving 2 cores) would otherwise send the request on
//! resuming. What is left is the few instructions between the socket check and `write(2)`;
//! no client-side fence covers a pause there without the cloud's help.

pub mod socket;

use std::future::Future;
use std::time::Instant;

use crate::error::{CloudError, ErrorKind};

/// Where a provider learns how long it may keep writing.
pub trait WriteFence: Send + Sync {
    /// The instant every mutation must be over by; `None` when no mutation may start.
    fn deadline(&self) -> Option<Instant>;
}

/// No bound: single-replica runs without election, tools and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unfenced;

impl WriteFence for Unfenced {
    fn deadline(&self) -> Option<Instant> {
        // Far enough to never matter, near enough to never overflow an Instant.
        Some(Instant::now() + std::time::Duration::from_secs(10 * 365 * 86_400))
    }
}

/// The error a fenced-off mutation gets instead of being sent.
pub fn fenced(action: &str) -> CloudError {
    CloudError::new(
        ErrorKind::Fenced,
        "WriteFenced",
        format!("{action} not sent: the leader lease could lapse before it would finish"),
    )
}

/// Run `attempt` only while the fence allows, and give it up at the deadline. The clock
/// is checked before *every* poll, so a process resumed after a pause longer than its
/// lease never carries on with a request it had not sent yet.
pub async fn within<T>(
    fence: &dyn WriteFence,
    action: &str,
    attempt: impl Future<Output = Result<T, CloudError>>,
) -> Result<T, CloudError> {
    let Some(deadline) = fence.deadline() else {
        return Err(fenced(action));
    };
    let mut attempt = std::pin::pin!(attempt);
    let mut alarm = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
    std::future::poll_fn(|cx| {
        if Instant::now() >= deadline {
            return std::task::Poll::Ready(Err(fenced(action)));
        }
        if let std::task::Poll::Ready(out) = attempt.as_mut().poll(cx) {
            return std::task::Poll::Ready(out);
        }
        // Only to be woken at the deadline; the check above decides.
        let _ = alarm.as_mut().poll(cx);
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    struct At(Mutex<Option<Instant>>);
    impl WriteFence for At {
        fn deadline(&self) -> Option<Instant> {
            *self.0.lock().unwrap()
        }
    }

    #[tokio::test]
    async fn no_deadline_sends_nothing_and_a_passed_one_abandons_the_attempt() {
        let sent = std::sync::atomic::AtomicBool::new(false);
        let none = At(Mutex::new(None));
        let r = within(&none, "CreateRoute", async {
            sent.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::Fenced);
        assert!(!sent.load(std::sync::atomic::Ordering::SeqCst));

        let soon = At(Mutex::new(Some(Instant::now() + Duration::from_millis(30))));
        let started = Instant::now();
        let r: Result<(), _> = within(&soon, "CreateRoute", async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        assert_eq!(r.unwrap_err().code, "WriteFenced");
        assert!(started.elapsed() < Duration::from_secs(2));

        let past = At(Mutex::new(Some(Instant::now() - Duration::from_millis(1))));
        let r = within(&past, "CreateRoute", async { Ok(1) }).await;
        assert!(
            r.is_err(),
            "a ready attempt is not even polled past the deadline"
        );
        assert_eq!(
            within(&Unfenced, "CreateRoute", async { Ok(2) })
                .await
                .unwrap(),
            2
        );
    }
}
