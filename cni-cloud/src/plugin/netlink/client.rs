//! The operations the data path uses, as one small trait (youki's pattern: the data path
//! speaks to a `Client`, the socket is one implementation, a recording fake another), so
//! setup, teardown, CHECK and their error paths are unit-tested without root.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use super::links::{Link, parse_link};
use super::messages::{Request, addrs_of, main_routes};
use super::socket::Netlink;

const RTM_NEWLINK: u16 = 16;

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

/// A veth pair to create: the host end here, already up, and its peer in another namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth<'a> {
    pub host_name: &'a str,
    pub host_mac: [u8; 6],
    pub peer_name: &'a str,
    pub peer_mac: [u8; 6],
    pub mtu: u32,
}

/// One change of a batch ([`Client::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    SetUp {
        index: u32,
    },
    /// An address without duplicate address detection: usable at once.
    AddAddr {
        index: u32,
        ip: IpAddr,
        prefix: u8,
    },
    /// A route in the main table, created exclusively (EEXIST when the destination is
    /// already routed): `dst/dst_len` out of `oif`, via `gateway` if given (on the link
    /// without a route to it when `onlink`), else scope link.
    AddRoute {
        dst: IpAddr,
        dst_len: u8,
        gateway: Option<IpAddr>,
        oif: u32,
        onlink: bool,
    },
    /// A permanent neighbour entry, created exclusively.
    AddNeighbour {
        index: u32,
        ip: IpAddr,
        mac: [u8; 6],
    },
}

/// One network namespace's kernel, as the data path drives it: rtnetlink requests, and the
/// namespace's sysctls (`/proc/sys/net` resolves against the calling thread's namespace, the
/// socket's as long as the client stays on the thread that opened it — the rule for every
/// client: a pod's is opened on a thread that joined the pod's netns, never in async code).
pub trait Client {
    /// Creates the pair with its peer directly in the namespace `peer_netns` (an open nsfs
    /// fd). EEXIST when either name is taken.
    fn create_veth(&mut self, veth: &Veth<'_>, peer_netns: RawFd) -> io::Result<()>;
    fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>>;
    /// Every link of the namespace.
    fn links(&mut self) -> io::Result<Vec<Link>>;
    /// The addresses on link `index`.
    fn addrs(&mut self, index: u32) -> io::Result<Vec<Addr>>;
    /// The main table's routes of one family.
    fn routes(&mut self, v4: bool) -> io::Result<Vec<Route>>;
    fn set_down(&mut self, index: u32) -> io::Result<()>;
    /// Renames a link; the kernel refuses (EBUSY) while it is up.
    fn rename(&mut self, index: u32, name: &str) -> io::Result<()>;
    /// Deletes a link by name; Ok(false) when there is none.
    fn delete_link(&mut self, name: &str) -> io::Result<bool>;
    /// Deletes a link by index; Ok(false) when there is none.
    fn delete_index(&mut self, index: u32) -> io::Result<bool>;
    /// Makes every change in one batch, in order (a later one may depend on an earlier one).
    /// The first failure is returned; the kernel still made the changes after it.
    fn apply(&mut self, changes: &[Change]) -> io::Result<()>;
    /// Writes a sysctl of this namespace, skipping the write when it already holds `value`.
    fn sysctl(&mut self, path: &str, value: &str) -> io::Result<()>;
}

impl Netlink {
    fn delete(&mut self, req: Request) -> io::Result<bool> {
        match self.request(req) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Client for Netlink {
    fn create_veth(&mut self, veth: &Veth<'_>, peer_netns: RawFd) -> io::Result<()> {
        self.request(Request::create_veth(veth, peer_netns))
            .map(drop)
    }

    fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        match self.request_raw(Request::get_link(name)) {
            Ok(msgs) => Ok(msgs
                .iter()
                .find(|(kind, _)| *kind == RTM_NEWLINK)
                .and_then(|(_, payload)| parse_link(payload))),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn links(&mut self) -> io::Result<Vec<Link>> {
        let msgs = self.request_raw(Request::dump_links())?;
        Ok(msgs
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWLINK)
            .filter_map(|(_, payload)| parse_link(payload))
            .collect())
    }

    fn addrs(&mut self, index: u32) -> io::Result<Vec<Addr>> {
        Ok(addrs_of(&self.request(Request::dump_addrs())?, index))
    }

    fn routes(&mut self, v4: bool) -> io::Result<Vec<Route>> {
        Ok(main_routes(&self.request(Request::dump_routes(v4))?, v4))
    }

    fn set_down(&mut self, index: u32) -> io::Result<()> {
        self.request(Request::set_down(index)).map(drop)
    }

    fn rename(&mut self, index: u32, name: &str) -> io::Result<()> {
        self.request(Request::rename(index, name)).map(drop)
    }

    fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        self.delete(Request::delete_link(name))
    }

    fn delete_index(&mut self, index: u32) -> io::Result<bool> {
        self.delete(Request::delete_index(index))
    }

    fn apply(&mut self, changes: &[Change]) -> io::Result<()> {
        self.batch(changes.iter().map(Request::change).collect())
    }

    fn sysctl(&mut self, path: &str, value: &str) -> io::Result<()> {
        crate::plugin::netns::sysctl(path, value)
    }
}
