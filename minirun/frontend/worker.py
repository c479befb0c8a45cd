"""The short-lived processes the monitor runs, without the CLI (no click import):

    python -m minirun.frontend.worker ROOT start  ID          start_worker()
    python -m minirun.frontend.worker ROOT exited ID STATUS   exit_worker()
    python -m minirun.frontend.worker ROOT health ID CMD...   one health check (exec)

    start_worker   rootfs mounted? -> runtime create -> network attach -> runtime
                   start -> record "running"; reports the init's pid (and pty)
    exit_worker    (after the init exited) OOM? -> runtime delete -> network
                   detach -> record "exited" -> restart decision -> --rm removal

The store comes from $MINIRUN_STORE, which the monitor sets per container.
"""
import os
import socket
import sys
import time

from minirun import jsonio  # json's text without its imports: a worker starts per container
from minirun.errors import MinirunError, docker_exit_code
from minirun.frontend import control, events, recordfile, records, restart


def _health(fe, cid, cmd):
    """Run a health check command in the container; its exit status."""
    from minirun.runtime import exec as exec_mod
    from minirun.runtime.state import Container

    with Container.load(fe.root, cid, lock=False) as c:
        config = c.config() or {}
    process = exec_mod.process_from_flags(config, cmd)
    return exec_mod.execute(fe.root, cid, process)


def start_worker(fe, cid, report_fd=3):
    """Run by the monitor (worker.py start ID): make the runtime
    container, attach the network, start it.  Reports {"pid"} (+ the pty
    master) or {"error", "code"} on report_fd; stdout/stderr are the
    container's log pipes, so nothing is printed here."""
    report = socket.socket(fileno=report_fd)
    try:
        pid, master, dns_sockets = _start_runtime(fe, cid)
    except BaseException as e:
        code = docker_exit_code(e)
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
        report.send(jsonio.dumps({"error": msg, "code": code}).encode())
        return 1
    events.emit(fe, "start", fe.load(cid))
    fds = ([master] if master is not None else []) + [s.fileno() for s in dns_sockets]
    msg = {"pid": pid, "pty": master is not None, "dns": len(dns_sockets)}
    socket.send_fds(report, [jsonio.dumps(msg).encode()], fds)
    return 0


def _start_runtime(fe, cid):
    from minirun import network as net
    from minirun.runtime import create as create_mod
    from minirun.runtime import start as start_mod

    rec = fe.load(cid)
    directory = fe.record_dir(cid)
    ensure_rootfs(fe, cid, rec)
    control.remove_runtime(fe, cid)  # what a crash (or a reboot's stale /run) left
    mode = rec["HostConfig"]["NetworkMode"]
    hostname = rec["Config"]["Hostname"]
    if mode.startswith("container:"):
        _join_network_of(fe, rec, mode[10:])
    else:
        net.etc_files(cid, hostname, root=fe.root)
    _join_ipc_of(fe, rec)
    console_parent = console_child = None
    if rec["Config"]["Tty"]:
        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    container = create_mod.create(fe.root, cid, rec["Bundle"], console_sock=console_child)
    pid = container.pid
    container.close()
    master = None
    dns_sockets = ()
    try:
        if console_parent is not None:
            _, fds, _, _ = socket.recv_fds(console_parent, 1024, 1)
            master = fds[0]
            console_parent.close()
        # --network none: the runtime's init already brought lo up in the new
        # netns; without a netns to look at, attach only records the mode.
        host = rec["HostConfig"]
        info = net.attach(cid, None if mode == "none" else pid, network=mode,
                          publish=rec["HostConfig"]["PortBindings"],
                          hostname=hostname if mode != "host" else None,
                          aliases=[rec["Name"].lstrip("/"), *rec.get("NetworkAliases", ())]
                          if mode not in ("host", "none") and not mode.startswith("container:")
                          else (),
                          dns_servers=host.get("Dns") or None,
                          dns_search=host.get("DnsSearch") or None,
                          dns_options=host.get("DnsOptions") or None,
                          extra_hosts=[h.split(":", 1) for h in host.get("ExtraHosts") or ()],
                          embedded_dns=True, root=fe.root)
        for extra, extra_aliases in rec.get("ExtraNetworks") or ():
            net.connect(cid, pid, extra, hostname=hostname, root=fe.root,
                        aliases=[rec["Name"].lstrip("/"), *extra_aliases])
        if info.get("embedded_dns"):
            # 127.0.0.11 in its netns, answered by the monitor (minirun/dns/server.py)
            from minirun.network import embedded

            dns_sockets = embedded.open_sockets(pid)
        start_mod.start(fe.root, cid)
    except BaseException:
        for s in dns_sockets:
            s.close()
        control.remove_runtime(fe, cid)
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
                  StartedAt=recordfile.timestamp(), FinishedAt=records.ZERO_TIME)
        if r.get("Healthcheck"):
            st["Health"] = {"Status": "starting", "FailingStreak": 0,
                            "Log": (st.get("Health") or {}).get("Log", [])}
        r["Monitor"] = {"pid": monitor_pid, "start": proc.start_time(monitor_pid)}
        r["NetworkSettings"] = _network_settings(info)
    return pid, master, dns_sockets


