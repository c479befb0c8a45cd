"""Networks and container endpoints on disk, under one lock.

Layout of <root>/.network/ (the leading dot keeps it out of the container-id
namespace: ids start with a letter or digit):
  lock                   flock'ed for every read-modify-write below
  networks/<name>.json   a network: subnet, gateway, bridge device, IPAM table
  endpoints/<id>.json    a container's attachment: mode, ip, veth, ports, files
  files/<id>/            hosts, hostname, resolv.conf (bind-mounted into the container)

The store is the source of truth: the kernel side (bridges, veths, nftables
rules) is derived from it and can be rebuilt or cleaned from it after a crash.
Writes are atomic (temp file + rename) so a crash never leaves half a record.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile

from minirun.errors import MinirunError

DEFAULT_ROOT = "/run/minirun"
DEFAULT_NETWORK = "bridge"          # Docker's name for the default network
PREDEFINED = ("bridge", "host", "none")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def check_container_id(container_id):
    if not isinstance(container_id, str) or not _ID_RE.match(container_id) or len(container_id) > 1024:
        raise MinirunError(f"invalid container id {container_id!r}: use letters, digits, and _ . + -")


def check_network_name(name):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise MinirunError(f"invalid network name {name!r}: use up to 64 letters, digits, and _ . -")


def write_atomic(path, data):
    """Replace `path` with `data` (bytes) so readers see the old or the new file, never half."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_in_place(path, text):
    """Overwrite a file keeping its inode: a bind mount of it into a container
    follows the inode, so rename would leave the container with the old file."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


class Store:
    """The network state of one minirun root (`--root`)."""

    def __init__(self, root=DEFAULT_ROOT):
        self.root = os.path.abspath(root)
        self.dir = os.path.join(self.root, ".network")
        # Kernel objects are global, stores are not: a test's store must not
        # touch the real one's table or bridge.  The default root keeps the
        # readable names; any other root gets names tagged with its path.
        if self.root == DEFAULT_ROOT:
            self.tag = ""
            self.table = "minirun"
            self.default_bridge = "minirun0"
        else:
            self.tag = hashlib.sha256(self.root.encode()).hexdigest()[:8]
            self.table = f"minirun_{self.tag}"
            self.default_bridge = f"mr{self.tag}0"
        self._lock_fd = None
        self._depth = 0

    # -- locking ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock over the whole store (re-entrant within one Store)."""
        if self._depth == 0:
            for sub in ("networks", "endpoints", "files"):
                os.makedirs(os.path.join(self.dir, sub), mode=0o711, exist_ok=True)
            fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                os.close(self._lock_fd)   # closing releases the flock
                self._lock_fd = None

    @staticmethod
    @contextlib.contextmanager
    def host_lock():
        """Host-wide lock for choosing a subnet and creating its bridge, so two
        stores (e.g. parallel test runs) never pick the same free subnet."""
        d = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()
        fd = os.open(os.path.join(d, "minirun-network.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _require_lock(self):
        if self._depth == 0:
            raise RuntimeError("network store modified without its lock")

    # -- records --------------------------------------------------------------
    def _read(self, path):
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def _write(self, path, record):
        self._require_lock()
        write_atomic(path, json.dumps(record, indent=1, sort_keys=True).encode())

    def _remove(self, path):
        self._require_lock()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def _names(self, sub):
        try:
            return sorted(n[:-5] for n in os.listdir(os.path.join(self.dir, sub))
                          if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return []

    def network(self, name):
        return self._read(os.path.join(self.dir, "networks", f"{name}.json"))

    def networks(self):
        return [n for n in (self.network(x) for x in self._names("networks")) if n]

    def save_network(self, net):
        self._write(os.path.join(self.dir, "networks", f"{net['name']}.json"), net)

    def remove_network(self, name):
        self._remove(os.path.join(self.dir, "networks", f"{name}.json"))

    def endpoint(self, container_id):
        return self._read(os.path.join(self.dir, "endpoints", f"{container_id}.json"))

    def endpoints(self):
        return [e for e in (self.endpoint(x) for x in self._names("endpoints")) if e]

    def save_endpoint(self, ep):
        self._write(os.path.join(self.dir, "endpoints", f"{ep['container_id']}.json"), ep)

    def remove_endpoint(self, container_id):
        self._remove(os.path.join(self.dir, "endpoints", f"{container_id}.json"))

    def files_dir(self, container_id):
        return os.path.join(self.dir, "files", container_id)

    # -- names of kernel objects ------------------------------------------------
    def host_veth(self, container_id):
        """Host end of a container's veth pair: fits IFNAMSIZ (15) and is stable,
        so a retry or a cleanup after a crash finds the same name."""
        h = hashlib.sha256(f"{self.tag}/{container_id}".encode()).hexdigest()
        return f"mrv{h[:11]}"
