//! EC2's XML documents, element for element as the Query API answers them (namespace
//! `http://ec2.amazonaws.com/doc/2016-11-15/`).

use std::fmt::Write;

use super::state::{Instance, RouteView, Table, Target};

pub const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
pub const ACCOUNT: &str = "123456789012";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<Response><Errors><Error>…` — the shape every EC2 error takes.
pub fn error(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        escape(code),
        escape(message),
        request_id
    )
}

/// `<XResponse><requestId/><return>true</return></XResponse>` for the boolean actions.
pub fn boolean(action: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{NS}\"><requestId>{request_id}</requestId><return>true</return></{action}Response>"
    )
}

fn tags(out: &mut String, tags: &std::collections::BTreeMap<String, String>) {
    out.push_str("<tagSet>");
    for (k, v) in tags {
        let _ = write!(
            out,
            "<item><key>{}</key><value>{}</value></item>",
            escape(k),
            escape(v)
        );
    }
    out.push_str("</tagSet>");
}

fn route(out: &mut String, r: &RouteView) {
    out.push_str("<item>");
    match r.destination {
        ipnet::IpNet::V4(n) => {
            let _ = write!(out, "<destinationCidrBlock>{n}</destinationCidrBlock>");
        }
        ipnet::IpNet::V6(n) => {
            let _ = write!(
                out,
                "<destinationIpv6CidrBlock>{n}</destinationIpv6CidrBlock>"
            );
        }
    }
    match &r.target {
        Target::Local => out.push_str("<gatewayId>local</gatewayId>"),
        Target::Gateway(id) => {
            let _ = write!(out, "<gatewayId>{}</gatewayId>", escape(id));
        }
        Target::NatGateway(id) => {
            let _ = write!(out, "<natGatewayId>{}</natGatewayId>", escape(id));
        }
        Target::VpcPeeringConnection(id) => {
            let _ = write!(
                out,
                "<vpcPeeringConnectionId>{}</vpcPeeringConnectionId>",
                escape(id)
            );
        }
        Target::TransitGateway(id) => {
            let _ = write!(out, "<transitGatewayId>{}</transitGatewayId>", escape(id));
        }
        Target::NetworkInterface(id) => {
            if let Some(inst) = &r.instance_id {
                let _ = write!(
                    out,
                    "<instanceId>{}</instanceId><instanceOwnerId>{ACCOUNT}</instanceOwnerId>",
                    escape(inst)
                );
            }
            let _ = write!(
                out,
                "<networkInterfaceId>{}</networkInterfaceId>",
                escape(id)
            );
        }
        Target::Instance(id) => {
            let _ = write!(out, "<instanceId>{}</instanceId>", escape(id));
        }
    }
    let _ = write!(
        out,
        "<state>{}</state><origin>{}</origin></item>",
        if r.blackhole { "blackhole" } else { "active" },
        r.origin.as_str()
    );
}

pub fn describe_route_tables(
    tables: &[(&Table, Vec<RouteView>)],
    next_token: Option<&str>,
    request_id: &str,
) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRouteTablesResponse xmlns=\"{NS}\"><requestId>{request_id}</requestId><routeTableSet>"
    );
    for (t, routes) in tables {
        let _ = write!(
            out,
            "<item><routeTableId>{}</routeTableId><vpcId>{}</vpcId><ownerId>{ACCOUNT}</ownerId><routeSet>",
            escape(&t.id),
            escape(&t.vpc_id)
        );
        for r in routes {
            route(&mut out, r);
        }
        out.push_str("</routeSet><associationSet/><propagatingVgwSet/>");
        tags(&mut out, &t.tags);
        out.push_str("</item>");
    }
    out.push_str("</routeTableSet>");
    if let Some(token) = next_token {
        let _ = write!(out, "<nextToken>{}</nextToken>", escape(token));
    }
    out.push_str("</DescribeRouteTablesResponse>");
    out
}

pub fn describe_instances(
    instances: &[&Instance],
    next_token: Option<&str>,
    request_id: &str,
) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"{NS}\"><requestId>{request_id}</requestId><reservationSet>"
    );
    for inst in instances {
        let _ = write!(
            out,
            "<item><reservationId>r-{}</reservationId><ownerId>{ACCOUNT}</ownerId><groupSet/><instancesSet><item><instanceId>{}</instanceId>",
            escape(inst.id.trim_start_matches("i-")),
            escape(&inst.id)
        );
        let (code, name) = if inst.terminated {
            (48, "terminated")
        } else {
            (16, "running")
        };
        let _ = write!(
            out,
            "<instanceState><code>{code}</code><name>{name}</name></instanceState><placement><availabilityZone>{}</availabilityZone></placement>",
            escape(&inst.availability_zone)
        );
        let primary = inst.network_interfaces.iter().find(|n| n.device_index == 0);
        if !inst.terminated {
            if let Some(p) = primary {
                let _ = write!(out, "<privateIpAddress>{}</privateIpAddress>", p.private_ip);
                if let Some(v6) = p.ipv6 {
                    let _ = write!(out, "<ipv6Address>{v6}</ipv6Address>");
                }
            }
            out.push_str("<networkInterfaceSet>");
            for n in &inst.network_interfaces {
                let _ = write!(
                    out,
                    "<item><networkInterfaceId>{}</networkInterfaceId><ownerId>{ACCOUNT}</ownerId><status>in-use</status><privateIpAddress>{}</privateIpAddress><sourceDestCheck>{}</sourceDestCheck><attachment><attachmentId>eni-attach-{}</attachmentId><deviceIndex>{}</deviceIndex><status>attached</status><deleteOnTermination>true</deleteOnTermination></attachment><ipv6AddressesSet>",
                    escape(&n.id),
                    n.private_ip,
                    n.source_dest_check,
                    escape(n.id.trim_start_matches("eni-")),
                    n.device_index
                );
                if let Some(v6) = n.ipv6 {
                    let _ = write!(out, "<item><ipv6Address>{v6}</ipv6Address></item>");
                }
                out.push_str("</ipv6AddressesSet></item>");
            }
            out.push_str("</networkInterfaceSet>");
            let sdc = primary.is_none_or(|p| p.source_dest_check);
            let _ = write!(out, "<sourceDestCheck>{sdc}</sourceDestCheck>");
        } else {
            out.push_str("<networkInterfaceSet/>");
        }
        tags(&mut out, &inst.tags);
        out.push_str("</item></instancesSet></item>");
    }
    out.push_str("</reservationSet>");
    if let Some(token) = next_token {
        let _ = write!(out, "<nextToken>{}</nextToken>", escape(token));
    }
    out.push_str("</DescribeInstancesResponse>");
    out
}
