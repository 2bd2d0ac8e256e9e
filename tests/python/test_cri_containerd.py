"""cni-cloud under a real CRI runtime: Debian's containerd (1.6, its built-in CRI plugin and
libcni 1.1) creates pod sandboxes through the conflist `cni-cloud install --portmap` wrote,
driven over the CRI `runtime.v1` gRPC API the way the kubelet drives it.

Everything runs inside network namespaces this test creates: "node" (containerd, the
installer, the mock Kubernetes API, every pod's host side) and "client" (a machine on the
node's network). containerd runs with the two settings these machines need
(`restrict_oom_score_adj`, `netns_mounts_under_state_dir`), its root, state and socket in a
temporary directory, and the only image it has is one built here from Debian's
busybox-static and imported with `ctr images import` (nothing is pulled).

Needs root, containerd, ctr, runc, busybox-static, containernetworking-plugins, nsenter,
iptables, ping, grpcio and grpcio-tools, and the cni-cloud and cni-cloud-mocks binaries
(scripts/test exports CNI_CLOUD_BIN and CNI_CLOUD_MOCKS_BIN). Without them it skips loudly,
and fails under CNI_CLOUD_REQUIRE_ALL=1.
"""

import hashlib
import io
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRE_ALL = os.environ.get("CNI_CLOUD_REQUIRE_ALL") == "1"
PROTO = Path(__file__).resolve().parent / "cri" / "runtime_v1_min.proto"
REFERENCE = Path("/usr/lib/cni")
IMAGE = "docker.io/cni-cloud-test/busybox:1"
POD_V4, POD_V6 = "10.77.1.0/24", "fd77:0:1::/64"
NODE_IP, CLIENT_IP = "192.168.77.2", "192.168.77.1"
HOST_PORT, CONTAINER_PORT = 18080, 8080
CHURN = 12


def _missing(why):
    """Skip loudly, or fail under CNI_CLOUD_REQUIRE_ALL=1 (CI)."""
    msg = f"test_cri_containerd: {why}"
    print(f"\n*** SKIPPING: {msg} ***", file=sys.stderr)
    if REQUIRE_ALL:
        pytest.fail(msg + " (CNI_CLOUD_REQUIRE_ALL=1)")
    pytest.skip(msg)


def _binary(env, name):
    for c in [os.environ.get(env), str(REPO / "target" / "debug" / name)]:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def run(*args, check=True, **kw):
    out = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: {out.stdout}{out.stderr}")
    return out


def ns_run(ns, *args, **kw):
    return run("ip", "netns", "exec", ns, *args, **kw)


def pod_run(pid, *args, **kw):
    """A command in a pod's network namespace (only the network namespace changes)."""
    return run("nsenter", f"--net=/proc/{pid}/ns/net", "--", *args, **kw)


