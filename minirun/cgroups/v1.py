"""cgroup v1 driver: one directory per controller hierarchy.

On v1 every controller is its own tree (/sys/fs/cgroup/<controller>/...), so
a container's cgroup is a set of directories with the same inner path, and a
process must be written into each.  Hybrid hosts also have a cgroup2 mount
(/sys/fs/cgroup/unified) with no or few controllers; when it is there the
container gets a directory in it too, which gives v1 hosts two v2 features:
cgroup.kill (kill every process atomically) and, when hugetlb is bound to
cgroup2 rather than v1 (as on this development machine), hugepage limits.
"""
import errno
import os

from minirun.errors import CgroupError
from minirun.linux.signals import SIGKILL
from minirun.log import debug

from . import common
from .common import read_int, read_kv, read_text, write_file


class V1Cgroup(common.Cgroup):
    version = "v1"

    def __init__(self, container_id, path, dirs, mounts, unified=None, created=None):
        super().__init__(container_id, path, created)
        self.dirs = dict(dirs)      # controller -> directory (co-mounted ones share it)
        self.mounts = dict(mounts)  # controller -> its mount point; "" = the cgroup2 mount
        self.unified = unified      # directory in the hybrid cgroup2 mount, or None

    # -------------------------------------------------------------- plumbing

    @classmethod
    def open(cls, container_id, cgroups_path, layout):
        dirs, mounts = {}, {}
        path = None
        for ctrl, (mount_point, _root) in sorted(layout.v1.items()):
            inner = common.resolve_path(container_id, cgroups_path, layout.own_path(ctrl))
            path = path or inner
            dirs[ctrl] = mount_point + inner
            mounts[ctrl] = mount_point
        if not dirs:
            raise CgroupError("no cgroup v1 controllers are mounted under /sys/fs/cgroup")
        unified = None
        if layout.unified:
            inner = common.resolve_path(container_id, cgroups_path, layout.own_path(""))
            unified = layout.unified[0] + inner
            mounts[""] = layout.unified[0]
        return cls(container_id, path, dirs, mounts, unified)

    def to_dict(self):
        return {"version": "v1", "id": self.container_id, "path": self.path,
                "dirs": self.dirs, "mounts": self.mounts, "unified": self.unified,
                "created": self.created}

    @classmethod
    def from_dict(cls, d):
        return cls(d["id"], d["path"], d["dirs"], d["mounts"], d.get("unified"),
                   d.get("created"))

    def _mount_of(self, directory):
        """(mount point, inner path) of one of this cgroup's directories."""
        if directory == self.unified:
            mount = self.mounts[""]
        else:
            mount = next(self.mounts[c] for c, d in self.dirs.items() if d == directory)
        return mount, directory[len(mount):]

    def _places(self):
        return [self._mount_of(d) for d in self._hierarchies()]

    def _hierarchies(self):
        """Distinct directories (co-mounted controllers appear once)."""
        seen = []
        for d in self.dirs.values():
            if d not in seen:
                seen.append(d)
        if self.unified:
            seen.append(self.unified)
        return seen

    def _dir(self, ctrl, needed_for=None):
        d = self.dirs.get(ctrl)
        if d is None and needed_for:
            raise CgroupError(f"cannot set {needed_for}: the {ctrl} cgroup controller is not "
                              f"mounted on this host")
        return d

    # -------------------------------------------------------------- lifecycle

    def create(self, resources=None, linux_devices=None):
        resources = common.complete_devices(resources, linux_devices)
        validate(resources)
        try:
            for d in self._hierarchies():
                mount_point, inner = self._mount_of(d)
                self._note_created(common.make_dirs(mount_point, inner))
            if "cpuset" in self.dirs:
                _fill_cpuset(self.dirs["cpuset"])
            self._set(resources, creating=True)
        except BaseException:
            self._undo_create()
            raise

    def add_process(self, pid):
        for d in self._hierarchies():
            common.add_pid(d, pid)

    def update(self, resources):
        resources = dict(resources or {})
        validate(resources)
        resources.pop("devices", None)  # runc update does not change device rules either
        self._set(resources, creating=False)

    def destroy(self):
        self._remove(self._hierarchies())

    def exists(self):
        return any(os.path.isdir(d) for d in self._hierarchies())

    # -------------------------------------------------------------- processes

    def pids(self):
        """Union over every hierarchy: someone may have moved a process out of
        one of them (the OCI suite's delete_only_create_resources does)."""
        found = set()
        for d in self._hierarchies():
            found.update(common.all_procs(d))
        return sorted(found)

    def freeze(self):
        d = self._dir("freezer", "the freezer state")
        write_file(os.path.join(d, "freezer.state"), "FROZEN", "pause: stop every task")
        state = os.path.join(d, "freezer.state")
        # FREEZING means some task has not stopped yet; writing FROZEN again
        # retries those tasks (runc does the same dance).
        for _ in range(100):
            if common.wait_until(lambda: read_text(state) == "FROZEN", 0.05):
                return
            write_file(state, "FROZEN")
        write_file(state, "THAWED", "could not freeze: undo")
        raise CgroupError(f"failed to freeze {d}: tasks stayed in FREEZING state")

    def thaw(self):
        d = self._dir("freezer", "the freezer state")
        write_file(os.path.join(d, "freezer.state"), "THAWED", "resume the tasks")
        common.wait_until(lambda: read_text(os.path.join(d, "freezer.state")) == "THAWED", 2)

    def is_frozen(self):
        d = self.dirs.get("freezer")
        if not d:
            return False
        try:
            return read_text(os.path.join(d, "freezer.state")) in ("FROZEN", "FREEZING")
        except CgroupError:
            return False

    def kill_all(self, sig=SIGKILL):
        """Signal every process so none escapes by forking.

        cgroup.kill (hybrid hosts, kernel >= 5.14) kills atomically.  Otherwise
        freeze, signal each frozen task, thaw: a frozen task cannot fork, so
        the list is complete; with SIGKILL, repeat until the cgroup is empty.
        """
        if not self.exists():
            return
        frozen_ok = "freezer" in self.dirs and os.path.isdir(self.dirs["freezer"])
        kill_file = self.unified and os.path.join(self.unified, "cgroup.kill")
        if sig == SIGKILL and kill_file and os.path.exists(kill_file):
            write_file(kill_file, "1", "kill every process of the container")
            if frozen_ok and self.is_frozen():
                self.thaw()  # v1-frozen tasks die only once they run again
            if common.wait_until(lambda: not self.pids(), 2.0):
                return
        # A paused container stays paused for a catchable signal (it is
        # delivered on resume); SIGKILL needs the thaw, since a task frozen by
        # the v1 freezer cannot die until it runs again.
        stay_frozen = frozen_ok and self.is_frozen() and sig != SIGKILL
        for _ in range(50):
            if frozen_ok:
                self.freeze()
            try:
                pids = self.pids()
                common.signal_all(pids, sig)
            finally:
                if frozen_ok and not stay_frozen:
                    self.thaw()
            if sig != SIGKILL or not pids:
                return
            if common.wait_until(lambda: not self.pids(), 0.5):
                return
        raise CgroupError(f"failed to kill all processes of {self.path}")

    # -------------------------------------------------------------- stats

    def oom_kill_count(self):
        d = self.dirs.get("memory")
        if not d:
            return 0
        return read_kv(os.path.join(d, "memory.oom_control")).get("oom_kill", 0)

    def stats(self):
        """runc's `events --stats` "data" object, from the v1 files."""
        out = {}
        cpu, acct = self.dirs.get("cpu"), self.dirs.get("cpuacct")
        usage = {}
        if acct:
            usage["total"] = read_int(os.path.join(acct, "cpuacct.usage"), 0)
            try:
                usage["percpu"] = [int(x) for x in read_text(
                    os.path.join(acct, "cpuacct.usage_percpu")).split()]
            except CgroupError:
                pass
            usage["user"] = read_int(os.path.join(acct, "cpuacct.usage_user"), 0)
            usage["kernel"] = read_int(os.path.join(acct, "cpuacct.usage_sys"), 0)
        throttling = {}
        if cpu:
            st = read_kv(os.path.join(cpu, "cpu.stat"))
            throttling = {"periods": st.get("nr_periods", 0),
                          "throttledPeriods": st.get("nr_throttled", 0),
                          "throttledTime": st.get("throttled_time", 0)}
        out["cpu"] = {"usage": usage, "throttling": throttling}
        mem = self.dirs.get("memory")
        if mem:
            def entry(prefix):
                return {"limit": read_int(os.path.join(mem, prefix + "limit_in_bytes"), 0),
                        "usage": read_int(os.path.join(mem, prefix + "usage_in_bytes"), 0),
                        "max": read_int(os.path.join(mem, prefix + "max_usage_in_bytes"), 0),
                        "failcnt": read_int(os.path.join(mem, prefix + "failcnt"), 0)}
            raw = read_kv(os.path.join(mem, "memory.stat"))
            out["memory"] = {"cache": raw.get("total_cache", raw.get("cache", 0)),
                             "usage": entry("memory."), "swap": entry("memory.memsw."),
                             "kernel": entry("memory.kmem."),
                             "kernelTCP": entry("memory.kmem.tcp."),
                             "raw": raw, "oomKill": self.oom_kill_count(),
                             "underOom": read_kv(os.path.join(mem, "memory.oom_control"))
                             .get("under_oom", 0)}
        pids = self.dirs.get("pids")
        if pids:
            out["pids"] = {"current": read_int(os.path.join(pids, "pids.current"), 0),
                           "limit": max(read_int(os.path.join(pids, "pids.max"), 0), 0)}
        blk = self.dirs.get("blkio")
        if blk:
            out["blkio"] = {
                "ioServiceBytesRecursive": _blkio_entries(
                    os.path.join(blk, "blkio.throttle.io_service_bytes_recursive")),
                "ioServicedRecursive": _blkio_entries(
                    os.path.join(blk, "blkio.throttle.io_serviced_recursive")),
            }
        hug = self._hugetlb_dir()
        if hug:
            out["hugetlb"] = _hugetlb_stats(hug, v2=hug == self.unified)
        return out

    # -------------------------------------------------------------- resources

    def _hugetlb_dir(self):
        if "hugetlb" in self.dirs:
            return self.dirs["hugetlb"]
        if self.unified:
            try:
                root = read_text(os.path.join(self.mounts[""], "cgroup.controllers"))
            except CgroupError:
                return None
            if "hugetlb" in root.split():
                return self.unified
        return None

    def _set(self, r, creating):
        mem = r.get("memory") or {}
        cpu = r.get("cpu") or {}
        if mem:
            self._set_memory(mem, creating)
        if cpu:
            self._set_cpu(cpu)
        pids = r.get("pids") or {}
        if pids.get("limit"):
            d = self._dir("pids", "pids.limit")
            write_file(os.path.join(d, "pids.max"),
                       "max" if pids["limit"] < 0 else pids["limit"], "cap the number of tasks")
        if r.get("blockIO"):
            self._set_blkio(r["blockIO"])
        if r.get("hugepageLimits"):
            self._set_hugetlb(r["hugepageLimits"])
        net = r.get("network") or {}
        if net.get("classID") is not None:
            d = self._dir("net_cls", "network.classID")
            write_file(os.path.join(d, "net_cls.classid"), net["classID"])
        for prio in net.get("priorities") or []:
            d = self._dir("net_prio", "network.priorities")
            write_file(os.path.join(d, "net_prio.ifpriomap"),
                       f"{prio['name']} {prio['priority']}")
        for dev, lim in (r.get("rdma") or {}).items():
            d = self._dir("rdma", "rdma")
            write_file(os.path.join(d, "rdma.max"), _rdma_line(dev, lim))
        if creating and r.get("devices"):
            d = self._dir("devices", "devices")
            for rule in r["devices"]:
                rule = common.normalize_device_rule(rule)
                name = "devices.allow" if rule["allow"] else "devices.deny"
                write_file(os.path.join(d, name), common.device_rule_v1(rule),
                           "device access rule, applied in spec order")

    def _set_memory(self, m, creating):
        d = self._dir("memory", "memory limits")
        f = lambda name: os.path.join(d, name)
        limit, swap = m.get("limit") or 0, m.get("swap") or 0
        if limit == -1 and not swap:
            swap = -1  # unlimited memory means unlimited memory+swap too (runc)
        has_memsw = os.path.exists(f("memory.memsw.limit_in_bytes"))
        if swap and not has_memsw:
            if swap != -1:
                raise CgroupError(f"cannot set memory.swap {swap}: the kernel has no swap "
                                  f"accounting ({f('memory.memsw.limit_in_bytes')} missing)")
            swap = 0
        # memsw must stay >= limit after every single write: raise memsw first
        # when growing, lower limit first when shrinking.
        if limit and swap:
            current = read_int(f("memory.limit_in_bytes"), 0)
            if swap == -1 or current < swap:
                write_file(f("memory.memsw.limit_in_bytes"), swap, "memory+swap limit")
                write_file(f("memory.limit_in_bytes"), limit, "memory limit")
            else:
                write_file(f("memory.limit_in_bytes"), limit, "memory limit")
                write_file(f("memory.memsw.limit_in_bytes"), swap, "memory+swap limit")
        elif limit:
            if m.get("checkBeforeUpdate") and not creating and limit > 0:
                _check_not_below_usage(f("memory.usage_in_bytes"), limit)
            write_file(f("memory.limit_in_bytes"), limit, "memory limit")
        elif swap:
            write_file(f("memory.memsw.limit_in_bytes"), swap, "memory+swap limit")
        if m.get("reservation"):
            write_file(f("memory.soft_limit_in_bytes"), m["reservation"],
                       "soft limit: reclaimed down to this under pressure")
        # Kernel memory limits are gone from the kernel (5.16+: the file takes
        # and ignores writes; kmem.tcp still works): best effort, as crun does.
        for key, name in (("kernel", "memory.kmem.limit_in_bytes"),
                          ("kernelTCP", "memory.kmem.tcp.limit_in_bytes")):
            if m.get(key) and os.path.exists(f(name)):
                try:
                    write_file(f(name), m[key], "kernel memory limit (deprecated)")
                except CgroupError as e:
                    debug(f"ignoring {key} memory limit: {e}")
        if m.get("swappiness") is not None and m["swappiness"] >= 0:
            write_file(f("memory.swappiness"), m["swappiness"])
        if m.get("disableOOMKiller"):
            write_file(f("memory.oom_control"), "1", "tasks wait instead of being OOM-killed")

    def _set_cpu(self, c):
        if any(c.get(k) for k in ("shares", "quota", "period", "burst", "realtimeRuntime",
                                   "realtimePeriod")) or c.get("idle") is not None:
            d = self._dir("cpu", "cpu limits")
            f = lambda name: os.path.join(d, name)
            if c.get("shares"):
                write_file(f("cpu.shares"), c["shares"], "relative CPU weight")
            period, quota = c.get("period") or 0, c.get("quota") or 0
            writes = []
            if period:
                writes.append((f("cpu.cfs_period_us"), period))
            if quota:
                writes.append((f("cpu.cfs_quota_us"), quota))
            try:
                for path, value in writes:
                    write_file(path, value, "CFS bandwidth: quota per period")
            except CgroupError as e:
                # A new period can be invalid for the old quota (and vice
                # versa); the other order then works.
                if len(writes) < 2 or getattr(e, "errno", None) != errno.EINVAL:
                    raise
                for path, value in reversed(writes):
                    write_file(path, value, "CFS bandwidth: quota per period")
            if c.get("burst") is not None and os.path.exists(f("cpu.cfs_burst_us")):
                write_file(f("cpu.cfs_burst_us"), c["burst"])
            if c.get("idle") is not None and os.path.exists(f("cpu.idle")):
                write_file(f("cpu.idle"), c["idle"])
            if c.get("realtimePeriod") or c.get("realtimeRuntime"):
                self._set_realtime(d, c.get("realtimePeriod"), c.get("realtimeRuntime"))
        if c.get("cpus") or c.get("mems"):
            d = self._dir("cpuset", "cpu.cpus/cpu.mems")
            if c.get("cpus"):
                write_file(os.path.join(d, "cpuset.cpus"), c["cpus"], "pin to these CPUs")
            if c.get("mems"):
                write_file(os.path.join(d, "cpuset.mems"), c["mems"], "use these memory nodes")

    def _set_realtime(self, d, period, runtime):
        """RT bandwidth must be granted by every ancestor: a child may not hold
        more cpu.rt_runtime_us than its parent, and new cgroups start at 0.
        So raise the runtime of the parents below the hierarchy root first."""
        if not os.path.exists(os.path.join(d, "cpu.rt_runtime_us")):
            raise CgroupError("cannot set realtime cpu limits: the kernel lacks "
                              "CONFIG_RT_GROUP_SCHED (no cpu.rt_runtime_us)")
        if runtime and runtime > 0:
            mount_point, inner = self._mount_of(d)
            parts = inner.strip("/").split("/")[:-1]
            p = mount_point
            for part in parts:
                p = os.path.join(p, part)
                if read_int(os.path.join(p, "cpu.rt_runtime_us"), 0) < runtime:
                    write_file(os.path.join(p, "cpu.rt_runtime_us"), runtime,
                               "let the parent grant the realtime budget")
        if period:
            write_file(os.path.join(d, "cpu.rt_period_us"), period, "realtime period")
        if runtime:
            write_file(os.path.join(d, "cpu.rt_runtime_us"), runtime, "realtime runtime")

    def _set_blkio(self, b):
        d = self._dir("blkio", "blockIO")
        f = lambda name: os.path.join(d, name)

        def weight_file(name):
            # CFQ's blkio.weight is gone from modern kernels; BFQ has its own.
            for candidate in (f"blkio.{name}", f"blkio.bfq.{name}"):
                if os.path.exists(f(candidate)):
                    return f(candidate)
            raise CgroupError(f"cannot set blockIO {name}: the kernel has no blkio.{name} "
                              f"(no CFQ/BFQ weight support)")

        if b.get("weight"):
            write_file(weight_file("weight"), b["weight"], "relative I/O weight")
        if b.get("leafWeight"):
            write_file(weight_file("leaf_weight"), b["leafWeight"])
        for wd in b.get("weightDevice") or []:
            if wd.get("weight"):
                write_file(weight_file("weight_device"),
                           f"{wd['major']}:{wd['minor']} {wd['weight']}")
            if wd.get("leafWeight"):
                write_file(weight_file("leaf_weight_device"),
                           f"{wd['major']}:{wd['minor']} {wd['leafWeight']}")
        for key, name in (("throttleReadBpsDevice", "read_bps_device"),
                          ("throttleWriteBpsDevice", "write_bps_device"),
                          ("throttleReadIOPSDevice", "read_iops_device"),
                          ("throttleWriteIOPSDevice", "write_iops_device")):
            for td in b.get(key) or []:
                write_file(f(f"blkio.throttle.{name}"),
                           f"{td['major']}:{td['minor']} {td['rate']}", "I/O throttle")

    def _set_hugetlb(self, limits):
        sizes = common.hugepage_sizes()
        d = self._hugetlb_dir()
        if d is None:
            raise CgroupError("cannot set hugepageLimits: no hugetlb cgroup controller")
        v2 = d == self.unified
        if v2:
            _enable_controller(*self._mount_of(self.unified), "hugetlb")
        for lim in limits:
            size = lim.get("pageSize") or lim.get("pagesize")
            if size not in sizes:
                raise CgroupError(f"invalid hugepage size {size!r}: this kernel supports "
                                  f"{', '.join(sizes) or 'none'}")
            if v2:
                rsvd = os.path.join(d, f"hugetlb.{size}.rsvd.max")
                if os.path.exists(rsvd):
                    write_file(rsvd, lim["limit"])
                write_file(os.path.join(d, f"hugetlb.{size}.max"), lim["limit"],
                           "huge page limit")
            else:
                write_file(os.path.join(d, f"hugetlb.{size}.limit_in_bytes"), lim["limit"],
                           "huge page limit")


