//! The lab's address plan, pure: which subnet each node sits in, its address on the fabric,
//! its podCIDR, and the names of its namespaces. Everything else reads addresses from here.

use std::net::Ipv4Addr;

use anyhow::bail;
use ipnet::Ipv4Net;

/// The VPC / VNet address space: the nodes' subnets, the API endpoint. Never masqueraded.
pub const VPC: &str = "10.0.0.0/8";
/// The cluster's pod space, as the replicas are told (`replicas::spawn`).
pub const CLUSTER_CIDR: &str = "100.64.0.0/10";
/// Hosts per node subnet (a /25: the fabric's gateway takes .1, nodes .2..=.126).
pub const HOSTS_PER_SUBNET: u32 = 125;
/// The most nodes a lab runs: namespaces, installers and probe threads grow with it.
pub const MAX_NODES: u32 = 512;
/// The API endpoint's link: the fabric .1, the API server .2.
pub const API_NET: &str = "10.250.0.0/30";
/// The "internet" beyond the fabric (TEST-NET-2): the fabric .1, a server .2.
pub const INTERNET_NET: &str = "198.51.100.0/30";
/// The service IP the hairpin check DNATs to a pod on its own node (outside every range
/// above, as a Service CIDR is).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 10);
/// The port every pod (and the internet server) listens on.
pub const POD_PORT: u16 = 7000;
/// Kernel routing tables of the fabric: subnet s looks up `TABLE_BASE + s`.
pub const TABLE_BASE: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNode {
    /// Position in the plan; the late joiners (the reuse check's replacement, then the
    /// terminated machine's successor) come last.
    pub index: usize,
    pub name: String,
    pub subnet: u32,
    pub address: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub subnets: u32,
    pub pods_per_node: u32,
    /// The nodes that join at the start.
    pub nodes: Vec<LabNode>,
    /// A node that joins later with the podCIDR of the node removed (`nodes.last()`).
    pub replacement: LabNode,
    /// A node that joins later, on a new machine, with the podCIDR of the node whose
    /// machine is terminated ([`Plan::terminated`]).
    pub successor: LabNode,
}

pub fn subnet(s: u32) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, (s + 1) as u8, 0, 0), 25).expect("valid prefix")
}

pub fn gateway(s: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, (s + 1) as u8, 0, 1)
}

pub fn pod_cidr(slot: u32) -> Ipv4Net {
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    Ipv4Net::new(Ipv4Addr::from(base + slot * 256), 24).expect("valid prefix")
}

pub fn host(net: &str, n: u32) -> Ipv4Addr {
    let net: Ipv4Net = net.parse().expect("constant");
    Ipv4Addr::from(u32::from(net.network()) + n)
}

impl Plan {
    /// Nodes spread round-robin over `subnets`; two addresses more, for the replacement and
    /// the successor.
    pub fn new(nodes: u32, subnets: u32, pods_per_node: u32) -> anyhow::Result<Plan> {
        if nodes < 2 {
            bail!("--datapath needs at least 2 nodes (pods on different nodes), got {nodes}");
        }
        if !(2..=200).contains(&subnets) {
            bail!("--datapath spreads nodes over --tables subnets: 2..=200, got {subnets}");
        }
        let room = (HOSTS_PER_SUBNET * subnets).min(MAX_NODES);
        if nodes + 2 > room {
            bail!(
                "--nodes {nodes} does not fit the lab's address plan: {subnets} subnets of {HOSTS_PER_SUBNET} hosts \
                 (at most {MAX_NODES} nodes) hold {} nodes plus the two replacement nodes",
                room - 2
            );
        }
        let node = |index: u32, slot: u32, name: String| {
            let subnet = index % subnets;
            LabNode {
                index: index as usize,
                name,
                subnet,
                address: Ipv4Addr::from(u32::from(subnet_host(subnet)) + index / subnets),
                pod_cidr: pod_cidr(slot),
            }
        };
        let list: Vec<LabNode> = (0..nodes)
            .map(|i| node(i, i, format!("lab-node-{i:03}")))
            .collect();
        let replacement = node(nodes, nodes - 1, format!("lab-node-{:03}-new", nodes - 1));
        let dead = nodes - 2;
        let successor = node(nodes + 1, dead, format!("lab-node-{dead:03}-new"));
        Ok(Plan {
            subnets,
            pods_per_node,
            nodes: list,
            replacement,
            successor,
        })
    }

    /// The node whose machine the terminated check kills: the last but one, so it is never
    /// the node removed before it (the last).
    pub fn terminated(&self) -> usize {
        self.nodes.len() - 2
    }

    pub fn all(&self) -> impl Iterator<Item = &LabNode> {
        (self.nodes.iter()).chain([&self.replacement, &self.successor])
    }

    /// The subnet an address is on, if any.
    pub fn subnet_of(&self, addr: Ipv4Addr) -> Option<u32> {
        (0..self.subnets).find(|&s| subnet(s).contains(&addr) && addr != gateway(s))
    }
}

/// The first node address of subnet `s` (.2).
fn subnet_host(s: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, (s + 1) as u8, 0, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_spread_over_subnets_with_distinct_addresses_and_cidrs() {
        let p = Plan::new(5, 2, 2).unwrap();
        let subnets: Vec<u32> = p.nodes.iter().map(|n| n.subnet).collect();
        assert_eq!(subnets, [0, 1, 0, 1, 0]);
        assert_eq!(p.nodes[0].address, Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(p.nodes[1].address, Ipv4Addr::new(10, 2, 0, 2));
        assert_eq!(p.nodes[2].address, Ipv4Addr::new(10, 1, 0, 3));
        // The replacement takes the last node's podCIDR, at an address of its own; the
        // successor the terminated node's.
        assert_eq!(p.replacement.pod_cidr, p.nodes[4].pod_cidr);
        assert_eq!(p.replacement.address, Ipv4Addr::new(10, 2, 0, 4));
        assert_eq!(p.terminated(), 3);
        assert_eq!(p.successor.pod_cidr, p.nodes[3].pod_cidr);
        assert_eq!(p.successor.address, Ipv4Addr::new(10, 1, 0, 5));
        assert_eq!(p.successor.index, 6);
        assert_eq!(p.successor.name, "lab-node-003-new");
        let mut addrs: Vec<_> = p.all().map(|n| n.address).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 7);
        let indices: Vec<usize> = p.all().map(|n| n.index).collect();
        assert_eq!(indices, (0..7).collect::<Vec<_>>(), "plan index = position");
        for n in p.all() {
            assert_eq!(p.subnet_of(n.address), Some(n.subnet));
        }
        assert_eq!(p.subnet_of(gateway(0)), None);
        assert_eq!(p.subnet_of(Ipv4Addr::new(10, 9, 0, 2)), None);
    }

    #[test]
    fn the_plan_refuses_what_it_cannot_hold() {
        assert!(Plan::new(1, 2, 1).is_err());
        assert!(Plan::new(3, 1, 1).is_err());
        // Two /25s: 250 hosts, two kept for the replacement and the successor.
        assert!(Plan::new(248, 2, 1).is_ok());
        let err = Plan::new(249, 2, 1).unwrap_err().to_string();
        assert!(err.contains("address plan"), "{err}");
        // Every address stays inside its /25.
        let p = Plan::new(248, 2, 1).unwrap();
        for n in p.all() {
            assert!(subnet(n.subnet).contains(&n.address), "{n:?}");
        }
    }
}
