"""Container state on disk: <root>/<id>/state.json, written atomically, under a lock.

Layout of <root>/<id>/:
  state.json   what later calls need: pid and its start time, bundle, cgroup, ...
  exec.fifo    exists from `create` until `start`: the container is "created"
  objects.json the kernel objects create will make (cgroup dirs, mounts in our
               namespace), written once *before* they are made: SIGKILL at any
               instant leaves nothing `delete --force` cannot find, even if
               state.json was never written or has been damaged since
The directory itself is the lock (flock on its fd), so `delete` can remove it
while holding the lock and a waiter then sees "does not exist".  A crash at
any point leaves a directory that `delete --force` can clean up.
"""
import errno
import fcntl
import os

from minirun import OCI_VERSION
from minirun import jsonio as json
from minirun.errors import ContainerExists, ContainerNotFound, MinirunError, StateCorrupt
from minirun.linux import proc
from minirun.linux.trace import checkpoint

# An id: a letter or digit, then letters, digits and _ . + - (runc's rule).
# Checked with sets rather than `re`, which costs more to import than a
# whole `minirun state` otherwise takes.
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("_.+-")


def valid_id(name):
    return bool(name) and name[0] in _ID_FIRST and _ID_REST.issuperset(name)
FIFO_NAME = "exec.fifo"
OBJECTS_NAME = "objects.json"

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def check_id(container_id):
    if not valid_id(container_id) or len(container_id) > 1024:
        raise MinirunError(f"invalid container id {container_id!r}: use letters, digits, and _ . + -")


