"""A Kubernetes node without the kubelet, for the CRI test: a private containerd
with its CRI plugin and a `minirun` runtime handler (the runc v2 shim with
BinaryName = minirun), a local registry holding a busybox image and a pause
image built here, a CNI network of our own (ptp + host-local, addresses in a
subnet picked per run), and a gRPC client speaking runtime.v1 with the
hand-written codec of cri_proto.py.

Everything lives in engine_sandbox's private mount namespace (/run/containerd,
/run/netns and /var/lib/cni are tmpfs there) and under one temp directory;
the sandbox's teardown kills by PID what is ours and removes our cgroup subtree.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "engines"))
sys.path.insert(0, os.path.join(TESTS, "frontend"))

from cri_proto import CRI  # noqa: E402
from engine_sandbox import Sandbox, wait_for  # noqa: E402
from fe_helpers import build_layout, derive_layout  # noqa: E402
from minirun_testlib import MINIRUN  # noqa: E402

CONTAINERD = shutil.which("containerd")
PRIVATE_PATHS = ["/run/containerd", "/run/netns", "/var/lib/cni"]
HANDLER = "minirun"
K8S_NAMESPACE = "k8s.io"   # the containerd namespace the CRI plugin uses
# The runtime under test; MINIRUN_ENGINE_RUNTIME=/usr/sbin/runc runs the same calls
# against runc, to tell a containerd quirk from a minirun bug (as tests/engines does).
RUNTIME = os.environ.get("MINIRUN_ENGINE_RUNTIME") or MINIRUN


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """Debian's docker-registry on 127.0.0.1 with storage under `base`."""

    def __init__(self, base):
        self.addr = f"127.0.0.1:{free_port()}"
        config = os.path.join(base, "registry.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                    f"    rootdirectory: {base}/registry-data\nhttp:\n  addr: {self.addr}\n")
        self.log = open(os.path.join(base, "registry.log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def up():
            try:
                urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1)
                return True
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError("docker-registry exited") from None
                return False
        wait_for(up, timeout=20, what="the registry")

    def push(self, layout, repo):
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        f"oci:{layout}:latest", f"docker://{self.addr}/{repo}"],
                       check=True, capture_output=True)
        return f"{self.addr}/{repo}"

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def containerd_config(d, sock, registry, pause_image, subnet):
    """containerd 1.6's config: CRI on, `minirun` as the default runtime handler
    (docs/engines.md shows the same sections for a real node)."""
    return f'''version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{d}/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this machine's root lacks:
  # keep the scores at or above containerd's own (the pause container asks -998).
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{HANDLER}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}.options]
        BinaryName = "{RUNTIME}"
        Root = "{d}/minirun-root"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
''', f'''{{"cniVersion": "0.4.0", "name": "minirun-cri-test", "plugins": [
  {{"type": "ptp", "ipMasq": false,
    "ipam": {{"type": "host-local", "subnet": "{subnet}", "dataDir": "{d}/cni-ipam"}}}}]}}
'''


class Node:
    """Use as a context manager; `call(service, method, request type, response type, msg)`."""

    def __init__(self):
        self.sandbox = None
        self.registry = None
        self.channel = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        import grpc

        self.sandbox = Sandbox("cri", PRIVATE_PATHS).__enter__()
        d = self.dir = self.sandbox.dir
        self.registry = Registry(d)
        busybox = build_layout(os.path.join(d, "image"))
        # The pause image: busybox whose only job is to sleep, holding the pod's
        # namespaces (Kubernetes' pause is a static program doing exactly that).
        pause = derive_layout(busybox, os.path.join(d, "pause"), Cmd=["sleep", "2147483647"],
                              Entrypoint=None)
        self.pause_image = self.registry.push(pause, "minirun/pause:1")
        self.busybox_image = self.registry.push(busybox, "minirun/busybox:1")
        self.socket = os.path.join(d, "containerd.sock")
        self.subnet = f"10.231.{random.randrange(1, 250)}.0/24"
        config, cni = containerd_config(d, self.socket, self.registry.addr, self.pause_image,
                                        self.subnet)
        os.makedirs(os.path.join(d, "cni"))
        os.makedirs(os.path.join(d, "tmp"))
        os.makedirs(os.path.join(d, "logs"))
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(config)
        with open(os.path.join(d, "cni", "10-minirun.conflist"), "w") as f:
            f.write(cni)
        env = dict(os.environ, TMPDIR=os.path.join(d, "tmp"))
        self.daemon = self.sandbox.start_daemon(
            [CONTAINERD, "--config", os.path.join(d, "config.toml")], "containerd.log", env=env)
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")

        def up():
            if self.daemon.poll() is not None:
                raise AssertionError(f"containerd exited: {self.log()}")
            if not os.path.exists(self.socket):
                return False
            try:
                return self.runtime("Version", "VersionRequest", "VersionResponse",
                                    {"version": "v1"}, timeout=2)
            except Exception:
                return False
        self.version = wait_for(up, timeout=30, what="containerd's CRI service")

    def log(self):
        with open(os.path.join(self.dir, "containerd.log"), errors="replace") as f:
            return f.read()[-6000:]

    def call(self, service, method, request, response, msg, timeout=60):
        rpc = self.channel.unary_unary(f"/runtime.v1.{service}/{method}",
                                       request_serializer=lambda m: m,
                                       response_deserializer=lambda b: b)
        return CRI.decode(response, rpc(CRI.encode(request, msg), timeout=timeout))

    def runtime(self, method, request, response, msg, timeout=60):
        return self.call("RuntimeService", method, request, response, msg, timeout)

    def images(self, method, request, response, msg, timeout=120):
        return self.call("ImageService", method, request, response, msg, timeout)

    def minirun_states(self):
        """Containers minirun keeps state for (the shim's --root is Root/<namespace>)."""
        try:
            return sorted(os.listdir(os.path.join(self.dir, "minirun-root", K8S_NAMESPACE)))
        except FileNotFoundError:
            return []

    def our_links(self):
        """Host interfaces with an address in this run's pod subnet (ptp's host ends)."""
        import ipaddress
        import json

        net = ipaddress.ip_network(self.subnet)
        links = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True,
                                          text=True, check=True).stdout)
        return sorted(link["ifname"] for link in links
                      if any(ipaddress.ip_address(a["local"]) in net
                             for a in link.get("addr_info", ())))

    def close(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        try:
            if self.registry is not None:
                self.registry.stop()
        finally:
            if self.sandbox is not None:
                self.sandbox.close()   # containerd, shims, minirun processes, cgroups, mounts


def wait(predicate, timeout=30, what="condition"):
    return wait_for(predicate, timeout=timeout, what=what, interval=0.1)
