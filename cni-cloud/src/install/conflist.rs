//! The CNI network configuration cni-cloud writes, and how to tell it apart from other
//! configs in the same directory. Pure: bytes in, bytes out.

use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::{Value, json};

/// Versions the plugin speaks, oldest first (see the plugin's VERSION answer).
pub const PLUGIN_CNI_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The conflist's default `cniVersion`: the newest libcni 1.1 (containerd 1.6/1.7, CRI-O
/// before 1.28) accepts. Those runtimes read only this field and refuse a 1.1.0 result.
pub const DEFAULT_CNI_VERSION: &str = "1.0.0";

/// The plugin `type` that marks a config as ours.
pub const PLUGIN_TYPE: &str = "cni-cloud";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflistSpec {
    pub network_name: String,
    /// `cniVersion`: what runtimes whose libcni predates 1.2 use.
    pub cni_version: String,
    /// `cniVersions`: libcni >= 1.2 picks the newest it supports from this list.
    pub cni_versions: Vec<String>,
    pub data_dir: PathBuf,
    pub mtu: Option<u32>,
    pub portmap: bool,
    /// The Node's spec.podCIDRs (one per family).
    pub pod_cidrs: Vec<IpNet>,
}

impl ConflistSpec {
    /// Checks what the runtime would otherwise only reject at the first pod (the pod CIDRs
    /// come from the Node, already validated).
    pub fn validate(&self) -> Result<(), String> {
        if !PLUGIN_CNI_VERSIONS.contains(&self.cni_version.as_str()) {
            return Err(format!(
                "cniVersion {:?} is not one the plugin speaks ({})",
                self.cni_version,
                PLUGIN_CNI_VERSIONS.join(", ")
            ));
        }
        if let Some(v) = self
            .cni_versions
            .iter()
            .find(|v| !PLUGIN_CNI_VERSIONS.contains(&v.as_str()))
        {
            return Err(format!(
                "cniVersions entry {v:?} is not one the plugin speaks ({})",
                PLUGIN_CNI_VERSIONS.join(", ")
            ));
        }
        if !self.cni_versions.is_empty() && !self.cni_versions.contains(&self.cni_version) {
            return Err(format!(
                "cniVersion {} is not in cniVersions ({}): a runtime would use a version the \
                 list does not offer",
                self.cni_version,
                self.cni_versions.join(", ")
            ));
        }
        if self.network_name.is_empty()
            || !self
                .network_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(format!(
                "network name {:?} must be letters, digits, '_', '.' or '-'",
                self.network_name
            ));
        }
        if let Some(mtu) = self.mtu
            && !(576..=65535).contains(&mtu)
        {
            return Err(format!("MTU {mtu} is outside 576..=65535"));
        }
        Ok(())
    }

    /// The conflist, pretty-printed with a trailing newline so `cat` shows it nicely.
    pub fn render(&self) -> Vec<u8> {
        // host-local's `ranges` shape: one inner list per address family (dual-stack = two).
        let ranges: Vec<Value> = [true, false]
            .into_iter()
            .map(|v4| {
                self.pod_cidrs
                    .iter()
                    .filter(|cidr| matches!(cidr, IpNet::V4(_)) == v4)
                    .map(|cidr| json!({ "subnet": cidr.to_string() }))
                    .collect::<Vec<_>>()
            })
            .filter(|family| !family.is_empty())
            .map(Value::Array)
            .collect();
        let mut plugin = json!({
            "type": PLUGIN_TYPE,
            "ranges": ranges,
            "dataDir": self.data_dir,
            // The runtime's ipRanges (the kubelet's PodCIDR) win over `ranges` when present.
            "capabilities": { "ipRanges": true },
        });
        if let Some(mtu) = self.mtu {
            plugin["mtu"] = json!(mtu);
        }
        let mut plugins = vec![plugin];
        if self.portmap {
            plugins.push(json!({
                "type": "portmap",
                "capabilities": { "portMappings": true },
            }));
        }
        // Runtimes with libcni >= 1.2 pick the newest entry of cniVersions they support;
        // older ones read cniVersion. Listed oldest first, as the plugin's VERSION does.
        let versions: Vec<&str> = PLUGIN_CNI_VERSIONS
            .iter()
            .copied()
            .filter(|v| self.cni_versions.iter().any(|c| c == v))
            .collect();
        let conflist = json!({
            "cniVersion": self.cni_version,
            "cniVersions": versions,
            "name": self.network_name,
            "plugins": plugins,
        });
        let mut bytes = serde_json::to_vec_pretty(&conflist).expect("a JSON value serializes");
        bytes.push(b'\n');
        bytes
    }
}

/// Whether libcni (and so containerd and CRI-O) would load this file name as a network config.
pub fn is_loadable_config_name(name: &str) -> bool {
    [".conf", ".conflist", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext) && name.len() > ext.len())
}

/// Whether a config's contents belong to cni-cloud (any version of it): a single plugin or
/// a list whose plugin is `cni-cloud`. Unparseable files are not ours.
pub fn is_cni_cloud_config(contents: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(contents) else {
        return false;
    };
    let is_ours = |plugin: &Value| plugin.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE);
    is_ours(&value)
        || value
            .get("plugins")
            .and_then(Value::as_array)
            .is_some_and(|plugins| plugins.iter().any(is_ours))
}

