//! The lab's cloud: the mock EC2 or ARM in-process with one route table per node subnet,
//! one instance / VM per node at its lab address, the environment a `cni-cloud-controller
//! run` replica needs to drive it, and the reader the fabric follows — the tables as a
//! describe (AWS, created routes hidden for the describe lag) or a GET of a committed table
//! (Azure: a table whose PUT is still running shows its last committed routes) sees them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};

use cni_cloud_mocks::arm::{ArmConfig, ArmMock, IDENTITY_PATH, NicSpec, World as ArmWorld};
use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::ec2::{
    Ec2Config, Ec2Mock, Eni, Instance, Seed, Target, Vpc, World as Ec2World,
};

use super::super::args::SimulateArgs;
use super::fabric::{CloudReader, CloudTable, Hop};
use super::plan::{LabNode, Plan, VPC};
use crate::commands::cloud::CloudKind;

/// The cluster name the replicas are given (`replicas::spawn`).
const CLUSTER: &str = "sim";
const AWS_VPC: &str = "vpc-0c0ffee0000000da7";
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000da7a0";
const GROUP: &str = "lab-rg";
const LOCATION: &str = "westeurope";

pub enum LabCloud {
    Aws {
        mock: Ec2Mock,
        server: RunningServer,
        tables: Vec<String>,
    },
    Azure {
        mock: Arc<ArmMock>,
        server: RunningServer,
        tables: Vec<String>,
        route_limit: u32,
    },
}

fn eni_id(index: usize) -> String {
    format!("eni-0da7{index:012x}")
}

