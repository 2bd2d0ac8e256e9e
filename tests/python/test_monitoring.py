"""deploy/monitoring checks: the alert rules and every dashboard query parse (promtool), each
alert fires and stays silent where it must (promtool unit tests, which fail if any alert is
made to never or always fire), every metric name and label the kit uses is one a running
controller exports (scraped from `cni-cloud-controller run` against the mock EC2), the
rendered component is valid Kubernetes (the Prometheus Operator CRD schemas supplied in
tests/python/monitoring/schemas) and checkov stays clean, and each alert has a runbook
section in deploy/README.md.

Tools missing (promtool from Debian's `prometheus`, kubectl, the venv's tools, the built
binaries) skip with a loud message, and fail under CNI_CLOUD_REQUIRE_ALL=1.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import test_deploy as deploy_checks
from test_deploy import built_binary, import_or_skip, require

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULE_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "cni-cloud-dashboard.json"
UNIT_TESTS = Path(__file__).resolve().parent / "monitoring" / "alerts.test.yaml"
SCHEMAS = Path(__file__).resolve().parent / "monitoring" / "schemas"
# Labels Prometheus adds to every scraped series (a PodMonitor adds namespace/pod too).
TARGET_LABELS = {"instance", "job", "namespace", "pod", "container", "endpoint"}


def promtool():
    path = shutil.which("promtool")
    require(path, "promtool is not installed (Debian package `prometheus`; run scripts/setup as root)")
    return path


def yaml_module():
    return import_or_skip("yaml")


def rule_spec():
    return yaml_module().safe_load(RULE_FILE.read_text())["spec"]


def alerts():
    return [r for g in rule_spec()["groups"] for r in g["rules"] if "alert" in r]


def dashboard():
    return json.loads(DASHBOARD_FILE.read_text())


def dashboard_queries():
    """(panel title, PromQL) with Grafana's interval variables filled in."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var in ("$__rate_interval", "$__interval", "${__rate_interval}"):
                expr = expr.replace(var, "5m")
            out.append((panel["title"], expr))
    return out


def run_promtool(*args, cwd=None):
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


# --------------------------------------------------------------------------------------
# promtool: every expression parses; unit tests for firing and not firing


def test_rules_pass_promtool_check(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml_module().safe_dump(rule_spec()))
    out = run_promtool("check", "rules", str(rules))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout, out.stdout


def test_dashboard_queries_parse(tmp_path):
    """promtool parses each panel query (as a recording rule) the same way Prometheus would."""
    queries = dashboard_queries()
    assert len(queries) >= 10, queries
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"cni_cloud:dashboard_query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)
    ]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml_module().safe_dump(rules))
    out = run_promtool("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    # The check itself rejects a broken query.
    rules["groups"][0]["rules"].append({"record": "cni_cloud:broken", "expr": "sum by (table (cni_cloud_routes)"})
    path.write_text(yaml_module().safe_dump(rules))
    assert run_promtool("check", "rules", str(path)).returncode != 0


def promtool_unit_tests(tmp_path, spec):
    (tmp_path / "rules.yaml").write_text(yaml_module().safe_dump(spec))
    shutil.copy(UNIT_TESTS, tmp_path / "alerts.test.yaml")
    return run_promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)


def test_alert_unit_tests_pass(tmp_path):
    out = promtool_unit_tests(tmp_path, rule_spec())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_firing_and_a_silent_case():
    cases = {}
    for test in yaml_module().safe_load(UNIT_TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    for alert in alerts():
        assert cases.get(alert["alert"]) == {True, False}, (
            f"{alert['alert']}: promtool tests need a case where it fires and one where it does not"
        )


@pytest.mark.parametrize("replacement", ["vector(0) > 1", "vector(1)"])
def test_unit_tests_fail_for_a_never_or_always_firing_alert(tmp_path, replacement):
    """The unit tests pin behaviour: making every alert never fire (or always fire) fails a
    case of every alert."""
    spec = rule_spec()
    for group in spec["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["expr"] = replacement
    out = promtool_unit_tests(tmp_path, spec)
    assert out.returncode != 0
    failed = set(re.findall(r"alertname: (\w+), time:", out.stdout + out.stderr))
    assert failed == {a["alert"] for a in alerts()}, failed


# --------------------------------------------------------------------------------------
# Alerts are actionable and have a runbook


def readme_anchors():
    text = re.sub(r"(?ms)^```.*?^```", "", (ROOT / "deploy" / "README.md").read_text())
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"(?m)^#+ (.+)$", text)}


