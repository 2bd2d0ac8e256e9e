//! Following long-running writes against the mock ARM, whose `Retry-After` is ARM's fixed
//! 10 s whatever the operation has left: a short write is seen done at about its own
//! length, not the hint's; and no look at it is sent past the write fence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_cloud_mocks::arm::{ArmConfig, ArmMock};
use cni_cloud_mocks::common::RunningServer;

use super::credential::StaticToken;
use super::{AzureConfig, AzureProvider, OP_OPERATION_READ};
use crate::fence::WriteFence;
use crate::pacing::PacingConfig;
use crate::{CloudProvider, ErrorKind, NextHop, RouteChange, TableId};

const SUB: &str = "00000000-0000-0000-0000-0000000000cc";
/// Cloud time runs 10× faster: a 3 s operation takes 300 ms, the 10 s hint 1 s.
const SCALE: f64 = 10.0;

async fn setup(lro: Duration) -> (Arc<ArmMock>, RunningServer, AzureProvider, TableId) {
    let mock = ArmMock::new(ArmConfig {
        time_scale: SCALE,
        lro_duration: lro,
        ..ArmConfig::default()
    })
    .unwrap();
    let table = mock
        .world()
        .add_route_table(SUB, "k8s", "rt", "westeurope", vec![]);
    let server = mock.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut config = AzureConfig::new(SUB, vec![table.clone()], "lro");
    config.endpoint = server.url();
    config.pacing = PacingConfig {
        share: 1.0,
        time_scale: SCALE,
    };
    let provider = AzureProvider::new(config, Arc::new(StaticToken::new("t"))).unwrap();
    (mock, server, provider, TableId(table))
}

fn changes() -> Vec<RouteChange> {
    (0..3)
        .map(|i| RouteChange::Create {
            destination: format!("10.244.{i}.0/24").parse().unwrap(),
            next_hop: NextHop::IpAddress(format!("10.0.0.{}", 4 + i).parse().unwrap()),
        })
        .collect()
}

/// Looks at operations the mock received.
fn looks(mock: &ArmMock) -> usize {
    (mock.requests().iter())
        .filter(|r| r.action == OP_OPERATION_READ)
        .count()
}

fn cloud_secs(wall: Duration) -> f64 {
    wall.as_secs_f64() * SCALE
}

#[tokio::test]
async fn a_3s_write_with_a_10s_retry_after_is_seen_done_in_well_under_10s() {
    let (mock, _server, provider, table) = setup(Duration::from_secs(3)).await;
    let started = Instant::now();
    let out = provider.apply(&table, &changes()).await;
    let took = cloud_secs(started.elapsed());
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(mock.world().routes(&table.0).len(), 3);
    // Sleeping the hint first took ≥ 10 s; the schedule looks at 1.5 s and 3.75 s.
    assert!(
        (3.0..6.0).contains(&took),
        "{took:.2} cloud s for a 3 s operation"
    );
    let polls = looks(&mock);
    assert!((1..=3).contains(&polls), "{polls} looks at a 3 s operation");
}

#[tokio::test]
async fn an_operation_as_long_as_the_hint_is_seen_done_when_the_hint_comes_due() {
    // 10 s: looks at 1.5, 3.75, 7.1 and 10 (the hint), not 12.2 (the grown schedule).
    let (mock, _server, provider, table) = setup(Duration::from_secs(10)).await;
    let started = Instant::now();
    let out = provider.apply(&table, &changes()).await;
    let took = cloud_secs(started.elapsed());
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert!((10.0..11.5).contains(&took), "{took:.2} cloud s");
    let polls = looks(&mock);
    assert!(
        (3..=5).contains(&polls),
        "{polls} looks at a 10 s operation"
    );
}

#[tokio::test]
async fn an_operation_longer_than_the_hint_is_polled_no_slower_than_the_hint() {
    // 25 s: looks at 1.5, 3.75, 7.1, then when the hint comes due (10 s), 17.6, 20 and
    // 30: seen done no later than sleeping the hint each time would.
    let (mock, _server, provider, table) = setup(Duration::from_secs(25)).await;
    let started = Instant::now();
    let out = provider.apply(&table, &changes()).await;
    let took = cloud_secs(started.elapsed());
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert!((25.0..36.0).contains(&took), "{took:.2} cloud s");
    let polls = looks(&mock);
    assert!(
        (5..=7).contains(&polls),
        "{polls} looks at a 25 s operation"
    );
}