def wait_for(what, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------
# The image: an OCI layout tarball holding Debian's static busybox, for `ctr images import`.


def _blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_image(path):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for d in ["bin", "dev", "etc", "proc", "sys", "tmp"]:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add("/bin/busybox", arcname="bin/busybox")
        for applet in ["sh", "sleep", "nc"]:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    layer = layer.getvalue()
    blobs = {}
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(blobs, layer)}
    config = {
        "architecture": "amd64",
        "os": "linux",
        # The sandbox ("pause") process: sleeps until the runtime kills it.
        "config": {"Entrypoint": ["/bin/sleep", "2147483647"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_blob(blobs, json.dumps(config).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    }
    manifest_desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_blob(blobs, json.dumps(manifest).encode()),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "1"},
    }
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    with tarfile.open(path, "w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest}", data)


# --------------------------------------------------------------------------------------
# The CRI client: grpcio against the hand-written runtime.v1 subset, compiled here.


def cri_modules(out_dir):
    from grpc_tools import protoc

    include = Path(protoc.__file__).resolve().parent / "_proto"
    rc = protoc.main(
        [
            "protoc",
            f"-I{PROTO.parent}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO),
        ]
    )
    assert rc == 0, "protoc failed on the CRI proto"
    sys.path.insert(0, str(out_dir))
    import runtime_v1_min_pb2 as pb
    import runtime_v1_min_pb2_grpc as pb_grpc

    return pb, pb_grpc


class Node:
    """The node namespace with containerd, the installed plugin and a client machine."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.tag = f"{os.getpid()}"
        self.ns = f"cnit-cri-node-{self.tag}"
        self.client = f"cnit-cri-client-{self.tag}"
        self.network = f"cnit-cri-{self.tag}"
        self.bin_dir = tmp / "bin"
        self.conf_dir = tmp / "net.d"
        self.data_dir = tmp / "run-cni-cloud"
        self.sock = tmp / "containerd.sock"
        self.procs = []
        self.containerd = None

    # -- namespaces ---------------------------------------------------------------------
    def create_namespaces(self):
        for ns in (self.ns, self.client):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.ns, "link", "add", "up0", "type", "veth", "peer", "name", "down0",
            "netns", self.client)
        run("ip", "-n", self.ns, "addr", "add", f"{NODE_IP}/24", "dev", "up0")
        run("ip", "-n", self.ns, "addr", "add", "fd77:ffff::2/64", "dev", "up0", "nodad")
        run("ip", "-n", self.ns, "link", "set", "up0", "up")
        run("ip", "-n", self.client, "addr", "add", f"{CLIENT_IP}/24", "dev", "down0")
        run("ip", "-n", self.client, "link", "set", "down0", "up")
        # The route the controller writes into the VPC route table: the PodCIDR -> the node.
        run("ip", "-n", self.client, "route", "add", POD_V4, "via", NODE_IP)

    # -- mock API + installer -------------------------------------------------------------
    def install(self, cni_cloud, mocks):
        for d in (self.bin_dir, self.conf_dir):
            d.mkdir()
        for plugin in ("portmap", "loopback"):
            shutil.copy(REFERENCE / plugin, self.bin_dir / plugin)
        seed = self.tmp / "nodes.json"
        seed.write_text(json.dumps([{
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
            "spec": {"podCIDR": POD_V4, "podCIDRs": [POD_V4, POD_V6]},
        }]))
        kubeconfig = self.tmp / "kubeconfig"
        api = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, mocks, "kube", "--rbac", str(REPO / "deploy/base"),
             "--token", "installer-token=cni-cloud:cni-cloud-node", "--seed", str(seed),
             "--kubeconfig-out", str(kubeconfig)],
            stdout=subprocess.DEVNULL, stderr=open(self.tmp / "kube.log", "w"),
        )
        self.procs.append(api)
        wait_for("the mock API's kubeconfig", lambda: kubeconfig.exists() and kubeconfig.stat().st_size)
        out = ns_run(
            self.ns, cni_cloud, "install", "--once", "--portmap",
            "--cni-bin-dir", str(self.bin_dir), "--cni-conf-dir", str(self.conf_dir),
            "--data-dir", str(self.data_dir), "--kubeconfig", str(kubeconfig),
            "--node-name", "node-a", "--network-name", self.network,
            "--cluster-cidrs", "10.77.0.0/16,fd77::/32", "--vpc-cidrs", "192.168.77.0/24",
            check=False, env={**os.environ, "KUBERNETES_SERVICE_HOST": ""},
        )
        assert out.returncode == 0, out.stderr
        return json.loads((self.conf_dir / "05-cni-cloud.conflist").read_text())

    # -- containerd -------------------------------------------------------------------
    def start_containerd(self):
        config = self.tmp / "containerd.toml"
        config.write_text(f"""
version = 2
root = "{self.tmp}/root"
state = "{self.tmp}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{self.bin_dir}"
    conf_dir = "{self.conf_dir}"
    max_conf_num = 1
""")
        self.containerd_log = self.tmp / "containerd.log"
        # In the node's network namespace, and a mount namespace of its own whose mounts
        # (snapshots, pod netns) stay out of the host's. Not `ip netns exec`: it remounts
        # /sys, which hides the cgroup mounts runc needs. Both exec in place, so the pid is
        # containerd's.
        self.containerd = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "slave", "--",
             "nsenter", f"--net=/run/netns/{self.ns}", "--",
             "containerd", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=open(self.containerd_log, "w"),
        )
        self.procs.append(self.containerd)
        wait_for("containerd's socket", lambda: self.sock.exists(), timeout=60)
        image = self.tmp / "image.tar"
        build_image(image)
        run("ctr", "--address", str(self.sock), "--namespace", "k8s.io", "images", "import",
            "--snapshotter", "native", str(image))

    def containerd_pid(self):
        """containerd itself (unshare and nsenter exec it in place)."""
        return self.containerd.pid

    # -- inspection ---------------------------------------------------------------------
    def host_veths(self):
        out = run("ip", "-n", self.ns, "-o", "link", "show").stdout
        names = [l.split(": ")[1].split("@")[0] for l in out.splitlines()]
        return sorted(n for n in names if n.startswith("cnic") or n.startswith("cnix"))

    def pod_routes(self):
        out = run("ip", "-n", self.ns, "-4", "route", "show").stdout
        out += run("ip", "-n", self.ns, "-6", "route", "show").stdout
        return sorted(l.split()[0] for l in out.splitlines()
                      if l.startswith("10.77.") or l.startswith("fd77:0:1:"))

    def reservations(self):
        d = self.data_dir / self.network
        return sorted(os.listdir(d / "ips")) + sorted(os.listdir(d / "attachments")) \
            if d.exists() else []

    def cache_entries(self):
        """libcni's result cache (containerd 1.6 keeps libcni's default, /var/lib/cni)."""
        d = Path("/var/lib/cni/results")
        return sorted(f for f in os.listdir(d) if f.startswith(self.network + "-")) \
            if d.exists() else []

    def shims(self):
        mine = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and \
                    str(self.sock).encode() in b" ".join(cmd):
                mine.append(int(pid))
        return mine

    def teardown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for pid in self.shims():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ns in (self.ns, self.client):
            run("ip", "netns", "del", ns, check=False)
        for f in self.cache_entries():
            os.unlink(Path("/var/lib/cni/results") / f)


class Cri:
    def __init__(self, node, pb, pb_grpc):
        import grpc

        self.pb = pb
        self.node = node
        self.channel = grpc.insecure_channel(f"unix://{node.sock}")
        self.rt = pb_grpc.RuntimeServiceStub(self.channel)
        self.n = 0

    def run_pod(self, name, port_mappings=()):
        pb = self.pb
        self.n += 1
        logs = self.node.tmp / "logs" / name
        logs.mkdir(parents=True, exist_ok=True)
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}-{self.n}", namespace="default"),
            hostname=name,
            log_directory=str(logs),
            port_mappings=[pb.PortMapping(protocol=pb.TCP, container_port=c, host_port=h)
                           for c, h in port_mappings],
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER))),
        )
        return self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id

    def status(self, sid):
        r = self.rt.PodSandboxStatus(self.pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True),
                                     timeout=30)
        return r.status, json.loads(r.info.get("info", "{}"))

    def ips(self, sid):
        st, _ = self.status(sid)
        return [st.network.ip] + [x.ip for x in st.network.additional_ips]

    def pid(self, sid):
        return self.status(sid)[1]["pid"]

    def remove(self, sid):
        # As the kubelet does: a failed StopPodSandbox is tried again on the next sync. With
        # the sandbox process killed behind its back, containerd 1.6's first kill can fail
        # with "ttrpc: closed" while the shim goes away; the next one succeeds.
        import grpc

        for attempt in range(5):
            try:
                self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=60)
                break
            except grpc.RpcError:
                if attempt == 4:
                    raise
                time.sleep(1.0)
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=60)

    def sandboxes(self):
        return [s.id for s in self.rt.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=30).items]


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        _missing("needs root (network namespaces, containerd)")
    for tool in ["containerd", "ctr", "runc", "nsenter", "unshare", "iptables", "ping", "ip"]:
        if not shutil.which(tool):
            _missing(f"{tool} not found (apt-get install containerd iptables iproute2 iputils-ping)")
    for path in ["/bin/busybox", REFERENCE / "portmap", REFERENCE / "loopback"]:
        if not os.path.exists(path):
            _missing(f"{path} missing (apt-get install busybox-static containernetworking-plugins)")
    cni_cloud = _binary("CNI_CLOUD_BIN", "cni-cloud")
    mocks = _binary("CNI_CLOUD_MOCKS_BIN", "cni-cloud-mocks")
    if not cni_cloud or not mocks:
        _missing("cni-cloud / cni-cloud-mocks binaries not built (cargo build)")
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError as exc:
        _missing(f"grpcio / grpcio-tools not installed ({exc}); run scripts/setup")

    tmp = Path(tempfile.mkdtemp(prefix="cnit-cri-", dir="/tmp"))
    node = Node(tmp)
    try:
        node.create_namespaces()
        conflist = node.install(cni_cloud, mocks)
        node.start_containerd()
        pb, pb_grpc = cri_modules(tmp)
        cri = Cri(node, pb, pb_grpc)
        yield node, cri, conflist
        for sid in cri.sandboxes():
            cri.remove(sid)
    finally:
        node.teardown()
        log = node.tmp / "containerd.log"
        if log.exists() and os.environ.get("CNI_CLOUD_KEEP_CRI_LOG"):
            print(log.read_text()[-5000:], file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


def test_containerd_runs_pods_through_the_installed_conflist(cluster):
    node, cri, conflist = cluster
    v = cri.rt.Version(cri.pb.VersionRequest(version="v1"), timeout=10)
    assert v.runtime_name == "containerd" and v.runtime_version.startswith("1.6"), v
    # The conflist libcni 1.1 accepts: cniVersion 1.0.0, portmap chained.
    assert conflist["cniVersion"] == "1.0.0"
    assert [p["type"] for p in conflist["plugins"]] == ["cni-cloud", "portmap"]

    a = cri.run_pod("pod-a", port_mappings=[(CONTAINER_PORT, HOST_PORT)])
    b = cri.run_pod("pod-b")
    ips_a, ips_b = cri.ips(a), cri.ips(b)
    pid_a, pid_b = cri.pid(a), cri.pid(b)
    # Dual-stack, from the Node's podCIDRs.
    for ips in (ips_a, ips_b):
        assert len(ips) == 2, ips
        assert ipaddress.ip_address(ips[0]) in ipaddress.ip_network(POD_V4), ips
        assert ipaddress.ip_address(ips[1]) in ipaddress.ip_network(POD_V6), ips
    # What the node holds for two live sandboxes, so that "nothing left" below means something.
    assert len(node.host_veths()) == 2, node.host_veths()
    assert len(node.pod_routes()) == 4, node.pod_routes()
    assert len(node.reservations()) == 6, node.reservations()  # 4 addresses, 2 records
    assert len(node.cache_entries()) == 2, node.cache_entries()
    # containerd 1.6 sends no runtimeConfig.ipRanges: the ranges come from the conflist, and
    # libcni 1.1 ran the list at its cniVersion.
    for entry in node.cache_entries():
        cached = json.loads((Path("/var/lib/cni/results") / entry).read_text())
        caps = cached.get("capabilityArgs") or {}
        print(f"libcni cache {entry}: capabilityArgs {sorted(caps)}", file=sys.stderr)
        assert "ipRanges" not in caps, caps
        assert cached["result"]["cniVersion"] == "1.0.0", cached["result"]
        if entry.endswith(a + "-eth0"):
            assert caps["portMappings"][0].get("hostPort", caps["portMappings"][0].get("HostPort")) == HOST_PORT, caps

    # pod <-> pod (both families), pod <-> node.
    for dst in ips_b:
        assert pod_run(pid_a, "ping", "-n", "-c", "1", "-w", "5", dst, check=False).returncode == 0, dst
    assert pod_run(pid_b, "ping", "-n", "-c", "1", "-w", "5", ips_a[0], check=False).returncode == 0
    assert pod_run(pid_a, "ping", "-n", "-c", "1", "-w", "5", NODE_IP, check=False).returncode == 0
    assert ns_run(node.ns, "ping", "-n", "-c", "1", "-w", "5", ips_a[0], check=False).returncode == 0

    # hostPort: a listener in pod A, reached from the client machine through the node's
    # port (portmap's DNAT), and from pod A itself (hairpin).
    server = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pid_a}/ns/net", "--", sys.executable, "-c",
         "import socket\n"
         "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         f"s.bind(('0.0.0.0', {CONTAINER_PORT})); s.listen(8); print('ready', flush=True)\n"
         "while True:\n"
         "    c, peer = s.accept(); c.sendall(('hello ' + peer[0]).encode()); c.close()\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        client = ("import socket\n"
                  f"s = socket.create_connection(('{NODE_IP}', {HOST_PORT}), timeout=5)\n"
                  "print(s.recv(100).decode())\n")
        got = ns_run(node.client, sys.executable, "-c", client).stdout.strip()
        assert got == f"hello {CLIENT_IP}", got
        got = pod_run(pid_a, sys.executable, "-c", client).stdout.strip()
        assert got.startswith("hello "), got  # hairpin: pod A reached itself via the hostPort
    finally:
        server.kill()
        server.wait()

    cri.remove(a)
    cri.remove(b)
    wait_for("retired links to go", lambda: not node.host_veths(), timeout=20)
    assert node.pod_routes() == []
    assert node.reservations() == []
    assert node.cache_entries() == []
    nat = ns_run(node.ns, "iptables", "-t", "nat", "-S").stdout
    assert str(HOST_PORT) not in nat, nat


def test_sandbox_churn_leaves_nothing_behind(cluster):
    node, cri, _ = cluster
    started = time.monotonic()
    seen = set()
    for i in range(CHURN):
        sid = cri.run_pod(f"churn-{i}")
        ips = cri.ips(sid)
        assert len(ips) == 2 and not seen.intersection(ips), (ips, seen)  # round-robin
        seen.update(ips)
        assert len(node.cache_entries()) == 1
        cri.remove(sid)
    wait_for("retired links to go", lambda: not node.host_veths(), timeout=20)
    assert node.pod_routes() == []
    assert node.reservations() == []
    assert node.cache_entries() == []
    print(f"{CHURN} sandboxes run and removed in {time.monotonic() - started:.1f}s", file=sys.stderr)


def test_a_sandbox_whose_netns_was_deleted_behind_the_runtime_is_removed_cleanly(cluster):
    node, cri, _ = cluster
    sid = cri.run_pod("gone")
    _, info = cri.status(sid)
    netns = next(n["path"] for n in info["runtimeSpec"]["linux"]["namespaces"] if n["type"] == "network")
    assert str(node.tmp / "state") in netns, f"netns_mounts_under_state_dir: {netns}"
    assert len(node.host_veths()) == 1
    assert len(node.reservations()) == 3 and len(node.cache_entries()) == 1
    # Behind the runtime's back: the sandbox process dies and its netns mount goes (in
    # containerd's mount namespace), so the kernel deletes the namespace and the pod's veth.
    os.kill(info["pid"], signal.SIGKILL)
    run("nsenter", f"--mount=/proc/{node.containerd_pid()}/ns/mnt", "--", "umount", netns)
    wait_for("the pod's veth to go with its netns",
             lambda: all(n.startswith("cnix") for n in node.host_veths()), timeout=20)
    cri.remove(sid)
    assert sid not in cri.sandboxes()
    wait_for("retired links to go", lambda: not node.host_veths(), timeout=20)
    assert node.pod_routes() == []
    assert node.reservations() == [], "the address is released although the netns was gone"
    assert node.cache_entries() == []


def test_control_a_1_1_0_conflist_fails_every_sandbox_on_containerd_1_6(cluster):
    """The installer's old default (cniVersion 1.1.0) against libcni 1.1: every sandbox
    fails with the error users saw. Without portmap in the list the runtime's cleanup still
    reaches cni-cloud's DEL, so nothing is left; the installed conflist is put back after."""
    import grpc

    node, cri, conflist = cluster
    path = node.conf_dir / "05-cni-cloud.conflist"
    installed = path.read_text()
    old = dict(conflist, cniVersion="1.1.0", cniVersions=["1.1.0"], plugins=conflist["plugins"][:1])

    def swap(text):  # atomically, by rename, as the installer does (containerd reloads on it)
        tmp = node.conf_dir / ".swap"
        tmp.write_text(text)
        os.rename(tmp, path)
        time.sleep(1.0)  # containerd's conf syncer picks it up

    swap(json.dumps(old))
    try:
        with pytest.raises(grpc.RpcError) as err:
            cri.run_pod("old-default")
        assert 'unsupported CNI result version "1.1.0"' in err.value.details(), err.value.details()
        wait_for("retired links to go", lambda: not node.host_veths(), timeout=20)
        assert node.reservations() == []
    finally:
        swap(installed)
    sid = cri.run_pod("after")
    assert len(cri.ips(sid)) == 2
    cri.remove(sid)
