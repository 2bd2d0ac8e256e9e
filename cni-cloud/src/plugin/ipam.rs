//! The address store under `dataDir/<network>/`: O(1) allocate and release, round-robin,
//! one allocation per attachment, safe under concurrent plugin processes and `kill -9`.
//!
//! Layout (default dataDir is /run: tmpfs, so a reboot leaves no stale reservation):
//! - `lock`: every mutation holds an exclusive `flock` on it.
//! - `attachments/<containerID>:<ifname>`: the attachment's addresses, one per line. Written
//!   (temp file + rename) BEFORE the reservations, so whatever a crash leaves behind is either
//!   nothing or named by a record that DEL and GC find.
//! - `ips/<address>`: the reservation, created with O_EXCL; it holds its owner
//!   `<containerID>:<ifname>`, and release removes it only when the owner matches (a late DEL
//!   of an old sandbox can never free an address reused by a new one).
//! - `cursor-v4`, `cursor-v6`: the last address handed out; the next ADD probes from the one
//!   after it, so a freed address is reused last (round-robin) and an allocation costs one
//!   `stat` per probe instead of host-local's read of every reservation.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::config::Range;
use super::env::Attachment;
use super::error::{ALREADY_ATTACHED, CniError, RANGE_EXHAUSTED, Result, TRY_AGAIN};

pub struct Store {
    dir: PathBuf,
    /// How long `lock` waits for another plugin process before answering 11 (try again).
    lock_timeout: Duration,
}

/// Held while the store is locked; the flock goes with the file.
pub struct Locked<'a> {
    store: &'a Store,
    _lock: File,
}

fn key(a: &Attachment) -> String {
    format!("{}:{}", a.container_id, a.ifname)
}

fn io(what: &str) -> impl Fn(std::io::Error) -> CniError + '_ {
    move |e| CniError::state(what, e)
}

