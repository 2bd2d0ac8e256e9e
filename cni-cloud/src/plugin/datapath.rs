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
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::env::Attachment;
use ipnet::IpNet;

use super::error::{CHECK_FAILED, CniError, HOST_NAME_TAKEN, ROUTE_TAKEN, Result};
use super::netlink::{Change, Client, IFF_UP, Netlink, Veth, format_mac};
use super::netns::{join_thread_to, run_in};
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

/// A netlink client in the calling thread's network namespace: the plugin's (the node's), or
/// a pod's on a thread that joined it.
fn open(what: &str) -> Result<Netlink> {
    Netlink::open().map_err(kernel(what))
}

/// Where the pod's half of an ADD runs: [`PodSide`]'s thread in the pod's netns, or (unit
/// tests) a fake client at hand.
trait PodWork {
    /// Hands over the pod end's index and addresses; the work runs while the caller goes on.
    fn dispatch(&mut self, job: PodJob);
    /// The outcome of the dispatched work (Ok when none was dispatched).
    fn finish(self) -> Result<()>;
}

/// The pod's half of an ADD, on a dedicated OS thread that has joined the pod's netns (so
/// its netlink socket, and the sysctls it writes, are the pod's). It is started before the
/// address allocation, so the thread's start, `setns` and socket overlap the IPAM work, and
/// it configures the pod end while the calling thread adds the host routes.
pub struct PodSide<'scope> {
    job: std::sync::mpsc::SyncSender<PodJob>,
    done: std::thread::ScopedJoinHandle<'scope, Result<()>>,
}

struct PodJob {
    index: u32,
    ifname: String,
    ips: Vec<IpAddr>,
    /// Destinations routed via the gateway (the default route, or a secondary attachment's
    /// subnets).
    routes: Vec<IpNet>,
}

impl<'scope> PodSide<'scope> {
    /// Starts the thread; dropping the value without [`setup`] lets it end unused.
    pub fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        netns: &'env std::fs::File,
    ) -> Self {
        let (job, jobs) = std::sync::mpsc::sync_channel::<PodJob>(1);
        let raw = netns.as_raw_fd();
        let done = scope.spawn(move || {
            join_thread_to(raw)?;
            let mut pod = open("open netlink in pod")?;
            match jobs.recv() {
                Ok(job) => configure_pod(&mut pod, job),
                Err(_) => Ok(()), // the ADD ended before the pod side was needed
            }
        });
        Self { job, done }
    }
}

impl PodWork for PodSide<'_> {
    /// Hands the pod end's index and addresses to the thread, which configures it while the
    /// caller goes on; [`PodSide::finish`] collects the outcome.
    fn dispatch(&mut self, job: PodJob) {
        // A closed channel means the thread already ended (setns failed): `finish` says why.
        let _ = self.job.send(job);
    }

    fn finish(self) -> Result<()> {
        drop(self.job);
        self.done
            .join()
            .unwrap_or_else(|_| Err(CniError::kernel("pod netns thread", "panicked")))
    }
}

/// Addresses, gateway neighbour entries and routes of the pod end, in one netlink batch.
/// Routes and neighbours are created exclusively: when the pod already routes a destination
/// through another interface (another attachment's default route), the ADD fails with
/// [`ROUTE_TAKEN`] naming it, and the caller's undo removes this interface and all of it.
fn configure_pod(pod: &mut impl Client, job: PodJob) -> Result<()> {
    if job.ips.iter().any(IpAddr::is_ipv6) {
        // Belt and braces with IFA_F_NODAD: nothing on this interface waits for DAD.
        let _ = pod.sysctl(&format!("net/ipv6/conf/{}/accept_dad", job.ifname), "0");
    }
    let index = job.index;
    let mut changes = Vec::new();
    for ip in &job.ips {
        changes.push(Change::AddAddr {
            index,
            ip: *ip,
            prefix: host_len(ip),
        });
    }
    changes.push(Change::SetUp { index });
    let primary = job.routes.iter().any(|r| r.prefix_len() == 0);
    for ip in &job.ips {
        let gw = gateway(ip);
        changes.push(Change::AddNeighbour {
            index,
            ip: gw,
            mac: HOST_MAC,
        });
        if gw.is_ipv4() && primary {
            changes.push(host_route(gw, index));
        }
    }
    for dst in &job.routes {
        let gw = gateway(&dst.addr());
        changes.push(Change::AddRoute {
            dst: dst.addr(),
            dst_len: dst.prefix_len(),
            gateway: Some(gw),
            oif: index,
            // No pod-wide route to 169.254.1.1: that one is the primary attachment's.
            onlink: gw.is_ipv4() && !primary,
        });
    }
    match pod.apply(&changes) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let mut wanted: Vec<(IpAddr, u8)> = job
                .routes
                .iter()
                .map(|r| (r.addr(), r.prefix_len()))
                .collect();
            if primary {
                wanted.push((GATEWAY_V4, 32));
            }
            Err(
                route_taken(pod, job.index, &wanted, "the pod").unwrap_or_else(|| {
                    CniError::new(
                        ROUTE_TAKEN,
                        format!(
                            "the pod already has a route or neighbour entry {} needs",
                            job.ifname
                        ),
                    )
                    .with_details(e.to_string())
                }),
            )
        }
        Err(e) => Err(CniError::kernel("configure pod interface", e)),
    }
}

