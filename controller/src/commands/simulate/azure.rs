//! The Azure side of `simulate`: the mock ARM in-process, route tables with foreign
//! routes, one VM + NIC per node, and the real Azure provider (one PUT per table per pass).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{Value, json};

use cni_cloud_mocks::arm::{ArmConfig, ArmMock, IDENTITY_PATH, NicSpec};
use cni_cloud_mocks::common::RunningServer;
use cni_cloud_providers::CloudProvider;
use cni_cloud_providers::azure::credential::StaticToken;
use cni_cloud_providers::azure::{AzureConfig, AzureProvider};
use cni_cloud_providers::pacing::PacingConfig;
use cni_cloud_providers::retry::RetryPolicy;

use super::args::SimulateArgs;
use super::cloud::{Applied, CounterProbe, Judgement, Sent, SimCloud, Tally, calls_by_action};
use super::cluster::{Capacity, ForeignPlace, SimCluster, SimNode};

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000c0de";
const GROUP: &str = "sim-rg";
const LOCATION: &str = "westeurope";
const PREFIX: &str = "sim";

pub struct AzureSim {
    mock: Arc<ArmMock>,
    server: RunningServer,
    provider: Arc<dyn CloudProvider>,
    tables: Vec<String>,
    /// table id → foreign route JSON as seeded (must stay byte-for-byte).
    foreign: BTreeMap<String, Vec<Value>>,
    /// Where each foreign route (by index) was placed.
    placed: Vec<(u32, ForeignPlace)>,
    /// Per table, the destinations present before the controller acted on the current
    /// cluster (at start, and again right before churn): quota admission keeps those in
    /// place, the rest go oldest first. Never the final state the controller shaped.
    before: BTreeMap<String, BTreeSet<IpNet>>,
    /// `--lose-table`: the table deleted mid-run, which must stay deleted (a controller
    /// that PUTs it back has recreated a table that is no longer the cluster's).
    lost: Option<String>,
    /// The managed tables as created (foreign routes were spread over them in turn).
    seeded_tables: Vec<String>,
    route_limit: u64,
    lro: Duration,
    time_scale: f64,
    seed: u64,
    dual_stack: bool,
}

fn nic(n: &SimNode) -> NicSpec {
    NicSpec {
        ipv4: n.ipv4,
        ipv6: n.ipv6,
        ip_forwarding: n.forwarding,
    }
}

fn vm_name(n: &SimNode) -> String {
    format!("sim-vm-{:05}-g{}", n.slot, n.generation)
}

impl AzureSim {
    pub async fn start(args: &SimulateArgs, cluster: &mut SimCluster) -> anyhow::Result<AzureSim> {
        let route_limit = args.route_limit.unwrap_or(400);
        let scale = args.time_scale;
        let config = ArmConfig {
            time_scale: scale,
            latency: Duration::from_millis(args.latency_ms).div_f64(scale),
            fault_rate: args.faults,
            route_limit: route_limit as usize,
            lro_duration: Duration::from_secs_f64(args.lro_seconds),
            ..ArmConfig::default()
        };
        let lro = config.lro_duration;
        let mock = ArmMock::new(config).map_err(anyhow::Error::msg)?;
        let mut tables = Vec::new();
        let mut foreign = BTreeMap::new();
        {
            let mut w = mock.world();
            for t in 0..args.tables {
                let routes: Vec<Value> = (0..args.foreign_routes)
                    .filter(|k| k % args.tables == t)
                    .map(|k| {
                        foreign_route(
                            k,
                            ForeignPlace::of(k, args.nodes).destination(k, args.nodes),
                        )
                    })
                    .collect();
                let id = w.add_route_table(
                    SUBSCRIPTION,
                    GROUP,
                    &format!("sim-nodes-{t}"),
                    LOCATION,
                    routes,
                );
                foreign.insert(id.clone(), w.routes(&id));
                tables.push(id);
            }
            for n in cluster.nodes.iter_mut() {
                let ids = w.add_vm(SUBSCRIPTION, GROUP, &vm_name(n), LOCATION, nic(n));
                n.instance_id = ids.vm_id;
                n.interface_id = ids.nic_id;
                n.node.provider_id = Some(ids.provider_id);
            }
        }
        let server = mock.serve("127.0.0.1:0".parse().expect("constant")).await?;
        let mut config = AzureConfig::new(SUBSCRIPTION, tables.clone(), PREFIX);
        config.endpoint = server.url();
        config.route_limit = route_limit;
        config.pacing = PacingConfig {
            share: 1.0,
            time_scale: scale,
        };
        config.retry = RetryPolicy::default().scaled(scale);
        config.request_timeout = Duration::from_secs_f64((30.0 / scale).max(2.0));
        config.lro_timeout = Duration::from_secs_f64(600.0 / scale);
        let provider = AzureProvider::new(config, Arc::new(StaticToken::new("simulate")))?;
        let before = destinations(&mock, &tables);
        Ok(AzureSim {
            before,
            mock,
            server,
            provider: Arc::new(provider),
            seeded_tables: tables.clone(),
            tables,
            foreign,
            lost: None,
            placed: (0..args.foreign_routes)
                .map(|k| (k, ForeignPlace::of(k, args.nodes)))
                .collect(),
            route_limit: u64::from(route_limit),
            lro,
            time_scale: scale,
            seed: args.seed,
            dual_stack: args.dual_stack,
        })
    }
}

