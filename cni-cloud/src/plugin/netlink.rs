//! A small synchronous rtnetlink client: exactly the link, address, route and neighbour
//! messages the plugin sends, encoded by hand over a raw `NETLINK_ROUTE` socket.
//!
//! Why not `rtnetlink`: it needs an async runtime, whose start-up would sit on every ADD/DEL,
//! and a netlink socket belongs to the netns it was *created* in, so the only thing that must
//! run in the pod's netns is `socket(2)` (see `netns::open_netlink_in`). A blocking socket
//! with one request in flight needs none of the async machinery, keeps the binary's ADD path
//! at a handful of syscalls and its resident memory small (the benchmark's RSS goal).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_PERMANENT: u32 = 0x80;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_PERMANENT: u16 = 0x80;

pub const IFF_UP: u32 = 0x1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub flags: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// IFLA_LINK: for a veth, the peer's index in the peer's namespace.
    pub peer_index: Option<u32>,
    /// IFLA_INFO_KIND, e.g. "veth".
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub dst_len: u8,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

/// A message under construction: header, fixed part, then attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Self {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(fixed);
        Self { buf }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.buf[6], self.buf[7]])
    }

    fn raw(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(family: u8, index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = family;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn family(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// Attributes after a fixed header: (type without flags, payload).
fn attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        let next = (len + 3) & !3;
        data = &data[next.min(data.len())..];
    }
    out
}

pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    /// The receive buffer, reused by every request of this socket.
    buf: Vec<u8>,
}

/// Large enough for any single message the kernel sends for our requests (a dump arrives in
/// several reads).
const RECV_BUF: usize = 32 * 1024;