/// After an EEXIST: which of the `wanted` routes (destination, prefix) this namespace already
/// has through an interface other than `ours`, as a [`ROUTE_TAKEN`] error naming it.
fn route_taken(
    nl: &mut impl Client,
    ours: u32,
    wanted: &[(IpAddr, u8)],
    whose: &str,
) -> Option<CniError> {
    let mut routes = nl.routes(true).ok()?;
    routes.extend(nl.routes(false).ok()?);
    let held = routes.into_iter().find(|r| {
        r.oif != Some(ours)
            && wanted
                .iter()
                .any(|(dst, len)| r.dst == *dst && r.dst_len == *len)
    })?;
    let dev = held
        .oif
        .and_then(|i| {
            nl.links()
                .ok()?
                .into_iter()
                .find(|l| l.index == i)
                .map(|l| l.name)
        })
        .unwrap_or_else(|| "another interface".into());
    let via = held
        .gateway
        .map(|g| format!(" via {g}"))
        .unwrap_or_default();
    let msg = if held.dst_len == 0 {
        format!(
            "{whose} already has a default route{via} dev {dev} (another attachment): it is not \
             taken over; give this network \"defaultRoute\": false to attach it as a \
             secondary network"
        )
    } else {
        format!(
            "{whose} already routes {}/{}{via} dev {dev}: it is not taken over (do two \
             networks' ranges overlap?)",
            held.dst, held.dst_len
        )
    };
    Some(CniError::new(ROUTE_TAKEN, msg))
}

/// A random locally administered unicast MAC for the pod end (what the kernel would pick),
/// chosen here so the result can name it without asking the pod's namespace.
fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    // SAFETY: getrandom into a local buffer of the given length.
    let n = unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), 0) };
    if n != mac.len() as isize {
        // No entropy source: any unicast MAC works on a point-to-point link.
        mac = [0x02, 0, 0, 0, 0, 1];
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// A host route: `ip` alone, out of `oif`, scope link.
fn host_route(ip: IpAddr, oif: u32) -> Change {
    Change::AddRoute {
        dst: ip,
        dst_len: host_len(&ip),
        gateway: None,
        oif,
        onlink: false,
    }
}

/// What an ADD asks of the data path.
struct Add<'a> {
    attachment: &'a Attachment,
    netns_path: &'a str,
    ips: &'a [IpAddr],
    routes: &'a [IpNet],
    mtu: u32,
}

/// Creates the attachment. On error the caller tears down (the host veth name is enough).
pub fn setup(
    a: &Attachment,
    pod: PodSide<'_>,
    netns: &std::fs::File,
    netns_path: &str,
    ips: &[IpAddr],
    routes: &[IpNet],
    mtu: u32,
) -> Result<CniResult> {
    let mut host = open("open netlink")?;
    let add = Add {
        attachment: a,
        netns_path,
        ips,
        routes,
        mtu,
    };
    setup_with(&mut host, pod, netns.as_raw_fd(), &add, random_mac())
}

