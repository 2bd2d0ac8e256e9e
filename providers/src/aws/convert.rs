//! Pure translations between EC2's shapes and the route model: no I/O here.

use std::collections::HashSet;

use aws_sdk_ec2::types as ec2;
use ipnet::IpNet;

use crate::error::{CloudError, ErrorKind};
use crate::model::{Claim, NextHop, Route, RouteOrigin, RouteState};

/// What the provider knows about this cluster's instances when it claims routes.
#[derive(Debug, Default, Clone)]
pub struct Membership {
    /// Instances carrying the cluster tag (running or recently terminated: EC2 keeps
    /// terminated instances visible for about an hour).
    pub instances: HashSet<String>,
    /// ENIs attached to those instances, now or at any time this process saw them. A
    /// terminated instance's ENI is deleted with it, so only memory can attribute the
    /// blackhole route it leaves behind.
    pub enis: HashSet<String>,
}

impl Membership {
    fn claims(&self, next_hop: &NextHop, route_instance: Option<&str>) -> bool {
        let by_instance = route_instance.is_some_and(|i| self.instances.contains(i));
        by_instance
            || match next_hop {
                NextHop::NetworkInterface(eni) => self.enis.contains(eni),
                NextHop::Instance(id) => self.instances.contains(id),
                _ => false,
            }
    }
}

/// The route's destination, when it is a CIDR (prefix-list routes are skipped: they can
/// never be ours and hold no address the planner could compare).
pub fn destination(route: &ec2::Route) -> Option<IpNet> {
    route
        .destination_cidr_block()
        .or(route.destination_ipv6_cidr_block())
        .and_then(|s| s.parse().ok())
}

pub fn next_hop(route: &ec2::Route) -> NextHop {
    if let Some(eni) = route.network_interface_id() {
        return NextHop::NetworkInterface(eni.to_owned());
    }
    if let Some(id) = route.instance_id() {
        return NextHop::Instance(id.to_owned());
    }
    let other = [
        route.gateway_id(),
        route.nat_gateway_id(),
        route.transit_gateway_id(),
        route.vpc_peering_connection_id(),
        route.egress_only_internet_gateway_id(),
        route.local_gateway_id(),
        route.carrier_gateway_id(),
        route.core_network_arn(),
    ]
    .into_iter()
    .flatten()
    .next();
    NextHop::Other(other.unwrap_or("unknown").to_owned())
}

/// One EC2 route in the model. `Claim::Cluster` only with evidence from `members`.
pub fn route(route: &ec2::Route, members: &Membership) -> Option<Route> {
    let destination = destination(route)?;
    let next_hop = next_hop(route);
    let origin = match route.origin() {
        Some(ec2::RouteOrigin::CreateRouteTable) => RouteOrigin::Table,
        Some(ec2::RouteOrigin::EnableVgwRoutePropagation) => RouteOrigin::Propagated,
        _ => RouteOrigin::Manual,
    };
    let state = match route.state() {
        Some(ec2::RouteState::Blackhole) => RouteState::Blackhole,
        _ => RouteState::Active,
    };
    let claim = if origin == RouteOrigin::Manual && members.claims(&next_hop, route.instance_id()) {
        Claim::Cluster
    } else {
        Claim::Foreign
    };
    Some(Route {
        destination,
        next_hop,
        state,
        origin,
        claim,
        name: None,
    })
}

/// The VPC's IPv6 `local` route is what lets a table hold IPv6 routes.
pub fn has_ipv6_local_route(routes: &[ec2::Route]) -> bool {
    routes.iter().any(|r| {
        r.destination_ipv6_cidr_block().is_some()
            && (r.gateway_id() == Some("local")
                || r.origin() == Some(&ec2::RouteOrigin::CreateRouteTable))
    })
}

/// `aws:///us-east-1a/i-0abc…` (or `aws:///i-0abc…`) → `i-0abc…`.
pub fn instance_id_of(provider_id: &str) -> Result<String, CloudError> {
    let invalid = |why: &str| {
        CloudError::new(
            ErrorKind::Permanent,
            "InvalidProviderID",
            format!("providerID {provider_id:?} {why}; expected aws:///<zone>/i-…"),
        )
    };
    let rest = provider_id
        .strip_prefix("aws://")
        .ok_or_else(|| invalid("is not an AWS providerID"))?;
    let id = rest.rsplit('/').next().unwrap_or_default();
    let valid = id
        .strip_prefix("i-")
        .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_alphanumeric()));
    if !valid {
        return Err(invalid("does not end in an instance id"));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids() {
        assert_eq!(
            instance_id_of("aws:///us-east-1a/i-0abc123").unwrap(),
            "i-0abc123"
        );
        assert_eq!(instance_id_of("aws:///i-0abc").unwrap(), "i-0abc");
        for bad in [
            "azure:///subscriptions/x",
            "aws:///us-east-1a/",
            "aws:///us-east-1a/vm-1",
            "aws:///us-east-1a/i-",
            "aws:///z/i-0a;b",
            "",
        ] {
            let e = instance_id_of(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Permanent, "{bad}");
        }
    }

    fn eni_route(dest: &str, eni: &str, inst: Option<&str>, blackhole: bool) -> ec2::Route {
        let mut b = ec2::Route::builder()
            .destination_cidr_block(dest)
            .network_interface_id(eni)
            .origin(ec2::RouteOrigin::CreateRoute)
            .state(if blackhole {
                ec2::RouteState::Blackhole
            } else {
                ec2::RouteState::Active
            });
        if let Some(i) = inst {
            b = b.instance_id(i);
        }
        b.build()
    }

    #[test]
    fn claims_only_with_evidence() {
        let members = Membership {
            instances: ["i-1".to_owned()].into(),
            enis: ["eni-1".to_owned(), "eni-old".to_owned()].into(),
        };
        let ours = route(
            &eni_route("10.0.1.0/24", "eni-1", Some("i-1"), false),
            &members,
        )
        .unwrap();
        assert_eq!(ours.claim, Claim::Cluster);
        let foreign = route(
            &eni_route("10.0.2.0/24", "eni-9", Some("i-9"), false),
            &members,
        )
        .unwrap();
        assert_eq!(foreign.claim, Claim::Foreign);
        // A blackhole to an ENI we saw on a cluster instance is ours …
        let left = route(&eni_route("10.0.3.0/24", "eni-old", None, true), &members).unwrap();
        assert_eq!(
            (left.claim, left.state),
            (Claim::Cluster, RouteState::Blackhole)
        );
        // … one we cannot attribute never is.
        let unknown = route(&eni_route("10.0.4.0/24", "eni-x", None, true), &members).unwrap();
        assert_eq!(unknown.claim, Claim::Foreign);
        // The table's own local route is never ours.
        let local = ec2::Route::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .origin(ec2::RouteOrigin::CreateRouteTable)
            .build();
        let local = route(&local, &members).unwrap();
        assert_eq!(
            (local.claim, local.origin, local.next_hop),
            (
                Claim::Foreign,
                RouteOrigin::Table,
                NextHop::Other("local".into())
            )
        );
    }
}