impl Netlink {
    /// A socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Extended acks make the kernel say *why* it refused (e.g. "Permission denied" vs a
        // specific attribute); harmless when the kernel lacks them.
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_EXT_ACK,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        Ok(Self::from_fd(fd))
    }

    pub fn from_fd(fd: OwnedFd) -> Self {
        Self {
            fd,
            seq: 1,
            buf: vec![0u8; RECV_BUF],
        }
    }

    fn send(&mut self, msg: Msg) -> io::Result<u32> {
        self.seq += 1;
        let bytes = msg.finish(self.seq);
        self.send_bytes(&bytes)?;
        Ok(self.seq)
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: sending our own buffer; the kernel (pid 0) is the default destination.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram from the kernel into `buf`, retrying on EINTR.
    fn recv_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: reading into our own buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Reads replies to `seq`, returning every data message as (type, payload after the
    /// netlink header). A dump ends with NLMSG_DONE; any request ends with NLMSG_ERROR (an
    /// error, or the ack when NLM_F_ACK was set); a plain GET without NLM_F_ACK gets exactly
    /// one data message and nothing after it, so it ends there.
    fn collect(&mut self, seq: u32, flags: u16) -> io::Result<Vec<(u16, Vec<u8>)>> {
        let single = flags & NLM_F_DUMP != NLM_F_DUMP && flags & NLM_F_ACK == 0;
        let mut out = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.collect_into(seq, single, &mut buf, &mut out);
        self.buf = buf;
        result.map(|()| out)
    }

    fn collect_into(
        &mut self,
        seq: u32,
        single: bool,
        buf: &mut [u8],
        out: &mut Vec<(u16, Vec<u8>)>,
    ) -> io::Result<()> {
        loop {
            let n = self.recv_into(buf)?;
            let mut data = &buf[..n];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let mseq = u32::from_ne_bytes(data[8..12].try_into().expect("4 bytes"));
                if len < 16 || len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let payload = &data[16..len];
                data = &data[((len + 3) & !3).min(data.len())..];
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR if payload.len() < 4 => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "short netlink error message",
                        ));
                    }
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(payload[0..4].try_into().expect("4 bytes"));
                        if code == 0 {
                            return Ok(());
                        }
                        let err = io::Error::from_raw_os_error(-code);
                        return Err(match ext_ack_msg(payload) {
                            Some(why) => io::Error::new(err.kind(), format!("{err}: {why}")),
                            None => err,
                        });
                    }
                    _ => {
                        out.push((kind, payload.to_vec()));
                        if single {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn request(&mut self, msg: Msg) -> io::Result<Vec<(u16, Vec<u8>)>> {
        let flags = msg.flags();
        let seq = self.send(msg)?;
        self.collect(seq, flags)
    }

    /// Creates a veth pair: `host_name` here with `host_mac`, already up, and its peer
    /// `peer_name` with `peer_mac` directly in the namespace `peer_netns` (an open nsfs fd),
    /// both with `mtu`. The host end's flags and the peer's MAC in the create request spare
    /// a "set up" request and the lookup of the peer's MAC. (The kernel refuses IFF_UP in the
    /// peer's header with ENOTCONN; the pod side sets it up in its batch.)
    pub fn create_veth(
        &mut self,
        host_name: &str,
        host_mac: [u8; 6],
        peer_name: &str,
        peer_mac: [u8; 6],
        peer_netns: RawFd,
        mtu: u32,
    ) -> io::Result<()> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, 0, IFF_UP, IFF_UP),
        );
        m.attr(IFLA_IFNAME, &cstr(host_name));
        m.attr(IFLA_ADDRESS, &host_mac);
        m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        let info = m.begin(IFLA_LINKINFO);
        m.attr(IFLA_INFO_KIND, b"veth");
        let data = m.begin(IFLA_INFO_DATA);
        let peer = m.begin(VETH_INFO_PEER);
        m.raw(&ifinfomsg(0, 0, 0, 0));
        m.attr(IFLA_IFNAME, &cstr(peer_name));
        m.attr(IFLA_ADDRESS, &peer_mac);
        m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        m.attr(IFLA_NET_NS_FD, &(peer_netns as u32).to_ne_bytes());
        m.end(peer);
        m.end(data);
        m.end(info);
        self.request(m).map(drop)
    }

    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut m = Msg::new(RTM_GETLINK, 0, &ifinfomsg(0, 0, 0, 0));
        m.attr(IFLA_IFNAME, &cstr(name));
        match self.request(m) {
            Ok(msgs) => Ok(msgs
                .iter()
                .find(|(k, _)| *k == RTM_NEWLINK)
                .and_then(|(_, p)| parse_link(p))),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of this namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let m = Msg::new(RTM_GETLINK, NLM_F_DUMP, &ifinfomsg(0, 0, 0, 0));
        Ok(self
            .request(m)?
            .iter()
            .filter(|(k, _)| *k == RTM_NEWLINK)
            .filter_map(|(_, p)| parse_link(p))
            .collect())
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let m = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(0, index, IFF_UP, IFF_UP));
        self.request(m).map(drop)
    }

    pub fn set_down(&mut self, index: u32) -> io::Result<()> {
        let m = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(0, index, 0, IFF_UP));
        self.request(m).map(drop)
    }

    /// Renames a link; the kernel refuses (EBUSY) while it is up.
    pub fn rename(&mut self, index: u32, name: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(0, index, 0, 0));
        m.attr(IFLA_IFNAME, &cstr(name));
        self.request(m).map(drop)
    }

    /// Deletes a link by index; Ok(false) when there is none.
    pub fn delete_index(&mut self, index: u32) -> io::Result<bool> {
        let m = Msg::new(RTM_DELLINK, NLM_F_ACK, &ifinfomsg(0, index, 0, 0));
        match self.request(m) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a link by name; Ok(false) when there is none.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut m = Msg::new(RTM_DELLINK, NLM_F_ACK, &ifinfomsg(0, 0, 0, 0));
        m.attr(IFLA_IFNAME, &cstr(name));
        match self.request(m) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends every request in one `sendto` and waits for all their acks: the kernel handles
    /// them in order, so a later request may depend on an earlier one (a route via a
    /// gateway after the route to it). The first failure is returned; the kernel still
    /// handled the requests after it.
    pub fn batch(&mut self, requests: Vec<Request>) -> io::Result<()> {
        let first = self.seq + 1;
        let mut bytes = Vec::new();
        for Request(m) in requests {
            self.seq += 1;
            bytes.extend_from_slice(&m.finish(self.seq));
        }
        let last = self.seq;
        if last < first {
            return Ok(());
        }
        self.send_bytes(&bytes)?;
        let mut pending = (last - first + 1) as usize;
        let mut failure = None;
        let mut buf = std::mem::take(&mut self.buf);
        while pending > 0 {
            let n = match self.recv_into(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    self.buf = buf;
                    return Err(e);
                }
            };
            let mut data = &buf[..n];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                if len < 16 || len > data.len() {
                    self.buf = buf;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let seq = u32::from_ne_bytes(data[8..12].try_into().expect("4 bytes"));
                let payload = &data[16..len];
                if kind == NLMSG_ERROR && (first..=last).contains(&seq) && payload.len() >= 4 {
                    pending -= 1;
                    let code = i32::from_ne_bytes(payload[0..4].try_into().expect("4 bytes"));
                    if code != 0 && failure.is_none() {
                        let err = io::Error::from_raw_os_error(-code);
                        failure = Some(match ext_ack_msg(payload) {
                            Some(why) => io::Error::new(err.kind(), format!("{err}: {why}")),
                            None => err,
                        });
                    }
                }
                data = &data[((len + 3) & !3).min(data.len())..];
            }
        }
        self.buf = buf;
        failure.map_or(Ok(()), Err)
    }

    /// Adds an address without duplicate address detection: usable at once.
    pub fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        self.request(Request::add_addr(index, ip, prefix).0)
            .map(drop)
    }
}

