//! The AWS side of `simulate`: the mock EC2 in-process, a VPC with one tagged route table
//! per zone, one instance per node, foreign routes, and the real AWS provider.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::ec2::{Ec2Config, Ec2Mock, Eni, Instance, Origin, Seed, Target, Vpc};
use cni_cloud_providers::CloudProvider;
use cni_cloud_providers::aws::{AwsConfig, AwsProvider, StaticCredentials};
use cni_cloud_providers::pacing::{EC2_MUTATING, PacingConfig};
use cni_cloud_providers::retry::RetryPolicy;

use super::args::SimulateArgs;
use super::cloud::{Applied, CounterProbe, Judgement, Sent, SimCloud, Tally, calls_by_action};
use super::cluster::{Capacity, ForeignPlace, SimCluster, SimNode};

const CLUSTER: &str = "sim";
const VPC: &str = "vpc-0c0ffee0000000001";
const MUTATING: &[&str] = &[
    "CreateRoute",
    "ReplaceRoute",
    "DeleteRoute",
    "ModifyNetworkInterfaceAttribute",
];

pub struct AwsSim {
    pub mock: Ec2Mock,
    pub server: RunningServer,
    provider: Arc<dyn CloudProvider>,
    tables: Vec<String>,
    /// (table, destination) → target of every foreign route, as seeded.
    foreign: BTreeMap<(String, IpNet), Target>,
    /// Where each foreign route (by index) was placed.
    placed: Vec<(u32, ForeignPlace)>,
    /// Per table, the destinations present before the controller acted on the current
    /// cluster (at start, and again right before churn changes it): quota admission keeps
    /// those in place, the rest go oldest first. Never the final state, which the
    /// controller itself shaped.
    before: BTreeMap<String, BTreeSet<IpNet>>,
    /// `--lose-table`: the table taken out of the cluster mid-run, with its routes (and
    /// their targets) as they were then: foreign from that moment on.
    lost: Option<(String, Vec<(IpNet, Target)>)>,
    /// The managed tables as created (foreign routes were spread over them in turn).
    seeded_tables: Vec<String>,
    route_limit: u64,
    time_scale: f64,
    seed: u64,
    dual_stack: bool,
}

fn instance_id(slot: u32, generation: u32) -> String {
    format!("i-0{generation:02x}{slot:014x}")
}

fn eni_id(slot: u32, generation: u32) -> String {
    format!("eni-0{generation:02x}{slot:014x}")
}

fn cluster_tags() -> BTreeMap<String, String> {
    BTreeMap::from([(
        format!("kubernetes.io/cluster/{CLUSTER}"),
        "owned".to_owned(),
    )])
}

fn instance_of(n: &SimNode) -> Instance {
    Instance {
        id: n.instance_id.clone(),
        availability_zone: "us-east-1a".into(),
        tags: cluster_tags(),
        terminated: false,
        network_interfaces: vec![Eni {
            id: n.interface_id.clone(),
            device_index: 0,
            private_ip: n.ipv4,
            ipv6: n.ipv6,
            source_dest_check: !n.forwarding,
        }],
    }
}

fn fill_ids(n: &mut SimNode) {
    n.instance_id = instance_id(n.slot, n.generation);
    n.interface_id = eni_id(n.slot, n.generation);
    n.node.provider_id = Some(format!("aws:///us-east-1a/{}", n.instance_id));
}

