"""deploy/ checks: every overlay renders with kustomize, every rendered object is valid
Kubernetes (strict schema, current and oldest supported version), checkov passes with each
skip justified and necessary, and the manifests follow the CNI self-hosting practices (host
network, tolerations, grace period, least privilege). Also checks the manifests against the
binaries: every CNI_CLOUD_* variable they set is one the binary reads.

Tools missing (kubectl, the venv's kubernetes-validate / checkov, the built binaries) skip
with a loud message, and fail under CNI_CLOUD_REQUIRE_ALL=1.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kubectl_support

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ["aws", "azure"]
NAMESPACE = "cni-cloud"
# The newest schema kubernetes-validate ships, and the oldest Kubernetes we support
# (k8s-openapi is built for 1.33).
OLDEST_SUPPORTED = "1.33.0"


def require(condition, what):
    if condition:
        return
    message = f"SKIPPED: {what}"
    if os.environ.get("CNI_CLOUD_REQUIRE_ALL") == "1":
        pytest.fail(f"{message} (CNI_CLOUD_REQUIRE_ALL=1 forbids skipping)")
    print(f"\n!!!!! {message} !!!!!\n", file=sys.stderr)
    pytest.skip(message)


def import_or_skip(module):
    try:
        return __import__(module)
    except ImportError:
        require(False, f"python module {module} is not installed (run scripts/setup)")


def venv_tool(name):
    candidates = [Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name]
    found = next((str(p) for p in candidates if p.exists()), None) or shutil.which(name)
    require(found, f"{name} is not installed (run scripts/setup)")
    return found


def kustomize(path):
    kubectl = kubectl_support.kubectl(require)
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    yaml = import_or_skip("yaml")
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert docs, f"{path} rendered nothing"
    return docs


_RENDERED = {}


def rendered(overlay):
    if overlay not in _RENDERED:
        path = DEPLOY / "base" if overlay == "base" else DEPLOY / "overlays" / overlay
        _RENDERED[overlay] = kustomize(path)
    return copy.deepcopy(_RENDERED[overlay])


def by_kind(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert found, f"no {kind} {name or ''} in the render"
    return found


def one(docs, kind, name):
    found = by_kind(docs, kind, name)
    assert len(found) == 1, f"{len(found)} {kind}/{name}"
    return found[0]


def configmap(docs, prefix):
    """A generated ConfigMap (name-<hash>)."""
    found = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{10}", d["metadata"]["name"])
    ]
    assert len(found) == 1, f"ConfigMap {prefix}-<hash>: {[d['metadata']['name'] for d in docs if d['kind'] == 'ConfigMap']}"
    return found[0]


def pod_env(docs, workload):
    """Every environment variable a workload's container sees, from env and envFrom."""
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        cm = one(docs, "ConfigMap", name)
        env.update(cm.get("data", {}))
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


# --------------------------------------------------------------------------------------
# Rendering and schema validation


@pytest.mark.parametrize("overlay", ["base"] + OVERLAYS)
def test_overlay_renders_and_every_object_is_valid_kubernetes(overlay):
    kv = import_or_skip("kubernetes_validate")
    versions = [kv.latest_version(), OLDEST_SUPPORTED]
    docs = rendered(overlay)
    for doc in docs:
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as err:
                pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} invalid for {version}: {err}")
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
            "Deployment",
            "Namespace",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "ServiceAccount",
        ]
    ), kinds
    for doc in docs:
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            # The one exception: Node Events are filed in "default", so is their Role.
            expected = "default" if doc["metadata"]["name"] == "cni-cloud-controller-node-events" else NAMESPACE
            assert doc["metadata"].get("namespace") == expected, doc["metadata"]


