//! A recording fake [`Client`] for unit tests: one namespace in memory (links, addresses,
//! routes, neighbour entries, sysctls) answering like the kernel does for what the data path
//! asks (EEXIST for an exclusive create of something present, ENODEV for a missing link,
//! EBUSY for renaming an up link), with injectable failures and a log of every call.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use super::{Addr, Change, Client, IFF_UP, Link, Route, Veth};

#[derive(Debug)]
pub struct FakeClient {
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
    pub routes: Vec<Route>,
    /// (link index, address) of every neighbour entry.
    pub neighbours: Vec<(u32, IpAddr)>,
    /// Every sysctl written, in order.
    pub sysctls: Vec<(String, String)>,
    /// Every call, in order, one line each ("create_veth cnic… eth0", "apply: …").
    pub calls: Vec<String>,
    /// Calls that fail once with an errno, by name ("apply", "set_down", …).
    pub failures: Vec<(&'static str, i32)>,
    /// The index the next created link gets.
    pub next_index: u32,
    /// What a created veth reports as its peer's index (None: no IFLA_LINK).
    pub peer_index: Option<u32>,
}

impl Default for FakeClient {
    fn default() -> Self {
        Self {
            links: vec![Self::link(1, "lo", IFF_UP, None)],
            addrs: Vec::new(),
            routes: Vec::new(),
            neighbours: Vec::new(),
            sysctls: Vec::new(),
            calls: Vec::new(),
            failures: Vec::new(),
            next_index: 7,
            peer_index: Some(2),
        }
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl FakeClient {
    /// A veth link.
    pub fn link(index: u32, name: &str, flags: u32, peer_index: Option<u32>) -> Link {
        Link {
            index,
            name: name.into(),
            flags,
            mac: [0; 6],
            mtu: 1500,
            peer_index,
            kind: Some("veth".into()),
        }
    }

    pub fn link_named(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    fn call(&mut self, name: &'static str, line: String) -> io::Result<()> {
        self.calls.push(line);
        match self.failures.iter().position(|(n, _)| *n == name) {
            Some(i) => Err(errno(self.failures.remove(i).1)),
            None => Ok(()),
        }
    }

    fn index_of(&self, index: u32) -> io::Result<usize> {
        self.links
            .iter()
            .position(|l| l.index == index)
            .ok_or_else(|| errno(libc::ENODEV))
    }

    /// What the kernel drops with a link (or, for routes, when it goes down).
    fn forget(&mut self, index: u32, with_link: bool) {
        self.routes.retain(|r| r.oif != Some(index));
        if with_link {
            self.addrs.retain(|a| a.index != index);
            self.neighbours.retain(|(i, _)| *i != index);
            self.links.retain(|l| l.index != index);
        }
    }

    fn change(&mut self, c: &Change) -> io::Result<()> {
        match *c {
            Change::SetUp { index } => {
                let i = self.index_of(index)?;
                self.links[i].flags |= IFF_UP;
            }
            Change::AddAddr { index, ip, prefix } => {
                self.index_of(index)?;
                self.addrs.retain(|a| !(a.index == index && a.ip == ip));
                self.addrs.push(Addr { index, ip, prefix });
            }
            Change::AddNeighbour { index, ip, .. } => {
                self.index_of(index)?;
                if self.neighbours.contains(&(index, ip)) {
                    return Err(errno(libc::EEXIST));
                }
                self.neighbours.push((index, ip));
            }
            Change::AddRoute {
                dst,
                dst_len,
                gateway,
                oif,
                ..
            } => {
                self.index_of(oif)?;
                if self
                    .routes
                    .iter()
                    .any(|r| r.dst == dst && r.dst_len == dst_len)
                {
                    return Err(errno(libc::EEXIST));
                }
                self.routes.push(Route {
                    dst,
                    dst_len,
                    gateway,
                    oif: Some(oif),
                });
            }
        }
        Ok(())
    }
}

impl Client for FakeClient {
    fn create_veth(&mut self, veth: &Veth<'_>, _peer_netns: RawFd) -> io::Result<()> {
        self.call(
            "create_veth",
            format!("create_veth {} {}", veth.host_name, veth.peer_name),
        )?;
        if self.link_named(veth.host_name).is_some() {
            return Err(errno(libc::EEXIST));
        }
        let mut link = Self::link(self.next_index, veth.host_name, IFF_UP, self.peer_index);
        link.mac = veth.host_mac;
        link.mtu = veth.mtu;
        self.next_index += 1;
        self.links.push(link);
        Ok(())
    }

    fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        self.call("link_by_name", format!("link_by_name {name}"))?;
        Ok(self.link_named(name).cloned())
    }

    fn links(&mut self) -> io::Result<Vec<Link>> {
        self.call("links", "links".into())?;
        Ok(self.links.clone())
    }

    fn addrs(&mut self, index: u32) -> io::Result<Vec<Addr>> {
        self.call("addrs", format!("addrs {index}"))?;
        Ok(self
            .addrs
            .iter()
            .filter(|a| a.index == index)
            .cloned()
            .collect())
    }

    fn routes(&mut self, v4: bool) -> io::Result<Vec<Route>> {
        self.call("routes", format!("routes v{}", if v4 { 4 } else { 6 }))?;
        Ok(self
            .routes
            .iter()
            .filter(|r| r.dst.is_ipv4() == v4)
            .cloned()
            .collect())
    }

    fn set_down(&mut self, index: u32) -> io::Result<()> {
        self.call("set_down", format!("set_down {index}"))?;
        let i = self.index_of(index)?;
        self.links[i].flags &= !IFF_UP;
        self.forget(index, false);
        Ok(())
    }

    fn rename(&mut self, index: u32, name: &str) -> io::Result<()> {
        self.call("rename", format!("rename {index} {name}"))?;
        let i = self.index_of(index)?;
        if self.links[i].flags & IFF_UP != 0 {
            return Err(errno(libc::EBUSY));
        }
        if self.link_named(name).is_some() {
            return Err(errno(libc::EEXIST));
        }
        self.links[i].name = name.into();
        Ok(())
    }

    fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        self.call("delete_link", format!("delete_link {name}"))?;
        let Some(index) = self.link_named(name).map(|l| l.index) else {
            return Ok(false);
        };
        self.forget(index, true);
        Ok(true)
    }

    fn delete_index(&mut self, index: u32) -> io::Result<bool> {
        self.call("delete_index", format!("delete_index {index}"))?;
        if self.index_of(index).is_err() {
            return Ok(false);
        }
        self.forget(index, true);
        Ok(true)
    }

    fn apply(&mut self, changes: &[Change]) -> io::Result<()> {
        self.call("apply", format!("apply {changes:?}"))?;
        let mut first = None;
        for c in changes {
            if let Err(e) = self.change(c) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn sysctl(&mut self, path: &str, value: &str) -> io::Result<()> {
        self.call("sysctl", format!("sysctl {path}={value}"))?;
        self.sysctls.push((path.into(), value.into()));
        Ok(())
    }
}
