"""The OCI bundle: loading and checking config.json, and the default spec.

Where each field of config.json is read and applied (FIELD_MAP below is the
same map as data; tests/runtime/test_spec_fields.py checks that every module
named there handles its field):

  root, mounts, linux.devices, linux.maskedPaths,
  linux.readonlyPaths, linux.rootfsPropagation        -> init/rootfs.py (devices: init/devices.py)
  hostname, domainname, linux.sysctl                  -> init/stage2.py (in the new UTS/net ns)
  process.user, capabilities, rlimits, env, cwd, args,
  process.noNewPrivileges                             -> init/process.py
  process.terminal, process.consoleSize               -> init/console.py
  process.oomScoreAdj                                 -> runtime/create.py reads it, runtime/spawn.py
                                                         writes /proc/PID/oom_score_adj
  linux.seccomp                                       -> linux/seccomp.py compiles it (at create),
                                                         init/process.py loads it just before exec
  linux.namespaces, linux.uidMappings/gidMappings     -> runtime/create.py plans them,
                                                         runtime/spawn.py makes them
  linux.resources, linux.cgroupsPath                  -> cgroups/v1.py, cgroups/v2.py (the path:
                                                         cgroups/__init__.py)
  hooks                                               -> hooks.py
  annotations                                         -> runtime/state.py (the state JSON)
"""
import os

from minirun import OCI_VERSION
from minirun import jsonio as json
from minirun.errors import ConfigError

# field of config.json -> the modules (under minirun/) that handle it
FIELD_MAP = {
    "root": ("init/rootfs.py",), "mounts": ("init/rootfs.py",),
    "linux.devices": ("init/rootfs.py", "init/devices.py"),
    "linux.maskedPaths": ("init/rootfs.py",), "linux.readonlyPaths": ("init/rootfs.py",),
    "linux.rootfsPropagation": ("init/rootfs.py",),
    "hostname": ("init/stage2.py",), "domainname": ("init/stage2.py",),
    "linux.sysctl": ("init/stage2.py",),
    "process.user": ("init/process.py",), "process.capabilities": ("init/process.py",),
    "process.rlimits": ("init/process.py",), "process.env": ("init/process.py",),
    "process.cwd": ("init/process.py",), "process.args": ("init/process.py",),
    "process.noNewPrivileges": ("init/process.py",),
    "process.terminal": ("init/console.py",), "process.consoleSize": ("init/console.py",),
    "process.oomScoreAdj": ("runtime/create.py", "runtime/spawn.py"),
    "linux.seccomp": ("linux/seccomp.py", "runtime/create.py", "init/process.py"),
    "linux.namespaces": ("runtime/create.py", "runtime/spawn.py"),
    "linux.uidMappings": ("runtime/create.py", "runtime/spawn.py"),
    "linux.gidMappings": ("runtime/create.py", "runtime/spawn.py"),
    "linux.resources": ("cgroups/v1.py", "cgroups/v2.py"),
    "linux.cgroupsPath": ("cgroups/__init__.py",),
    "hooks": ("hooks.py",), "annotations": ("runtime/state.py",),
}
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
_SUFFIX_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.+-")


def supported_version(version):
    """1.MINOR.PATCH with an optional -suffix (what `re` would say of
    ^1\\.\\d+\\.\\d+(-[0-9A-Za-z.+-]+)?$, without importing `re`)."""
    core, dash, suffix = version.partition("-")
    parts = core.split(".")
    return (len(parts) == 3 and parts[0] == "1" and all(p.isdecimal() for p in parts[1:])
            and (not dash or (bool(suffix) and _SUFFIX_CHARS.issuperset(suffix))))


def load_bundle_config(bundle):
    """Read and validate <bundle>/config.json; returns the parsed dict."""
    if not os.path.isdir(bundle):
        raise ConfigError(f"bundle {bundle} does not exist or is not a directory")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file or directory") from None
    except ValueError as e:  # json's JSONDecodeError, or bytes that are not UTF-8
        raise ConfigError(f"{path}: invalid JSON: {e}") from None
    validate(config)
    return config


