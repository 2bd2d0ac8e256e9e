//! The generated cluster: nodes with podCIDRs, addresses and creation times, and the
//! routes a correct controller must end up with (computed here, independently of the
//! planner, including quota admission).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use cni_cloud_providers::Family;

use super::args::SimulateArgs;
use crate::cluster::ClusterNode;

/// IPv4 pod space: 16384 /24s.
const CLUSTER_V4: &str = "100.64.0.0/10";
/// IPv6 pod space: 65536 /64s.
const CLUSTER_V6: &str = "fd00:10:244::/48";

#[derive(Debug, Clone)]
pub struct SimNode {
    pub node: ClusterNode,
    /// Position in the generated cluster (stable across churn: the podCIDR slot).
    pub slot: u32,
    /// Generation: 0 for the first instance in a slot, +1 per replacement.
    pub generation: u32,
    /// Node address in the VPC / VNet.
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    /// Whether the interface already forwards (source/dest check off, IP forwarding on).
    pub forwarding: bool,
    pub v4_cidr: IpNet,
    pub v6_cidr: Option<IpNet>,
    /// Filled in by the backend: instance / VM id and the interface routes must target.
    pub instance_id: String,
    pub interface_id: String,
}

impl SimNode {
    pub fn cidrs(&self) -> impl Iterator<Item = IpNet> + '_ {
        std::iter::once(self.v4_cidr).chain(self.v6_cidr)
    }
}

#[derive(Debug, Clone)]
pub struct SimCluster {
    pub nodes: Vec<SimNode>,
    pub cluster_cidrs: Vec<IpNet>,
}

/// Room a table has for this cluster's routes.
#[derive(Debug, Clone, Copy)]
pub enum Capacity {
    /// AWS: IPv4 and IPv6 routes count separately.
    PerFamily { v4: u64, v6: u64 },
    /// Azure: one count for the whole table.
    Shared(u64),
}

/// Deterministic 64-bit mix (splitmix64): the generated cluster depends only on the seed.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn node_ipv4(slot: u32, generation: u32) -> Ipv4Addr {
    // 10.<gen*64 + slot/250>.<slot%250 + 4>: unique per (slot, generation) for < 16000 slots.
    let hi = generation * 64 + slot / 250;
    Ipv4Addr::new(
        10,
        (hi % 256) as u8,
        (slot % 250 + 4) as u8,
        (hi / 256) as u8 + 10,
    )
}

impl SimCluster {
    pub fn generate(args: &SimulateArgs) -> SimCluster {
        let v4: Ipv4Net = CLUSTER_V4.parse().expect("constant");
        let v6: Ipv6Net = CLUSTER_V6.parse().expect("constant");
        let mut cluster_cidrs = vec![IpNet::V4(v4)];
        if args.dual_stack {
            cluster_cidrs.push(IpNet::V6(v6));
        }
        let nodes = (0..args.nodes)
            .map(|slot| Self::node(args.seed, slot, 0, args.dual_stack))
            .collect();
        SimCluster {
            nodes,
            cluster_cidrs,
        }
    }

    pub fn node(seed: u64, slot: u32, generation: u32, dual_stack: bool) -> SimNode {
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        let v4_cidr =
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base + slot * 256), 24).expect("valid"));
        let v6_cidr = dual_stack.then(|| {
            let net = (0xfd00_0010_0244u128 << 80) | (u128::from(slot) << 64);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(net), 64).expect("valid"))
        });
        let ipv4 = node_ipv4(slot, generation);
        let ipv6 = dual_stack.then(|| {
            Ipv6Addr::from(
                (0x2600_1f18_1234_5600u128 << 64)
                    | (u128::from(generation) << 32)
                    | (u128::from(slot) + 16),
            )
        });
        let name = format!("sim-node-{slot:05}-g{generation}");
        SimNode {
            node: ClusterNode {
                uid: format!(
                    "{:016x}",
                    mix(seed, u64::from(slot) << 8 | u64::from(generation))
                ),
                // A second apart, replacements after every original.
                created_unix: 1_767_225_600 + i64::from(generation) * 1_000_000 + i64::from(slot),
                name,
                provider_id: None,
                pod_cidrs: std::iter::once(v4_cidr)
                    .chain(v6_cidr)
                    .map(|c| c.to_string())
                    .collect(),
                internal_ips: std::iter::once(IpAddr::V4(ipv4))
                    .chain(ipv6.map(IpAddr::V6))
                    .collect(),
            },
            slot,
            generation,
            ipv4,
            ipv6,
            // One node in ten still has source/dest check or IP forwarding as the cloud's
            // default left it: the controller must fix that first.
            forwarding: !mix(seed, u64::from(slot) + 0x5eed + u64::from(generation))
                .is_multiple_of(10),
            v4_cidr,
            v6_cidr,
            instance_id: String::new(),
            interface_id: String::new(),
        }
    }

    /// Evenly spread slots to replace for `--churn`.
    /// `count` nodes spread evenly over the cluster.
    pub fn victims_n(&self, count: usize) -> Vec<usize> {
        let n = self.nodes.len();
        let count = count.min(n);
        (0..count).map(|k| k * n / count).collect()
    }

    pub fn victims(&self, share: f64) -> Vec<usize> {
        let n = self.nodes.len();
        let count = ((n as f64) * share).round() as usize;
        if count == 0 {
            return Vec::new();
        }
        (0..count).map(|k| k * n / count).collect()
    }

    /// The routes a table must hold (destination → interface) and the nodes left without
    /// room. Quota admission as promised to operators: a route that already exists for a
    /// node's CIDR keeps its place (never evicted), the rest are admitted oldest node first.
    /// A CIDR in `taken` holds a foreign route: never ours to create, and no room spent.
    pub fn expected(
        &self,
        capacity: Capacity,
        existing: &BTreeSet<IpNet>,
        taken: &BTreeSet<IpNet>,
    ) -> (BTreeMap<IpNet, String>, BTreeSet<String>) {
        let mut order: Vec<(bool, &SimNode, IpNet)> = self
            .nodes
            .iter()
            .flat_map(|n| n.cidrs().map(move |c| (!existing.contains(&c), n, c)))
            .filter(|(_, _, c)| !taken.contains(c))
            .collect();
        order.sort_by(|(new_a, a, ca), (new_b, b, cb)| {
            (new_a, a.node.created_unix, &a.node.name, ca).cmp(&(
                new_b,
                b.node.created_unix,
                &b.node.name,
                cb,
            ))
        });
        let (mut v4_left, mut v6_left, mut shared_left) = match capacity {
            Capacity::PerFamily { v4, v6 } => (v4, v6, u64::MAX),
            Capacity::Shared(n) => (u64::MAX, u64::MAX, n),
        };
        let mut routes = BTreeMap::new();
        let mut blocked = BTreeSet::new();
        for (_, n, cidr) in order {
            let left = match Family::of(&cidr) {
                Family::V4 => &mut v4_left,
                Family::V6 => &mut v6_left,
            };
            if *left > 0 && shared_left > 0 {
                *left -= 1;
                shared_left -= 1;
                routes.insert(cidr, n.interface_id.clone());
            } else {
                blocked.insert(n.node.name.clone());
            }
        }
        (routes, blocked)
    }
}

