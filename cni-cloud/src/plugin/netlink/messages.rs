//! The requests the plugin sends, built as `netlink-packet-route` messages, and the readers of
//! the address and route dumps that answer them. No I/O here: [`super::socket`] sends them.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};

use super::{Addr, Change, Route, Veth};

/// One request: the message and its netlink flags (NLM_F_REQUEST is always added).
pub struct Request {
    message: RouteNetlinkMessage,
    pub(super) flags: u16,
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

    /// The request making one [`Change`] (every one asks for an ack, so it can be batched).
    pub fn change(change: &Change) -> Self {
        match *change {
            Change::SetUp { index } => Self::set_up(index),
            Change::AddAddr { index, ip, prefix } => Self::add_addr(index, ip, prefix),
            Change::AddRoute {
                dst,
                dst_len,
                gateway,
                oif,
                onlink,
            } => match gateway {
                Some(gw) if onlink => Self::add_route_onlink(dst, dst_len, gw, oif),
                _ => Self::add_route(dst, dst_len, gateway, oif),
            },
            Change::AddNeighbour { index, ip, mac } => Self::add_neighbour(index, ip, mac),
        }
    }

    pub fn set_up(index: u32) -> Self {
        Self::new(
            RouteNetlinkMessage::SetLink(link_message(index, LinkFlags::Up, LinkFlags::Up)),
            NLM_F_ACK,
        )
    }

    pub fn set_down(index: u32) -> Self {
        Self::new(
            RouteNetlinkMessage::SetLink(link_message(index, LinkFlags::empty(), LinkFlags::Up)),
            NLM_F_ACK,
        )
    }

    /// Renames a link; the kernel refuses (EBUSY) while it is up.
    pub fn rename(index: u32, name: &str) -> Self {
        let mut m = link_message(index, LinkFlags::empty(), LinkFlags::empty());
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        Self::new(RouteNetlinkMessage::SetLink(m), NLM_F_ACK)
    }

    /// One link by name (answered by a single RTM_NEWLINK, or ENODEV).
    pub fn get_link(name: &str) -> Self {
        Self::new(RouteNetlinkMessage::GetLink(by_name(name)), 0)
    }

    /// Every link of the namespace.
    pub fn dump_links() -> Self {
        Self::new(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )
    }

    pub fn delete_link(name: &str) -> Self {
        Self::new(RouteNetlinkMessage::DelLink(by_name(name)), NLM_F_ACK)
    }

    pub fn delete_index(index: u32) -> Self {
        Self::new(
            RouteNetlinkMessage::DelLink(link_message(
                index,
                LinkFlags::empty(),
                LinkFlags::empty(),
            )),
            NLM_F_ACK,
        )
    }

    /// Every address of the namespace.
    pub fn dump_addrs() -> Self {
        Self::new(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )
    }

    /// Every route of one family.
    pub fn dump_routes(v4: bool) -> Self {
        let mut query = RouteMessage::default();
        query.header.address_family = if v4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        Self::new(RouteNetlinkMessage::GetRoute(query), NLM_F_DUMP)
    }

    /// Creates a veth pair: the host end here, already up, and its peer directly in the
    /// namespace `peer_netns` (an open nsfs fd), both with their MAC and the MTU. The host
    /// end's flags and the peer's MAC in the create request spare a "set up" request and the
    /// lookup of the peer's MAC. (The kernel refuses IFF_UP in the peer's header with
    /// ENOTCONN; the pod side sets it up in its batch.)
    pub fn create_veth(veth: &Veth<'_>, peer_netns: RawFd) -> Self {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(veth.peer_name.to_string()));
        peer.attributes
            .push(LinkAttribute::Address(veth.peer_mac.to_vec()));
        peer.attributes.push(LinkAttribute::Mtu(veth.mtu));
        peer.attributes.push(LinkAttribute::NetNsFd(peer_netns));
        let mut host = link_message(0, LinkFlags::Up, LinkFlags::Up);
        host.attributes
            .push(LinkAttribute::IfName(veth.host_name.to_string()));
        host.attributes
            .push(LinkAttribute::Address(veth.host_mac.to_vec()));
        host.attributes.push(LinkAttribute::Mtu(veth.mtu));
        host.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        Self::new(
            RouteNetlinkMessage::NewLink(host),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
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
    pub fn encode(self, seq: u32) -> Vec<u8> {
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

/// The addresses on link `index` in an address dump.
pub fn addrs_of(msgs: &[RouteNetlinkMessage], index: u32) -> Vec<Addr> {
    msgs.iter()
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
        .collect()
}

/// The main table's routes in a route dump of one family.
pub fn main_routes(msgs: &[RouteNetlinkMessage], v4: bool) -> Vec<Route> {
    let any = if v4 {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u8; 16])
    };
    msgs.iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) if r.header.table == RouteHeader::RT_TABLE_MAIN => {
                let mut route = Route {
                    dst: any,
                    dst_len: r.header.destination_prefix_length,
                    gateway: None,
                    oif: None,
                };
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Destination(d) => route.dst = route_ip(d).unwrap_or(any),
                        RouteAttribute::Gateway(g) => route.gateway = route_ip(g),
                        RouteAttribute::Oif(i) => route.oif = Some(*i),
                        _ => {}
                    }
                }
                Some(route)
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::links::{IFF_UP, parse_link};
    use super::*;

