//! The ptp-style data path: one veth pair per attachment, host /32 (/128) routes, and a
//! link-local gateway the pod reaches through a permanent neighbour entry.
//!
//! Gateway scheme: every pod routes `default via 169.254.1.1` (`fe80::1`) out of its
//! interface, and the host end of every veth has the same MAC (`ee:ee:ee:ee:ee:ee`) that
//! the pod has as a permanent neighbour entry for the gateway. So no address of the pod
//! range is spent on gateways (ptp puts one on every host veth), the pod's config is the
//! same on every node (nothing to rewrite when a PodCIDR changes), there is no ARP/NDP for
//! the gateway (no proxy ARP whose answer depends on the host's routing table), and every
//! packet goes through the host's routing and netfilter (kube-proxy, hairpin) like ptp.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};

use super::env::Attachment;
use super::error::{CHECK_FAILED, CniError, HOST_NAME_TAKEN, Result};
use super::netlink::{IFF_UP, Netlink, format_mac};
use super::netns::{run_in, sysctl};
use super::result::{CniResult, Interface, IpConfig, RouteEntry};

pub const GATEWAY_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 1, 1));
pub const GATEWAY_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
pub const HOST_MAC: [u8; 6] = [0xee; 6];
pub const HOST_PREFIX: &str = "cnic";

/// The host end's name from (container id, ifname) alone, so DEL and GC find it without
/// state: `cnic` + 11 hex digits (44 bits) of FNV-1a, 15 bytes, the kernel's limit.
pub fn host_veth_name(a: &Attachment) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in a.container_id.bytes().chain([0]).chain(a.ifname.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{HOST_PREFIX}{:011x}", h >> 20)
}

fn gateway(ip: &IpAddr) -> IpAddr {
    if ip.is_ipv4() { GATEWAY_V4 } else { GATEWAY_V6 }
}

fn host_len(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn kernel(what: &str) -> impl Fn(std::io::Error) -> CniError + '_ {
    move |e| CniError::kernel(what, e)
}

/// Creates the attachment. On error the caller tears down (the host veth name is enough).
pub fn setup(
    a: &Attachment,
    netns: &std::fs::File,
    netns_path: &str,
    ips: &[IpAddr],
    mtu: u32,
) -> Result<CniResult> {
    let host_name = host_veth_name(a);
    let mut host = Netlink::open().map_err(kernel("open netlink"))?;
    if host
        .link_by_name(&host_name)
        .map_err(kernel("look up host veth"))?
        .is_some()
    {
        return Err(CniError::new(
            HOST_NAME_TAKEN,
            format!(
                "host interface {host_name} for {}/{} already exists",
                a.container_id, a.ifname
            ),
        ));
    }
    let has_v4 = ips.iter().any(IpAddr::is_ipv4);
    let has_v6 = ips.iter().any(IpAddr::is_ipv6);
    if has_v4 {
        sysctl("net/ipv4/ip_forward", "1").map_err(kernel("enable IPv4 forwarding"))?;
    }
    if has_v6 {
        sysctl("net/ipv6/conf/all/forwarding", "1").map_err(kernel("enable IPv6 forwarding"))?;
    }
    host.create_veth(&host_name, HOST_MAC, &a.ifname, netns.as_raw_fd(), mtu)
        .map_err(kernel("create veth pair"))?;
    let link = host
        .link_by_name(&host_name)
        .map_err(kernel("look up host veth"))?
        .ok_or_else(|| CniError::kernel("look up host veth", "vanished after creation"))?;
    if has_v6 {
        // The gateway address itself, usable at once: the host answers the pod's traffic to
        // fe80::1 and sends its neighbour solicitations from it.
        sysctl(&format!("net/ipv6/conf/{host_name}/accept_dad"), "0")
            .map_err(kernel("host accept_dad"))?;
        host.add_addr(link.index, GATEWAY_V6, 64)
            .map_err(kernel("add fe80::1 to host veth"))?;
    }
    host.set_up(link.index)
        .map_err(kernel("set host veth up"))?;
    let ifname = a.ifname.clone();
    let pod_ips = ips.to_vec();
    let pod_mac = run_in(netns.as_fd(), move || {
        let mut pod = Netlink::open().map_err(kernel("open netlink in pod"))?;
        let link = pod
            .link_by_name(&ifname)
            .map_err(kernel("look up pod interface"))?
            .ok_or_else(|| CniError::kernel("look up pod interface", "not found after creation"))?;
        if pod_ips.iter().any(IpAddr::is_ipv6) {
            // Belt and braces with IFA_F_NODAD: nothing on this interface waits for DAD.
            let _ = sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
        }
        for ip in &pod_ips {
            pod.add_addr(link.index, *ip, host_len(ip))
                .map_err(kernel("add pod address"))?;
        }
        pod.set_up(link.index)
            .map_err(kernel("set pod interface up"))?;
        for ip in &pod_ips {
            let gw = gateway(ip);
            pod.add_neighbour(link.index, gw, HOST_MAC)
                .map_err(kernel("add gateway neighbour"))?;
            if gw.is_ipv4() {
                pod.add_route(gw, 32, None, link.index)
                    .map_err(kernel("add gateway route"))?;
            }
            let any = if ip.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u8; 16])
            };
            pod.add_route(any, 0, Some(gw), link.index)
                .map_err(kernel("add default route"))?;
        }
        Ok(link.mac)
    })?;
    for ip in ips {
        host.add_route(*ip, host_len(ip), None, link.index)
            .map_err(kernel("add host route"))?;
    }
    Ok(CniResult {
        interfaces: vec![
            Interface {
                name: host_name,
                mac: format_mac(&HOST_MAC),
                sandbox: None,
            },
            Interface {
                name: a.ifname.clone(),
                mac: format_mac(&pod_mac),
                sandbox: Some(netns_path.to_string()),
            },
        ],
        ips: ips
            .iter()
            .map(|ip| IpConfig {
                address: super::ipam::host_net(*ip),
                gateway: Some(gateway(ip)),
                interface: Some(1),
            })
            .collect(),
        routes: ips
            .iter()
            .map(|ip| RouteEntry {
                dst: if ip.is_ipv4() {
                    "0.0.0.0/0".parse().expect("cidr")
                } else {
                    "::/0".parse().expect("cidr")
                },
                gw: Some(gateway(ip)),
            })
            .collect(),
        dns: None,
    })
}

