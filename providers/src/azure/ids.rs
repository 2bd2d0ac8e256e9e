//! ARM resource ids: configured route tables and Kubernetes providerIDs.

use crate::{CloudError, ErrorKind};

/// A route table the cluster manages, as configured: `<resource group>/<name>` (in the
/// provider's subscription) or a full resource id.
pub fn table_id(subscription: &str, configured: &str) -> Result<String, String> {
    let configured = configured.trim().trim_end_matches('/');
    let segs: Vec<&str> = configured.split('/').filter(|s| !s.is_empty()).collect();
    let valid_part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'(' | b')'))
    };
    match segs.as_slice() {
        [rg, name] if !configured.starts_with('/') && valid_part(rg) && valid_part(name) => {
            Ok(format!(
                "/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.Network/routeTables/{name}"
            ))
        }
        [s, sub, r, rg, p, ns, t, name]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourceGroups")
                && p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Network")
                && t.eq_ignore_ascii_case("routeTables")
                && [sub, rg, name].iter().all(|x| valid_part(x)) =>
        {
            Ok(format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/routeTables/{name}"
            ))
        }
        _ => Err(format!(
            "route table {configured:?} is neither <resource group>/<name> nor /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/routeTables/<name>"
        )),
    }
}

/// What a Kubernetes node's providerID names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRef {
    /// `azure:///subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>`
    Vm { id: String },
    /// `azure:///subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachineScaleSets/<set>/virtualMachines/<index>`
    ScaleSetInstance { id: String },
}

impl NodeRef {
    pub fn id(&self) -> &str {
        match self {
            NodeRef::Vm { id } | NodeRef::ScaleSetInstance { id } => id,
        }
    }
}

pub fn parse_provider_id(provider_id: &str) -> Result<NodeRef, CloudError> {
    let invalid = || {
        CloudError::new(
            ErrorKind::Permanent,
            "InvalidProviderId",
            format!(
                "{provider_id:?} is not azure:///subscriptions/…/virtualMachines/<name> or …/virtualMachineScaleSets/<set>/virtualMachines/<index>"
            ),
        )
    };
    let path = provider_id.strip_prefix("azure://").ok_or_else(invalid)?;
    if !path.starts_with('/') {
        return Err(invalid());
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'(' | b')'))
    };
    match segs.as_slice() {
        [s, sub, r, rg, p, ns, t, name]
            if eq(s, "subscriptions")
                && eq(r, "resourceGroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(t, "virtualMachines")
                && [sub, rg, name].iter().all(|x| ok(x)) =>
        {
            Ok(NodeRef::Vm {
                id: format!(
                    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
                ),
            })
        }
        [s, sub, r, rg, p, ns, t, set, v, index]
            if eq(s, "subscriptions")
                && eq(r, "resourceGroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(t, "virtualMachineScaleSets")
                && eq(v, "virtualMachines")
                && [sub, rg, set].iter().all(|x| ok(x))
                && !index.is_empty()
                && index.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(NodeRef::ScaleSetInstance {
                id: format!(
                    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{set}/virtualMachines/{index}"
                ),
            })
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_by_short_or_full_id() {
        let full = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt";
        assert_eq!(table_id("s1", "rg/rt").unwrap(), full);
        assert_eq!(table_id("other", full).unwrap(), full);
        assert_eq!(
            table_id(
                "x",
                "/subscriptions/s1/resourcegroups/rg/providers/microsoft.network/routetables/rt/"
            )
            .unwrap(),
            full
        );
        for bad in ["rt", "/rg/rt", "a/b/c", "rg/r t", ""] {
            assert!(table_id("s", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn provider_ids_of_both_forms() {
        let vm = parse_provider_id(
            "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/node-1",
        )
        .unwrap();
        assert!(matches!(vm, NodeRef::Vm { .. }));
        let ss = parse_provider_id(
            "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/12",
        )
        .unwrap();
        assert_eq!(
            ss.id(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/12"
        );
        for bad in [
            "aws:///us-east-1a/i-1",
            "azure://subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/n",
            "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/p/virtualMachines/x",
            "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualMachines/n",
        ] {
            assert_eq!(
                parse_provider_id(bad).unwrap_err().code,
                "InvalidProviderId",
                "{bad}"
            );
        }
    }
}
