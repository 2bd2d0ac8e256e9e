"""terraform/ checks that need no terraform binary (no provider download is reachable here,
so the provider-using environments are proven statically; test_terraform_plan.py runs
terraform itself where it is installed):

- every .tf parses (python-hcl2); every variable and output has a description, every variable
  a type; every module and example has main/variables/outputs/versions.tf and a README that
  lists its inputs and outputs; versions.tf pins Terraform and every provider used;
- checkov passes over terraform/, each skip is justified in a comment and necessary (without
  the skip comments checkov fails exactly there);
- the properties the environments exist for: cluster-tagged AWS route tables without inline
  routes, source/dest check off, IP forwarding on, role assignments only on the resources the
  controller touches;
- the cluster kustomization the control plane applies renders with kubectl on top of this
  checkout's deploy/overlays, and the bootstrap script is valid bash.

The identities' action lists are compared with the providers' OPERATIONS by
providers/tests/least_privilege.rs.

Tools missing (python-hcl2, checkov, kubectl) skip with a loud message, and fail under
CNI_CLOUD_REQUIRE_ALL=1.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kubectl_support
from terraform_support import assert_cluster_render, require

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
MODULE_DIRS = sorted(
    [p for p in (TF / "aws" / "modules").iterdir() if p.is_dir()]
    + [p for p in (TF / "azure" / "modules").iterdir() if p.is_dir()]
    + [p for p in (TF / "modules").iterdir() if p.is_dir()]
    + [TF / "aws" / "examples" / "test-env", TF / "azure" / "examples" / "test-env"]
)
TF_FILES = sorted(TF.rglob("*.tf"))
INIT_MODULE = TF / "modules" / "kubeadm-cloud-init"


def hcl2():
    try:
        import hcl2 as module
    except ImportError:
        require(False, "python module hcl2 (python-hcl2) is not installed (run scripts/setup)")
    return module


def venv_tool(name):
    candidates = [Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name]
    found = next((str(p) for p in candidates if p.exists()), None) or shutil.which(name)
    require(found, f"{name} is not installed (run scripts/setup)")
    return found


def parse(path):
    with open(path) as f:
        return hcl2().load(f)


def one(value):
    """python-hcl2 wraps attribute values in one-element lists."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def blocks(doc, kind):
    """[(name, body)] of `variable "name" {}` / `output "name" {}` blocks."""
    return [(name, body) for entry in doc.get(kind, []) for name, body in entry.items()]


def resources(doc):
    """[(type, name, body)] of every resource block."""
    return [
        (rtype, name, body)
        for entry in doc.get("resource", [])
        for rtype, named in entry.items()
        for name, body in named.items()
    ]


def module_resources(module_dir):
    out = []
    for f in sorted(module_dir.glob("*.tf")):
        out += resources(parse(f))
    return out


def test_layout_is_complete():
    assert TF_FILES, "terraform/ holds no .tf files"
    assert (TF / "README.md").is_file(), "terraform/README.md is missing"
    for d in MODULE_DIRS:
        for name in ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"]:
            assert (d / name).is_file(), f"{d.relative_to(ROOT)} lacks {name}"


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF)))
def test_every_tf_file_parses(path):
    doc = parse(path)
    assert isinstance(doc, dict)
    # HCL that parses but has no blocks is a mistake (an empty or truncated file).
    assert any(k for k in doc if not k.startswith("__")), f"{path} declares nothing"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda p: str(p.relative_to(TF)))
def test_variables_and_outputs_are_documented_and_typed(module_dir):
    variables = blocks(parse(module_dir / "variables.tf"), "variable")
    outputs = blocks(parse(module_dir / "outputs.tf"), "output")
    assert outputs, f"{module_dir}: no outputs"
    for name, body in variables:
        assert str(one(body.get("description", ""))).strip(), f"variable {name}: no description"
        assert one(body.get("type")), f"variable {name}: no type"
    for name, body in outputs:
        assert str(one(body.get("description", ""))).strip(), f"output {name}: no description"
    # The README's inputs/outputs must be current: every name appears in it.
    readme = (module_dir / "README.md").read_text()
    for name, _ in variables + outputs:
        assert f"`{name}`" in readme, f"{module_dir.relative_to(ROOT)}/README.md does not list `{name}`"
    # Variables declared elsewhere than variables.tf would escape these checks.
    for f in module_dir.glob("*.tf"):
        if f.name != "variables.tf":
            assert not parse(f).get("variable"), f"{f}: variables belong in variables.tf"
        if f.name != "outputs.tf":
            assert not parse(f).get("output"), f"{f}: outputs belong in outputs.tf"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda p: str(p.relative_to(TF)))
