//! The installation itself, between the edges: pre-flight every change, then copy the plugin,
//! switch on forwarding, install the masquerade table, and write the CNI config last — the
//! config is what tells the kubelet the node's network is ready. Afterwards `reassert` puts
//! back whatever someone removed or changed.

use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::conflist::{self, ConflistSpec};
use super::error::InstallError;
use super::files::{self, Fingerprint};
use super::firewall::Firewall;
use super::masquerade::{self, MasqueradeSpec};
use super::sysctl::{IPV4_FORWARD, IPV6_FORWARD, Sysctls};

/// Name of the plugin binary in the CNI bin dir (the conflist's `type`).
pub const PLUGIN_BINARY: &str = conflist::PLUGIN_TYPE;
/// Suffix given to foreign configs moved aside by `--replace-conflicting`.
pub const DISABLED_SUFFIX: &str = ".cni-cloud-disabled";

/// Everything the installer needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub conflist_name: String,
    pub source_binary: PathBuf,
    pub data_dir: PathBuf,
    pub nft_table: String,
    pub masquerade: bool,
    pub no_masquerade: Vec<IpNet>,
    pub portmap: bool,
    pub replace_conflicting: bool,
    pub conflist: ConflistSpec,
}

impl Settings {
    fn binary_path(&self) -> PathBuf {
        self.bin_dir.join(PLUGIN_BINARY)
    }

    fn conflist_path(&self) -> PathBuf {
        self.conf_dir.join(&self.conflist_name)
    }

    pub fn masquerade_spec(&self) -> MasqueradeSpec {
        MasqueradeSpec {
            table: self.nft_table.clone(),
            pod_cidrs: self.conflist.pod_cidrs.clone(),
            no_masquerade: self.no_masquerade.clone(),
        }
    }

    fn has_ipv6_pods(&self) -> bool {
        self.conflist
            .pod_cidrs
            .iter()
            .any(|net| matches!(net, IpNet::V6(_)))
    }

    fn forwarding_keys(&self) -> Vec<&'static str> {
        let mut keys = vec![IPV4_FORWARD];
        if self.has_ipv6_pods() {
            keys.push(IPV6_FORWARD);
        }
        keys
    }
}

/// Checks that need no pod CIDRs: the host paths. Run before waiting for the Node so a
/// misconfigured mount fails at once.
pub fn preflight_paths(settings: &Settings) -> Result<(), InstallError> {
    files::check_writable_dir("CNI bin dir", &settings.bin_dir)?;
    files::check_writable_dir("CNI conf dir", &settings.conf_dir)?;
    std::fs::File::open(&settings.source_binary).map_err(InstallError::io(
        "plugin binary to install",
        &settings.source_binary,
    ))?;
    if settings.portmap && !settings.bin_dir.join("portmap").exists() {
        return Err(InstallError::Config(format!(
            "--portmap chains the reference portmap plugin, but {} does not exist; install \
             containernetworking-plugins on the node or drop --portmap",
            settings.bin_dir.join("portmap").display()
        )));
    }
    if settings.portmap {
        check_portmap_serves(settings)?;
    }
    let scan = scan_conf_dir(settings)?;
    if !scan.foreign.is_empty() && !settings.replace_conflicting {
        return Err(InstallError::Conflicting {
            dir: settings.conf_dir.clone(),
            files: scan.foreign.join(", "),
        });
    }
    Ok(())
}

/// The cniVersions the `portmap` in the bin dir serves: its answer to `VERSION`.
pub fn portmap_versions(bin_dir: &Path) -> Result<Vec<String>, InstallError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let path = bin_dir.join("portmap");
    let refuse = |why: String| {
        InstallError::Config(format!(
            "--portmap: cannot ask {} which CNI versions it serves ({why}); install \
             containernetworking-plugins on the node or drop --portmap",
            path.display()
        ))
    };
    let mut child = Command::new(&path)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| refuse(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(br#"{"cniVersion":"0.3.0"}"#);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| refuse(e.to_string()))?;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        refuse(format!(
            "VERSION exited with {} and printed {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    })?;
    answer["supportedVersions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| {
            refuse(format!(
                "VERSION answered {answer} without supportedVersions"
            ))
        })
}