impl SimCloud for AzureSim {
    fn provider(&self) -> Arc<dyn CloudProvider> {
        self.provider.clone()
    }

    /// The mock ARM's log, each request named by the client its token was issued to.
    fn requests(&self) -> Vec<Sent> {
        (self.mock.requests().into_iter())
            .map(|r| Sent {
                at: r.at,
                mutating: r.is_mutating(),
                client: r.client,
                action: r.action,
            })
            .collect()
    }

    fn request_count(&self) -> usize {
        self.mock.request_count()
    }

    /// Route changes (whether a whole-table PUT or one route's write carried them) and NIC
    /// writes, as the mock accepted them.
    fn applied(&self) -> Vec<Applied> {
        (self.mock.mutations().into_iter())
            .map(|m| Applied {
                at: m.at,
                route: (m.action != "NicWritten")
                    .then(|| format!("{} {} {}", m.action, m.subject, m.detail)),
            })
            .collect()
    }

    /// The controller's own credential path: managed identity (App Service style), from
    /// the mock's identity endpoint, as user-assigned client `replica-<n>`; every request
    /// with that token is logged under the client id.
    fn replica_env(&self, replica: u32) -> (String, Vec<(String, String)>) {
        let client = format!("replica-{replica}");
        let env = [
            ("CNI_CLOUD_CLOUD", "azure".to_owned()),
            ("CNI_CLOUD_AZURE_ENDPOINT", self.server.url()),
            ("CNI_CLOUD_ROUTE_TABLES", self.tables.join(",")),
            ("CNI_CLOUD_ROUTE_LIMIT", self.route_limit.to_string()),
            ("CNI_CLOUD_AZURE_ROUTE_PREFIX", PREFIX.to_owned()),
            ("CNI_CLOUD_AZURE_CREDENTIAL", "managed-identity".to_owned()),
            (
                "IDENTITY_ENDPOINT",
                format!("{}{IDENTITY_PATH}", self.server.url()),
            ),
            ("IDENTITY_HEADER", "simulate".to_owned()),
            ("AZURE_CLIENT_ID", client.clone()),
        ];
        (client, env.map(|(k, v)| (k.to_owned(), v)).into())
    }

