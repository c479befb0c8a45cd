"""Resource limits: a container's cgroup, on cgroup v2 or v1/hybrid hosts.

One interface, two drivers (crun's split): v2.py for a pure cgroup v2 host
(/sys/fs/cgroup is cgroup2 with controllers: current Debian, Ubuntu, Fedora)
and v1.py for everything else, including hybrid hosts where the controllers
are v1 hierarchies and /sys/fs/cgroup/unified is a cgroup2 mount with few or
no controllers (crun refuses those; minirun does not).

How the runtime uses it:

    from minirun.cgroups import open_cgroup, load_cgroup, resources_from_spec

    cg = open_cgroup(container_id, linux.get("cgroupsPath"))  # reads the layout only
    cg.create(resources_from_spec(linux))  # mkdir + limits; on error nothing is left
    cg.add_process(pid)                    # before the process runs user code
    state["cgroup"] = cg.to_dict()         # ... later, in another CLI call:
    cg = load_cgroup(state["cgroup"])
    cg.update(resources)                   # `minirun update`
    cg.freeze(); cg.thaw(); cg.is_frozen() # `pause`, `resume`, state "paused"
    cg.kill_all(signal.SIGKILL)            # `kill --all`, `delete --force`
    cg.stats(); cg.oom_killed()            # `events --stats`, OOM reporting
    cg.pids()                              # `ps`
    cg.destroy()                           # `delete`

Every kernel write shows up in `minirun --trace`; every refusal raises
minirun.errors.CgroupError naming the file and the value.
"""
from .common import (Cgroup, Layout, effective_device_rules,  # noqa: F401
                     resources_from_spec)

__all__ = ["open_cgroup", "load_cgroup", "detect", "resources_from_spec",
           "effective_device_rules", "Cgroup"]


_host_layout = None


def _layout():
    """The host's layout, read once per process (no functools: the verbs
    engines call import as little as they can)."""
    global _host_layout
    if _host_layout is None:
        _host_layout = Layout.read()
    return _host_layout


def detect():
    """"v2" on a pure cgroup v2 host, "v1" otherwise (v1 or hybrid)."""
    return "v2" if _layout().is_v2 else "v1"


def open_cgroup(container_id, cgroups_path=None, layout=None):
    """The cgroup of a container, not yet created.

    cgroups_path is linux.cgroupsPath: None/"" -> "/minirun/<id>"; absolute ->
    from the root of each hierarchy; relative -> under the caller's own cgroup
    (on v2, under its parent, since the caller's own cgroup holds processes);
    "slice:prefix:name" (systemd driver syntax) -> where systemd would put it.
    Reads the host's layout; writes nothing.
    """
    layout = layout or _layout()
    if layout.is_v2:
        from .v2 import V2Cgroup

        return V2Cgroup.open(container_id, cgroups_path, layout)
    from .v1 import V1Cgroup

    return V1Cgroup.open(container_id, cgroups_path, layout)


def load_cgroup(d):
    """Rebuild a Cgroup from Cgroup.to_dict() (kept in the container's state)."""
    if d.get("version") == "v2":
        from .v2 import V2Cgroup

        return V2Cgroup.from_dict(d)
    from .v1 import V1Cgroup

    return V1Cgroup.from_dict(d)