/// [`setup`] over a host client and the pod's worker: the pair (its pod end `pod_mac` in
/// `netns`), the host's routes here, the pod end's configuration on `pod` meanwhile.
fn setup_with(
    host: &mut impl Client,
    mut pod: impl PodWork,
    netns: RawFd,
    add: &Add<'_>,
    pod_mac: [u8; 6],
) -> Result<CniResult> {
    let Add {
        attachment: a,
        netns_path,
        ips,
        routes,
        mtu,
    } = *add;
    let host_name = host_veth_name(a);
    let has_v4 = ips.iter().any(IpAddr::is_ipv4);
    let has_v6 = ips.iter().any(IpAddr::is_ipv6);
    if has_v4 {
        host.sysctl("net/ipv4/ip_forward", "1")
            .map_err(kernel("enable IPv4 forwarding"))?;
    }
    if has_v6 {
        host.sysctl("net/ipv6/conf/all/forwarding", "1")
            .map_err(kernel("enable IPv6 forwarding"))?;
    }
    let veth = Veth {
        host_name: &host_name,
        host_mac: HOST_MAC,
        peer_name: &a.ifname,
        peer_mac: pod_mac,
        mtu,
    };
    host.create_veth(&veth, netns).map_err(|e| {
        if e.raw_os_error() == Some(libc::EEXIST) {
            CniError::new(
                HOST_NAME_TAKEN,
                format!(
                    "host interface {host_name} (or {} in the pod) for {}/{} already exists",
                    a.ifname, a.container_id, a.ifname
                ),
            )
        } else {
            CniError::kernel("create veth pair", e)
        }
    })?;
    let link = host
        .link_by_name(&host_name)
        .map_err(kernel("look up host veth"))?
        .ok_or_else(|| CniError::kernel("look up host veth", "vanished after creation"))?;
    let pod_index = link
        .peer_index
        .ok_or_else(|| CniError::kernel("look up host veth", "no peer index"))?;
    let job = PodJob {
        index: pod_index,
        ifname: a.ifname.clone(),
        ips: ips.to_vec(),
        routes: routes.to_vec(),
    };
    // The pod end is configured on its thread while the host side is finished here.
    pod.dispatch(job);
    let host_side = (|| {
        if has_v6 {
            // The gateway address itself, usable at once: the host answers the pod's traffic
            // to fe80::1 and sends its neighbour solicitations from it.
            host.sysctl(&format!("net/ipv6/conf/{host_name}/accept_dad"), "0")
                .map_err(kernel("host accept_dad"))?;
            host.apply(&[Change::AddAddr {
                index: link.index,
                ip: GATEWAY_V6,
                prefix: 64,
            }])
            .map_err(kernel("add fe80::1 to host veth"))?;
        }
        let routes: Vec<Change> = ips.iter().map(|ip| host_route(*ip, link.index)).collect();
        host.apply(&routes).map_err(|e| {
            let wanted: Vec<(IpAddr, u8)> = ips.iter().map(|ip| (*ip, host_len(ip))).collect();
            (e.raw_os_error() == Some(libc::EEXIST))
                .then(|| route_taken(&mut *host, link.index, &wanted, "the node"))
                .flatten()
                .unwrap_or_else(|| CniError::kernel("add host route", e))
        })
    })();
    let pod_side = pod.finish();
    host_side.and(pod_side)?;
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
        routes: routes
            .iter()
            .map(|dst| RouteEntry {
                dst: *dst,
                gw: Some(gateway(&dst.addr())),
            })
            .collect(),
        dns: None,
    })
}

/// Removes the host end now (the kernel removes its peer and the host routes with it).
/// Ok(false) when there was nothing to remove. For ADD's undo and GC; DEL uses [`retire`].
pub fn teardown(a: &Attachment) -> Result<bool> {
    teardown_with(&mut open("open netlink")?, a)
}

fn teardown_with(host: &mut impl Client, a: &Attachment) -> Result<bool> {
    host.delete_link(&host_veth_name(a))
        .map_err(kernel("delete host veth"))
}

/// Host links of DELeted attachments whose unregistration was handed to a detached process:
/// `cnix` + the link's index (unique while the link exists). Everything named so is ours, down
/// and routeless; GC removes any the detached process did not get to.
pub const RETIRED_PREFIX: &str = "cnix";

fn retired_name(index: u32) -> String {
    format!("{RETIRED_PREFIX}{index:011x}")
}

/// DEL's teardown. Ok(false) when the attachment had no host end (already gone).
///
/// Unregistering a veth pair holds the caller for RCU grace periods — 15–20 ms here, most of
/// a DEL — so that part runs in a detached child, and everything a runtime may rely on once
/// DEL has answered is done first, synchronously: the host end goes down (the kernel drops
/// every host route through it at that moment and the pod loses carrier), then both ends are
/// renamed aside, so an immediate re-ADD of the same container and ifname — even into the same
/// netns — finds both names free. If any of that fails, the pair is deleted synchronously
/// instead, as before.
pub fn retire(a: &Attachment, netns: Option<&std::fs::File>) -> Result<bool> {
    let mut host = open("open netlink")?;
    retire_with(
        &mut host,
        a,
        |host_index, grave| {
            netns.is_none_or(|ns| {
                let (ifname, grave) = (a.ifname.clone(), grave.to_string());
                run_in(ns.as_fd(), move || {
                    retire_pod_end(
                        &mut open("open netlink in pod")?,
                        &ifname,
                        host_index,
                        &grave,
                    )
                })
                .is_ok()
            })
        },
        delete_detached,
    )
}

