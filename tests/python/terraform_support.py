"""What the Terraform tests share: loud skips, and the terraform binary run offline.

terraform is not a Debian or pip package, so scripts/setup cannot install it: where the
binary is absent the tests that run it skip loudly, even under CNI_CLOUD_REQUIRE_ALL=1. Where
it is installed (CI's machine kind has 1.11 in /usr/local/bin) it must work: a binary too old
for the modules' `required_version` fails under CNI_CLOUD_REQUIRE_ALL=1 like any missing tool.
"""

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
# The modules' required_version floor.
MIN_TERRAFORM = (1, 6)


def require(condition, what):
    if condition:
        return
    message = f"SKIPPED: {what}"
    if os.environ.get("CNI_CLOUD_REQUIRE_ALL") == "1":
        pytest.fail(f"{message} (CNI_CLOUD_REQUIRE_ALL=1 forbids skipping)")
    print(f"\n!!!!! {message} !!!!!\n", file=sys.stderr)
    pytest.skip(message)


def loud_skip(what):
    message = f"SKIPPED: {what}"
    print(f"\n!!!!! {message} !!!!!\n", file=sys.stderr)
    pytest.skip(message)


@functools.cache
def terraform_binary():
    path = shutil.which("terraform")
    if not path:
        loud_skip(
            "terraform is not installed (no Debian or pip package provides it, so this skip "
            "holds even under CNI_CLOUD_REQUIRE_ALL=1): install it from "
            "https://developer.hashicorp.com/terraform/install to run the plan harness and "
            "`terraform fmt -check`"
        )
    out = subprocess.run([path, "version", "-json"], capture_output=True, text=True, check=False,
                         env=offline_env(None))
    version = None
    try:
        version = tuple(int(x) for x in json.loads(out.stdout)["terraform_version"].split(".")[:2])
    except (ValueError, KeyError, json.JSONDecodeError):
        pass
    require(version is not None and version >= MIN_TERRAFORM,
            f"{path} is not a usable terraform >= {'.'.join(map(str, MIN_TERRAFORM))} "
            f"(it says {out.stdout.strip()!r} {out.stderr.strip()!r})")
    return path


def offline_env(workdir):
    """No checkpoint (update) call, no user CLI config (mirrors, credentials), data in workdir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update({"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"})
    if workdir is not None:
        config = Path(workdir) / ".terraformrc"
        config.touch()
        env.update({"TF_CLI_CONFIG_FILE": str(config), "TF_DATA_DIR": str(Path(workdir) / ".terraform")})
    else:
        env["TF_CLI_CONFIG_FILE"] = os.devnull
    return env


def run(args, workdir, check=True, timeout=300):
    proc = subprocess.run([terraform_binary(), f"-chdir={workdir}", *args], capture_output=True,
                          text=True, check=False, timeout=timeout, env=offline_env(workdir))
    if check:
        assert proc.returncode == 0, f"terraform {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def plan(workdir, variables=None):
    """`terraform plan` with `variables` (-var k=json): the plan's JSON, or the failed process."""
    args = ["plan", "-input=false", "-lock=false", "-out=tfplan", "-no-color"]
    for k, v in (variables or {}).items():
        args.append(f"-var={k}={v if isinstance(v, str) else json.dumps(v)}")
    proc = run(args, workdir, check=False)
    if proc.returncode != 0:
        return proc
    shown = run(["show", "-json", "tfplan"], workdir)
    return json.loads(shown.stdout)


def init(workdir):
    run(["init", "-input=false", "-backend=false", "-no-color"], workdir)


def failed_on(proc, variable):
    """The plan failed on `variable`'s validation (not on anything else)."""
    if isinstance(proc, dict) or proc.returncode == 0:
        return False
    text = re.sub(r"\s+", " ", proc.stderr + proc.stdout)
    return "Invalid value for variable" in text and f"var.{variable}" in text


def assert_cluster_render(kubectl, kustomization_dir, expected_config, annotations, image):
    """`kubectl kustomize` of the cluster kustomization: its ConfigMaps carry
    `expected_config`, the controller's ServiceAccount exactly `annotations` (the overlay's
    example identity replaced, never left pointing at someone else's role), every container
    runs `image`."""
    import yaml

    proc = subprocess.run([kubectl, "kustomize", str(kustomization_dir)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    objs = [o for o in yaml.safe_load_all(proc.stdout) if o]
    config = {}
    for o in objs:
        if o["kind"] == "ConfigMap":
            config.update(o["data"])
    for key, value in expected_config.items():
        assert config.get(key) == value, f"{key}: {config.get(key)!r} != {value!r}"
    sa = next(o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "cni-cloud-controller")
    assert sa["metadata"].get("annotations", {}) == annotations
    images = {c["image"] for o in objs if o["kind"] in ("Deployment", "DaemonSet")
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {image}
