//! RBAC as the API server's authorizer applies it: Roles/ClusterRoles and their bindings,
//! loaded from the deploy/ YAML, decide every request. Only ServiceAccount subjects matter
//! here (callers are identified by bearer token → ServiceAccount).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// One PolicyRule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

impl Rule {
    fn matches(&self, req: &Request<'_>) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        any(&self.api_groups, req.api_group)
            && any(&self.verbs, req.verb)
            && any(&self.resources, req.resource)
            && (self.resource_names.is_empty()
                || req
                    .name
                    .is_some_and(|n| self.resource_names.iter().any(|x| x == n)))
    }
}

/// What a request asks for, in RBAC's terms. `resource` includes the subresource
/// (`nodes/status`); `namespace` is `None` for cluster-scoped resources.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub verb: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// A ServiceAccount identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// A grant: these rules, for this subject, cluster-wide or in one namespace.
#[derive(Debug, Clone)]
struct Grant {
    subject: ServiceAccount,
    namespace: Option<String>,
    rules: Vec<Rule>,
}

/// The authorizer.
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    grants: Vec<Grant>,
}

impl Rbac {
    /// Parse every RBAC object in the given YAML files (or directories of `.yaml` files);
    /// other kinds are ignored. A binding to a role that doesn't exist grants nothing, as in
    /// Kubernetes.
    pub fn load(paths: &[impl AsRef<Path>]) -> anyhow::Result<Rbac> {
        let mut docs = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let files = if path.is_dir() {
                let mut files: Vec<_> = std::fs::read_dir(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                    .collect();
                files.sort();
                files
            } else {
                vec![path.to_path_buf()]
            };
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading RBAC file {}", file.display()))?;
                docs.extend(
                    yaml_documents(&text)
                        .with_context(|| format!("parsing YAML in {}", file.display()))?,
                );
            }
        }
        Rbac::from_objects(&docs)
    }

    pub fn from_objects(docs: &[Value]) -> anyhow::Result<Rbac> {
        let mut cluster_roles = BTreeMap::new();
        let mut roles = BTreeMap::new();
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match kind {
                "ClusterRole" => {
                    cluster_roles.insert(name, parse_rules(doc)?);
                }
                "Role" => {
                    let ns = namespace_of(doc)?;
                    roles.insert((ns, name), parse_rules(doc)?);
                }
                _ => {}
            }
        }
        let mut grants = Vec::new();
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default();
            if kind != "ClusterRoleBinding" && kind != "RoleBinding" {
                continue;
            }
            let role_kind = doc["roleRef"]["kind"].as_str().unwrap_or_default();
            let role_name = doc["roleRef"]["name"].as_str().unwrap_or_default();
            let binding_ns = (kind == "RoleBinding")
                .then(|| namespace_of(doc))
                .transpose()?;
            let rules = match (role_kind, &binding_ns) {
                ("ClusterRole", _) => cluster_roles.get(role_name).cloned(),
                ("Role", Some(ns)) => roles.get(&(ns.clone(), role_name.to_owned())).cloned(),
                _ => bail!("{kind} {:?}: invalid roleRef", doc["metadata"]["name"]),
            }
            .unwrap_or_default();
            for subject in doc["subjects"].as_array().into_iter().flatten() {
                if subject["kind"] != "ServiceAccount" {
                    continue;
                }
                let sa = ServiceAccount {
                    namespace: subject["namespace"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| binding_ns.clone())
                        .unwrap_or_else(|| "default".into()),
                    name: subject["name"].as_str().unwrap_or_default().to_owned(),
                };
                grants.push(Grant {
                    subject: sa,
                    namespace: binding_ns.clone(),
                    rules: rules.clone(),
                });
            }
        }
        Ok(Rbac { grants })
    }

    /// Kubernetes' answer: allowed if any grant bound to the subject covers the request
    /// (a namespaced grant only inside its namespace).
    pub fn allows(&self, who: &ServiceAccount, req: &Request<'_>) -> bool {
        self.grants.iter().any(|g| {
            &g.subject == who
                && match (&g.namespace, req.namespace) {
                    (None, _) => true,
                    (Some(granted), Some(asked)) => granted == asked,
                    (Some(_), None) => false,
                }
                && g.rules.iter().any(|r| r.matches(req))
        })
    }

    /// The denial message the API server writes into the 403 Status.
    pub fn forbidden_message(who: &ServiceAccount, req: &Request<'_>) -> String {
        let resource = req
            .resource
            .split_once('/')
            .map_or(req.resource, |(r, _)| r);
        let qualified = if req.api_group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{}", req.api_group)
        };
        let subject = match req.name {
            Some(n) => format!("{qualified} {n:?}"),
            None => qualified,
        };
        let scope = match req.namespace {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".to_owned(),
        };
        let resource_text = format!("resource {:?}", req.resource);
        format!(
            "{subject} is forbidden: User {:?} cannot {} {resource_text} in API group {:?} {scope}",
            who.username(),
            req.verb,
            req.api_group
        )
    }
}

