//! Packets, from inside the namespaces: ICMP echo over a raw socket (the kernel answers
//! echo itself, so a reply proves the path both ways), TCP connects to a server in each pod
//! that names itself (so a reply says *which* pod answered: the reuse check needs that),
//! and a server in the "internet" that tells a client the source address it saw.
//! Every socket is opened on a thread that joined the namespace it belongs to.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::lab::Ns;

/// A raw ICMP socket: echo requests out, every ICMP packet of the namespace in.
pub struct Icmp {
    fd: OwnedFd,
    /// Our identifier: raw sockets see each other's replies, so each prober filters by it.
    pub id: u16,
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with `id` and `seq`.
pub fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8; // echo request
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"cnicloud");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// (source, id, seq) of an echo reply in a raw IPv4 packet, if it is one.
pub fn parse_reply(packet: &[u8]) -> Option<(Ipv4Addr, u16, u16)> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let icmp = packet.get(ihl..)?;
    if icmp.len() < 8 || icmp[0] != 0 {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    Some((
        src,
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

impl Icmp {
    /// Must run on a thread inside the namespace the socket is for.
    pub fn open(id: u16) -> anyhow::Result<Icmp> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            bail!("raw ICMP socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket(2) and is ours alone.
        Ok(Icmp {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            id,
        })
    }

    /// Sends one echo request; false when the kernel refused it (no route, no link yet).
    pub fn send(&self, dst: Ipv4Addr, seq: u16) -> bool {
        let packet = echo_request(self.id, seq);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(dst).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: valid buffer and sockaddr for the call's duration.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        n == packet.len() as isize
    }

    /// Replies for our id arriving within `wait`: (source, seq).
    pub fn replies(&self, wait: Duration) -> Vec<(Ipv4Addr, u16)> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
            if ready <= 0 {
                return out;
            }
            loop {
                // SAFETY: valid buffer for the call's duration.
                let n = unsafe {
                    libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                };
                if n <= 0 {
                    break;
                }
                if let Some((src, id, seq)) = parse_reply(&buf[..n as usize])
                    && id == self.id
                {
                    out.push((src, seq));
                }
            }
            if left.is_zero() {
                return out;
            }
        }
    }

    /// One echo: true when `dst` answered within `timeout`.
    pub fn ping(&self, dst: Ipv4Addr, seq: u16, timeout: Duration) -> bool {
        if !self.send(dst, seq) {
            return false;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if self
                .replies(left.min(Duration::from_millis(100)))
                .iter()
                .any(|&(src, s)| src == dst && s == seq)
            {
                return true;
            }
        }
        false
    }
}

/// Connects to `dst:port` and reads what the server says (its name, or the address it saw).
pub fn tcp_read(dst: Ipv4Addr, port: u16, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddrV4::new(dst, port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.trim().to_owned())
}

/// What a server answers each connection with.
#[derive(Clone)]
pub enum Answer {
    /// Its own name (a pod).
    Name(String),
    /// The client's address as seen here (the internet's view of pod egress).
    Peer,
}

/// A TCP server on a thread of its namespace, until `stop`; counts connections.
pub struct Server {
    pub accepted: Arc<AtomicU64>,
}

impl Server {
    pub fn start(
        ns: &Ns,
        port: u16,
        answer: Answer,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<(Server, std::thread::JoinHandle<()>)> {
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = ns.thread(move || {
            let listener = match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
            {
                Ok(l) => {
                    let _ = ready_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let text = match &answer {
                            Answer::Name(n) => n.clone(),
                            Answer::Peer => peer.ip().to_string(),
                        };
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(format!("{text}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })?;
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow::anyhow!("server thread in {} did not start", ns.name))??;
        Ok((Server { accepted }, thread))
    }
}

/// Echoes from one pod to another at a fixed rate until `stop`; a probe is lost when its
/// reply is not back within [`LOSS_TIMEOUT`]. Probes before the pair's first reply are
/// warm-up (the pod, or its route, may not exist yet) and are not counted.
#[derive(Debug, Default, Clone)]
pub struct Stream {
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    /// When each lost probe was sent.
    pub lost_at: Vec<Instant>,
}

pub const LOSS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one check waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The books of one stream, pure: which probes are out, which count. Probes sent before
/// the pair's first reply are warm-up: never counted, sent or lost.
#[derive(Debug, Default)]
pub struct Ledger {
    pending: std::collections::BTreeMap<u16, Instant>,
    warm: bool,
    pub stream: Stream,
}

impl Ledger {
    /// A probe went out (or, `delivered` false, the kernel refused it: lost if warm).
    pub fn sent(&mut self, seq: u16, at: Instant, delivered: bool) {
        if self.warm {
            self.stream.sent += 1;
            self.pending.insert(seq, at);
        } else if delivered {
            self.pending.insert(seq, at);
        }
    }

    pub fn replied(&mut self, seq: u16) {
        if self.pending.remove(&seq).is_none() {
            return;
        }
        if self.warm {
            self.stream.answered += 1;
        } else {
            // The first reply: what is still out was sent while warming up.
            self.warm = true;
            self.pending.clear();
        }
    }

    /// Probes out longer than `timeout` at `now` are lost.
    pub fn expire(&mut self, now: Instant, timeout: Duration) {
        let expired: Vec<u16> = (self.pending.iter())
            .filter(|(_, at)| now.duration_since(**at) > timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(at) = self.pending.remove(&k)
                && self.warm
            {
                self.stream.lost += 1;
                self.stream.lost_at.push(at);
            }
        }
    }

    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// The end: whatever is still out is lost.
    pub fn finish(mut self) -> Stream {
        if self.warm {
            self.stream.lost += self.pending.len() as u64;
            self.stream.lost_at.extend(self.pending.values());
        }
        self.stream
    }
}

pub fn stream(icmp: &Icmp, dst: Ipv4Addr, every: Duration, stop: &AtomicBool) -> Stream {
    let mut ledger = Ledger::default();
    let mut seq: u16 = 0;
    let mut stopping: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            stopping = Some(now);
        }
        if stopping.is_none() {
            seq = seq.wrapping_add(1);
            let delivered = icmp.send(dst, seq);
            ledger.sent(seq, now, delivered);
        }
        for (src, r) in icmp.replies(every) {
            if src == dst {
                ledger.replied(r);
            }
        }
        ledger.expire(Instant::now(), LOSS_TIMEOUT);
        // After the stop, wait out the timeout for what is still out.
        if stopping.is_some_and(|t| t.elapsed() > LOSS_TIMEOUT || ledger.outstanding() == 0) {
            return ledger.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_probes_never_count_and_later_silence_does() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut l = Ledger::default();
        // No route yet: refused, then sent but unanswered.
        l.sent(1, ms(0), false);
        l.sent(2, ms(100), true);
        l.sent(3, ms(200), true);
        l.replied(3); // the first reply: 2 was warm-up
        l.expire(ms(2000), LOSS_TIMEOUT);
        assert_eq!((l.stream.sent, l.stream.lost), (0, 0));
        l.sent(4, ms(2000), true);
        l.replied(4);
        l.sent(5, ms(2100), true); // never answered
        l.sent(6, ms(2200), false); // refused once warm: lost too
        l.expire(ms(3500), LOSS_TIMEOUT);
        assert_eq!(l.stream.lost, 2);
        assert_eq!(l.stream.lost_at, [ms(2100), ms(2200)]);
        l.sent(7, ms(3500), true); // out at the end
        l.replied(99); // not ours
        let s = l.finish();
        assert_eq!((s.sent, s.answered, s.lost), (4, 1, 3));
    }

    #[test]
    fn echo_requests_checksum_to_zero_and_replies_parse() {
        let p = echo_request(0x1234, 7);
        assert_eq!(checksum(&p), 0, "a valid ICMP checksum sums to zero");
        // An IPv4 header (20 bytes) from 100.64.0.2, then the reply.
        let mut packet = vec![
            0x45u8, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 100, 64, 0, 2, 100, 64, 1, 2,
        ];
        let mut reply = p;
        reply[0] = 0;
        packet.extend_from_slice(&reply);
        assert_eq!(
            parse_reply(&packet),
            Some((Ipv4Addr::new(100, 64, 0, 2), 0x1234, 7))
        );
        // An echo request (our own, looped back to a raw socket) is not a reply.
        packet[20] = 8;
        assert_eq!(parse_reply(&packet), None);
        assert_eq!(parse_reply(&[0x45]), None);
    }
}
