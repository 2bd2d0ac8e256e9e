//! Links as the plugin sees them, read from RTM_NEWLINK answers through the crate's NLA
//! buffers (only the five attributes used).

use netlink_packet_core::NlasIterator;
use netlink_packet_route::link::LinkHeader;

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
pub fn parse_link(payload: &[u8]) -> Option<Link> {
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
    fn a_link_reply_is_read_for_its_five_attributes_only() {
        let mut payload = vec![0u8; 16];
        payload[4..8].copy_from_slice(&7i32.to_ne_bytes()); // ifi_index
        payload[8..12].copy_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
        let mut nla = |kind: u16, value: &[u8]| {
            let len = 4 + value.len();
            payload.extend_from_slice(&(len as u16).to_ne_bytes());
            payload.extend_from_slice(&kind.to_ne_bytes());
            payload.extend_from_slice(value);
            payload.resize(payload.len().next_multiple_of(4), 0);
        };
        nla(IFLA_IFNAME, b"eth0\0");
        nla(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 9]);
        nla(IFLA_MTU, &9001u32.to_ne_bytes());
        nla(IFLA_LINK, &12u32.to_ne_bytes());
        nla(35, &[1, 2, 3, 4]); // something else: skipped
        let mut info = Vec::new();
        info.extend_from_slice(&9u16.to_ne_bytes());
        info.extend_from_slice(&IFLA_INFO_KIND.to_ne_bytes());
        info.extend_from_slice(b"veth\0\0\0\0");
        nla(IFLA_LINKINFO, &info[..12]);
        let link = parse_link(&payload).unwrap();
        assert_eq!(
            link,
            Link {
                index: 7,
                name: "eth0".into(),
                flags: IFF_UP,
                mac: [2, 0, 0, 0, 0, 9],
                mtu: 9001,
                peer_index: Some(12),
                kind: Some("veth".into()),
            }
        );
        assert_eq!(format_mac(&link.mac), "02:00:00:00:00:09");
    }
}
