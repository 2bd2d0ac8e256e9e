//! The VPC fabric: its kernel routes follow the mock cloud's route tables. Each subnet looks
//! up its own table (policy routing by incoming interface, as a VPC associates a table with
//! a subnet); a route whose target is a node's ENI / NIC becomes `via` that node's address,
//! a route whose target is gone becomes a blackhole. The applier reads the cloud as a
//! describe / GET would see it (created routes hidden for the describe lag, Azure tables
//! only once their long-running PUT committed), so the kernel never runs ahead of the cloud.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::lab::Ns;
use super::plan::{Plan, TABLE_BASE};

/// How often the fabric reads the cloud's tables.
pub const POLL: Duration = Duration::from_millis(50);

/// Where the cloud says a route goes, resolved the way the cloud resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// The VPC's own range (AWS `local`): delivered on the fabric's connected subnets.
    Local,
    /// A live interface (or an appliance next hop) with this private address.
    Address(Ipv4Addr),
    /// The target is gone (a terminated instance's ENI): EC2 shows the route `blackhole`.
    Gone,
    /// Anything the lab does not model (gateways, peering): traffic to it is dropped.
    Other,
}

/// One table as the cloud shows it now, by subnet (the table's index in the plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudTable {
    pub subnet: u32,
    pub routes: Vec<(Ipv4Net, Hop)>,
}

/// A kernel route in the fabric.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KernelRoute {
    Via(Ipv4Addr),
    /// Dropped: what the fabric writes for a gone target (read back, an `unreachable` or
    /// `prohibit` route counts too).
    Blackhole,
}

/// Kernel table number → destination → route.
pub type KernelTables = BTreeMap<u32, BTreeMap<Ipv4Net, KernelRoute>>;

/// The kernel routes the cloud's tables mean. A next hop outside every node subnet can't
/// be reached by the fabric: dropped, as the cloud drops it. `Local` is left to the main
/// table (the connected subnets), where a lookup that matches nothing here continues.
pub fn translate(plan: &Plan, tables: &[CloudTable]) -> KernelTables {
    let mut out = KernelTables::new();
    for s in 0..plan.subnets {
        out.insert(TABLE_BASE + s, BTreeMap::new());
    }
    for t in tables {
        let routes = out.entry(TABLE_BASE + t.subnet).or_default();
        for (dest, hop) in &t.routes {
            let route = match hop {
                Hop::Local => continue,
                Hop::Address(a) if plan.subnet_of(*a).is_some() => KernelRoute::Via(*a),
                Hop::Address(_) | Hop::Gone | Hop::Other => KernelRoute::Blackhole,
            };
            routes.insert(*dest, route);
        }
    }
    out
}

/// `ip -batch` lines taking the kernel from `have` to `want`.
pub fn diff(plan: &Plan, have: &KernelTables, want: &KernelTables) -> Vec<String> {
    let empty = BTreeMap::new();
    let mut lines = Vec::new();
    for (table, routes) in want {
        let before = have.get(table).unwrap_or(&empty);
        for (dest, route) in routes {
            if before.get(dest) != Some(route) {
                lines.push(match route {
                    // The device named: the gateway is on that subnet's bridge, whatever
                    // the main table holds.
                    KernelRoute::Via(a) => format!(
                        "route replace {dest} via {a} dev {} table {table}",
                        super::lab::bridge(plan.subnet_of(*a).unwrap_or_default())
                    ),
                    KernelRoute::Blackhole => {
                        format!("route replace blackhole {dest} table {table}")
                    }
                });
            }
        }
    }
    for (table, routes) in have {
        let after = want.get(table).unwrap_or(&empty);
        for dest in routes.keys() {
            if !after.contains_key(dest) {
                lines.push(format!("route del {dest} table {table}"));
            }
        }
    }
    lines
}

/// Reads the cloud's tables as a describe would see them now.
pub type CloudReader = Box<dyn FnMut() -> Vec<CloudTable> + Send>;