    fn judge(&self, cluster: &SimCluster) -> Judgement {
        let w = self.mock.world();
        let foreign_routes = self.foreign.values().map(|v| v.len() as u64).sum();
        let mut tally = Tally::new(cluster, self.tables.len(), foreign_routes);
        // The lost table stays deleted: written back, every route in it was written into a
        // table that is no longer the cluster's.
        if let Some(id) = &self.lost
            && w.get(id).is_some()
        {
            for _ in 0..w.routes(id).len().max(1) {
                tally.foreign_touched();
            }
        }
        let node_ip: BTreeMap<&str, (Option<IpAddr>, Option<IpAddr>)> = cluster
            .nodes
            .iter()
            .map(|n| {
                (
                    n.interface_id.as_str(),
                    (Some(IpAddr::V4(n.ipv4)), n.ipv6.map(IpAddr::V6)),
                )
            })
            .collect();
        for id in &self.tables {
            let routes = w.routes(id);
            let foreign = &self.foreign[id];
            let capacity = Capacity::Shared(self.route_limit.saturating_sub(foreign.len() as u64));
            let existing = self.before.get(id).cloned().unwrap_or_default();
            let foreign_dests: BTreeSet<IpNet> = foreign
                .iter()
                .filter_map(|r| r["properties"]["addressPrefix"].as_str()?.parse().ok())
                .collect();
            let (expected, blocked) = cluster.expected(capacity, &existing, &foreign_dests);
            tally.table(expected.len(), blocked);
            for (k, place) in &self.placed {
                if &self.seeded_tables[*k as usize % self.seeded_tables.len()] == id
                    && let Some(slot) = place.conflicts_with()
                {
                    tally.conflict(slot);
                }
            }
            for r in &routes {
                let props = &r["properties"];
                let Some(dest) = props["addressPrefix"]
                    .as_str()
                    .and_then(|p| p.parse::<IpNet>().ok())
                else {
                    continue;
                };
                let hop = props["nextHopIpAddress"]
                    .as_str()
                    .and_then(|h| h.parse::<IpAddr>().ok());
                if let Some(nic) = expected.get(&dest) {
                    let (v4, v6) = node_ip.get(nic.as_str()).copied().unwrap_or((None, None));
                    let want = if matches!(dest, IpNet::V4(_)) { v4 } else { v6 };
                    let ours = r["name"].as_str().is_some_and(|n| n.starts_with("sim--"));
                    if ours
                        && hop.is_some()
                        && hop == want
                        && props["nextHopType"] == "VirtualAppliance"
                    {
                        tally.present(&dest);
                    } else {
                        tally.wrong();
                    }
                } else if tally.is_node_cidr(&dest) && !foreign_dests.contains(&dest) {
                    tally.wrong();
                }
            }
            for f in foreign {
                if !routes
                    .iter()
                    .any(|r| strip_server_fields(r) == strip_server_fields(f))
                {
                    tally.foreign_touched();
                }
            }
        }
        tally.finish()
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        calls_by_action(self.mock.stats())
    }

    fn mutating_calls(&self) -> u64 {
        self.api_calls()
            .iter()
            .filter(|(a, _)| a.ends_with("/write") || a.ends_with("/delete"))
            .map(|(_, n)| n)
            .sum()
    }

    fn list_calls(&self) -> u64 {
        self.calls_of("Microsoft.Network/routeTables/read")
    }

    /// VM and NIC reads.
    fn node_reads(&self) -> u64 {
        self.api_calls()
            .iter()
            .filter(|(action, _)| {
                (action.contains("/virtualMachines") || action.contains("/networkInterfaces"))
                    && action.ends_with("/read")
            })
            .map(|(_, n)| n)
            .sum()
    }

    fn throttled(&self) -> u64 {
        self.mock.stats().total("throttled")
    }

    fn faults_injected(&self) -> u64 {
        self.mock.world().faults_injected() + self.mock.read_faults_injected()
    }

    fn set_read_faults(&self, rate: f64) {
        self.mock.set_read_faults(rate);
    }

    fn counter_probe(&self) -> CounterProbe {
        let mock = self.mock.clone();
        Box::new(move || {
            let faults = mock.world().faults_injected() + mock.read_faults_injected();
            (mock.stats().total("throttled"), faults)
        })
    }

    /// Tables are written in parallel, each in one PUT: the floor is one operation,
    /// however many writes.
    fn floor_seconds(&self, _writes: u64) -> f64 {
        self.lro.as_secs_f64() / self.time_scale
    }