def _join_ipc_of(fe, rec):
    """--ipc container:<id> (RunOptions.ipc): that container's IPC namespace, by its
    current pid, as for the network (kube's pods share IPC with their infra container)."""
    from minirun.frontend.bundle import IPC_ANNOTATION
    from minirun.runtime.state import RUNNING, Container

    path = os.path.join(rec["Bundle"], "config.json")
    with open(path) as f:
        spec = jsonio.load(f)
    other = (spec.get("annotations") or {}).get(IPC_ANNOTATION)
    if not other:
        return
    try:
        with Container.load(fe.root, other, lock=False) as c:
            running, pid = c.status() == RUNNING, c.pid
    except MinirunError:
        running = False
    if not running:
        raise control.NotRunning(f"cannot join IPC of a non running container: {other[:12]}")
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "ipc":
            ns["path"] = f"/proc/{pid}/ns/ipc"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(jsonio.dumps(spec, indent=1))
    os.replace(tmp, path)


def _join_network_of(fe, rec, other):
    """--network container:<id>: the other container's netns (its current pid) and files."""
    from minirun import network as net
    from minirun.runtime.state import RUNNING, Container

    try:
        with Container.load(fe.root, other, lock=False) as c:
            if c.status() != RUNNING:
                raise control.NotRunning(f"cannot join network of a non running container: {other[:12]}")
            pid = c.pid
    except MinirunError as e:
        if isinstance(e, control.NotRunning):
            raise
        raise control.NotRunning(f"cannot join network of a non running container: {other[:12]}") \
            from None
    ep = net.endpoint(other, root=fe.root) or {}
    path = os.path.join(rec["Bundle"], "config.json")
    with open(path) as f:
        spec = jsonio.load(f)
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
        f.write(jsonio.dumps(spec, indent=1))
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


def exit_worker(fe, cid, status):
    """Run by the monitor (worker.py exited ID STATUS) after the init
    exited and its output was drained.  Prints {"exit_code", "restart_in"}."""
    from minirun import network as net

    code = restart.exit_code(status)
    directory = fe.record_dir(cid)
    oom = control.remove_runtime(fe, cid)
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
            delay = restart.restart_delay(rec, code, time.time() - started)
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
    if rec is not None:
        if oom:
            events.emit(fe, "oom", rec)
        events.emit(fe, "die", rec, exitCode=code)
    if rec is not None and delay is None and rec["HostConfig"].get("AutoRemove"):
        control.remove_files(fe, cid, rec, volumes=True)
    print(jsonio.dumps({"exit_code": code, "restart_in": delay}))
    return 0


def main(argv):
    if argv[1:] == ["forkserver"]:  # the monitor's pre-imported worker (forkserver.py)
        from minirun.frontend import forkserver

        forkserver.serve(argv[0])
        os._exit(0)
    if argv[1:] == ["create"]:  # `run`'s create, for the CLI (createworker.py)
        from minirun.frontend import createworker

        code = createworker.serve(argv[0])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    root, op, cid, *rest = argv
    from minirun.frontend.records import Frontend

    fe = Frontend(None, root)
    if op == "start":
        code = _guarded(lambda: start_worker(fe, cid))
    elif op == "exited":
        code = _guarded(lambda: exit_worker(fe, cid, int(rest[0])))
    elif op == "health":
        code = _guarded(lambda: _health(fe, cid, rest))
    else:
        print(f"unknown worker operation {op!r}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # nothing to tear down; interpreter shutdown would only delay the monitor


def _guarded(call):
    from minirun.errors import MinirunError

    try:
        return call() or 0
    except MinirunError as e:
        print(f"minirun: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1) or 1
    except OSError as e:
        from minirun.runtime.spawn import describe_os_error

        print(f"minirun: {describe_os_error(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    main(sys.argv[1:])
