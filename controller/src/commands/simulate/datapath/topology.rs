//! The lab's namespaces and links, built from the plan: a fabric routing between node
//! subnets (one bridge per subnet, the subnet's gateway on it, a policy rule sending what
//! arrives from the subnet to that subnet's table), an API endpoint and an "internet"
//! attached to it, a namespace per node on its subnet, and an (empty) namespace per pod for
//! the plugin to wire up.

use std::sync::Arc;

use super::lab::{Lab, Ns, bridge};
use super::plan::{API_NET, INTERNET_NET, LabNode, Plan, TABLE_BASE, VPC, gateway, host, subnet};

pub struct Topology {
    pub fabric: Ns,
    pub api: Ns,
    pub internet: Ns,
    /// By plan index (the replacement last).
    pub nodes: Vec<Arc<Ns>>,
    /// By plan index, then pod number: the pods' namespaces, empty until the plugin's ADD.
    pub pods: Vec<Vec<Arc<Ns>>>,
}

pub fn pod_name(node: &LabNode, k: u32) -> String {
    format!("{}-pod-{k}", node.name)
}

impl Topology {
    pub fn build(lab: &mut Lab, plan: &Plan, stop: &dyn Fn() -> bool) -> anyhow::Result<Topology> {
        let fabric = lab.ns("fabric")?;
        // A router: forwarding on, and no redirects: a node told to reach another node
        // directly would bypass the route tables the lab is about.
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.send_redirects", "0"),
            ("net.ipv4.conf.default.send_redirects", "0"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            fabric.sysctl(k, v)?;
        }
        for s in 0..plan.subnets {
            let br = bridge(s);
            let gw = format!("{}/{}", gateway(s), subnet(s).prefix_len());
            let table = (TABLE_BASE + s).to_string();
            fabric.ip(&["link", "add", "name", &br, "type", "bridge"])?;
            fabric.ip(&["addr", "add", &gw, "dev", &br])?;
            fabric.ip(&["link", "set", &br, "up"])?;
            // The subnet's route table association.
            fabric.ip(&["rule", "add", "iif", &br, "lookup", &table, "pref", &table])?;
        }
        let attach = |ns: &Ns, link: &str, net: &str| -> anyhow::Result<()> {
            ns.ip(&[
                "link",
                "add",
                "name",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                link,
                "netns",
                &fabric.name,
            ])?;
            let len = net.split('/').nth(1).unwrap_or("30");
            fabric.ip(&[
                "addr",
                "add",
                &format!("{}/{len}", host(net, 1)),
                "dev",
                link,
            ])?;
            fabric.ip(&["link", "set", link, "up"])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/{len}", host(net, 2)),
                "dev",
                "eth0",
            ])?;
            ns.ip(&["link", "set", "eth0", "up"])?;
            Ok(())
        };
        let api = lab.ns("api")?;
        attach(&api, "api", API_NET)?;
        api.ip(&["route", "add", VPC, "via", &host(API_NET, 1).to_string()])?;
        let internet = lab.ns("internet")?;
        attach(&internet, "internet", INTERNET_NET)?;
        // The internet knows the VPC's public side only: the node addresses pod egress is
        // masqueraded to. Pod addresses have no way back from here.
        internet.ip(&[
            "route",
            "add",
            VPC,
            "via",
            &host(INTERNET_NET, 1).to_string(),
        ])?;
        fabric.ip(&[
            "route",
            "add",
            "default",
            "via",
            &host(INTERNET_NET, 2).to_string(),
        ])?;

        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        for node in plan.all() {
            if stop() {
                anyhow::bail!(super::Interrupted);
            }
            let ns = lab.ns(&format!("n{}", node.index))?;
            let port = format!("n{}", node.index);
            ns.ip(&[
                "link",
                "add",
                "name",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &fabric.name,
            ])?;
            fabric.ip(&["link", "set", &port, "master", &bridge(node.subnet), "up"])?;
            let addr = format!("{}/{}", node.address, subnet(node.subnet).prefix_len());
            ns.ip(&["addr", "add", &addr, "dev", "eth0"])?;
            ns.ip(&["link", "set", "eth0", "up"])?;
            ns.ip(&[
                "route",
                "add",
                "default",
                "via",
                &gateway(node.subnet).to_string(),
            ])?;
            // A new namespace inherits the host's forwarding: off, so the installer is what
            // switches it on.
            ns.sysctl("net.ipv4.ip_forward", "0")?;
            let mut mine = Vec::new();
            for k in 0..plan.pods_per_node {
                mine.push(Arc::new(lab.ns(&format!("n{}p{k}", node.index))?));
            }
            nodes.push(Arc::new(ns));
            pods.push(mine);
        }
        Ok(Topology {
            fabric,
            api,
            internet,
            nodes,
            pods,
        })
    }
}
