//! A small synchronous rtnetlink client: the link, address, route and neighbour requests the
//! plugin sends, as `netlink-packet-route` messages over a blocking `NETLINK_ROUTE` socket.
//!
//! Why `netlink-packet-route` directly rather than `rtnetlink`: `rtnetlink` needs an async
//! runtime, whose start-up would sit on every ADD/DEL, while a blocking socket with one
//! request (or one batch) in flight needs none of it. A netlink socket belongs to the netns
//! it was *created* in, so the pod's socket is opened on the thread that joined the pod's
//! namespace (`datapath::PodSide`). The crate encodes and decodes every message; this module
//! owns the socket, sequence numbers, acks and the kernel's extended-ack text, which the
//! crate's `ErrorMessage` does not carry.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;

pub const IFF_UP: u32 = libc::IFF_UP as u32;

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

/// One request: the message and its netlink flags (NLM_F_REQUEST is always added).
pub struct Request {
    message: RouteNetlinkMessage,
    flags: u16,
}

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v) => RouteAddress::Inet(v),
        IpAddr::V6(v) => RouteAddress::Inet6(v),
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn link_message(index: u32, flags: LinkFlags, change: LinkFlags) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = flags;
    m.header.change_mask = change;
    m
}

fn by_name(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

impl Request {
    fn new(message: RouteNetlinkMessage, flags: u16) -> Self {
        Self { message, flags }
    }

    pub fn set_up(index: u32) -> Self {
        Self::new(
            RouteNetlinkMessage::SetLink(link_message(index, LinkFlags::Up, LinkFlags::Up)),
            NLM_F_ACK,
        )
    }

    /// An address without duplicate address detection: usable at once.
    pub fn add_addr(index: u32, ip: IpAddr, prefix: u8) -> Self {
        let mut m = AddressMessage::default();
        m.header.family = family(&ip);
        m.header.prefix_len = prefix;
        m.header.flags = AddressHeaderFlags::Nodad | AddressHeaderFlags::Permanent;
        m.header.scope = if ip.is_ipv6() && is_link_local(&ip) {
            AddressScope::Link
        } else {
            AddressScope::Universe
        };
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(ip));
        m.attributes.push(AddressAttribute::Address(ip));
        m.attributes.push(AddressAttribute::Flags(
            AddressFlags::Nodad | AddressFlags::Permanent,
        ));
        Self::new(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// A route in the main table: `dst/dst_len` out of `oif`, via `gateway` if given, else
    /// scope link. Created exclusively: a route to the same destination that is already
    /// there (another attachment's default route, the host's route to an address) is never
    /// replaced; the kernel answers EEXIST.
    pub fn add_route(dst: IpAddr, dst_len: u8, gateway: Option<IpAddr>, oif: u32) -> Self {
        Self::new(
            RouteNetlinkMessage::NewRoute(route_message(dst, dst_len, gateway, oif)),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// [`Request::add_route`] via a gateway that is on the link without a route to it
    /// (`onlink`): a secondary attachment reaches 169.254.1.1 without claiming the
    /// pod-wide route to it that the primary attachment holds.
    pub fn add_route_onlink(dst: IpAddr, dst_len: u8, gateway: IpAddr, oif: u32) -> Self {
        let mut m = route_message(dst, dst_len, Some(gateway), oif);
        m.header.flags = RouteFlags::Onlink;
        Self::new(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// A permanent neighbour entry: the pod never has to resolve its gateway.
    pub fn add_neighbour(index: u32, ip: IpAddr, mac: [u8; 6]) -> Self {
        let mut m = NeighbourMessage::default();
        m.header.family = family(&ip);
        m.header.ifindex = index;
        m.header.state = NeighbourState::Permanent;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v) => NeighbourAddress::Inet(v),
            IpAddr::V6(v) => NeighbourAddress::Inet6(v),
        }));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        // Exclusive like routes: the entry is created on a new interface, so one already
        // there is not ours.
        Self::new(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// The message as bytes with sequence number `seq`.
    fn encode(self, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = self.flags | NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(self.message));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }
}

fn route_message(dst: IpAddr, dst_len: u8, gateway: Option<IpAddr>, oif: u32) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family(&dst);
    m.header.destination_prefix_length = dst_len;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Static;
    m.header.scope = if gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    m.header.kind = RouteType::Unicast;
    if dst_len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(route_address(dst)));
    }
    if let Some(gw) = gateway {
        m.attributes
            .push(RouteAttribute::Gateway(route_address(gw)));
    }
    m.attributes.push(RouteAttribute::Oif(oif));
    m.attributes
        .push(RouteAttribute::Table(RouteHeader::RT_TABLE_MAIN as u32));
    m
}

