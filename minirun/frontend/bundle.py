"""Image config + run options -> the OCI config.json the runtime is given.

The starting point is image/bundle.py's image_spec() (Entrypoint, Cmd, Env,
WorkingDir, User, annotations); on top of it, what Docker's daemon adds:

  process   Docker's 14 default capabilities +/- --cap-add/--cap-drop (all with
            --privileged), no_new_privs only when asked, --ulimit, HOSTNAME/HOME
  root      the overlay rootfs from the store, read-only with --read-only
  mounts    /etc/hosts, /etc/hostname, /etc/resolv.conf from minirun.network,
            volumes and binds (-v), --tmpfs, /dev/init for --init
  linux     resources (--memory, --memory-swap, --cpus, --cpu-shares,
            --pids-limit), namespaces for --network host / container:<id>,
            masked and read-only /proc paths (dropped with --privileged)
"""
import os
import socket
import stat

from minirun.errors import MinirunError

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
IPC_ANNOTATION = "minirun.frontend.ipc-container"   # --ipc container:<this id>
INIT_PATH = "/dev/init"  # on the container's /dev tmpfs: nothing lands in the image's upper dir
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit",
                   "/usr/bin/docker-init")


def find_init():
    """A static init for --init (tini or catatonit: they reap zombies and forward signals)."""
    for path in INIT_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise MinirunError("--init needs a static init binary on the host (apt install tini or "
                       "catatonit)")


def capabilities(cap_add=(), cap_drop=(), privileged=False):
    from minirun.linux import caps

    # "All" is what we hold ourselves: a capability missing from our bounding
    # set could only produce a warning in the container.
    known = [caps.CAP_NAMES[c] for c in sorted(caps.current_bounding()) if c < len(caps.CAP_NAMES)]
    if privileged or "ALL" in cap_add:
        base = set(known)
    else:
        base = set(DOCKER_CAPS) | set(cap_add)
    if "ALL" in cap_drop:
        base = {c for c in cap_add if c != "ALL"} if not privileged else set()
    else:
        base -= set(cap_drop)
    names = sorted(base, key=lambda c: caps.CAP_NUMBERS[c])
    return {k: list(names) for k in ("bounding", "effective", "permitted")}


