//! The mock EC2's wire behaviour, checked with plain HTTP (no SDK): the Query protocol, the
//! XML documents and error XML, HTTP statuses, filters and paging, the realism knobs
//! (quota, token buckets, describe lag, blackholes), the admin endpoints, and the
//! command-line server with its seed file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use cni_cloud_mocks::common::RunningServer;
use cni_cloud_mocks::ec2::{ApiClass, Ec2Config, Ec2Mock, Eni, Instance, Seed, SeedTable, Vpc};

const TAG: &str = "kubernetes.io/cluster/c1";

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn eni(id: &str, index: u32, n: u8) -> Eni {
    Eni {
        id: id.into(),
        device_index: index,
        private_ip: Ipv4Addr::new(10, 0, index as u8 + 1, n),
        ipv6: None,
        source_dest_check: true,
    }
}

fn seed(tables: usize) -> Seed {
    Seed {
        vpcs: vec![
            Vpc {
                id: "vpc-1".into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
                ipv6_cidr: Some("2600:1f18::/56".parse().unwrap()),
            },
            Vpc {
                id: "vpc-4".into(),
                cidr: "172.16.0.0/16".parse().unwrap(),
                ipv6_cidr: None,
            },
        ],
        route_tables: (0..tables)
            .map(|i| SeedTable {
                id: format!("rtb-{i:02}"),
                vpc_id: if i == 0 { "vpc-4" } else { "vpc-1" }.into(),
                tags: if i % 2 == 1 {
                    tags(&[(TAG, "owned")])
                } else {
                    tags(&[])
                },
                routes: vec![],
            })
            .collect(),
        instances: vec![
            Instance {
                id: "i-1".into(),
                availability_zone: "us-east-1a".into(),
                tags: tags(&[(TAG, "owned")]),
                terminated: false,
                network_interfaces: vec![eni("eni-1", 0, 1)],
            },
            Instance {
                id: "i-2".into(),
                availability_zone: "us-east-1b".into(),
                tags: tags(&[(TAG, "owned")]),
                terminated: false,
                network_interfaces: vec![eni("eni-2a", 0, 2), eni("eni-2b", 1, 2)],
            },
        ],
    }
}

async fn start(config: Ec2Config, seed: Seed) -> (Ec2Mock, RunningServer) {
    let mock = Ec2Mock::new(config, seed).unwrap();
    let server = mock
        .clone()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (mock, server)
}

fn relaxed() -> Ec2Config {
    Ec2Config {
        throttle: false,
        ..Ec2Config::default()
    }
}

