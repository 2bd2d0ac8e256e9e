//! The `NETLINK_ROUTE` socket: blocking, one request (or one batch) in flight, sequence
//! numbers, acks and the kernel's extended-ack text, which the crate's `ErrorMessage` does not
//! carry. A netlink socket belongs to the netns it was *created* in, so a pod's socket is
//! opened on a thread that has joined the pod's namespace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NetlinkDeserializable, NetlinkHeader};
use netlink_packet_route::RouteNetlinkMessage;

use super::messages::Request;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// A `NETLINK_ROUTE` socket of the namespace it was opened in.
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
    pub fn request_raw(&mut self, req: Request) -> io::Result<Vec<(u16, Vec<u8>)>> {
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
    pub fn request(&mut self, req: Request) -> io::Result<Vec<RouteNetlinkMessage>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