/// Every document of a multi-document YAML text, as JSON values (empty ones dropped).
pub fn yaml_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    Ok(serde_saphyr::from_multiple::<Value>(text)?
        .into_iter()
        .filter(|v| !v.is_null())
        .collect())
}

fn namespace_of(doc: &Value) -> anyhow::Result<String> {
    doc["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "{} {:?} has no namespace",
                doc["kind"], doc["metadata"]["name"]
            )
        })
}

fn parse_rules(doc: &Value) -> anyhow::Result<Vec<Rule>> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut rules = Vec::new();
    for rule in doc["rules"].as_array().into_iter().flatten() {
        if rule.get("nonResourceURLs").is_some() && rule.get("resources").is_none() {
            continue;
        }
        rules.push(Rule {
            api_groups: strings(&rule["apiGroups"]),
            resources: strings(&rule["resources"]),
            verbs: strings(&rule["verbs"]),
            resource_names: strings(&rule["resourceNames"]),
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sa() -> ServiceAccount {
        ServiceAccount {
            namespace: "cni-cloud".into(),
            name: "ctl".into(),
        }
    }

    fn rbac() -> Rbac {
        Rbac::from_objects(&[
            json!({"kind":"ClusterRole","metadata":{"name":"c"},"rules":[
                {"apiGroups":[""],"resources":["nodes"],"verbs":["get","list","watch"]},
                {"apiGroups":[""],"resources":["nodes/status"],"verbs":["patch"]}]}),
            json!({"kind":"ClusterRoleBinding","metadata":{"name":"c"},
                "roleRef":{"kind":"ClusterRole","name":"c"},
                "subjects":[{"kind":"ServiceAccount","name":"ctl","namespace":"cni-cloud"}]}),
            json!({"kind":"Role","metadata":{"name":"l","namespace":"cni-cloud"},"rules":[
                {"apiGroups":["coordination.k8s.io"],"resources":["leases"],"verbs":["get","update"]}]}),
            json!({"kind":"RoleBinding","metadata":{"name":"l","namespace":"cni-cloud"},
                "roleRef":{"kind":"Role","name":"l"},
                "subjects":[{"kind":"ServiceAccount","name":"ctl"}]}),
        ])
        .unwrap()
    }

    fn req<'a>(verb: &'a str, group: &'a str, res: &'a str, ns: Option<&'a str>) -> Request<'a> {
        Request {
            verb,
            api_group: group,
            resource: res,
            namespace: ns,
            name: None,
        }
    }

    #[test]
    fn cluster_role_grants_exact_verbs_and_subresources() {
        let r = rbac();
        assert!(r.allows(&sa(), &req("watch", "", "nodes", None)));
        assert!(r.allows(&sa(), &req("patch", "", "nodes/status", None)));
        assert!(!r.allows(&sa(), &req("patch", "", "nodes", None)));
        assert!(!r.allows(&sa(), &req("delete", "", "nodes", None)));
    }

    #[test]
    fn role_binding_is_confined_to_its_namespace() {
        let r = rbac();
        let lease = |ns| req("update", "coordination.k8s.io", "leases", Some(ns));
        assert!(r.allows(&sa(), &lease("cni-cloud")));
        assert!(!r.allows(&sa(), &lease("kube-system")));
        assert!(!r.allows(
            &sa(),
            &req("create", "coordination.k8s.io", "leases", Some("cni-cloud"))
        ));
        let other = ServiceAccount {
            namespace: "cni-cloud".into(),
            name: "other".into(),
        };
        assert!(!r.allows(&other, &lease("cni-cloud")));
    }

    #[test]
    fn forbidden_message_reads_like_the_api_server() {
        let mut q = req("patch", "", "nodes/status", None);
        q.name = Some("n1");
        assert_eq!(
            Rbac::forbidden_message(&sa(), &q),
            "nodes \"n1\" is forbidden: User \"system:serviceaccount:cni-cloud:ctl\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope"
        );
    }
}