/// Pre-flight of `--portmap`: the chained portmap must serve every version a runtime may
/// use from the conflist (`cniVersion`, and each of `cniVersions`). Otherwise its ADD fails
/// and so does its DEL, which stops libcni's DEL before it reaches cni-cloud: every retry of
/// the sandbox leaves an address and a veth behind.
fn check_portmap_serves(settings: &Settings) -> Result<(), InstallError> {
    let served = portmap_versions(&settings.bin_dir)?;
    let spec = &settings.conflist;
    let mut missing: Vec<&str> = std::iter::once(&spec.cni_version)
        .chain(&spec.cni_versions)
        .filter(|v| !served.contains(v))
        .map(String::as_str)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let usable: Vec<&str> = conflist::PLUGIN_CNI_VERSIONS
        .iter()
        .copied()
        .filter(|v| served.iter().any(|s| s == v))
        .collect();
    Err(InstallError::Config(format!(
        "--portmap: {} serves CNI versions {}, not {}, which the conflist offers; a runtime \
         using it would fail every pod's ADD and DEL. Set --cni-versions {} (and \
         --cni-version at most {}), or install a newer portmap",
        settings.bin_dir.join("portmap").display(),
        served.join(", "),
        missing.join(", "),
        usable.join(","),
        usable.last().copied().unwrap_or("none"),
    )))
}

fn scan_conf_dir(settings: &Settings) -> Result<conflist::ConfDirScan, InstallError> {
    let entries = files::read_dir_files(&settings.conf_dir)?;
    Ok(conflist::scan_conf_dir(
        entries
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice())),
        &settings.conflist_name,
    ))
}

/// What `reassert` compares against: the state as installed.
#[derive(Debug)]
pub struct Installed {
    binary: Option<Fingerprint>,
    conflist: Vec<u8>,
    /// The table as the kernel should list it; `None` when masquerading is off.
    nft_listing: Option<String>,
    nft_transaction: Option<String>,
    /// Whether `nft list` prints exactly our rendering (then `nft_listing` is that rendering
    /// and never changes).
    nft_canonical: bool,
}

/// What to compare the live table against, and whether it is fixed. When this `nft` lists
/// the table exactly as we render it (checked once, at install), the reference is our
/// rendering for good, so an edit racing with a later read-back can never become the
/// reference. Otherwise (another nft version's formatting) it is the read-back after applying.
fn expected_listing(rendered: &str, read_back: Option<String>) -> (Option<String>, bool) {
    match read_back {
        Some(listing) if listing == rendered => (Some(listing), true),
        Some(listing) => {
            tracing::debug!(
                "nft formats the table differently from our rendering; comparing against its listing"
            );
            (Some(listing), false)
        }
        None => (None, false),
    }
}

/// The installed binary's fingerprint, taken *before* comparing its contents with the
/// source: a change after the comparison alters the fingerprint, a change before it fails the
/// comparison (`None` forces a full check on the next pass). So no edit can slip in between
/// a repair and the fingerprint it is judged by.
fn verified_fingerprint(source: &Path, installed: &Path) -> Option<Fingerprint> {
    let fingerprint = files::fingerprint(installed)?;
    files::same_contents(source, installed)
        .unwrap_or(false)
        .then_some(fingerprint)
}

/// Something `reassert` had to put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    Binary,
    Sysctl(&'static str),
    NftTable,
    MovedAside(String),
    Conflist,
}