def validate(config):
    if not isinstance(config, dict):
        raise ConfigError("config.json must hold a JSON object")
    version = config.get("ociVersion")
    if not isinstance(version, str) or not supported_version(version):
        raise ConfigError(f"unsupported ociVersion {version!r}: minirun implements 1.x")
    from minirun import spec_validate

    spec_validate.check_config(config)  # types, ranges, enumerations of every field
    root = config.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise ConfigError("root.path is required")
    process = config.get("process")
    if process is not None:
        validate_process(process)
    seen = set()
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        kind = ns.get("type")
        if kind not in NAMESPACE_TYPES:
            raise ConfigError(f"unknown namespace type {kind!r}")
        if kind in seen:
            raise ConfigError(f"duplicate namespace type {kind!r}")
        seen.add(kind)
    for m in config.get("mounts") or []:
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest:
            raise ConfigError("every mount needs a destination")
    validate_sysctls(config)
    # hooks: each phase's entries need an absolute path (spec_validate); a
    # phase minirun does not know is ignored, as runc ignores it.


# sysctls a container may set: only those its own namespaces isolate, or the
# write would change the host (runc has the same rule).
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_UTS_SYSCTLS = {"kernel.hostname", "kernel.domainname"}


def sysctl_namespace(key):
    """The namespace a sysctl belongs to ("ipc", "uts", "network"), or None when
    it is not namespaced (writing it in a container would change the host)."""
    name = key.replace("/", ".")
    if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
        return "ipc"
    if name in _UTS_SYSCTLS:
        return "uts"
    if name.startswith("net."):
        return "network"
    return None


def validate_sysctls(config):
    sysctls = (config.get("linux") or {}).get("sysctl") or {}
    if not sysctls:
        return
    own = {t for t, path in namespaces(config).items() if not path}
    joined = set(namespaces(config)) - own
    for key in sysctls:
        needed = sysctl_namespace(key)
        if needed is None:
            raise ConfigError(f"sysctl {key!r} is not namespaced: setting it would change the host")
        if needed not in own and needed not in joined:
            raise ConfigError(f"sysctl {key!r} needs the container's own {needed} namespace")


RLIMIT_NAMES = (
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
)


def validate_process(process):
    from minirun.linux import capnames as caps

    if not isinstance(process, dict):
        raise ConfigError("process must be an object")
    from minirun import spec_validate

    spec_validate.check_process(process)
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ConfigError("process.args must be a non-empty list of strings")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError(f"process.cwd {cwd!r} must be an absolute path")
    sets = process.get("capabilities") or {}
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        caps.parse(sets.get(kind), f"process.capabilities.{kind}")
    seen = set()
    for rl in process.get("rlimits") or []:
        kind = rl.get("type")
        if kind not in RLIMIT_NAMES:
            raise ConfigError(f"unknown rlimit type {kind!r}")
        if kind in seen:
            raise ConfigError(f"duplicate rlimit {kind!r}")
        seen.add(kind)
        if rl.get("soft", 0) > rl.get("hard", 0):
            raise ConfigError(f"{kind}: soft limit is greater than the hard limit")
    user = process.get("user") or {}
    for key in ("uid", "gid"):
        if not isinstance(user.get(key, 0), int):
            raise ConfigError(f"process.user.{key} must be a number")
    _warn_unraised_ambient(process.get("capabilities") or {})


_warned_ambient = set()


def _warn_unraised_ambient(sets):
    """The kernel raises an ambient capability only if it is permitted and
    inheritable; the others are left out (as runc does), with this warning
    (once per process, though `run` validates the config twice)."""
    def names(kind):
        return {n.upper() if n.upper().startswith("CAP_") else "CAP_" + n.upper()
                for n in sets.get(kind) or [] if isinstance(n, str)}

    left_out = tuple(sorted(names("ambient") - (names("permitted") & names("inheritable"))))
    if left_out and left_out not in _warned_ambient:
        _warned_ambient.add(left_out)
        from minirun import log

        log.warning(f"process.capabilities.ambient: not raising {', '.join(left_out)}: an "
                    f"ambient capability must also be permitted and inheritable")


def namespaces(config):
    """{type: path-or-None} for the namespaces in linux.namespaces."""
    return {ns["type"]: ns.get("path") or None
            for ns in (config.get("linux") or {}).get("namespaces") or []}


def rootfs_path(bundle, config):
    path = config["root"]["path"]
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(bundle, path))


def default_spec(rootless=False):
    """The config.json `minirun spec` writes: runc's defaults, a shell as process."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            # runc's spec also lists them as ambient, which the kernel refuses
            # without inheritable (both runc and minirun end with none): left out.
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "minirun",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                  "cgroup")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
        spec["linux"].pop("resources")
    return spec