def build(image, rootfs, opts, *, cid, hostname, mounts=(), etc_files=None,
          network_mode="bridge"):
    """The config.json dict for RunOptions `opts`.  `mounts` are the resolved
    volume/bind mounts: [{"Source": host path, "Destination", "RW", "Propagation"}]."""
    from minirun.image.bundle import home_dir, image_spec

    sec, lim = opts.security, opts.limits
    privileged = sec.privileged
    env = [f"HOSTNAME={hostname}", *opts.env]
    entrypoint = None if opts.entrypoint is None else ([opts.entrypoint] if opts.entrypoint
                                                       else [])
    spec = image_spec(image.config, rootfs, args=list(opts.command) or None,
                      entrypoint=entrypoint, env=env, user=opts.user, workdir=opts.workdir,
                      terminal=opts.tty, hostname=hostname)
    proc = spec["process"]
    if not any(e.startswith("HOME=") for e in proc["env"]):
        proc["env"].append(f"HOME={home_dir(rootfs, proc['user']['uid'])}")
    proc["capabilities"] = capabilities(sec.cap_add, sec.cap_drop, privileged)
    proc["noNewPrivileges"] = sec.no_new_privileges
    rlimits = {r["type"]: r for r in proc.get("rlimits") or []}
    # Docker leaves the daemon's (high) open-files limit; runc's spec has 1024.
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 1048576 if hard == resource.RLIM_INFINITY else hard
    rlimits["RLIMIT_NOFILE"] = {"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard}
    for u in lim.ulimits:
        kind = "RLIMIT_" + u["Name"].upper()
        rlimits[kind] = {"type": kind, "soft": u["Soft"], "hard": u["Hard"]}
    proc["rlimits"] = list(rlimits.values())
    if opts.init:
        proc["args"] = [INIT_PATH, "--", *proc["args"]]
    spec["root"] = {"path": rootfs, "readonly": bool(opts.read_only)}
    spec["hostname"] = hostname

    linux = spec["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    if network_mode == "host":
        spec["hostname"] = socket.gethostname()
    elif network_mode.startswith("container:"):
        # Filled in with the other container's pid at every start (lifecycle.start_worker).
        namespaces.append({"type": "network", "path": "container:" + network_mode[10:]})
    else:
        namespaces.append({"type": "network"})
    if opts.ipc == "host" or opts.ipc.startswith("container:"):
        namespaces = [ns for ns in namespaces if ns["type"] != "ipc"]
        if opts.ipc != "host":   # the other container's pid is filled in at every start
            namespaces.append({"type": "ipc", "path": opts.ipc})
            spec.setdefault("annotations", {})[IPC_ANNOTATION] = opts.ipc[10:]
    linux["namespaces"] = namespaces
    if opts.sysctls:   # written by the runtime's init, in the container's namespaces
        linux["sysctl"] = dict(opts.sysctls)
    # cgroupsPath unset: /minirun/<id>, like Docker's /docker/<id>.

    resources = linux.setdefault("resources", {})
    if privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
    _devices(linux, resources, opts.devices)
    memory, memory_swap = lim.memory, lim.memory_swap
    memory_res = {}
    if memory:
        memory_res["limit"] = memory
        if memory_swap is None:
            memory_swap = 2 * memory  # Docker: as much swap as memory
    if memory_swap is not None and memory_swap != 0:
        if memory_swap == -1:
            memory_res["swap"] = -1
        else:
            if not memory:
                raise MinirunError("You should always set the Memory limit when using Memoryswap "
                                   "limit")
            if memory_swap < memory:
                raise MinirunError("Minimum memoryswap limit should be larger than memory limit, "
                                   "see usage")
            memory_res["swap"] = memory_swap if _swap_accounting() else None
            if memory_res["swap"] is None:
                del memory_res["swap"]
    if memory_res:
        resources["memory"] = memory_res
    cpu = {}
    if lim.cpus:
        cpu["quota"], cpu["period"] = lim.cpus
    if lim.cpu_shares:
        cpu["shares"] = lim.cpu_shares
    if cpu:
        resources["cpu"] = cpu
    if lim.pids_limit:
        resources["pids"] = {"limit": lim.pids_limit}

    out = []
    for m in spec["mounts"]:
        if m["destination"] == "/sys" and privileged:
            m = dict(m, options=[o for o in m.get("options", []) if o != "ro"])
        if m["destination"] == "/dev/shm" and lim.shm_size:
            m = dict(m, options=[o for o in m.get("options", []) if not o.startswith("size=")]
                     + [f"size={lim.shm_size}"])
        out.append(m)
    for dest, src in (etc_files or {}).items():
        out.append({"destination": dest, "type": "bind", "source": src,
                    "options": ["rbind", "rprivate"]})
    for m in opts.tmpfs():
        out.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                    "options": list(m.tmpfs_options)})
    for m in mounts:
        bind_opts = ["rbind"] + (m.get("Propagation") or ["rprivate"])
        if not m.get("RW", True):
            bind_opts.append("ro")
        out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                    "options": bind_opts})
    if opts.init:
        out.append({"destination": INIT_PATH, "type": "bind", "source": find_init(),
                    "options": ["bind", "ro", "nosuid", "nodev"]})
    # Later mounts must not be hidden by earlier ones at the same path: Docker
    # lets a user mount replace a default one (e.g. -v x:/dev/shm).
    seen = {}
    for i, m in enumerate(out):
        seen[os.path.normpath(m["destination"])] = i
    spec["mounts"] = [m for i, m in enumerate(out) if seen[os.path.normpath(m["destination"])] == i]

    from minirun.frontend import seccomp_profile

    # Docker's default profile unless unconfined/privileged; resolved against the caps.
    profile = seccomp_profile.for_container(sec.seccomp, proc["capabilities"]["bounding"],
                                            privileged)
    if profile:
        linux["seccomp"] = profile
    spec.setdefault("annotations", {})
    return spec


def _devices(linux, resources, devices):
    """--device: the node made in the container's /dev, and allowed in its cgroup."""
    for d in devices:
        st = os.stat(d.host_path)
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        linux.setdefault("devices", []).append({
            "path": d.container_path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid})
        if "w" not in d.permissions and "r" not in d.permissions:
            continue
        resources.setdefault("devices", []).append({
            "allow": True, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "access": d.permissions})


def _swap_accounting():
    """memsw files exist only with swap accounting (cgroup v1); v2 has memory.swap.max."""
    from minirun.cgroups import detect

    if detect() == "v2":
        return True
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
