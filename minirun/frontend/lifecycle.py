"""The life of a front-end container.

    create   (CLI)    options checked -> image (local or pulled) -> name -> rootfs
                      (overlay) -> volumes -> config.json -> record "created"
    start    (CLI)    asks the monitor, which runs start_worker() in a child:
    start_worker      rootfs mounted? -> runtime create -> network attach -> runtime
                      start -> record "running"; reports the init's pid (and pty)
    exit_worker       (run by the monitor when the init exits) OOM? -> runtime
                      delete -> network detach -> record "exited" -> restart
                      decision (back-off) -> --rm removal
    stop/kill/rm      (CLI) signals through the runtime, waits through the monitor

Every step that makes something undoes it when a later step fails: a failed
`run` leaves no record, name, rootfs, volume, cgroup, veth or runtime state.
"""
import json
import os
import signal
import socket
import sys
import time

from minirun.errors import ExecError, MinirunError
from minirun.frontend import client, options, recordfile
from minirun.frontend.records import Conflict, NoSuchContainer  # noqa: F401

ZERO_TIME = "0001-01-01T00:00:00Z"
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET_AFTER = 0.1, 60.0, 10.0
DEFAULT_STOP_TIMEOUT = 10


class RunError(MinirunError):
    """A failure of minirun itself in `run`/`create`: Docker's exit status 125."""

    exit_code = 125


class NotRunning(MinirunError):
    pass


def exec_error_code(exc):
    """Docker's 126 (cannot invoke) / 127 (not found) for a command that failed to start."""
    text = str(exc)
    # `exec` reports the same errors as create, without the ExecError class.
    if (isinstance(exc, ExecError) or text.startswith("exec: ")) and not text.startswith(
            ("chdir", "current working")):
        if "not found" in text or "no such file" in text:
            return 127
        return 126
    return 125


# --- images -------------------------------------------------------------------------
def resolve_image(fe, ref, stream=None):
    """An image from the store, trying localhost/NAME for short names (what
    `minirun load` of a layout is called), pulling it when it is missing."""
    from minirun.image import reference

    store = fe.image_store()
    image = store.lookup(ref)
    if image is None and "/" not in ref.split(":")[0].split("@")[0]:
        image = store.lookup("localhost/" + ref)
    if image is not None:
        return image
    try:
        reference.parse(ref)
    except reference.InvalidReference as e:
        raise RunError(f"invalid reference format: {e}") from None
    from minirun.image import registry

    stream = stream or sys.stderr
    print(f"Unable to find image '{ref}' locally", file=stream, flush=True)
    try:
        return registry.pull(ref, store=store, stream=stream)
    except MinirunError as e:
        raise RunError(str(e)) from None