def test_every_alert_is_documented_and_actionable():
    anchors = readme_anchors()
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    required = {
        "CniCloudRouteQuotaNearlyFull", "CniCloudRouteQuotaExhausted", "CniCloudNodesNotRouted",
        "CniCloudNoLeader", "CniCloudMultipleLeaders", "CniCloudApiThrottled", "CniCloudApiErrors",
        "CniCloudReconcileFailing", "CniCloudNotConverged", "CniCloudDeletionGuardTripped",
    }
    assert required <= set(names), required - set(names)
    for alert in alerts():
        labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
        assert labels.get("severity") in ("warning", "critical"), alert["alert"]
        assert len(annotations.get("summary", "").split()) >= 5, alert["alert"]
        assert len(annotations.get("description", "").split()) >= 20, alert["alert"]
        runbook = annotations.get("runbook", "")
        assert runbook == f"deploy/README.md#{alert['alert'].lower()}", runbook
        assert alert["alert"].lower() in anchors, f"deploy/README.md has no section {alert['alert']}"
    quota = {a["alert"]: a for a in alerts()}
    for name in ("CniCloudRouteQuotaNearlyFull", "CniCloudRouteQuotaExhausted"):
        text = quota[name]["annotations"]["summary"] + quota[name]["annotations"]["description"]
        assert "$labels.table" in text and "$labels.family" in text, "quota alerts name the table and family"


def test_dashboard_covers_what_operators_look_at():
    d = dashboard()
    assert d["uid"] == "cni-cloud" and d["title"]
    titles = {p["title"] for p in d["panels"]}
    for title in (
        "Quota headroom per table", "Routes desired vs present", "Nodes by status",
        "Writes against the published write bucket", "Reads against the published read bucket",
        "Throttles per action", "Pass duration", "Leader",
    ):
        assert title in titles, title
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    # The published bucket rates drawn against our calls are the ones the providers pace to.
    pacing = (ROOT / "providers" / "src" / "pacing.rs").read_text()
    rates = {
        name: float(rate)
        for name, rate in re.findall(r"pub const (\w+): BucketSpec = BucketSpec \{\s*burst: \d+,\s*per_second: ([\d.]+)", pacing)
    }
    exprs = " ".join(e for _, e in dashboard_queries())
    for bucket in ("EC2_MUTATING", "EC2_NON_MUTATING", "ARM_WRITES", "ARM_READS"):
        assert f"vector({rates[bucket]:g})" in exprs, (bucket, rates[bucket])


# --------------------------------------------------------------------------------------
# Every metric name and label the kit uses is exported by a running controller

AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                "count_values", "group", "limitk", "limit_ratio"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATORS = {"and", "or", "unless", "bool", "offset", "atan2"}
TOKEN = re.compile(r'\s+|"(?:[^"\\]|\\.)*"|\[[^\]]*\]|[A-Za-z_:][A-Za-z0-9_:]*|[0-9.eE+-]+|=~|!~|!=|==|>=|<=|.', re.S)


def promql_uses(expr):
    """(metric names, {metric: {label: [(op, value)]}}, grouping labels) used by `expr`."""
    tokens = [t for t in TOKEN.findall(expr) if t.strip()]
    metrics, matchers, grouping = set(), {}, set()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in GROUPING and nxt == "(":
            j = i + 2
            while tokens[j] != ")":
                if tokens[j] != ",":
                    grouping.add(tokens[j])
                j += 1
            i = j + 1
            continue
        if re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", tok) and tok not in OPERATORS | AGGREGATIONS and nxt != "(":
            metrics.add(tok)
            labels = matchers.setdefault(tok, {})
            if nxt == "{":
                j = i + 2
                while tokens[j] != "}":
                    if tokens[j] == ",":
                        j += 1
                        continue
                    label, op, value = tokens[j], tokens[j + 1], json.loads(tokens[j + 2])
                    labels.setdefault(label, []).append((op, value))
                    j += 3
                i = j
        elif tok == "{" and (i == 0 or tokens[i - 1] in ("(", ",")):
            raise AssertionError(f"selector without a metric name in {expr!r}")
        i += 1
    return metrics, matchers, grouping


def annotation_labels(text):
    """Labels an alert template reads ({{ $labels.table }})."""
    return set(re.findall(r"\$labels\.(\w+)", text))


def legend_labels(text):
    """Labels a Grafana legend reads ({{table}})."""
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", text))


def kit_uses():
    """[(where, expr, labels the templates read)] for every rule and panel query."""
    uses = []
    for rule in alerts():
        text = " ".join(rule.get("annotations", {}).values())
        uses.append((f"alert {rule['alert']}", rule["expr"], annotation_labels(text)))
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "5m")
            uses.append((f"panel {panel['title']!r}", expr, legend_labels(target.get("legendFormat", ""))))
    return uses