    fn decode(bytes: &[u8]) -> RouteNetlinkMessage {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).unwrap();
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => m,
            other => panic!("not an inner message: {other:?}"),
        }
    }

    fn flags(bytes: &[u8]) -> u16 {
        u16::from_ne_bytes(bytes[6..8].try_into().unwrap())
    }

    #[test]
    fn a_veth_request_carries_both_ends_and_decodes_back() {
        let veth = Veth {
            host_name: "cnic1",
            host_mac: [0xee; 6],
            peer_name: "eth0",
            peer_mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
        };
        let bytes = Request::create_veth(&veth, 9).encode(7);
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
        assert_eq!(
            flags(&bytes) & (NLM_F_EXCL | NLM_F_CREATE),
            NLM_F_EXCL | NLM_F_CREATE
        );
        assert!(matches!(decode(&bytes), RouteNetlinkMessage::NewLink(_)));
        let link = parse_link(&bytes[16..]).expect("our own reader parses it too");
        assert_eq!(
            (link.name.as_str(), link.mtu, link.kind.as_deref(), link.mac),
            ("cnic1", 1500, Some("veth"), [0xee; 6])
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
        assert_eq!(
            flags(&bytes) & (NLM_F_EXCL | NLM_F_REPLACE),
            NLM_F_EXCL,
            "routes are created exclusively, never replacing another's"
        );
        let bytes = Request::change(&Change::AddRoute {
            dst: "10.0.0.0".parse().unwrap(),
            dst_len: 24,
            gateway: Some("169.254.1.1".parse().unwrap()),
            oif: 3,
            onlink: true,
        })
        .encode(1);
        let RouteNetlinkMessage::NewRoute(r) = decode(&bytes) else {
            panic!("not a route message");
        };
        assert!(r.header.flags.contains(RouteFlags::Onlink));
        let bytes = Request::add_neighbour(3, "169.254.1.1".parse().unwrap(), [0xee; 6]).encode(1);
        assert_eq!(flags(&bytes) & (NLM_F_EXCL | NLM_F_REPLACE), NLM_F_EXCL);
        let bytes = Request::add_addr(3, "fe80::1".parse().unwrap(), 64).encode(2);
        let RouteNetlinkMessage::NewAddress(a) = decode(&bytes) else {
            panic!("not an address message");
        };
        assert_eq!(a.header.scope, AddressScope::Link);
        assert!(a.header.flags.contains(AddressHeaderFlags::Nodad));
    }

    #[test]
    fn every_change_is_acked_so_it_can_be_batched() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        for c in [
            Change::SetUp { index: 3 },
            Change::AddAddr {
                index: 3,
                ip,
                prefix: 32,
            },
            Change::AddNeighbour {
                index: 3,
                ip,
                mac: [0xee; 6],
            },
            Change::AddRoute {
                dst: ip,
                dst_len: 32,
                gateway: None,
                oif: 3,
                onlink: false,
            },
        ] {
            assert_ne!(Request::change(&c).flags & NLM_F_ACK, 0, "{c:?}");
        }
    }

    #[test]
    fn dumps_keep_the_main_table_and_the_asked_link() {
        let mut other = RouteMessage::default();
        other.header.table = 255; // local
        let main = route_message(
            "10.0.0.5".parse().unwrap(),
            32,
            Some("169.254.1.1".parse().unwrap()),
            4,
        );
        let routes = main_routes(
            &[
                RouteNetlinkMessage::NewRoute(other),
                RouteNetlinkMessage::NewRoute(main),
            ],
            true,
        );
        assert_eq!(
            routes,
            vec![Route {
                dst: "10.0.0.5".parse().unwrap(),
                dst_len: 32,
                gateway: Some("169.254.1.1".parse().unwrap()),
                oif: Some(4),
            }]
        );
        let RouteNetlinkMessage::NewAddress(on4) =
            Request::add_addr(4, "10.0.0.5".parse().unwrap(), 32).message
        else {
            unreachable!()
        };
        let RouteNetlinkMessage::NewAddress(on5) =
            Request::add_addr(5, "10.0.0.6".parse().unwrap(), 32).message
        else {
            unreachable!()
        };
        let addrs = addrs_of(
            &[
                RouteNetlinkMessage::NewAddress(on4),
                RouteNetlinkMessage::NewAddress(on5),
            ],
            5,
        );
        assert_eq!(
            addrs,
            vec![Addr {
                index: 5,
                ip: "10.0.0.6".parse().unwrap(),
                prefix: 32
            }]
        );
    }
}