    /// Delete the victims' VMs with their NICs. ARM has no blackhole state: their routes
    /// keep pointing at addresses no NIC holds any more, and those are what is counted.
    fn terminate(&mut self, cluster: &SimCluster, victims: &[usize]) -> u64 {
        let mut w = self.mock.world();
        let mut dead = BTreeSet::new();
        for &i in victims {
            let n = &cluster.nodes[i];
            w.delete_vm(&n.instance_id).expect("the victim's VM exists");
            dead.insert(IpAddr::V4(n.ipv4));
            dead.extend(n.ipv6.map(IpAddr::V6));
        }
        let live = w.private_ips();
        (self.tables.iter().flat_map(|t| w.routes(t)))
            .filter_map(|r| r["properties"]["nextHopIpAddress"].as_str()?.parse().ok())
            .filter(|hop: &IpAddr| dead.contains(hop) && !live.contains(hop))
            .count() as u64
    }

    /// Delete the last managed table (Azure tables are configured by id, there is no
    /// ownership tag to take away): the controller must go on with the others, and never
    /// write it back.
    fn lose_table(&mut self) -> Option<(String, u64)> {
        if self.tables.len() < 2 {
            return None;
        }
        let id = self.tables.pop()?;
        let gone = self.mock.world().delete_route_table(&id)?;
        // Its seeded foreign routes went with it: not ours to keep any more.
        self.foreign.remove(&id);
        let routes = gone["properties"]["routes"].as_array().map_or(0, Vec::len);
        self.lost = Some(id.clone());
        Some((id, routes as u64))
    }

    fn churn(&mut self, cluster: &SimCluster, victims: &[usize]) -> SimCluster {
        self.before = destinations(&self.mock, &self.tables);
        let mut next = cluster.clone();
        let mut w = self.mock.world();
        for &i in victims {
            let old = &cluster.nodes[i];
            let mut n = SimCluster::node(self.seed, old.slot, old.generation + 1, self.dual_stack);
            let ids = w.add_vm(SUBSCRIPTION, GROUP, &vm_name(&n), LOCATION, nic(&n));
            n.instance_id = ids.vm_id;
            n.interface_id = ids.nic_id;
            n.node.provider_id = Some(ids.provider_id);
            next.nodes[i] = n;
        }
        next
    }
}

/// A foreign route: gateways, appliances of other teams, another cluster's prefix.
fn foreign_route(k: u32, destination: IpNet) -> Value {
    let prefix = destination.to_string();
    let name_part = prefix.replace('/', "_");
    match k % 3 {
        0 => json!({"name": format!("ops-vpn-{k}"), "properties": {
            "addressPrefix": prefix, "nextHopType": "VirtualNetworkGateway"}}),
        1 => json!({"name": format!("firewall-{k}"), "properties": {
            "addressPrefix": prefix, "nextHopType": "VirtualAppliance",
            "nextHopIpAddress": "10.255.0.4"}}),
        _ => json!({"name": format!("sim2--{name_part}"), "properties": {
            "addressPrefix": prefix, "nextHopType": "VirtualAppliance",
            "nextHopIpAddress": "10.255.0.5"}}),
    }
}

/// Every table's destinations as the mock holds them now.
fn destinations(mock: &ArmMock, tables: &[String]) -> BTreeMap<String, BTreeSet<IpNet>> {
    let w = mock.world();
    tables
        .iter()
        .map(|id| {
            let dests = w
                .routes(id)
                .iter()
                .filter_map(|r| r["properties"]["addressPrefix"].as_str()?.parse().ok())
                .collect();
            (id.clone(), dests)
        })
        .collect()
}

/// A route as the client wrote it, without what ARM adds (etag, provisioning state, id).
fn strip_server_fields(r: &Value) -> Value {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("etag");
    }
    if let Some(p) = r["properties"].as_object_mut() {
        p.remove("provisioningState");
    }
    r
}