impl LabCloud {
    pub async fn start(args: &SimulateArgs, plan: &Plan) -> anyhow::Result<LabCloud> {
        let scale = args.time_scale;
        let latency = Duration::from_millis(args.latency_ms).div_f64(scale);
        match args.cloud {
            CloudKind::Aws => {
                let config = Ec2Config {
                    route_limit: args.route_limit.unwrap_or(1000) as usize,
                    throttle: true,
                    time_scale: scale,
                    latency,
                    fault_rate: 0.0,
                    describe_lag: Duration::from_millis(args.describe_lag_ms).div_f64(scale),
                };
                let mock = Ec2Mock::new(config, Seed::default()).map_err(anyhow::Error::msg)?;
                let tables: Vec<String> = (0..plan.subnets)
                    .map(|s| format!("rtb-0da7{s:012x}"))
                    .collect();
                mock.with_world(|w| -> anyhow::Result<()> {
                    w.vpcs.insert(
                        AWS_VPC.into(),
                        Vpc {
                            id: AWS_VPC.into(),
                            cidr: VPC.parse()?,
                            ipv6_cidr: None,
                        },
                    );
                    for (s, t) in tables.iter().enumerate() {
                        let tags = BTreeMap::from([
                            (format!("kubernetes.io/cluster/{CLUSTER}"), "owned".into()),
                            ("Name".into(), format!("lab-subnet-{s}")),
                        ]);
                        w.add_table(t, AWS_VPC, tags).map_err(anyhow::Error::msg)?;
                    }
                    Ok(())
                })?;
                let server = mock.clone().start("127.0.0.1:0".parse()?).await?;
                Ok(LabCloud::Aws {
                    mock,
                    server,
                    tables,
                })
            }
            CloudKind::Azure => {
                let route_limit = args.route_limit.unwrap_or(400);
                let config = ArmConfig {
                    time_scale: scale,
                    latency,
                    route_limit: route_limit as usize,
                    lro_duration: Duration::from_secs_f64(args.lro_seconds),
                    ..ArmConfig::default()
                };
                let mock = ArmMock::new(config).map_err(anyhow::Error::msg)?;
                let tables = {
                    let mut w = mock.world();
                    (0..plan.subnets)
                        .map(|s| {
                            w.add_route_table(
                                SUBSCRIPTION,
                                GROUP,
                                &format!("lab-subnet-{s}"),
                                LOCATION,
                                Vec::new(),
                            )
                        })
                        .collect()
                };
                let server = mock.serve("127.0.0.1:0".parse()?).await?;
                Ok(LabCloud::Azure {
                    mock,
                    server,
                    tables,
                    route_limit,
                })
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            LabCloud::Aws { .. } => "aws",
            LabCloud::Azure { .. } => "azure",
        }
    }

    /// The node's machine comes up (an instance with its ENI, a VM with its NIC, at the
    /// node's lab address, forwarding already allowed); returns its providerID.
    pub fn add_node(&self, node: &LabNode) -> anyhow::Result<String> {
        match self {
            LabCloud::Aws { mock, .. } => mock.with_world(|w| add_instance(w, node)),
            LabCloud::Azure { mock, .. } => Ok(add_vm(&mut mock.world(), node)),
        }
    }

    /// The node's machine dies while its Node is still listed (`provider_id` is what
    /// [`LabCloud::add_node`] returned). AWS: the instance is terminated, its ENI goes and
    /// routes to it turn `blackhole`. Azure: the VM goes with its NIC, and routes keep the
    /// next-hop address nothing holds any more.
    pub fn terminate(&self, provider_id: &str) -> anyhow::Result<()> {
        match self {
            LabCloud::Aws { mock, .. } => mock.with_world(|w| terminate_instance(w, provider_id)),
            LabCloud::Azure { mock, .. } => delete_vm(&mut mock.world(), provider_id),
        }
    }

    /// Replica `r`'s cloud environment: the endpoint, the tables, its own credentials.
    pub fn replica_env(&self, r: u32) -> (String, Vec<(String, String)>) {
        let (client, env) = match self {
            LabCloud::Aws { server, .. } => {
                let key = format!("AKIDLABREPLICA{r}");
                let env = vec![
                    ("CNI_CLOUD_CLOUD", "aws".to_owned()),
                    ("CNI_CLOUD_AWS_ENDPOINT", server.url()),
                    ("AWS_REGION", "us-east-1".to_owned()),
                    ("AWS_ACCESS_KEY_ID", key.clone()),
                    ("AWS_SECRET_ACCESS_KEY", "simulate".to_owned()),
                    ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
                ];
                (key, env)
            }
            LabCloud::Azure {
                server,
                tables,
                route_limit,
                ..
            } => {
                // The controller's own credential path: the mock's managed-identity endpoint.
                let client = format!("replica-{r}");
                let env = vec![
                    ("CNI_CLOUD_CLOUD", "azure".to_owned()),
                    ("CNI_CLOUD_AZURE_ENDPOINT", server.url()),
                    ("CNI_CLOUD_ROUTE_TABLES", tables.join(",")),
                    ("CNI_CLOUD_ROUTE_LIMIT", route_limit.to_string()),
                    ("CNI_CLOUD_AZURE_ROUTE_PREFIX", CLUSTER.to_owned()),
                    ("CNI_CLOUD_AZURE_CREDENTIAL", "managed-identity".to_owned()),
                    (
                        "IDENTITY_ENDPOINT",
                        format!("{}{IDENTITY_PATH}", server.url()),
                    ),
                    ("IDENTITY_HEADER", "simulate".to_owned()),
                    ("AZURE_CLIENT_ID", client.clone()),
                ];
                (client, env)
            }
        };
        (
            client,
            env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        )
    }

    /// What the fabric follows.
    pub fn reader(&self) -> CloudReader {
        match self {
            LabCloud::Aws { mock, tables, .. } => {
                let (mock, tables) = (mock.clone(), tables.clone());
                Box::new(move || aws_tables(&mock, &tables))
            }
            LabCloud::Azure { mock, tables, .. } => {
                let (mock, tables) = (mock.clone(), tables.clone());
                let mut committed: BTreeMap<String, Vec<(Ipv4Net, Hop)>> = BTreeMap::new();
                Box::new(move || azure_tables(&mock, &tables, &mut committed))
            }
        }
    }
}

fn add_instance(w: &mut Ec2World, node: &LabNode) -> anyhow::Result<String> {
    let id = format!("i-0da7{:012x}", node.index);
    w.add_instance(Instance {
        id: id.clone(),
        availability_zone: "us-east-1a".into(),
        tags: BTreeMap::from([(format!("kubernetes.io/cluster/{CLUSTER}"), "owned".into())]),
        terminated: false,
        network_interfaces: vec![Eni {
            id: eni_id(node.index),
            device_index: 0,
            private_ip: node.address,
            ipv6: None,
            source_dest_check: false,
        }],
    })
    .map_err(anyhow::Error::msg)?;
    Ok(format!("aws:///us-east-1a/{id}"))
}

fn terminate_instance(w: &mut Ec2World, provider_id: &str) -> anyhow::Result<()> {
    let id = provider_id.rsplit('/').next().unwrap_or_default();
    if !w.terminate(id) {
        anyhow::bail!("no instance {id} to terminate");
    }
    Ok(())
}

fn add_vm(w: &mut ArmWorld, node: &LabNode) -> String {
    let nic = NicSpec {
        ipv4: node.address,
        ipv6: None,
        ip_forwarding: true,
    };
    let name = format!("lab-vm-{:03}", node.index);
    w.add_vm(SUBSCRIPTION, GROUP, &name, LOCATION, nic)
        .provider_id
}

fn delete_vm(w: &mut ArmWorld, provider_id: &str) -> anyhow::Result<()> {
    let vm = (provider_id.strip_prefix("azure://"))
        .ok_or_else(|| anyhow::anyhow!("not an Azure providerID: {provider_id}"))?;
    w.delete_vm(vm).map(drop).map_err(anyhow::Error::msg)
}

/// Every table as DescribeRouteTables shows it now: routes still inside their describe lag
/// are left out; an ENI whose instance is gone shows `blackhole`.
fn aws_tables(mock: &Ec2Mock, tables: &[String]) -> Vec<CloudTable> {
    mock.with_world(|w| {
        let live: BTreeMap<String, Ipv4Addr> = (w.instances.values())
            .filter(|i| !i.terminated)
            .flat_map(|i| i.network_interfaces.iter())
            .map(|e| (e.id.clone(), e.private_ip))
            .collect();
        let now = Instant::now();
        (tables.iter().enumerate())
            .filter_map(|(s, id)| {
                let table = w.tables.get(id)?;
                let routes = (w.visible_routes(table, now).into_iter())
                    .filter_map(|v| {
                        let IpNet::V4(dest) = v.destination else {
                            return None;
                        };
                        let hop = match &v.target {
                            _ if v.blackhole => Hop::Gone,
                            Target::Local => Hop::Local,
                            Target::NetworkInterface(eni) => {
                                live.get(eni).map_or(Hop::Gone, |a| Hop::Address(*a))
                            }
                            Target::Instance(i) => (w.instances.get(i))
                                .and_then(|i| i.network_interfaces.first())
                                .map_or(Hop::Gone, |e| Hop::Address(e.private_ip)),
                            _ => Hop::Other,
                        };
                        Some((dest, hop))
                    })
                    .collect();
                Some(CloudTable {
                    subnet: s as u32,
                    routes,
                })
            })
            .collect()
    })
}

/// Every table as a GET shows it, committed: while a PUT's long-running operation runs the
/// table shows `Updating` with the new routes, which ARM has not applied yet, so the last
/// committed routes stay; a failed PUT shows the previous routes again, which then count.
/// A next hop no NIC holds any more (its VM deleted) is `Gone`: ARM keeps such a route as
/// it was, and what it carries is dropped, while the lab's node namespace (left running
/// so a stale path would show) still holds the address.
fn azure_tables(
    mock: &ArmMock,
    tables: &[String],
    committed: &mut BTreeMap<String, Vec<(Ipv4Net, Hop)>>,
) -> Vec<CloudTable> {
    let mut w = mock.world();
    // An operation ends at its time, whether or not a client asks about it then.
    w.settle_due();
    for id in tables {
        let Some(table) = w.get(id) else {
            committed.remove(id);
            continue;
        };
        if table["properties"]["provisioningState"] == "Updating" {
            continue;
        }
        let routes = (table["properties"]["routes"]
            .as_array()
            .into_iter()
            .flatten())
        .filter_map(|r| {
            let p = &r["properties"];
            let dest: Ipv4Net = p["addressPrefix"].as_str()?.parse().ok()?;
            let hop = match p["nextHopType"].as_str() {
                Some("VirtualAppliance") => match p["nextHopIpAddress"]
                    .as_str()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                {
                    Some(IpAddr::V4(a)) => Hop::Address(a),
                    _ => Hop::Other,
                },
                Some("VnetLocal") => Hop::Local,
                _ => Hop::Other,
            };
            Some((dest, hop))
        })
        .collect();
        committed.insert(id.clone(), routes);
    }
    // Judged at every read, not at commit: a VM can go while its table's PUT is running,
    // and the committed routes to it must stop carrying at once.
    let live = w.private_ips();
    (tables.iter().enumerate())
        .filter_map(|(s, id)| {
            let routes = (committed.get(id)?.iter())
                .map(|(dest, hop)| match hop {
                    Hop::Address(a) if !live.contains(&IpAddr::V4(*a)) => (*dest, Hop::Gone),
                    _ => (*dest, hop.clone()),
                })
                .collect();
            Some(CloudTable {
                subnet: s as u32,
                routes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::simulate::datapath::plan::Plan;
    use cni_cloud_mocks::ec2::Origin;
    use serde_json::json;

    fn hop(tables: &[CloudTable], dest: Ipv4Net) -> Option<Hop> {
        (tables.iter().flat_map(|t| &t.routes))
            .find(|(d, _)| *d == dest)
            .map(|(_, h)| h.clone())
    }

    #[test]
    fn a_terminated_instance_leaves_a_gone_hop_on_aws() {
        let plan = Plan::new(2, 2, 1).unwrap();
        let node = &plan.nodes[0];
        let mock = Ec2Mock::new(Ec2Config::default(), Seed::default()).unwrap();
        let table = "rtb-0da7000000000000".to_owned();
        let provider = mock.with_world(|w| {
            w.vpcs.insert(
                AWS_VPC.into(),
                Vpc {
                    id: AWS_VPC.into(),
                    cidr: VPC.parse().unwrap(),
                    ipv6_cidr: None,
                },
            );
            w.add_table(&table, AWS_VPC, BTreeMap::new()).unwrap();
            let provider = add_instance(w, node).unwrap();
            let eni = Target::NetworkInterface(eni_id(node.index));
            w.insert_route(
                &table,
                IpNet::V4(node.pod_cidr),
                eni,
                Origin::CreateRoute,
                Instant::now(),
            )
            .unwrap();
            provider
        });
        let tables = [table];
        assert_eq!(
            hop(&aws_tables(&mock, &tables), node.pod_cidr),
            Some(Hop::Address(node.address))
        );
        mock.with_world(|w| terminate_instance(w, &provider))
            .unwrap();
        assert_eq!(
            hop(&aws_tables(&mock, &tables), node.pod_cidr),
            Some(Hop::Gone)
        );
        assert!(
            mock.with_world(|w| terminate_instance(w, "aws:///us-east-1a/i-none"))
                .is_err()
        );
    }

    #[test]
    fn a_next_hop_whose_vm_was_deleted_is_gone_on_azure() {
        let plan = Plan::new(2, 2, 1).unwrap();
        let (node, other) = (&plan.nodes[0], &plan.nodes[1]);
        let mock = ArmMock::new(ArmConfig::default()).unwrap();
        let route = |n: &LabNode| {
            json!({"name": n.name, "properties": {"addressPrefix": n.pod_cidr.to_string(),
                "nextHopType": "VirtualAppliance", "nextHopIpAddress": n.address.to_string()}})
        };
        let (table, provider) = {
            let mut w = mock.world();
            let provider = add_vm(&mut w, node);
            add_vm(&mut w, other);
            let routes = vec![route(node), route(other)];
            let table = w.add_route_table(SUBSCRIPTION, GROUP, "t", LOCATION, routes);
            (table, provider)
        };
        let tables = [table];
        let mut committed = BTreeMap::new();
        let read = azure_tables(&mock, &tables, &mut committed);
        assert_eq!(hop(&read, node.pod_cidr), Some(Hop::Address(node.address)));
        delete_vm(&mut mock.world(), &provider).unwrap();
        // ARM still lists the route to the dead address; the reader says nothing holds it.
        assert_eq!(mock.world().routes(&tables[0]).len(), 2);
        let read = azure_tables(&mock, &tables, &mut committed);
        assert_eq!(hop(&read, node.pod_cidr), Some(Hop::Gone));
        assert_eq!(
            hop(&read, other.pod_cidr),
            Some(Hop::Address(other.address))
        );
        assert!(
            delete_vm(&mut mock.world(), &provider).is_err(),
            "deleted twice"
        );
    }
}