def parse_exposition(text):
    """{sample name: {label: set(values)}} from the text exposition."""
    exported = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s", line)
        assert m, line
        labels = exported.setdefault(m.group(1), {})
        for label, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(label, set()).add(value)
    return exported


def source_values():
    """Label values the code can produce that a short run may not show: every error kind
    (outcome) and every node status."""
    error = (ROOT / "providers" / "src" / "error.rs").read_text()
    planner = (ROOT / "controller" / "src" / "planner" / "mod.rs").read_text()
    status_fn = planner[planner.index("pub fn status_name"):]
    status_fn = status_fn[: status_fn.index("\n}\n")]
    return {
        "outcome": set(re.findall(r'ErrorKind::\w+ => "(\w+)"', error)) | {"ok"},
        "status": set(re.findall(r'=> "(\w+)"', status_fn)),
    }


def missing_in(exported, uses, known_values):
    """Every metric name, label and enumerated label value the kit uses that `exported`
    (a scrape) does not have."""
    problems = []
    for where, expr, templated in uses:
        metrics, matchers, grouping = promql_uses(expr)
        labels_here = set(TARGET_LABELS)
        for metric in metrics:
            if metric not in exported:
                problems.append(f"{where}: metric {metric} is not exported")
                continue
            labels_here |= set(exported[metric])
            for label, conditions in matchers.get(metric, {}).items():
                if label not in exported[metric] and label not in TARGET_LABELS:
                    problems.append(f"{where}: {metric} has no label {label}")
                    continue
                if label in ("action",) or label in TARGET_LABELS:
                    continue  # open-ended values
                allowed = exported[metric].get(label, set()) | known_values.get(label, set())
                for op, value in conditions:
                    alternatives = value.split("|") if op in ("=~", "!~") else [value]
                    for alt in alternatives:
                        if re.fullmatch(r"\w+", alt) and alt not in allowed:
                            problems.append(f"{where}: {metric}{{{label}{op}{value!r}}}: {alt} is never exported")
        for label in (grouping | templated) - labels_here:
            problems.append(f"{where}: label {label} is on none of {sorted(metrics)}")
    return problems


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


EC2_SEED = {
    "vpcs": [{"id": "vpc-1", "cidr": "10.0.0.0/16"}],
    "route_tables": [{
        "id": "rtb-a", "vpc_id": "vpc-1", "tags": {"kubernetes.io/cluster/c1": "owned"},
        "routes": [
            {"destination": "0.0.0.0/0", "target": {"type": "gateway", "id": "igw-1"}},
            # Someone else's route on node-4's podCIDR: a conflict.
            {"destination": "100.64.4.0/24", "target": {"type": "gateway", "id": "igw-1"}},
        ],
    }],
    "instances": [
        {"id": f"i-{i}", "availability_zone": "us-east-1a", "tags": {"kubernetes.io/cluster/c1": "owned"},
         "network_interfaces": [{"id": f"eni-{i}", "device_index": 0, "private_ip": f"10.0.1.{10 + i}",
                                 "source_dest_check": True}]}
        for i in range(6)
    ],
}


