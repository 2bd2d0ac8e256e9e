//! A small synchronous rtnetlink client: the link, address, route and neighbour requests the
//! plugin sends, as `netlink-packet-route` messages over a blocking `NETLINK_ROUTE` socket.
//!
//! Why `netlink-packet-route` directly rather than `rtnetlink`: `rtnetlink` needs an async
//! runtime, whose start-up would sit on every ADD/DEL, while a blocking socket with one
//! request (or one batch) in flight needs none of it. The crate encodes and decodes every
//! message; we own the socket, sequence numbers, acks and the kernel's extended-ack text.
//!
//! - [`socket`]: the socket ([`Netlink`]): send, receive, acks, batches, extended acks.
//! - [`messages`]: the requests, built as crate messages, and the readers of the address and
//!   route dumps.
//! - [`links`]: [`Link`] and its reader (five attributes, not the whole message).
//! - [`client`]: the operations the data path uses, as the [`Client`] trait; [`Netlink`]
//!   implements it, and the unit tests' [`fake::FakeClient`] records them.

pub mod client;
#[cfg(test)]
pub mod fake;
pub mod links;
pub mod messages;
pub mod socket;

pub use client::{Addr, Change, Client, Route, Veth};
pub use links::{IFF_UP, Link, format_mac};
pub use socket::Netlink;
