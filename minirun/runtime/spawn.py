"""How a container process comes to exist: fork, namespaces, and the hand-off.

    minirun (P)                 stage 1 (C1)                    stage 2 (C2)
    -----------                 ------------                    ------------
    fork ---------------------> import stage 2's code
    put C1 in the cgroup        join/unshare the user ns
                                "userns" -------->
    write uid_map/gid_map,
    oom_score_adj
    "go" -------------------->  setns() into ns given by path
                                unshare(the other CLONE_NEW*)
                                fork --------------------------> (pid 1 in a new pid ns)
                                "pid" ---------> ; exit          init.run(): mounts, pivot_root,
    reap C1                                                      devices, hostname, caps, ...
                                                 <-------------- "ready"
    (hooks, pid file)
    "exec" --------------------------------------------------->  fexecve(sealed memfd helper)
    EOF (channel closed on exec) <------------------------------
                                                                 helper blocks on exec.fifo
                                                                 until `minirun start`

Stage 1 imports the code stage 2 runs (init/stage2.py; after pivot_root
there is no Python library to import from) while the runtime puts it in its
cgroup: the first move of a process into a cgroup after a quiet spell waits
for an RCU grace period in the kernel (cgroup_threadgroup_rwsem switching to
its slow mode), 5-30 ms here, and the two waits overlap instead of adding up.

Why two forks: a new PID namespace only applies to children of the process
that unshares it, and the user namespace must be unshared (and mapped by the
parent) before the other namespaces so that they are owned by it.  C1 exits,
so C2 is re-parented to the caller's subreaper (containerd's shim, conmon),
and no minirun process stays behind once `create` returns.
"""
import os
import sys

from minirun import errors
from minirun.errors import ExecError, MinirunError
from minirun.linux.signals import SIG_DFL, SIGINT, SIGKILL, set_handler
from minirun.linux.trace import step
from minirun.runtime.channel import Channel

# setns order: the user namespace first (it grants the rights to join the
# others), the mount namespace last (it changes our root and cwd).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class SpawnPlan:
    """What to create: namespaces, id maps, cgroup, and stage 2's arguments."""

    def __init__(self, *, new_ns=(), join_ns=None, uid_mappings=(), gid_mappings=(),
                 cgroup=None, oom_score_adj=None, stage2=None, subreaper=False,
                 close_in_child=()):
        self.new_ns = [t for t in new_ns]           # namespace types to create
        self.join_ns = dict(join_ns or {})          # type -> path
        self.uid_mappings = list(uid_mappings)
        self.gid_mappings = list(gid_mappings)
        self.cgroup = cgroup                        # minirun.cgroups object or None
        self.oom_score_adj = oom_score_adj
        self.stage2 = stage2                        # minirun.init.InitArgs for init/stage2.py
        self.subreaper = subreaper
        # fds of ours the children must not keep (the state lock above all:
        # a child holding it would block every later call on the container).
        self.close_in_child = list(close_in_child)


class Spawned:
    def __init__(self, pid, channel):
        self.pid = pid
        self.channel = channel


def _open_ns_files(join_ns):
    """Open every namespace path up front, in the host's mount namespace
    (after setns(mnt) the paths would be looked up inside the container)."""
    fds = {}
    try:
        for kind in JOIN_ORDER:
            path = join_ns.get(kind)
            if path:
                try:
                    fds[kind] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise MinirunError(f"{kind} namespace {path}: {e.strerror.lower()}") from None
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _write_id_map(pid, name, mappings):
    lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)
    step("write", f"/proc/{pid}/{name} {lines.strip()!r}",
         "map ids inside the user namespace to ids outside it", "user_namespaces(7)")
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(lines)


def spawn(plan):
    """Run the protocol above; returns Spawned(pid of C2, channel to C2).

    On failure everything forked is killed and MinirunError is raised."""
    ns_fds = _open_ns_files(plan.join_ns)
    parent_end, child_end = Channel.pair()
    if plan.subreaper:
        from minirun.linux import syscalls

        syscalls.set_child_subreaper()
    sys.stdout.flush()
    sys.stderr.flush()
    step("fork", "", "stage 1: will enter the new namespaces", "fork(2)")
    c1 = os.fork()
    if c1 == 0:
        parent_end.close()
        for fd in plan.close_in_child:
            os.close(fd)
        _stage1(plan, ns_fds, child_end)  # never returns
    child_end.close()
    for fd in ns_fds.values():
        os.close(fd)
    c2 = None
    try:
        if plan.cgroup is not None:
            plan.cgroup.add_process(c1)  # while C1 imports (see the top)
        msg = parent_end.recv()
        _raise_if_error(msg, "namespace setup")
        if msg.get("new_userns"):
            if plan.uid_mappings:
                _write_id_map(c1, "uid_map", plan.uid_mappings)
            if plan.gid_mappings:
                _write_id_map(c1, "gid_map", plan.gid_mappings)
        if plan.oom_score_adj is not None:
            step("write", f"/proc/{c1}/oom_score_adj {plan.oom_score_adj}",
                 "how eagerly the OOM killer picks this process", "proc(5)")
            with open(f"/proc/{c1}/oom_score_adj", "w") as f:
                f.write(str(plan.oom_score_adj))
        parent_end.send(go=True)
        c2 = recv_stage2_pid(parent_end)
        _, status = os.waitpid(c1, 0)
        c1 = None
        return Spawned(c2, parent_end)
    except BaseException:
        for pid in (c1, c2):
            if pid:
                kill_and_reap(pid)
        parent_end.close()
        raise