# --- create ---------------------------------------------------------------------------
def create(fe, image_ref, args=(), *, name=None, entrypoint=None, env=(), env_files=(),
           volumes=(), tmpfs=(), publish=(), network="bridge", hostname=None, user=None,
           workdir=None, read_only=False, memory=None, memory_swap=None, cpus=None,
           cpu_shares=None, pids_limit=None, ulimits=(), cap_add=(), cap_drop=(),
           privileged=False, security_opt=(), restart="no", health_cmd=None,
           health_interval=None, health_timeout=None, health_retries=None,
           health_start_period=None, no_healthcheck=False, init=False, tty=False,
           interactive=False, auto_remove=False, log_opts=(), labels=(), stop_signal=None,
           stop_timeout=None, progress=None):
    """Make a container ("created"); returns its record.  Raises RunError (125)
    and leaves nothing behind on any failure."""
    from minirun import network as net

    # 1. Every flag, before anything exists.
    try:
        env_list = options.parse_env(env_files, env)
        mounts = [options.parse_volume(v) for v in volumes]
        tmpfs_list = [options.parse_tmpfs(t) for t in tmpfs]
        for p in publish:
            net.parse_publish(p)
        mem = options.parse_size(memory, "--memory") if memory else None
        swap = None
        if memory_swap is not None:
            swap = -1 if str(memory_swap) == "-1" else options.parse_size(memory_swap,
                                                                          "--memory-swap")
        if mem is not None and mem < 6 << 20:
            raise options.BadOption("Minimum memory limit allowed is 6MB")
        cpu = options.parse_cpus(cpus) if cpus else None
        ulimit_list = [options.parse_ulimit(u) for u in ulimits]
        caps_add = options.parse_caps(cap_add, "--cap-add")
        caps_drop = options.parse_caps(cap_drop, "--cap-drop")
        security = options.parse_security_opts(security_opt)
        policy = options.parse_restart(restart)
        logcfg = options.parse_log_opts(log_opts)
        if auto_remove and policy["Name"] != "no":
            raise options.BadOption("Conflicting options: --restart and --rm")
        stop_sig = options.parse_signal(stop_signal) if stop_signal else None
        label_map = {}
        for item in labels:
            k, _, v = item.partition("=")
            label_map[k] = v
        mode, _ = net.parse_mode(network)
        if mode == "bridge" and network != "bridge":
            net.inspect_network(network, root=fe.root)  # "network foo not found"
        if publish and mode in ("none", "container"):
            raise options.BadOption(f"conflicting options: port publishing and the container "
                                    f"sharing the network stack ({network})")
        if mode == "container":
            other = fe.resolve(network.partition(":")[2])
            network = "container:" + other
        if hostname and mode in ("container",):
            raise options.BadOption("conflicting options: hostname and the network mode")
        if pids_limit is not None and pids_limit <= 0:
            pids_limit = None  # Docker: 0 or -1 means unlimited
    except MinirunError as e:
        raise RunError(str(e)) from None
    if init:
        from minirun.frontend.bundle import find_init

        try:
            find_init()
        except MinirunError as e:
            raise RunError(str(e)) from None

    # 2. The image (pulled if missing).
    image = resolve_image(fe, image_ref, progress)
    health = options.healthcheck(image.config, health_cmd, health_interval, health_timeout,
                                 health_retries, health_start_period, no_healthcheck)

    # 3. From here on, things exist: undo them on failure.
    fe.ensure()
    cid = fe.new_id()
    undo = []
    try:
        if name:
            fe.reserve_name(name, cid)
        else:
            name = fe.generate_name(cid)
        undo.append(lambda: fe.release_name(name, cid))
        directory = fe.record_dir(cid)
        os.mkdir(directory, 0o700)
        undo.append(lambda: fe.remove_record(cid, name))
        bundle_dir = os.path.join(directory, "bundle")
        os.mkdir(bundle_dir, 0o700)

        from minirun.image import prepare_rootfs

        rootfs, release = prepare_rootfs(image, cid, store=fe.image_store())
        undo.append(release)

        resolved = _volumes(fe, image, rootfs, mounts, undo)
        hostname = hostname or (cid[:12] if mode != "host" else socket.gethostname())
        etc = None
        if mode != "container":
            etc = net.etc_files(cid, hostname, root=fe.root)
            undo.append(lambda: net.detach(cid, root=fe.root))
        from minirun.frontend import bundle

        try:
            spec = bundle.build(
                image, rootfs, cid=cid, hostname=hostname, args=list(args) or None,
                entrypoint=None if entrypoint is None else ([entrypoint] if entrypoint else []),
                env=env_list, user=user, workdir=workdir, tty=tty, open_stdin=interactive,
                read_only=read_only, mounts=resolved, tmpfs=tmpfs_list, etc_files=etc,
                network_mode=network, memory=mem, memory_swap=swap, cpus=cpu,
                cpu_shares=cpu_shares, pids_limit=pids_limit, ulimits=ulimit_list,
                cap_add=caps_add, cap_drop=caps_drop, privileged=privileged, security=security,
                init=init)
        except MinirunError as e:
            raise RunError(str(e)) from None
        spec["annotations"]["minirun.frontend.name"] = name
        with open(os.path.join(bundle_dir, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        rec = _record(fe, cid, name, image, image_ref, spec, rootfs, bundle_dir, hostname,
                      etc, resolved, tmpfs_list, publish, network, policy, auto_remove, logcfg,
                      health, tty, interactive, label_map, stop_sig, stop_timeout,
                      dict(memory=mem, memory_swap=swap, cpus=cpu, cpu_shares=cpu_shares,
                           pids_limit=pids_limit, ulimits=ulimit_list, cap_add=caps_add,
                           cap_drop=caps_drop, privileged=privileged, read_only=read_only,
                           security=security, init=init))
        _command_fields(rec, image, args, entrypoint, user)
        recordfile.write(directory, rec)
        return rec
    except BaseException as e:
        for step in reversed(undo):
            try:
                step()
            except Exception:
                pass
        if isinstance(e, MinirunError) and not isinstance(e, RunError):
            raise RunError(str(e)) from None
        raise


def _volumes(fe, image, rootfs, mounts, undo):
    """-v entries and the image's VOLUMEs -> bind mounts of host directories."""
    from minirun.frontend import volumes

    wanted = list(mounts)
    taken = {m["Destination"] for m in wanted}
    for dest in sorted((image.config.get("config") or {}).get("Volumes") or {}):
        dest = os.path.normpath(dest)
        if dest not in taken:
            wanted.append({"Type": "volume", "Name": "", "Destination": dest, "RW": True,
                           "Propagation": [], "NoCopy": False})
    out = []
    for m in wanted:
        m = dict(m)
        if m["Type"] == "bind":
            if not os.path.exists(m["Source"]):
                os.makedirs(m["Source"], 0o755)  # Docker's -v creates a missing host dir
                made = m["Source"]
                undo.append(lambda p=made: os.rmdir(p))
        else:
            anonymous = not m["Name"]
            info, created = volumes.create(fe, m["Name"] or None, anonymous=anonymous)
            m.update(Name=info["Name"], Source=info["Mountpoint"], Anonymous=anonymous)
            if created:
                undo.append(lambda n=info["Name"]: volumes.remove(fe, n, force=True))
                if not m.get("NoCopy"):
                    volumes.copy_up(rootfs, m["Destination"], info["Mountpoint"])
        out.append(m)
    return out


def _record(fe, cid, name, image, image_ref, spec, rootfs, bundle_dir, hostname, etc,
            mounts, tmpfs, publish, network, policy, auto_remove, logcfg, health, tty,
            interactive, labels, stop_sig, stop_timeout, limits):
    proc = spec["process"]
    cfg = image.config.get("config") or {}
    args = proc["args"]
    state = {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
             "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
             "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}
    if health:
        state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    directory = fe.record_dir(cid)
    image_stop = cfg.get("StopSignal")
    return {
        "Id": cid,
        "Created": recordfile.timestamp(),
        "Path": args[0],
        "Args": args[1:],
        "State": state,
        "Image": image.id,
        "ResolvConfPath": (etc or {}).get("/etc/resolv.conf", ""),
        "HostnamePath": (etc or {}).get("/etc/hostname", ""),
        "HostsPath": (etc or {}).get("/etc/hosts", ""),
        "LogPath": os.path.join(directory, "container-log.json"),
        "Name": "/" + name,
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "Binds": [f"{m['Source']}:{m['Destination']}{'' if m['RW'] else ':ro'}"
                      for m in mounts if m["Type"] == "bind"],
            "NetworkMode": network,
            "PortBindings": list(publish),
            "RestartPolicy": policy,
            "AutoRemove": bool(auto_remove),
            "LogConfig": {"Type": "json-file", "Config": {"max-size": logcfg["max-size"],
                                                          "max-file": logcfg["max-file"]}},
            "Tmpfs": {d: ",".join(o) for d, o in tmpfs},
            "Memory": limits["memory"] or 0,
            "MemorySwap": limits["memory_swap"] or 0,
            "NanoCpus": int(limits["cpus"][0] / limits["cpus"][1] * 1e9) if limits["cpus"] else 0,
            "CpuShares": limits["cpu_shares"] or 0,
            "PidsLimit": limits["pids_limit"],
            "Ulimits": limits["ulimits"],
            "CapAdd": limits["cap_add"],
            "CapDrop": limits["cap_drop"],
            "Privileged": limits["privileged"],
            "ReadonlyRootfs": limits["read_only"],
            "SecurityOpt": [k for k, v in (("no-new-privileges",
                                            limits["security"]["no_new_privileges"]),) if v]
            + ([f"seccomp={limits['security']['seccomp']}"] if limits["security"]["seccomp"]
               else []),
            "Init": limits["init"],
        },
        "GraphDriver": {"Name": "overlay", "Data": {
            "MergedDir": rootfs, "UpperDir": os.path.join(os.path.dirname(rootfs), "upper"),
            "WorkDir": os.path.join(os.path.dirname(rootfs), "work")}},
        "Mounts": [{"Type": m["Type"], "Name": m.get("Name", ""), "Source": m["Source"],
                    "Destination": m["Destination"], "Driver": "local" if m["Type"] == "volume"
                    else "", "Mode": "" if m["RW"] else "ro", "RW": m["RW"],
                    "Propagation": ",".join(m.get("Propagation") or []),
                    "Anonymous": bool(m.get("Anonymous"))} for m in mounts],
        "Config": {
            "Hostname": hostname,
            "User": "",
            "Tty": bool(tty),
            "OpenStdin": bool(interactive),
            "StdinOnce": bool(interactive),
            "Env": proc["env"],
            "Cmd": None,
            "Image": image_ref,
            "WorkingDir": proc.get("cwd", "/"),
            "Entrypoint": None,
            "Labels": dict(cfg.get("Labels") or {}, **labels),
            "StopSignal": (signal.Signals(stop_sig).name if stop_sig else image_stop) or None,
            "StopTimeout": stop_timeout,
            "Healthcheck": _docker_health(health),
            "ExposedPorts": cfg.get("ExposedPorts") or {},
        },
        "NetworkSettings": {"Networks": {}, "Ports": {}, "IPAddress": ""},
        # minirun's own fields
        "Healthcheck": health,
        "ManualStop": False,
        "RestartDelay": 0,
        "Store": fe.store_root,
        "Root": fe.root,
        "Bundle": bundle_dir,
        "Rootfs": rootfs,
        "ImageManifest": image.digest,
    }


def _docker_health(health):
    if not health:
        return None
    return {"Test": health["Test"], "Interval": int(health["Interval"] * 1e9),
            "Timeout": int(health["Timeout"] * 1e9),
            "StartPeriod": int(health["StartPeriod"] * 1e9),
            "Retries": health["Retries"]}


def _command_fields(rec, image, args, entrypoint, user):
    """Docker's Config.Cmd/Entrypoint/User: the effective ones."""
    cfg = image.config.get("config") or {}
    conf = rec["Config"]
    conf["User"] = user if user is not None else (cfg.get("User") or "")
    if entrypoint is not None:
        conf["Entrypoint"] = [entrypoint] if entrypoint else None
    else:
        conf["Entrypoint"] = cfg.get("Entrypoint") or None
    if args:
        conf["Cmd"] = list(args)
    else:
        conf["Cmd"] = list(cfg.get("Cmd") or []) if entrypoint is None else None


# --- start -----------------------------------------------------------------------------
def start(fe, cid, attach=False, interactive=False, sig_proxy=True):
    """Start a created or stopped container through the monitor.  Detached:
    returns once it runs.  Attached: returns its exit code."""
    rec = fe.load(cid)
    with recordfile.update(fe.record_dir(cid)) as r:
        r["ManualStop"] = False
        r["RestartDelay"] = 0
    directory = fe.record_dir(cid)
    if attach:
        return client.start_attached(fe.root, cid, directory, tty=rec["Config"]["Tty"],
                                     stdin=interactive, sig_proxy=sig_proxy)
    reply = client.request(fe.root, {"op": "start", "id": cid, "dir": directory,
                                     "trace": client.tracing()})
    if "error" in reply:
        raise client.StartFailed(reply["error"], reply.get("code", 125))
    return 0


def start_worker(fe, cid, report_fd=3):
    """Run by the monitor (worker.py start ID): make the runtime
    container, attach the network, start it.  Reports {"pid"} (+ the pty
    master) or {"error", "code"} on report_fd; stdout/stderr are the
    container's log pipes, so nothing is printed here."""
    report = socket.socket(fileno=report_fd)
    try:
        pid, master = _start_runtime(fe, cid)
    except BaseException as e:
        code = exec_error_code(e)
        msg = str(e) if isinstance(e, (MinirunError, OSError)) else f"{type(e).__name__}: {e}"
        if isinstance(e, OSError) and not isinstance(e, MinirunError):
            from minirun.runtime.spawn import describe_os_error

            msg = describe_os_error(e)
        try:
            with recordfile.update(fe.record_dir(cid)) as rec:
                rec["State"].update(Error=msg, ExitCode=code if code != 125 else 128,
                                    Running=False, Restarting=False, Pid=0)
                if rec["State"]["Status"] in ("running", "restarting"):
                    rec["State"]["Status"] = "exited"
                    rec["State"]["FinishedAt"] = recordfile.timestamp()
        except OSError:
            pass
        report.send(json.dumps({"error": msg, "code": code}).encode())
        return 1
    fds = [master] if master is not None else []
    socket.send_fds(report, [json.dumps({"pid": pid}).encode()], fds)
    return 0


def _start_runtime(fe, cid):
    from minirun import network as net
    from minirun.runtime import create as create_mod
    from minirun.runtime import start as start_mod

    rec = fe.load(cid)
    directory = fe.record_dir(cid)
    ensure_rootfs(fe, cid, rec)
    _remove_runtime(fe, cid)  # what a crash (or a reboot's stale /run) left
    mode = rec["HostConfig"]["NetworkMode"]
    hostname = rec["Config"]["Hostname"]
    if mode.startswith("container:"):
        _join_network_of(fe, rec, mode[10:])
    else:
        net.etc_files(cid, hostname, root=fe.root)
    console_parent = console_child = None
    if rec["Config"]["Tty"]:
        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    container = create_mod.create(fe.root, cid, rec["Bundle"], console_sock=console_child)
    pid = container.pid
    container.close()
    master = None
    try:
        if console_parent is not None:
            _, fds, _, _ = socket.recv_fds(console_parent, 1024, 1)
            master = fds[0]
            console_parent.close()
        # --network none: the runtime's init already brought lo up in the new
        # netns; without a netns to look at, attach only records the mode.
        info = net.attach(cid, None if mode == "none" else pid, network=mode,
                          publish=rec["HostConfig"]["PortBindings"],
                          hostname=hostname if mode != "host" else None,
                          aliases=[rec["Name"].lstrip("/")] if mode not in (
                              "host", "none") and not mode.startswith("container:") else (),
                          root=fe.root)
        start_mod.start(fe.root, cid)
    except BaseException:
        _remove_runtime(fe, cid)
        try:
            net.detach(cid, root=fe.root)
        except MinirunError:
            pass
        if master is not None:
            os.close(master)
        raise
    from minirun.linux import proc

    monitor_pid = os.getppid()
    with recordfile.update(directory) as r:
        st = r["State"]
        st.update(Status="running", Running=True, Paused=False, Restarting=False,
                  OOMKilled=False, Dead=False, Pid=pid, ExitCode=0, Error="",
                  StartedAt=recordfile.timestamp(), FinishedAt=ZERO_TIME)
        if r.get("Healthcheck"):
            st["Health"] = {"Status": "starting", "FailingStreak": 0,
                            "Log": (st.get("Health") or {}).get("Log", [])}
        r["Monitor"] = {"pid": monitor_pid, "start": proc.start_time(monitor_pid)}
        r["NetworkSettings"] = _network_settings(info)
    return pid, master


def _join_network_of(fe, rec, other):
    """--network container:<id>: the other container's netns (its current pid) and files."""
    from minirun import network as net
    from minirun.runtime.state import RUNNING, Container

    try:
        with Container.load(fe.root, other, lock=False) as c:
            if c.status() != RUNNING:
                raise NotRunning(f"cannot join network of a non running container: {other[:12]}")
            pid = c.pid
    except MinirunError as e:
        if isinstance(e, NotRunning):
            raise
        raise NotRunning(f"cannot join network of a non running container: {other[:12]}") \
            from None
    ep = net.endpoint(other, root=fe.root) or {}
    path = os.path.join(rec["Bundle"], "config.json")
    with open(path) as f:
        spec = json.load(f)
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/proc/{pid}/ns/net"
    files = ep.get("files") or {}
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] not in files]
    for dest, src in files.items():
        spec["mounts"].append({"destination": dest, "type": "bind", "source": src,
                               "options": ["rbind", "rprivate"]})
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(tmp, path)