/// One signed-looking Query call (the mock checks that an Authorization header exists).
async fn call(url: &str, params: &[(&str, &str)]) -> (u16, String) {
    let mut form = vec![("Version", "2016-11-15")];
    form.extend_from_slice(params);
    let resp = reqwest::Client::new()
        .post(url)
        .header("authorization", "AWS4-HMAC-SHA256 Credential=testing/...")
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The `<Code>` of an EC2 error document, asserting its shape on the way.
fn error_code(body: &str) -> String {
    assert!(
        body.contains("<Response><Errors><Error><Code>") && body.contains("<RequestID>"),
        "not EC2 error XML: {body}"
    );
    let start = body.find("<Code>").unwrap() + "<Code>".len();
    let end = body.find("</Code>").unwrap();
    body[start..end].to_owned()
}

fn count(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

#[tokio::test]
async fn protocol_errors_have_ec2_statuses_and_error_xml() {
    let (mock, server) = start(relaxed(), seed(2)).await;
    let url = server.url();

    let resp = reqwest::Client::new()
        .post(&url)
        .form(&[("Action", "DescribeRouteTables"), ("Version", "2016-11-15")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(error_code(&resp.text().await.unwrap()), "AuthFailure");

    let resp = reqwest::Client::new()
        .post(&url)
        .header("authorization", "x")
        .form(&[("Action", "DescribeRouteTables"), ("Version", "2013-01-01")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        error_code(&resp.text().await.unwrap()),
        "InvalidParameterValue"
    );

    let (status, body) = call(&url, &[("Action", "RunInstances")]).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "InvalidAction"));
    let (status, body) = call(&url, &[]).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "MissingAction"));

    let (status, body) = call(
        &url,
        &[
            ("Action", "DescribeRouteTables"),
            ("RouteTableId.1", "rtb-nope"),
        ],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "InvalidRouteTableID.NotFound")
    );
    let (status, body) = call(
        &url,
        &[
            ("Action", "DescribeRouteTables"),
            ("Filter.1.Name", "no-such-filter"),
            ("Filter.1.Value.1", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "InvalidParameterValue")
    );
    let (status, body) = call(
        &url,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-01"),
            ("DestinationCidrBlock", "10.9.0.1/16"),
            ("NetworkInterfaceId", "eni-1"),
        ],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "InvalidParameterValue"),
        "a CIDR with host bits is invalid"
    );
    let (status, body) = call(
        &url,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-01"),
            ("DestinationCidrBlock", "10.9.0.0/16"),
        ],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "MissingParameter")
    );

    let stats: serde_json::Value = reqwest::get(format!("{url}/_mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["DescribeRouteTables"]["auth_failure"], 1);
    assert_eq!(stats["DescribeRouteTables"]["client_error"], 3);
    assert_eq!(mock.stats().count("CreateRoute", "client_error"), 2);
}

#[tokio::test]
async fn describe_route_tables_filters_server_side_and_pages() {
    let (_mock, server) = start(relaxed(), seed(12)).await;
    let url = server.url();
    // Tagged: rtb-01, 03, 05, 07, 09, 11 — six tables, read five at a time.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = vec![
            ("Action", "DescribeRouteTables"),
            ("Filter.1.Name", "tag-key"),
            ("Filter.1.Value.1", TAG),
            ("MaxResults", "5"),
        ];
        if let Some(t) = &token {
            params.push(("NextToken", t.as_str()));
        }
        let (status, body) = call(&url, &params).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(
            "<DescribeRouteTablesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
        ));
        pages += 1;
        for part in body.split("<routeTableId>").skip(1) {
            seen.push(part.split('<').next().unwrap().to_owned());
        }
        token = body
            .split("<nextToken>")
            .nth(1)
            .map(|rest| rest.split('<').next().unwrap().to_owned());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(
        seen,
        ["rtb-01", "rtb-03", "rtb-05", "rtb-07", "rtb-09", "rtb-11"]
    );

    let (_, body) = call(
        &url,
        &[
            ("Action", "DescribeRouteTables"),
            ("Filter.1.Name", "route-table-id"),
            ("Filter.1.Value.1", "rtb-00"),
            ("Filter.1.Value.2", "rtb-02"),
        ],
    )
    .await;
    assert_eq!(count(&body, "<routeTableId>"), 2);
    // Every table carries its VPC's local routes: v4 always, v6 when the VPC has a block.
    assert!(body.contains("<destinationCidrBlock>172.16.0.0/16</destinationCidrBlock><gatewayId>local</gatewayId><state>active</state><origin>CreateRouteTable</origin>"));
    assert!(body.contains("<destinationIpv6CidrBlock>2600:1f18::/56</destinationIpv6CidrBlock><gatewayId>local</gatewayId>"));

    let (status, body) = call(
        &url,
        &[("Action", "DescribeRouteTables"), ("MaxResults", "2")],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "InvalidParameterValue"),
        "MaxResults must be 5..=100"
    );
}

