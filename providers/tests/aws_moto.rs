//! The AWS provider against moto (an EC2 implementation nobody here wrote), and the same
//! scenario against the mock EC2: the observable results must be identical.

mod common;

use std::collections::BTreeMap;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use cni_cloud_mocks::ec2::{Ec2Config, Eni, Instance, Seed, SeedTable, Vpc};
use cni_cloud_providers::aws::AwsProvider;
use cni_cloud_providers::{CloudProvider, ForwardingChange, NextHop, RouteChange, TableId};
use common::*;

/// What one cloud built for the scenario: its generated ids by our labels.
struct World {
    tables: BTreeMap<&'static str, String>,
    instances: BTreeMap<&'static str, String>,
}

fn tag_spec(kind: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in pairs {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

/// A plain SDK client (SDK retries off, so every answer is seen as the cloud gave it).
fn sdk_client(url: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// `ok`, or the HTTP status and EC2 error code of a failed call.
fn outcome<T, E>(r: Result<T, SdkError<E, HttpResponse>>) -> String
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    match r {
        Ok(_) => "ok".to_owned(),
        Err(SdkError::ServiceError(ctx)) => format!(
            "{} {}",
            ctx.raw().status().as_u16(),
            ctx.err().code().unwrap_or("?")
        ),
        Err(other) => format!("transport error: {other:?}"),
    }
}

/// EC2's answers to the calls the provider makes, in the cases it has to tell apart: the
/// same HTTP status and error code from both clouds.
async fn raw_answers(ec2: &aws_sdk_ec2::Client, world: &World, eni: &str) -> Vec<String> {
    let table = &world.tables["a"];
    let unknown_table = "rtb-0123456789abcdef0";
    let unknown_eni = "eni-0123456789abcdef0";
    let unknown_instance = "i-0123456789abcdef0";
    let mut log = Vec::new();
    log.push(format!(
        "create to unknown ENI: {}",
        outcome(
            ec2.create_route()
                .route_table_id(table)
                .destination_cidr_block("10.201.0.0/24")
                .network_interface_id(unknown_eni)
                .send()
                .await
        )
    ));
    log.push(format!(
        "create in unknown table: {}",
        outcome(
            ec2.create_route()
                .route_table_id(unknown_table)
                .destination_cidr_block("10.201.0.0/24")
                .network_interface_id(eni)
                .send()
                .await
        )
    ));
    log.push(format!(
        "replace missing route: {}",
        outcome(
            ec2.replace_route()
                .route_table_id(table)
                .destination_cidr_block("10.201.1.0/24")
                .network_interface_id(eni)
                .send()
                .await
        )
    ));
    log.push(format!(
        "delete missing route: {}",
        outcome(
            ec2.delete_route()
                .route_table_id(table)
                .destination_cidr_block("10.201.1.0/24")
                .send()
                .await
        )
    ));
    log.push(format!(
        "describe unknown table id: {}",
        outcome(
            ec2.describe_route_tables()
                .route_table_ids(unknown_table)
                .send()
                .await
        )
    ));
    let filtered = ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("route-table-id")
                .values(unknown_table)
                .build(),
        )
        .send()
        .await
        .unwrap();
    log.push(format!(
        "filter unknown table id: {} tables",
        filtered.route_tables().len()
    ));
    log.push(format!(
        "describe unknown instance id: {}",
        outcome(
            ec2.describe_instances()
                .instance_ids(unknown_instance)
                .send()
                .await
        )
    ));
    let filtered = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-id")
                .values(unknown_instance)
                .build(),
        )
        .send()
        .await
        .unwrap();
    log.push(format!(
        "filter unknown instance id: {} reservations",
        filtered.reservations().len()
    ));
    log.push(format!(
        "modify unknown ENI: {}",
        outcome(
            ec2.modify_network_interface_attribute()
                .network_interface_id(unknown_eni)
                .source_dest_check(
                    aws_sdk_ec2::types::AttributeBooleanValue::builder()
                        .value(false)
                        .build(),
                )
                .send()
                .await
        )
    ));
    log
}