/// One request for [`Netlink::batch`].
pub struct Request(Msg);

impl Request {
    pub fn set_up(index: u32) -> Self {
        Self(Msg::new(
            RTM_NEWLINK,
            NLM_F_ACK,
            &ifinfomsg(0, index, IFF_UP, IFF_UP),
        ))
    }

    pub fn add_addr(index: u32, ip: IpAddr, prefix: u8) -> Self {
        let mut fixed = [0u8; 8];
        fixed[0] = family(&ip);
        fixed[1] = prefix;
        fixed[2] = (IFA_F_NODAD | IFA_F_PERMANENT) as u8;
        fixed[3] = if ip.is_ipv6() && is_link_local(&ip) {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        };
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(
            RTM_NEWADDR,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &fixed,
        );
        m.attr(IFA_LOCAL, &ip_bytes(&ip));
        m.attr(IFA_ADDRESS, &ip_bytes(&ip));
        m.attr(IFA_FLAGS, &(IFA_F_NODAD | IFA_F_PERMANENT).to_ne_bytes());
        Self(m)
    }

    /// A route in the main table: `dst/dst_len` out of `oif`, via `gateway` if given, else
    /// scope link.
    pub fn add_route(dst: IpAddr, dst_len: u8, gateway: Option<IpAddr>, oif: u32) -> Self {
        Self(route_msg(
            RTM_NEWROUTE,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            dst,
            dst_len,
            gateway,
            oif,
        ))
    }

    /// A permanent neighbour entry: the pod never has to resolve its gateway.
    pub fn add_neighbour(index: u32, ip: IpAddr, mac: [u8; 6]) -> Self {
        let mut fixed = [0u8; 12];
        fixed[0] = family(&ip);
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        fixed[8..10].copy_from_slice(&NUD_PERMANENT.to_ne_bytes());
        let mut m = Msg::new(
            RTM_NEWNEIGH,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &fixed,
        );
        m.attr(NDA_DST, &ip_bytes(&ip));
        m.attr(NDA_LLADDR, &mac);
        Self(m)
    }
}

impl Netlink {
    pub fn addrs(&mut self, index: u32) -> io::Result<Vec<Addr>> {
        let m = Msg::new(RTM_GETADDR, NLM_F_DUMP, &[0u8; 8]);
        let msgs = self.request(m)?;
        Ok(msgs
            .iter()
            .filter(|(k, p)| *k == RTM_NEWADDR && p.len() >= 8)
            .filter_map(|(_, p)| {
                let idx = u32::from_ne_bytes(p[4..8].try_into().ok()?);
                let a = attrs(&p[8..]);
                let ip = a
                    .iter()
                    .find(|(k, _)| *k == IFA_LOCAL)
                    .or_else(|| a.iter().find(|(k, _)| *k == IFA_ADDRESS))
                    .and_then(|(_, v)| ip_from(v))?;
                Some(Addr {
                    index: idx,
                    ip,
                    prefix: p[1],
                })
            })
            .filter(|a| a.index == index)
            .collect())
    }

    /// A route in the main table: `dst/dst_len` out of `oif`, via `gateway` if given, else
    /// scope link.
    pub fn add_route(
        &mut self,
        dst: IpAddr,
        dst_len: u8,
        gateway: Option<IpAddr>,
        oif: u32,
    ) -> io::Result<()> {
        self.request(Request::add_route(dst, dst_len, gateway, oif).0)
            .map(drop)
    }

    pub fn delete_route(&mut self, dst: IpAddr, dst_len: u8, oif: u32) -> io::Result<()> {
        let m = route_msg(RTM_DELROUTE, NLM_F_ACK, dst, dst_len, None, oif);
        self.request(m).map(drop)
    }