def _network_settings(info):
    ports = {}
    for p in info.get("ports") or []:
        key = f"{p['container_port']}/{p['proto']}"
        ports.setdefault(key, []).append({"HostIp": p.get("host_ip") or "0.0.0.0",
                                          "HostPort": str(p["host_port"])})
    out = {"IPAddress": info.get("ip") or "", "IPPrefixLen": info.get("prefixlen") or 0,
           "Gateway": info.get("gateway") or "", "MacAddress": info.get("mac") or "",
           "Ports": ports, "Networks": {}}
    if info.get("mode") == "bridge" or info.get("network"):
        out["Networks"][info.get("network") or info.get("mode")] = {
            "IPAddress": out["IPAddress"], "IPPrefixLen": out["IPPrefixLen"],
            "Gateway": out["Gateway"], "MacAddress": out["MacAddress"],
            "Aliases": info.get("aliases") or []}
    elif info.get("mode"):
        out["Networks"][info["mode"]] = {}
    return out


def ensure_rootfs(fe, cid, rec):
    """The overlay rootfs stays mounted from create to rm; after a reboot the
    mount is gone and is made again over the same upper dir."""
    from minirun.image import manifest as mf
    from minirun.linux import syscalls

    rootfs = rec["Rootfs"]
    cdir = os.path.dirname(rootfs)
    if os.path.ismount(rootfs) or os.path.exists(os.path.join(cdir, "mode")):
        return  # mounted, or a plain (copied) rootfs
    upper, work = os.path.join(cdir, "upper"), os.path.join(cdir, "work")
    if not os.path.isdir(upper):
        raise MinirunError(f"the rootfs of {cid[:12]} is gone ({cdir})")
    store = fe.image_store()
    image = mf.Image(store, rec["ImageManifest"])
    lowers = [store.layer_dir(c) for c in image.chain_ids]
    missing = [d for d in lowers if not os.path.isdir(d)]
    if missing:
        raise MinirunError(f"the image layers of {cid[:12]} are gone from the store")
    syscalls.mount("overlay", rootfs, "overlay", 0,
                   f"lowerdir={':'.join(reversed(lowers))},upperdir={upper},workdir={work}",
                   why="container rootfs again: its layers + its upper dir")