# ------------------------------------------------------------------ helpers

def validate(r):
    """Refuse what v1 cannot do before touching the kernel."""
    if r.get("unified"):
        raise CgroupError("invalid configuration: linux.resources.unified needs cgroup v2 "
                          "(this host uses cgroup v1)")
    swappiness = (r.get("memory") or {}).get("swappiness")
    if swappiness is not None and swappiness > 100:
        raise CgroupError(f"invalid memory swappiness {swappiness}: must be 0..100")
    mem = r.get("memory") or {}
    limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    if limit > 0 and swap > 0 and swap < limit:
        raise CgroupError(f"invalid memory.swap {swap}: memory+swap limit must be >= "
                          f"memory limit {limit}")
    for rule in r.get("devices") or []:
        common.normalize_device_rule(rule)


def _fill_cpuset(leaf):
    """New v1 cpuset cgroups start with empty cpuset.cpus/mems, and the kernel
    refuses tasks until both are set: copy them down from the nearest parent."""
    chain = []
    d = leaf
    while True:
        chain.append(d)
        parent = os.path.dirname(d)
        if not os.path.exists(os.path.join(parent, "cpuset.cpus")):
            break
        d = parent
    chain.reverse()  # hierarchy root first
    for parent, child in zip(chain, chain[1:]):
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read_text(os.path.join(child, name)):
                write_file(os.path.join(child, name), read_text(os.path.join(parent, name)),
                           "copy the parent's cpuset (empty sets refuse tasks)")