/// A fence whose deadline is fixed.
struct At(Mutex<Option<Instant>>);

impl WriteFence for At {
    fn deadline(&self) -> Option<Instant> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn no_look_at_a_running_write_is_sent_past_the_write_fence() {
    let (mock, _server, provider, table) = setup(Duration::from_secs(10)).await;
    // The fence closes 0.5 cloud s after the PUT is sent, long before the operation ends.
    let deadline = Instant::now() + Duration::from_secs_f64(0.5 / SCALE);
    let fence = At(Mutex::new(Some(deadline)));
    let out = provider.apply_fenced(&table, &changes(), &fence).await;
    let err = out[0].result.clone().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fenced, "{err}");
    assert!(err.message.contains("outcome is unknown"), "{err}");
    // The write went out; no look at it did (the first would be at 1.5 s).
    let log = mock.requests();
    assert_eq!(log.iter().filter(|r| r.is_mutating()).count(), 1, "{log:?}");
    assert!(
        !log.iter().any(|r| r.action == OP_OPERATION_READ),
        "{log:?}"
    );

    // A fence renewed meanwhile (a lease renewed by its holder) lets the following go on.
    let (mock, _server, provider, table) = setup(Duration::from_secs(3)).await;
    let fence = Arc::new(At(Mutex::new(Some(
        Instant::now() + Duration::from_secs_f64(1.0 / SCALE),
    ))));
    let renewer = {
        let fence = fence.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs_f64(0.5 / SCALE)).await;
                *fence.0.lock().unwrap() =
                    Some(Instant::now() + Duration::from_secs_f64(1.0 / SCALE));
            }
        })
    };
    let out = provider.apply_fenced(&table, &changes(), &*fence).await;
    renewer.abort();
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(mock.world().routes(&table.0).len(), 3);
}

/// A process stopped between the fence's check and the socket write: the deadline the
/// table PUT's write gate is armed with has passed, while the check around the attempt
/// (asked next) still sees time left — as it did before the pause.
struct StoppedBetweenCheckAndWrite(std::sync::atomic::AtomicU32);

impl WriteFence for StoppedBetweenCheckAndWrite {
    fn deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Some(now - Duration::from_millis(1)),
            _ => Some(now + Duration::from_secs(30)),
        }
    }
}

#[tokio::test]
async fn the_socket_refuses_a_put_whose_deadline_passed_after_the_check() {
    let mock = ArmMock::new(ArmConfig {
        time_scale: SCALE,
        lro_duration: Duration::from_secs(1),
        ..ArmConfig::default()
    })
    .unwrap();
    let table = mock
        .world()
        .add_route_table(SUB, "k8s", "rt", "westeurope", vec![]);
    let server = mock.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut config = AzureConfig::new(SUB, vec![table.clone()], "gate");
    config.endpoint = server.url();
    config.pacing = PacingConfig {
        share: 1.0,
        time_scale: SCALE,
    };
    config.retry.max_attempts = 1;
    let provider = AzureProvider::new(config, Arc::new(StaticToken::new("t"))).unwrap();
    let table = TableId(table);
    let puts = |mock: &ArmMock| {
        (mock.requests().iter())
            .filter(|r| r.method == "PUT")
            .count()
    };

    let fence = StoppedBetweenCheckAndWrite(Default::default());
    let out = provider.apply_fenced(&table, &changes(), &fence).await;
    let err = out[0].result.as_ref().expect_err("refused at the socket");
    assert_ne!(
        err.kind,
        ErrorKind::Fenced,
        "the check around the attempt let it through; the socket must be what refused: {err}"
    );
    assert_eq!(puts(&mock), 0, "no byte of the PUT reached ARM");
    assert!(mock.world().routes(&table.0).is_empty());

    // The same client writes again once its fence is open.
    let out = provider.apply(&table, &changes()).await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(puts(&mock), 1);
    assert_eq!(mock.world().routes(&table.0).len(), 3);
}
