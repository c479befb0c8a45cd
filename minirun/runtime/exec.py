"""`minirun exec`: run another process inside a running container.

The new process joins every namespace of the container's init (through
/proc/<pid>/ns/*, the user namespace first) and its cgroup, then gets the
same treatment as the init: capabilities, rlimits, user, no_new_privs, fd
hygiene, and the final execve from the sealed helper.
"""
import json
import os
import signal
import socket

from minirun import errors, spec
from minirun.errors import ConfigError, InvalidState, MinirunError
from minirun.init import InitArgs
from minirun.init.helper import sealed_helper_fd
from minirun.linux.syscalls import PROC_NS_NAMES
from minirun.runtime.create import connect_console, write_pid_file
from minirun.runtime.spawn import SpawnPlan, spawn
from minirun.runtime.state import CREATED, PAUSED, RUNNING, Container


def load_process_file(path):
    try:
        with open(path) as f:
            process = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"process file {path}: no such file or directory") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"process file {path}: invalid JSON: {e}") from None
    spec.validate_process(process)
    return process


def process_from_flags(config, args, *, env=(), cwd=None, user=None, caps=(), tty=False,
                       no_new_privs=False, additional_gids=()):
    """runc exec without --process: start from the container's own process."""
    base = json.loads(json.dumps(config.get("process") or {}))
    process = {
        "terminal": tty,
        "args": list(args),
        "env": _merge_env(base.get("env") or [], env),
        "cwd": cwd or base.get("cwd") or "/",
        "user": dict(base.get("user") or {"uid": 0, "gid": 0}),
        "capabilities": base.get("capabilities"),
        "rlimits": base.get("rlimits"),
        "noNewPrivileges": bool(base.get("noNewPrivileges") or no_new_privs),
    }
    if user:
        uid, _, gid = user.partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise ConfigError(f"--user {user!r}: use UID[:GID] (numbers)") from None
    if additional_gids:
        process["user"]["additionalGids"] = [int(g) for g in additional_gids]
    if caps:
        sets = process.get("capabilities") or {}
        # Ambient too only when the config has inheritable caps: without them
        # none can be ambient (runc's rule for `exec --cap`).
        kinds = ("bounding", "effective", "permitted") + \
            (("ambient",) if sets.get("inheritable") else ())
        for kind in kinds:
            sets[kind] = sorted(set(sets.get(kind) or []) | set(caps))
        process["capabilities"] = sets
    spec.validate_process(process)
    return process


def _merge_env(base, extra):
    env = {}
    for item in list(base) + list(extra):
        key, _, _ = item.partition("=")
        env[key] = item
    return list(env.values())


def execute(root, container_id, process, *, detach=False, pid_file=None, console_socket=None,
            preserve_fds=0, ignore_paused=False):
    """Returns the process's exit status (0 once started, with detach)."""
    with Container.load(root, container_id) as container:
        status = container.status()
        if status == PAUSED and not ignore_paused:
            raise InvalidState("cannot exec in a paused container (use --ignore-paused)")
        if status not in (RUNNING, CREATED, PAUSED):
            raise InvalidState("cannot exec in a stopped container")
        config = container.config()
        if config is None:
            raise MinirunError("container config is missing from its state directory")
        init_pid = container.pid
        cgroup = container.cgroup()
    linux = config.get("linux") or {}
    join = {kind: f"/proc/{init_pid}/ns/{PROC_NS_NAMES[kind]}"
            for kind in spec.namespaces(config)}
    # A namespace the container shares with the host is joined too: harmless.
    seccomp = None
    if linux.get("seccomp"):
        from minirun.linux import seccomp as seccomp_mod

        seccomp = seccomp_mod.write_filter_fd(linux["seccomp"], os.path.join(root, ".seccomp"))
        if seccomp[0] < 0:
            seccomp = None
    owned = []
    console_parent = console_fd = None
    if process.get("terminal"):
        if console_socket:
            sock = connect_console(console_socket)
        elif detach:
            raise ConfigError("a terminal needs --console-socket with --detach")
        else:
            console_parent, sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console_fd = sock.detach()
        owned.append(console_fd)
    helper_fd = sealed_helper_fd()
    owned.append(helper_fd)
    if seccomp:
        owned.append(seccomp[0])
    init_args = InitArgs(config=config, rootfs_path=None, fifo_fd=-1, helper_fd=helper_fd,
                         preserve_fds=preserve_fds, console_sock_fd=console_fd,
                         container_id=container_id, seccomp=seccomp, process=process,
                         exec_mode=True)
    plan = SpawnPlan(join_ns=join, cgroup=cgroup, stage2=init_args,
                     subreaper=not detach, oom_score_adj=process.get("oomScoreAdj"))
    try:
        spawned = spawn(plan)
    finally:
        for fd in owned:
            os.close(fd)
    try:
        msg = spawned.channel.recv()
        if msg is None or "error" in msg:
            raise errors.from_report(msg, "exec: process exited during setup")
        spawned.channel.send(exec=True)
        msg = spawned.channel.recv()
        if msg is not None:
            raise MinirunError(msg.get("error", "exec failed"))
    except BaseException:
        try:
            os.kill(spawned.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    finally:
        spawned.channel.close()
    if pid_file:
        write_pid_file(pid_file, spawned.pid)
    if detach:
        return 0
    from minirun.runtime.run import attach_terminal, wait_for_init

    master = attach_terminal(console_parent, spawned.pid)
    if master is not None:
        from minirun.runtime import tty

        tty.relay(master, spawned.pid)
    return wait_for_init(spawned.pid)
