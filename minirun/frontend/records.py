"""Front-end containers on disk, under the image store.

    <store>/frontend/containers/<id>/container.json   the record (Docker's inspect shape)
                                    /lock             flock for record updates
                                    /bundle/config.json  the OCI config the runtime gets
                                    /container-log.json  stdout/stderr, JSON lines (+ .1, .2)
    <store>/frontend/names/<name> -> <id>             a symlink: the name is taken
    <store>/containers/<id>/                          the rootfs (image/overlay.py)
    <store>/volumes/<name>/_data                      named volumes (volumes.py)

The record is the container between runs: it lives in the store (on disk), not
under --root (a tmpfs), so a stopped container survives a reboot as "exited".
The runtime's own state (<root>/<id>) exists only while the container runs.
Names are reserved with symlink(2), which fails if the name exists: two
`run --name web` at once cannot both win.
"""
import errno
import os

from minirun.errors import ContainerNotFound, MinirunError
from minirun.frontend import recordfile
# Names and ids are checked without `re` (ps, the workers and run -d import
# this module; `re` and its `enum` cost more than their own work).
from minirun.frontend.lookup import is_id, is_name


class Conflict(MinirunError):
    pass


def default_store():
    """image/store.py's default_root(), without importing the store (hashlib, ...)."""
    from minirun.frontend.lookup import STORE_DEFAULT, STORE_ENV

    return os.environ.get(STORE_ENV) or STORE_DEFAULT


class Frontend:
    """Where the front end keeps its containers: a store root and a runtime --root."""

    def __init__(self, store_root=None, runtime_root="/run/minirun"):
        self.store_root = os.path.abspath(store_root or default_store())
        self.root = os.path.abspath(runtime_root)
        self.base = os.path.join(self.store_root, "frontend")
        self.containers_dir = os.path.join(self.base, "containers")
        self.names_dir = os.path.join(self.base, "names")
        self.volumes_dir = os.path.join(self.store_root, "volumes")

    def ensure(self):
        for d in (self.containers_dir, self.names_dir, self.volumes_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
        return self

    def image_store(self):
        from minirun.image.store import Store

        return Store(self.store_root)

    # --- ids and names ---------------------------------------------------
    def record_dir(self, cid):
        return os.path.join(self.containers_dir, cid)

    def new_id(self):
        import secrets

        while True:
            cid = secrets.token_hex(32)
            # Docker avoids all-digit short ids (they look like numbers).
            if not cid[:12].isdigit() and not os.path.exists(self.record_dir(cid)):
                return cid

    def reserve_name(self, name, cid):
        """Claim `name` for `cid`, or raise Conflict (exit 125 in `run`)."""
        if not is_name(name or ""):
            raise MinirunError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                               f"are allowed")
        self.ensure()
        try:
            os.symlink(cid, os.path.join(self.names_dir, name))
        except FileExistsError:
            owner = self.name_owner(name) or "?"
            if owner != "?" and not os.path.isdir(self.record_dir(owner)):
                # A crash between reserve and record: the name is free again.
                self.release_name(name, owner)
                return self.reserve_name(name, cid)
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                           f'"{owner}". You have to remove (or rename) that container to be able '
                           f'to reuse that name.') from None

    def name_owner(self, name):
        try:
            return os.readlink(os.path.join(self.names_dir, name))
        except OSError:
            return None

    def release_name(self, name, cid):
        if name and self.name_owner(name) == cid:
            try:
                os.unlink(os.path.join(self.names_dir, name))
            except FileNotFoundError:
                pass

    def generate_name(self, cid):
        """adjective_surname, as Docker does; retried until free."""
        import secrets

        for attempt in range(100):
            name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
            if attempt > 10:
                name += str(secrets.randbelow(100))
            try:
                self.reserve_name(name, cid)
                return name
            except Conflict:
                continue
        raise MinirunError("could not generate a free container name")

    # --- records ---------------------------------------------------------
    def ids(self):
        try:
            return sorted(n for n in os.listdir(self.containers_dir) if is_id(n))
        except FileNotFoundError:
            return []

    def load(self, cid):
        rec = recordfile.read(self.record_dir(cid))
        if rec is None:
            raise ContainerNotFound.docker(cid)
        return rec

    def records(self):
        """Every record, newest first (as `ps` lists them)."""
        out = []
        for cid in self.ids():
            rec = recordfile.read(self.record_dir(cid))
            if rec is not None:
                out.append(rec)
        out.sort(key=lambda r: r.get("Created", ""), reverse=True)
        return out

    def resolve(self, ref):
        """A full id for a container given by full id, name or unique id prefix."""
        ref = (ref or "").lstrip("/")
        if not ref:
            raise ContainerNotFound.docker(ref)
        if is_id(ref) and os.path.isdir(self.record_dir(ref)):
            return ref
        owner = self.name_owner(ref) if is_name(ref) else None
        if owner and os.path.isdir(self.record_dir(owner)):
            return owner
        if is_id(ref, range(1, 64)):
            hits = [cid for cid in self.ids() if cid.startswith(ref)]
            if len(hits) > 1:
                raise MinirunError(f"multiple containers match the id prefix {ref}: "
                                   f"be more specific")
            if hits:
                return hits[0]
        raise ContainerNotFound.docker(ref)

    def find(self, ref):
        """(id, record) for a reference, or ContainerNotFound."""
        cid = self.resolve(ref)
        return cid, self.load(cid)

    def exists(self, ref):
        try:
            self.resolve(ref)
            return True
        except MinirunError:
            return False

    def remove_record(self, cid, name=None):
        """Remove the record directory (under its lock) and free the name."""
        import shutil

        d = self.record_dir(cid)
        try:
            with recordfile.locked(d):
                shutil.rmtree(d, ignore_errors=True)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
        self.release_name(name, cid)


