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

from minirun.errors import MinirunError

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
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


def _home(rootfs, uid):
    from minirun.image.bundle import _db

    for row in _db(rootfs, "/etc/passwd"):
        if len(row) > 5 and row[2] == str(uid):
            return row[5] or "/"
    return "/root" if uid == 0 else "/"


def build(image, rootfs, *, cid, hostname, args=None, entrypoint=None, env=(), user=None,
          workdir=None, tty=False, open_stdin=False, read_only=False, mounts=(), tmpfs=(),
          etc_files=None, network_mode="bridge", memory=None, memory_swap=None, cpus=None,
          cpu_shares=None, pids_limit=None, ulimits=(), cap_add=(), cap_drop=(),
          privileged=False, security=None, init=False):
    """The config.json dict.  `mounts` are resolved volume/bind mounts:
    [{"Source": host path, "Destination", "RW", "Propagation"}]."""
    from minirun.image.bundle import image_spec

    security = security or {}
    env = [f"HOSTNAME={hostname}", *env]
    spec = image_spec(image.config, rootfs, args=args or None, entrypoint=entrypoint, env=env,
                      user=user, workdir=workdir, terminal=tty, hostname=hostname)
    proc = spec["process"]
    if not any(e.startswith("HOME=") for e in proc["env"]):
        proc["env"].append(f"HOME={_home(rootfs, proc['user']['uid'])}")
    proc["capabilities"] = capabilities(cap_add, cap_drop, privileged)
    proc["noNewPrivileges"] = bool(security.get("no_new_privileges"))
    rlimits = {r["type"]: r for r in proc.get("rlimits") or []}
    # Docker leaves the daemon's (high) open-files limit; runc's spec has 1024.
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 1048576 if hard == resource.RLIM_INFINITY else hard
    rlimits["RLIMIT_NOFILE"] = {"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard}
    for u in ulimits:
        kind = "RLIMIT_" + u["Name"].upper()
        rlimits[kind] = {"type": kind, "soft": u["Soft"], "hard": u["Hard"]}
    proc["rlimits"] = list(rlimits.values())
    if init:
        proc["args"] = [INIT_PATH, "--", *proc["args"]]
    spec["root"] = {"path": rootfs, "readonly": bool(read_only)}
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
    linux["namespaces"] = namespaces
    # cgroupsPath unset: /minirun/<id>, like Docker's /docker/<id>.

    resources = linux.setdefault("resources", {})
    if privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
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
    if cpus:
        cpu["quota"], cpu["period"] = cpus
    if cpu_shares:
        cpu["shares"] = cpu_shares
    if cpu:
        resources["cpu"] = cpu
    if pids_limit:
        resources["pids"] = {"limit": pids_limit}

    out = []
    for m in spec["mounts"]:
        if m["destination"] == "/sys" and privileged:
            m = dict(m, options=[o for o in m.get("options", []) if o != "ro"])
        out.append(m)
    for dest, src in (etc_files or {}).items():
        out.append({"destination": dest, "type": "bind", "source": src,
                    "options": ["rbind", "rprivate"]})
    for dest, opts in tmpfs:
        out.append({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts})
    for m in mounts:
        opts = ["rbind"] + (m.get("Propagation") or ["rprivate"])
        if not m.get("RW", True):
            opts.append("ro")
        out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                    "options": opts})
    if init:
        out.append({"destination": INIT_PATH, "type": "bind", "source": find_init(),
                    "options": ["bind", "ro", "nosuid", "nodev"]})
    # Later mounts must not be hidden by earlier ones at the same path: Docker
    # lets a user mount replace a default one (e.g. -v x:/dev/shm).
    seen = {}
    for i, m in enumerate(out):
        seen[os.path.normpath(m["destination"])] = i
    spec["mounts"] = [m for i, m in enumerate(out) if seen[os.path.normpath(m["destination"])] == i]

    if security.get("seccomp") and security["seccomp"] != "unconfined":
        import json

        with open(security["seccomp"]) as f:
            try:
                linux["seccomp"] = json.load(f)
            except ValueError as e:
                raise MinirunError(f"seccomp profile {security['seccomp']}: {e}") from None
    spec.setdefault("annotations", {})
    return spec


def _swap_accounting():
    """memsw files exist only with swap accounting (cgroup v1); v2 has memory.swap.max."""
    from minirun.cgroups import detect

    if detect() == "v2":
        return True
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
