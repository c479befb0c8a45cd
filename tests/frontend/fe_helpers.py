"""Helpers for the front-end tests: the CLI as a user types it, in a private
store (MINIRUN_STORE) and a private --root, both under the test's tmp dir, and
a teardown that removes and then looks for everything a container can leave:
records, rootfs mounts and upper dirs, runtime state, cgroups, veths, the
bridge and nftables table of that root, and the monitor process."""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from minirun_testlib import MINIRUN, build_busybox  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(port, timeout=2.0):
    """Body of GET / on 127.0.0.1:port, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode() if head.startswith(b"HTTP/1.") else None


def build_layout(dest):
    """The demo busybox image as an OCI layout (offline, from busybox-static)."""
    rootfs = os.path.join(dest, "rootfs")
    build_busybox.build_rootfs(rootfs)
    layout = os.path.join(dest, "busybox")
    build_busybox.write_oci_layout(rootfs, layout)
    return layout


def derive_layout(src, dest, **config):
    """A copy of layout `src` whose image config has `config` merged into
    config.config (Healthcheck, Volumes, StopSignal, ...): same layer blob."""
    shutil.copytree(src, dest)
    with open(os.path.join(dest, "index.json")) as f:
        index = json.load(f)
    blobs = os.path.join(dest, "blobs", "sha256")

    def read(digest):
        with open(os.path.join(blobs, digest.split(":")[1])) as f:
            return json.load(f)

    def write(obj):
        data = json.dumps(obj).encode()
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return f"sha256:{digest}", len(data)

    desc = index["manifests"][0]
    manifest = read(desc["digest"])
    image_config = read(manifest["config"]["digest"])
    image_config["config"].update(config)
    manifest["config"]["digest"], manifest["config"]["size"] = write(image_config)
    desc["digest"], desc["size"] = write(manifest)
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)
    return dest


class Docker:
    """`minirun --root <tmp>/root ...` with MINIRUN_STORE=<tmp>/store."""

    def __init__(self, base):
        self.base = base
        self.store = os.path.join(base, "store")
        self.root = os.path.join(base, "root")
        self.env = dict(os.environ, MINIRUN_STORE=self.store)
        self.env.pop("MINIRUN_TRACE", None)
        self.seen = set()

    def cmd(self, *args):
        return [MINIRUN, "--root", self.root, *[str(a) for a in args]]

    def __call__(self, *args, check=True, timeout=60, input=None):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            res = subprocess.run(self.cmd(*args), stdout=out, stderr=err, env=self.env,
                                 timeout=timeout, input=input.encode() if input else None,
                                 stdin=None if input else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            res.stdout = out.read().decode(errors="replace")
            res.stderr = err.read().decode(errors="replace")
        self.seen.update(self.ids())
        if check and res.returncode != 0:
            raise AssertionError(f"minirun {' '.join(map(str, args))} exited {res.returncode}: "
                                 f"{res.stdout}{res.stderr}")
        return res

    def popen(self, *args, **kw):
        return subprocess.Popen(self.cmd(*args), env=self.env, **kw)

    def load(self, layout, name):
        self("load", "-i", layout, "--name", name)

    def inspect(self, ref, fmt=None):
        if fmt:
            return self("inspect", "-f", fmt, ref).stdout.strip()
        return json.loads(self("inspect", ref).stdout)[0]

    def ids(self):
        d = os.path.join(self.store, "frontend", "containers")
        try:
            return set(os.listdir(d))
        except FileNotFoundError:
            return set()

    def monitor_pid(self):
        try:
            with open(os.path.join(self.root, ".frontend", "monitor.pid")) as f:
                pid, start = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if int(data[data.rfind(b")") + 2:].split()[19]) != start:
            return None
        return pid

    # --- teardown --------------------------------------------------------------------
    def cleanup(self):
        """Remove everything, then report what is still there (a list of strings)."""
        ids = sorted(self.ids() | self.seen)
        if self.ids():
            self("rm", "-f", "-v", *sorted(self.ids()), check=False, timeout=120)
        self("volume", "prune", "-f", "-a", check=False)
        pid = self.monitor_pid()
        if pid:
            try:   # it leaves by itself when idle; don't wait for that
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            wait_for(lambda: self.monitor_pid() is None, 5, what="the monitor to exit")
        leftovers = self.leftovers(ids)
        from minirun import network

        table, bridge = network.Store(self.root).table, network.Store(self.root).default_bridge
        network.purge(self.root)
        if _nft_table_exists(table):
            leftovers.append(f"nftables table {table}")
        if os.path.exists(f"/sys/class/net/{bridge}"):
            leftovers.append(f"bridge {bridge}")
        return leftovers

    def leftovers(self, ids):
        out = []
        for sub in ("frontend/containers", "containers"):
            d = os.path.join(self.store, sub)
            if os.path.isdir(d) and os.listdir(d):
                out.append(f"{d}: {os.listdir(d)}")
        names = os.path.join(self.store, "frontend", "names")
        if os.path.isdir(names) and os.listdir(names):
            out.append(f"names: {os.listdir(names)}")
        if os.path.isdir(self.root):
            state = [n for n in os.listdir(self.root) if not n.startswith(".")]
            if state:
                out.append(f"runtime state: {state}")
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if self.base in line.split()[4]]
        if mounts:
            out.append(f"mounts: {mounts}")
        from minirun import network

        net_store = network.Store(self.root)
        for cid in ids:
            for hierarchy in os.listdir("/sys/fs/cgroup"):
                path = os.path.join("/sys/fs/cgroup", hierarchy, "minirun", cid)
                if os.path.isdir(path):
                    out.append(f"cgroup {path}")
            if os.path.isdir(os.path.join("/sys/fs/cgroup/minirun", cid)):
                out.append(f"cgroup /sys/fs/cgroup/minirun/{cid}")
            veth = net_store.host_veth(cid)
            if os.path.exists(f"/sys/class/net/{veth}"):
                out.append(f"veth {veth}")
        return out


def _nft_table_exists(table):
    res = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True)
    return res.returncode == 0


class Pty:
    """A command on a pseudo-terminal, as a user at a terminal would run it."""

    def __init__(self, argv, env, rows=30, cols=100):
        import fcntl
        import pty
        import struct
        import termios

        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.out = b""

    def read_until(self, needle, timeout=10.0):
        import select

        needle = needle.encode() if isinstance(needle, str) else needle
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; got {self.out!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"EOF before {needle!r}; got {self.out!r}")
                self.out += data
        return self.out

    def write(self, text):
        os.write(self.fd, text.encode())

    def resize(self, rows, cols):
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)

    def wait(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        import select

        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out; output {self.out!r}")
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    pass

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
