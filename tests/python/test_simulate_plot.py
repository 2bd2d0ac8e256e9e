"""`cni-cloud-controller simulate --plot FILE.svg`: the file is valid SVG (XML), and what it
draws matches the run's JSON summary: the routes-present series ends at `routes_present`,
reaches `routes_expected` no later than `seconds`, the floor line reaches it at
`floor_seconds`, throttle and fault markers add up to `throttled` / `faults_injected`, and
with --kube there is one leader-change line per `leader_changes`. The routes line in the SVG
passes through exactly the sampled points mapped to the chart's pixels.

The binary missing skips loudly (fails under CNI_CLOUD_REQUIRE_ALL=1).
"""

import json
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from test_deploy import built_binary

SVG = "{http://www.w3.org/2000/svg}"


def simulate(tmp_path, *args):
    controller = built_binary("CNI_CLOUD_CONTROLLER_BIN", "cni-cloud-controller")
    plot = tmp_path / "run.svg"
    out = subprocess.run(
        [controller, "simulate", "--output", "json", "--timeout", "90", "--plot", str(plot), *args],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout), plot


def parse(plot):
    root = ET.parse(plot).getroot()  # raises on anything but well-formed XML
    assert root.tag == f"{SVG}svg", root.tag
    assert int(root.get("width")) > 0 and int(root.get("height")) > 0
    meta = root.find(f"{SVG}metadata[@id='cni-cloud-series']")
    assert meta is not None, "the series are embedded"
    return root, json.loads(meta.text)


def points(element):
    return [tuple(int(v) for v in p.split(",")) for p in element.get("points").split()]


def with_stroke(root, tag, color):
    return [e for e in root.iter(f"{SVG}{tag}") if (e.get("stroke") or "").upper() == color]


def check_against_summary(root, meta, summary):
    s = meta["series"]
    for key in ("routes_expected", "routes_present", "throttled", "faults_injected", "converged"):
        assert s[key] == summary[key], key
    assert s["floor_seconds"] == pytest.approx(summary["floor_seconds"])
    assert s["seconds"] == pytest.approx(summary["seconds"])

    samples = s["samples"]
    assert len(samples) >= 3, samples
    times = [p["t"] for p in samples]
    assert times == sorted(times) and times[0] == 0
    last = samples[-1]
    assert (last["present"], last["throttled"], last["faults"]) == (
        summary["routes_present"], summary["throttled"], summary["faults_injected"])
    assert max(p["present"] for p in samples) <= summary["routes_expected"]
    # The mock held every route no later than the run said it converged.
    reached = next(p["t"] for p in samples if p["present"] == summary["routes_expected"])
    assert reached <= summary["seconds"] + 0.05, (reached, summary["seconds"])
    assert sum(n for _, n in s["throttle_events"]) == summary["throttled"]
    assert sum(n for _, n in s["fault_events"]) == summary["faults_injected"]
    # The floor line reaches every expected route at floor_seconds.
    floor = s["floor"]
    assert [t for t, y in floor if y == summary["routes_expected"]][0] == pytest.approx(summary["floor_seconds"])

    # The routes line is drawn through exactly the samples, mapped to the chart's pixels.
    colors = meta["colors"]
    [routes] = [e for e in with_stroke(root, "polyline", colors["routes"]) if len(points(e)) > 2]
    drawn = points(routes)
    assert drawn == [tuple(p) for p in meta["routes_pixels"]]
    (x0, x1), (y0, y1) = meta["plot_area_pixels"]["x"], meta["plot_area_pixels"]["y"]
    x_max, y_max = meta["x_range"][1], meta["y_range"][1]
    # (The pixel ranges are half-open: the last pixel is x1 - 1, y1 - 1.)
    for (px, py), sample in zip(drawn, samples):
        assert abs(px - (x0 + sample["t"] / x_max * (x1 - 1 - x0))) <= 1, (px, sample)
        assert abs(py - (y1 - 1 - sample["present"] / y_max * (y1 - 1 - y0))) <= 1, (py, sample)
    # One marker per event, plus the legend's.
    faults = [e for e in root.iter(f"{SVG}polygon") if (e.get("fill") or "").upper() == colors["fault"]]
    assert len(faults) == len(s["fault_events"]) + 1
    throttles = with_stroke(root, "line", colors["throttle"])
    assert len(throttles) == 2 * (len(s["throttle_events"]) + 1), "a cross is two lines"
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert f"throttled ({summary['throttled']} calls)" in text
    assert f"faults injected ({summary['faults_injected']})" in text
    return s


def test_plot_of_a_faulty_aws_run_matches_the_summary(tmp_path):
    summary, plot = simulate(
        tmp_path, "--cloud", "aws", "--nodes", "120", "--tables", "2", "--faults", "0.05", "--time-scale", "20")
    root, meta = parse(plot)
    s = check_against_summary(root, meta, summary)
    assert summary["faults_injected"] > 0 and s["fault_events"], "the scenario injects faults"
    assert not s["leader_changes"]


def test_plot_of_an_azure_run_matches_the_summary(tmp_path):
    summary, plot = simulate(tmp_path, "--cloud", "azure", "--nodes", "60", "--time-scale", "20")
    root, meta = parse(plot)
    s = check_against_summary(root, meta, summary)
    # ARM writes a table in one operation: the floor is a step at one LRO.
    assert s["floor"][1] == [summary["floor_seconds"], 0]


def test_plot_of_a_kube_failover_marks_the_leader_changes(tmp_path):
    summary, plot = simulate(
        tmp_path, "--kube", "--replicas", "2", "--kill-leader-at", "0.5", "--nodes", "150", "--time-scale", "20")
    root, meta = parse(plot)
    s = check_against_summary(root, meta, summary)
    assert summary["leader_changes"] >= 1
    assert len(s["leader_changes"]) == summary["leader_changes"]
    assert s["leader_killed"] is not None and s["leader_killed"] <= s["leader_changes"][-1]
    lines = with_stroke(root, "polyline", meta["colors"]["leader_change"])
    assert len(lines) == summary["leader_changes"] + 1, "one line per change, plus the legend's"
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert re.search(rf"leader change \({summary['leader_changes']}\)", text)
