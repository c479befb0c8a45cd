"""Helpers for the network tests: busybox "containers", HTTP probes, kernel inspection.

The container runtime is not used here: a Box is busybox in new network and
mount namespaces made by unshare(1), which is all minirun.network needs.  Every
Box is killed by its PID and every store purged, even when a test fails; a
final check looks for leftovers with pyroute2 and nft, not by asking minirun.
Traffic only goes to the test's own bridge subnets and to 127.0.0.0/8.
"""
import json
import secrets
import signal
import subprocess
import time

BUSYBOX = "/bin/busybox"


def unique(prefix="mrt"):
    return prefix + secrets.token_hex(4)


class Box:
    """busybox `cmd` in its own netns + mount ns; `files` maps /etc paths to
    sources to bind-mount first (what the runtime does with etc_files())."""

    def __init__(self, cmd, files=None, web_root=None):
        script = "".join(f"{BUSYBOX} mount --bind {src} {dst} && " for dst, src in (files or {}).items())
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", BUSYBOX, "sh", "-c", f"{script}exec {cmd}"],
            stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.web_root = web_root
        # Ready once the shell has exec'ed the command (namespaces made, mounts done).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except FileNotFoundError:
                break
            # python (forked) -> unshare -> busybox sh -c ... -> the command
            if argv[0] == BUSYBOX.encode() and argv[1:2] != [b"sh"]:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.005)
        self.kill()
        raise RuntimeError(f"box {cmd!r} did not start")

    def run(self, *argv, input=None, timeout=10):
        """Run a command inside the box's namespaces."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", "-m", *argv], input=input,
                              capture_output=True, text=True, timeout=timeout)

    def http_get(self, host, port=80, wait=2):
        """Body of GET / from host:port as seen from inside the box, or None."""
        return http_get_via(["nsenter", "-t", str(self.pid), "-n", "-m"], host, port, wait)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def http_get_via(prefix, host, port, wait=2):
    res = subprocess.run([*prefix, BUSYBOX, "nc", "-w", str(wait), host, str(port)],
                         input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=wait + 8)
    body = res.stdout.replace("\r\n", "\n")  # text mode may or may not have translated them
    if res.returncode != 0 or "\n\n" not in body:
        return None
    return body.split("\n\n", 1)[1].strip()


def http_get_host(host, port, wait=2):
    """GET / from the host with curl (the issue's `curl http://127.0.0.1:8080`)."""
    res = subprocess.run(["curl", "-s", "-m", str(wait), f"http://{host}:{port}/"], capture_output=True,
                         text=True, timeout=wait + 8)
    return res.stdout.strip() if res.returncode == 0 else None


def nft_table(table):
    res = subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True, text=True)
    return json.loads(res.stdout)["nftables"] if res.returncode == 0 else None


def nft_rule_comments(table):
    return [o["rule"].get("comment", "") for o in nft_table(table) or () if "rule" in o]


def host_links():
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {link.get("ifname") for link in ipr.get_links()}