/// Removes the host end (the kernel removes its peer and the host routes with it).
/// Ok(false) when there was nothing to remove.
pub fn teardown(a: &Attachment) -> Result<bool> {
    let mut host = Netlink::open().map_err(kernel("open netlink"))?;
    host.delete_link(&host_veth_name(a))
        .map_err(kernel("delete host veth"))
}

fn mismatch(what: String) -> CniError {
    CniError::new(CHECK_FAILED, what)
}

/// CHECK: the host end, its routes, the pod interface, addresses and default routes exist.
pub fn check(a: &Attachment, netns: &std::fs::File, ips: &[IpAddr]) -> Result<()> {
    let host_name = host_veth_name(a);
    let mut host = Netlink::open().map_err(kernel("open netlink"))?;
    let link = host
        .link_by_name(&host_name)
        .map_err(kernel("look up host veth"))?
        .ok_or_else(|| mismatch(format!("host interface {host_name} is missing")))?;
    if link.flags & IFF_UP == 0 {
        return Err(mismatch(format!("host interface {host_name} is down")));
    }
    for ip in ips {
        let routes = host
            .routes(ip.is_ipv4())
            .map_err(kernel("list host routes"))?;
        if !routes
            .iter()
            .any(|r| r.dst == *ip && r.dst_len == host_len(ip) && r.oif == Some(link.index))
        {
            return Err(mismatch(format!(
                "host route {ip}/{} via {host_name} is missing",
                host_len(ip)
            )));
        }
    }
    let ifname = a.ifname.clone();
    let pod_ips = ips.to_vec();
    run_in(netns.as_fd(), move || {
        let mut pod = Netlink::open().map_err(kernel("open netlink in pod"))?;
        let link = pod
            .link_by_name(&ifname)
            .map_err(kernel("look up pod interface"))?
            .ok_or_else(|| mismatch(format!("pod interface {ifname} is missing")))?;
        if link.flags & IFF_UP == 0 {
            return Err(mismatch(format!("pod interface {ifname} is down")));
        }
        let addrs = pod
            .addrs(link.index)
            .map_err(kernel("list pod addresses"))?;
        for ip in &pod_ips {
            if !addrs.iter().any(|x| x.ip == *ip) {
                return Err(mismatch(format!(
                    "pod address {ip} is missing from {ifname}"
                )));
            }
            let routes = pod
                .routes(ip.is_ipv4())
                .map_err(kernel("list pod routes"))?;
            if !routes.iter().any(|r| {
                r.dst_len == 0 && r.gateway == Some(gateway(ip)) && r.oif == Some(link.index)
            }) {
                return Err(mismatch(format!(
                    "pod default route via {} is missing",
                    gateway(ip)
                )));
            }
        }
        Ok(())
    })
}
