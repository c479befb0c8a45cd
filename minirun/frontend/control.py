"""Controlling front-end containers: start, stop, kill, wait, pause, unpause, rm,
and what state a container is in right now.

start goes through the monitor (client.py), which runs worker.start_container
in a child; stop/kill signal through the runtime and wait through the monitor.
"""
import time

from minirun.errors import ContainerNotFound, ContainerNotRunning, MinirunError
from minirun.linux import signals as signal  # the numbers, without signal's enums
from minirun.frontend import client, events, recordfile
# the state of a container now: its own module, `ps` needs only that
from minirun.frontend.status import current_state, is_running, monitor_alive  # noqa: F401

DEFAULT_STOP_TIMEOUT = 10


class NotRunning(MinirunError):
    pass


# --- start ----------------------------------------------------------------------------
def start(fe, cid, attach=False, interactive=False, sig_proxy=True, detach_keys=None):
    """Start a created or stopped container through the monitor.  Detached:
    returns once it runs.  Attached: returns its exit code."""
    rec = fe.load(cid)
    with recordfile.update(fe.record_dir(cid)) as r:
        r["ManualStop"] = False
        r["RestartDelay"] = 0
    directory = fe.record_dir(cid)
    if attach:
        return client.start_attached(fe.root, cid, directory, tty=rec["Config"]["Tty"],
                                     stdin=interactive, sig_proxy=sig_proxy,
                                     detach_keys=detach_keys)
    reply = client.request(fe.root, {"op": "start", "id": cid, "dir": directory,
                                     "trace": client.tracing()})
    if "error" in reply:
        raise client.StartFailed(reply["error"], reply.get("code", 125))
    return 0


# --- stop, kill, wait -----------------------------------------------------------------
def stop_signal(rec):
    from minirun.frontend import options

    name = rec["Config"].get("StopSignal")
    try:
        return options.parse_signal(name) if name else signal.SIGTERM
    except MinirunError:
        return signal.SIGTERM


def _mark_manual_stop(fe, cid):
    with recordfile.update(fe.record_dir(cid)) as r:
        r["ManualStop"] = True
    client.request(fe.root, {"op": "cancel", "id": cid}, spawn=False)


def stop(fe, cid, timeout=None, sig=None):
    """SIGTERM (or the StopSignal, or `sig`), SIGKILL after `timeout` seconds."""
    from minirun.runtime import kill as kill_mod

    rec = fe.load(cid)
    if timeout is None:
        timeout = rec["Config"].get("StopTimeout")
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
    state = current_state(fe, rec)
    if state not in ("running", "paused", "restarting"):
        return
    waiter = client.Waiter(fe.root, cid)
    try:
        _mark_manual_stop(fe, cid)
        if state == "restarting":
            # Between two runs there is no process to signal: the pending
            # restart is off (ManualStop), and the container is now exited.
            with recordfile.update(fe.record_dir(cid)) as r:
                if r["State"]["Status"] == "restarting":
                    r["State"].update(Status="exited", Restarting=False)
            return
        if state == "paused":
            _resume_quietly(fe, cid)
        try:
            kill_mod.kill(fe.root, cid, sig or stop_signal(rec))
        except (ContainerNotRunning, ContainerNotFound):
            pass
        if wait_for_exit(fe, cid, waiter, timeout if timeout >= 0 else None):
            return
        try:
            kill_mod.kill(fe.root, cid, signal.SIGKILL, all_processes=True)
        except (ContainerNotRunning, ContainerNotFound):
            pass
        wait_for_exit(fe, cid, waiter, 30)
    finally:
        waiter.close()
        events.emit(fe, "stop", rec)


def _resume_quietly(fe, cid):
    from minirun.runtime import control

    try:
        control.resume(fe.root, cid)
    except MinirunError:
        pass