impl AwsSim {
    pub async fn start(args: &SimulateArgs, cluster: &mut SimCluster) -> anyhow::Result<AwsSim> {
        let route_limit = args.route_limit.unwrap_or(1000);
        let scale = args.time_scale;
        let config = Ec2Config {
            route_limit: route_limit as usize,
            throttle: true,
            time_scale: scale,
            latency: Duration::from_millis(args.latency_ms).div_f64(scale),
            fault_rate: args.faults,
            describe_lag: Duration::from_millis(args.describe_lag_ms).div_f64(scale),
        };
        let mock = Ec2Mock::new(config, Seed::default()).map_err(anyhow::Error::msg)?;
        let tables: Vec<String> = (0..args.tables).map(|t| format!("rtb-0{t:016x}")).collect();
        let mut foreign = BTreeMap::new();
        mock.with_world(|w| -> anyhow::Result<()> {
            w.vpcs.insert(
                VPC.into(),
                Vpc {
                    id: VPC.into(),
                    cidr: "10.0.0.0/8".parse().expect("constant"),
                    ipv6_cidr: args
                        .dual_stack
                        .then(|| "2600:1f18:1234:5600::/56".parse().expect("constant")),
                },
            );
            for (i, t) in tables.iter().enumerate() {
                let mut tags = cluster_tags();
                tags.insert("Name".into(), format!("sim-zone-{i}"));
                w.add_table(t, VPC, tags).map_err(anyhow::Error::msg)?;
            }
            // An instance of another cluster, whose routes are foreign to us.
            w.add_instance(Instance {
                id: "i-0ther000000000001".into(),
                availability_zone: "us-east-1a".into(),
                tags: BTreeMap::from([("kubernetes.io/cluster/other".into(), "owned".into())]),
                terminated: false,
                network_interfaces: vec![Eni {
                    id: "eni-0ther000000000001".into(),
                    device_index: 0,
                    private_ip: Ipv4Addr::new(10, 255, 255, 4),
                    ipv6: None,
                    source_dest_check: false,
                }],
            })
            .map_err(anyhow::Error::msg)?;
            for k in 0..args.foreign_routes {
                let table = &tables[k as usize % tables.len()];
                let destination = ForeignPlace::of(k, args.nodes).destination(k, args.nodes);
                let target = match k % 5 {
                    0 => Target::Gateway("igw-0c0ffee000000001".into()),
                    1 => Target::NatGateway("nat-0c0ffee000000001".into()),
                    2 => Target::VpcPeeringConnection("pcx-0c0ffee000000001".into()),
                    3 => Target::TransitGateway("tgw-0c0ffee000000001".into()),
                    _ => Target::NetworkInterface("eni-0ther000000000001".into()),
                };
                w.insert_route(
                    table,
                    destination,
                    target.clone(),
                    Origin::CreateRoute,
                    Instant::now(),
                )
                .map_err(anyhow::Error::msg)?;
                foreign.insert((table.clone(), destination), target);
            }
            for n in cluster.nodes.iter_mut() {
                fill_ids(n);
                w.add_instance(instance_of(n)).map_err(anyhow::Error::msg)?;
            }
            Ok(())
        })?;
        let server = mock
            .clone()
            .start("127.0.0.1:0".parse().expect("constant"))
            .await?;
        let mut config = AwsConfig::new(CLUSTER, "us-east-1");
        config.endpoint = Some(server.url());
        config.credentials = Some(StaticCredentials {
            access_key_id: "AKIDSIMULATE".into(),
            secret_access_key: "simulate".into(),
        });
        config.route_limit = route_limit;
        config.pacing = PacingConfig {
            share: 1.0,
            time_scale: scale,
        };
        config.retry = RetryPolicy::default().scaled(scale);
        config.call_timeout = Duration::from_secs_f64((30.0 / scale).max(2.0));
        let provider = AwsProvider::new(config).await?;
        let before = Self::destinations(&mock);
        Ok(AwsSim {
            before,
            mock,
            server,
            provider: Arc::new(provider),
            seeded_tables: tables.clone(),
            tables,
            foreign,
            placed: (0..args.foreign_routes)
                .map(|k| (k, ForeignPlace::of(k, args.nodes)))
                .collect(),
            lost: None,
            route_limit: u64::from(route_limit),
            time_scale: scale,
            seed: args.seed,
            dual_stack: args.dual_stack,
        })
    }

    /// Every managed table's destinations as the mock holds them now.
    fn destinations(mock: &Ec2Mock) -> BTreeMap<String, BTreeSet<IpNet>> {
        mock.with_world(|w| {
            w.tables
                .iter()
                .map(|(id, t)| (id.clone(), t.routes.iter().map(|r| r.destination).collect()))
                .collect()
        })
    }