def _remove_runtime(fe, cid):
    """Delete the runtime container (kill, cgroup, state) if there is one."""
    from minirun.errors import ContainerNotFound
    from minirun.runtime import delete as delete_mod
    from minirun.runtime.state import Container

    try:
        c = Container.load(fe.root, cid)
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


# --- exit --------------------------------------------------------------------------------
def exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


def restart_delay(rec, code, ran_for):
    """Seconds until the next start, or None: the restart policy with Docker's
    back-off (100 ms, doubled each time, at most 1 min, reset after 10 s of running)."""
    host = rec["HostConfig"]
    policy = host.get("RestartPolicy") or {"Name": "no"}
    if rec.get("ManualStop") or host.get("AutoRemove") or policy["Name"] == "no":
        return None
    if policy["Name"] == "on-failure":
        if code == 0:
            return None
        limit = policy.get("MaximumRetryCount") or 0
        if limit and rec.get("RestartCount", 0) >= limit:
            return None
    previous = rec.get("RestartDelay") or 0
    if not previous or ran_for >= BACKOFF_RESET_AFTER:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)


def exit_worker(fe, cid, status):
    """Run by the monitor (worker.py exited ID STATUS) after the init
    exited and its output was drained.  Prints {"exit_code", "restart_in"}."""
    from minirun import network as net

    code = exit_code(status)
    directory = fe.record_dir(cid)
    oom = _remove_runtime(fe, cid)
    try:
        net.detach(cid, root=fe.root)
    except MinirunError:
        pass
    delay = None
    rec = None
    try:
        with recordfile.update(directory) as rec:
            if oom:
                code = 137 if code < 128 else code
            started = recordfile.parse_timestamp(rec["State"].get("StartedAt"))
            delay = restart_delay(rec, code, time.time() - started)
            st = rec["State"]
            st.update(Status="restarting" if delay is not None else "exited", Running=False,
                      Paused=False, Restarting=delay is not None, OOMKilled=bool(oom), Pid=0,
                      ExitCode=code, FinishedAt=recordfile.timestamp())
            if delay is not None:
                rec["RestartCount"] = rec.get("RestartCount", 0) + 1
                rec["RestartDelay"] = delay
            rec["NetworkSettings"] = {"Networks": {}, "Ports": {}, "IPAddress": ""}
    except FileNotFoundError:
        rec = None
    if rec is not None and delay is None and rec["HostConfig"].get("AutoRemove"):
        remove_files(fe, cid, rec, volumes=True)
    print(json.dumps({"exit_code": code, "restart_in": delay}))
    return 0