/// Build the scenario's world in moto with plain SDK calls.
async fn build_in_moto(url: &str) -> World {
    let ec2 = sdk_client(url);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .amazon_provided_ipv6_cidr_block(true)
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.0.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap();
    let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_owned();
    let mut tables = BTreeMap::new();
    for (label, pairs) in [
        ("a", vec![(TAG, "owned")]),
        ("b", vec![(TAG, "shared")]),
        ("other", vec![("kubernetes.io/cluster/other", "owned")]),
    ] {
        let t = ec2
            .create_route_table()
            .vpc_id(&vpc_id)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &pairs))
            .send()
            .await
            .unwrap();
        tables.insert(
            label,
            t.route_table()
                .unwrap()
                .route_table_id()
                .unwrap()
                .to_owned(),
        );
    }
    let mut instances = BTreeMap::new();
    for (label, cluster) in [("n1", true), ("n2", true), ("foreign", false)] {
        let tags: Vec<(&str, &str)> = if cluster {
            vec![(TAG, "owned"), ("Name", label)]
        } else {
            vec![("Name", label)]
        };
        let r = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnet_id)
            .tag_specifications(tag_spec(ResourceType::Instance, &tags))
            .send()
            .await
            .unwrap();
        instances.insert(label, r.instances()[0].instance_id().unwrap().to_owned());
    }
    World { tables, instances }
}

/// The same world in the mock.
async fn build_in_mock() -> (cni_cloud_mocks::common::RunningServer, World) {
    let table = |id: &str, pairs: &[(&str, &str)]| SeedTable {
        id: id.into(),
        vpc_id: "vpc-1".into(),
        tags: tags(pairs),
        routes: vec![],
    };
    let inst = |id: &str, n: u8, cluster: bool| Instance {
        id: id.into(),
        availability_zone: "us-east-1a".into(),
        tags: if cluster {
            tags(&[(TAG, "owned")])
        } else {
            tags(&[])
        },
        terminated: false,
        network_interfaces: vec![Eni {
            id: format!("eni-{id}"),
            device_index: 0,
            private_ip: std::net::Ipv4Addr::new(10, 0, 1, n),
            ipv6: None,
            source_dest_check: true,
        }],
    };
    let seed = Seed {
        vpcs: vec![Vpc {
            id: "vpc-1".into(),
            cidr: "10.0.0.0/16".parse().unwrap(),
            ipv6_cidr: Some("2600:1f18::/56".parse().unwrap()),
        }],
        route_tables: vec![
            table("rtb-a", &[(TAG, "owned")]),
            table("rtb-b", &[(TAG, "shared")]),
            table("rtb-other", &[("kubernetes.io/cluster/other", "owned")]),
        ],
        instances: vec![
            inst("i-01", 4, true),
            inst("i-02", 5, true),
            inst("i-0f", 6, false),
        ],
    };
    let cfg = Ec2Config {
        throttle: false,
        ..Ec2Config::default()
    };
    let (_mock, server) = start_mock(cfg, seed).await;
    let world = World {
        tables: [("a", "rtb-a"), ("b", "rtb-b"), ("other", "rtb-other")]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect(),
        instances: [("n1", "i-01"), ("n2", "i-02"), ("foreign", "i-0f")]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect(),
    };
    (server, world)
}