#[tokio::test]
async fn route_writes_follow_ec2_rules() {
    let (mock, server) = start(
        Ec2Config {
            route_limit: 4,
            ..relaxed()
        },
        seed(2),
    )
    .await;
    let url = server.url();
    let create = |dest: &'static str, key: &'static str, target: &'static str| {
        let url = url.clone();
        async move {
            let field = if dest.contains(':') {
                "DestinationIpv6CidrBlock"
            } else {
                "DestinationCidrBlock"
            };
            call(
                &url,
                &[
                    ("Action", "CreateRoute"),
                    ("RouteTableId", "rtb-01"),
                    (field, dest),
                    (key, target),
                ],
            )
            .await
        }
    };
    let (status, body) = create("10.1.0.0/24", "NetworkInterfaceId", "eni-1").await;
    assert_eq!(status, 200);
    assert!(body.contains("<CreateRouteResponse xmlns=") && body.contains("<return>true</return>"));
    let (_, body) = create("10.1.0.0/24", "NetworkInterfaceId", "eni-1").await;
    assert_eq!(error_code(&body), "RouteAlreadyExists");
    let (_, body) = create("10.2.0.0/24", "NetworkInterfaceId", "eni-404").await;
    assert_eq!(error_code(&body), "InvalidNetworkInterfaceID.NotFound");
    // An instance target with two ENIs is ambiguous: EC2 refuses it.
    let (_, body) = create("10.2.0.0/24", "InstanceId", "i-2").await;
    assert_eq!(error_code(&body), "InvalidInstanceID");
    // A single-ENI instance target resolves to its ENI.
    let (status, _) = create("10.3.0.0/24", "InstanceId", "i-1").await;
    assert_eq!(status, 200);
    let (status, _) = create("10.4.0.0/24", "NetworkInterfaceId", "eni-2b").await;
    assert_eq!(status, 200);
    // local + 3 = 4 IPv4 routes: the quota is reached for IPv4 only.
    let (status, body) = create("10.5.0.0/24", "NetworkInterfaceId", "eni-1").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "RouteLimitExceeded")
    );
    let (status, _) = create("2600:1f18:0:1::/64", "NetworkInterfaceId", "eni-1").await;
    assert_eq!(status, 200, "IPv6 has its own count");
    // IPv6 into a VPC without an IPv6 block is refused.
    let (_, body) = call(
        &url,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-00"),
            ("DestinationIpv6CidrBlock", "2600:1f18:0:2::/64"),
            ("NetworkInterfaceId", "eni-1"),
        ],
    )
    .await;
    assert_eq!(error_code(&body), "InvalidParameterValue");

    let (_, body) = call(
        &url,
        &[
            ("Action", "DescribeRouteTables"),
            ("RouteTableId.1", "rtb-01"),
        ],
    )
    .await;
    // The instance target was stored as its ENI; EC2 reports the owning instance too.
    assert!(body.contains("<destinationCidrBlock>10.3.0.0/24</destinationCidrBlock><instanceId>i-1</instanceId><instanceOwnerId>123456789012</instanceOwnerId><networkInterfaceId>eni-1</networkInterfaceId><state>active</state><origin>CreateRoute</origin>"), "{body}");

    let replace = |dest: &'static str, target: &'static str| {
        let url = url.clone();
        async move {
            call(
                &url,
                &[
                    ("Action", "ReplaceRoute"),
                    ("RouteTableId", "rtb-01"),
                    ("DestinationCidrBlock", dest),
                    ("NetworkInterfaceId", target),
                ],
            )
            .await
        }
    };
    let (status, _) = replace("10.1.0.0/24", "eni-2a").await;
    assert_eq!(status, 200);
    let (_, body) = replace("10.99.0.0/24", "eni-2a").await;
    assert_eq!(error_code(&body), "InvalidParameterValue");
    assert!(
        body.contains("There is no route defined for &apos;10.99.0.0/24&apos;"),
        "{body}"
    );
    let (_, body) = replace("10.0.0.0/16", "eni-2a").await;
    assert_eq!(
        error_code(&body),
        "InvalidParameterValue",
        "local routes cannot be replaced"
    );

    let delete = |dest: &'static str| {
        let url = url.clone();
        async move {
            call(
                &url,
                &[
                    ("Action", "DeleteRoute"),
                    ("RouteTableId", "rtb-01"),
                    ("DestinationCidrBlock", dest),
                ],
            )
            .await
        }
    };
    let (status, body) = delete("10.4.0.0/24").await;
    assert_eq!(status, 200);
    assert!(body.contains("<DeleteRouteResponse"));
    let (_, body) = delete("10.4.0.0/24").await;
    assert_eq!(error_code(&body), "InvalidRoute.NotFound");
    let (_, body) = delete("10.0.0.0/16").await;
    assert_eq!(error_code(&body), "InvalidParameterValue");

    let state = mock.state_json();
    let routes = state["route_tables"][1]["routes"].as_array().unwrap();
    let dests: Vec<&str> = routes
        .iter()
        .map(|r| r["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "10.0.0.0/16",
            "2600:1f18::/56",
            "10.1.0.0/24",
            "10.3.0.0/24",
            "2600:1f18:0:1::/64"
        ]
    );
    assert_eq!(
        routes[2]["target"],
        serde_json::json!({"type": "network_interface", "id": "eni-2a"})
    );
    let applied: Vec<&str> = mock.mutations().iter().map(|m| m.action).collect();
    assert_eq!(
        applied,
        [
            "CreateRoute",
            "CreateRoute",
            "CreateRoute",
            "CreateRoute",
            "ReplaceRoute",
            "DeleteRoute"
        ]
    );
}

