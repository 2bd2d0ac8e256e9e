//! The cloud-neutral route model. Providers translate their API shapes into these types;
//! the controller's planner only ever sees these.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Which cloud a value came from; decides naming and next-hop conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    Aws,
    Azure,
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A route table's cloud identity: `rtb-…` on AWS, the full ARM resource id on Azure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TableId(pub String);

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TableId {
    fn from(s: &str) -> Self {
        TableId(s.to_owned())
    }
}

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum NextHop {
    /// AWS `eni-…`: what cni-cloud always targets on AWS.
    NetworkInterface(String),
    /// AWS `i-…`: only ever seen on routes somebody else created.
    Instance(String),
    /// Azure `VirtualAppliance` next hop: what cni-cloud always targets on Azure.
    IpAddress(IpAddr),
    /// Anything else (gateway, NAT, peering, transit gateway, `local`, `Internet`, …),
    /// kept as `<type>:<id>` for reports. Never ours.
    Other(String),
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::NetworkInterface(id) | NextHop::Instance(id) | NextHop::Other(id) => {
                f.write_str(id)
            }
            NextHop::IpAddress(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteState {
    Active,
    /// The target is gone (terminated instance, deleted ENI): traffic is dropped.
    Blackhole,
}

/// How a route came to be. Only `Manual` routes can ever be ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteOrigin {
    /// AWS `CreateRoute`; every user-defined route on Azure.
    Manual,
    /// AWS `CreateRouteTable` (the VPC `local` routes).
    Table,
    /// AWS `EnableVgwRoutePropagation` (VPN / Direct Connect).
    Propagated,
}

/// Whether the cloud-side evidence marks a route as written for *this* cluster.
/// The provider decides this from the cloud's data (AWS: the target ENI/instance belongs
/// to an instance tagged `kubernetes.io/cluster/<name>`; Azure: the route name parses with
/// the exact cluster prefix). The planner additionally requires the destination to lie in
/// a cluster CIDR and the origin to be `Manual` before it will ever change the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    Cluster,
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub destination: IpNet,
    pub next_hop: NextHop,
    pub state: RouteState,
    pub origin: RouteOrigin,
    pub claim: Claim,
    /// Azure route name (AWS routes have none). For reports only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Route {
    /// A route as one of our writes leaves it: created by a call, active, this cluster's.
    pub fn written(destination: IpNet, next_hop: NextHop) -> Route {
        Route {
            destination,
            next_hop,
            state: RouteState::Active,
            origin: RouteOrigin::Manual,
            claim: Claim::Cluster,
            name: None,
        }
    }
}

/// Which address families a table can hold routes for (an AWS VPC without an IPv6 block
/// cannot hold IPv6 routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    pub const BOTH: Families = Families { v4: true, v6: true };

    pub fn holds(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// How the cloud counts a table's route limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    /// AWS: the limit applies to IPv4 and IPv6 routes separately.
    PerFamily,
    /// Azure: one limit over all routes of the table.
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteQuota {
    pub limit: u32,
    pub scope: QuotaScope,
}

/// One managed route table as listed from the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    pub id: TableId,
    /// Human-readable name (AWS `Name` tag or the ARM name), for reports.
    pub name: String,
    pub families: Families,
    pub quota: RouteQuota,
    /// Every route in the table, ours and foreign, including local/gateway routes: all
    /// of them count against the quota.
    pub routes: Vec<Route>,
    /// Optimistic-concurrency token (Azure etag); `None` on AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Routes the cloud counts against the quota that have no CIDR destination, so they
    /// are not in `routes`: AWS prefix-list routes, Azure service-tag routes. Counted
    /// against the shared quota, and against IPv4 on a per-family quota (most prefix lists
    /// are IPv4; overcounting can only make us refuse a create the cloud would refuse too).
    #[serde(default)]
    pub unlisted_routes: u32,
}

impl RouteTable {
    /// Routes that count against the quota for `family` (all routes when the quota is shared).
    pub fn usage(&self, family: Family) -> u32 {
        let (n, unlisted) = match self.quota.scope {
            QuotaScope::Shared => (self.routes.len(), self.unlisted_routes),
            QuotaScope::PerFamily => (
                self.routes
                    .iter()
                    .filter(|r| Family::of(&r.destination) == family)
                    .count(),
                if family == Family::V4 {
                    self.unlisted_routes
                } else {
                    0
                },
            ),
        };
        n as u32 + unlisted
    }
}

/// Where a Kubernetes node's pod traffic must be sent, as resolved from its providerID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeTarget {
    /// The cloud's VM identity: `i-…` on AWS; the VM (or VMSS instance) resource id on Azure.
    pub instance_id: String,
    /// The primary network interface: `eni-…` on AWS; the NIC resource id on Azure.
    pub interface_id: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// False when the instance exists but is not tagged as a member of this cluster.
    pub cluster_member: bool,
    /// The next hop routes for this node's IPv4 / IPv6 PodCIDRs must use, as the cloud
    /// wants it (ENI on AWS for both families; the node's address on Azure).
    pub next_hop_v4: Option<NextHop>,
    pub next_hop_v6: Option<NextHop>,
}

impl NodeTarget {
    pub fn next_hop(&self, family: Family) -> Option<&NextHop> {
        match family {
            Family::V4 => self.next_hop_v4.as_ref(),
            Family::V6 => self.next_hop_v6.as_ref(),
        }
    }
}

/// One change to one table. The order of a batch is the caller's priority order (Azure
/// trims the tail of a batch that would exceed the table quota).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RouteChange {
    Create {
        destination: IpNet,
        next_hop: NextHop,
    },
    /// Same destination, new target: one `ReplaceRoute` on AWS.
    Replace {
        destination: IpNet,
        next_hop: NextHop,
        previous: NextHop,
    },
    Delete {
        destination: IpNet,
        /// The target the route had when planned; a provider may refuse to delete a route
        /// that has since changed hands.
        next_hop: NextHop,
    },
}

impl RouteChange {
    pub fn destination(&self) -> &IpNet {
        match self {
            RouteChange::Create { destination, .. }
            | RouteChange::Replace { destination, .. }
            | RouteChange::Delete { destination, .. } => destination,
        }
    }

    pub fn is_delete(&self) -> bool {
        matches!(self, RouteChange::Delete { .. })
    }
}

/// Per-change result of [`crate::CloudProvider::apply`], in the order of the batch.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    pub change: RouteChange,
    pub result: Result<(), crate::CloudError>,
}

/// What a node-prep call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardingChange {
    /// Already forwarding (source/dest check off; NIC IP forwarding on): no write made.
    AlreadyEnabled,
    /// We turned it on with one write.
    Enabled,
}