def wait_for_exit(fe, cid, waiter, timeout):
    """True once the exit is recorded (through the monitor, else by polling)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        reply = waiter.result(timeout)
        if reply is not None:
            return True
    except (TimeoutError, BlockingIOError):  # (socket.timeout is TimeoutError) -t 0: no wait
        return False
    except MinirunError:
        pass
    # No monitor: the process is an orphan; poll the runtime.
    while deadline is None or time.monotonic() < deadline:
        rec = fe.load(cid)
        if not is_running(fe, rec):
            return True
        time.sleep(0.05)
    return False


def kill(fe, cid, sig=signal.SIGKILL):
    from minirun.runtime import kill as kill_mod

    rec = fe.load(cid)
    if current_state(fe, rec) not in ("running", "paused"):
        raise NotRunning(f"cannot kill container: {cid[:12]}: container {cid[:12]} is not "
                         f"running")
    with recordfile.update(fe.record_dir(cid)) as r:
        r["ManualStop"] = True
    events.emit(fe, "kill", rec, signal=int(sig))
    # Docker waits (a little) for a SIGKILLed container to be gone, so the exit
    # is recorded when `kill` returns.
    waiter = client.Waiter(fe.root, cid) if sig == signal.SIGKILL else None
    try:
        try:
            kill_mod.kill(fe.root, cid, sig, all_processes=sig == signal.SIGKILL)
        except (ContainerNotRunning, ContainerNotFound):
            raise NotRunning(f"cannot kill container: {cid[:12]}: container {cid[:12]} is "
                             f"not running") from None
        if waiter is not None:
            wait_for_exit(fe, cid, waiter, 10)
    finally:
        if waiter is not None:
            waiter.close()


def wait(fe, cid):
    """Block until the container stops; its exit code."""
    while True:
        rec = fe.load(cid)
        if not is_running(fe, rec):
            return rec["State"]["ExitCode"]
        waiter = client.Waiter(fe.root, cid)
        try:
            reply = waiter.result()
        finally:
            waiter.close()
        if reply is None or reply.get("held") is False:
            time.sleep(0.1)
            continue
        if reply.get("exit_code") is not None:
            return reply["exit_code"]


# --- rm -------------------------------------------------------------------------------
def remove(fe, cid, force=False, volumes=False):
    rec = fe.load(cid)
    state = current_state(fe, rec)
    if state in ("running", "paused", "restarting"):
        if not force:
            raise MinirunError(f"cannot remove container \"{rec['Name']}\": container is "
                               f"{state}: stop the container before removing or force remove")
        waiter = client.Waiter(fe.root, cid)
        try:
            _mark_manual_stop(fe, cid)
            if state != "restarting":
                from minirun.runtime import kill as kill_mod

                events.emit(fe, "kill", rec, signal=int(signal.SIGKILL))
                try:
                    kill_mod.kill(fe.root, cid, signal.SIGKILL, all_processes=True)
                except MinirunError:
                    pass
                wait_for_exit(fe, cid, waiter, 30)
        finally:
            waiter.close()
        rec = recordfile.read(fe.record_dir(cid))
        if rec is None:
            return  # --rm: the exit worker removed it
    remove_files(fe, cid, rec, volumes=volumes)


def remove_files(fe, cid, rec, volumes=False):
    """Everything a container owns: runtime state, network, rootfs, record, name,
    and with volumes=True its anonymous volumes."""
    from minirun import network as net
    from minirun.image import release_rootfs

    try:
        with recordfile.update(fe.record_dir(cid)) as r:
            r["State"]["Status"] = "removing"
    except FileNotFoundError:
        pass
    remove_runtime(fe, cid)
    try:
        net.detach(cid, root=fe.root)
    except MinirunError:
        pass
    release_rootfs(cid, store=fe.image_store())
    fe.remove_record(cid, rec["Name"].lstrip("/"))
    events.emit(fe, "destroy", rec)
    if volumes:
        from minirun.frontend import volumes as vol

        vol.remove_anonymous(fe, rec.get("Mounts"))


def remove_runtime(fe, cid):
    """Delete the runtime container (kill, cgroup, state) if there is one."""
    from minirun.runtime import delete as delete_mod
    from minirun.runtime.state import Container

    try:
        c = Container.load(fe.root, cid, broken_ok=True)  # rm -f: even a damaged state
    except ContainerNotFound:
        return None
    with c:
        cg = c.cgroup()
        oom = False
        if cg is not None:
            try:
                oom = cg.oom_killed()
            except (MinirunError, OSError):
                oom = False
        delete_mod.destroy(c)
    return oom


# --- pause, unpause ----------------------------------------------------------------------
def pause(fe, cid):
    """Freeze every process of a running container (the freezer cgroup)."""
    from minirun.runtime import control as runtime_control

    runtime_control.pause(fe.root, cid)
    events.emit(fe, "pause", fe.load(cid))


def unpause(fe, cid):
    from minirun.runtime import control as runtime_control

    runtime_control.resume(fe.root, cid)
    events.emit(fe, "unpause", fe.load(cid))


def rename(fe, ref, new_name):
    """Give a container a new name (network aliases follow at its next start)."""
    cid, rec = fe.find(ref)
    old = rec["Name"].lstrip("/")
    fe.reserve_name(new_name, cid)
    try:
        with recordfile.update(fe.record_dir(cid)) as r:
            r["Name"] = "/" + new_name
    except BaseException:
        fe.release_name(new_name, cid)
        raise
    fe.release_name(old, cid)
    events.emit(fe, "rename", fe.load(cid), oldName="/" + old)


def update(fe, ref, memory=None, memory_swap=None, cpus=None, cpu_shares=None,
           pids_limit=None, restart=None):
    """`docker update`: new limits (Docker's flag strings) for the record, the
    config of the next start and, if it runs, the container's cgroup now."""
    import json
    import os

    from minirun.frontend.runopts import RunOptions

    cid, rec = fe.find(ref)
    # RunOptions checks every value the way run does (BadOption, exit 125).
    opts = RunOptions.from_flags(rec["Config"]["Image"], memory=memory, memory_swap=memory_swap,
                                 cpus=cpus, cpu_shares=cpu_shares, pids_limit=pids_limit,
                                 restart=restart or "no")
    lim = opts.limits
    res = {}
    if lim.memory is not None:
        res.setdefault("memory", {})["limit"] = lim.memory
    if lim.memory_swap is not None:
        res.setdefault("memory", {})["swap"] = lim.memory_swap
    if lim.cpus is not None:
        res.setdefault("cpu", {}).update(quota=lim.cpus[0], period=lim.cpus[1])
    if lim.cpu_shares is not None:
        res.setdefault("cpu", {})["shares"] = lim.cpu_shares
    if pids_limit is not None:
        res["pids"] = {"limit": lim.pids_limit or -1}
    if res and current_state(fe, rec) in ("running", "paused"):
        from minirun.runtime import control as runtime_control

        runtime_control.update(fe.root, cid, res)
    path = os.path.join(rec["Bundle"], "config.json")
    with open(path) as f:
        spec = json.load(f)
    resources = spec["linux"].setdefault("resources", {})
    for group, values in res.items():
        resources.setdefault(group, {}).update(values)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(tmp, path)
    with recordfile.update(fe.record_dir(cid)) as r:
        host = r["HostConfig"]
        if lim.memory is not None:
            host["Memory"] = lim.memory
        if lim.memory_swap is not None:
            host["MemorySwap"] = lim.memory_swap
        if lim.cpus is not None:
            host["NanoCpus"] = int(lim.cpus[0] / lim.cpus[1] * 1e9)
        if lim.cpu_shares is not None:
            host["CpuShares"] = lim.cpu_shares
        if pids_limit is not None:
            host["PidsLimit"] = lim.pids_limit
        if restart is not None:
            if host.get("AutoRemove") and opts.restart["Name"] != "no":
                from minirun.errors import BadOption

                raise BadOption("Restart policy cannot be updated because AutoRemove is enabled "
                                "for the container")
            host["RestartPolicy"] = opts.restart
    events.emit(fe, "update", fe.load(cid))


def attach(fe, ref, stdin=True, sig_proxy=True, detach_keys=None):
    """Attach to a running container's I/O; its exit code, or 0 once detached."""
    import os

    cid, rec = fe.find(ref)
    state = current_state(fe, rec)
    if state == "paused":
        raise MinirunError("You cannot attach to a paused container, unpause it first")
    if state != "running":
        raise MinirunError("You cannot attach to a stopped container, start it first")
    tty = bool(rec["Config"]["Tty"])
    stdin = stdin and bool(rec["Config"].get("OpenStdin"))
    if tty and stdin and not os.isatty(0):
        raise MinirunError("the input device is not a TTY")
    return client.attach(fe.root, cid, tty=tty, stdin=stdin, sig_proxy=sig_proxy,
                         detach_keys=detach_keys)