def now_rfc3339():
    """UTC with microseconds, e.g. 2024-05-01T12:00:00.123456Z (no datetime
    import: the verbs engines call stay lean)."""
    import time

    seconds, ns = divmod(time.time_ns(), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns // 1000:06d}Z"


class Container:
    """A container's state directory, opened and locked."""

    def __init__(self, root, container_id, dir_fd):
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self._fd = dir_fd
        self.data = {}
        self.broken = None  # why state.json could not be used (load with broken_ok)

    # --- opening -------------------------------------------------------
    @classmethod
    def new(cls, root, container_id):
        """Make the state directory for a new container and lock it."""
        check_id(container_id)
        os.makedirs(root, mode=0o711, exist_ok=True)
        path = os.path.join(root, container_id)
        checkpoint()  # crash points for the tests of crash safety (linux/trace.py)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        c = cls(root, container_id, fd)
        c.data = {"id": container_id, "status": CREATING}
        return c

    @classmethod
    def load(cls, root, container_id, lock=True, broken_ok=False):
        """Open an existing container (locked unless lock=False).

        A state.json that cannot be read raises StateCorrupt naming the file;
        with broken_ok (delete --force) the container opens anyway, knowing
        only what objects.json recorded, so that it can still be destroyed."""
        check_id(container_id)
        path = os.path.join(root, container_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        if lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
        c = cls(root, container_id, fd)
        state_path = os.path.join(path, "state.json")
        try:
            with open(state_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            # Deleted while we waited for the lock, or a create that crashed
            # before writing state: the latter is still deletable.
            if not os.path.exists(path):
                c.close()
                raise ContainerNotFound(container_id) from None
            c.data = {"id": container_id, "status": CREATING}
            return c
        try:
            data = json.loads(raw)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            problem = f"invalid JSON ({e})"
        else:
            problem = state_problem(data, container_id)
        if problem is None:
            c.data = data
        elif broken_ok:
            c.data = {"id": container_id, "status": CREATING}
            c.broken = problem
        else:
            c.close()
            raise StateCorrupt(f"container {container_id}: cannot read its state file "
                               f"{state_path}: {problem}")
        return c

    @property
    def lock_fd(self):
        return self._fd

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- persistence -----------------------------------------------------
    def save(self):
        checkpoint()
        tmp = os.path.join(self.dir, f".state.json.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, os.path.join(self.dir, "state.json"))

    def remove(self):
        """Remove the state directory (while still holding the lock)."""
        checkpoint()
        for name in os.listdir(self.dir):
            try:
                os.unlink(os.path.join(self.dir, name))
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
        try:
            os.rmdir(self.dir)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def record_objects(self, objects):
        """Write objects.json (see the module's docstring) before making them."""
        tmp = os.path.join(self.dir, f".{OBJECTS_NAME}.{os.getpid()}")
        checkpoint()
        with open(tmp, "w") as f:
            json.dump(objects, f)
        os.replace(tmp, os.path.join(self.dir, OBJECTS_NAME))

    def recorded(self, key):
        """A kernel object's record: from state.json, else from objects.json
        (a create killed before it saved state, or a damaged state.json)."""
        if key in self.data or (self.data.get("status") != CREATING and not self.broken):
            return self.data.get(key)  # a complete state: nothing more to read
        try:
            with open(os.path.join(self.dir, OBJECTS_NAME)) as f:
                objects = json.load(f)
        except (OSError, ValueError):
            return None
        return objects.get(key) if isinstance(objects, dict) else None

    def save_config(self, config):
        """Keep the config as it was at create: later edits of the bundle's
        config.json must not affect the container (runtime-spec)."""
        tmp = os.path.join(self.dir, f".config.json.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(config, f)
        os.replace(tmp, os.path.join(self.dir, "config.json"))

    def config(self):
        """The config.json the container was created with (None if missing)."""
        try:
            with open(os.path.join(self.dir, "config.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    @property
    def fifo_path(self):
        return os.path.join(self.dir, FIFO_NAME)

    # --- status ----------------------------------------------------------
    @property
    def pid(self):
        return self.data.get("pid") or 0

    def init_alive(self):
        return proc.is_running(self.pid, self.data.get("pid_start"))

    def status(self):
        if self.data.get("status") == CREATING:
            return CREATING if self.pid and self.init_alive() else STOPPED
        if not self.init_alive():
            return STOPPED
        if os.path.exists(self.fifo_path):
            return CREATED
        cg = self.cgroup()
        if cg is not None and cg.is_frozen():
            return PAUSED
        return RUNNING

    def cgroup(self):
        record = self.data.get("cgroup") or self.recorded("cgroup")
        if not record:
            return None
        from minirun.cgroups import load_cgroup

        return load_cgroup(record)

    def oci_state(self, status=None):
        """The state JSON of the runtime spec (plus runc's rootfs/created/owner).
        `status` overrides the live one (hooks describe a given moment)."""
        status = status or self.status()
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status not in (STOPPED,) else 0,
            "status": status,
            "bundle": self.data.get("bundle", ""),
            "rootfs": self.data.get("rootfs", ""),
            "created": self.data.get("created", ""),
            "owner": "",
            "annotations": self.data.get("annotations") or {},
        }


_STATUSES = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)
_STRINGS = ("bundle", "rootfs", "created")


def state_problem(data, container_id):
    """What makes a parsed state.json unusable (None if nothing): checked
    field by field so that a damaged file is reported, never acted upon."""
    if not isinstance(data, dict):
        return f"expected an object, got {type(data).__name__}"
    if data.get("id") != container_id:
        return f"id is {data.get('id')!r}, not {container_id!r}"
    if data.get("status") not in _STATUSES:
        return f"unknown status {data.get('status')!r}"
    for key in ("pid", "pid_start"):
        value = data.get(key)
        if value is not None and (type(value) is not int or value < 0):
            return f"{key} is {value!r}, not a number"
    for key in _STRINGS:
        if not isinstance(data.get(key, ""), str):
            return f"{key} is {data[key]!r}, not a string"
    if not isinstance(data.get("annotations") or {}, dict):
        return "annotations is not an object"
    cgroup = data.get("cgroup")
    if cgroup is not None and not (isinstance(cgroup, dict) and isinstance(
            cgroup.get("path"), str) and cgroup.get("version") in ("v1", "v2")):
        return f"cgroup is {cgroup!r}, not a cgroup record"
    mounts = data.get("host_mounts")
    if mounts is not None and not (isinstance(mounts, dict) and isinstance(
            mounts.get("path"), str) and type(mounts.get("below")) is int):
        return f"host_mounts is {mounts!r}, not a mount record"
    return None


def list_ids(root):
    try:
        return sorted(n for n in os.listdir(root) if valid_id(n) and
                      os.path.isdir(os.path.join(root, n)))
    except FileNotFoundError:
        return []
