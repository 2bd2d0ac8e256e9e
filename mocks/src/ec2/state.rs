//! The mock EC2's world: VPCs, route tables, instances and their ENIs, and the rules EC2
//! applies when routes are created, replaced and deleted.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An error exactly as EC2 reports it: HTTP status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            code,
            message: message.into(),
        }
    }
}

/// The seed file's shape (also what `GET /_mock/state` returns).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub vpcs: Vec<Vpc>,
    #[serde(default)]
    pub route_tables: Vec<SeedTable>,
    #[serde(default)]
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub id: String,
    pub cidr: ipnet::Ipv4Net,
    #[serde(default)]
    pub ipv6_cidr: Option<ipnet::Ipv6Net>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTable {
    pub id: String,
    pub vpc_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Routes besides the VPC's `local` routes, which are added automatically.
    #[serde(default)]
    pub routes: Vec<SeedRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRoute {
    pub destination: IpNet,
    pub target: Target,
    #[serde(default = "default_origin")]
    pub origin: Origin,
}

fn default_origin() -> Origin {
    Origin::CreateRoute
}

/// A route's target, in EC2's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Target {
    Local,
    Gateway(String),
    NatGateway(String),
    VpcPeeringConnection(String),
    TransitGateway(String),
    NetworkInterface(String),
    /// `CreateRoute --instance-id`: EC2 resolves it to the instance's primary ENI.
    Instance(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    CreateRouteTable,
    CreateRoute,
    EnableVgwRoutePropagation,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::CreateRouteTable => "CreateRouteTable",
            Origin::CreateRoute => "CreateRoute",
            Origin::EnableVgwRoutePropagation => "EnableVgwRoutePropagation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub id: String,
    #[serde(default = "default_az")]
    pub availability_zone: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub terminated: bool,
    pub network_interfaces: Vec<Eni>,
}

fn default_az() -> String {
    "us-east-1a".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eni {
    pub id: String,
    pub device_index: u32,
    pub private_ip: Ipv4Addr,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    #[serde(default = "yes")]
    pub source_dest_check: bool,
}

fn yes() -> bool {
    true
}

/// One route as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRoute {
    pub destination: IpNet,
    pub target: Target,
    pub origin: Origin,
    /// Describes don't see the route before this (eventual consistency).
    #[serde(skip)]
    pub visible_at: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub id: String,
    pub vpc_id: String,
    pub tags: BTreeMap<String, String>,
    pub routes: Vec<StoredRoute>,
}

/// What a describe shows of a route after EC2 resolves its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub destination: IpNet,
    pub target: Target,
    pub origin: Origin,
    /// The instance an ENI target is attached to, as EC2 reports `instanceId`.
    pub instance_id: Option<String>,
    pub blackhole: bool,
}

#[derive(Debug, Default)]
pub struct World {
    pub vpcs: BTreeMap<String, Vpc>,
    pub tables: BTreeMap<String, Table>,
    pub instances: BTreeMap<String, Instance>,
}

/// A validated route write.
#[derive(Debug, Clone)]
pub struct RouteWrite {
    pub table: String,
    pub destination: IpNet,
    pub target: Target,
}

impl World {
    pub fn from_seed(seed: Seed) -> Result<World, String> {
        let mut world = World::default();
        for vpc in seed.vpcs {
            world.vpcs.insert(vpc.id.clone(), vpc);
        }
        for inst in seed.instances {
            world.add_instance(inst)?;
        }
        for t in seed.route_tables {
            world.add_table(&t.id, &t.vpc_id, t.tags)?;
            for r in t.routes {
                world.insert_route(&t.id, r.destination, r.target, r.origin, Instant::now())?;
            }
        }
        Ok(world)
    }

    pub fn add_instance(&mut self, inst: Instance) -> Result<(), String> {
        if self.instances.contains_key(&inst.id) {
            return Err(format!("duplicate instance {}", inst.id));
        }
        self.instances.insert(inst.id.clone(), inst);
        Ok(())
    }

    pub fn add_table(
        &mut self,
        id: &str,
        vpc_id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let vpc = self
            .vpcs
            .get(vpc_id)
            .ok_or_else(|| format!("table {id}: unknown vpc {vpc_id}"))?;
        if self.tables.contains_key(id) {
            return Err(format!("duplicate route table {id}"));
        }
        let past = Instant::now();
        let mut routes = vec![StoredRoute {
            destination: IpNet::V4(vpc.cidr),
            target: Target::Local,
            origin: Origin::CreateRouteTable,
            visible_at: past,
        }];
        if let Some(v6) = vpc.ipv6_cidr {
            routes.push(StoredRoute {
                destination: IpNet::V6(v6),
                target: Target::Local,
                origin: Origin::CreateRouteTable,
                visible_at: past,
            });
        }
        self.tables.insert(
            id.to_owned(),
            Table {
                id: id.to_owned(),
                vpc_id: vpc_id.to_owned(),
                tags,
                routes,
            },
        );
        Ok(())
    }

