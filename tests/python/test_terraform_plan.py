"""terraform/ run by terraform itself, offline.

modules/kubeadm-cloud-init needs no provider, so a small harness calling it for both clouds
and both roles is initialised and planned here with no network, and the cloud-init it renders
is checked as the node would see it: every file of write_files materialised, the bootstrap and
providerID scripts through `bash -n` / `sh -n`, the kubeadm configuration parsed, and the
cluster kustomization rendered with `kubectl kustomize` from the deploy/ files the cloud-init
ships (not from the checkout). Input validations (Kubernetes version, cluster name) are
exercised with real plans, and `terraform fmt -check -recursive` holds for the whole tree.

Without a terraform binary these skip loudly (see terraform_support).
"""

import base64
import gzip
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

import kubectl_support
import terraform_support as tfs
from terraform_support import ROOT, TF, require

INIT_MODULE = TF / "modules" / "kubeadm-cloud-init"
TOKEN = "abcdef.0123456789abcdef"
VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines"
CASES = {
    # name: (cloud, role, provider id, controller settings, service-account annotations)
    "aws_control_plane": ("aws", "control-plane", "aws:///eu-west-1a/i-0123456789abcdef0",
                          {"AWS_REGION": "eu-west-1"},
                          {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x"}),
    "aws_worker": ("aws", "worker", "aws:///eu-west-1b/i-0fedcba9876543210", {}, {}),
    "azure_control_plane": ("azure", "control-plane", f"azure://{VM}/tf-harness-control-plane",
                            {"AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
                             "CNI_CLOUD_ROUTE_TABLES": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/t"},
                            {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"}),
    "azure_worker": ("azure", "worker", f"azure://{VM}/tf-harness-worker-0", {}, {}),
}
CLUSTER_CIDRS = ["10.244.0.0/16", "fd00:10:244::/56"]
# EC2 refuses user data over 16 KiB (raw, before base64): user_data_base64 carries the gzip.
EC2_USER_DATA_LIMIT = 16 * 1024


def harness(workdir):
    """A root module (JSON syntax) calling kubeadm-cloud-init once per case, by a relative
    path as the examples do (an absolute one would be copied into .terraform/modules)."""
    modules, outputs = {}, {}
    for name, (cloud, role, provider_id, settings, annotations) in CASES.items():
        modules[name] = {
            "source": os.path.relpath(INIT_MODULE, workdir),
            "cloud": cloud,
            "role": role,
            "kubernetes_version": "${var.kubernetes_version}",
            "join_token": TOKEN,
            "cluster_name": "${var.cluster_name}",
            "cluster_cidrs": CLUSTER_CIDRS,
            "vpc_cidrs": ["10.0.0.0/16"],
            "provider_id_script": f"#!/bin/sh\necho '{provider_id}'\n",
            "controller_settings": settings,
            "controller_service_account_annotations": annotations,
            "cni_cloud_image": {"repository": "registry.example/cni-cloud", "tag": "dev"},
        }
        if role == "worker":
            modules[name]["control_plane_address"] = "10.0.0.10"
        outputs[name] = {"value": f"${{module.{name}.cloud_config}}", "sensitive": True}
        outputs[f"{name}_gzip"] = {"value": f"${{module.{name}.cloud_config_base64gzip}}", "sensitive": True}
    return {
        "terraform": {"required_version": ">= 1.6.0"},
        "variable": {
            "kubernetes_version": {"type": "string", "default": "1.33.5"},
            "cluster_name": {"type": "string", "default": "tf-harness"},
        },
        "module": modules,
        "output": outputs,
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tfs.terraform_binary()
    d = tmp_path_factory.mktemp("harness")
    (d / "main.tf.json").write_text(json.dumps(harness(d), indent=2))
    tfs.init(d)
    tfs.run(["validate", "-no-color"], d)
    return d


@pytest.fixture(scope="module")
def planned(workdir):
    result = tfs.plan(workdir)
    assert isinstance(result, dict), f"terraform plan failed:\n{result.stdout}\n{result.stderr}"
    return {k: v["value"] for k, v in result["planned_values"]["outputs"].items()}


def test_terraform_fmt_check_is_clean():
    terraform = tfs.terraform_binary()
    proc = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", "-no-color", str(TF)],
                          capture_output=True, text=True, check=False, env=tfs.offline_env(None))
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


def test_plan_renders_every_case_and_gzip_fits_ec2_user_data(planned):
    for name in CASES:
        config = planned[name]
        assert config.startswith("#cloud-config\n"), name
        raw = base64.b64decode(planned[f"{name}_gzip"])
        assert gzip.decompress(raw).decode() == config, f"{name}: the gzip output is not the cloud-config"
        assert len(raw) <= EC2_USER_DATA_LIMIT, f"{name}: {len(raw)} bytes of user data > EC2's 16 KiB"
        print(f"{name}: cloud-config {len(config)} B, gzip {len(raw)} B")


def materialise(config, root):
    """Write the cloud-config's write_files under `root` as cloud-init would at /."""
    doc = yaml.safe_load(config)
    assert doc["runcmd"] == [["/opt/cni-cloud/bootstrap.sh"]]
    files = {}
    for f in doc["write_files"]:
        content = f["content"]
        data = base64.b64decode(content) if f.get("encoding") == "b64" else content.encode()
        path = root / f["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(int(f["permissions"], 8))
        files[f["path"]] = data.decode()
    return files


@pytest.mark.parametrize("name", list(CASES))
def test_rendered_scripts_are_valid_shell(planned, tmp_path, name):
    files = materialise(planned[name], tmp_path)
    bash, sh = shutil.which("bash"), shutil.which("sh")
    require(bash and sh, "bash / sh are not installed")
    for shell, path in [(bash, "/opt/cni-cloud/bootstrap.sh"), (sh, "/opt/cni-cloud/provider-id.sh")]:
        proc = subprocess.run([shell, "-n", str(tmp_path / path.lstrip("/"))], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name} {path}: {proc.stderr}"
    proc = subprocess.run([sh, str(tmp_path / "opt/cni-cloud/provider-id.sh")], capture_output=True, text=True)
    assert proc.stdout.strip() == CASES[name][2]
    bootstrap = files["/opt/cni-cloud/bootstrap.sh"]
    assert "%{" not in bootstrap, "a template directive was left unrendered"
    assert "https://pkgs.k8s.io/core:/stable:/v1.33/deb/" in bootstrap
    control_plane = CASES[name][1] == "control-plane"
    assert ("kubeadm init --config" in bootstrap) == control_plane
    assert ("kubeadm join --config" in bootstrap) != control_plane


@pytest.mark.parametrize("name", list(CASES))
def test_kubeadm_configuration_is_v1beta4_with_list_form_args(planned, tmp_path, name):
    files = materialise(planned[name], tmp_path)
    docs = [d for d in yaml.safe_load_all(files["/opt/cni-cloud/kubeadm.yaml.in"]) if d]
    kinds = {d["kind"]: d for d in docs}
    assert {d["apiVersion"] for d in docs} == {"kubeadm.k8s.io/v1beta4"}
    control_plane = CASES[name][1] == "control-plane"
    assert set(kinds) == ({"InitConfiguration", "ClusterConfiguration"} if control_plane else {"JoinConfiguration"})
    registration = kinds["InitConfiguration" if control_plane else "JoinConfiguration"]["nodeRegistration"]
    assert registration["kubeletExtraArgs"] == [{"name": "provider-id", "value": "@PROVIDER_ID@"}]
    if control_plane:
        cluster = kinds["ClusterConfiguration"]
        assert cluster["kubernetesVersion"] == "v1.33.5"
        assert cluster["networking"]["podSubnet"] == ",".join(CLUSTER_CIDRS)
        assert cluster["controllerManager"]["extraArgs"] == [{"name": "configure-cloud-routes", "value": "false"}]
    else:
        discovery = kinds["JoinConfiguration"]["discovery"]["bootstrapToken"]
        assert discovery["apiServerEndpoint"] == "10.0.0.10:6443" and discovery["token"] == TOKEN


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[1] == "control-plane"])
def test_shipped_manifests_render_with_kubectl_kustomize(planned, tmp_path, name):
    """Only what the cloud-init writes: a deploy/ file it forgets fails here."""
    kubectl = kubectl_support.kubectl(require)
    cloud, _, _, settings, annotations = CASES[name]
    files = materialise(planned[name], tmp_path)
    shipped = sorted(p for p in files if p.startswith("/opt/cni-cloud/deploy/") and "/cluster/" not in p)
    expected = sorted(
        f"/opt/cni-cloud/deploy/{p.relative_to(ROOT / 'deploy')}"
        for d in [ROOT / "deploy" / "base", ROOT / "deploy" / "overlays" / cloud] for p in d.glob("*.yaml")
    )
    assert shipped == expected, "the control plane must get deploy/base and deploy/overlays/<cloud>"
    expected = {"CNI_CLOUD_CLOUD": cloud, "CNI_CLOUD_CLUSTER_NAME": "tf-harness",
                "CNI_CLOUD_CLUSTER_CIDRS": ",".join(CLUSTER_CIDRS), "CNI_CLOUD_VPC_CIDRS": "10.0.0.0/16", **settings}
    tfs.assert_cluster_render(kubectl, tmp_path / "opt/cni-cloud/deploy/cluster", expected, annotations,
                              "registry.example/cni-cloud:dev")


@pytest.mark.parametrize("version,ok", [
    ("1.33.5", True), ("1.31.0", True), ("1.30.9", False), ("1.29.1", False), ("v1.33.5", False), ("1.33", False),
])
def test_kubernetes_version_needs_kubeadm_v1beta4(workdir, version, ok):
    result = tfs.plan(workdir, {"kubernetes_version": version})
    if ok:
        assert isinstance(result, dict), f"{version} refused:\n{result.stderr}"
    else:
        assert tfs.failed_on(result, "kubernetes_version"), f"{version} accepted or refused for another reason: {result}"


def test_a_control_plane_without_the_deploy_files_fails_the_plan(tmp_path):
    """fileset() of a missing directory is empty: a module copied away from its checkout
    (an absolute source is copied into .terraform/modules) must not ship a node without
    cni-cloud."""
    tfs.terraform_binary()
    config = harness(tmp_path)
    config["module"] = {"aws_control_plane": {**config["module"]["aws_control_plane"], "source": str(INIT_MODULE)}}
    config["output"] = {"gzip": config["output"]["aws_control_plane_gzip"]}
    (tmp_path / "main.tf.json").write_text(json.dumps(config))
    tfs.init(tmp_path)
    result = tfs.plan(tmp_path)
    assert not isinstance(result, dict), "planned a control plane that ships no manifests"
    assert "set deploy_dir to the repository's deploy/ directory" in " ".join(result.stderr.split())


# --- input validation and expressions of the provider-using modules -------------------------
# Their resources need providers that cannot be downloaded here, but their variables (with
# the validations) and their provider-free locals plan without any.

# Values for required variables that pass their own validations.
REQUIRED = {
    "cloud": "aws", "role": "worker", "kubernetes_version": "1.33.5", "join_token": TOKEN,
    "availability_zones": ["eu-west-1a"], "cluster_cidrs": ["10.244.0.0/16"], "vpc_cidrs": ["10.0.0.0/16"],
    "subnet_ids": {"eu-west-1a": "subnet-1"},
}
MODULES_WITH_CLUSTER_NAME = sorted(
    d for d in list((TF / "aws" / "modules").iterdir()) + list((TF / "azure" / "modules").iterdir())
    + [INIT_MODULE] if (d / "variables.tf").is_file() and 'variable "cluster_name"' in (d / "variables.tf").read_text()
)


def variables_only(module_dir, workdir, locals_from_main=False, outputs=None):
    """A root module of `module_dir`'s variables.tf (and, if asked, main.tf's locals blocks)."""
    shutil.copy(module_dir / "variables.tf", workdir / "variables.tf")
    extra = ""
    if locals_from_main:
        found = re.findall(r"^locals \{\n.*?^\}\n", (module_dir / "main.tf").read_text(), re.M | re.S)
        assert found, f"{module_dir}/main.tf has no locals block"
        extra += "\n".join(found)
    for name, expression in (outputs or {}).items():
        extra += f'\noutput "{name}" {{\n  value = {expression}\n}}\n'
    (workdir / "main.tf").write_text(extra)
    tfs.init(workdir)


def required_values(module_dir, **given):
    """A value for every required variable: REQUIRED's, or an empty one of its type."""
    empty = {"list": [], "map": {}, "set": [], "number": 1, "bool": True}
    values = {}
    for entry in tfs_hcl_variables(module_dir):
        for name, body in entry.items():
            if "default" not in body:
                kind = re.match(r"\$\{(\w+)", str(body["type"][0] if isinstance(body["type"], list) else body["type"]))
                values[name] = REQUIRED.get(name, empty.get(kind.group(1) if kind else "", "x"))
    values.update(given)
    return values


def tfs_hcl_variables(module_dir):
    try:
        import hcl2
    except ImportError:
        require(False, "python module hcl2 (python-hcl2) is not installed (run scripts/setup)")
    with open(module_dir / "variables.tf") as f:
        return hcl2.load(f).get("variable", [])


@pytest.mark.parametrize("module_dir", MODULES_WITH_CLUSTER_NAME, ids=lambda p: str(p.relative_to(TF)))
def test_cluster_name_is_validated_where_it_names_resources(tmp_path, module_dir):
    """IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27 for the name); Azure VM
    and host names become Kubernetes node names (lowercase DNS labels); the name is cni-cloud's
    Azure route-name prefix (no "--", its separator)."""
    tfs.terraform_binary()
    variables_only(module_dir, tmp_path)
    good = ["cni-cloud-test", "a", "k1", "a" * 27, "prod-eu-1"]
    bad = ["a" * 28, "Cluster", "a--b", "a_b", "a.b", "-a", "a-", "1abc", "", "a b"]
    for name in good:
        result = tfs.plan(tmp_path, required_values(module_dir, cluster_name=name))
        assert isinstance(result, dict), f"{name!r} refused:\n{result.stderr}"
    for name in bad:
        result = tfs.plan(tmp_path, required_values(module_dir, cluster_name=name))
        assert tfs.failed_on(result, "cluster_name"), f"{name!r} accepted (or refused for another reason)"


def test_azure_nsg_rules_never_mix_address_families(tmp_path):
    network = TF / "azure" / "modules" / "network"
    tfs.terraform_binary()
    variables_only(network, tmp_path, locals_from_main=True, outputs={"rules": "local.nsg_rules"})

    def rule(priority, prefixes, ssh=False):
        return {"priority": priority, "prefixes": prefixes, "protocol": "Tcp" if ssh else "*",
                "port": "22" if ssh else "*", "destination": "VirtualNetwork" if ssh else "*"}

    cases = [
        (["10.244.0.0/16"], [], {"pods-in-ipv4": rule(100, ["10.244.0.0/16"])}),
        (["10.244.0.0/16", "fd00:10:244::/56"], ["203.0.113.7/32", "2001:db8::7/128"], {
            "pods-in-ipv4": rule(100, ["10.244.0.0/16"]), "pods-in-ipv6": rule(101, ["fd00:10:244::/56"]),
            "admin-ssh-in-ipv4": rule(110, ["203.0.113.7/32"], ssh=True),
            "admin-ssh-in-ipv6": rule(111, ["2001:db8::7/128"], ssh=True)}),
        (["fd00:10:244::/56"], ["2001:db8::/64"], {
            "pods-in-ipv6": rule(101, ["fd00:10:244::/56"]), "admin-ssh-in-ipv6": rule(111, ["2001:db8::/64"], ssh=True)}),
    ]
    for pods, admin, expected in cases:
        result = tfs.plan(tmp_path, required_values(network, cluster_cidrs=pods, admin_cidrs=admin))
        assert isinstance(result, dict), result.stderr
        rules = result["planned_values"]["outputs"]["rules"]["value"]
        assert {k: {f: v[f] for f in ["priority", "prefixes", "protocol", "port", "destination"]}
                for k, v in rules.items()} == expected