    /// The routes `table` must hold: everything that is not a node route (local, foreign)
    /// takes room first, per family as EC2 counts it.
    fn expected_in(
        &self,
        table: &cni_cloud_mocks::ec2::state::Table,
        cluster: &SimCluster,
        tally: &Tally<'_>,
    ) -> (BTreeMap<IpNet, String>, BTreeSet<String>) {
        let foreign_here = |d: &IpNet| self.foreign.contains_key(&(table.id.clone(), *d));
        // Everything that is not going to be a node route of ours takes room first.
        let others = |v6: bool| {
            table
                .routes
                .iter()
                .filter(|r| matches!(r.destination, IpNet::V6(_)) == v6)
                .filter(|r| !tally.is_node_cidr(&r.destination) || foreign_here(&r.destination))
                .count() as u64
        };
        let capacity = Capacity::PerFamily {
            v4: self.route_limit.saturating_sub(others(false)),
            v6: self.route_limit.saturating_sub(others(true)),
        };
        let existing = self.before.get(&table.id).cloned().unwrap_or_default();
        let taken: BTreeSet<IpNet> = self
            .foreign
            .keys()
            .filter(|(t, _)| *t == table.id)
            .map(|(_, d)| *d)
            .collect();
        cluster.expected(capacity, &existing, &taken)
    }
}

impl SimCloud for AwsSim {
    fn provider(&self) -> Arc<dyn CloudProvider> {
        self.provider.clone()
    }

    /// The mock EC2's log, each request named by its SigV4 access key.
    fn requests(&self) -> Vec<Sent> {
        (self.mock.requests().into_iter())
            .map(|r| Sent {
                at: r.at,
                mutating: MUTATING.contains(&r.action.as_str()),
                client: r.client,
                action: r.action,
            })
            .collect()
    }

    fn applied(&self) -> Vec<Applied> {
        (self.mock.mutations().into_iter())
            .map(|m| Applied {
                at: m.at,
                route: (m.action != "ModifyNetworkInterfaceAttribute")
                    .then(|| format!("{} {} {}", m.action, m.subject, m.detail)),
            })
            .collect()
    }