#[tokio::test]
async fn instances_enis_and_source_dest_check() {
    let (_mock, server) = start(relaxed(), seed(2)).await;
    let url = server.url();
    let (_, body) = call(
        &url,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "instance-id"),
            ("Filter.1.Value.1", "i-2"),
            ("Filter.1.Value.2", "i-404"),
        ],
    )
    .await;
    assert_eq!(
        count(&body, "<instanceId>"),
        1,
        "unknown ids in a filter are no error"
    );
    assert!(body.contains("<instanceState><code>16</code><name>running</name></instanceState>"));
    assert_eq!(count(&body, "<networkInterfaceId>"), 2);
    assert!(body.contains("<networkInterfaceId>eni-2b</networkInterfaceId>"));
    assert!(body.contains("<deviceIndex>1</deviceIndex>"));
    assert!(body.contains("<sourceDestCheck>true</sourceDestCheck>"));

    let (_, body) = call(
        &url,
        &[("Action", "DescribeInstances"), ("InstanceId.1", "i-404")],
    )
    .await;
    assert_eq!(
        error_code(&body),
        "InvalidInstanceID.NotFound",
        "unknown ids by InstanceId are"
    );

    let (status, body) = call(
        &url,
        &[
            ("Action", "ModifyNetworkInterfaceAttribute"),
            ("NetworkInterfaceId", "eni-1"),
            ("SourceDestCheck.Value", "false"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = call(
        &url,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "tag-key"),
            ("Filter.1.Value.1", TAG),
            ("Filter.2.Name", "instance-id"),
            ("Filter.2.Value.1", "i-1"),
        ],
    )
    .await;
    assert!(
        body.contains("<sourceDestCheck>false</sourceDestCheck>"),
        "{body}"
    );
    let (_, body) = call(
        &url,
        &[
            ("Action", "ModifyNetworkInterfaceAttribute"),
            ("NetworkInterfaceId", "eni-404"),
            ("SourceDestCheck.Value", "false"),
        ],
    )
    .await;
    assert_eq!(error_code(&body), "InvalidNetworkInterfaceID.NotFound");
}

#[tokio::test]
async fn mutating_bucket_throttles_with_503_request_limit_exceeded() {
    // EC2's mutating bucket (50 burst, 5/s) with time frozen-ish: refill is negligible.
    let (mock, server) = start(
        Ec2Config {
            time_scale: 0.001,
            ..Ec2Config::default()
        },
        seed(2),
    )
    .await;
    let url = server.url();
    let mut statuses = Vec::new();
    for i in 0..51 {
        let dest = format!("10.{}.0.0/24", 100 + i);
        let (status, body) = call(
            &url,
            &[
                ("Action", "CreateRoute"),
                ("RouteTableId", "rtb-01"),
                ("DestinationCidrBlock", &dest),
                ("NetworkInterfaceId", "eni-1"),
            ],
        )
        .await;
        match status {
            200 => {}
            400 => assert_eq!(error_code(&body), "RouteLimitExceeded"),
            _ => assert_eq!(
                (status, error_code(&body).as_str()),
                (503, "RequestLimitExceeded")
            ),
        }
        statuses.push(status);
    }
    // 50 ok: the quota error (route limit 50 incl. local) comes before the bucket is empty.
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 1);
    assert_eq!(statuses.last(), Some(&503));
    assert_eq!(mock.stats().count("CreateRoute", "throttled"), 1);
    assert_eq!(mock.stats().count("CreateRoute", "quota"), 1);
    // Describes spend from their own bucket and still work.
    let (status, _) = call(&url, &[("Action", "DescribeRouteTables")]).await;
    assert_eq!(status, 200);
    mock.drain_bucket(ApiClass::NonMutating);
    let (status, body) = call(
        &url,
        &[
            ("Action", "DescribeRouteTables"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", "vpc-1"),
        ],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "RequestLimitExceeded")
    );
}