/// [`retire`] over a host client; `pod_end(host index, grave)` sets the pod's end aside (true
/// when nothing of ours is left under the ifname) and `detach(index)` starts the deleter.
fn retire_with(
    host: &mut impl Client,
    a: &Attachment,
    pod_end: impl FnOnce(u32, &str) -> bool,
    detach: impl FnOnce(u32) -> bool,
) -> Result<bool> {
    let host_name = host_veth_name(a);
    let Some(link) = host
        .link_by_name(&host_name)
        .map_err(kernel("look up host veth"))?
    else {
        return Ok(false);
    };
    let grave = retired_name(link.index);
    let set_aside = host.set_down(link.index).is_ok()
        && pod_end(link.index, &grave)
        && host.rename(link.index, &grave).is_ok();
    if set_aside && detach(link.index) {
        return Ok(true);
    }
    host.delete_index(link.index)
        .map_err(kernel("delete host veth"))
}

/// Downs and renames, in the pod's namespace, the end under `ifname` of the pair whose host end
/// is `host_index`. Another link under that name (not our peer) is left alone.
fn retire_pod_end(pod: &mut impl Client, ifname: &str, host_index: u32, grave: &str) -> Result<()> {
    match pod
        .link_by_name(ifname)
        .map_err(kernel("look up pod interface"))?
    {
        Some(l) if l.peer_index == Some(host_index) => {
            pod.set_down(l.index)
                .map_err(kernel("set pod interface down"))?;
            pod.rename(l.index, grave)
                .map_err(kernel("rename pod interface"))
        }
        _ => Ok(()),
    }
}

/// Forks a child that deletes link `index` and exits; the caller does not wait for it. False
/// when no child could be started.
fn delete_detached(index: u32) -> bool {
    // SAFETY: the plugin is single-threaded here (netns threads are scoped and joined before
    // this runs), and glibc's fork leaves malloc usable in the child. The child drops the
    // runtime's pipes first — the runtime reads stdout to EOF, so holding them would make it
    // wait for the deletion after all — and leaves with _exit, never through Rust's exit
    // path, which could flush the parent's buffered output a second time.
    unsafe {
        match libc::fork() {
            0 => {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                }
                let done = Netlink::open().and_then(|mut n| n.delete_index(index));
                libc::_exit(if done.is_ok() { 0 } else { 1 })
            }
            pid => pid > 0,
        }
    }
}

/// GC: removes retired host links a detached deleter did not get to (it was killed, or the
/// node ran out of processes). Only down veths under [`RETIRED_PREFIX`] are touched.
pub fn sweep_retired() -> Result<usize> {
    sweep_retired_with(&mut open("open netlink")?)
}

fn sweep_retired_with(host: &mut impl Client) -> Result<usize> {
    let mut removed = 0;
    for l in host.links().map_err(kernel("list host links"))? {
        if l.name.starts_with(RETIRED_PREFIX)
            && l.kind.as_deref() == Some("veth")
            && l.flags & IFF_UP == 0
            && host
                .delete_index(l.index)
                .map_err(kernel("delete retired veth"))?
        {
            removed += 1;
        }
    }
    Ok(removed)
}

fn mismatch(what: String) -> CniError {
    CniError::new(CHECK_FAILED, what)
}

/// CHECK: the host end, its routes, the pod interface, addresses and default routes exist.
pub fn check(
    a: &Attachment,
    netns: &std::fs::File,
    ips: &[IpAddr],
    routes: &[IpNet],
) -> Result<()> {
    check_host(&mut open("open netlink")?, a, ips)?;
    let ifname = a.ifname.clone();
    let pod_ips = ips.to_vec();
    let pod_routes = routes.to_vec();
    run_in(netns.as_fd(), move || {
        check_pod(
            &mut open("open netlink in pod")?,
            &ifname,
            &pod_ips,
            &pod_routes,
        )
    })
}

/// CHECK's host half: the host end is up and routes every address.
fn check_host(host: &mut impl Client, a: &Attachment, ips: &[IpAddr]) -> Result<()> {
    let host_name = host_veth_name(a);
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
    Ok(())
}

