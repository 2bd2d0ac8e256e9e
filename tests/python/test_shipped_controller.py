"""The controller as the image ships it (`--no-default-features`, Dockerfile) has no
`simulate` subcommand and links none of the mock servers: not one symbol of
`cni_cloud_mocks` (or of the progress-bar library) is in the binary, while the default build,
checked the same way, has them (so the probe can see what it looks for).

scripts/test builds that binary into target/shipped/ (CNI_CLOUD_SHIPPED_CONTROLLER_BIN
overrides the path). The binary missing skips loudly (fails under CNI_CLOUD_REQUIRE_ALL=1).
"""

import mmap
import os
import re
import subprocess
from pathlib import Path

from test_deploy import ROOT, built_binary, require

MOCK_CRATES = (b"cni_cloud_mocks", b"indicatif")


def shipped():
    path = os.environ.get("CNI_CLOUD_SHIPPED_CONTROLLER_BIN") or str(ROOT / "target" / "shipped" / "cni-cloud-controller")
    require(Path(path).exists(), f"the shipped controller is not built at {path} (scripts/test builds it)")
    return path


def holds(binary, needle):
    with open(binary, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(needle) != -1


def test_the_image_builds_the_controller_without_its_default_features():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"cargo build [^\n]*-p cni-cloud-controller --no-default-features", dockerfile), (
        "the Dockerfile must build the controller with --no-default-features"
    )


def test_shipped_controller_has_no_simulate_subcommand():
    binary = shipped()
    out = subprocess.run([binary, "simulate"], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "unrecognized subcommand 'simulate'" in out.stderr, out.stderr
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "run" in help_text and "plan" in help_text, help_text
    assert "simulate" not in help_text, help_text


def test_shipped_controller_links_no_mocks():
    binary = shipped()
    assert holds(binary, b"cni_cloud_controller"), "the binary carries symbol names (not stripped)"
    found = [crate.decode() for crate in MOCK_CRATES if holds(binary, crate)]
    assert not found, f"the shipped controller links {found}"


def test_the_default_build_is_where_the_mocks_are():
    binary = built_binary("CNI_CLOUD_CONTROLLER_BIN", "cni-cloud-controller")
    out = subprocess.run([binary, "simulate", "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert all(holds(binary, crate) for crate in MOCK_CRATES), "the probe finds the mocks where they are linked"
