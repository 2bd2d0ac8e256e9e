//! From nodes to the set of routes every managed table must hold: validates podCIDRs,
//! targets and overlaps, and remembers which destinations belong to nodes we could not
//! plan for (their existing routes must stay put).

use std::collections::{HashMap, HashSet};

use ipnet::IpNet;

use cni_cloud_providers::{Family, NextHop};

use super::{Findings, PlanNode, TargetError};

/// One route the nodes want, in admission order (oldest node first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Index into the admission-ordered node list.
    pub node: usize,
    pub destination: IpNet,
    pub next_hop: NextHop,
}

impl Claimed {
    pub fn family(&self) -> Family {
        Family::of(&self.destination)
    }
}

#[derive(Debug, Default)]
pub struct DesiredSet {
    /// Valid claims, in admission order.
    pub entries: Vec<Claimed>,
    pub by_destination: HashMap<IpNet, usize>,
    /// Destinations claimed by nodes we could not plan for (unresolved target, overlap):
    /// an existing route of ours there is neither deleted nor replaced.
    pub protected: HashSet<IpNet>,
    /// Next hops of resolved nodes whose podCIDRs are invalid or missing: their existing
    /// routes stay (bad input on a Node changes nothing in the cloud). The value is the
    /// node, and whether its podCIDR list is empty (reported when such a route exists).
    pub protected_hops: HashMap<NextHop, (usize, bool)>,
    /// Nodes whose target could not be looked up this pass: a stale route may be theirs.
    pub unknown_targets: usize,
    /// Names of the admission-ordered nodes, for reasons.
    pub names: Vec<String>,
}

/// A parsed claim before overlap detection.
struct Candidate {
    node: usize,
    destination: IpNet,
    /// `None` when the node can't be planned for but its claim still counts for overlaps.
    next_hop: Option<NextHop>,
}

/// The inclusive address range of `net`, widened to u128 so both families sort alike.
pub(crate) fn range(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

fn list(cidrs: &[IpNet]) -> String {
    cidrs
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl DesiredSet {
    pub fn node_count(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn build(
        nodes: &[&PlanNode],
        cluster_cidrs: &[IpNet],
        findings: &mut Findings,
    ) -> DesiredSet {
        let mut set = DesiredSet {
            names: nodes.iter().map(|n| n.node.name.clone()).collect(),
            ..Default::default()
        };
        let mut candidates = Vec::new();
        for (i, pn) in nodes.iter().enumerate() {
            let input = validate_node(i, pn, cluster_cidrs, findings, &mut candidates);
            if matches!(pn.target, Err(TargetError::Unavailable(_))) {
                set.unknown_targets += 1;
            }
            if input != PodCidrInput::Valid
                && let Ok(t) = &pn.target
            {
                let empty = input == PodCidrInput::Empty;
                for hop in [&t.next_hop_v4, &t.next_hop_v6].into_iter().flatten() {
                    set.protected_hops.insert(hop.clone(), (i, empty));
                }
            }
        }
        let overlapping = find_overlaps(&candidates);

        for (ci, c) in candidates.iter().enumerate() {
            if let Some(other) = overlapping.get(&ci) {
                let o = &candidates[*other];
                findings.invalid(
                    c.node,
                    format!(
                        "podCIDR {} overlaps {} claimed by node {}",
                        c.destination, o.destination, set.names[o.node]
                    ),
                );
                set.protected.insert(c.destination);
                continue;
            }
            match &c.next_hop {
                Some(hop) => {
                    set.by_destination.insert(c.destination, set.entries.len());
                    set.entries.push(Claimed {
                        node: c.node,
                        destination: c.destination,
                        next_hop: hop.clone(),
                    });
                }
                None => {
                    set.protected.insert(c.destination);
                }
            }
        }
        set
    }
}

/// What a node's podCIDR list looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodCidrInput {
    Valid,
    /// At least one entry is unusable (unparsable, host bits, outside the cluster CIDRs).
    Invalid,
    Empty,
}

fn validate_node(
    i: usize,
    pn: &PlanNode,
    cluster_cidrs: &[IpNet],
    findings: &mut Findings,
    out: &mut Vec<Candidate>,
) -> PodCidrInput {
    let node = &pn.node;
    if node.pod_cidrs.is_empty() {
        findings.pending(i, "no podCIDR assigned to the node yet".to_owned());
        return PodCidrInput::Empty;
    }
    let mut input = PodCidrInput::Valid;
    // Target problems make the node unplannable, but its CIDRs still count for overlaps
    // and keep their existing routes.
    let target = match &pn.target {
        Ok(t) if !t.cluster_member => {
            findings.invalid(
                i,
                format!(
                    "instance {} of providerID {} is not a member of this cluster",
                    t.instance_id,
                    node.provider_id.as_deref().unwrap_or("")
                ),
            );
            None
        }
        Ok(t) => Some(t),
        Err(TargetError::Invalid(reason)) => {
            findings.invalid(i, reason.clone());
            None
        }
        Err(TargetError::Unavailable(reason)) => {
            findings.unknown(i, reason.clone());
            None
        }
        Err(TargetError::Refused(reason)) => {
            findings.pending(i, reason.clone());
            None
        }
    };
    let mut seen: Vec<IpNet> = Vec::with_capacity(node.pod_cidrs.len());
    for raw in &node.pod_cidrs {
        let net: IpNet = match raw.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                findings.invalid(i, format!("podCIDR {raw:?} is not a valid CIDR"));
                input = PodCidrInput::Invalid;
                continue;
            }
        };
        if net.trunc() != net {
            findings.invalid(
                i,
                format!(
                    "podCIDR {raw} has host bits set (network is {})",
                    net.trunc()
                ),
            );
            input = PodCidrInput::Invalid;
            continue;
        }
        if !cluster_cidrs.iter().any(|c| c.contains(&net)) {
            findings.invalid(
                i,
                format!(
                    "podCIDR {net} is outside the cluster CIDRs ({})",
                    list(cluster_cidrs)
                ),
            );
            input = PodCidrInput::Invalid;
            continue;
        }
        if seen.contains(&net) {
            continue;
        }
        seen.push(net);
        let family = Family::of(&net);
        let next_hop = match target {
            Some(t) => match t.next_hop(family) {
                Some(hop) => Some(hop.clone()),
                None => {
                    findings.invalid(
                        i,
                        format!(
                            "podCIDR {net} is {family} but instance {} has no {family} next hop",
                            t.instance_id
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        out.push(Candidate {
            node: i,
            destination: net,
            next_hop,
        });
    }
    input
}

/// Claims that overlap a claim of another node, each mapped to one claim it overlaps.
/// Sort-and-sweep: O(n log n).
fn find_overlaps(candidates: &[Candidate]) -> HashMap<usize, usize> {
    let mut idx: Vec<(Family, u128, u128, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let (s, e) = range(&c.destination);
            (Family::of(&c.destination), s, e, ci)
        })
        .collect();
    idx.sort_unstable();
    let mut out = HashMap::new();
    // The claim reaching furthest so far in the current family.
    let mut reach: Option<(Family, u128, usize)> = None;
    for &(family, start, end, ci) in &idx {
        match reach {
            Some((f, far, holder)) if f == family && start <= far => {
                if candidates[holder].node != candidates[ci].node {
                    out.entry(ci).or_insert(holder);
                    out.entry(holder).or_insert(ci);
                }
                if end > far {
                    reach = Some((family, end, ci));
                }
            }
            _ => reach = Some((family, end, ci)),
        }
    }
    out
}
