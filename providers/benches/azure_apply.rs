//! 400 nodes' routes into one empty Azure route table, against the mock ARM with cloud
//! time running 100× faster (a 10 s long-running operation takes 100 ms of wall time).
//!
//! - `one_put`: cni-cloud: one GET, one conditional PUT with all 400 routes, LRO looks on
//!   a growing schedule capped by `Retry-After`. Expected: ≈ one LRO duration.
//! - `upstream_design`: the same PUT wrapped in the upstream cloud-provider-azure timing
//!   (wait for the 30 s reconcile tick, PUT, then the 30 s sleep under the lock), run
//!   side by side at the same time scale: ≥ 60 s of cloud time per batch.
//!
//! Run: `cargo bench -p cni-cloud-providers --bench azure_apply`

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cni_cloud_mocks::arm::{ArmConfig, ArmMock};
use cni_cloud_providers::azure::credential::StaticToken;
use cni_cloud_providers::azure::{AzureConfig, AzureProvider};
use cni_cloud_providers::pacing::PacingConfig;
use cni_cloud_providers::{CloudProvider, NextHop, RouteChange, TableId};
use criterion::{Criterion, criterion_group, criterion_main};

const SUB: &str = "00000000-0000-0000-0000-0000000000bb";
const SCALE: f64 = 100.0;
const LRO: Duration = Duration::from_secs(10);
const UPSTREAM_TICK: Duration = Duration::from_secs(30);
const UPSTREAM_SLEEP: Duration = Duration::from_secs(30);
const NODES: u32 = 400;

fn batch() -> Vec<RouteChange> {
    (0..NODES)
        .map(|i| RouteChange::Create {
            destination: format!("10.{}.{}.0/24", 64 + i / 256, i % 256)
                .parse()
                .unwrap(),
            next_hop: NextHop::IpAddress(
                format!("10.0.{}.{}", i / 250, 4 + i % 250).parse().unwrap(),
            ),
        })
        .collect()
}

struct Bench {
    mock: Arc<ArmMock>,
    provider: AzureProvider,
    next: AtomicU32,
    changes: Vec<RouteChange>,
}

impl Bench {
    fn fresh_table(&self) -> TableId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        TableId(self.mock.world().add_route_table(
            SUB,
            "bench",
            &format!("rt{n}"),
            "westeurope",
            vec![],
        ))
    }

    async fn one_put(&self) -> Duration {
        let table = self.fresh_table();
        let start = Instant::now();
        let out = self.provider.apply(&table, &self.changes).await;
        let took = start.elapsed();
        assert!(out.iter().all(|o| o.result.is_ok()));
        assert_eq!(self.mock.world().routes(&table.0).len(), NODES as usize);
        took
    }

    async fn upstream_design(&self) -> Duration {
        let table = self.fresh_table();
        let start = Instant::now();
        tokio::time::sleep(UPSTREAM_TICK.div_f64(SCALE)).await;
        let out = self.provider.apply(&table, &self.changes).await;
        assert!(out.iter().all(|o| o.result.is_ok()));
        tokio::time::sleep(UPSTREAM_SLEEP.div_f64(SCALE)).await;
        start.elapsed()
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (bench, _server) = rt.block_on(async {
        let mock = ArmMock::new(ArmConfig {
            time_scale: SCALE,
            lro_duration: LRO,
            ..ArmConfig::default()
        })
        .unwrap();
        let server = mock.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut config = AzureConfig::new(SUB, vec!["bench/rt0".into()], "bench");
        config.endpoint = server.url();
        config.pacing = PacingConfig {
            share: 1.0,
            time_scale: SCALE,
        };
        let provider = AzureProvider::new(config, Arc::new(StaticToken::new("bench"))).unwrap();
        (
            Bench {
                mock,
                provider,
                next: AtomicU32::new(0),
                changes: batch(),
            },
            server,
        )
    });

    // One measured pass, reported in cloud seconds next to the upstream design.
    let ours = rt.block_on(bench.one_put());
    let stats = bench.mock.stats();
    let puts = stats.count("Microsoft.Network/routeTables/write", "ok");
    let polls = stats.count("Microsoft.Network/locations/operations/read", "ok");
    let upstream = rt.block_on(bench.upstream_design());
    println!(
        "azure_apply: {NODES} routes, one table: cni-cloud {:.1} s cloud ({} PUT, {} LRO polls; LRO = {} s) vs upstream design {:.1} s cloud: {:.1}x faster",
        ours.as_secs_f64() * SCALE,
        puts,
        polls,
        LRO.as_secs(),
        upstream.as_secs_f64() * SCALE,
        upstream.as_secs_f64() / ours.as_secs_f64(),
    );

    let mut group = c.benchmark_group("azure_400_routes_one_table");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("one_put", |b| {
        b.to_async(&rt).iter(|| bench.one_put());
    });
    group.bench_function("upstream_design", |b| {
        b.to_async(&rt).iter(|| bench.upstream_design());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