// The five link attributes the plugin reads (linux/if_link.h).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;

fn c_string(value: &[u8]) -> String {
    String::from_utf8_lossy(value.split(|b| *b == 0).next().unwrap_or(&[])).into_owned()
}

fn u32_of(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.try_into().ok()?))
}

/// A link message, reading only the attributes the plugin uses through the crate's buffer
/// types. Decoding all of it (`LinkMessage`: some sixty attribute kinds, statistics
/// included) runs through enough parser code to add ~0.8 MiB to the peak RSS of every ADD
/// and DEL, the one number the reference plugins beat us on before.
fn parse_link(payload: &[u8]) -> Option<Link> {
    let header = LinkHeader::parse(payload).ok()?;
    let mut link = Link {
        index: header.index,
        name: String::new(),
        flags: header.flags.bits(),
        mac: [0; 6],
        mtu: 0,
        peer_index: None,
        kind: None,
    };
    for nla in NlasIterator::new(payload.get(16..)?).flatten() {
        let value = nla.value();
        match nla.kind() {
            IFLA_IFNAME => link.name = c_string(value),
            IFLA_ADDRESS if value.len() == 6 => link.mac.copy_from_slice(value),
            IFLA_MTU => link.mtu = u32_of(value)?,
            IFLA_LINK => link.peer_index = u32_of(value),
            IFLA_LINKINFO => {
                link.kind = NlasIterator::new(value)
                    .flatten()
                    .find(|info| info.kind() == IFLA_INFO_KIND)
                    .map(|info| c_string(info.value()))
            }
            _ => {}
        }
    }
    Some(link)
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

/// A kernel's NLMSG_ERROR payload as an io::Error, with the extended ack's text if any.
fn nack(code: i32, payload: &[u8]) -> io::Error {
    let err = io::Error::from_raw_os_error(-code);
    match ext_ack_msg(payload) {
        Some(why) => io::Error::new(err.kind(), format!("{err}: {why}")),
        None => err,
    }
}

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
        Ok(Self {
            fd,
            seq: 1,
            // Reserved, not zeroed: only the pages the kernel writes replies into are ever
            // touched (a zeroed 32 KiB per socket showed up in the peak RSS).
            buf: Vec::with_capacity(RECV_BUF),
        })
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

    /// One datagram from the kernel into `buf` (replacing its contents, up to its capacity),
    /// retrying on EINTR.
    fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        loop {
            // SAFETY: the kernel writes at most `capacity` bytes into our allocation.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.capacity(),
                    0,
                )
            };
            if n >= 0 {
                // SAFETY: the first `n` bytes were just written by recv(2).
                unsafe { buf.set_len(n as usize) };
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Reads datagrams and hands every netlink message in them to `each` as (type, sequence
    /// number, payload) until `each` says it is done.
    fn receive(
        &mut self,
        mut each: impl FnMut(u16, u32, &[u8]) -> io::Result<bool>,
    ) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let outcome = (|| loop {
            self.recv_into(&mut buf)?;
            let mut data = &buf[..];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                if len < 16 || len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let seq = u32::from_ne_bytes(data[8..12].try_into().expect("4 bytes"));
                let payload = &data[16..len];
                data = &data[((len + 3) & !3).min(data.len())..];
                if each(kind, seq, payload)? {
                    return Ok(());
                }
            }
        })();
        self.buf = buf;
        outcome
    }

    /// Sends one request and collects the messages answering it as (type, payload): a dump
    /// ends with NLMSG_DONE; a request with NLM_F_ACK ends with its NLMSG_ERROR (the ack, or
    /// the error); a plain GET gets exactly one message and ends there.
    fn request_raw(&mut self, req: Request) -> io::Result<Vec<(u16, Vec<u8>)>> {
        let flags = req.flags;
        let single = flags & NLM_F_DUMP != NLM_F_DUMP && flags & NLM_F_ACK == 0;
        self.seq += 1;
        let seq = self.seq;
        self.send_bytes(&req.encode(seq))?;
        let mut out = Vec::new();
        self.receive(|kind, mseq, payload| {
            if mseq != seq {
                return Ok(false);
            }
            match kind {
                NLMSG_DONE => Ok(true),
                NLMSG_ERROR if payload.len() < 4 => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "short netlink error message",
                )),
                NLMSG_ERROR => {
                    let code = i32::from_ne_bytes(payload[0..4].try_into().expect("4 bytes"));
                    if code == 0 {
                        Ok(true)
                    } else {
                        Err(nack(code, payload))
                    }
                }
                _ => {
                    out.push((kind, payload.to_vec()));
                    Ok(single)
                }
            }
        })?;
        Ok(out)
    }

    /// [`Netlink::request_raw`], each answer decoded by `netlink-packet-route`.
    fn request(&mut self, req: Request) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.request_raw(req)?
            .iter()
            .map(|(kind, payload)| {
                let mut header = NetlinkHeader::default();
                header.message_type = *kind;
                RouteNetlinkMessage::deserialize(&header, payload)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            })
            .collect()
    }

    /// Sends every request in one `sendto` and waits for all their acks: the kernel handles
    /// them in order, so a later request may depend on an earlier one (a route via a
    /// gateway after the route to it). The first failure is returned; the kernel still
    /// handled the requests after it. Every request must ask for an ack.
    pub fn batch(&mut self, requests: Vec<Request>) -> io::Result<()> {
        let first = self.seq + 1;
        let mut bytes = Vec::new();
        for r in requests {
            debug_assert!(r.flags & NLM_F_ACK != 0, "a batched request must be acked");
            self.seq += 1;
            bytes.extend_from_slice(&r.encode(self.seq));
        }
        let last = self.seq;
        if last < first {
            return Ok(());
        }
        self.send_bytes(&bytes)?;
        let mut pending = last - first + 1;
        let mut failure = None;
        self.receive(|kind, seq, payload| {
            if kind == NLMSG_ERROR && (first..=last).contains(&seq) && payload.len() >= 4 {
                pending -= 1;
                let code = i32::from_ne_bytes(payload[0..4].try_into().expect("4 bytes"));
                if code != 0 && failure.is_none() {
                    failure = Some(nack(code, payload));
                }
            }
            Ok(pending == 0)
        })?;
        failure.map_or(Ok(()), Err)
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
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_string()));
        peer.attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer.attributes.push(LinkAttribute::Mtu(mtu));
        peer.attributes.push(LinkAttribute::NetNsFd(peer_netns));
        let mut host = link_message(0, LinkFlags::Up, LinkFlags::Up);
        host.attributes
            .push(LinkAttribute::IfName(host_name.to_string()));
        host.attributes
            .push(LinkAttribute::Address(host_mac.to_vec()));
        host.attributes.push(LinkAttribute::Mtu(mtu));
        host.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(Request::new(
            RouteNetlinkMessage::NewLink(host),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ))
        .map(drop)
    }

    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        match self.request_raw(Request::new(RouteNetlinkMessage::GetLink(by_name(name)), 0)) {
            Ok(msgs) => Ok(msgs
                .iter()
                .find(|(kind, _)| *kind == RTM_NEWLINK)
                .and_then(|(_, payload)| parse_link(payload))),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of this namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let msgs = self.request_raw(Request::new(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        ))?;
        Ok(msgs
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWLINK)
            .filter_map(|(_, payload)| parse_link(payload))
            .collect())
    }

    pub fn set_down(&mut self, index: u32) -> io::Result<()> {
        self.request(Request::new(
            RouteNetlinkMessage::SetLink(link_message(index, LinkFlags::empty(), LinkFlags::Up)),
            NLM_F_ACK,
        ))
        .map(drop)
    }

    /// Renames a link; the kernel refuses (EBUSY) while it is up.
    pub fn rename(&mut self, index: u32, name: &str) -> io::Result<()> {
        let mut m = link_message(index, LinkFlags::empty(), LinkFlags::empty());
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(Request::new(RouteNetlinkMessage::SetLink(m), NLM_F_ACK))
            .map(drop)
    }

    fn delete(&mut self, m: LinkMessage) -> io::Result<bool> {
        match self.request(Request::new(RouteNetlinkMessage::DelLink(m), NLM_F_ACK)) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a link by name; Ok(false) when there is none.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        self.delete(by_name(name))
    }

    /// Deletes a link by index; Ok(false) when there is none.
    pub fn delete_index(&mut self, index: u32) -> io::Result<bool> {
        self.delete(link_message(index, LinkFlags::empty(), LinkFlags::empty()))
    }

    pub fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        self.request(Request::add_addr(index, ip, prefix)).map(drop)
    }

    /// The addresses on link `index`.
    pub fn addrs(&mut self, index: u32) -> io::Result<Vec<Addr>> {
        let msgs = self.request(Request::new(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        ))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let ip = a
                        .attributes
                        .iter()
                        .find_map(|x| match x {
                            AddressAttribute::Local(ip) => Some(*ip),
                            _ => None,
                        })
                        .or_else(|| {
                            a.attributes.iter().find_map(|x| match x {
                                AddressAttribute::Address(ip) => Some(*ip),
                                _ => None,
                            })
                        })?;
                    Some(Addr {
                        index,
                        ip,
                        prefix: a.header.prefix_len,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// The main table's routes of one family.
    pub fn routes(&mut self, v4: bool) -> io::Result<Vec<Route>> {
        let mut query = RouteMessage::default();
        query.header.address_family = if v4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let msgs = self.request(Request::new(
            RouteNetlinkMessage::GetRoute(query),
            NLM_F_DUMP,
        ))?;
        let any = if v4 {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u8; 16])
        };
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.table == RouteHeader::RT_TABLE_MAIN =>
                {
                    let mut route = Route {
                        dst: any,
                        dst_len: r.header.destination_prefix_length,
                        gateway: None,
                        oif: None,
                    };
                    for a in &r.attributes {
                        match a {
                            RouteAttribute::Destination(d) => {
                                route.dst = route_ip(d).unwrap_or(any)
                            }
                            RouteAttribute::Gateway(g) => route.gateway = route_ip(g),
                            RouteAttribute::Oif(i) => route.oif = Some(*i),
                            _ => {}
                        }
                    }
                    Some(route)
                }
                _ => None,
            })
            .collect())
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

    fn decode(bytes: &[u8]) -> RouteNetlinkMessage {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).unwrap();
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => m,
            other => panic!("not an inner message: {other:?}"),
        }
    }

    #[test]
    fn a_veth_request_carries_both_ends_and_decodes_back() {
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName("eth0".into()));
        let mut host = link_message(0, LinkFlags::Up, LinkFlags::Up);
        host.attributes.push(LinkAttribute::IfName("cnic1".into()));
        host.attributes.push(LinkAttribute::Mtu(1500));
        host.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let bytes = Request::new(RouteNetlinkMessage::NewLink(host), NLM_F_ACK).encode(7);
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
        assert!(matches!(decode(&bytes), RouteNetlinkMessage::NewLink(_)));
        let link = parse_link(&bytes[16..]).expect("our own reader parses it too");
        assert_eq!(
            (link.name.as_str(), link.mtu, link.kind.as_deref()),
            ("cnic1", 1500, Some("veth"))
        );
        assert_eq!(link.flags & IFF_UP, IFF_UP);
    }

    #[test]
    fn routes_and_addresses_encode_what_the_kernel_expects() {
        let bytes = Request::add_route(
            "0.0.0.0".parse().unwrap(),
            0,
            Some("169.254.1.1".parse().unwrap()),
            3,
        )
        .encode(1);
        let RouteNetlinkMessage::NewRoute(r) = decode(&bytes) else {
            panic!("not a route message");
        };
        assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
        assert_eq!(r.header.scope, RouteScope::Universe);
        assert!(
            !r.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_))),
            "a default route carries no destination"
        );
        let flags = u16::from_ne_bytes(bytes[6..8].try_into().unwrap());
        assert_eq!(
            flags & (NLM_F_EXCL | NLM_F_REPLACE),
            NLM_F_EXCL,
            "routes are created exclusively, never replacing another's"
        );
        let bytes = Request::add_route_onlink(
            "10.0.0.0".parse().unwrap(),
            24,
            "169.254.1.1".parse().unwrap(),
            3,
        )
        .encode(1);
        let RouteNetlinkMessage::NewRoute(r) = decode(&bytes) else {
            panic!("not a route message");
        };
        assert!(r.header.flags.contains(RouteFlags::Onlink));
        let bytes = Request::add_neighbour(3, "169.254.1.1".parse().unwrap(), [0xee; 6]).encode(1);
        let flags = u16::from_ne_bytes(bytes[6..8].try_into().unwrap());
        assert_eq!(flags & (NLM_F_EXCL | NLM_F_REPLACE), NLM_F_EXCL);
        let bytes = Request::add_addr(3, "fe80::1".parse().unwrap(), 64).encode(2);
        let RouteNetlinkMessage::NewAddress(a) = decode(&bytes) else {
            panic!("not an address message");
        };
        assert_eq!(a.header.scope, AddressScope::Link);
        assert!(a.header.flags.contains(AddressHeaderFlags::Nodad));
    }

    #[test]
    fn extended_ack_text_is_found_in_a_capped_error() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-22i32).to_ne_bytes());
        payload.extend_from_slice(&[0u8; 16]); // the echoed request header (capped)
        let text = b"Invalid prefix\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        let err = nack(-22, &payload);
        assert!(err.to_string().contains("Invalid prefix"), "{err}");
    }
}