    /// Insert without quota checks (seeding, foreign routes).
    pub fn insert_route(
        &mut self,
        table: &str,
        destination: IpNet,
        target: Target,
        origin: Origin,
        visible_at: Instant,
    ) -> Result<(), String> {
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| format!("unknown table {table}"))?;
        if t.routes.iter().any(|r| r.destination == destination) {
            return Err(format!("{table}: duplicate route {destination}"));
        }
        t.routes.push(StoredRoute {
            destination,
            target,
            origin,
            visible_at,
        });
        Ok(())
    }

    fn eni_owner(&self, eni: &str) -> Option<&Instance> {
        self.instances
            .values()
            .find(|i| !i.terminated && i.network_interfaces.iter().any(|n| n.id == eni))
    }

    pub fn find_eni_mut(&mut self, eni: &str) -> Option<&mut Eni> {
        self.instances
            .values_mut()
            .filter(|i| !i.terminated)
            .flat_map(|i| i.network_interfaces.iter_mut())
            .find(|n| n.id == eni)
    }

    /// EC2's view of one route: ENI targets report their instance; gone targets blackhole.
    pub fn view(&self, r: &StoredRoute) -> RouteView {
        let (instance_id, blackhole) = match &r.target {
            Target::NetworkInterface(eni) => match self.eni_owner(eni) {
                Some(inst) => (Some(inst.id.clone()), false),
                None => (None, true),
            },
            Target::Instance(id) => match self.instances.get(id) {
                Some(inst) if !inst.terminated => (Some(id.clone()), false),
                _ => (None, true),
            },
            _ => (None, false),
        };
        RouteView {
            destination: r.destination,
            target: r.target.clone(),
            origin: r.origin,
            instance_id,
            blackhole,
        }
    }

    /// Terminating an instance deletes its ENIs; routes to them turn into blackholes.
    pub fn terminate(&mut self, id: &str) -> bool {
        match self.instances.get_mut(id) {
            Some(inst) => {
                inst.terminated = true;
                true
            }
            None => false,
        }
    }

    fn check_table(&self, table: &str) -> Result<&Table, ApiError> {
        self.tables.get(table).ok_or_else(|| {
            ApiError::client(
                "InvalidRouteTableID.NotFound",
                format!("The routeTable ID '{table}' does not exist"),
            )
        })
    }

    /// Resolve a write's target the way EC2 does: an instance target becomes its primary
    /// ENI; an ENI must exist.
    fn resolve_target(&self, target: &Target) -> Result<Target, ApiError> {
        match target {
            Target::NetworkInterface(eni) => {
                if self.eni_owner(eni).is_some() {
                    Ok(target.clone())
                } else {
                    Err(ApiError::client(
                        "InvalidNetworkInterfaceID.NotFound",
                        format!("The networkInterface ID '{eni}' does not exist"),
                    ))
                }
            }
            Target::Instance(id) => {
                let inst = self
                    .instances
                    .get(id)
                    .filter(|i| !i.terminated)
                    .ok_or_else(|| {
                        ApiError::client(
                            "InvalidInstanceID.NotFound",
                            format!("The instance ID '{id}' does not exist"),
                        )
                    })?;
                if inst.network_interfaces.len() > 1 {
                    return Err(ApiError::client(
                        "InvalidInstanceID",
                        format!(
                            "There are multiple interfaces attached to instance '{id}'. \
                             Please specify an interface ID for the operation instead."
                        ),
                    ));
                }
                let eni = inst.network_interfaces.first().ok_or_else(|| {
                    ApiError::client(
                        "InvalidInstanceID",
                        format!("instance '{id}' has no interface"),
                    )
                })?;
                Ok(Target::NetworkInterface(eni.id.clone()))
            }
            Target::Gateway(_)
            | Target::NatGateway(_)
            | Target::VpcPeeringConnection(_)
            | Target::TransitGateway(_) => Ok(target.clone()),
            Target::Local => Err(ApiError::client(
                "InvalidParameterValue",
                "cannot create a route to 'local'",
            )),
        }
    }

    fn family_count(t: &Table, dest: &IpNet) -> usize {
        t.routes
            .iter()
            .filter(|r| {
                matches!(
                    (&r.destination, dest),
                    (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
                )
            })
            .count()
    }

    pub fn create_route(
        &mut self,
        w: RouteWrite,
        route_limit: usize,
        visible_at: Instant,
    ) -> Result<(), ApiError> {
        let target = self.resolve_target(&w.target)?;
        let vpc_has_v6 = {
            let t = self.check_table(&w.table)?;
            self.vpcs
                .get(&t.vpc_id)
                .is_some_and(|v| v.ipv6_cidr.is_some())
        };
        if matches!(w.destination, IpNet::V6(_)) && !vpc_has_v6 {
            return Err(ApiError::client(
                "InvalidParameterValue",
                format!(
                    "Route table {} is in a VPC with no IPv6 CIDR block; cannot add {}",
                    w.table, w.destination
                ),
            ));
        }
        let t = self.check_table(&w.table)?;
        if t.routes.iter().any(|r| r.destination == w.destination) {
            return Err(ApiError::client(
                "RouteAlreadyExists",
                format!("The route identified by {} already exists.", w.destination),
            ));
        }
        if Self::family_count(t, &w.destination) >= route_limit {
            return Err(ApiError::client(
                "RouteLimitExceeded",
                format!(
                    "The maximum number of routes has been reached for route table {} ({route_limit})",
                    w.table
                ),
            ));
        }
        let t = self.tables.get_mut(&w.table).expect("checked above");
        t.routes.push(StoredRoute {
            destination: w.destination,
            target,
            origin: Origin::CreateRoute,
            visible_at,
        });
        Ok(())
    }

    pub fn replace_route(&mut self, w: RouteWrite) -> Result<(), ApiError> {
        let target = self.resolve_target(&w.target)?;
        self.check_table(&w.table)?;
        let t = self.tables.get_mut(&w.table).expect("checked above");
        let route = t
            .routes
            .iter_mut()
            .find(|r| r.destination == w.destination)
            .ok_or_else(|| {
                // Not InvalidRoute.NotFound (that is DeleteRoute's answer): EC2 answers a
                // replace of a missing route with InvalidParameterValue, as moto does.
                ApiError::client(
                    "InvalidParameterValue",
                    format!(
                        "There is no route defined for '{}' in the route table. Use CreateRoute instead.",
                        w.destination
                    ),
                )
            })?;
        if route.origin != Origin::CreateRoute {
            return Err(ApiError::client(
                "InvalidParameterValue",
                format!(
                    "cannot replace the {} route {}",
                    route.origin.as_str(),
                    w.destination
                ),
            ));
        }
        route.target = target;
        Ok(())
    }

    pub fn delete_route(&mut self, table: &str, destination: IpNet) -> Result<(), ApiError> {
        self.check_table(table)?;
        let t = self.tables.get_mut(table).expect("checked above");
        let idx = t
            .routes
            .iter()
            .position(|r| r.destination == destination)
            .ok_or_else(|| {
                ApiError::client(
                    "InvalidRoute.NotFound",
                    format!(
                        "no route with destination-cidr-block {destination} in route table {table}"
                    ),
                )
            })?;
        if t.routes[idx].origin == Origin::CreateRouteTable {
            return Err(ApiError::client(
                "InvalidParameterValue",
                format!("cannot remove local route {destination} in route table {table}"),
            ));
        }
        t.routes.remove(idx);
        Ok(())
    }

    pub fn set_source_dest_check(&mut self, eni: &str, value: bool) -> Result<(), ApiError> {
        let n = self.find_eni_mut(eni).ok_or_else(|| {
            ApiError::client(
                "InvalidNetworkInterfaceID.NotFound",
                format!("The networkInterface ID '{eni}' does not exist"),
            )
        })?;
        n.source_dest_check = value;
        Ok(())
    }

    /// Routes of one table as describes show them at `now` (lagging creates hidden).
    pub fn visible_routes(&self, table: &Table, now: Instant) -> Vec<RouteView> {
        table
            .routes
            .iter()
            .filter(|r| r.visible_at <= now)
            .map(|r| self.view(r))
            .collect()
    }

    pub fn to_seed(&self) -> serde_json::Value {
        let tables: Vec<serde_json::Value> = self
            .tables
            .values()
            .map(|t| {
                serde_json::json!({
                    "id": t.id,
                    "vpc_id": t.vpc_id,
                    "tags": t.tags,
                    "routes": t.routes.iter().map(|r| {
                        let v = self.view(r);
                        serde_json::json!({
                            "destination": r.destination,
                            "target": r.target,
                            "origin": r.origin,
                            "state": if v.blackhole { "blackhole" } else { "active" },
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "vpcs": self.vpcs.values().collect::<Vec<_>>(),
            "route_tables": tables,
            "instances": self.instances.values().collect::<Vec<_>>(),
        })
    }
}

/// When a route created now shows in describes: after `lag`, jittered ±50 % per route as
/// EC2's eventual consistency is (no fixed delay a client could wait out exactly).
pub fn visible_after(lag: Duration) -> Instant {
    if lag.is_zero() {
        return Instant::now();
    }
    Instant::now() + lag.mul_f64(rand::random_range(0.5..1.5))
}
