//! The CNI plugin: `run` maps (environment, stdin) to (stdout, exit code); each verb is a
//! short sequence over the pure parsers (env, config, result) and the I/O edges (ipam store,
//! datapath over netlink, netns).

pub mod config;
pub mod datapath;
pub mod env;
pub mod error;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod result;

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::json;

use config::{NetConf, SUPPORTED_VERSIONS};
use env::{Attachment, Command, Env};
use error::{CniError, INCOMPATIBLE_VERSION, NOT_AVAILABLE, Result, UNKNOWN_CONTAINER};
use ipam::Store;
use result::CniResult;

/// What the process prints and exits with.
pub struct Outcome {
    pub stdout: String,
    pub code: i32,
}

pub fn run(get_env: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let version = config::version_of(stdin);
    match dispatch(get_env, stdin) {
        Ok(out) => Outcome {
            stdout: out,
            code: 0,
        },
        Err(e) => Outcome {
            stdout: e.to_json(&version),
            code: 1,
        },
    }
}

fn dispatch(get_env: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<String> {
    let env = env::parse(get_env)?;
    if env.command == Command::Version {
        let asked = config::version_of(stdin);
        return Ok(
            json!({"cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS}).to_string(),
        );
    }
    let conf = config::parse(stdin)?;
    match env.command {
        Command::Add => add(&env, &conf),
        Command::Del => del(&env, &conf).map(|()| String::new()),
        Command::Check => check(&env, &conf).map(|()| String::new()),
        Command::Gc => gc(&conf).map(|()| String::new()),
        Command::Status => status(&conf).map(|()| String::new()),
        Command::Version => unreachable!("answered above"),
    }
}

fn attachment(env: &Env) -> &Attachment {
    env.attachment
        .as_ref()
        .expect("env::parse sets it for ADD, DEL and CHECK")
}

fn at_least(conf: &NetConf, min: &str, verb: &str) -> Result<()> {
    let idx = |v: &str| SUPPORTED_VERSIONS.iter().position(|s| *s == v);
    if idx(&conf.cni_version) < idx(min) {
        return Err(CniError::new(
            INCOMPATIBLE_VERSION,
            format!(
                "{verb} needs cniVersion {min} or later, the config says {}",
                conf.cni_version
            ),
        ));
    }
    Ok(())
}

fn add(env: &Env, conf: &NetConf) -> Result<String> {
    let a = attachment(env);
    let netns_path = env
        .netns
        .as_deref()
        .expect("env::parse requires CNI_NETNS for ADD");
    let netns = netns::open_pod_netns(netns_path)?;
    if conf.ranges.is_empty() {
        return Err(CniError::config(
            "no address ranges: set \"ranges\" or pass runtimeConfig.ipRanges",
        ));
    }
    let prev = conf
        .prev_result
        .as_ref()
        .map(CniResult::parse)
        .transpose()?;
    let store = Store::new(&conf.data_dir, &conf.name, conf.lock_timeout);
    let ours = std::thread::scope(|scope| {
        // The pod's thread starts now, so its start-up overlaps the allocation.
        let pod = datapath::PodSide::start(scope, &netns);
        // The lock covers only the store; the kernel work runs unlocked so parallel ADDs
        // overlap.
        let ips = store.lock()?.allocate(a, &conf.ranges)?;
        let routes = pod_routes(conf, &ips);
        datapath::setup(a, pod, &netns, netns_path, &ips, &routes, conf.mtu).inspect_err(|e| {
            // Undo: nothing of a failed ADD may linger (the runtime may never send DEL). A
            // host interface that was there before this ADD is not ours to remove.
            if e.code != error::HOST_NAME_TAKEN {
                let _ = datapath::teardown(a);
            }
            if let Ok(l) = store.lock() {
                let _ = l.release(a);
            }
        })
    })?;
    let result = match prev {
        Some(p) => p.extend(ours),
        None => ours,
    };
    Ok(result.render(&conf.cni_version).to_string())
}

fn del(env: &Env, conf: &NetConf) -> Result<()> {
    let a = attachment(env);
    // The netns is optional on DEL (it may be gone already); it is only used to move the
    // pod's end of the pair aside, and one that is not a usable netns is simply not used.
    let netns = env
        .netns
        .as_deref()
        .filter(|p| !p.is_empty())
        .and_then(|p| netns::open_pod_netns(p).ok());
    // Host side first, then the addresses: a crash in between leaves a record DEL/GC redo.
    datapath::retire(a, netns.as_ref())?;
    if !conf.data_dir.join(&conf.name).exists() {
        return Ok(()); // nothing was ever allocated here (or the node rebooted)
    }
    Store::new(&conf.data_dir, &conf.name, conf.lock_timeout)
        .lock()?
        .release(a)?;
    Ok(())
}

fn check(env: &Env, conf: &NetConf) -> Result<()> {
    at_least(conf, "0.4.0", "CHECK")?;
    let a = attachment(env);
    let netns = netns::open_pod_netns(
        env.netns
            .as_deref()
            .expect("env::parse requires CNI_NETNS for CHECK"),
    )?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("CHECK needs prevResult"))
        .and_then(CniResult::parse)?;
    let store = Store::new(&conf.data_dir, &conf.name, conf.lock_timeout);
    let reserved = store.lock()?.lookup(a)?.ok_or_else(|| {
        CniError::new(
            UNKNOWN_CONTAINER,
            format!(
                "no allocation for container {} interface {}",
                a.container_id, a.ifname
            ),
        )
    })?;
    let in_prev: HashSet<IpAddr> = prev.ips.iter().map(|ip| ip.address.addr()).collect();
    if let Some(ip) = reserved.iter().find(|ip| !in_prev.contains(ip)) {
        return Err(CniError::new(
            error::CHECK_FAILED,
            format!("reserved address {ip} is not in prevResult"),
        ));
    }
    datapath::check(a, &netns, &reserved, &pod_routes(conf, &reserved))
}

/// The pod's routes through this attachment (each via its family's link-local gateway): the
/// default route for the primary attachment; for a secondary one (`"defaultRoute": false`)
/// the subnets of its ranges, so it never competes for the primary's default route.
fn pod_routes(conf: &NetConf, ips: &[IpAddr]) -> Vec<ipnet::IpNet> {
    let mut routes = Vec::new();
    for ip in ips {
        if conf.default_route {
            routes.push(if ip.is_ipv4() {
                "0.0.0.0/0".parse().expect("cidr")
            } else {
                "::/0".parse().expect("cidr")
            });
        } else {
            for range in conf.ranges.iter().flatten() {
                if range.subnet.addr().is_ipv4() == ip.is_ipv4() && !routes.contains(&range.subnet)
                {
                    routes.push(range.subnet);
                }
            }
        }
    }
    routes
}

fn gc(conf: &NetConf) -> Result<()> {
    at_least(conf, "1.1.0", "GC")?;
    let valid: HashSet<&Attachment> = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| CniError::config("GC needs cni.dev/valid-attachments"))?
        .iter()
        .collect();
    if conf.data_dir.join(&conf.name).exists() {
        let store = Store::new(&conf.data_dir, &conf.name, conf.lock_timeout);
        let locked = store.lock()?;
        for a in locked.attachments()? {
            if !valid.contains(&a) {
                datapath::teardown(&a)?;
                locked.release(&a)?;
            }
        }
        locked.sweep_orphans()?;
    }
    datapath::sweep_retired()?;
    Ok(())
}

fn status(conf: &NetConf) -> Result<()> {
    at_least(conf, "1.1.0", "STATUS")?;
    if conf.ranges.is_empty() {
        return Err(CniError::new(NOT_AVAILABLE, "no address ranges configured"));
    }
    let store = Store::new(&conf.data_dir, &conf.name, conf.lock_timeout);
    let free = store.lock()?.free_per_set(&conf.ranges)?;
    if let Some(i) = free.iter().position(|f| *f == 0) {
        return Err(CniError::new(
            NOT_AVAILABLE,
            format!("no free address in {}", ipam::describe_set(&conf.ranges[i])),
        ));
    }
    Ok(())
}