/// Run the scenario through the provider; return a transcript with cloud ids replaced by
/// labels, so two clouds' transcripts compare directly.
async fn scenario(p: &AwsProvider, world: &World) -> Vec<String> {
    let mut log = Vec::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (l, id) in &world.tables {
        labels.insert(id.clone(), format!("table:{l}"));
    }
    let label = |labels: &BTreeMap<String, String>, s: &str| {
        labels.get(s).cloned().unwrap_or_else(|| format!("?{s}"))
    };
    let tables = p.discover_tables().await.unwrap();
    let mut discovered: Vec<String> = tables.iter().map(|t| label(&labels, &t.0)).collect();
    discovered.sort();
    log.push(format!("discovered {discovered:?}"));

    let pids: Vec<String> = world
        .instances
        .values()
        .map(|id| format!("aws:///us-east-1a/{id}"))
        .collect();
    let resolved = p.resolve_nodes(&pids).await;
    let mut enis = BTreeMap::new();
    for (l, id) in &world.instances {
        let t = resolved[&format!("aws:///us-east-1a/{id}")]
            .as_ref()
            .unwrap();
        labels.insert(t.interface_id.clone(), format!("eni:{l}"));
        log.push(format!(
            "node {l}: member={} v4={}",
            t.cluster_member,
            t.ipv4.is_some()
        ));
        enis.insert(*l, t.clone());
    }
    let n1 = &enis["n1"];
    let fwd = p.ensure_forwarding(n1).await.unwrap();
    let again = p.ensure_forwarding(n1).await.unwrap();
    log.push(format!("forwarding {fwd:?} then {again:?}"));
    assert_eq!(
        (fwd, again),
        (ForwardingChange::Enabled, ForwardingChange::AlreadyEnabled)
    );

    let hop = |l: &str| NextHop::NetworkInterface(enis[l].interface_id.clone());
    let t = TableId(world.tables["a"].clone());
    let steps: Vec<(&str, Vec<RouteChange>)> = vec![
        (
            "create",
            vec![
                RouteChange::Create {
                    destination: "10.200.1.0/24".parse().unwrap(),
                    next_hop: hop("n1"),
                },
                RouteChange::Create {
                    destination: "10.200.2.0/24".parse().unwrap(),
                    next_hop: hop("n2"),
                },
                RouteChange::Create {
                    destination: "10.200.9.0/24".parse().unwrap(),
                    next_hop: hop("foreign"),
                },
            ],
        ),
        (
            "create again",
            vec![RouteChange::Create {
                destination: "10.200.1.0/24".parse().unwrap(),
                next_hop: hop("n1"),
            }],
        ),
        // Not here: a create onto an existing destination with another target. EC2 (and
        // the mock) answer RouteAlreadyExists; moto overwrites the route silently, so
        // that case is covered against the mock only (aws_provider.rs).
        (
            "create v6",
            vec![RouteChange::Create {
                destination: "2600:1f18:200:1::/64".parse().unwrap(),
                next_hop: hop("n2"),
            }],
        ),
        (
            "replace",
            vec![RouteChange::Replace {
                destination: "10.200.2.0/24".parse().unwrap(),
                next_hop: hop("n1"),
                previous: hop("n2"),
            }],
        ),
        // The route vanished since the plan: ReplaceRoute fails (EC2 answers
        // InvalidParameterValue "no route defined …") and the provider creates it instead.
        (
            "replace vanished",
            vec![RouteChange::Replace {
                destination: "10.200.3.0/24".parse().unwrap(),
                next_hop: hop("n2"),
                previous: hop("n1"),
            }],
        ),
        (
            "delete twice",
            vec![
                RouteChange::Delete {
                    destination: "10.200.1.0/24".parse().unwrap(),
                    next_hop: hop("n1"),
                },
                RouteChange::Delete {
                    destination: "10.200.1.0/24".parse().unwrap(),
                    next_hop: hop("n1"),
                },
            ],
        ),
    ];
    for (name, changes) in steps {
        let outcomes: Vec<String> = p
            .apply(&t, &changes)
            .await
            .into_iter()
            .map(|o| match o.result {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("{}:{}", e.kind.as_str(), e.code),
            })
            .collect();
        log.push(format!("{name}: {outcomes:?}"));
    }
    let listed = p.list_table(&t).await.unwrap();
    log.push(format!("families {:?}", listed.families));
    let mut routes: Vec<String> = listed
        .routes
        .iter()
        .filter(|r| {
            let d = r.destination.to_string();
            d.starts_with("10.200.") || d.starts_with("2600:1f18:200:")
        })
        .map(|r| {
            format!(
                "{} -> {} {:?} {:?} {:?}",
                r.destination,
                label(&labels, &r.next_hop.to_string()),
                r.state,
                r.origin,
                r.claim
            )
        })
        .collect();
    routes.sort();
    log.extend(routes);
    log
}

