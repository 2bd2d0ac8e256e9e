//! The nftables ruleset cni-cloud owns: one `inet` table that masquerades pod traffic leaving
//! the non-masquerade CIDRs. One rule per family for the whole node (not per pod like the
//! reference ptp plugin), rendered as a single `nft -f` transaction that replaces the table
//! atomically. Pure: text out.

use std::fmt::Write as _;

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqueradeSpec {
    /// Name of the `inet` table (the only thing we create or delete).
    pub table: String,
    /// This node's pod CIDRs: the sources to masquerade.
    pub pod_cidrs: Vec<IpNet>,
    /// Destinations reached with the pod's own address (cluster + VPC/VNet + extra CIDRs).
    pub no_masquerade: Vec<IpNet>,
}

impl MasqueradeSpec {
    /// Every pod CIDR must be inside a non-masquerade CIDR of its family, or pod-to-pod
    /// traffic across nodes would be masqueraded.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_table_name(&self.table) {
            return Err(format!(
                "nftables table name {:?} must start with a letter and hold only letters, \
                 digits, '_', '-' or '.'",
                self.table
            ));
        }
        for pod in &self.pod_cidrs {
            if !self.no_masquerade.iter().any(|net| net.contains(pod)) {
                return Err(format!(
                    "the node's pod CIDR {pod} is not inside any cluster CIDR ({}); set \
                     --cluster-cidrs / CNI_CLOUD_CLUSTER_CIDRS to the cluster's pod ranges",
                    join(&self.no_masquerade)
                ));
            }
        }
        Ok(())
    }

    /// The transaction: create-if-missing, delete, recreate. `nft -f` applies it as one batch,
    /// so there is never a moment without masquerading, and a stale rule never survives.
    pub fn render_replace(&self) -> String {
        let mut out = format!("table inet {0} {{\n}}\ndelete table inet {0}\n", self.table);
        out.push_str(&self.render_table());
        out
    }

    /// The table definition (sets, then the postrouting chain).
    pub fn render_table(&self) -> String {
        let mut blocks = Vec::new();
        let mut rules = Vec::new();
        for (family, addr_type, proto) in [
            (Family::V4, "ipv4_addr", "ip"),
            (Family::V6, "ipv6_addr", "ip6"),
        ] {
            let pods = aggregate(&self.pod_cidrs, family);
            if pods.is_empty() {
                continue;
            }
            let keep = aggregate(&self.no_masquerade, family);
            let suffix = family.suffix();
            blocks.push(set_block(&format!("pod-{suffix}"), addr_type, &pods));
            let mut rule = format!("{proto} saddr @pod-{suffix}");
            if !keep.is_empty() {
                blocks.push(set_block(
                    &format!("no-masquerade-{suffix}"),
                    addr_type,
                    &keep,
                ));
                let _ = write!(rule, " {proto} daddr != @no-masquerade-{suffix}");
            }
            rule.push_str(" masquerade");
            rules.push(rule);
        }
        let mut chain = String::from(
            "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
        );
        for rule in rules {
            let _ = writeln!(chain, "\t\t{rule}");
        }
        chain.push_str("\t}\n");
        blocks.push(chain);
        format!(
            "table inet {} {{\n\tcomment \"owned by cni-cloud install: pod masquerading\"\n{}}}\n",
            self.table,
            blocks.join("\n")
        )
    }
}

/// Deletes our table in one transaction that also succeeds when it is already gone.
pub fn render_delete(table: &str) -> String {
    format!("table inet {table} {{\n}}\ndelete table inet {table}\n")
}

pub fn valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && name.len() <= 64
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// Interval sets reject overlapping elements, and the CIDR lists overlap in practice (a VPC
/// CIDR that contains the cluster CIDR), so merge first.
fn aggregate(cidrs: &[IpNet], family: Family) -> Vec<IpNet> {
    let of_family: Vec<IpNet> = cidrs
        .iter()
        .copied()
        .filter(|net| matches!(net, IpNet::V4(_)) == (family == Family::V4))
        .collect();
    IpNet::aggregate(&of_family)
}

fn set_block(name: &str, addr_type: &str, elements: &[IpNet]) -> String {
    format!(
        "\tset {name} {{\n\t\ttype {addr_type}\n\t\tflags interval\n\t\telements = {{ {} }}\n\t}}\n",
        join(elements)
    )
}

fn join(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn renders_one_rule_per_family_with_merged_sets() {
        let spec = MasqueradeSpec {
            table: "cni-cloud".into(),
            pod_cidrs: nets(&["10.244.3.0/24", "fd00:10:0:3::/64"]),
            no_masquerade: nets(&[
                "10.244.0.0/16",
                "10.0.0.0/8",
                "fd00:10::/48",
                "172.16.0.0/12",
            ]),
        };
        spec.validate().unwrap();
        let table = spec.render_table();
        assert!(
            table.contains("elements = { 10.0.0.0/8, 172.16.0.0/12 }"),
            "{table}"
        );
        assert!(table.contains("ip saddr @pod-v4 ip daddr != @no-masquerade-v4 masquerade"));
        assert!(table.contains("ip6 saddr @pod-v6 ip6 daddr != @no-masquerade-v6 masquerade"));
        let replace = spec.render_replace();
        assert!(replace.starts_with("table inet cni-cloud {\n}\ndelete table inet cni-cloud\n"));
    }

    #[test]
    fn single_stack_has_no_v6_rule() {
        let spec = MasqueradeSpec {
            table: "cni-cloud".into(),
            pod_cidrs: nets(&["10.244.3.0/24"]),
            no_masquerade: nets(&["10.244.0.0/16", "fd00::/48"]),
        };
        let table = spec.render_table();
        assert!(!table.contains("ip6 saddr"), "{table}");
        assert!(!table.contains("pod-v6"), "{table}");
    }

    #[test]
    fn pod_cidr_outside_the_cluster_is_refused() {
        let spec = MasqueradeSpec {
            table: "cni-cloud".into(),
            pod_cidrs: nets(&["192.168.5.0/24"]),
            no_masquerade: nets(&["10.244.0.0/16"]),
        };
        let err = spec.validate().unwrap_err();
        assert!(
            err.contains("192.168.5.0/24") && err.contains("--cluster-cidrs"),
            "{err}"
        );
        let bad_name = MasqueradeSpec {
            table: "1; flush ruleset".into(),
            ..spec
        };
        assert!(bad_name.validate().unwrap_err().contains("table name"));
    }
}
