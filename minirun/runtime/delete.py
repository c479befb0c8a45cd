"""`minirun delete`: remove a stopped (or, with --force, any) container:
its process tree, its cgroup, its state; then the poststop hooks."""
import os
import time

from minirun.errors import ContainerNotFound, InvalidState
from minirun import hooks
from minirun.linux.signals import SIGKILL
from minirun.runtime.state import CREATING, STOPPED, Container


def delete(root, container_id, force=False):
    try:
        # A damaged state.json refuses a plain delete (runc too); --force
        # still finds the processes through the recorded (or derived) cgroup.
        container = Container.load(root, container_id, broken_ok=force)
    except ContainerNotFound:
        if force:
            return  # engines call `delete --force` after the container is gone
        raise
    with container:
        status = container.status()
        if status != STOPPED and not force:
            # runtime-spec: deleting a container that is not stopped MUST fail
            # (runc and crun allow it for "created"; minirun follows the spec).
            raise InvalidState(f"cannot delete container {container_id} that is not stopped: {status}")
        destroy(container)


def destroy(container, run_poststop=True):
    """Kill everything, remove the cgroup and the state directory."""
    cgroup = container.cgroup()
    if cgroup is None and container.broken:
        cgroup = _derived_cgroup(container)
    if container.init_alive():
        if cgroup is not None:
            cgroup.kill_all(SIGKILL)
        try:
            os.kill(container.pid, SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while container.init_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
    config = container.config()
    if cgroup is not None:
        # Stragglers: the init's children when it had no pid namespace of its
        # own (with one, the kernel killed them all before the init could
        # exit, and reading every hierarchy's cgroup.procs again is waste).
        init_known_dead = container.pid and not container.broken
        if not (init_known_dead and _had_own_pid_namespace(config)) and cgroup.pids():
            cgroup.kill_all(SIGKILL)
        cgroup.destroy()
    release_host_mounts(container.recorded("host_mounts"))
    was_started = container.data.get("status") not in (CREATING,)
    container.remove()
    if config and was_started and run_poststop and hooks.has(config, "poststop"):
        hooks.run_phase(config, "poststop", container.oci_state(STOPPED))


def _had_own_pid_namespace(config):
    linux = config.get("linux") if isinstance(config, dict) else None
    namespaces = linux.get("namespaces") if isinstance(linux, dict) else None
    return isinstance(namespaces, list) and any(
        isinstance(ns, dict) and ns.get("type") == "pid" and not ns.get("path")
        for ns in namespaces)


def mounts_at(path):
    """How many mounts are stacked on `path` in our mount namespace."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == path)


def _derived_cgroup(container):
    """Where create put the cgroup, from the id and the saved config (a state
    directory from before objects.json was written)."""
    from minirun.cgroups import open_cgroup
    from minirun.errors import MinirunError

    linux = (container.config() or {}).get("linux")
    path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    try:
        cgroup = open_cgroup(container.id, path if isinstance(path, str) else None)
    except MinirunError:
        return None
    return cgroup if cgroup.exists() else None


def release_host_mounts(info):
    """Detach what a container without a mount namespace mounted in ours
    (info: the "host_mounts" record, or None)."""
    if not info:
        return
    from minirun.linux import syscalls

    while mounts_at(info["path"]) > info["below"]:
        syscalls.umount2(info["path"], syscalls.MNT_DETACH)