def test_validation_catches_a_broken_object():
    """The validator is strict: an unknown field fails (so the test above can fail)."""
    kv = import_or_skip("kubernetes_validate")
    docs = rendered("aws")
    ds = one(docs, "DaemonSet", "cni-cloud-node")
    ds["spec"]["template"]["spec"]["hostNetwrok"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(ds, kv.latest_version(), strict=True)


@pytest.mark.parametrize("overlay", ["base"] + OVERLAYS)
def test_every_config_reference_resolves(overlay):
    docs = rendered(overlay)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for workload in [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]:
        spec = workload["spec"]["template"]["spec"]
        assert ("ServiceAccount", spec["serviceAccountName"]) in names
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names, source
    for binding in [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]:
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in names, binding
        for subject in binding["subjects"]:
            assert ("ServiceAccount", subject["name"]) in names and subject["namespace"] == NAMESPACE


# --------------------------------------------------------------------------------------
# checkov


def checkov_json(target_args):
    checkov = venv_tool("checkov")
    out = subprocess.run(
        [checkov, *target_args, "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_BANNER": "1"},
        timeout=600,
    )
    assert out.stdout.strip(), f"checkov printed nothing:\n{out.stderr[-3000:]}"
    reports = json.loads(out.stdout)
    return reports if isinstance(reports, list) else [reports]


def results(reports, key):
    return [c for r in reports for c in r.get("results", {}).get(key, [])]


def skip_annotations(docs):
    """(resource kind/name, check id) -> justification, from checkov.io/skipN annotations."""
    skips = {}
    for doc in docs:
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                skips[(doc["kind"], doc["metadata"]["name"], check)] = reason
    return skips


def test_checkov_passes_over_deploy_with_justified_skips():
    reports = checkov_json(["-d", str(DEPLOY), "--framework", "kubernetes", "kustomize"])
    failed = results(reports, "failed_checks")
    assert not failed, "checkov failures:\n" + "\n".join(
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed
    )
    assert results(reports, "passed_checks"), "checkov evaluated nothing"
    skipped = results(reports, "skipped_checks")
    assert skipped, "expected the justified skips to be reported"
    # Every skip carries a real reason next to the resource.
    for overlay in ["base"] + OVERLAYS:
        for (kind, name, check), reason in skip_annotations(rendered(overlay)).items():
            assert re.fullmatch(r"CKV2?_K8S_\d+", check), (kind, name, check)
            assert len(reason.split()) >= 6, f"{kind}/{name} skips {check} without a justification"


def test_every_checkov_skip_is_necessary(tmp_path):
    """Without the skip annotations, checkov fails exactly the skipped checks: no skip hides
    nothing, and nothing else fails."""
    yaml = import_or_skip("yaml")
    copy_dir = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy_dir)
    for manifest in copy_dir.rglob("*.yaml"):
        docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
        for doc in docs:
            annotations = doc.get("metadata", {}).get("annotations") or {}
            for key in [k for k in annotations if k.startswith("checkov.io/skip")]:
                del annotations[key]
            if "annotations" in doc.get("metadata", {}) and not annotations:
                del doc["metadata"]["annotations"]
        manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    reports = checkov_json(["-d", str(copy_dir / "base"), "--framework", "kubernetes"])
    failed = {(c["check_id"], c["resource"].split(".")[0], c["resource"].split(".")[2]) for c in results(reports, "failed_checks")}
    declared = set()
    for (kind, name, check) in skip_annotations(rendered("base")):
        declared.add((check, "Pod" if check.startswith("CKV2_") else kind, name))
    # Graph checks name the pod template, not the workload: compare on (check, workload).
    failed_norm = {(check, kind, name) for (check, kind, name) in failed}
    assert failed_norm == declared, f"unskipped failures or unneeded skips:\n{sorted(failed_norm ^ declared)}"


def test_checkov_passes_on_the_dockerfile():
    reports = checkov_json(["-f", str(ROOT / "Dockerfile"), "--framework", "dockerfile"])
    failed = results(reports, "failed_checks")
    assert not failed, [f"{c['check_id']}: {c['check_name']}" for c in failed]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for match in re.finditer(r"checkov:skip=(CKV2?_DOCKER_\d+):(.*)", dockerfile):
        assert len(match.group(2).split()) >= 6, f"{match.group(1)} skipped without a justification"