    pub fn routes(&mut self, v4: bool) -> io::Result<Vec<Route>> {
        let mut fixed = [0u8; 12];
        fixed[0] = if v4 {
            libc::AF_INET as u8
        } else {
            libc::AF_INET6 as u8
        };
        let msgs = self.request(Msg::new(RTM_GETROUTE, NLM_F_DUMP, &fixed))?;
        Ok(msgs
            .iter()
            .filter(|(k, p)| *k == RTM_NEWROUTE && p.len() >= 12 && p[4] == RT_TABLE_MAIN)
            .map(|(_, p)| {
                let a = attrs(&p[12..]);
                let any = if p[0] == libc::AF_INET as u8 {
                    IpAddr::from([0u8; 4])
                } else {
                    IpAddr::from([0u8; 16])
                };
                Route {
                    dst: a
                        .iter()
                        .find(|(k, _)| *k == RTA_DST)
                        .and_then(|(_, v)| ip_from(v))
                        .unwrap_or(any),
                    dst_len: p[1],
                    gateway: a
                        .iter()
                        .find(|(k, _)| *k == RTA_GATEWAY)
                        .and_then(|(_, v)| ip_from(v)),
                    oif: a
                        .iter()
                        .find(|(k, _)| *k == RTA_OIF)
                        .and_then(|(_, v)| Some(u32::from_ne_bytes((*v).try_into().ok()?))),
                }
            })
            .collect())
    }

    pub fn add_neighbour(&mut self, index: u32, ip: IpAddr, mac: [u8; 6]) -> io::Result<()> {
        self.request(Request::add_neighbour(index, ip, mac).0)
            .map(drop)
    }
}

fn route_msg(
    kind: u16,
    flags: u16,
    dst: IpAddr,
    dst_len: u8,
    gateway: Option<IpAddr>,
    oif: u32,
) -> Msg {
    let mut fixed = [0u8; 12];
    fixed[0] = family(&dst);
    fixed[1] = dst_len;
    fixed[4] = RT_TABLE_MAIN;
    fixed[5] = RTPROT_STATIC;
    fixed[6] = if gateway.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    fixed[7] = RTN_UNICAST;
    let mut m = Msg::new(kind, flags, &fixed);
    if dst_len > 0 {
        m.attr(RTA_DST, &ip_bytes(&dst));
    }
    if let Some(gw) = gateway {
        m.attr(RTA_GATEWAY, &ip_bytes(&gw));
    }
    m.attr(RTA_OIF, &oif.to_ne_bytes());
    m.attr(RTA_TABLE, &(RT_TABLE_MAIN as u32).to_ne_bytes());
    m
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse_link(p: &[u8]) -> Option<Link> {
    if p.len() < 16 {
        return None;
    }
    let index = u32::from_ne_bytes(p[4..8].try_into().ok()?);
    let flags = u32::from_ne_bytes(p[8..12].try_into().ok()?);
    let mut link = Link {
        index,
        name: String::new(),
        flags,
        mac: [0; 6],
        mtu: 0,
        peer_index: None,
        kind: None,
    };
    for (k, v) in attrs(&p[16..]) {
        match k {
            IFLA_IFNAME => {
                link.name =
                    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(&[])).into_owned()
            }
            IFLA_ADDRESS if v.len() == 6 => link.mac.copy_from_slice(v),
            IFLA_MTU if v.len() == 4 => link.mtu = u32::from_ne_bytes(v.try_into().ok()?),
            IFLA_LINK if v.len() == 4 => {
                link.peer_index = Some(u32::from_ne_bytes(v.try_into().ok()?))
            }
            IFLA_LINKINFO => {
                link.kind = attrs(v)
                    .into_iter()
                    .find(|(k, _)| *k == IFLA_INFO_KIND)
                    .map(|(_, v)| {
                        String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(&[]))
                            .into_owned()
                    })
            }
            _ => {}
        }
    }
    Some(link)
}

/// NLMSGERR_ATTR_MSG (1) from an extended ack, after the echoed request header.
fn ext_ack_msg(payload: &[u8]) -> Option<String> {
    if payload.len() < 20 {
        return None;
    }
    let echoed = u32::from_ne_bytes(payload[4..8].try_into().ok()?) as usize;
    // With NLM_F_CAPPED the kernel echoes only the header; we cannot tell from here, so try
    // the capped layout (header only) first, which is what it sends for our small requests
    // when the ack carries TLVs.
    for skip in [4 + 16, 4 + echoed] {
        if payload.len() > skip
            && let Some((_, m)) = attrs(&payload[skip..]).into_iter().find(|(k, _)| *k == 1)
        {
            let s =
                String::from_utf8_lossy(m.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
            if !s.is_empty() {
                return Some(s);
            }
        }
    }
    None
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(0, 0, 0, 0));
        m.attr(IFLA_IFNAME, &cstr("eth0"));
        m.attr(IFLA_MTU, &1500u32.to_ne_bytes());
        let bytes = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        let link = parse_link(&bytes[16..]).unwrap();
        assert_eq!((link.name.as_str(), link.mtu), ("eth0", 1500));
    }
}