/// CHECK's pod half: the interface is up with every address and every route via its gateway.
fn check_pod(pod: &mut impl Client, ifname: &str, ips: &[IpAddr], routes: &[IpNet]) -> Result<()> {
    let link = pod
        .link_by_name(ifname)
        .map_err(kernel("look up pod interface"))?
        .ok_or_else(|| mismatch(format!("pod interface {ifname} is missing")))?;
    if link.flags & IFF_UP == 0 {
        return Err(mismatch(format!("pod interface {ifname} is down")));
    }
    let addrs = pod
        .addrs(link.index)
        .map_err(kernel("list pod addresses"))?;
    for ip in ips {
        if !addrs.iter().any(|x| x.ip == *ip) {
            return Err(mismatch(format!(
                "pod address {ip} is missing from {ifname}"
            )));
        }
    }
    for dst in routes {
        let gw = gateway(&dst.addr());
        let routes = pod
            .routes(dst.addr().is_ipv4())
            .map_err(kernel("list pod routes"))?;
        if !routes.iter().any(|r| {
            r.dst == dst.addr()
                && r.dst_len == dst.prefix_len()
                && r.gateway == Some(gw)
                && r.oif == Some(link.index)
        }) {
            return Err(mismatch(if dst.prefix_len() == 0 {
                format!("pod default route via {gw} dev {ifname} is missing")
            } else {
                format!("pod route {dst} via {gw} dev {ifname} is missing")
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::error::KERNEL;
    use super::super::netlink::fake::FakeClient;
    use super::super::netlink::{Addr, Link, Route};
    use super::*;

    /// The pod's worker of the unit tests: runs the pod's half at once on a fake client.
    struct InlinePod<'a> {
        client: &'a mut FakeClient,
        outcome: Result<()>,
    }

    impl PodWork for InlinePod<'_> {
        fn dispatch(&mut self, job: PodJob) {
            self.outcome = configure_pod(self.client, job);
        }

        fn finish(self) -> Result<()> {
            self.outcome
        }
    }

    const POD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn attachment(ifname: &str) -> Attachment {
        Attachment {
            container_id: "c1".into(),
            ifname: ifname.into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn route(dst: &str, len: u8, gw: Option<&str>, oif: u32) -> Route {
        Route {
            dst: ip(dst),
            dst_len: len,
            gateway: gw.map(ip),
            oif: Some(oif),
        }
    }

    /// A pod namespace where the pair's pod end (index 2, the fake host's default peer) is
    /// `ifname`, down, as the kernel creates it.
    fn pod_with(ifname: &str) -> FakeClient {
        let mut pod = FakeClient::default();
        pod.links.push(FakeClient::link(2, ifname, 0, Some(7)));
        pod
    }

    fn add(
        host: &mut FakeClient,
        pod: &mut FakeClient,
        a: &Attachment,
        ips: &[IpAddr],
        routes: &[IpNet],
    ) -> Result<CniResult> {
        let add = Add {
            attachment: a,
            netns_path: "/run/netns/p",
            ips,
            routes,
            mtu: 1450,
        };
        let worker = InlinePod {
            client: pod,
            outcome: Ok(()),
        };
        setup_with(host, worker, -1, &add, POD_MAC)
    }

    /// The common case: 10.0.0.5 with the default route.
    fn add_one(host: &mut FakeClient, pod: &mut FakeClient, a: &Attachment) -> Result<CniResult> {
        add(host, pod, a, &[ip("10.0.0.5")], &[net("0.0.0.0/0")])
    }

    #[test]
    fn setup_makes_the_pair_the_host_routes_and_the_pod_end_in_one_batch() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        let a = attachment("eth0");
        let ips = [ip("10.0.0.5"), ip("fd00::5")];
        let routes = [net("0.0.0.0/0"), net("::/0")];
        let result = add(&mut host, &mut pod, &a, &ips, &routes).unwrap();
        let name = host_veth_name(&a);
        let link = host.link_named(&name).unwrap();
        assert_eq!((link.index, link.mac, link.mtu), (7, HOST_MAC, 1450));
        assert_eq!(link.flags & IFF_UP, IFF_UP, "created up");
        assert_eq!(
            host.sysctls,
            [
                ("net/ipv4/ip_forward".into(), "1".into()),
                ("net/ipv6/conf/all/forwarding".into(), "1".into()),
                (format!("net/ipv6/conf/{name}/accept_dad"), "0".into()),
            ]
        );
        assert_eq!(
            host.addrs,
            [Addr {
                index: 7,
                ip: GATEWAY_V6,
                prefix: 64
            }]
        );
        assert_eq!(
            host.routes,
            [
                route("10.0.0.5", 32, None, 7),
                route("fd00::5", 128, None, 7)
            ]
        );
        // The pod end: one batch, and its accept_dad.
        assert_eq!(pod.calls.len(), 2, "{:?}", pod.calls);
        assert_eq!(
            pod.sysctls,
            [("net/ipv6/conf/eth0/accept_dad".into(), "0".into())]
        );
        assert_eq!(pod.links[1].flags & IFF_UP, IFF_UP);
        assert_eq!(
            pod.addrs
                .iter()
                .map(|a| (a.ip, a.prefix))
                .collect::<Vec<_>>(),
            [(ip("10.0.0.5"), 32), (ip("fd00::5"), 128)]
        );
        assert_eq!(pod.neighbours, [(2, GATEWAY_V4), (2, GATEWAY_V6)]);
        assert_eq!(
            pod.routes,
            [
                route("169.254.1.1", 32, None, 2),
                route("0.0.0.0", 0, Some("169.254.1.1"), 2),
                route("::", 0, Some("fe80::1"), 2),
            ]
        );
        assert_eq!(result.interfaces[0].name, name);
        assert_eq!(result.interfaces[0].mac, "ee:ee:ee:ee:ee:ee");
        assert_eq!(result.interfaces[1].mac, "02:00:00:00:00:09");
        assert_eq!(
            result.interfaces[1].sandbox.as_deref(),
            Some("/run/netns/p")
        );
        assert_eq!(result.ips[0].gateway, Some(GATEWAY_V4));
        assert_eq!(result.routes[1].gw, Some(GATEWAY_V6));
        // And CHECK finds it all.
        check_host(&mut host, &a, &ips).unwrap();
        check_pod(&mut pod, "eth0", &ips, &routes).unwrap();
    }

    #[test]
    fn a_secondary_attachment_routes_its_subnets_onlink_and_leaves_the_gateway_route_alone() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("net1"));
        // The primary attachment's routes are there already.
        pod.links.push(FakeClient::link(3, "eth0", IFF_UP, Some(5)));
        pod.routes.push(route("169.254.1.1", 32, None, 3));
        pod.routes.push(route("0.0.0.0", 0, Some("169.254.1.1"), 3));
        let a = attachment("net1");
        let routes = [net("10.9.0.0/24")];
        add(&mut host, &mut pod, &a, &[ip("10.9.0.5")], &routes).unwrap();
        let last = pod.calls.last().unwrap();
        assert!(last.contains("onlink: true"), "{last}");
        assert_eq!(
            pod.routes[2..],
            [route("10.9.0.0", 24, Some("169.254.1.1"), 2)]
        );
        check_pod(&mut pod, "net1", &[ip("10.9.0.5")], &routes).unwrap();
    }

    #[test]
    fn a_taken_host_name_is_105_and_nothing_is_touched() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        let a = attachment("eth0");
        let name = host_veth_name(&a);
        host.links.push(FakeClient::link(4, &name, IFF_UP, Some(9)));
        let e = add_one(&mut host, &mut pod, &a).unwrap_err();
        assert_eq!(e.code, HOST_NAME_TAKEN, "{e}");
        assert!(e.msg.contains(&name) && e.msg.contains("c1/eth0"), "{e}");
        assert!(pod.calls.is_empty(), "the pod side got no job");
        assert!(host.routes.is_empty());
        // The pod's ifname taken: the kernel's EEXIST for the same request.
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        host.failures.push(("create_veth", libc::EEXIST));
        let e = add(&mut host, &mut pod, &a, &[ip("10.0.0.5")], &[]).unwrap_err();
        assert_eq!(e.code, HOST_NAME_TAKEN);
        // Any other refusal is a kernel error with the errno's text.
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        host.failures.push(("create_veth", libc::EPERM));
        let e = add(&mut host, &mut pod, &a, &[ip("10.0.0.5")], &[]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (KERNEL, "create veth pair failed")
        );
        assert!(e.details.contains("not permitted"), "{e}");
    }

    #[test]
    fn a_missing_peer_fails_and_the_half_created_pair_is_torn_down() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        host.peer_index = None;
        let a = attachment("eth0");
        let e = add(&mut host, &mut pod, &a, &[ip("10.0.0.5")], &[]).unwrap_err();
        assert_eq!(e.code, KERNEL);
        assert_eq!(e.details, "no peer index");
        assert!(pod.calls.is_empty());
        // The host end exists: the caller's undo removes it (and once only).
        assert!(teardown_with(&mut host, &a).unwrap());
        assert!(host.link_named(&host_veth_name(&a)).is_none());
        assert!(!teardown_with(&mut host, &a).unwrap());
    }

    #[test]
    fn a_failed_pod_batch_is_a_kernel_error_after_the_host_side_finished() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        pod.failures.push(("apply", libc::ENOBUFS));
        let a = attachment("eth0");
        let e = add_one(&mut host, &mut pod, &a).unwrap_err();
        assert_eq!(e.msg, "configure pod interface failed", "{e}");
        // Half made: the host end and its route are there until the undo, which takes both.
        assert_eq!(host.routes.len(), 1);
        teardown_with(&mut host, &a).unwrap();
        assert!(host.routes.is_empty() && host.links.len() == 1);
    }

    #[test]
    fn a_default_route_held_by_another_attachment_is_106_naming_it() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("net1"));
        pod.links.push(FakeClient::link(3, "eth0", IFF_UP, Some(5)));
        // In the kernel's dump order: the default route sorts first.
        pod.routes.push(route("0.0.0.0", 0, Some("169.254.1.1"), 3));
        pod.routes.push(route("169.254.1.1", 32, None, 3));
        let a = attachment("net1");
        let e = add_one(&mut host, &mut pod, &a).unwrap_err();
        assert_eq!(e.code, ROUTE_TAKEN, "{e}");
        assert!(
            e.msg.starts_with(
                "the pod already has a default route via 169.254.1.1 dev eth0 (another attachment)"
            ) && e.msg.contains("\"defaultRoute\": false"),
            "{e}"
        );
        // Theirs is untouched.
        assert_eq!(pod.routes.len(), 2);
        assert!(pod.routes.iter().all(|r| r.oif == Some(3)));
    }

    #[test]
    fn an_address_the_node_routes_via_another_interface_is_106_naming_it() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        host.links.push(FakeClient::link(4, "ens5", IFF_UP, None));
        host.routes.push(route("10.0.0.5", 32, None, 4));
        let a = attachment("eth0");
        let e = add_one(&mut host, &mut pod, &a).unwrap_err();
        assert_eq!(e.code, ROUTE_TAKEN, "{e}");
        assert_eq!(
            e.msg,
            "the node already routes 10.0.0.5/32 dev ens5: it is not taken over (do two \
             networks' ranges overlap?)"
        );
        assert_eq!(host.routes, [route("10.0.0.5", 32, None, 4)]);
    }

    #[test]
    fn an_eexist_no_route_explains_is_still_106_with_the_kernels_text() {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        pod.neighbours.push((2, GATEWAY_V4));
        let a = attachment("eth0");
        let e = add_one(&mut host, &mut pod, &a).unwrap_err();
        assert_eq!(e.code, ROUTE_TAKEN, "{e}");
        assert_eq!(
            e.msg,
            "the pod already has a route or neighbour entry eth0 needs"
        );
        assert!(e.details.contains("exists"), "{e}");
    }

    /// A host and pod after an ADD of `eth0` with 10.0.0.5.
    fn attached() -> (FakeClient, FakeClient, Attachment) {
        let (mut host, mut pod) = (FakeClient::default(), pod_with("eth0"));
        let a = attachment("eth0");
        add_one(&mut host, &mut pod, &a).unwrap();
        (host, pod, a)
    }

    #[test]
    fn retire_downs_and_renames_both_ends_then_detaches_the_deletion() {
        let (mut host, mut pod, a) = attached();
        let grave = retired_name(7);
        let mut detached = None;
        let done = retire_with(
            &mut host,
            &a,
            |index, g| retire_pod_end(&mut pod, "eth0", index, g).is_ok(),
            |index| {
                detached = Some(index);
                true
            },
        )
        .unwrap();
        assert!(done);
        assert_eq!(detached, Some(7));
        let link = host.link_named(&grave).expect("renamed aside");
        assert_eq!(link.flags & IFF_UP, 0);
        assert!(host.routes.is_empty(), "down drops the host route");
        assert!(host.link_named(&host_veth_name(&a)).is_none());
        assert!(pod.link_named("eth0").is_none(), "the ifname is free");
        assert_eq!(pod.link_named(&grave).unwrap().flags & IFF_UP, 0);
        // Once retired, there is nothing left to DEL.
        let again = retire_with(&mut host, &a, |_, _| unreachable!(), |_| unreachable!());
        assert!(!again.unwrap());
    }

    #[test]
    fn retire_deletes_at_once_when_setting_aside_or_detaching_fails() {
        // No child could be started.
        let (mut host, _, a) = attached();
        assert!(retire_with(&mut host, &a, |_, _| true, |_| false).unwrap());
        assert_eq!(host.links.len(), 1, "only lo is left");
        // The host end cannot go down: no pod work, no child.
        let (mut host, _, a) = attached();
        host.failures.push(("set_down", libc::EPERM));
        let done = retire_with(&mut host, &a, |_, _| unreachable!(), |_| unreachable!());
        assert!(done.unwrap());
        assert!(host.calls.last().unwrap().starts_with("delete_index 7"));
        // The pod end cannot be renamed.
        let (mut host, mut pod, a) = attached();
        pod.failures.push(("rename", libc::EBUSY));
        let done = retire_with(
            &mut host,
            &a,
            |index, g| retire_pod_end(&mut pod, "eth0", index, g).is_ok(),
            |_| unreachable!(),
        );
        assert!(done.unwrap());
        assert_eq!(host.links.len(), 1);
    }

    #[test]
    fn the_pods_ifname_on_another_link_is_left_alone() {
        let mut pod = FakeClient::default();
        pod.links
            .push(FakeClient::link(2, "eth0", IFF_UP, Some(99)));
        retire_pod_end(&mut pod, "eth0", 7, "cnix00000000007").unwrap();
        assert_eq!(pod.link_named("eth0").unwrap().flags & IFF_UP, IFF_UP);
        // And none at all (the pod end went with its namespace) is fine too.
        retire_pod_end(&mut FakeClient::default(), "eth0", 7, "cnix00000000007").unwrap();
    }

    #[test]
    fn gc_sweeps_only_down_veths_under_the_retired_prefix() {
        let mut host = FakeClient::default();
        host.links.extend([
            FakeClient::link(10, &retired_name(10), 0, Some(2)),
            FakeClient::link(11, &retired_name(11), IFF_UP, Some(2)),
            Link {
                kind: Some("bridge".into()),
                ..FakeClient::link(12, "cnixbridge", 0, None)
            },
            FakeClient::link(13, "cnic00000000001", 0, Some(2)),
        ]);
        assert_eq!(sweep_retired_with(&mut host).unwrap(), 1);
        let left: Vec<u32> = host.links.iter().map(|l| l.index).collect();
        assert_eq!(left, [1, 11, 12, 13]);
    }

    #[test]
    fn check_names_what_differs() {
        let ips = [ip("10.0.0.5")];
        let routes = [net("0.0.0.0/0")];
        let code = |r: Result<()>| r.map_err(|e| (e.code, e.msg));
        let (mut host, mut pod, a) = attached();
        let name = host_veth_name(&a);
        host.routes.clear();
        assert_eq!(
            code(check_host(&mut host, &a, &ips)),
            Err((
                CHECK_FAILED,
                format!("host route 10.0.0.5/32 via {name} is missing")
            ))
        );
        host.links[1].flags = 0;
        assert_eq!(
            code(check_host(&mut host, &a, &ips)),
            Err((CHECK_FAILED, format!("host interface {name} is down")))
        );
        teardown_with(&mut host, &a).unwrap();
        assert_eq!(
            code(check_host(&mut host, &a, &ips)),
            Err((CHECK_FAILED, format!("host interface {name} is missing")))
        );
        pod.routes.retain(|r| r.dst_len != 0);
        assert_eq!(
            code(check_pod(&mut pod, "eth0", &ips, &routes)),
            Err((
                CHECK_FAILED,
                "pod default route via 169.254.1.1 dev eth0 is missing".into()
            ))
        );
        assert_eq!(
            code(check_pod(&mut pod, "eth0", &[ip("10.0.0.6")], &routes)),
            Err((
                CHECK_FAILED,
                "pod address 10.0.0.6 is missing from eth0".into()
            ))
        );
        assert_eq!(
            code(check_pod(&mut pod, "eth1", &ips, &routes)),
            Err((CHECK_FAILED, "pod interface eth1 is missing".into()))
        );
        pod.failures.push(("addrs", libc::EPERM));
        assert_eq!(
            code(check_pod(&mut pod, "eth0", &ips, &routes))
                .unwrap_err()
                .0,
            KERNEL
        );
    }
}