# --- state ----------------------------------------------------------------------------------
def monitor_alive(rec):
    from minirun.linux import proc

    m = rec.get("Monitor") or {}
    return bool(m) and proc.is_running(m.get("pid"), m.get("start"))


def current_state(fe, rec):
    """State.Status as it is now: "paused" comes from the cgroup, and a
    container whose monitor died (crash, reboot) shows as exited (255) unless
    its process still runs."""
    st = rec["State"]
    status = st["Status"]
    if status not in ("running", "restarting"):
        return status
    from minirun.runtime.state import PAUSED, RUNNING, Container

    try:
        with Container.load(fe.root, rec["Id"], lock=False) as c:
            runtime_status = c.status()
    except MinirunError:
        runtime_status = None
    if runtime_status == PAUSED:
        return "paused"
    if status == "restarting":
        return status if monitor_alive(rec) else "exited"
    if runtime_status == RUNNING:
        return "running"
    if not monitor_alive(rec):
        return "exited"
    return "running"  # exiting right now: the monitor will record it


def is_running(fe, rec):
    return current_state(fe, rec) in ("running", "paused", "restarting")


# --- stop, kill -------------------------------------------------------------------------------
def stop_signal(rec):
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
    from minirun.errors import ContainerNotFound, ContainerNotRunning
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
        if _wait(fe, cid, waiter, timeout if timeout >= 0 else None):
            return
        try:
            kill_mod.kill(fe.root, cid, signal.SIGKILL, all_processes=True)
        except (ContainerNotRunning, ContainerNotFound):
            pass
        _wait(fe, cid, waiter, 30)
    finally:
        waiter.close()


