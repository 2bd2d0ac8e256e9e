"""Microsoft's own Python SDK (azure-mgmt-network) against our mock ARM.

Proof that `cni-cloud-mocks arm` speaks ARM the way Microsoft's client expects: the SDK's
long-running-operation poller, paging, models and error handling all run unmodified
against the mock binary.

azure-core refuses to send a bearer token over plain http. The mock is loopback-only
http, so every call passes azure-core's documented per-request option
`enforce_https=False` (BearerTokenCredentialPolicy), which is exactly what it is for.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "k8s"
REQUIRE_ALL = os.environ.get("CNI_CLOUD_REQUIRE_ALL") == "1"


def _missing(why):
    """Skip loudly, or fail under CNI_CLOUD_REQUIRE_ALL=1 (CI)."""
    msg = f"test_arm_sdk: {why}"
    print(f"\n*** SKIPPING: {msg} ***", file=sys.stderr)
    if REQUIRE_ALL:
        pytest.fail(msg + " (CNI_CLOUD_REQUIRE_ALL=1)")
    pytest.skip(msg)


try:
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.network.models import Route, RouteTable
except ImportError as exc:  # pragma: no cover - depends on the venv
    NetworkManagementClient = None
    IMPORT_ERROR = exc


def mocks_binary():
    candidates = [os.environ.get("CNI_CLOUD_MOCKS_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(os.path.join(target, "debug", "cni-cloud-mocks"))
    candidates.append(str(REPO / "target" / "debug" / "cni-cloud-mocks"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


class StaticToken:
    """A fixed-token credential (azure.core.credentials.TokenCredential protocol)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("static-test-token", int(time.time()) + 3600)