    /// Its own access key: the mock EC2 logs every request with it.
    fn replica_env(&self, replica: u32) -> (String, Vec<(String, String)>) {
        let key = format!("AKIDSIMREPLICA{replica}");
        let env = [
            ("CNI_CLOUD_CLOUD", "aws".to_owned()),
            ("CNI_CLOUD_AWS_ENDPOINT", self.server.url()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", key.clone()),
            ("AWS_SECRET_ACCESS_KEY", "simulate".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("CNI_CLOUD_ROUTE_LIMIT", self.route_limit.to_string()),
        ];
        (key, env.map(|(k, v)| (k.to_owned(), v)).into())
    }

    fn judge(&self, cluster: &SimCluster) -> Judgement {
        self.mock.with_world(|w| {
            let lost_routes = self.lost.as_ref().map_or(0, |(_, r)| r.len());
            let mut tally = Tally::new(
                cluster,
                self.tables.len(),
                (self.foreign.len() + lost_routes) as u64,
            );
            // The lost table: every route it held when it left the cluster stays as it was.
            if let Some((id, routes)) = &self.lost {
                let table = w.tables.get(id);
                for (dest, target) in routes {
                    if !table.is_some_and(|t| {
                        t.routes
                            .iter()
                            .any(|r| r.destination == *dest && r.target == *target)
                    }) {
                        tally.foreign_touched();
                    }
                }
            }
            for id in &self.tables {
                let Some(table) = w.tables.get(id) else {
                    continue;
                };
                let (expected, blocked) = self.expected_in(table, cluster, &tally);
                tally.table(expected.len(), blocked);
                for r in &table.routes {
                    let view = w.view(r);
                    if let Some(eni) = expected.get(&r.destination) {
                        if view.target == Target::NetworkInterface(eni.clone()) && !view.blackhole {
                            tally.present(&r.destination);
                        } else {
                            tally.wrong();
                        }
                    } else if tally.is_node_cidr(&r.destination)
                        && !self.foreign.contains_key(&(id.clone(), r.destination))
                        && (view.blackhole
                            || !matches!(&view.target, Target::NetworkInterface(e)
                                if cluster.nodes.iter().any(|n| &n.interface_id == e)))
                    {
                        tally.wrong();
                    }
                }
                for (k, place) in &self.placed {
                    if &self.seeded_tables[*k as usize % self.seeded_tables.len()] == id
                        && let Some(slot) = place.conflicts_with()
                    {
                        tally.conflict(slot);
                    }
                }
                for ((t, dest), target) in &self.foreign {
                    if t == id
                        && !table
                            .routes
                            .iter()
                            .any(|r| r.destination == *dest && r.target == *target)
                    {
                        tally.foreign_touched();
                    }
                }
            }
            tally.finish()
        })
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        calls_by_action(self.mock.stats())
    }

    fn mutating_calls(&self) -> u64 {
        let calls = self.api_calls();
        MUTATING
            .iter()
            .map(|a| calls.get(*a).copied().unwrap_or(0))
            .sum()
    }

    fn list_calls(&self) -> u64 {
        self.calls_of("DescribeRouteTables")
    }

    fn node_reads(&self) -> u64 {
        self.calls_of("DescribeInstances")
    }

    fn throttled(&self) -> u64 {
        self.mock.stats().total("throttled")
    }

    fn faults_injected(&self) -> u64 {
        self.mock.faults_injected()
    }

    fn set_read_faults(&self, rate: f64) {
        self.mock.set_read_faults(rate);
    }

    fn counter_probe(&self) -> CounterProbe {
        let mock = self.mock.clone();
        Box::new(move || (mock.stats().total("throttled"), mock.faults_injected()))
    }

    /// EC2's mutating bucket: the burst is free, the rest comes at the refill rate.
    fn floor_seconds(&self, writes: u64) -> f64 {
        let beyond = writes.saturating_sub(u64::from(EC2_MUTATING.burst));
        beyond as f64 / (EC2_MUTATING.per_second * self.time_scale)
    }

    fn terminate(&mut self, cluster: &SimCluster, victims: &[usize]) -> u64 {
        self.mock.with_world(|w| {
            let enis: BTreeSet<String> = victims
                .iter()
                .map(|&i| {
                    w.terminate(&cluster.nodes[i].instance_id);
                    cluster.nodes[i].interface_id.clone()
                })
                .collect();
            (w.tables.values().flat_map(|t| &t.routes))
                .filter(|r| matches!(&r.target, Target::NetworkInterface(e) if enis.contains(e)))
                .filter(|r| w.view(r).blackhole)
                .count() as u64
        })
    }

    fn lose_table(&mut self) -> Option<(String, u64)> {
        if self.tables.len() < 2 {
            return None;
        }
        let id = self.tables.pop()?;
        let routes: Vec<(IpNet, Target)> = self.mock.with_world(|w| {
            let t = w.tables.get_mut(&id)?;
            t.tags.remove(&format!("kubernetes.io/cluster/{CLUSTER}"));
            Some(
                t.routes
                    .iter()
                    .map(|r| (r.destination, r.target.clone()))
                    .collect(),
            )
        })?;
        // Its seeded foreign routes are judged with the rest of it.
        self.foreign.retain(|(t, _), _| *t != id);
        let n = routes.len() as u64;
        self.lost = Some((id.clone(), routes));
        Some((id, n))
    }

    fn churn(&mut self, cluster: &SimCluster, victims: &[usize]) -> SimCluster {
        self.before = Self::destinations(&self.mock);
        let mut next = cluster.clone();
        self.mock.with_world(|w| {
            for &i in victims {
                let old = &cluster.nodes[i];
                w.terminate(&old.instance_id);
                let mut n =
                    SimCluster::node(self.seed, old.slot, old.generation + 1, self.dual_stack);
                fill_ids(&mut n);
                w.add_instance(instance_of(&n)).expect("fresh instance id");
                next.nodes[i] = n;
            }
        });
        next
    }
}