def test_versions_pin_terraform_and_every_provider_used(module_dir):
    terraform = one(parse(module_dir / "versions.tf")["terraform"])
    required_version = one(terraform["required_version"])
    assert re.fullmatch(r">= 1\.\d+\.\d+, < 2\.0\.0", required_version), required_version
    providers = {}
    for entry in terraform.get("required_providers", []):
        for name, spec in entry.items():
            spec = one(spec)
            assert one(spec["source"]) == f"hashicorp/{name}", f"{name}: source"
            assert re.fullmatch(r"~> \d+\.\d+", one(spec["version"])), f"{name}: version pin"
            providers[name] = spec
    text = "\n".join(f.read_text() for f in module_dir.glob("*.tf"))
    used = set(re.findall(r'^(?:resource|data) "([a-z0-9]+)_', text, re.M))
    used |= set(re.findall(r'^provider "([a-z0-9]+)"', text, re.M))
    # Providers the child modules need must be declared by whoever calls them, too.
    for source in re.findall(r'source\s*=\s*"(\.[^"]+)"', text):
        child = (module_dir / source).resolve()
        child_terraform = one(parse(child / "versions.tf")["terraform"])
        for entry in child_terraform.get("required_providers", []):
            used |= set(entry)
    assert used == set(providers), f"{module_dir.relative_to(ROOT)}: providers used {used} vs pinned {set(providers)}"