#[tokio::test]
async fn describe_lag_and_blackholes() {
    let (mock, server) = start(
        Ec2Config {
            describe_lag: Duration::from_millis(300),
            ..relaxed()
        },
        seed(2),
    )
    .await;
    let url = server.url();
    let (status, _) = call(
        &url,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-01"),
            ("DestinationCidrBlock", "10.7.0.0/24"),
            ("NetworkInterfaceId", "eni-2a"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let describe = || {
        let url = url.clone();
        async move {
            call(
                &url,
                &[
                    ("Action", "DescribeRouteTables"),
                    ("RouteTableId.1", "rtb-01"),
                ],
            )
            .await
            .1
        }
    };
    assert!(!describe().await.contains("10.7.0.0/24"), "not visible yet");
    // The write is applied though: a second create already conflicts.
    let (_, body) = call(
        &url,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-01"),
            ("DestinationCidrBlock", "10.7.0.0/24"),
            ("NetworkInterfaceId", "eni-2a"),
        ],
    )
    .await;
    assert_eq!(error_code(&body), "RouteAlreadyExists");
    // Visible within 1.5× the lag (it is jittered ±50 % per route).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(describe().await.contains(
        "<destinationCidrBlock>10.7.0.0/24</destinationCidrBlock><instanceId>i-2</instanceId>"
    ));

    assert!(mock.with_world(|w| w.terminate("i-2")));
    let body = describe().await;
    assert!(
        body.contains("<destinationCidrBlock>10.7.0.0/24</destinationCidrBlock><networkInterfaceId>eni-2a</networkInterfaceId><state>blackhole</state>"),
        "{body}"
    );
    let (_, body) = call(
        &url,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "instance-id"),
            ("Filter.1.Value.1", "i-2"),
        ],
    )
    .await;
    assert!(body.contains("<name>terminated</name>") && body.contains("<networkInterfaceSet/>"));
    let state = mock.state_json();
    assert_eq!(state["route_tables"][1]["routes"][2]["state"], "blackhole");
}

#[test]
fn command_line_server_with_seed_file() {
    let bin = env!("CARGO_BIN_EXE_cni-cloud-mocks");
    let help = Command::new(bin).args(["ec2", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--seed",
        "--route-limit",
        "--no-throttle",
        "--time-scale",
        "--latency-ms",
        "--fault-rate",
        "--describe-lag-ms",
        "network_interfaces",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}: {help}");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.json");
    std::fs::write(
        &path,
        serde_json::json!({
            "vpcs": [{"id": "vpc-1", "cidr": "10.0.0.0/16"}],
            "route_tables": [{"id": "rtb-1", "vpc_id": "vpc-1", "tags": {TAG: "owned"},
                "routes": [{"destination": "0.0.0.0/0", "target": {"type": "gateway", "id": "igw-1"}}]}],
            "instances": [{"id": "i-1", "tags": {TAG: "owned"},
                "network_interfaces": [{"id": "eni-1", "device_index": 0, "private_ip": "10.0.1.4"}]}]
        })
        .to_string(),
    )
    .unwrap();
    let mut child = Command::new(bin)
        .args(["ec2", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (status, body) = call(
            &url,
            &[
                ("Action", "DescribeRouteTables"),
                ("Filter.1.Name", "tag-key"),
                ("Filter.1.Value.1", TAG),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            body.contains(
                "<destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><gatewayId>igw-1</gatewayId>"
            ),
            "{body}"
        );
        let state: serde_json::Value = reqwest::get(format!("{url}/_mock/state"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            state["instances"][0]["network_interfaces"][0]["id"],
            "eni-1"
        );
        let stats: serde_json::Value = reqwest::get(format!("{url}/_mock/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["DescribeRouteTables"]["ok"], 1);
    });
    drop(child);
}

#[tokio::test]
async fn read_faults_fail_describes_only_until_switched_off() {
    let (mock, server) = start(relaxed(), seed(2)).await;
    let url = server.url();
    mock.set_read_faults(1.0);
    for action in ["DescribeRouteTables", "DescribeInstances"] {
        let (status, body) = call(&url, &[("Action", action)]).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(error_code(&body), "Unavailable");
    }
    assert_eq!(mock.faults_injected(), 2);
    // Writes are not reads: not failed by read faults.
    let (status, body) = call(
        &url,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-01"),
            ("DestinationCidrBlock", "100.64.0.0/24"),
            ("GatewayId", "igw-1"),
        ],
    )
    .await;
    assert_ne!(status, 503, "{body}");
    mock.set_read_faults(0.0);
    let (status, body) = call(&url, &[("Action", "DescribeRouteTables")]).await;
    assert_eq!(status, 200, "{body}");
}