/// Where the `k`-th foreign route goes. The first three sit inside the cluster CIDR, where
/// a careless controller would touch them: exactly at a node's podCIDR with another target
/// (a conflict: the node is reported, the route untouched, the node's own route never
/// created there), a more specific route inside another node's podCIDR (a conflict that
/// shadows part of it), and a /24 no node holds. The rest are outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignPlace {
    /// At the podCIDR of the node in this slot.
    AtNode(u32),
    /// A /28 inside the podCIDR of the node in this slot.
    InsideNode(u32),
    /// Inside the cluster CIDR, where no node is.
    NonNode,
    Outside,
}

impl ForeignPlace {
    pub fn of(k: u32, nodes: u32) -> ForeignPlace {
        match k {
            0 if nodes >= 3 => ForeignPlace::AtNode(1),
            1 if nodes >= 3 => ForeignPlace::InsideNode(2),
            2 if (3..16_384).contains(&nodes) => ForeignPlace::NonNode,
            _ => ForeignPlace::Outside,
        }
    }

    pub fn destination(self, k: u32, nodes: u32) -> IpNet {
        let slot_net = |slot: u32, len: u8| {
            let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base + slot * 256), len).expect("valid"))
        };
        match self {
            ForeignPlace::AtNode(slot) => slot_net(slot, 24),
            ForeignPlace::InsideNode(slot) => slot_net(slot, 28),
            ForeignPlace::NonNode => slot_net(nodes, 24),
            ForeignPlace::Outside => format!("192.168.{}.{}/32", k / 250, k % 250)
                .parse()
                .expect("valid"),
        }
    }

    /// The slot of the node this route conflicts with.
    pub fn conflicts_with(self) -> Option<u32> {
        match self {
            ForeignPlace::AtNode(slot) | ForeignPlace::InsideNode(slot) => Some(slot),
            _ => None,
        }
    }
}

/// The in-process status sink with a memory: every report goes to a [`MemorySink`] (what
/// the controller says now), and once [`StatusWatch::watch`] names nodes, any change of a
/// watched node's condition counts as a flip. `Unknown` (a read that failed: not a fact
/// about the network) neither counts nor resets the node's last condition.
#[derive(Default)]
pub struct StatusWatch {
    pub sink: crate::cluster::MemorySink,
    state: std::sync::Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    watched: BTreeSet<String>,
    /// Per node, the kind of its last known (not `Unknown`) status.
    last: BTreeMap<String, std::mem::Discriminant<crate::cluster::NodeRouteStatus>>,
    flips: u64,
}

impl StatusWatch {
    /// From now on, count the condition changes of these nodes.
    pub fn watch(&self, nodes: impl IntoIterator<Item = String>) {
        let mut s = self.state.lock().expect("watch lock");
        s.watched = nodes.into_iter().collect();
        s.flips = 0;
    }

    pub fn flips(&self) -> u64 {
        self.state.lock().expect("watch lock").flips
    }
}

#[async_trait::async_trait]
impl crate::cluster::StatusSink for StatusWatch {
    async fn publish(&self, reports: &[crate::cluster::NodeReport]) {
        {
            let mut s = self.state.lock().expect("watch lock");
            for r in reports {
                if matches!(r.status, crate::cluster::NodeRouteStatus::Unknown { .. }) {
                    continue;
                }
                let kind = std::mem::discriminant(&r.status);
                let before = s.last.insert(r.node.clone(), kind);
                if s.watched.contains(&r.node) && before.is_some_and(|b| b != kind) {
                    s.flips += 1;
                }
            }
        }
        self.sink.publish(reports).await;
    }

    async fn deletion_guard_tripped(&self, note: &str, reports: &[crate::cluster::NodeReport]) {
        self.sink.deletion_guard_tripped(note, reports).await;
    }
}
