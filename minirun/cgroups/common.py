"""What both cgroup drivers share: reading the host's layout, writing control
files with errors that name the file and value, and the pure conversions from
the OCI spec (written for cgroup v1) to cgroup v2 values.

Everything that converts or parses is a pure function with a unit test
(tests/cgroups/test_cgroup_common.py); everything that touches /sys/fs/cgroup goes
through write_file/read_text/make_dirs/rmdir_retry so the trace shows it.

One module although it is long, on purpose: every OCI verb an engine runs
(create, start, state, kill, delete) imports it, and `create` uses every part
of it (layout, paths, conversions, device rules, files, processes), so a split
by concern would cost each engine call one import per part
(tests/runtime/test_imports.py holds the verbs to the modules they import).
Its sections are the seams should that trade change: host layout,
cgroupsPath, conversions, devices, file access (with processes), and the
Cgroup interface.
"""
import errno
import os
import time

from minirun.errors import CgroupError
from minirun.linux.trace import step

CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "/minirun"

# v1 controllers minirun puts a container into (when the host mounts them).
# name=systemd is systemd's bookkeeping hierarchy, not a resource controller.
V1_CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio",
                  "pids", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc")


# ----------------------------------------------------------------- host layout

def parse_proc_cgroup(text):
    """/proc/<pid>/cgroup -> {controller: path}; the v2 entry ("0::/x") is key "".

    A co-mounted v1 hierarchy ("2:cpu,cpuacct:/x") gives one key per controller.
    """
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for name in parts[1].split(",") if parts[1] else [""]:
            out[name] = parts[2]
    return out


