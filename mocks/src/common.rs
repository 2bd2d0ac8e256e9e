//! What every mock shares: server-side token buckets, fault/latency knobs, call stats and
//! the loopback listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A cloud-side token bucket: `capacity` tokens, refilled continuously at `refill_per_sec`.
#[derive(Debug)]
pub struct ServerBucket {
    capacity: f64,
    refill_per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl ServerBucket {
    pub fn new(capacity: u32, refill_per_sec: f64) -> Self {
        ServerBucket {
            capacity: capacity as f64,
            refill_per_sec,
            state: Mutex::new((capacity as f64, Instant::now())),
        }
    }

    /// Take one token, or say how long until one is available.
    pub fn try_take(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().expect("bucket lock");
        let now = Instant::now();
        let (tokens, last) = *state;
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.refill_per_sec)
            .min(self.capacity);
        if refilled >= 1.0 {
            *state = (refilled - 1.0, now);
            Ok(())
        } else {
            *state = (refilled, now);
            Err(Duration::from_secs_f64(
                (1.0 - refilled) / self.refill_per_sec,
            ))
        }
    }

    /// Tokens left right now (whole tokens), for `x-ms-ratelimit-remaining-*` headers.
    pub fn remaining(&self) -> u32 {
        let state = self.state.lock().expect("bucket lock");
        let (tokens, last) = *state;
        (tokens + last.elapsed().as_secs_f64() * self.refill_per_sec)
            .min(self.capacity)
            .floor() as u32
    }

    /// Spend every token (a noisy neighbour in the same account).
    pub fn drain(&self) {
        let mut state = self.state.lock().expect("bucket lock");
        *state = (0.0, Instant::now());
    }
}

/// Call counts per action and outcome, served as JSON on `GET /_mock/stats`.
#[derive(Debug, Default)]
pub struct Stats {
    calls: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl Stats {
    pub fn record(&self, action: &str, outcome: &str) {
        let mut calls = self.calls.lock().expect("stats lock");
        *calls
            .entry(action.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.calls.lock().expect("stats lock").clone()
    }

    pub fn count(&self, action: &str, outcome: &str) -> u64 {
        self.snapshot()
            .get(action)
            .and_then(|o| o.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Total over every action for one outcome.
    pub fn total(&self, outcome: &str) -> u64 {
        self.snapshot()
            .values()
            .filter_map(|o| o.get(outcome))
            .sum()
    }

    pub fn reset(&self) {
        self.calls.lock().expect("stats lock").clear();
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.snapshot()).expect("stats serialize")
    }
}

/// A mock server running on a loopback port inside this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting and wait for the server task to end.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Bind `listen` (port 0 picks a free port) and serve `router` until stopped.
pub async fn serve(listen: SocketAddr, router: axum::Router) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
    });
    Ok(RunningServer {
        addr,
        shutdown,
        task: Some(task),
    })
}

/// Serve from the command line: print the one "listening on" line tests wait for, then run
/// until Ctrl-C / SIGTERM.
pub async fn serve_forever(listen: SocketAddr, router: axum::Router) -> anyhow::Result<()> {
    let server = serve(listen, router).await?;
    println!("listening on {}", server.url());
    use std::io::Write;
    std::io::stdout().flush()?;
    shutdown_signal().await;
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_spends_burst_then_refuses_with_wait() {
        let b = ServerBucket::new(3, 10.0);
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_ok());
        let wait = b.try_take().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        b.drain();
        assert_eq!(b.remaining(), 0);
    }

    #[test]
    fn stats_count_by_action_and_outcome() {
        let s = Stats::default();
        s.record("CreateRoute", "ok");
        s.record("CreateRoute", "throttled");
        s.record("DeleteRoute", "ok");
        assert_eq!(s.count("CreateRoute", "ok"), 1);
        assert_eq!(s.total("ok"), 2);
        assert_eq!(s.to_json()["CreateRoute"]["throttled"], 1);
    }
}
