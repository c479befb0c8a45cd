"""Helpers for the kube tests: a private store and --root (fe_helpers.Docker) with
two local images, `minirun kube ...` as a user types it, and a teardown that
looks for everything kube can leave: containers, veths, the Services' nftables
table, pod volume directories, the controller process."""
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "frontend"))

from fe_helpers import Docker, build_layout, derive_layout, free_port, http_get, wait_for  # noqa: E402,F401

# The course's web image stand-in: busybox httpd serving a page that names the pod
# ($HOSTNAME is the pod name, as in Kubernetes).
WEB_CMD = ["sh", "-c", "echo $HOSTNAME > /var/www/index.html && exec httpd -f -p 80 -h /var/www"]


def build_images(dest):
    busybox = build_layout(os.path.join(dest, "busybox-src"))
    web = derive_layout(busybox, os.path.join(dest, "web"), Cmd=WEB_CMD,
                        ExposedPorts={"80/tcp": {}})
    return busybox, web


class Kube(Docker):
    def kube(self, *args, check=True):
        return self("kube", *args, check=check)

    def play(self, path):
        return self.kube("play", path)

    def down(self, path):
        return self.kube("down", path)

    def state(self):
        try:
            with open(os.path.join(self.store, "kube", "state.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"objects": {}, "pods": {}, "services": {}}

    def pods(self):
        """{pod name: pod record} of the kube state."""
        return {p["name"]: p for p in self.state()["pods"].values()}

    def service(self, name, namespace="default"):
        return self.state()["services"][f"{namespace}/{name}"]

    def controller_pid(self):
        try:
            with open(os.path.join(self.store, "kube", "controller.pid")) as f:
                pid, start = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return pid if int(data[data.rfind(b")") + 2:].split()[19]) == start else None

    def exec(self, container, *cmd, check=True):
        return self("exec", container, *cmd, check=check)

    def kube_table(self):
        from minirun.network import Store

        tag = Store(self.root).tag
        return f"minirun_kube_{tag}" if tag else "minirun_kube"

    def kube_leftovers(self):
        """What kube made that is still there (after `kube down`)."""
        out = []
        state = self.state()
        if any(state.get(k) for k in ("objects", "pods", "services")):
            out.append(f"kube state: {state}")
        pods_dir = os.path.join(self.store, "kube", "pods")
        if os.path.isdir(pods_dir) and os.listdir(pods_dir):
            out.append(f"pod directories: {os.listdir(pods_dir)}")
        if self.ids():
            out.append(f"containers: {sorted(self.ids())}")
        res = subprocess.run(["nft", "list", "table", "ip", self.kube_table()],
                             capture_output=True, text=True)
        if res.returncode == 0:
            out.append(f"nftables table {self.kube_table()}")
        if self.controller_pid():
            out.append(f"controller pid {self.controller_pid()}")
        from minirun import network
        from minirun.kube import adapter
        from minirun.network import records

        net = network.Store(self.root).network(adapter.NETWORK)
        if net:
            out.append(f"network {adapter.NETWORK} (bridge {net['bridge']})")
        rec_dir = records.directory(self.root)
        if os.path.isdir(rec_dir) and os.listdir(rec_dir):
            out.append(f"DNS records: {os.listdir(rec_dir)}")
        return out

    def cleanup(self):
        pid = self.controller_pid()
        if pid:   # a failed test: the controller would re-create what cleanup removes
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: self.controller_pid() is None, 5, what="the controller to exit")
        from minirun.frontend.records import Frontend
        from minirun.kube import services

        services.sync(Frontend(self.store, self.root), {})
        return super().cleanup()