def recv_stage2_pid(channel):
    """Stage 1's report of stage 2's pid.  Stage 1 and stage 2 share the
    channel, so stage 2 may speak first (a hook request, "ready"): its
    messages are held back for whoever reads next."""
    early = []
    while True:
        msg = channel.recv()
        _raise_if_error(msg, "namespace setup")
        if "pid" in msg:
            break
        early.append(msg)
    for held in early:
        channel.hold(held)
    return msg["pid"]


def _raise_if_error(msg, what):
    if msg is None:
        raise MinirunError(f"container process exited during {what}")
    if "error" in msg:
        raise errors.from_report(msg)


def kill_and_reap(pid):
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # not our child (re-parented); the kill is enough


def describe_os_error(exc):
    """One lower-case line for an OSError: "what: reason" plus the path."""
    reason = exc.strerror or os.strerror(exc.errno or 0)
    if ":" in reason:  # minirun.linux wrappers already say what failed
        what, _, why = reason.partition(": ")
        reason = f"{what}: {why.lower()}"
    else:
        reason = reason.lower()
    if exc.filename and str(exc.filename) not in reason:
        return f"{exc.filename}: {reason}"
    return reason


def report_error(channel, exc):
    """Used in child stages: send an exception to the parent as one line."""
    if isinstance(exc, OSError):
        text = describe_os_error(exc)
    else:
        text = str(exc) or type(exc).__name__
    kind = exc.kind if isinstance(exc, ExecError) else "setup"
    try:
        channel.send(error=text, kind=kind)
    except (OSError, ValueError):
        # Nobody is listening any more (after `create` returned): the
        # container's stderr is the only place left to say it.
        os.write(2, f"minirun: {text}\n".encode())


def _stage1(plan, ns_fds, channel):
    code = 1
    try:
        set_handler(SIGINT, SIG_DFL)
        # Stage 2's code and the C extension: imported here, while the runtime
        # moves us into the cgroup (see the top); the runtime needs neither.
        from minirun.init import stage2  # noqa: F401  (for C2, forked below)
        from minirun.linux import syscalls
        from minirun.linux.syscalls import CLONE_NEWUSER, NAMESPACE_FLAGS

        new_userns = "user" in plan.new_ns
        if "user" in ns_fds:
            syscalls.setns(ns_fds.pop("user"), CLONE_NEWUSER, plan.join_ns["user"])
        elif new_userns:
            syscalls.unshare(CLONE_NEWUSER)
        channel.send(new_userns=new_userns)
        if channel.recv() is None:
            os._exit(1)
        if new_userns or "user" in plan.join_ns:
            # Become the namespace's root (mapped by the parent above), so the
            # rest of the setup runs with its full capabilities.
            step("setresgid/setresuid", "0 0 0", "become root of the new user namespace "
                 "(the maps above make that a host id)", "user_namespaces(7)")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        for kind in JOIN_ORDER:
            if kind in ns_fds:
                syscalls.setns(ns_fds.pop(kind), NAMESPACE_FLAGS[kind], plan.join_ns[kind])
        flags = 0
        for kind in plan.new_ns:
            if kind != "user":
                flags |= NAMESPACE_FLAGS[kind]
        if flags:
            syscalls.unshare(flags)
        step("fork", "", "stage 2: the container's init (pid 1 in a new pid namespace)"
             if "pid" in plan.new_ns else "stage 2: only a child enters the joined pid namespace",
             "pid_namespaces(7)")
        c2 = os.fork()
        if c2 == 0:
            _stage2(plan, channel)
        channel.send(pid=c2)
        code = 0
    except BaseException as e:  # report, never raise: we are a forked child
        report_error(channel, e)
    finally:
        os._exit(code)


def _stage2(plan, channel):
    try:
        from minirun.init.stage2 import run

        run(plan.stage2, channel)
        raise MinirunError("internal error: stage 2 returned")
    except BaseException as e:
        report_error(channel, e)
    finally:
        os._exit(1)