class MockArm:
    def __init__(self, tmp_path, *extra, more_vms=0):
        binary = mocks_binary()
        if binary is None:
            _missing("cni-cloud-mocks binary not found (set CNI_CLOUD_MOCKS_BIN or cargo build -p cni-cloud-mocks)")
        seed = tmp_path / "seed.json"
        seed.write_text(
            json.dumps(
                {
                    "routeTables": [
                        {
                            "subscription": SUB,
                            "resourceGroup": RG,
                            "name": "existing",
                            "routes": [
                                {
                                    "name": "ops-vpn",
                                    "properties": {
                                        "addressPrefix": "172.16.0.0/12",
                                        "nextHopType": "VirtualNetworkGateway",
                                    },
                                }
                            ],
                        }
                    ],
                    "virtualMachines": [
                        {
                            "subscription": SUB,
                            "resourceGroup": RG,
                            "name": "node-a",
                            "ipv4": "10.0.0.4",
                            "ipv6": "fd00::4",
                        }
                    ]
                    + [
                        {
                            "subscription": SUB,
                            "resourceGroup": RG,
                            "name": f"node-{i}",
                            "ipv4": f"10.0.1.{i}",
                        }
                        for i in range(1, 1 + more_vms)
                    ],
                }
            )
        )
        self.proc = subprocess.Popen(
            [binary, "arm", "--listen", "127.0.0.1:0", "--seed", str(seed), "--lro-seconds", "0.3", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError(f"mock did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line[len("listening on ") :]

    def client(self):
        return NetworkManagementClient(StaticToken(), SUB, base_url=self.url)

    def stats(self):
        import urllib.request

        with urllib.request.urlopen(self.url + "/_mock/stats") as resp:
            return json.load(resp)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def arm(tmp_path):
    if NetworkManagementClient is None:
        _missing(f"azure-mgmt-network is not installed ({IMPORT_ERROR})")
    mock = MockArm(tmp_path)
    yield mock
    mock.stop()


HTTP = {"enforce_https": False}


def test_sdk_creates_reads_and_lists_routes_through_the_lro(arm):
    client = arm.client()
    table = RouteTable(
        location="westeurope",
        routes=[
            Route(
                name="k1--10.244.1.0_24",
                address_prefix="10.244.1.0/24",
                next_hop_type="VirtualAppliance",
                next_hop_ip_address="10.0.0.4",
            ),
            Route(
                name="k1--fd00-10-244-1--_64",
                address_prefix="fd00:10:244:1::/64",
                next_hop_type="VirtualAppliance",
                next_hop_ip_address="fd00::4",
            ),
        ],
    )
    poller = client.route_tables.begin_create_or_update(RG, "pods", table, **HTTP)
    result = poller.result()
    assert poller.status() == "Succeeded"
    assert result.provisioning_state == "Succeeded"
    assert result.etag
    assert {r.name for r in result.routes} == {"k1--10.244.1.0_24", "k1--fd00-10-244-1--_64"}

    got = client.route_tables.get(RG, "pods", **HTTP)
    assert got.id.endswith("/resourceGroups/k8s/providers/Microsoft.Network/routeTables/pods")
    assert got.etag == result.etag
    routes = {r.name: r for r in client.routes.list(RG, "pods", **HTTP)}
    assert routes["k1--fd00-10-244-1--_64"].address_prefix == "fd00:10:244:1::/64"
    assert routes["k1--10.244.1.0_24"].next_hop_ip_address == "10.0.0.4"
    assert routes["k1--10.244.1.0_24"].next_hop_type == "VirtualAppliance"

    # A second PUT (an update) goes through the poller too and reads back.
    got.routes = got.routes[:1]
    updated = client.route_tables.begin_create_or_update(RG, "pods", got, **HTTP).result()
    assert [r.name for r in updated.routes] == ["k1--10.244.1.0_24"]
    assert updated.etag != result.etag

    seeded = [r.name for r in client.routes.list(RG, "existing", **HTTP)]
    assert seeded == ["ops-vpn"]
    stats = arm.stats()
    assert stats["Microsoft.Network/routeTables/write"]["ok"] == 2
    assert stats["Microsoft.Network/locations/operations/read"]["ok"] >= 2


def test_sdk_reads_a_network_interface(arm):
    client = arm.client()
    nic = client.network_interfaces.get(RG, "node-a-nic", **HTTP)
    assert nic.enable_ip_forwarding is False
    ips = {c.private_ip_address_version: c.private_ip_address for c in nic.ip_configurations}
    assert ips == {"IPv4": "10.0.0.4", "IPv6": "fd00::4"}
    assert nic.virtual_machine.id.endswith("/virtualMachines/node-a")

    nic.enable_ip_forwarding = True
    updated = client.network_interfaces.begin_create_or_update(RG, "node-a-nic", nic, **HTTP).result()
    assert updated.enable_ip_forwarding is True
    assert client.network_interfaces.get(RG, "node-a-nic", **HTTP).enable_ip_forwarding is True


def test_sdk_sees_arm_errors(arm):
    client = arm.client()
    with pytest.raises(ResourceNotFoundError) as err:
        client.route_tables.get(RG, "nope", **HTTP)
    assert err.value.error.code == "ResourceNotFound"
    bad = RouteTable(location="westeurope", routes=[Route(name="-bad", address_prefix="10.0.0.0/8", next_hop_type="None")])
    with pytest.raises(HttpResponseError) as err:
        client.route_tables.begin_create_or_update(RG, "pods", bad, **HTTP).result()
    assert err.value.error.code == "InvalidResourceName"


def test_sdk_pages_through_a_resource_groups_network_interfaces(tmp_path):
    """The controller resolves a resource group's nodes from its paged NIC and VM lists:
    Microsoft's SDK follows the mock's nextLink to the same set, one page per request."""
    if NetworkManagementClient is None:
        _missing(f"azure-mgmt-network is not installed ({IMPORT_ERROR})")
    mock = MockArm(tmp_path, "--list-page-size", "2", more_vms=4)
    try:
        client = mock.client()
        names = sorted(nic.name for nic in client.network_interfaces.list(RG, **HTTP))
        assert names == sorted(["node-a-nic"] + [f"node-{i}-nic" for i in range(1, 5)])
        stats = mock.stats()
        assert stats["Microsoft.Network/networkInterfaces/read"] == {"ok": 3}, stats
    finally:
        mock.stop()


def test_sdk_lists_every_route_table_of_the_subscription_page_by_page(tmp_path):
    """`route_tables.list_all()` is the subscription-level list real ARM serves (paged);
    the mock answered InvalidResourceType before. Tables in two resource groups, two per
    page: the SDK follows nextLink to all of them and nothing else (no NICs, no VMs)."""
    if NetworkManagementClient is None:
        _missing(f"azure-mgmt-network is not installed ({IMPORT_ERROR})")
    mock = MockArm(tmp_path, "--list-page-size", "2", more_vms=2)
    try:
        client = mock.client()
        for rg, name in [(RG, "pods-a"), ("other-rg", "pods-b"), ("other-rg", "pods-c")]:
            client.route_tables.begin_create_or_update(
                rg, name, RouteTable(location="westeurope", routes=[]), **HTTP
            ).result()
        before = mock.stats().get("Microsoft.Network/routeTables/read", {}).get("ok", 0)
        tables = sorted((t.id.split("/")[4], t.name) for t in client.route_tables.list_all(**HTTP))
        assert tables == [
            (RG, "existing"),
            (RG, "pods-a"),
            ("other-rg", "pods-b"),
            ("other-rg", "pods-c"),
        ], tables
        pages = mock.stats()["Microsoft.Network/routeTables/read"]["ok"] - before
        assert pages == 2, f"4 tables at 2 per page: {pages} requests"
        # The resource-group list pages the same way and stays within its group.
        assert sorted(t.name for t in client.route_tables.list("other-rg", **HTTP)) == ["pods-b", "pods-c"]
    finally:
        mock.stop()


def test_sdk_reports_a_failed_long_running_operation(tmp_path):
    if NetworkManagementClient is None:
        _missing(f"azure-mgmt-network is not installed ({IMPORT_ERROR})")
    mock = MockArm(tmp_path, "--fault-rate", "1")
    try:
        client = mock.client()
        table = RouteTable(location="westeurope", routes=[])
        with pytest.raises(HttpResponseError) as err:
            client.route_tables.begin_create_or_update(RG, "pods", table, **HTTP).result()
        assert "InternalServerError" in str(err.value)
    finally:
        mock.stop()