# --------------------------------------------------------------------------------------
# The CNI DaemonSet: the talk's self-hosting practices, least privilege


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_node_daemonset_self_hosting_practices(overlay):
    docs = rendered(overlay)
    ds = one(docs, "DaemonSet", "cni-cloud-node")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "Default", "cluster DNS needs the pod network being installed"
    assert spec["tolerations"] == [{"operator": "Exists"}], "must tolerate every taint"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["serviceAccountName"] == "cni-cloud-node"
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = spec["containers"]
    assert container["command"] == ["/usr/local/bin/cni-cloud", "install"]
    sc = container["securityContext"]
    assert sc.get("privileged", False) is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == ["/usr/local/bin/cni-cloud", "install", "--check"]
    assert container["resources"]["requests"] and container["resources"]["limits"]

    # Only the host paths it needs, each mounted where the installer is told to look.
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert all("hostPath" in v for v in volumes.values()), "only hostPath volumes expected"
    host_paths = {v["hostPath"]["path"]: name for name, v in volumes.items()}
    assert set(host_paths) == {"/opt/cni/bin", "/etc/cni/net.d", "/run/cni-cloud", "/proc/sys/net"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert set(mounts) == set(volumes)
    assert not any(m.get("readOnly") for m in mounts.values()), "the installer writes every mount"
    env = pod_env(docs, ds)
    assert mounts[host_paths["/opt/cni/bin"]]["mountPath"] == env["CNI_CLOUD_CNI_BIN_DIR"]
    assert mounts[host_paths["/etc/cni/net.d"]]["mountPath"] == env["CNI_CLOUD_CNI_CONF_DIR"]
    assert mounts[host_paths["/run/cni-cloud"]]["mountPath"] == env["CNI_CLOUD_DATA_DIR"] == "/run/cni-cloud"
    assert mounts[host_paths["/proc/sys/net"]]["mountPath"] == env["CNI_CLOUD_PROC_SYS_DIR"] + "/net"
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert re.fullmatch(r"0\d-cni-cloud\.conflist", env["CNI_CLOUD_CONFLIST_NAME"]), "must sort first"
    assert env["CNI_CLOUD_CLUSTER_CIDRS"] and env["CNI_CLOUD_VPC_CIDRS"], "masquerade exceptions"


# --------------------------------------------------------------------------------------
# The controller Deployment


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_deployment(overlay):
    docs = rendered(overlay)
    deploy = one(docs, "Deployment", "cni-cloud-controller")
    assert deploy["spec"]["replicas"] == 2
    spec = deploy["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "Default"
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["serviceAccountName"] == "cni-cloud-controller"
    tolerated = {t["key"] for t in spec["tolerations"]}
    assert {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/network-unavailable",
        "node.cloudprovider.kubernetes.io/uninitialized",
        "node-role.kubernetes.io/control-plane",
    } <= tolerated
    assert all(t["operator"] == "Exists" for t in spec["tolerations"])
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] >= 10000
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = spec["containers"]
    assert container["command"][:2] == ["/usr/local/bin/cni-cloud-controller", "run"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}, "no capability added"
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = pod_env(docs, deploy)
    assert env["CNI_CLOUD_METRICS_ADDR"].rsplit(":", 1)[1] == str(ports["metrics"])
    assert env["CNI_CLOUD_CLOUD"] == overlay
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, resources
    pdb = one(docs, "PodDisruptionBudget", "cni-cloud-controller")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_cloud_identity_wiring():
    aws = rendered("aws")
    sa = one(aws, "ServiceAccount", "cni-cloud-controller")
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])
    node_sa = one(aws, "ServiceAccount", "cni-cloud-node")
    assert not (node_sa["metadata"].get("annotations") or {}), "the installer needs no cloud identity"

    azure = rendered("azure")
    sa = one(azure, "ServiceAccount", "cni-cloud-controller")
    assert re.fullmatch(r"[0-9a-f-]{36}", sa["metadata"]["annotations"]["azure.workload.identity/client-id"])
    deploy = one(azure, "Deployment", "cni-cloud-controller")
    assert deploy["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    ds = one(azure, "DaemonSet", "cni-cloud-node")
    assert "azure.workload.identity/use" not in ds["spec"]["template"]["metadata"]["labels"]
    tables = pod_env(azure, deploy)["CNI_CLOUD_ROUTE_TABLES"]
    for table in tables.split(","):
        assert re.fullmatch(
            r"/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/Microsoft\.Network/routeTables/[^/]+",
            table,
        ), table


# --------------------------------------------------------------------------------------
# RBAC: exactly the verbs listed in the issue, nothing more


def rules_of(role):
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("overlay", ["base"] + OVERLAYS)
def test_rbac_is_exactly_least_privilege(overlay):
    docs = rendered(overlay)
    controller = one(docs, "ClusterRole", "cni-cloud-controller")
    # Cluster-wide: only what a watch of Nodes and the status patch need.
    assert rules_of(controller) == {
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("", "nodes/status", "patch"),
    }
    lease_role = one(docs, "Role", "cni-cloud-controller-leader-election")
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(lease_role) == {
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
        # The deletion guard's Event, about the Lease.
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    }
    # Node Events are filed in "default" (Nodes are cluster-scoped): a Role there only.
    node_events = one(docs, "Role", "cni-cloud-controller-node-events")
    assert node_events["metadata"]["namespace"] == "default"
    assert rules_of(node_events) == {
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    }
    installer = one(docs, "ClusterRole", "cni-cloud-node")
    assert rules_of(installer) == {("", "nodes", "get")}

    roles = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    assert len(roles) == 4, [r["metadata"]["name"] for r in roles]
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    bindings = {
        (d["kind"], d["metadata"]["name"]): (d["roleRef"]["name"], [(s["kind"], s["name"]) for s in d["subjects"]])
        for d in docs
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
    }
    assert bindings == {
        ("ClusterRoleBinding", "cni-cloud-controller"): (
            "cni-cloud-controller",
            [("ServiceAccount", "cni-cloud-controller")],
        ),
        ("RoleBinding", "cni-cloud-controller-leader-election"): (
            "cni-cloud-controller-leader-election",
            [("ServiceAccount", "cni-cloud-controller")],
        ),
        ("ClusterRoleBinding", "cni-cloud-node"): ("cni-cloud-node", [("ServiceAccount", "cni-cloud-node")]),
        ("RoleBinding", "cni-cloud-controller-node-events"): (
            "cni-cloud-controller-node-events",
            [("ServiceAccount", "cni-cloud-controller")],
        ),
    }


# --------------------------------------------------------------------------------------
# Manifests against the binaries: every CNI_CLOUD_* variable is one the binary reads


def env_names_in_help(binary, args):
    out = subprocess.run([binary, *args, "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 0, f"{binary} {' '.join(args)} --help failed:\n{out.stderr}"
    return set(re.findall(r"\[env: ([A-Z0-9_]+)", out.stdout))


def built_binary(variable, name):
    path = os.environ.get(variable)
    if not path:
        for profile in ("debug", "release"):
            candidate = ROOT / "target" / profile / name
            if candidate.exists():
                path = str(candidate)
                break
    require(path and Path(path).exists(), f"{name} is not built (set {variable} or run cargo build)")
    return path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_installer_reads_every_variable_the_daemonset_sets(overlay):
    known = env_names_in_help(built_binary("CNI_CLOUD_BIN", "cni-cloud"), ["install"])
    assert {"NODE_NAME", "CNI_CLOUD_CNI_BIN_DIR", "CNI_CLOUD_CLUSTER_CIDRS"} <= known, known
    docs = rendered(overlay)
    env = pod_env(docs, one(docs, "DaemonSet", "cni-cloud-node"))
    unknown = {name for name in env if name.startswith("CNI_CLOUD_") or name == "NODE_NAME"} - known
    assert not unknown, f"the DaemonSet sets variables `cni-cloud install` does not read: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_reads_every_variable_the_deployment_sets(overlay):
    known = env_names_in_help(built_binary("CNI_CLOUD_CONTROLLER_BIN", "cni-cloud-controller"), ["run"])
    docs = rendered(overlay)
    env = pod_env(docs, one(docs, "Deployment", "cni-cloud-controller"))
    unknown = {name for name in env if name.startswith("CNI_CLOUD_")} - known
    assert not unknown, f"the Deployment sets variables `cni-cloud-controller run` does not read: {sorted(unknown)}"


def test_image_layout_matches_the_manifests():
    """The Dockerfile puts the binaries where the manifests run them, with the controller's
    default user equal to its runAsUser."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    docs = rendered("aws")
    controller = one(docs, "Deployment", "cni-cloud-controller")["spec"]["template"]["spec"]
    node = one(docs, "DaemonSet", "cni-cloud-node")["spec"]["template"]["spec"]
    images = {c["image"] for spec in (controller, node) for c in spec["containers"]}
    assert len(images) == 1, f"one image for both workloads: {images}"
    for spec in (controller, node):
        binary = spec["containers"][0]["command"][0]
        assert f"/out{binary}" in dockerfile, f"the image does not install {binary}"
    user = re.findall(r"(?m)^USER\s+(\d+)(?::(\d+))?\s*$", dockerfile)
    assert user, "the final image must set a numeric non-root USER"
    uid, gid = user[-1]
    assert int(uid) != 0 and int(uid) == controller["securityContext"]["runAsUser"]
    assert gid == "" or int(gid) == controller["securityContext"]["runAsGroup"]
    assert "/usr/sbin/nft" in dockerfile, "the installer drives nft"
    stages = re.findall(r"(?m)^FROM\s+(\S+)", dockerfile)
    assert len(stages) >= 2 and "distroless" in stages[-1], stages


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_example_cidrs_are_consistent(overlay):
    """The overlay's example values are usable as they stand: canonical CIDRs, and pod CIDRs
    that do not overlap the VPC/VNet (routes to pods would shadow node addresses)."""
    import ipaddress

    docs = rendered(overlay)
    env = pod_env(docs, one(docs, "DaemonSet", "cni-cloud-node"))
    cluster = [ipaddress.ip_network(c, strict=True) for c in env["CNI_CLOUD_CLUSTER_CIDRS"].split(",")]
    vpc = [ipaddress.ip_network(c, strict=True) for c in env["CNI_CLOUD_VPC_CIDRS"].split(",")]
    for pods in cluster:
        for net in vpc:
            assert pods.version != net.version or not pods.overlaps(net), (pods, net)
    assert 576 <= int(env["CNI_CLOUD_MTU"]) <= 9001