def run_checkov(directory):
    checkov = venv_tool("checkov")
    proc = subprocess.run(
        [checkov, "-d", str(directory), "--framework", "terraform", "--skip-download",
         "-o", "json"],
        capture_output=True, text=True, check=False, timeout=900,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = report if isinstance(report, dict) else next(r for r in report if r["check_type"] == "terraform")
    return report


def failures(report):
    return [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]


SKIP_COMMENT = re.compile(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)")


def test_checkov_passes_with_justified_necessary_skips(tmp_path):
    report = run_checkov(TF)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= 40, f"checkov saw too few resources: {summary}"
    assert not failures(report), "checkov failed:\n" + "\n".join(failures(report))

    # Every skip carries a reason, and each is few and specific.
    comments = []
    for f in TF_FILES:
        for line in f.read_text().splitlines():
            m = SKIP_COMMENT.search(line)
            if m:
                comments.append((f, m.group(1)))
                assert len(m.group(2).split()) >= 5, f"{f}: skip {m.group(1)} needs a real reason"
    skipped = {(c["check_id"], c["resource"].split(".", 2)[-1].split("[")[0]) for c in report["results"]["skipped_checks"]}
    assert len(comments) <= 6, f"too many checkov skips: {comments}"
    assert {c for _, c in comments} == {c for c, _ in skipped}, (comments, skipped)

    # Necessary: without the skip comments, checkov fails every skipped check.
    copy = tmp_path / "terraform"
    shutil.copytree(TF, copy)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    for f in copy.rglob("*.tf"):
        f.write_text("\n".join(l for l in f.read_text().splitlines() if not SKIP_COMMENT.search(l)) + "\n")
    bare = run_checkov(copy)
    failed = {(c["check_id"], c["resource"].split(".", 2)[-1].split("[")[0]) for c in bare["results"]["failed_checks"]}
    unnecessary = skipped - failed
    assert not unnecessary, f"skips that checkov would pass anyway (remove them): {unnecessary}"


# --- what the environments are for -------------------------------------------------------


def test_aws_route_tables_are_cluster_tagged_and_not_managed_inline():
    network = TF / "aws" / "modules" / "network"
    res = {(t, n): b for t, n, b in module_resources(network)}
    main = (network / "main.tf").read_text()
    assert re.search(r'cluster_tag = \{ "kubernetes\.io/cluster/\$\{var\.cluster_name\}" = "owned" \}', main)
    private = res[("aws_route_table", "private")]
    assert one(private["for_each"]) == "${local.zones}", "one route table per zone"
    assert "local.tags" in one(private["tags"]), "node route tables carry the cluster tag"
    # Inline routes would make terraform delete cni-cloud's routes on every apply.
    for (t, _), body in res.items():
        if t == "aws_route_table":
            assert "route" not in body, "route tables must not declare inline routes"
    assert one(res[("aws_route_table_association", "private")]["route_table_id"]).startswith("${aws_route_table.private[")
    assert ("aws_internet_gateway", "this") in res and ("aws_nat_gateway", "this") in res
    # Pod CIDRs are admitted between nodes.
    pods = res[("aws_vpc_security_group_ingress_rule", "pods")]
    assert one(pods["for_each"]) == "${toset(var.cluster_cidrs)}"
    assert one(pods["ip_protocol"]) == "-1"


def test_aws_nodes_forward_pod_traffic_and_carry_the_cluster_tag():
    cluster = TF / "aws" / "modules" / "cluster"
    res = {(t, n): b for t, n, b in module_resources(cluster)}
    for name in ["control_plane", "worker"]:
        inst = res[("aws_instance", name)]
        assert one(inst["source_dest_check"]) is False, f"{name}: source_dest_check must be false"
        assert one(inst["iam_instance_profile"]) == "${var.instance_profile_name}"
        assert "local.tags" in one(inst["tags"])
    lt = res[("aws_launch_template", "node")]
    specs = one(lt["dynamic"])["tag_specifications"]
    assert one(specs["for_each"]) == ["instance", "volume", "network-interface"], (
        "the primary ENI must carry the cluster tag: the IAM policy allows "
        "ModifyNetworkInterfaceAttribute only on tagged interfaces"
    )
    assert one(one(lt["metadata_options"])["http_tokens"]) == "required"
    # One source of truth for the root volume: an instance's root_block_device replaces the
    # launch template's root mapping (which then falls back to the AMI's size).
    assert "block_device_mappings" not in lt, "the root volume is defined on the instances"
    for name in ["control_plane", "worker"]:
        root = one(res[("aws_instance", name)]["root_block_device"])
        assert one(root["volume_size"]) == "${var.root_volume_size}", name
        assert one(root["encrypted"]) is True and one(root["volume_type"]) == "gp3", name


def test_azure_route_table_nics_and_role_scopes():
    network = {(t, n): b for t, n, b in module_resources(TF / "azure" / "modules" / "network")}
    assert one(network[("azurerm_subnet_route_table_association", "nodes")]["route_table_id"]) == "${azurerm_route_table.nodes.id}"
    table = network[("azurerm_route_table", "nodes")]
    assert "route" not in table, "no inline routes: terraform would delete cni-cloud's"
    assert "route" in str(one(table["lifecycle"])["ignore_changes"])
    cluster = {(t, n): b for t, n, b in module_resources(TF / "azure" / "modules" / "cluster")}
    nic = cluster[("azurerm_network_interface", "node")]
    assert one(nic["ip_forwarding_enabled"]) is True, "NICs must forward pod traffic"
    vm = cluster[("azurerm_linux_virtual_machine", "node")]
    assert one(one(vm["identity"])["identity_ids"]) == ["${var.identity_id}"]
    identity = {(t, n): b for t, n, b in module_resources(TF / "azure" / "modules" / "identity")}
    assignment = identity[("azurerm_role_assignment", "controller")]
    assert one(assignment["scope"]) == "${each.value.scope}"
    # The example assigns the resources role on the route table, the NICs and the VMs, and
    # the linked role (join) on what those NICs reference: the subnet and the public IPs.
    # Nothing broader (the operation-status role is the identity module's, on the group).
    example = (TF / "azure" / "examples" / "test-env" / "main.tf").read_text()

    def wired(name):
        scopes = example[example.index(f"{name} = merge("):]
        scopes = scopes[: scopes.index("\n  )\n")]
        assert "resource_group" not in scopes and "subscription" not in scopes
        return re.findall(r"module\.\w+\.\w+", scopes)

    assert wired("role_scopes") == ["module.network.route_table_id", "module.cluster.nic_ids", "module.cluster.vm_ids"]
    assert wired("linked_scopes") == ["module.network.subnet_id", "module.cluster.public_ip_ids"]
    # Every public IP a node NIC links is in public_ip_ids.
    outputs = dict(blocks(parse(TF / "azure" / "modules" / "cluster" / "outputs.tf"), "output"))
    assert "azurerm_public_ip.control_plane" in one(outputs["public_ip_ids"]["value"])
    assert one(one(nic["ip_configuration"])["public_ip_address_id"]).count("azurerm_public_ip.control_plane") == 1
    main = (TF / "azure" / "modules" / "identity" / "main.tf").read_text()
    assert re.search(r'operation-status = \{ "resource-group" = var\.resource_group_id \}', main)


def test_azure_nsg_rules_are_written_per_address_family():
    """An NSG rule may not mix IPv4 and IPv6 prefixes (dual-stack pod CIDRs): every rule is one
    dynamic block over local.nsg_rules, one entry per rule and family (test_terraform_plan.py
    evaluates them)."""
    nsg = {(t, n): b for t, n, b in module_resources(TF / "azure" / "modules" / "network")}[
        ("azurerm_network_security_group", "nodes")]
    assert "security_rule" not in nsg, "static rules would mix families"
    rules = [one(d)["security_rule"] for d in nsg["dynamic"]]
    assert [one(r["for_each"]) for r in rules] == ["${local.nsg_rules}"]
    content = one(rules[0]["content"])
    assert one(content["source_address_prefixes"]) == "${security_rule.value.prefixes}"
    assert one(content["name"]) == "${security_rule.key}"


def output_depends_on(module_dir, name):
    outputs = dict(blocks(parse(module_dir / "outputs.tf"), "output"))
    return {ref.strip("${}") for ref in one(outputs[name].get("depends_on", [[]]))}


def test_nodes_are_created_only_once_their_subnet_has_egress():
    """Bootstrap installs packages at first boot: the node subnets (and the AWS node security
    group, created without the default egress rule) reach the instances only through outputs
    that wait for what carries egress."""
    aws = TF / "aws" / "modules" / "network"
    res = {(t, n): b for t, n, b in module_resources(aws)}
    assert one(res[("aws_route", "private_default")]["nat_gateway_id"]).startswith("${aws_nat_gateway.this[")
    assert {"aws_route.private_default", "aws_route_table_association.private"} <= output_depends_on(aws, "private_subnet_ids")
    rules = {f"{t}.{n}" for t, n in res if t.startswith("aws_vpc_security_group_") and t.endswith("_rule")}
    assert rules and rules <= output_depends_on(aws, "node_security_group_id"), rules - output_depends_on(aws, "node_security_group_id")
    cluster = {(t, n): b for t, n, b in module_resources(TF / "aws" / "modules" / "cluster")}
    for name in ["control_plane", "worker"]:
        assert one(cluster[("aws_instance", name)]["subnet_id"]).startswith("${var.subnet_ids[")
        assert one(cluster[("aws_instance", name)]["vpc_security_group_ids"]) == ["${var.security_group_id}"]
    example = (TF / "aws" / "examples" / "test-env" / "main.tf").read_text()
    assert "subnet_ids            = module.network.private_subnet_ids" in example
    assert "security_group_id     = module.network.node_security_group_id" in example

    azure = TF / "azure" / "modules" / "network"
    needed = {"azurerm_subnet_nat_gateway_association.nodes", "azurerm_nat_gateway_public_ip_association.this"}
    assert needed <= output_depends_on(azure, "subnet_id")
    subnet = {(t, n): b for t, n, b in module_resources(azure)}[("azurerm_subnet", "nodes")]
    assert one(subnet["default_outbound_access_enabled"]) is False, "egress is the NAT gateway's only"
    nic = {(t, n): b for t, n, b in module_resources(TF / "azure" / "modules" / "cluster")}[("azurerm_network_interface", "node")]
    assert one(one(nic["ip_configuration"])["subnet_id"]) == "${var.subnet_id}"
    example = (TF / "azure" / "examples" / "test-env" / "main.tf").read_text()
    assert re.search(r"^  subnet_id\s+= module\.network\.subnet_id$", example, re.M)


# --- the cloud-init -------------------------------------------------------------------------


def render_cluster_kustomization(cloud, controller_literals, annotations, image=None):
    """Mirrors the module's templatefile() call (main.tf, local.cluster_kustomization)."""
    template = (INIT_MODULE / "templates" / "cluster-kustomization.yaml.tftpl").read_text()
    values = {
        "cloud": cloud,
        "cluster_literals": json.dumps(["CNI_CLOUD_CLUSTER_CIDRS=10.32.0.0/16"]),
        "controller_literals": json.dumps(["CNI_CLOUD_CLUSTER_NAME=tf-test"] + controller_literals),
        "node_literals": json.dumps(["CNI_CLOUD_VPC_CIDRS=10.9.0.0/16"]),
        "service_account_patch": json.dumps(json.dumps([{"op": "add", "path": "/metadata/annotations", "value": annotations}])),
        "images": json.dumps([] if image is None else [{"name": "ghcr.io/cni-cloud/cni-cloud", "newName": image[0], "newTag": image[1]}]),
    }
    placeholders = set(re.findall(r"\$\{(\w+)\}", template))
    assert placeholders == set(values), f"template placeholders {placeholders} vs module {set(values)}"
    main = (INIT_MODULE / "main.tf").read_text()
    for name in values:
        assert re.search(rf"^\s+{name}\s+=", main, re.M), f"main.tf does not pass {name}"
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)


