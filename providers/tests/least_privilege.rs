//! Least privilege, proven: the identities terraform/ creates grant exactly the cloud
//! operations the providers declare they can call (`aws::OPERATIONS`, `azure::OPERATIONS`,
//! which the providers' own tests hold to the calls they make). Adding a cloud call without
//! updating the identity, or granting one the code never makes, fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("providers/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn read_json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// A string or an array of strings (IAM's `Action` and `Resource` take both forms).
fn strings(value: &Value, what: &str) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .unwrap_or_else(|| panic!("{what}: {v} is not a string"))
                    .to_owned()
            })
            .collect(),
        other => panic!("{what}: {other} is neither a string nor an array of strings"),
    }
}

/// Every element once: a duplicate hides a typo in one of the two copies.
fn unique_set(items: &[String], what: &str) -> BTreeSet<String> {
    let set: BTreeSet<String> = items.iter().cloned().collect();
    assert_eq!(
        set.len(),
        items.len(),
        "{what} lists an entry twice: {items:?}"
    );
    set
}

fn assert_same(granted: &BTreeSet<String>, called: &[&str], identity: &str, code: &str) {
    let called: Vec<String> = called.iter().map(|s| (*s).to_owned()).collect();
    let called = unique_set(&called, code);
    let missing: Vec<_> = called.difference(granted).collect();
    let extra: Vec<_> = granted.difference(&called).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{identity} and {code} differ.\n  called by the code but not granted: {missing:?}\n  granted but never called: {extra:?}"
    );
}

const AWS_POLICY: &str = "terraform/aws/modules/iam/policy.json";
const AWS_IAM_MAIN: &str = "terraform/aws/modules/iam/main.tf";
const AZURE_ROLE: &str = "terraform/azure/modules/identity/role-actions.json";
const AZURE_IDENTITY_MAIN: &str = "terraform/azure/modules/identity/main.tf";

struct Statement {
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
    condition: Option<Value>,
}

fn aws_statements() -> Vec<Statement> {
    let policy = read_json(AWS_POLICY);
    assert_eq!(
        policy["Version"], "2012-10-17",
        "{AWS_POLICY}: policy version"
    );
    let statements = policy["Statement"]
        .as_array()
        .unwrap_or_else(|| panic!("{AWS_POLICY}: Statement is not an array"));
    statements
        .iter()
        .map(|s| {
            let sid = s["Sid"].as_str().unwrap_or("<no Sid>").to_owned();
            // Allow-only and no NotAction / NotResource: their meaning is "everything but",
            // which no equality with a list of calls can bound.
            assert_eq!(
                s["Effect"], "Allow",
                "{AWS_POLICY} {sid}: only Allow statements"
            );
            for key in ["NotAction", "NotResource", "NotPrincipal"] {
                assert!(
                    s.get(key).is_none(),
                    "{AWS_POLICY} {sid}: {key} is not allowed"
                );
            }
            Statement {
                actions: strings(&s["Action"], &sid),
                resources: strings(&s["Resource"], &sid),
                condition: s.get("Condition").cloned(),
                sid,
            }
        })
        .collect()
}

#[test]
fn aws_policy_grants_exactly_the_ec2_actions_the_provider_calls() {
    let actions: Vec<String> = aws_statements()
        .into_iter()
        .flat_map(|s| s.actions)
        .collect();
    for action in &actions {
        assert!(
            !action.contains('*'),
            "{AWS_POLICY}: wildcard action {action:?} grants more than the provider calls"
        );
    }
    let granted = unique_set(&actions, AWS_POLICY);
    assert_same(
        &granted,
        cni_cloud_providers::aws::OPERATIONS,
        AWS_POLICY,
        "cni_cloud_providers::aws::OPERATIONS",
    );
}

/// EC2 supports resource-level permissions for the route and interface writes, so those are
/// limited to resources carrying the cluster tag. Describe* support none: `*` is the only
/// resource they accept.
#[test]
fn aws_writes_are_scoped_by_the_cluster_tag() {
    let tag_condition = serde_json::json!({
        "Null": { "aws:ResourceTag/${cluster_tag_key}": "false" }
    });
    for s in aws_statements() {
        let reads = s.actions.iter().all(|a| a.starts_with("ec2:Describe"));
        let writes = s.actions.iter().all(|a| !a.starts_with("ec2:Describe"));
        assert!(
            reads || writes,
            "{AWS_POLICY} {}: mixes Describe* with writes; they need different scoping",
            s.sid
        );
        if reads {
            assert_eq!(
                s.resources,
                ["*"],
                "{AWS_POLICY} {}: Describe* take *",
                s.sid
            );
            continue;
        }
        assert_eq!(
            s.condition.as_ref(),
            Some(&tag_condition),
            "{AWS_POLICY} {}: writes must require the cluster tag",
            s.sid
        );
        for resource in &s.resources {
            assert!(
                resource.starts_with("arn:${partition}:ec2:${region}:${account_id}:")
                    && resource.ends_with("/*")
                    && !resource.contains(":*/"),
                "{AWS_POLICY} {}: {resource:?} is not a typed EC2 resource ARN in this account and region",
                s.sid
            );
        }
    }
}

