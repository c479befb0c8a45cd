"""cgroup v2 driver: one tree, one directory per container.

Two rules shape it:
  * a controller works in a cgroup only if every ancestor lists it in
    cgroup.subtree_control, so create() enables the controllers top-down;
  * "no internal processes": a cgroup that has controllers enabled for its
    children cannot hold processes itself (writing subtree_control of a
    non-root cgroup with processes fails with EBUSY).  The container's
    directory is a leaf; its processes never go in an inner node.  For a
    relative cgroupsPath the base is the *parent* of the caller's cgroup,
    because the caller's own cgroup (a shell's session scope) holds the
    caller and cannot delegate (runc does the same).
The OCI spec speaks cgroup v1; the conversions are in common.py.
"""
import os

from minirun.errors import CgroupError
from minirun.linux.signals import SIGKILL
from minirun.log import debug

from . import common
from .common import read_int, read_kv, read_text, write_file


class V2Cgroup(common.Cgroup):
    version = "v2"

    def __init__(self, container_id, path, mount=common.CGROUP_ROOT, created=None):
        super().__init__(container_id, path, created)
        self.mount = mount
        self.dir = mount + path

    @classmethod
    def open(cls, container_id, cgroups_path, layout):
        own = layout.own_path("")
        base = os.path.dirname(own) if own != "/" else "/"
        path = common.resolve_path(container_id, cgroups_path, base)
        return cls(container_id, path, layout.unified[0])

    def to_dict(self):
        return {"version": "v2", "id": self.container_id, "path": self.path,
                "mount": self.mount, "created": self.created}

    @classmethod
    def from_dict(cls, d):
        return cls(d["id"], d["path"], d.get("mount", common.CGROUP_ROOT), d.get("created"))

    def _places(self):
        return [(self.mount, self.path)]

    def _f(self, name):
        return os.path.join(self.dir, name)

    # -------------------------------------------------------------- lifecycle

    def create(self, resources=None, linux_devices=None):
        resources = common.complete_devices(resources, linux_devices)
        validate(resources)
        try:
            self._note_created(common.make_dirs(self.mount, self.path))
            self._enable_controllers(needed_controllers(resources))
            self._set(resources, creating=True)
            if resources.get("devices"):
                from . import devices_bpf

                devices_bpf.apply(self.dir, resources["devices"])
        except BaseException:
            self._undo_create()
            raise

    def _enable_controllers(self, needed):
        """Enable every available controller in each ancestor's subtree_control,
        root first, so the leaf can use them all (stats need them too)."""
        d = self.mount
        for part in [""] + self.path.strip("/").split("/")[:-1]:
            d = os.path.join(d, part) if part else d
            available = read_text(os.path.join(d, "cgroup.controllers")).split()
            control = os.path.join(d, "cgroup.subtree_control")
            enabled = read_text(control).split()
            missing = [c for c in available if c not in enabled]
            lost = [c for c in needed if c not in available]
            if lost:
                raise CgroupError(f"cannot use the {', '.join(lost)} controller: it is not "
                                  f"available in {d} (cgroup.controllers: "
                                  f"{' '.join(available) or 'none'})")
            if not missing:
                continue
            try:
                write_file(control, " ".join("+" + c for c in missing),
                           "let child cgroups use these controllers")
            except CgroupError:
                # One at a time, so one refusal (e.g. a threaded subtree)
                # does not block the rest; only needed ones must succeed.
                for c in missing:
                    try:
                        write_file(control, "+" + c)
                    except CgroupError as e:
                        if c in needed:
                            hint = ""
                            if getattr(e, "errno", None) == 16:  # EBUSY
                                hint = (f" ({d} holds processes and so cannot delegate "
                                        f"controllers; use a cgroupsPath outside it)")
                            raise CgroupError(f"{e}{hint}") from None

    def add_process(self, pid):
        common.add_pid(self.dir, pid)

    def update(self, resources):
        resources = dict(resources or {})
        validate(resources)
        resources.pop("devices", None)
        self._set(resources, creating=False)

    def destroy(self):
        self._remove([self.dir])

    def exists(self):
        return os.path.isdir(self.dir)

    # -------------------------------------------------------------- processes

    def pids(self):
        return common.all_procs(self.dir)

    def _events(self):
        return read_kv(self._f("cgroup.events"))

    def freeze(self):
        write_file(self._f("cgroup.freeze"), "1", "pause: stop every task")
        if not common.wait_until(lambda: self._events().get("frozen") == 1, 5.0):
            write_file(self._f("cgroup.freeze"), "0", "could not freeze: undo")
            raise CgroupError(f"failed to freeze {self.dir}: not frozen after 5 s")

    def thaw(self):
        write_file(self._f("cgroup.freeze"), "0", "resume the tasks")
        common.wait_until(lambda: self._events().get("frozen") == 0, 2.0)

    def is_frozen(self):
        return read_int(self._f("cgroup.freeze"), 0) == 1

    def kill_all(self, sig=SIGKILL):
        """cgroup.kill (5.14+) sends SIGKILL to every task at once, including
        ones being forked; other signals go task by task in a frozen cgroup."""
        if not os.path.isdir(self.dir):
            return
        if sig == SIGKILL and os.path.exists(self._f("cgroup.kill")):
            write_file(self._f("cgroup.kill"), "1", "kill every process of the container")
            if common.wait_until(lambda: self._events().get("populated", 0) == 0, 2.0):
                return
        was_frozen = self.is_frozen()
        for _ in range(50):
            self.freeze()
            try:
                pids = self.pids()
                common.signal_all(pids, sig)
            finally:
                if not was_frozen:
                    self.thaw()
            if sig != SIGKILL or not pids:
                return
            if common.wait_until(lambda: not self.pids(), 0.5):
                return
        raise CgroupError(f"failed to kill all processes of {self.path}")

    # -------------------------------------------------------------- stats

    def oom_kill_count(self):
        return read_kv(self._f("memory.events")).get("oom_kill", 0)

    def stats(self):
        """runc's `events --stats` "data" object, from the v2 files."""
        st = read_kv(self._f("cpu.stat"))
        out = {"cpu": {
            "usage": {"total": st.get("usage_usec", 0) * 1000,
                      "user": st.get("user_usec", 0) * 1000,
                      "kernel": st.get("system_usec", 0) * 1000},
            "throttling": {"periods": st.get("nr_periods", 0),
                           "throttledPeriods": st.get("nr_throttled", 0),
                           "throttledTime": st.get("throttled_usec", 0) * 1000}}}
        if os.path.exists(self._f("memory.current")):
            raw = read_kv(self._f("memory.stat"))
            events = read_kv(self._f("memory.events"))
            limit = read_int(self._f("memory.max"), -1)
            swap_limit = read_int(self._f("memory.swap.max"), -1)
            usage = read_int(self._f("memory.current"), 0)
            swap = read_int(self._f("memory.swap.current"), 0)
            out["memory"] = {
                "cache": raw.get("file", 0),
                "usage": {"limit": limit, "usage": usage,
                          "max": read_int(self._f("memory.peak"), 0),
                          "failcnt": events.get("max", 0)},
                # runc reports swap as memory+swap, the v1 meaning
                "swap": {"limit": swap_limit if swap_limit < 0 or limit < 0
                         else swap_limit + limit,
                         "usage": usage + swap, "failcnt": 0},
                "raw": raw, "oomKill": events.get("oom_kill", 0),
                "events": events}
        if os.path.exists(self._f("pids.current")):
            out["pids"] = {"current": read_int(self._f("pids.current"), 0),
                           "limit": max(read_int(self._f("pids.max"), 0), 0)}
        if os.path.exists(self._f("io.stat")):
            out["blkio"] = _io_stat(self._f("io.stat"))
        if os.path.exists(self._f("hugetlb.2MB.current")) or any(
                os.path.exists(self._f(f"hugetlb.{s}.current")) for s in common.hugepage_sizes()):
            out["hugetlb"] = {s: {"usage": read_int(self._f(f"hugetlb.{s}.current"), 0),
                                  "failcnt": read_kv(self._f(f"hugetlb.{s}.events"))
                                  .get("max", 0)}
                              for s in common.hugepage_sizes()}
        return out

    # -------------------------------------------------------------- resources

    def _set(self, r, creating):
        m = r.get("memory") or {}
        if m:
            self._set_memory(m, creating)
        c = r.get("cpu") or {}
        if c:
            self._set_cpu(c)
        pids = r.get("pids") or {}
        if pids.get("limit"):
            write_file(self._f("pids.max"), common.limit_str(pids["limit"]),
                       "cap the number of tasks")
        if r.get("blockIO"):
            self._set_io(r["blockIO"])
        if r.get("hugepageLimits"):
            sizes = common.hugepage_sizes()
            for lim in r["hugepageLimits"]:
                size = lim.get("pageSize") or lim.get("pagesize")
                if size not in sizes:
                    raise CgroupError(f"invalid hugepage size {size!r}: this kernel supports "
                                      f"{', '.join(sizes) or 'none'}")
                if os.path.exists(self._f(f"hugetlb.{size}.rsvd.max")):
                    write_file(self._f(f"hugetlb.{size}.rsvd.max"), lim["limit"])
                write_file(self._f(f"hugetlb.{size}.max"), lim["limit"], "huge page limit")
        for dev, lim in (r.get("rdma") or {}).items():
            parts = [dev]
            if lim.get("hcaHandles") is not None:
                parts.append(f"hca_handle={lim['hcaHandles']}")
            if lim.get("hcaObjects") is not None:
                parts.append(f"hca_object={lim['hcaObjects']}")
            write_file(self._f("rdma.max"), " ".join(parts))
        # unified key/values go last: they override what was converted above.
        for key, value in (r.get("unified") or {}).items():
            path = self._f(key)
            if not os.path.exists(path):
                ctrl = key.split(".", 1)[0]
                raise CgroupError(f"unified resource {key!r} can't be set: no such file "
                                  f"{path} (is the {ctrl} controller available?)")
            write_file(path, value, "linux.resources.unified")

    def _set_memory(self, m, creating):
        limit = m.get("limit") or 0
        swap = m.get("swap") or 0
        if swap and not limit:
            limit = read_int(self._f("memory.max"), -1)  # update of swap alone
        swap_max = common.swap_to_v2(swap, limit)
        if swap_max is not None:
            if os.path.exists(self._f("memory.swap.max")):
                write_file(self._f("memory.swap.max"), common.limit_str(swap_max),
                           "swap limit (v2 counts swap apart from memory)")
            elif swap_max not in (-1, 0):
                raise CgroupError(f"cannot set memory.swap: {self._f('memory.swap.max')} "
                                  f"missing (no swap accounting)")
        if m.get("limit"):
            if m.get("checkBeforeUpdate") and not creating and m["limit"] > 0:
                usage = read_int(self._f("memory.current"), 0)
                if usage > m["limit"]:
                    raise CgroupError(f"unable to set memory limit to {m['limit']} "
                                      f"(current usage: {usage})")
            write_file(self._f("memory.max"), common.limit_str(m["limit"]),
                       "memory limit: beyond it, reclaim, then the OOM killer")
        if m.get("reservation"):
            write_file(self._f("memory.low"), common.limit_str(m["reservation"]),
                       "best-effort protection from reclaim")
        if m.get("disableOOMKiller"):
            debug("memory.disableOOMKiller is not supported on cgroup v2; ignored")
        if m.get("swappiness") not in (None, -1):
            debug("memory.swappiness is not supported on cgroup v2; ignored")

    def _set_cpu(self, c):
        weight = common.shares_to_weight(c.get("shares") or 0)
        if weight:
            write_file(self._f("cpu.weight"), weight,
                       f"relative CPU weight (from shares {c['shares']})")
        value = common.cpu_max(c.get("quota") or 0, c.get("period") or 0)
        if value:
            write_file(self._f("cpu.max"), value, "CFS bandwidth: quota per period")
        if c.get("burst") is not None:
            write_file(self._f("cpu.max.burst"), c["burst"])
        if c.get("idle") is not None and os.path.exists(self._f("cpu.idle")):
            write_file(self._f("cpu.idle"), c["idle"])
        if c.get("cpus"):
            write_file(self._f("cpuset.cpus"), c["cpus"], "pin to these CPUs")
        if c.get("mems"):
            write_file(self._f("cpuset.mems"), c["mems"], "use these memory nodes")

    def _set_io(self, b):
        bfq = os.path.exists(self._f("io.bfq.weight"))
        if b.get("weight"):
            if bfq:
                write_file(self._f("io.bfq.weight"), b["weight"], "relative I/O weight (BFQ)")
            else:
                write_file(self._f("io.weight"),
                           f"default {common.blkio_weight_to_io_weight(b['weight'])}",
                           "relative I/O weight")
        for wd in b.get("weightDevice") or []:
            if wd.get("weight"):
                if bfq:
                    write_file(self._f("io.bfq.weight"),
                               f"{wd['major']}:{wd['minor']} {wd['weight']}")
                else:
                    write_file(self._f("io.weight"), f"{wd['major']}:{wd['minor']} "
                               f"{common.blkio_weight_to_io_weight(wd['weight'])}")
        for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"),
                          ("throttleWriteIOPSDevice", "wiops")):
            for td in b.get(key) or []:
                rate = td["rate"] if td["rate"] > 0 else "max"
                write_file(self._f("io.max"), f"{td['major']}:{td['minor']} {name}={rate}",
                           "I/O throttle")