/// What is in the conf dir besides the file we are about to write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfDirScan {
    /// Older cni-cloud configs under another name: replaced by ours, so there is only one.
    pub stale_own: Vec<String>,
    /// Other networks' configs: a second CNI on the node.
    pub foreign: Vec<String>,
}

/// Sorts the loadable configs of a directory listing (name, contents) into ours and foreign.
pub fn scan_conf_dir<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    our_name: &str,
) -> ConfDirScan {
    let mut scan = ConfDirScan::default();
    for (name, contents) in entries {
        if name == our_name || !is_loadable_config_name(name) {
            continue;
        }
        if is_cni_cloud_config(contents) {
            scan.stale_own.push(name.to_owned());
        } else {
            scan.foreign.push(name.to_owned());
        }
    }
    scan.stale_own.sort();
    scan.foreign.sort();
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConflistSpec {
        ConflistSpec {
            network_name: "cni-cloud".into(),
            cni_version: DEFAULT_CNI_VERSION.into(),
            cni_versions: PLUGIN_CNI_VERSIONS.iter().map(|v| v.to_string()).collect(),
            data_dir: "/run/cni-cloud".into(),
            mtu: Some(9001),
            portmap: true,
            pod_cidrs: vec![
                "10.244.3.0/24".parse().unwrap(),
                "fd00:10:0:3::/64".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn renders_dual_stack_ranges_versions_and_chain() {
        let value: Value = serde_json::from_slice(&spec().render()).unwrap();
        // libcni < 1.2 reads cniVersion and must get one it parses; >= 1.2 picks 1.1.0.
        assert_eq!(value["cniVersion"], "1.0.0");
        assert_eq!(
            value["cniVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
        let plugin = &value["plugins"][0];
        assert_eq!(plugin["type"], "cni-cloud");
        assert_eq!(
            plugin["ranges"],
            json!([[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:10:0:3::/64"}]])
        );
        assert_eq!(plugin["dataDir"], "/run/cni-cloud");
        assert_eq!(plugin["mtu"], 9001);
        assert_eq!(value["plugins"][1]["type"], "portmap");
        assert_eq!(value["plugins"][1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn single_family_without_portmap_or_mtu() {
        let spec = ConflistSpec {
            pod_cidrs: vec!["fd00::/64".parse().unwrap()],
            portmap: false,
            mtu: None,
            cni_version: "0.4.0".into(),
            cni_versions: vec!["1.0.0".into(), "0.4.0".into(), "0.3.1".into()],
            ..spec()
        };
        let value: Value = serde_json::from_slice(&spec.render()).unwrap();
        assert_eq!(value["plugins"].as_array().unwrap().len(), 1);
        assert_eq!(
            value["plugins"][0]["ranges"],
            json!([[{"subnet": "fd00::/64"}]])
        );
        assert!(value["plugins"][0].get("mtu").is_none());
        assert_eq!(value["cniVersion"], "0.4.0");
        assert_eq!(value["cniVersions"], json!(["0.3.1", "0.4.0", "1.0.0"]));
    }

    #[test]
    fn validation_names_the_problem() {
        let bad = ConflistSpec {
            cni_version: "2.0.0".into(),
            ..spec()
        };
        assert!(bad.validate().unwrap_err().contains("2.0.0"));
        let bad = ConflistSpec {
            cni_versions: vec!["1.0.0".into(), "1.2.0".into()],
            ..spec()
        };
        assert!(bad.validate().unwrap_err().contains("1.2.0"));
        let bad = ConflistSpec {
            cni_version: "1.1.0".into(),
            cni_versions: vec!["0.4.0".into(), "1.0.0".into()],
            ..spec()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("cniVersion 1.1.0 is not in cniVersions")
        );
        let bad = ConflistSpec {
            mtu: Some(100),
            ..spec()
        };
        assert!(bad.validate().unwrap_err().contains("MTU 100"));
        let bad = ConflistSpec {
            network_name: "a b".into(),
            ..spec()
        };
        assert!(bad.validate().is_err());
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn scan_separates_ours_from_foreign() {
        let ours = spec().render();
        let old_single = br#"{"cniVersion":"0.4.0","name":"x","type":"cni-cloud"}"#;
        let aws = br#"{"cniVersion":"0.4.0","name":"aws-cni","plugins":[{"type":"aws-cni"}]}"#;
        let entries: Vec<(&str, &[u8])> = vec![
            ("05-cni-cloud.conflist", &ours),
            ("01-old.conf", old_single),
            ("10-aws.conflist", aws),
            ("99-broken.json", b"{not json"),
            (".05-cni-cloud.conflist.cni-cloud-tmp.7", b""),
            ("10-aws.conflist.cni-cloud-disabled", aws),
            ("README", b"hello"),
        ];
        let scan = scan_conf_dir(entries, "05-cni-cloud.conflist");
        assert_eq!(scan.stale_own, vec!["01-old.conf"]);
        assert_eq!(scan.foreign, vec!["10-aws.conflist", "99-broken.json"]);
    }
}