/// The JSON file is what Terraform uses: the policy resource renders exactly it.
#[test]
fn aws_iam_module_renders_the_policy_file() {
    let main = read(AWS_IAM_MAIN);
    assert!(
        main.contains(r#"templatefile("${path.module}/policy.json", {"#),
        "{AWS_IAM_MAIN} must render policy.json with templatefile()"
    );
    assert!(
        main.contains("policy      = local.policy"),
        "{AWS_IAM_MAIN}: aws_iam_policy.controller must use the rendered policy.json"
    );
    // The template's placeholders are exactly the variables main.tf passes in.
    let policy = read(AWS_POLICY);
    for placeholder in ["partition", "region", "account_id", "cluster_tag_key"] {
        assert!(
            main.contains(&format!("    {placeholder} ")),
            "{AWS_IAM_MAIN} does not pass {placeholder} to the template"
        );
    }
    let used: BTreeSet<&str> = policy
        .split("${")
        .skip(1)
        .map(|rest| rest.split('}').next().unwrap_or(""))
        .collect();
    let passed: BTreeSet<&str> = ["partition", "region", "account_id", "cluster_tag_key"]
        .into_iter()
        .collect();
    assert_eq!(
        used, passed,
        "{AWS_POLICY}: placeholders vs. templatefile() variables"
    );
}

/// The three custom roles of the Azure identity and where terraform assigns each: the
/// provider's own calls on the resources it touches, ARM's linked checks of its NIC write on
/// the resources that NIC references, and the operation-status read (the URL is under no
/// resource) on the resource group, as Microsoft's guide to tracking asynchronous operations
/// says tracking needs.
const AZURE_ROLES: [(&str, &str); 3] = [
    ("resources", "resources = var.role_scopes"),
    ("linked", "linked = var.linked_scopes"),
    (
        "operation-status",
        r#"operation-status = { "resource-group" = var.resource_group_id }"#,
    ),
];

/// `text` with every run of whitespace one space (terraform fmt aligns `=`).
fn squeezed(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
const AZURE_OPERATION_STATUS_READ: &str = "Microsoft.Network/locations/operations/read";

fn azure_roles() -> Vec<(String, Vec<String>)> {
    let file = read_json(AZURE_ROLE);
    let roles = file["roles"]
        .as_object()
        .unwrap_or_else(|| panic!("{AZURE_ROLE}: roles is not an object"));
    roles
        .iter()
        .map(|(name, role)| {
            assert!(
                role["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{AZURE_ROLE} {name}: no description"
            );
            (name.clone(), strings(&role["actions"], name))
        })
        .collect()
}

#[test]
fn azure_roles_grant_exactly_the_arm_operations_the_provider_calls() {
    let roles = azure_roles();
    let names: BTreeSet<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
    let expected: BTreeSet<&str> = AZURE_ROLES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected, "{AZURE_ROLE}: roles");
    let actions: Vec<String> = roles.iter().flat_map(|(_, a)| a.clone()).collect();
    for action in &actions {
        assert!(
            !action.contains('*'),
            "{AZURE_ROLE}: wildcard action {action:?} grants more than the provider calls"
        );
        assert!(
            action.starts_with("Microsoft.Network/") || action.starts_with("Microsoft.Compute/"),
            "{AZURE_ROLE}: {action:?} is outside Microsoft.Network / Microsoft.Compute"
        );
    }
    // Each action in one role only: the role decides where it is granted.
    let granted = unique_set(&actions, AZURE_ROLE);
    assert_same(
        &granted,
        cni_cloud_providers::azure::OPERATIONS,
        AZURE_ROLE,
        "cni_cloud_providers::azure::OPERATIONS",
    );
    let role = |name: &str| {
        let actions = &roles.iter().find(|(n, _)| n == name).expect("role").1;
        unique_set(actions, name)
    };
    assert_same(
        &role("linked"),
        cni_cloud_providers::azure::LINKED_OPERATIONS,
        "the linked role",
        "cni_cloud_providers::azure::LINKED_OPERATIONS",
    );
    assert_same(
        &role("operation-status"),
        &[AZURE_OPERATION_STATUS_READ],
        "the operation-status role",
        "the operation-status read",
    );
}

/// The JSON file is what Terraform uses: one role definition per role with its actions,
/// no data actions, assignable only inside the cluster's resource group, and each role
/// assigned only where it belongs.
#[test]
fn azure_identity_module_uses_the_role_file() {
    let main = squeezed(&read(AZURE_IDENTITY_MAIN));
    for needle in [
        r#"jsondecode(file("${path.module}/role-actions.json")).roles"#,
        "for_each = local.roles",
        "actions = each.value.actions",
        "assignable_scopes = [var.resource_group_id]",
        "role_definition_id = azurerm_role_definition.controller[each.value.role].role_definition_resource_id",
    ] {
        assert!(
            main.contains(needle),
            "{AZURE_IDENTITY_MAIN} lacks {needle:?}"
        );
    }
    for (role, scopes) in AZURE_ROLES {
        assert!(
            main.contains(scopes),
            "{AZURE_IDENTITY_MAIN}: role {role} must be assigned by {scopes:?}"
        );
    }
    assert!(
        !main.contains("data_actions"),
        "{AZURE_IDENTITY_MAIN}: the provider uses no data-plane actions"
    );
}