#[tokio::test]
async fn provider_against_moto_matches_the_mock() {
    let Some(moto) = start_moto("provider_against_moto_matches_the_mock") else {
        return;
    };
    let moto_world = build_in_moto(&moto.url).await;
    let on_moto = scenario(&provider(config(&moto.url, 1.0)).await, &moto_world).await;

    let (server, mock_world) = build_in_mock().await;
    let on_mock = scenario(&provider(config(&server.url(), 1.0)).await, &mock_world).await;

    // The expected transcript, so moto proves the wire format on its own too.
    let expected = vec![
        r#"discovered ["table:a", "table:b"]"#.to_owned(),
        "node foreign: member=false v4=true".into(),
        "node n1: member=true v4=true".into(),
        "node n2: member=true v4=true".into(),
        "forwarding Enabled then AlreadyEnabled".into(),
        r#"create: ["ok", "ok", "ok"]"#.into(),
        r#"create again: ["ok"]"#.into(),
        r#"create v6: ["ok"]"#.into(),
        r#"replace: ["ok"]"#.into(),
        r#"replace vanished: ["ok"]"#.into(),
        r#"delete twice: ["ok", "ok"]"#.into(),
        "families Families { v4: true, v6: true }".into(),
        "10.200.2.0/24 -> eni:n1 Active Manual Cluster".into(),
        "10.200.3.0/24 -> eni:n2 Active Manual Cluster".into(),
        "10.200.9.0/24 -> eni:foreign Active Manual Foreign".into(),
        "2600:1f18:200:1::/64 -> eni:n2 Active Manual Cluster".into(),
    ];
    assert_eq!(on_moto, expected, "moto");
    assert_eq!(on_mock, on_moto, "mock vs moto");

    // The raw answers the provider's error handling depends on.
    let moto_eni = first_eni(&moto.url, &moto_world).await;
    let raw_moto = raw_answers(&sdk_client(&moto.url), &moto_world, &moto_eni).await;
    let mock_eni = first_eni(&server.url(), &mock_world).await;
    let raw_mock = raw_answers(&sdk_client(&server.url()), &mock_world, &mock_eni).await;
    let expected = vec![
        "create to unknown ENI: 400 InvalidNetworkInterfaceID.NotFound".to_owned(),
        "create in unknown table: 400 InvalidRouteTableID.NotFound".into(),
        "replace missing route: 400 InvalidParameterValue".into(),
        "delete missing route: 400 InvalidRoute.NotFound".into(),
        "describe unknown table id: 400 InvalidRouteTableID.NotFound".into(),
        "filter unknown table id: 0 tables".into(),
        "describe unknown instance id: 400 InvalidInstanceID.NotFound".into(),
        "filter unknown instance id: 0 reservations".into(),
        "modify unknown ENI: 400 InvalidNetworkInterfaceID.NotFound".into(),
    ];
    assert_eq!(raw_moto, expected, "moto");
    assert_eq!(raw_mock, raw_moto, "mock vs moto");
}

/// The primary ENI of the scenario's first cluster node.
async fn first_eni(url: &str, world: &World) -> String {
    let out = sdk_client(url)
        .describe_instances()
        .instance_ids(&world.instances["n1"])
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0].network_interfaces()[0]
        .network_interface_id()
        .unwrap()
        .to_owned()
}