def _resume_quietly(fe, cid):
    from minirun.runtime import control

    try:
        control.resume(fe.root, cid)
    except MinirunError:
        pass


def _wait(fe, cid, waiter, timeout):
    """True once the exit is recorded (through the monitor, else by polling)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        reply = waiter.result(timeout)
        if reply is not None:
            return True
    except (TimeoutError, socket.timeout):
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
    from minirun.errors import ContainerNotFound, ContainerNotRunning
    from minirun.runtime import kill as kill_mod

    rec = fe.load(cid)
    if current_state(fe, rec) not in ("running", "paused"):
        raise NotRunning(f"cannot kill container: {cid[:12]}: container {cid[:12]} is not "
                         f"running")
    with recordfile.update(fe.record_dir(cid)) as r:
        r["ManualStop"] = True
    try:
        kill_mod.kill(fe.root, cid, sig, all_processes=sig == signal.SIGKILL)
    except (ContainerNotRunning, ContainerNotFound):
        raise NotRunning(f"cannot kill container: {cid[:12]}: container {cid[:12]} is not "
                         f"running") from None


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


# --- rm -----------------------------------------------------------------------------------------
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

                try:
                    kill_mod.kill(fe.root, cid, signal.SIGKILL, all_processes=True)
                except MinirunError:
                    pass
                _wait(fe, cid, waiter, 30)
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
    _remove_runtime(fe, cid)
    try:
        net.detach(cid, root=fe.root)
    except MinirunError:
        pass
    release_rootfs(cid, store=fe.image_store())
    fe.remove_record(cid, rec["Name"].lstrip("/"))
    if volumes:
        from minirun.frontend import volumes as vol

        vol.remove_anonymous(fe, rec.get("Mounts"))