# --- the record document ----------------------------------------------------
ZERO_TIME = "0001-01-01T00:00:00Z"


def new_record(fe, cid, name, image, opts, *, spec, rootfs, bundle_dir, hostname, etc, mounts,
               network, ports, health):
    """A new container's record: Docker's inspect document plus minirun's own
    fields (Bundle, Rootfs, Healthcheck, ...).  `opts` is the RunOptions."""
    import signal

    proc = spec["process"]
    cfg = image.config.get("config") or {}
    lim, sec = opts.limits, opts.security
    state = {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
             "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
             "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}
    if health:
        state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    directory = fe.record_dir(cid)
    exposed = dict(cfg.get("ExposedPorts") or {})
    exposed.update({e: {} for e in opts.expose})
    exposed.update({f"{p.container_port}/{p.proto}": {} for p in ports})
    entrypoint = cfg.get("Entrypoint") or None
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else None
    if opts.command:
        cmd = list(opts.command)
    else:
        cmd = list(cfg.get("Cmd") or []) if opts.entrypoint is None else None
    return {
        "Id": cid,
        "Created": recordfile.timestamp(),
        "Path": proc["args"][0],
        "Args": proc["args"][1:],
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
            "PortBindings": [p.spec() for p in ports],
            "PublishAllPorts": opts.publish_all,
            "RestartPolicy": opts.restart,
            "AutoRemove": bool(opts.auto_remove),
            "LogConfig": {"Type": "json-file", "Config": dict(opts.log_config)},
            "Tmpfs": {m.destination: ",".join(m.tmpfs_options) for m in opts.tmpfs()},
            "Memory": lim.memory or 0,
            "MemorySwap": lim.memory_swap or 0,
            "NanoCpus": int(lim.cpus[0] / lim.cpus[1] * 1e9) if lim.cpus else 0,
            "CpuShares": lim.cpu_shares or 0,
            "PidsLimit": lim.pids_limit,
            "ShmSize": lim.shm_size or 64 << 20,
            "Ulimits": lim.ulimits,
            "CapAdd": sec.cap_add,
            "CapDrop": sec.cap_drop,
            "Privileged": sec.privileged,
            "ReadonlyRootfs": opts.read_only,
            "SecurityOpt": sec.security_opts(),
            "UsernsMode": sec.userns,
            "Devices": [{"PathOnHost": d.host_path, "PathInContainer": d.container_path,
                         "CgroupPermissions": d.permissions} for d in opts.devices],
            "ExtraHosts": [f"{n}:{ip}" for n, ip in opts.add_hosts],
            "Dns": list(opts.dns),
            "DnsSearch": list(opts.dns_search),
            "DnsOptions": list(opts.dns_options),
            "Sysctls": dict(opts.sysctls),
            "Init": opts.init,
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
            "User": opts.user if opts.user is not None else (cfg.get("User") or ""),
            "Tty": bool(opts.tty),
            "OpenStdin": bool(opts.interactive),
            "StdinOnce": bool(opts.interactive),
            "Env": proc["env"],
            "Cmd": cmd,
            "Image": opts.image,
            "WorkingDir": proc.get("cwd", "/"),
            "Entrypoint": entrypoint,
            "Labels": dict(cfg.get("Labels") or {}, **opts.labels),
            "StopSignal": (signal.Signals(opts.stop_signal).name if opts.stop_signal
                           else cfg.get("StopSignal")) or None,
            "StopTimeout": opts.stop_timeout,
            "Healthcheck": _docker_health(health),
            "ExposedPorts": exposed,
        },
        "NetworkSettings": {"Networks": {}, "Ports": {}, "IPAddress": ""},
        # minirun's own fields
        "Healthcheck": health,
        "NetworkAliases": list(opts.network_aliases),
        "ExtraNetworks": [[n, list(a)] for n, a in opts.extra_networks],
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


# A short version of Docker's name generator lists.
_LEFT = ("admiring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "brave",
         "busy", "charming", "clever", "cool", "compassionate", "dazzling", "eager", "elegant",
         "epic", "festive", "focused", "friendly", "gallant", "gifted", "happy", "hopeful",
         "jolly", "keen", "kind", "loving", "modest", "nifty", "nostalgic", "optimistic",
         "peaceful", "practical", "quirky", "relaxed", "serene", "sharp", "stoic", "tender",
         "trusting", "upbeat", "vibrant", "wizardly", "youthful", "zealous")
_RIGHT = ("albattani", "archimedes", "babbage", "bell", "bohr", "curie", "darwin", "dijkstra",
          "einstein", "euclid", "euler", "fermat", "feynman", "galileo", "gauss", "goldberg",
          "hamilton", "hopper", "hypatia", "johnson", "kepler", "knuth", "lamport", "liskov",
          "lovelace", "mccarthy", "meitner", "newton", "noether", "pascal", "pike", "ritchie",
          "shannon", "thompson", "torvalds", "turing", "wozniak", "yalow")