def _enable_controller(mount_point, inner, ctrl):
    """Enable a cgroup2 controller for every ancestor of inner, root first
    (a hybrid host's hugetlb lives on its cgroup2 mount)."""
    d = mount_point
    for part in [""] + inner.strip("/").split("/")[:-1]:
        d = os.path.join(d, part) if part else d
        control = os.path.join(d, "cgroup.subtree_control")
        if ctrl not in read_text(control).split():
            write_file(control, f"+{ctrl}", "let the child cgroups use this controller")


def _check_not_below_usage(usage_file, limit):
    usage = read_int(usage_file, 0)
    if usage > limit:
        raise CgroupError(f"unable to set memory limit to {limit} (current usage: {usage}, "
                          f"peak usage: {usage})")


def _rdma_line(dev, lim):
    parts = [dev]
    if lim.get("hcaHandles") is not None:
        parts.append(f"hca_handle={lim['hcaHandles']}")
    if lim.get("hcaObjects") is not None:
        parts.append(f"hca_object={lim['hcaObjects']}")
    return " ".join(parts)


def _blkio_entries(path):
    out = []
    try:
        text = read_text(path)
    except CgroupError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1],
                        "value": int(parts[2])})
    return out


def _hugetlb_stats(d, v2):
    out = {}
    for size in common.hugepage_sizes():
        if v2:
            usage = read_int(os.path.join(d, f"hugetlb.{size}.current"), 0)
            events = read_kv(os.path.join(d, f"hugetlb.{size}.events"))
            out[size] = {"usage": usage, "failcnt": events.get("max", 0)}
        else:
            out[size] = {
                "usage": read_int(os.path.join(d, f"hugetlb.{size}.usage_in_bytes"), 0),
                "max": read_int(os.path.join(d, f"hugetlb.{size}.max_usage_in_bytes"), 0),
                "failcnt": read_int(os.path.join(d, f"hugetlb.{size}.failcnt"), 0)}
    return out
