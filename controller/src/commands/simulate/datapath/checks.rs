//! The all-pairs verdict: from every pod, an ICMP echo and a TCP connect to every pod on
//! the other nodes (or a fixed seeded sample), its own node and another node, the service
//! IP that DNATs back to itself (hairpin), and the internet server, which says what source
//! address it saw (masquerade). One thread per source pod, inside its namespace.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::lab::Ns;
use super::plan::{INTERNET_NET, POD_PORT, Plan, SERVICE_IP, host};
use super::probe::{self, Icmp};
use super::report::Check;

/// A pod as the checks address it.
#[derive(Clone)]
pub struct PodRef {
    pub name: String,
    pub ip: Ipv4Addr,
    pub ns: Arc<Ns>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Findings {
    /// Pod → pod across nodes: both the echo and the right pod's TCP answer.
    pub pairs: Check,
    pub to_node: Check,
    pub hairpin: Check,
    pub masquerade: Check,
}

impl Findings {
    fn merge(&mut self, other: Findings) {
        for (into, from) in [
            (&mut self.pairs, other.pairs),
            (&mut self.to_node, other.to_node),
            (&mut self.hairpin, other.hairpin),
            (&mut self.masquerade, other.masquerade),
        ] {
            into.tested += from.tested;
            into.passed += from.passed;
        }
    }
}

/// (node, pod) → (node, pod).
pub type Pair = ((usize, usize), (usize, usize));

/// `pods[node][k]`; `pairs` the pairs to test.
pub fn run(plan: &Plan, pods: &[Vec<PodRef>], pairs: &[Pair]) -> anyhow::Result<Findings> {
    let count = pods.len();
    let internet = host(INTERNET_NET, 2);
    let mut handles = Vec::new();
    for (a, node_pods) in pods.iter().enumerate() {
        for (k, me) in node_pods.iter().enumerate() {
            let targets: Vec<(Ipv4Addr, String)> = (pairs.iter())
                .filter(|(src, _)| *src == (a, k))
                .map(|(_, (b, l))| (pods[*b][*l].ip, pods[*b][*l].name.clone()))
                .collect();
            let name = me.name.clone();
            let own = plan.nodes[a].address;
            let other = plan.nodes[(a + 1) % count].address;
            let id = 0x6000 + (a * node_pods.len() + k) as u16;
            handles.push(me.ns.thread(move || -> anyhow::Result<Findings> {
                let icmp = Icmp::open(id)?;
                let mut seq = 0u16;
                let mut ping = |dst| {
                    seq = seq.wrapping_add(1);
                    icmp.ping(dst, seq, probe::PROBE_TIMEOUT)
                };
                let tcp = |dst| probe::tcp_read(dst, POD_PORT, probe::PROBE_TIMEOUT);
                let mut f = Findings::default();
                for (ip, want) in &targets {
                    let echoed = ping(*ip);
                    f.pairs
                        .add(echoed && tcp(*ip).is_some_and(|got| got == *want));
                }
                f.to_node.add(ping(own));
                f.to_node.add(ping(other));
                // One service per node, backed by its first pod.
                if k == 0 {
                    f.hairpin
                        .add(tcp(SERVICE_IP).is_some_and(|got| got == name));
                }
                f.masquerade
                    .add(tcp(internet).is_some_and(|seen| seen == own.to_string()));
                Ok(f)
            })?);
        }
    }
    let mut total = Findings::default();
    for h in handles {
        let f = h
            .join()
            .map_err(|_| anyhow::anyhow!("a probe thread panicked"))??;
        total.merge(f);
    }
    Ok(total)
}