def nodes_file():
    nodes = []
    for i in range(6):
        # node-5's podCIDR is outside the cluster CIDR: invalid input.
        cidr = "192.168.5.0/24" if i == 5 else f"100.64.{i}.0/24"
        nodes.append({"name": f"node-{i}", "uid": f"u{i}", "created_unix": 1_700_000_000 + i,
                      "provider_id": f"aws:///us-east-1a/i-{i}", "pod_cidrs": [cidr],
                      "internal_ips": [f"10.0.1.{10 + i}"]})
    return nodes


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The exposition of a controller that converged against the mock EC2: quota-blocked,
    conflicting and invalid nodes, injected faults."""
    mocks = built_binary("CNI_CLOUD_MOCKS_BIN", "cni-cloud-mocks")
    controller = built_binary("CNI_CLOUD_CONTROLLER_BIN", "cni-cloud-controller")
    tmp = tmp_path_factory.mktemp("scrape")
    (tmp / "seed.json").write_text(json.dumps(EC2_SEED))
    (tmp / "nodes.json").write_text(json.dumps(nodes_file()))
    # 6 routes per family: local + 2 foreign leave room for 3 of the 4 valid nodes' routes.
    mock = subprocess.Popen(
        [mocks, "ec2", "--listen", "127.0.0.1:0", "--seed", str(tmp / "seed.json"), "--route-limit", "6",
         "--time-scale", "20", "--fault-rate", "0.25"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    procs = [mock]
    try:
        line = mock.stdout.readline()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert url, f"mock ec2 said {line!r}; stderr: {mock.stderr.read() if mock.poll() is not None else ''}"
        port = free_port()
        env = {**os.environ, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDSCRAPE",
               "AWS_SECRET_ACCESS_KEY": "scrape", "AWS_EC2_METADATA_DISABLED": "true",
               "CNI_CLOUD_ROUTE_LIMIT": "6", "CNI_CLOUD_TIME_SCALE": "20", "RUST_LOG": "warn"}
        log = open(tmp / "controller.log", "w")
        ctl = subprocess.Popen(
            [controller, "run", "--cloud", "aws", "--cluster-name", "c1", "--cluster-cidrs", "100.64.0.0/10",
             "--aws-endpoint", url.group(1), "--nodes-file", str(tmp / "nodes.json"),
             "--metrics-addr", f"127.0.0.1:{port}", "--resync", "1s"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        procs.append(ctl)
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline:
            assert ctl.poll() is None, f"controller exited: {(tmp / 'controller.log').read_text()[-3000:]}"
            try:
                text = scrape(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                time.sleep(0.2)
                continue
            if re.search(r'cni_cloud_reconcile_passes_total\{result="converged"\} [1-9]', text):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"no converged pass within 90 s; last scrape:\n{text}\nlog:\n{(tmp / 'controller.log').read_text()[-3000:]}")
        # One more resync so every counter family has been mirrored at least once.
        time.sleep(1.5)
        return scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_scraped_controller_reports_the_scenario(exported):
    """The scrape is a real one: the scenario's statuses and a converged pass are in it."""
    values = parse_exposition(exported)
    assert {"routed", "quota_exceeded", "conflict", "invalid_input"} <= values["cni_cloud_nodes"]["status"], values["cni_cloud_nodes"]
    assert values["cni_cloud_leader"] == {}, "an unlabelled gauge"
    assert re.search(r"(?m)^cni_cloud_leader 1$", exported), exported
    assert {"desired", "present", "conflicting"} <= values["cni_cloud_routes"]["state"]
    assert values["cni_cloud_route_quota_limit"]["table"] == {"rtb-a"}
    assert re.search(r'(?m)^cni_cloud_route_quota_used\{table="rtb-a",family="ipv4"\} 6$', exported), exported
    assert re.search(r'(?m)^cni_cloud_deletion_guard_held_deletes\{table="rtb-a"\} 0$', exported), exported
    stamp = re.search(r"(?m)^cni_cloud_last_converged_timestamp_seconds (\S+)$", exported)
    assert stamp and abs(float(stamp.group(1)) - time.time()) < 120, exported


def test_every_metric_and_label_the_kit_uses_is_exported(exported):
    problems = missing_in(parse_exposition(exported), kit_uses(), source_values())
    assert not problems, "\n".join(problems)


def test_the_export_check_catches_unknown_names_labels_and_values(exported):
    values = parse_exposition(exported)
    bad = [
        ("typo", "cni_cloud_route_quota_usd / cni_cloud_route_quota_limit", set()),
        ("label", 'sum by (zone) (cni_cloud_routes{state="present"})', set()),
        ("matcher", 'cni_cloud_nodes{reason="RouteCreated"}', set()),
        ("value", 'cni_cloud_nodes{status="quota_exhausted"}', set()),
        ("legend", "cni_cloud_leader", {"table"}),
    ]
    for where, expr, templated in bad:
        assert missing_in(values, [(where, expr, templated)], source_values()), where
    assert not missing_in(values, [("ok", 'sum by (table) (cni_cloud_routes{state=~"desired|present"})', {"table"})], source_values())