impl Store {
    pub fn new(data_dir: &Path, network: &str, lock_timeout: Duration) -> Self {
        Self {
            dir: data_dir.join(network),
            lock_timeout,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn lock(&self) -> Result<Locked<'_>> {
        let timeout = self.lock_timeout;
        let open = |create: bool| {
            OpenOptions::new()
                .create(create)
                .truncate(false)
                .write(true)
                .open(self.dir.join("lock"))
        };
        // The lock file is created only after both directories, so once it exists they do:
        // only a missing lock file (a first ADD, or one killed half-way through creating them)
        // makes this call create them, instead of every call.
        let file = match open(false) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                for sub in ["attachments", "ips"] {
                    fs::create_dir_all(self.dir.join(sub)).map_err(io("create dataDir"))?;
                }
                open(true)
            }
            other => other,
        }
        .map_err(io("open lock"))?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Locked {
                    store: self,
                    _lock: file,
                });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != ErrorKind::WouldBlock {
                return Err(CniError::state("lock", err));
            }
            if Instant::now() >= deadline {
                return Err(CniError::new(
                    TRY_AGAIN,
                    format!(
                        "IPAM store {} stayed locked for {timeout:?}",
                        self.dir.display()
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

/// At most this many addresses of one range are handed out: the first `MAX_POOL` from
/// rangeStart (or the subnet's first usable address). A node runs a few hundred pods at most
/// (kubelet's max-pods), while an IPv6 /64 PodCIDR has 2^64 addresses; the cap keeps the
/// worst case of an allocation (probing a nearly full pool) and of the exhaustion check
/// bounded (65,536 `stat`s), independent of the prefix length.
pub const MAX_POOL: u128 = 1 << 16;

/// The candidate addresses of a range set, in order: each subnet without its network address
/// (and, for IPv4, its broadcast), narrowed by rangeStart/rangeEnd, capped at `MAX_POOL`.
fn spans(set: &[Range]) -> Vec<(u128, u128, bool)> {
    set.iter().filter_map(span).collect()
}

/// The addresses a range hands out, first and last (None when it hands out none).
fn span(r: &Range) -> Option<(u128, u128, bool)> {
    let v4 = r.subnet.addr().is_ipv4();
    let net = to_u128(r.subnet.network());
    let last = to_u128(r.subnet.broadcast());
    let mut lo = net + 1;
    let mut hi = if v4 { last - 1 } else { last };
    if let Some(s) = r.start {
        lo = lo.max(to_u128(s));
    }
    if let Some(e) = r.end {
        hi = hi.min(to_u128(e));
    }
    hi = hi.min(lo.saturating_add(MAX_POOL - 1));
    (lo <= hi).then_some((lo, hi, v4))
}

/// The ranges of a set as an operator reads them: `10.244.7.10–10.244.7.49 in 10.244.7.0/24`
/// (what is handed out, in which subnet), comma separated.
pub fn describe_set(set: &[Range]) -> String {
    set.iter()
        .map(|r| match span(r) {
            Some((lo, hi, v4)) => format!(
                "{}\u{2013}{} in {}",
                from_u128(lo, v4),
                from_u128(hi, v4),
                r.subnet
            ),
            None => format!("no address in {}", r.subnet),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Width of a cursor file: the longest address text (39) and a newline.
const CURSOR_WIDTH: usize = 40;

/// Overwrites the cursor in place, space-padded to a fixed width, never truncating: on ext4
/// a file truncated to zero and rewritten is flushed to disk at close (`auto_da_alloc`), which
/// cost every ADD a write-back (~3 ms per write measured on /tmp here; the default dataDir is
/// tmpfs, but nothing stops one on disk). Not temp + rename either: the cursor is only where
/// the next search starts, and a torn one (a crash mid-write) just fails to parse and starts
/// from the top.
fn write_cursor(path: &Path, ip: IpAddr) -> std::io::Result<()> {
    let mut text = format!("{ip:<width$}", width = CURSOR_WIDTH - 1);
    text.push('\n');
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?
        .write_all(text.as_bytes())
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((n as u32).into())
    } else {
        IpAddr::V6(n.into())
    }
}

impl Locked<'_> {
    fn attachment_path(&self, a: &Attachment) -> PathBuf {
        self.store.dir.join("attachments").join(key(a))
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.store.dir.join("ips").join(ip.to_string())
    }

    pub fn lookup(&self, a: &Attachment) -> Result<Option<Vec<IpAddr>>> {
        read_record(&self.attachment_path(a))
    }

    /// One address from every range set, or an error with nothing reserved.
    pub fn allocate(&self, a: &Attachment, sets: &[Vec<Range>]) -> Result<Vec<IpAddr>> {
        let record = self.attachment_path(a);
        if record.exists() {
            return Err(CniError::new(
                ALREADY_ATTACHED,
                format!(
                    "container {} interface {} already has addresses; DEL it first",
                    a.container_id, a.ifname
                ),
            ));
        }
        let mut chosen = Vec::with_capacity(sets.len());
        for set in sets {
            chosen.push(self.pick(set)?);
        }
        write_atomic(&record, &render_record(&chosen)).map_err(io("write attachment record"))?;
        for ip in &chosen {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.ip_path(*ip))
                .map_err(io("reserve address"))?;
            f.write_all(key(a).as_bytes())
                .map_err(io("reserve address"))?;
            let cursor = if ip.is_ipv4() {
                "cursor-v4"
            } else {
                "cursor-v6"
            };
            write_cursor(&self.store.dir.join(cursor), *ip).map_err(io("write cursor"))?;
        }
        Ok(chosen)
    }

    fn pick(&self, set: &[Range]) -> Result<IpAddr> {
        let spans = spans(set);
        let total: u128 = spans.iter().map(|(lo, hi, _)| hi - lo + 1).sum();
        let v4 = set[0].subnet.addr().is_ipv4();
        let cursor_file = self
            .store
            .dir
            .join(if v4 { "cursor-v4" } else { "cursor-v6" });
        // Position of the last handed-out address in the flattened set; a missing or foreign
        // cursor (the ranges changed) starts from the beginning.
        let last = fs::read_to_string(&cursor_file)
            .ok()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .and_then(|ip| {
                let n = to_u128(ip);
                let mut base = 0u128;
                for (lo, hi, _) in &spans {
                    if (*lo..=*hi).contains(&n) {
                        return Some(base + (n - lo));
                    }
                    base += hi - lo + 1;
                }
                None
            });
        let start = last.map_or(0, |p| p + 1);
        for i in 0..total {
            let mut pos = (start + i) % total;
            let ip = spans
                .iter()
                .find_map(|(lo, hi, v4)| {
                    let size = hi - lo + 1;
                    if pos < size {
                        Some(from_u128(lo + pos, *v4))
                    } else {
                        pos -= size;
                        None
                    }
                })
                .expect("position within the set");
            if !self.ip_path(ip).exists() {
                return Ok(ip);
            }
        }
        Err(CniError::new(
            RANGE_EXHAUSTED,
            format!("no free address in {}", describe_set(set)),
        ))
    }

    /// Frees the attachment's addresses; a no-op when it holds none.
    pub fn release(&self, a: &Attachment) -> Result<Vec<IpAddr>> {
        let record = self.attachment_path(a);
        let Some(ips) = read_record(&record)? else {
            return Ok(Vec::new());
        };
        for ip in &ips {
            let path = self.ip_path(*ip);
            match fs::read_to_string(&path) {
                Ok(owner) if owner == key(a) => match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(CniError::state("release address", e)),
                },
                Ok(_) => {} // reused by another attachment after a crash: not ours to free
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(CniError::state("read reservation", e)),
            }
        }
        match fs::remove_file(&record) {
            Ok(()) => Ok(ips),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(ips),
            Err(e) => Err(CniError::state("remove attachment record", e)),
        }
    }

    /// Every attachment with a record.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        let mut out = Vec::new();
        for entry in
            fs::read_dir(self.store.dir.join("attachments")).map_err(io("list attachments"))?
        {
            let name = entry.map_err(io("list attachments"))?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            if let Some((id, ifname)) = name.split_once(':') {
                out.push(Attachment {
                    container_id: id.to_string(),
                    ifname: ifname.to_string(),
                });
            }
        }
        Ok(out)
    }

    /// GC's second half: reservations whose owner has no record, and temp files (in the
    /// store's directory and both subdirectories), from a crash are removed. Returns how many.
    pub fn sweep_orphans(&self) -> Result<usize> {
        let mut removed = 0;
        for sub in ["", "attachments", "ips"] {
            for entry in fs::read_dir(self.store.dir.join(sub)).map_err(io("sweep"))? {
                let entry = entry.map_err(io("sweep"))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let orphan = if name.starts_with('.') {
                    true // a temp file a crash left before its rename
                } else if sub == "ips" && entry.file_type().is_ok_and(|t| t.is_file()) {
                    match fs::read_to_string(entry.path()) {
                        Ok(owner) => {
                            !self
                                .store
                                .dir
                                .join("attachments")
                                .join(owner.trim())
                                .exists()
                                || owner.is_empty()
                        }
                        Err(_) => false,
                    }
                } else {
                    false
                };
                if orphan && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Free addresses per range set (STATUS), counting reservations inside the set.
    pub fn free_per_set(&self, sets: &[Vec<Range>]) -> Result<Vec<u128>> {
        let mut reserved: Vec<IpAddr> = Vec::new();
        for entry in fs::read_dir(self.store.dir.join("ips")).map_err(io("list reservations"))? {
            if let Ok(ip) = entry
                .map_err(io("list reservations"))?
                .file_name()
                .to_string_lossy()
                .parse()
            {
                reserved.push(ip);
            }
        }
        Ok(sets
            .iter()
            .map(|set| {
                let spans = spans(set);
                let total: u128 = spans.iter().map(|(lo, hi, _)| hi - lo + 1).sum();
                let used = reserved
                    .iter()
                    .filter(|ip| {
                        let n = to_u128(**ip);
                        spans
                            .iter()
                            .any(|(lo, hi, v4)| *v4 == ip.is_ipv4() && (*lo..=*hi).contains(&n))
                    })
                    .count() as u128;
                total.saturating_sub(used)
            })
            .collect())
    }
}

/// The prefix an allocated address is configured with: a host route (/32, /128) because the
/// pod reaches everything, its neighbours on the node included, through the gateway.
pub fn host_net(ip: IpAddr) -> IpNet {
    IpNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }).expect("host prefix is valid")
}

fn render_record(ips: &[IpAddr]) -> String {
    ips.iter().map(|ip| format!("{ip}\n")).collect()
}

fn read_record(path: &Path) -> Result<Option<Vec<IpAddr>>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(
            s.lines().filter_map(|l| l.trim().parse().ok()).collect(),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CniError::state("read attachment record", e)),
    }
}

/// Temp file in the same directory + rename: readers see the old or the new content, never
/// half of it. No fsync: the store lives on tmpfs, whose content a power loss clears anyway.
fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    let dir = path.parent().expect("state files live in a directory");
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name()
            .expect("state file has a name")
            .to_string_lossy(),
        std::process::id()
    ));
    fs::write(&tmp, content)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(subnet: &str) -> Vec<Range> {
        vec![Range {
            subnet: subnet.parse().unwrap(),
            start: None,
            end: None,
        }]
    }

    fn att(id: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn allocates_round_robin_and_skips_network_and_broadcast() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "n", Duration::from_secs(5));
        let l = store.lock().unwrap();
        let sets = vec![set("10.0.0.0/30")];
        assert_eq!(
            l.allocate(&att("a"), &sets).unwrap(),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            l.allocate(&att("b"), &sets).unwrap(),
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            l.allocate(&att("c"), &sets).unwrap_err().code,
            RANGE_EXHAUSTED
        );
        l.release(&att("a")).unwrap();
        assert_eq!(
            l.allocate(&att("c"), &sets).unwrap(),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn exhaustion_names_the_full_range_not_just_the_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "n", Duration::from_secs(5));
        let l = store.lock().unwrap();
        let sets = vec![vec![Range {
            subnet: "10.244.7.0/24".parse().unwrap(),
            start: Some("10.244.7.10".parse().unwrap()),
            end: Some("10.244.7.11".parse().unwrap()),
        }]];
        l.allocate(&att("a"), &sets).unwrap();
        l.allocate(&att("b"), &sets).unwrap();
        let err = l.allocate(&att("c"), &sets).unwrap_err();
        assert_eq!(err.code, RANGE_EXHAUSTED);
        assert_eq!(
            err.msg,
            "no free address in 10.244.7.10\u{2013}10.244.7.11 in 10.244.7.0/24"
        );
        assert_eq!(
            describe_set(&[set("10.0.0.0/30"), set("10.0.1.0/24")].concat()),
            "10.0.0.1\u{2013}10.0.0.2 in 10.0.0.0/30, 10.0.1.1\u{2013}10.0.1.254 in 10.0.1.0/24"
        );
    }

    #[test]
    fn the_cursor_is_rewritten_in_place_at_a_fixed_width() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursor-v6");
        write_cursor(&path, "fd00:1:2:3:4:5:6:7".parse().unwrap()).unwrap();
        write_cursor(&path, "fd00::2".parse().unwrap()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), CURSOR_WIDTH);
        assert_eq!(
            text.trim().parse::<IpAddr>().unwrap(),
            "fd00::2".parse::<IpAddr>().unwrap()
        );
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        write_cursor(&path, longest).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            longest.to_string()
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), CURSOR_WIDTH as u64);
    }

    #[test]
    fn freed_address_is_reused_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "n", Duration::from_secs(5));
        let l = store.lock().unwrap();
        let sets = vec![set("10.0.0.0/29")];
        let a = l.allocate(&att("a"), &sets).unwrap();
        l.release(&att("a")).unwrap();
        let b = l.allocate(&att("b"), &sets).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn second_add_without_del_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "n", Duration::from_secs(5));
        let l = store.lock().unwrap();
        let sets = vec![set("10.0.0.0/24"), set("fd00::/120")];
        let ips = l.allocate(&att("a"), &sets).unwrap();
        assert_eq!(ips.len(), 2);
        assert_eq!(
            l.allocate(&att("a"), &sets).unwrap_err().code,
            ALREADY_ATTACHED
        );
        assert_eq!(l.lookup(&att("a")).unwrap(), Some(ips));
    }

    #[test]
    fn release_never_frees_an_address_someone_else_owns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "n", Duration::from_secs(5));
        let l = store.lock().unwrap();
        let sets = vec![set("10.0.0.0/30")];
        let ip = l.allocate(&att("a"), &sets).unwrap()[0];
        // A crash-era record of "old" naming the same address.
        fs::write(l.attachment_path(&att("old")), format!("{ip}\n")).unwrap();
        l.release(&att("old")).unwrap();
        assert!(l.ip_path(ip).exists());
    }

    #[test]
    fn ipv6_64_is_capped_and_allocates_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "n", Duration::from_secs(5));
        let l = store.lock().unwrap();
        let sets = vec![set("fd00:1::/64")];
        assert_eq!(
            l.allocate(&att("a"), &sets).unwrap(),
            vec!["fd00:1::1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            l.allocate(&att("b"), &sets).unwrap(),
            vec!["fd00:1::2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(l.free_per_set(&sets).unwrap(), vec![MAX_POOL - 2]);
    }

    #[test]
    fn orphans_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "n", Duration::from_secs(5));
        let l = store.lock().unwrap();
        fs::write(l.ip_path("10.0.0.9".parse().unwrap()), "ghost:eth0").unwrap();
        fs::write(store.dir().join("attachments/.x.tmp.1"), "").unwrap();
        assert_eq!(l.sweep_orphans().unwrap(), 2);
        assert_eq!(l.free_per_set(&[set("10.0.0.0/28")]).unwrap(), vec![14]);
    }

    #[test]
    fn a_lock_held_past_the_timeout_is_try_again_and_free_again_after() {
        let dir = tempfile::tempdir().unwrap();
        let patient = Store::new(dir.path(), "n", Duration::from_secs(5));
        let hasty = Store::new(dir.path(), "n", Duration::from_millis(30));
        let held = patient.lock().unwrap();
        let started = Instant::now();
        let err = hasty.lock().err().expect("the lock is held");
        assert_eq!(err.code, TRY_AGAIN);
        assert!(started.elapsed() >= Duration::from_millis(30));
        drop(held);
        hasty.lock().expect("free once the holder is gone");
    }
}