/// Installs on a node whose pod CIDRs are known. Every check comes first; if a change still
/// fails, the changes of this run are undone so the host is left as it was.
pub fn install(
    settings: &Settings,
    sysctls: &Sysctls,
    firewall: &impl Firewall,
) -> Result<Installed, InstallError> {
    // Pre-flight (no changes).
    preflight_paths(settings)?;
    settings.conflist.validate().map_err(InstallError::Config)?;
    let conflist_bytes = settings.conflist.render();
    let spec = settings.masquerade_spec();
    let nft_rendered = spec.render_table();
    let nft_transaction = if settings.masquerade {
        spec.validate().map_err(InstallError::Config)?;
        let transaction = spec.render_replace();
        firewall.check(&transaction)?;
        Some(transaction)
    } else {
        None
    };
    for key in settings.forwarding_keys() {
        sysctls.check_writable(key)?;
    }
    let scan = scan_conf_dir(settings)?;

    // Changes, in the order that keeps the node consistent: the plugin before anything that
    // refers to it, and the config last.
    let mut undo = Undo::default();
    let result = (|| {
        let binary_path = settings.binary_path();
        let binary_existed = binary_path.exists();
        files::copy_atomically(&settings.source_binary, &settings.bin_dir, PLUGIN_BINARY)?;
        if !binary_existed {
            undo.created_files.push(binary_path.clone());
        }
        tracing::info!(path = %binary_path.display(), "installed the plugin binary");

        for key in settings.forwarding_keys() {
            let before = sysctls.read(key)?;
            if sysctls.ensure(key, "1")? {
                undo.sysctls.push((key, before));
                tracing::info!(sysctl = key, "enabled forwarding");
            }
        }

        let (nft_listing, nft_canonical) = match &nft_transaction {
            Some(transaction) => {
                if firewall.list_table(&settings.nft_table)?.is_none() {
                    undo.created_table = Some(settings.nft_table.clone());
                }
                firewall.apply(transaction)?;
                tracing::info!(table = %settings.nft_table, "masquerading pod traffic leaving the non-masquerade CIDRs");
                expected_listing(&nft_rendered, firewall.list_table(&settings.nft_table)?)
            }
            None => (None, false),
        };

        for name in &scan.foreign {
            let from = settings.conf_dir.join(name);
            let to = settings.conf_dir.join(format!("{name}{DISABLED_SUFFIX}"));
            files::rename(&from, &to)?;
            undo.renamed.push((to, from));
            tracing::warn!(file = %name, "moved a conflicting CNI config aside (--replace-conflicting)");
        }

        files::write_bytes_atomically(
            &settings.conf_dir,
            &settings.conflist_name,
            0o644,
            &conflist_bytes,
        )?;
        tracing::info!(path = %settings.conflist_path().display(), "wrote the CNI config: the node network is ready");

        // Only one cni-cloud config may exist; older ones under other names go once ours is in.
        for name in &scan.stale_own {
            files::remove(&settings.conf_dir.join(name))?;
            tracing::info!(file = %name, "removed an older cni-cloud config");
        }

        Ok(Installed {
            binary: verified_fingerprint(&settings.source_binary, &binary_path),
            conflist: conflist_bytes.clone(),
            nft_listing,
            nft_transaction: nft_transaction.clone(),
            nft_canonical,
        })
    })();
    if result.is_err() {
        undo.run(firewall, sysctls);
    }
    result
}