/// The applier: a thread polling the cloud and writing the difference into the fabric.
pub struct Applier {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// What the kernel was last told (for triggering blows; judging reads the kernel).
    pub applied: Arc<Mutex<KernelTables>>,
    /// Failed `ip -batch` runs (each retried on the next poll).
    pub errors: Arc<Mutex<Vec<String>>>,
    /// Every change applied, when: what a lost probe is explained by.
    pub log: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Applier {
    pub fn start(plan: Plan, fabric: &Ns, mut read: CloudReader) -> Applier {
        let stop = Arc::new(AtomicBool::new(false));
        let applied = Arc::new(Mutex::new(KernelTables::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let fabric = fabric.name.clone();
        let thread = {
            let (stop, applied, errors, log) =
                (stop.clone(), applied.clone(), errors.clone(), log.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let want = translate(&plan, &read());
                    let lines = diff(&plan, &applied.lock().expect("applied"), &want);
                    if !lines.is_empty() {
                        match super::lab::ip_batch(&fabric, &lines) {
                            Ok(()) => {
                                *applied.lock().expect("applied") = want;
                                let now = Instant::now();
                                let mut log = log.lock().expect("log");
                                log.extend(lines.into_iter().map(|l| (now, l)));
                            }
                            Err(e) => errors.lock().expect("errors").push(e.to_string()),
                        }
                    }
                    std::thread::sleep(POLL.saturating_sub(started.elapsed()));
                }
            })
        };
        Applier {
            stop,
            thread: Some(thread),
            applied,
            errors,
            log,
        }
    }

    /// Node podCIDRs present (as `via` a node) in every subnet's table.
    pub fn routed_everywhere(&self, cidr: &Ipv4Net) -> bool {
        let applied = self.applied.lock().expect("applied");
        !applied.is_empty()
            && applied
                .values()
                .all(|t| matches!(t.get(cidr), Some(KernelRoute::Via(_))))
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The fabric's kernel tables as `ip -j route show table N` lists them (the judge's view).
pub fn kernel_tables(fabric: &Ns, plan: &Plan) -> anyhow::Result<KernelTables> {
    let mut out = KernelTables::new();
    for s in 0..plan.subnets {
        let table = TABLE_BASE + s;
        let text = fabric.ip(&["-j", "route", "show", "table", &table.to_string()])?;
        out.insert(table, parse_routes(&text)?);
    }
    Ok(out)
}

/// `ip -j route show` output → the routes the fabric holds.
pub fn parse_routes(json: &str) -> anyhow::Result<BTreeMap<Ipv4Net, KernelRoute>> {
    let mut out = BTreeMap::new();
    if json.trim().is_empty() {
        return Ok(out);
    }
    let rows: Vec<serde_json::Value> = serde_json::from_str(json)?;
    for r in rows {
        let Some(dst) = r["dst"].as_str() else {
            continue;
        };
        // A /32 is listed without its length.
        let dest: Ipv4Net = match dst.parse() {
            Ok(d) => d,
            Err(_) => match dst.parse::<Ipv4Addr>() {
                Ok(a) => Ipv4Net::from(a),
                Err(_) => continue,
            },
        };
        // The fabric writes blackholes; an unreachable or prohibit route drops as surely
        // (with an ICMP error), so the judge counts it the same.
        let route = if matches!(
            r["type"].as_str(),
            Some("blackhole" | "unreachable" | "prohibit")
        ) {
            KernelRoute::Blackhole
        } else if let Some(gw) = r["gateway"].as_str().and_then(|g| g.parse().ok()) {
            KernelRoute::Via(gw)
        } else {
            continue;
        };
        out.insert(dest, route);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new(3, 2, 1).unwrap()
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn cloud_routes_become_kernel_routes_per_subnet_table() {
        let p = plan();
        let (a, b) = (p.nodes[0].address, p.nodes[1].address);
        let tables = [
            CloudTable {
                subnet: 0,
                routes: vec![
                    (net("10.0.0.0/8"), Hop::Local),
                    (net("100.64.0.0/24"), Hop::Address(a)),
                    (net("100.64.1.0/24"), Hop::Gone),
                    (
                        net("100.64.2.0/24"),
                        Hop::Address("10.99.0.9".parse().unwrap()),
                    ),
                    (net("0.0.0.0/0"), Hop::Other),
                ],
            },
            CloudTable {
                subnet: 1,
                routes: vec![(net("100.64.1.0/24"), Hop::Address(b))],
            },
        ];
        let k = translate(&p, &tables);
        assert_eq!(k.len(), 2);
        let t0 = &k[&TABLE_BASE];
        assert_eq!(
            t0.get(&net("10.0.0.0/8")),
            None,
            "local stays with the main table"
        );
        assert_eq!(t0[&net("100.64.0.0/24")], KernelRoute::Via(a));
        assert_eq!(t0[&net("100.64.1.0/24")], KernelRoute::Blackhole);
        // A next hop on no node subnet: the fabric can't reach it, traffic is dropped.
        assert_eq!(t0[&net("100.64.2.0/24")], KernelRoute::Blackhole);
        assert_eq!(t0[&net("0.0.0.0/0")], KernelRoute::Blackhole);
        assert_eq!(
            k[&(TABLE_BASE + 1)][&net("100.64.1.0/24")],
            KernelRoute::Via(b)
        );
        // A table the cloud did not show still exists, empty: its old routes get deleted.
        assert!(translate(&p, &[])[&(TABLE_BASE + 1)].is_empty());
    }

    #[test]
    fn the_diff_adds_changes_and_deletes_only_what_differs() {
        let p = plan();
        let (a, b) = (p.nodes[0].address, p.nodes[1].address);
        let t = |routes: Vec<(&str, KernelRoute)>| -> KernelTables {
            BTreeMap::from([(
                TABLE_BASE,
                routes.into_iter().map(|(d, r)| (net(d), r)).collect(),
            )])
        };
        let have = t(vec![
            ("100.64.0.0/24", KernelRoute::Via(a)),
            ("100.64.1.0/24", KernelRoute::Via(a)),
            ("100.64.2.0/24", KernelRoute::Via(b)),
        ]);
        let want = t(vec![
            ("100.64.0.0/24", KernelRoute::Via(a)),
            ("100.64.1.0/24", KernelRoute::Blackhole),
            ("100.64.3.0/24", KernelRoute::Via(b)),
        ]);
        assert_eq!(
            diff(&p, &have, &want),
            [
                "route replace blackhole 100.64.1.0/24 table 100",
                format!("route replace 100.64.3.0/24 via {b} dev br1 table 100").as_str(),
                "route del 100.64.2.0/24 table 100",
            ]
        );
        assert!(diff(&p, &want, &want).is_empty());
    }

    #[test]
    fn ip_json_parses_into_kernel_routes() {
        let json = r#"[{"dst":"100.64.0.0/24","gateway":"10.1.0.2","dev":"br0","flags":[]},
            {"type":"blackhole","dst":"100.64.1.0/24","flags":[]},
            {"type":"unreachable","dst":"100.64.4.0/24","flags":[]},
            {"dst":"10.9.9.9","gateway":"10.1.0.3","dev":"br0","flags":[]}]"#;
        let r = parse_routes(json).unwrap();
        assert_eq!(
            r[&net("100.64.0.0/24")],
            KernelRoute::Via("10.1.0.2".parse().unwrap())
        );
        assert_eq!(r[&net("100.64.1.0/24")], KernelRoute::Blackhole);
        assert_eq!(r[&net("100.64.4.0/24")], KernelRoute::Blackhole);
        assert_eq!(
            r[&net("10.9.9.9/32")],
            KernelRoute::Via("10.1.0.3".parse().unwrap())
        );
        assert!(parse_routes("").unwrap().is_empty());
    }
}