def validate(r):
    """Refuse what v2 cannot do before touching the kernel."""
    c = r.get("cpu") or {}
    if c.get("realtimeRuntime") or c.get("realtimePeriod"):
        raise CgroupError("realtime cpu limits (cpu.realtimeRuntime/realtimePeriod) are not "
                          "supported on cgroup v2")
    net = r.get("network") or {}
    if net.get("classID") is not None or net.get("priorities"):
        raise CgroupError("linux.resources.network (net_cls/net_prio) needs cgroup v1; "
                          "use iptables/tc on cgroup v2")
    for key in r.get("unified") or {}:
        if "/" in key or key.startswith(".") or "." not in key:
            raise CgroupError(f"invalid unified resource key {key!r}")
        if key.startswith("cgroup.") and key not in ("cgroup.max.depth",
                                                     "cgroup.max.descendants"):
            raise CgroupError(f"unified resource {key!r} is not allowed")
    m = r.get("memory") or {}
    if (m.get("limit") or 0) > 0 and (m.get("swap") or 0) > 0:
        common.swap_to_v2(m["swap"], m["limit"])
    for rule in r.get("devices") or []:
        common.normalize_device_rule(rule)


def needed_controllers(r):
    """The controllers a resources object writes to."""
    need = set()
    if r.get("memory") and any(v not in (None, 0, False) for k, v in r["memory"].items()
                               if k in ("limit", "swap", "reservation")):
        need.add("memory")
    c = r.get("cpu") or {}
    if any(c.get(k) for k in ("shares", "quota", "period", "burst")) or c.get("idle") is not None:
        need.add("cpu")
    if c.get("cpus") or c.get("mems"):
        need.add("cpuset")
    if (r.get("pids") or {}).get("limit"):
        need.add("pids")
    if r.get("blockIO"):
        need.add("io")
    if r.get("hugepageLimits"):
        need.add("hugetlb")
    if r.get("rdma"):
        need.add("rdma")
    for key in r.get("unified") or {}:
        if not key.startswith("cgroup."):
            need.add(key.split(".", 1)[0])
    return need


def _io_stat(path):
    """io.stat lines "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." -> runc's blkio shape."""
    service_bytes, serviced = [], []
    try:
        text = read_text(path)
    except CgroupError:
        text = ""
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op, bucket in (("rbytes", "Read", service_bytes), ("wbytes", "Write",
                                                                    service_bytes),
                                ("rios", "Read", serviced), ("wios", "Write", serviced)):
            if key in kv:
                bucket.append({"major": major, "minor": minor, "op": op,
                               "value": int(kv[key])})
    return {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}