# --------------------------------------------------------------------------------------
# The rendered component: valid Kubernetes (CRD schemas supplied), checkov clean


def render_with_component(tmp_path, overlay):
    overlay_dir = tmp_path / f"with-monitoring-{overlay}"
    overlay_dir.mkdir()
    deploy = os.path.relpath(ROOT / "deploy", overlay_dir)
    (overlay_dir / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{deploy}/overlays/{overlay}]\ncomponents: [{deploy}/monitoring]\n"
    )
    return deploy_checks.kustomize(overlay_dir)


@pytest.fixture
def kv_with_crds(monkeypatch):
    """kubernetes-validate, with the PrometheusRule and PodMonitor schemas supplied next to
    its built-in ones (strict: unknown fields fail)."""
    kv = import_or_skip("kubernetes_validate")
    utils = sys.modules["kubernetes_validate.utils"]
    original = utils.schema_contents

    def schema_contents(filename, desired_version):
        name = filename.rsplit("/", 1)[-1]
        supplied = SCHEMAS / name
        if name.endswith("-monitoring-v1.json") and supplied.exists():
            return json.loads(supplied.read_text())
        return original(filename, desired_version)

    monkeypatch.setattr(utils, "schema_contents", schema_contents)
    return kv


@pytest.mark.parametrize("overlay", deploy_checks.OVERLAYS)
def test_rendered_component_is_valid_kubernetes(tmp_path, overlay, kv_with_crds):
    kv = kv_with_crds
    docs = render_with_component(tmp_path, overlay)
    added = [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "monitoring"]
    assert sorted(d["kind"] for d in added) == ["ConfigMap", "PodMonitor", "PrometheusRule"], added
    for doc in docs:
        for version in (kv.latest_version(), deploy_checks.OLDEST_SUPPORTED):
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as err:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {version}: {err}")
    for doc in added:
        assert doc["metadata"]["namespace"] == deploy_checks.NAMESPACE, doc["metadata"]

    by_kind = {d["kind"]: d for d in added}
    rule = by_kind["PrometheusRule"]
    assert rule["spec"] == rule_spec()
    cm = by_kind["ConfigMap"]
    assert cm["metadata"]["name"] == "cni-cloud-dashboard", "a fixed name for the Grafana sidecar"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["cni-cloud-dashboard.json"]) == dashboard()
    # The PodMonitor scrapes the controller's metrics port.
    pm = by_kind["PodMonitor"]
    deployment = deploy_checks.one(docs, "Deployment", "cni-cloud-controller")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {e["port"] for e in pm["spec"]["podMetricsEndpoints"]} <= ports


def test_supplied_crd_schemas_refuse_broken_objects(tmp_path, kv_with_crds):
    kv = kv_with_crds
    docs = render_with_component(tmp_path, "aws")
    rule = deploy_checks.one(docs, "PrometheusRule", "cni-cloud")
    rule["spec"]["groups"][0]["rules"][0]["expresion"] = rule["spec"]["groups"][0]["rules"][0].pop("expr")
    with pytest.raises(kv.ValidationError):
        kv.validate(rule, kv.latest_version(), strict=True)
    rule = deploy_checks.one(docs, "PrometheusRule", "cni-cloud")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "15 minutes"
    with pytest.raises(kv.ValidationError):
        kv.validate(rule, kv.latest_version(), strict=True)
    pm = deploy_checks.one(docs, "PodMonitor", "cni-cloud-controller")
    pm["spec"]["podMetricsEndpoints"][0]["prot"] = "metrics"
    with pytest.raises(kv.ValidationError):
        kv.validate(pm, kv.latest_version(), strict=True)


def test_checkov_passes_on_the_rendered_component(tmp_path):
    docs = render_with_component(tmp_path, "aws")
    added = [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "monitoring"]
    manifest = tmp_path / "monitoring.yaml"
    manifest.write_text(yaml_module().safe_dump_all(added, sort_keys=False))
    reports = deploy_checks.checkov_json(["-f", str(manifest), "--framework", "kubernetes"])
    failed = deploy_checks.results(reports, "failed_checks")
    assert not failed, [f"{c['check_id']} {c['resource']}" for c in failed]
    assert deploy_checks.results(reports, "passed_checks"), "checkov evaluated nothing"