@pytest.mark.parametrize("cloud,literals,annotations", [
    ("aws", ["AWS_REGION=eu-central-1"], {}),
    ("aws", ["AWS_REGION=eu-central-1"], {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x"}),
    ("azure", ["AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555",
               "CNI_CLOUD_ROUTE_TABLES=/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/t"],
     {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"}),
])
def test_cluster_kustomization_renders_over_the_overlay(tmp_path, cloud, literals, annotations):
    kubectl = kubectl_support.kubectl(require)
    deploy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", deploy)
    (deploy / "cluster").mkdir()
    (deploy / "cluster" / "kustomization.yaml").write_text(
        render_cluster_kustomization(cloud, literals, annotations, image=("registry.example/cni-cloud", "dev")))
    expected = {"CNI_CLOUD_CLOUD": cloud, "CNI_CLOUD_CLUSTER_NAME": "tf-test",
                "CNI_CLOUD_CLUSTER_CIDRS": "10.32.0.0/16", "CNI_CLOUD_VPC_CIDRS": "10.9.0.0/16",
                **dict(literal.split("=", 1) for literal in literals)}
    assert_cluster_render(kubectl, deploy / "cluster", expected, annotations, "registry.example/cni-cloud:dev")


def render_bootstrap(role):
    """Mirrors templatefile() for the one %{ if role == "control-plane" } directive."""
    text = (INIT_MODULE / "templates" / "bootstrap.sh.tftpl").read_text()
    m = re.search(r'%\{ if role == "control-plane" ~\}\n(.*?)%\{ else ~\}\n(.*?)%\{ endif ~\}\n', text, re.S)
    assert m, "bootstrap template: expected one if/else/endif on role"
    text = text[: m.start()] + (m.group(1) if role == "control-plane" else m.group(2)) + text[m.end():]
    values = {"role": role, "kubernetes_version": "1.33.5", "kubernetes_minor": "v1.33"}
    text = re.sub(r"\$\{(\w+)\}", lambda v: values[v.group(1)], text)
    assert "%{" not in text
    return text


@pytest.mark.parametrize("role", ["control-plane", "worker"])
def test_bootstrap_script_is_valid_bash(tmp_path, role):
    bash = shutil.which("bash")
    require(bash, "bash is not installed")
    script = tmp_path / "bootstrap.sh"
    script.write_text(render_bootstrap(role))
    proc = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert "https://pkgs.k8s.io/core:/stable:/v1.33/deb/" in text
    if role == "control-plane":
        assert "kubeadm init --config" in text and "kubectl apply -k /opt/cni-cloud/deploy/cluster" in text
        assert "kubeadm join" not in text
    else:
        assert "kubeadm join --config" in text and "kubeadm init" not in text


def shell_functions(script):
    """The function definitions of a rendered script (multi-line and one-line)."""
    found = re.findall(r"^\w+\(\) \{\n.*?^\}\n|^\w+\(\) \{ .* \}\n", script, re.M | re.S)
    assert found, "no shell functions found"
    return "".join(found)


def test_bootstrap_network_and_package_steps_go_through_retry():
    """Egress can come after the node boots: under `set -e` one failed apt-get would leave a
    node that never joins."""
    for role in ["control-plane", "worker"]:
        script = render_bootstrap(role)
        body = script[script.index('apt_get() {'):].split("\n", 1)[1]
        for line in body.splitlines():
            command = line.strip()
            assert not re.match(r"(apt-get|curl|wget)\b", command), f"{role}: unretried network step: {line!r}"
        assert re.search(r"^apt_get update$", body, re.M) and re.search(r"^apt_get install ", body, re.M)
        assert re.search(r"^retry curl ", body, re.M)


def run_with_stubs(tmp_path, stubs, call):
    """Run `call` in bash after the rendered bootstrap's functions, with `stubs` defined."""
    bash = shutil.which("bash")
    require(bash, "bash is not installed")
    script = tmp_path / "t.sh"
    script.write_text("set -euo pipefail\n" + shell_functions(render_bootstrap("worker")) + stubs + "\n" + call + "\n")
    return subprocess.run([bash, str(script)], capture_output=True, text=True, check=False, timeout=60, cwd=tmp_path)


def test_bootstrap_retry_waits_out_a_late_network_and_gives_up_after_ten_minutes(tmp_path):
    # Fails twice, then works: two sleeps of 10 s, success.
    stubs = 'sleep() { echo "slept $1" >>sleeps; }\nflaky() { echo x >>tries; [ "$(wc -l <tries)" -ge 3 ]; }'
    proc = run_with_stubs(tmp_path, stubs, "retry flaky && echo done")
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    assert (tmp_path / "tries").read_text().count("x") == 3
    assert (tmp_path / "sleeps").read_text().split("\n")[:-1] == ["slept 10", "slept 10"]
    # Never works: 60 attempts (10 minutes of sleeps), then the failure reaches set -e.
    (tmp_path / "sleeps").unlink()
    proc = run_with_stubs(tmp_path, 'sleep() { echo "slept $1" >>sleeps; }', "retry false; echo not-reached")
    assert proc.returncode != 0 and "not-reached" not in proc.stdout
    assert "giving up after 60 attempts" in proc.stderr
    assert len((tmp_path / "sleeps").read_text().splitlines()) == 59


def test_bootstrap_apt_waits_for_the_dpkg_lock(tmp_path):
    proc = run_with_stubs(tmp_path, 'apt-get() { echo "apt-get $*"; }', "apt_get install -y x")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "apt-get -o DPkg::Lock::Timeout=600 install -y x"


def test_kubeadm_config_allocates_node_cidrs_without_cloud_routes():
    main = (INIT_MODULE / "main.tf").read_text()
    # podSubnet is what turns on --allocate-node-cidrs in kubeadm.
    assert 'podSubnet     = join(",", var.cluster_cidrs)' in main
    assert '{ name = "configure-cloud-routes", value = "false" }' in main
    assert '{ name = "provider-id", value = "@PROVIDER_ID@" }' in main
    # One fileset() per directory: terraform's glob rejects "{base,overlays/aws}" (a "/"
    # inside the alternatives); test_terraform_plan.py plans the module for real.
    assert 'fileset(local.deploy_dir, "base/*.yaml")' in main
    assert 'fileset(local.deploy_dir, "overlays/${var.cloud}/*.yaml")' in main
    assert "{base," not in main
    # The files the control plane applies exist in this checkout for both clouds.
    for cloud in ["aws", "azure"]:
        assert (ROOT / "deploy" / "overlays" / cloud / "kustomization.yaml").is_file()
    assert list((ROOT / "deploy" / "base").glob("*.yaml"))