def parse_mountinfo(text):
    """/proc/self/mountinfo -> [(mount_point, root, fstype, super_options)] of cgroup mounts."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        mounts.append((point, fields[3], fstype, fields[sep + 3].split(",")))
    return mounts


class Layout:
    """The cgroup mounts this process sees and its own place in each hierarchy."""

    def __init__(self, mountinfo_text, proc_cgroup_text, unified_controllers=None):
        self.v1 = {}          # controller -> (mount_point, mount_root)
        self.unified = None   # (mount_point, mount_root) of the cgroup2 mount
        for point, root, fstype, opts in parse_mountinfo(mountinfo_text):
            if fstype == "cgroup2":
                # The canonical mount wins over stray extra cgroup2 mounts.
                if self.unified is None or point in (CGROUP_ROOT, CGROUP_ROOT + "/unified"):
                    self.unified = (point, root)
                continue
            for opt in opts:
                if opt in V1_CONTROLLERS and opt not in self.v1:
                    self.v1[opt] = (point, root)
        self.own = parse_proc_cgroup(proc_cgroup_text)
        self.unified_controllers = unified_controllers

    @classmethod
    def read(cls):
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
        with open("/proc/self/cgroup") as f:
            own = f.read()
        layout = cls(mountinfo, own)
        if layout.unified:
            try:
                layout.unified_controllers = read_text(
                    os.path.join(layout.unified[0], "cgroup.controllers")).split()
            except CgroupError:
                layout.unified_controllers = []
        return layout

    @property
    def is_v2(self):
        """Pure cgroup v2: /sys/fs/cgroup itself is cgroup2 and has controllers.

        A hybrid host (v1 controllers, plus a cgroup2 mount at
        /sys/fs/cgroup/unified that holds at most a leftover controller) is v1.
        """
        return (self.unified is not None and self.unified[0] == CGROUP_ROOT
                and bool(self.unified_controllers))

    def own_path(self, controller):
        """This process's cgroup in a hierarchy, relative to that mount's root."""
        path = self.own.get(controller, "/") or "/"
        if controller == "":
            root = self.unified[1] if self.unified else "/"
        else:
            root = self.v1.get(controller, (None, "/"))[1]
        # Outside a cgroup namespace a bind-mounted hierarchy shows its root
        # in /proc/self/cgroup too; strip it so the path is mount-relative.
        if root not in ("/", "") and (path == root or path.startswith(root + "/")):
            path = path[len(root):] or "/"
        return path


# ----------------------------------------------------------------- cgroupsPath

def systemd_path_to_cgroupfs(path):
    """runc's systemd form "slice:prefix:name" -> the cgroupfs path systemd would use.

    Engines set this when configured for the systemd driver; minirun manages
    cgroupfs directly, so it places the container where systemd would have:
    "machine.slice:libpod:abc" -> "/machine.slice/libpod-abc.scope", and a
    nested slice "a-b.slice" expands to "/a.slice/a-b.slice".
    """
    slice_, prefix, name = path.split(":")
    slice_ = slice_ or "system.slice"
    parts = []
    if slice_ != "-.slice":
        stem = slice_[:-len(".slice")] if slice_.endswith(".slice") else slice_
        pieces = stem.split("-")
        parts = ["-".join(pieces[:i + 1]) + ".slice" for i in range(len(pieces))]
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return "/" + "/".join(parts + [unit])


def resolve_path(container_id, cgroups_path, own_path):
    """Where a container's cgroup goes, as a path from the hierarchy's root.

    - None or "": the default "/minirun/<id>" (absolute, like Docker's
      "/docker/<id>", so it does not depend on where the caller sits);
    - absolute: taken from the root of the hierarchy (OCI runtime spec);
    - relative: under `own_path` (the caller's cgroup in that hierarchy).
    The result is normalised as an absolute path, so ".." cannot climb out
    of the cgroup mount.
    """
    if not cgroups_path:
        inner = f"{DEFAULT_PARENT}/{container_id}"
    elif cgroups_path.count(":") == 2 and "/" not in cgroups_path:
        inner = systemd_path_to_cgroupfs(cgroups_path)
    elif cgroups_path.startswith("/"):
        inner = cgroups_path
    else:
        inner = os.path.join(own_path or "/", cgroups_path)
    inner = os.path.normpath("/" + inner)
    if inner.startswith("//"):
        inner = inner[1:]
    if inner == "/":
        raise CgroupError(f"invalid cgroupsPath {cgroups_path!r}: it names the root cgroup")
    return inner


# ----------------------------------------------------------------- conversions

def shares_to_weight(shares):
    """cpu.shares [2..262144], default 1024 -> cpu.weight [1..10000], default 100.

    The quadratic-in-log2 curve runc (PR #4785) and crun (issue #1721) adopted
    in 2025: it maps min, default and max onto each other exactly, where the
    old linear formula turned the default 1024 into 39.  0 means unset.
    """
    if not shares:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    import math

    l = math.log2(shares)
    return math.ceil(10 ** ((l * l + 125 * l) / 612.0 - 7.0 / 34.0))


def blkio_weight_to_io_weight(weight):
    """blkio.weight [10..1000] -> io.weight [1..10000] (runc's linear map). 0 = unset."""
    if not weight:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap, limit):
    """OCI memory.swap is memory+swap (v1's memsw); v2's memory.swap.max is swap alone.

    Returns the memory.swap.max value: -1 for "max", None for "leave as is".
    """
    if limit == -1 and not swap:
        return -1  # unlimited memory and no word on swap: unlimited swap too (runc)
    if not swap:
        return None
    if swap == -1:
        return -1
    if not limit or limit == -1:
        raise CgroupError("invalid memory.swap: a swap limit needs a memory limit")
    if swap < limit:
        raise CgroupError(f"invalid memory.swap {swap}: memory+swap limit must be >= "
                          f"memory limit {limit}")
    return swap - limit


def limit_str(value):
    """A byte/count limit as cgroup v2 spells it: -1 (or any negative) is "max"."""
    return "max" if value is None or value < 0 else str(value)


def cpu_max(quota, period):
    """cpu.max for quota/period; None when neither is set.

    "max" alone or a quota alone leaves the current period unchanged, which
    is what `update --cpu-quota` needs.
    """
    if not quota and not period:
        return None
    value = str(quota) if quota and quota > 0 else "max"
    if period:
        value += f" {period}"
    return value


def hugepage_sizes(sysfs="/sys/kernel/mm/hugepages"):
    """Huge page sizes this kernel offers, spelled as the spec and cgroups do ("2MB", "1GB")."""
    try:
        names = os.listdir(sysfs)
    except FileNotFoundError:
        return []
    return sorted((kb_to_pagesize(int(n[len("hugepages-"):-2])) for n in names
                   if n.startswith("hugepages-") and n.endswith("kB")), key=pagesize_bytes)


def kb_to_pagesize(kb):
    units = ["KB", "MB", "GB", "TB"]
    i = 0
    while kb >= 1024 and kb % 1024 == 0 and i < len(units) - 1:
        kb //= 1024
        i += 1
    return f"{kb}{units[i]}"


def pagesize_bytes(size):
    import re

    m = re.fullmatch(r"(\d+)([KMGT]?)B", size)
    if not m:
        raise CgroupError(f"invalid hugepage size {size!r}")
    return int(m.group(1)) << (10 * " KMGT".index(m.group(2) or " "))


# ----------------------------------------------------------------- devices

# The device nodes every container gets (runc's AllowedDevices): /dev/null,
# zero, full, random, urandom, tty, console, ptmx and the pty slaves, plus
# mknod of any node (creating a node does not give access to it).
DEFAULT_DEVICE_RULES = [
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
]


def normalize_device_rule(rule):
    """A linux.resources.devices entry with defaults filled in and checked."""
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise CgroupError(f"invalid device rule type {kind!r} (want a, b or c)")
    access = rule.get("access") or "rwm"
    if not access or set(access) - set("rwm"):
        raise CgroupError(f"invalid device rule access {access!r} (want letters of rwm)")
    major, minor = rule.get("major"), rule.get("minor")
    if major is not None and major < 0:
        major = None
    if minor is not None and minor < 0:
        minor = None
    if kind == "a":
        major = minor = None
    return {"allow": bool(rule.get("allow")), "type": kind, "major": major,
            "minor": minor, "access": "".join(c for c in "rwm" if c in access)}


def device_rule_v1(rule):
    """The text written to devices.allow/devices.deny: "c 1:3 rwm", "a *:* rwm"."""
    r = normalize_device_rule(rule)
    if r["type"] == "a":
        return "a *:* rwm" if r["access"] == "rwm" else f"a *:* {r['access']}"
    major = "*" if r["major"] is None else r["major"]
    minor = "*" if r["minor"] is None else r["minor"]
    return f"{r['type']} {major}:{minor} {r['access']}"


def effective_device_rules(spec_rules, linux_devices=()):
    """The device rules to enforce for a container, in order.

    The spec's own rules come first and in their order (the OCI conformance
    suite reads devices.list back by position); then runc's default device
    set, and an "rwm" rule for each node listed in linux.devices (the spec
    says those MUST be usable).  A default the spec explicitly denies for the
    same device is left out, so an explicit deny keeps its effect.
    """
    rules = [normalize_device_rule(r) for r in spec_rules or []]
    denied = {(r["type"], r["major"], r["minor"]) for r in rules if not r["allow"]
              and r["type"] != "a"}
    extra = list(DEFAULT_DEVICE_RULES)
    for dev in linux_devices or []:
        if dev.get("type") in ("c", "b", "u") and dev.get("major") is not None:
            extra.append({"allow": True, "type": "b" if dev["type"] == "b" else "c",
                          "major": dev["major"], "minor": dev.get("minor"), "access": "rwm"})
    if rules:
        for r in extra:
            r = normalize_device_rule(r)
            if (r["type"], r["major"], r["minor"]) not in denied and r not in rules:
                rules.append(r)
    return rules


def complete_devices(resources, linux_devices=None):
    """resources with its device rules completed (what create() enforces).

    Idempotent: completing already-complete rules changes nothing.
    """
    resources = dict(resources or {})
    if resources.get("devices"):
        resources["devices"] = effective_device_rules(resources["devices"], linux_devices)
    return resources


def resources_from_spec(linux):
    """linux.resources of a config.json, with the device rules completed.

    What the runtime passes to Cgroup.create(): the spec's resources, and as
    devices the effective rules (see effective_device_rules).
    """
    linux = linux or {}
    return complete_devices(linux.get("resources"), linux.get("devices"))


# ----------------------------------------------------------------- file access

def _strerror(e):
    return (e.strerror or os.strerror(e.errno)).lower()


def write_file(path, value, why=""):
    """Write one value to a cgroup control file in a single write(2).

    The kernel parses each write separately, so a value must never be split;
    the error names the file and the value, runc-style.
    """
    value = str(value)
    step("write", f"{path} <- {value!r}", why, "cgroups(7)")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        raise CgroupError(f'failed to write "{value}": open {path}: {_strerror(e)}') from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        err = CgroupError(f'failed to write "{value}": write {path}: {_strerror(e)}')
        err.errno = e.errno
        raise err from None
    finally:
        os.close(fd)


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise CgroupError(f"failed to read {path}: {_strerror(e)}") from None


def read_int(path, default=None):
    """An integer file; "max" reads as -1; a missing file gives `default`."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return default
    except OSError:
        return default
    if text == "max":
        return -1
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return default


def read_kv(path):
    """A "key value" file (memory.stat, cpu.stat, memory.events) -> {key: int}."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    try:
                        out[parts[0]] = int(parts[1])
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def make_dirs(mount_point, inner, why="make the container's cgroup"):
    """mkdir -p mount_point+inner; returns the directories it created, top-down.

    A parent removed by another container's cleanup between our checks
    (ENOENT) is recreated; a directory that already exists is fine.
    """
    created = []
    path = mount_point
    parts = inner.strip("/").split("/")
    for depth, part in enumerate(parts):
        path = os.path.join(path, part)
        if depth < len(parts) - 1 and os.path.isdir(path):
            # A parent that exists (/minirun): a stat takes no lock, while
            # mkdir takes the parent directory's lock even to say EEXIST, and
            # hundreds of containers made at once queue on it.
            continue
        for attempt in range(3):
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise CgroupError(f"failed to create {path}: parent vanished") from None
                # Parent was rmdir'ed by a concurrent cleanup: start over from it.
                parent = os.path.dirname(path)
                try:
                    os.mkdir(parent, 0o755)
                    created.append(parent)
                except FileExistsError:
                    pass
                except FileNotFoundError:
                    return created + make_dirs(mount_point, inner, why)  # deeper race
                except OSError as e:
                    raise CgroupError(f"failed to create {parent}: {_strerror(e)}") from None
                continue
            except OSError as e:
                raise CgroupError(f"failed to create {path}: {_strerror(e)}") from None
            step("mkdir", path, why, "cgroups(7)")
            created.append(path)
            break
    return created


def missing_dirs(mount_point, inner):
    """The directories make_dirs(mount_point, inner) would create, top-down."""
    out = []
    path = mount_point
    for part in inner.strip("/").split("/"):
        path = os.path.join(path, part)
        if out or not os.path.isdir(path):
            out.append(path)
    return out


def subdirs_bottom_up(path):
    """Every cgroup directory below `path` (deepest first), then `path` itself."""
    out = []
    for dirpath, dirnames, _ in os.walk(path, topdown=False):
        out.append(dirpath)
    return out


def rmdir_retry(path, timeout=2.0):
    """rmdir a cgroup; EBUSY (tasks still exiting) is retried briefly.

    Returns True when the directory is gone (or never existed).
    """
    delay = 0.002
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            step("rmdir", path, "remove the container's cgroup", "cgroups(7)")
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.EAGAIN) or time.monotonic() > deadline:
                if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    return False
                raise CgroupError(f"failed to remove cgroup {path}: {_strerror(e)}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _childless(path):
    """True if the cgroup directory exists and has no child cgroups: kernfs
    counts subdirectories in st_nlink (2 + children).  A stat takes no lock;
    an rmdir that fails with EBUSY takes the kernel's global cgroup mutex, which
    every container being made or removed at the same moment waits for."""
    try:
        return os.stat(path).st_nlink <= 2
    except OSError:
        return False


def read_procs(path):
    """PIDs in one cgroup directory's cgroup.procs (empty if it is gone)."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
    except OSError as e:
        if e.errno == errno.ENODEV:  # cgroup removed while reading
            return []
        raise CgroupError(f"failed to read {path}/cgroup.procs: {_strerror(e)}") from None


def all_procs(path):
    """PIDs in a cgroup and every cgroup below it (a container may nest its own)."""
    pids = []
    for d in subdirs_bottom_up(path):
        pids.extend(read_procs(d))
    return sorted(set(pids))


def add_pid(path, pid):
    """Move pid into a cgroup; EINVAL on a task still being forked is retried (runc)."""
    procs = os.path.join(path, "cgroup.procs")
    for attempt in range(5):
        try:
            write_file(procs, pid, "move the process into the container's cgroup")
            return
        except CgroupError as e:
            if getattr(e, "errno", None) != errno.EINVAL or attempt == 4:
                raise
            time.sleep(0.03)


def signal_all(pids, sig):
    """Send sig to every pid; one that has already gone is not an error."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_until(predicate, timeout, first_delay=0.001):
    """Poll predicate() with backoff until it is true or timeout seconds pass."""
    delay = first_delay
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class Cgroup:
    """The interface both drivers implement (see minirun/cgroups/__init__.py)."""

    version = None

    def __init__(self, container_id, path, created=None):
        self.container_id = container_id
        self.path = path                   # inner path from the hierarchy root
        self.created = list(created or [])  # dirs create() made, top-down

    def __repr__(self):
        return f"<{type(self).__name__} {self.container_id} {self.path}>"

    def plan(self):
        """Note in self.created every directory create() is going to make, so
        that to_dict(), saved before create(), lets a later `delete` remove
        them even if we are killed half-way (crash safety)."""
        self.created = [d for mount_point, inner in self._places()
                        for d in missing_dirs(mount_point, inner)]

    def _note_created(self, made):
        self.created += [d for d in made if d not in self.created]

    # The interface (v1.py and v2.py implement it):
    def _places(self):
        """(mount point, inner path) of each directory of the cgroup."""
        raise NotImplementedError

    def create(self, resources=None, linux_devices=None):
        """mkdir the cgroup (every hierarchy) and apply linux.resources.

        Device rules are completed with the default devices and an allow
        rule per linux_devices entry (config.json linux.devices), as runc
        does; see effective_device_rules.  On failure remove what was made
        and raise CgroupError."""
        raise NotImplementedError

    def add_process(self, pid):
        """Move pid (all its threads) into the cgroup."""
        raise NotImplementedError

    def update(self, resources):
        """Change the limits of a running container (device rules excepted)."""
        raise NotImplementedError

    def pids(self):
        """Host PIDs of every process in the cgroup and its sub-cgroups."""
        raise NotImplementedError

    def freeze(self):
        raise NotImplementedError

    def thaw(self):
        raise NotImplementedError

    def is_frozen(self):
        raise NotImplementedError

    def kill_all(self, sig):
        """Signal every process; with SIGKILL, return once the cgroup is empty."""
        raise NotImplementedError

    def stats(self):
        """runc's `events --stats` "data" object (cpu, memory, pids, blkio, hugetlb)."""
        raise NotImplementedError

    def oom_kill_count(self):
        """How many processes the OOM killer has killed in this cgroup."""
        raise NotImplementedError

    def destroy(self):
        """Remove the cgroup (idempotent; CgroupError only if processes remain)."""
        raise NotImplementedError

    def exists(self):
        raise NotImplementedError

    def to_dict(self):
        """JSON-able form for state.json; load_cgroup() turns it back."""
        raise NotImplementedError

    def oom_killed(self):
        """Has the OOM killer killed a process of this cgroup?"""
        return self.oom_kill_count() > 0

    def _undo_create(self):
        """Remove what a failed create() made, deepest first; never raises."""
        for d in reversed(self.created):
            try:
                rmdir_retry(d, timeout=0.5)
            except CgroupError:
                pass
        self.created = []

    def _remove(self, dirs):
        """Remove the container's cgroup dirs (and anything nested), then the
        parents create() made if nothing else uses them.  Idempotent."""
        dirs = [d for d in dirs if os.path.isdir(d)]
        # Processes just killed may take a moment to leave; live ones keep
        # the cgroup (EBUSY), and that is the caller's error to report.
        if not wait_until(lambda: not any(all_procs(d) for d in dirs), 0.5):
            left = sorted({p for d in dirs for p in all_procs(d)})
            raise CgroupError(f"failed to remove cgroup {dirs[0]}: device or resource busy "
                              f"(processes still in it: {' '.join(map(str, left[:10]))})")
        busy = []
        for leaf in dirs:
            for d in subdirs_bottom_up(leaf):
                if not rmdir_retry(d):
                    busy.append(d)
        if busy:
            raise CgroupError(f"failed to remove cgroup {busy[0]}: device or resource busy")
        leaves = set(dirs)
        parents = list(reversed(self.created))
        if os.path.dirname(self.path) == DEFAULT_PARENT:
            # "/minirun" is ours even when another container made it.
            parents += [os.path.dirname(d) for d in dirs]
        for d in parents:
            if d in leaves or not _childless(d):
                continue
            try:
                os.rmdir(d)  # shared parents: another container may be inside
                step("rmdir", d, "remove a parent cgroup minirun made", "cgroups(7)")
            except OSError:
                pass