/// What one `install` run changed, to put back if a later step fails.
#[derive(Default)]
struct Undo {
    created_files: Vec<PathBuf>,
    sysctls: Vec<(&'static str, String)>,
    created_table: Option<String>,
    renamed: Vec<(PathBuf, PathBuf)>,
}

impl Undo {
    fn run(self, firewall: &impl Firewall, sysctls: &Sysctls) {
        for (from, to) in self.renamed.iter().rev() {
            let _ = files::rename(from, to);
        }
        if let Some(table) = &self.created_table {
            let _ = firewall.apply(&masquerade::render_delete(table));
        }
        for (key, value) in &self.sysctls {
            let _ = std::fs::write(sysctls.root.join(key), value);
        }
        for path in &self.created_files {
            let _ = files::remove(path);
        }
    }
}

/// Puts back whatever was removed or changed since `install`, in install order. Each check is
/// cheap when nothing changed: a stat, a small read, one `nft list`.
pub fn reassert(
    settings: &Settings,
    installed: &mut Installed,
    sysctls: &Sysctls,
    firewall: &impl Firewall,
) -> Result<Vec<Repair>, InstallError> {
    let mut repairs = Vec::new();

    let binary_path = settings.binary_path();
    let now = files::fingerprint(&binary_path);
    if now.is_none() || now != installed.binary {
        let same = now.is_some()
            && files::same_contents(&settings.source_binary, &binary_path).unwrap_or(false);
        if !same {
            files::copy_atomically(&settings.source_binary, &settings.bin_dir, PLUGIN_BINARY)?;
            repairs.push(Repair::Binary);
        }
        installed.binary = verified_fingerprint(&settings.source_binary, &binary_path);
    }

    for key in settings.forwarding_keys() {
        if sysctls.ensure(key, "1")? {
            repairs.push(Repair::Sysctl(key));
        }
    }

    if let Some(transaction) = &installed.nft_transaction {
        let listing = firewall.list_table(&settings.nft_table)?;
        if listing.is_none() || listing != installed.nft_listing {
            firewall.apply(transaction)?;
            if !installed.nft_canonical {
                installed.nft_listing = firewall.list_table(&settings.nft_table)?;
            }
            repairs.push(Repair::NftTable);
        }
    }

    let scan = scan_conf_dir(settings)?;
    for name in scan.foreign {
        if settings.replace_conflicting {
            let from = settings.conf_dir.join(&name);
            files::rename(
                &from,
                &settings.conf_dir.join(format!("{name}{DISABLED_SUFFIX}")),
            )?;
            repairs.push(Repair::MovedAside(name));
        } else if name.as_str() < settings.conflist_name.as_str() {
            // It sorts first, so the runtime now uses it instead of ours. Refusing to touch it
            // is the contract; say loudly what happened.
            tracing::error!(file = %name, "a foreign CNI config now sorts before ours and takes over pod networking; remove it or run with --replace-conflicting");
        }
    }
    for name in scan.stale_own {
        files::remove(&settings.conf_dir.join(name))?;
    }

    let current = std::fs::read(settings.conflist_path()).ok();
    if current.as_deref() != Some(installed.conflist.as_slice()) {
        files::write_bytes_atomically(
            &settings.conf_dir,
            &settings.conflist_name,
            0o644,
            &installed.conflist,
        )?;
        repairs.push(Repair::Conflist);
    }
    Ok(repairs)
}

/// Removes cni-cloud from the node: the config first (no new pod uses the plugin), then the
/// masquerade table, then the binary (so a runtime still tearing a pod down can run it until
/// the end). Forwarding stays on: other software may rely on it.
pub fn uninstall(
    bin_dir: &Path,
    conf_dir: &Path,
    nft_table: &str,
    firewall: &impl Firewall,
) -> Result<(), InstallError> {
    files::check_writable_dir("CNI conf dir", conf_dir)?;
    files::check_writable_dir("CNI bin dir", bin_dir)?;
    let entries = files::read_dir_files(conf_dir)?;
    let ours: Vec<&String> = entries
        .iter()
        .filter(|(name, bytes)| {
            conflist::is_loadable_config_name(name) && conflist::is_cni_cloud_config(bytes)
        })
        .map(|(name, _)| name)
        .collect();
    for name in ours {
        files::remove(&conf_dir.join(name))?;
        tracing::info!(file = %name, "removed the CNI config");
    }
    if firewall.list_table(nft_table)?.is_some() {
        firewall.apply(&masquerade::render_delete(nft_table))?;
        tracing::info!(table = nft_table, "removed the nftables table");
    }
    if files::remove(&bin_dir.join(PLUGIN_BINARY))? {
        tracing::info!(path = %bin_dir.join(PLUGIN_BINARY).display(), "removed the plugin binary");
    }
    let disabled: Vec<&String> = entries
        .iter()
        .map(|(name, _)| name)
        .filter(|name| name.ends_with(DISABLED_SUFFIX))
        .collect();
    if !disabled.is_empty() {
        tracing::warn!(files = ?disabled, "configs moved aside by --replace-conflicting are left disabled; rename them back to re-enable that network");
    }
    Ok(())
}

/// The readiness check: the plugin is executable and our config is in place.
pub fn check_installed(
    bin_dir: &Path,
    conf_dir: &Path,
    conflist_name: &str,
) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let binary = bin_dir.join(PLUGIN_BINARY);
    let meta = std::fs::metadata(&binary)
        .map_err(|err| InstallError::NotInstalled(format!("{}: {err}", binary.display())))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(InstallError::NotInstalled(format!(
            "{} is not an executable file",
            binary.display()
        )));
    }
    let path = conf_dir.join(conflist_name);
    let contents = std::fs::read(&path)
        .map_err(|err| InstallError::NotInstalled(format!("{}: {err}", path.display())))?;
    if !conflist::is_cni_cloud_config(&contents) {
        return Err(InstallError::NotInstalled(format!(
            "{} is not a cni-cloud config",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::fs;

    /// Records transactions and keeps the "kernel" table as text; can be told to fail.
    #[derive(Default)]
    struct FakeFirewall {
        table: RefCell<Option<String>>,
        applied: RefCell<Vec<String>>,
        fail_apply: bool,
    }

    impl Firewall for FakeFirewall {
        fn check(&self, _transaction: &str) -> Result<(), InstallError> {
            Ok(())
        }
        fn apply(&self, transaction: &str) -> Result<(), InstallError> {
            if self.fail_apply && !transaction.ends_with("delete table inet cni-cloud\n") {
                return Err(InstallError::Nft(
                    "Could not process rule: No buffer space".into(),
                ));
            }
            self.applied.borrow_mut().push(transaction.to_owned());
            // The last `table` block of the transaction is what the kernel ends up with.
            *self.table.borrow_mut() = transaction
                .rfind("delete table inet cni-cloud\n")
                .map(|at| {
                    transaction[at..]
                        .trim_start_matches("delete table inet cni-cloud\n")
                        .to_owned()
                })
                .filter(|rest| !rest.is_empty());
            Ok(())
        }
        fn list_table(&self, _table: &str) -> Result<Option<String>, InstallError> {
            Ok(self.table.borrow().clone())
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        settings: Settings,
        sysctls: Sysctls,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["bin", "conf", "sys/net/ipv4", "sys/net/ipv6/conf/all"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        fs::write(root.join("sys/net/ipv4/ip_forward"), "0\n").unwrap();
        fs::write(root.join("sys/net/ipv6/conf/all/forwarding"), "0\n").unwrap();
        fs::write(root.join("plugin"), b"\x7fELF plugin").unwrap();
        let settings = Settings {
            bin_dir: root.join("bin"),
            conf_dir: root.join("conf"),
            conflist_name: "05-cni-cloud.conflist".into(),
            source_binary: root.join("plugin"),
            data_dir: "/run/cni-cloud".into(),
            nft_table: "cni-cloud".into(),
            masquerade: true,
            no_masquerade: vec!["10.244.0.0/16".parse().unwrap()],
            portmap: false,
            replace_conflicting: true,
            conflist: ConflistSpec {
                network_name: "cni-cloud".into(),
                cni_version: "1.0.0".into(),
                cni_versions: vec!["1.0.0".into(), "1.1.0".into()],
                data_dir: "/run/cni-cloud".into(),
                mtu: None,
                portmap: false,
                pod_cidrs: vec!["10.244.1.0/24".parse().unwrap()],
            },
        };
        let sysctls = Sysctls {
            root: root.join("sys"),
        };
        Fixture {
            dir,
            settings,
            sysctls,
        }
    }

    fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_failure_half_way_undoes_this_runs_changes() {
        let f = fixture();
        let foreign = f.settings.conf_dir.join("10-other.conflist");
        fs::write(
            &foreign,
            br#"{"name":"other","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        let (bin_before, conf_before) =
            (listing(&f.settings.bin_dir), listing(&f.settings.conf_dir));
        let firewall = FakeFirewall {
            fail_apply: true,
            ..Default::default()
        };

        let err = install(&f.settings, &f.sysctls, &firewall).unwrap_err();
        assert!(err.to_string().contains("No buffer space"), "{err}");
        assert_eq!(
            listing(&f.settings.bin_dir),
            bin_before,
            "the copied binary is removed"
        );
        assert_eq!(
            listing(&f.settings.conf_dir),
            conf_before,
            "no config, foreign one untouched"
        );
        assert_eq!(
            f.sysctls.read(IPV4_FORWARD).unwrap(),
            "0",
            "forwarding restored"
        );
        assert!(firewall.table.borrow().is_none());
        drop(f.dir);
    }

    #[test]
    fn reassert_repairs_only_what_changed() {
        let f = fixture();
        let firewall = FakeFirewall::default();
        let mut installed = install(&f.settings, &f.sysctls, &firewall).unwrap();
        // The foreign config was moved aside by --replace-conflicting; nothing else to do.
        assert_eq!(
            reassert(&f.settings, &mut installed, &f.sysctls, &firewall).unwrap(),
            vec![]
        );
        let applied = firewall.applied.borrow().len();

        *firewall.table.borrow_mut() = None;
        fs::remove_file(f.settings.conf_dir.join("05-cni-cloud.conflist")).unwrap();
        fs::write(f.sysctls.root.join(IPV4_FORWARD), "0").unwrap();
        fs::write(
            f.settings.conf_dir.join("00-sneaky.conf"),
            br#"{"type":"bridge"}"#,
        )
        .unwrap();
        let repairs = reassert(&f.settings, &mut installed, &f.sysctls, &firewall).unwrap();
        assert_eq!(
            repairs,
            vec![
                Repair::Sysctl(IPV4_FORWARD),
                Repair::NftTable,
                Repair::MovedAside("00-sneaky.conf".into()),
                Repair::Conflist
            ]
        );
        assert_eq!(firewall.applied.borrow().len(), applied + 1);
        assert!(
            f.settings
                .conf_dir
                .join("00-sneaky.conf.cni-cloud-disabled")
                .exists()
        );

        // Touching the binary without changing it is not a repair; changing it is.
        let binary = f.settings.bin_dir.join(PLUGIN_BINARY);
        fs::write(&binary, fs::read(&f.settings.source_binary).unwrap()).unwrap();
        assert_eq!(
            reassert(&f.settings, &mut installed, &f.sysctls, &firewall).unwrap(),
            vec![]
        );
        fs::write(&binary, b"not the plugin").unwrap();
        assert_eq!(
            reassert(&f.settings, &mut installed, &f.sysctls, &firewall).unwrap(),
            vec![Repair::Binary]
        );
        assert_eq!(
            fs::read(&binary).unwrap(),
            fs::read(&f.settings.source_binary).unwrap()
        );
    }

    #[test]
    fn older_cni_cloud_configs_under_other_names_are_replaced_by_ours() {
        let f = fixture();
        let old = f.settings.conf_dir.join("10-cni-cloud.conf");
        fs::write(
            &old,
            br#"{"cniVersion":"0.4.0","name":"cni-cloud","type":"cni-cloud"}"#,
        )
        .unwrap();
        install(&f.settings, &f.sysctls, &FakeFirewall::default()).unwrap();
        let names: Vec<String> = listing(&f.settings.conf_dir)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["05-cni-cloud.conflist"]);
    }
}
