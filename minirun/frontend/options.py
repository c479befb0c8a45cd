"""Flag values of `run`/`create` -> validated pieces of a container (pure functions).

Everything is checked here, before anything is made, so a bad flag costs
nothing and leaves nothing behind (exit 125 from `run`).  Units and spellings
follow Docker's: sizes "64m"/"1g" (binary units), durations "1m30s"/"500ms",
"--restart on-failure:3", "--ulimit nofile=1024:2048", "-v SRC:DST[:ro]".
"""
import ipaddress
import os
import re
import signal as _signal
import stat

from minirun.errors import BadOption
from minirun.frontend.runopts import Device, Mount

INT64_MAX = (1 << 63) - 1


# --- sizes, durations, numbers ---------------------------------------------------
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text, what="size", limit=False):
    """'64m' -> 67108864 (Docker's RAMInBytes: binary units, optional b).
    A value that does not fit in the kernel's int64 is an error, never wrapped;
    limit=True also refuses 0 and negative values."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise BadOption(f"invalid {what} {text!r}: use a number with an optional unit (b, k, m, g)")
    number, unit = m.group(1), _UNITS[m.group(2).lower()]
    if "." in number:
        from fractions import Fraction

        value = int(Fraction(number) * unit)
    else:
        value = int(number) * unit
    if value > INT64_MAX:
        raise BadOption(f"invalid {what} {text!r}: value out of range (at most 8 EiB)")
    if limit and value <= 0:
        raise BadOption(f"invalid {what} {text!r}: must be positive")
    return value


def parse_memory_swap(text):
    """--memory-swap: a size, or -1 (unlimited swap); None when not given."""
    if text is None or text == "":
        return None
    if str(text).strip() == "-1":
        return -1
    return parse_size(text, "--memory-swap")


def check_int(value, flag, low, high):
    """An integer flag within [low, high] (None passes through)."""
    if value is None:
        return None
    if not low <= value <= high:
        raise BadOption(f"invalid {flag} {value}: must be between {low} and {high}")
    return value


_DUR_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text, what="duration"):
    """Go's time.ParseDuration subset: '30s', '1m30s', '500ms'; a bare number is seconds."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DUR_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise BadOption(f"invalid {what} {text!r}: use e.g. 30s, 1m30s, 500ms")
    return total


def parse_cpus(text):
    """--cpus 1.5 -> (quota, period) in microseconds with Docker's 100ms period."""
    try:
        cpus = float(text)
    except ValueError:
        raise BadOption(f"invalid --cpus {text!r}: use a number like 1.5") from None
    if cpus <= 0 or cpus > (os.cpu_count() or 1):
        raise BadOption(f"range of CPUs is from 0.01 to {os.cpu_count() or 1}.00, as there are "
                        f"only {os.cpu_count() or 1} CPUs available")
    period = 100000
    return max(1000, int(cpus * period)), period


def parse_signal(value):
    text = str(value).strip().upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < _signal.NSIG:
            return num
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        if name in _signal.Signals.__members__:
            return int(_signal.Signals[name])
    raise BadOption(f"invalid signal: {value}")


# --- restart policy ------------------------------------------------------------
RESTART_NAMES = ("no", "on-failure", "always", "unless-stopped")


def parse_restart(text):
    name, _, count = (text or "no").partition(":")
    if name not in RESTART_NAMES:
        raise BadOption(f"invalid restart policy {text!r}: use no, on-failure[:N], always or "
                        f"unless-stopped")
    if count and name != "on-failure":
        raise BadOption(f"invalid restart policy {text!r}: maximum retry count can only be "
                        f"used with 'on-failure'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise BadOption(f"invalid restart policy {text!r}: bad retry count") from None
    if retries < 0:
        raise BadOption(f"invalid restart policy {text!r}: negative retry count")
    return {"Name": name, "MaximumRetryCount": retries}


# --- environment -----------------------------------------------------------------
def _env_item(item, where):
    key, eq, value = item.partition("=")
    if not key or any(c.isspace() for c in key):
        raise BadOption(f"invalid environment variable {item!r} ({where})")
    if eq:
        return f"{key}={value}"
    # `-e NAME` passes the host's value, and nothing if the host has none.
    return f"{key}={os.environ[key]}" if key in os.environ else None


def parse_env_file(path):
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise BadOption(f"open {path}: {e.strerror.lower()}") from None
    out = []
    for n, line in enumerate(lines, 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        item = _env_item(line, f"{path} line {n}")
        if item:
            out.append(item)
    return out


def parse_env(env_files=(), env=()):
    """--env-file first, then -e (later wins, as in Docker)."""
    out = []
    for path in env_files:
        out += parse_env_file(path)
    for item in env:
        item = _env_item(item, "-e")
        if item:
            out.append(item)
    return out


# --- mounts ----------------------------------------------------------------------
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_MODES = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared",
          "slave", "rslave"}


def parse_volume(spec):
    """-v: HOSTPATH:CTRPATH[:opts], NAME:CTRPATH[:opts] or CTRPATH (anonymous).
    -> {"Type": bind|volume, "Source", "Destination", "RW", "Options": [...]}"""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        if parts[1] in _MODES or "," in parts[1]:
            raise BadOption(f"invalid volume specification: {spec!r}")
        src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise BadOption(f"invalid volume specification: {spec!r}")
    if not dst.startswith("/"):
        raise BadOption(f"invalid volume specification: {spec!r}: the container path must be "
                        f"absolute")
    if os.path.normpath(dst) == "/":
        raise BadOption(f"invalid volume specification: {spec!r}: destination can't be '/'")
    opts = [o for o in mode.split(",") if o]
    bad = [o for o in opts if o not in _MODES]
    if bad:
        raise BadOption(f"invalid mode {bad[0]!r} in volume specification {spec!r}")
    common = dict(destination=os.path.normpath(dst), read_only="ro" in opts,
                  propagation=tuple(o for o in opts if o in _PROPAGATIONS),
                  nocopy="nocopy" in opts)
    if not src:
        return Mount("volume", **common)
    if src.startswith("/") or src.startswith("."):
        return Mount("bind", source=os.path.abspath(src), **common)
    _check_volume_name(src)
    return Mount("volume", name=src, **common)


_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def _check_volume_name(name):
    if not VOLUME_NAME_RE.match(name):
        raise BadOption(f"invalid volume name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+ "
                        f"(a host path must be absolute)")


def _tmpfs_options(items, spec):
    out = ["nosuid", "nodev", "noexec"]
    for o in items:
        if o.startswith("size="):
            o = f"size={parse_size(o[5:], 'tmpfs size', limit=True)}"
        elif o.startswith("mode="):
            if not re.fullmatch(r"[0-7]{1,4}", o[5:]):
                raise BadOption(f"invalid tmpfs mode in {spec!r}: use an octal mode like 1777")
        out.append(o)
    return tuple(out)


def parse_tmpfs(spec):
    """--tmpfs /run[:size=64m,mode=1777] -> a tmpfs Mount."""
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise BadOption(f"invalid --tmpfs {spec!r}: the path must be absolute")
    return Mount("tmpfs", os.path.normpath(dst),
                 tmpfs_options=_tmpfs_options(opts.split(",") if opts else [], spec))


_MOUNT_KEYS = {"type", "source", "src", "target", "destination", "dst", "readonly", "ro",
               "bind-propagation", "volume-nocopy", "tmpfs-size", "tmpfs-mode",
               "consistency", "volume-driver"}


def parse_mount(spec):
    """--mount type=bind|volume|tmpfs,source=..,target=..[,readonly][,...] (Docker's CSV form)."""
    fields = {}
    for item in spec.split(","):
        key, eq, value = item.strip().partition("=")
        key = key.lower()
        if key not in _MOUNT_KEYS:
            raise BadOption(f"invalid field {key!r} must be a key=value pair in --mount {spec!r}")
        if not eq and key not in ("readonly", "ro", "volume-nocopy"):
            raise BadOption(f"invalid field {item!r} must be a key=value pair in --mount {spec!r}")
        fields[key] = value if eq else "true"
    kind = fields.get("type", "volume")
    dst = fields.get("target") or fields.get("destination") or fields.get("dst")
    src = fields.get("source") or fields.get("src") or ""
    if kind not in ("bind", "volume", "tmpfs"):
        raise BadOption(f"invalid mount type {kind!r} in --mount {spec!r}: use bind, volume "
                        f"or tmpfs")
    if not dst:
        raise BadOption(f"invalid --mount {spec!r}: target is required")
    if not dst.startswith("/"):
        raise BadOption(f"invalid --mount {spec!r}: the target must be an absolute path")
    ro_text = fields.get("readonly", fields.get("ro", "false")).lower()
    if ro_text not in ("true", "false", "1", "0"):
        raise BadOption(f"invalid value for readonly in --mount {spec!r}: {ro_text}")
    read_only = ro_text in ("true", "1")
    dst = os.path.normpath(dst)
    if kind == "tmpfs":
        if src:
            raise BadOption(f"invalid --mount {spec!r}: source is not allowed for tmpfs")
        items = []
        if "tmpfs-size" in fields:
            items.append(f"size={fields['tmpfs-size']}")
        if "tmpfs-mode" in fields:
            items.append(f"mode={fields['tmpfs-mode']}")
        opts = _tmpfs_options(items, spec) + (("ro",) if read_only else ())
        return Mount("tmpfs", dst, tmpfs_options=opts)
    propagation = fields.get("bind-propagation")
    if propagation and (kind != "bind" or propagation not in _PROPAGATIONS):
        raise BadOption(f"invalid bind-propagation in --mount {spec!r}")
    if kind == "bind":
        if not src:
            raise BadOption(f"invalid --mount {spec!r}: source is required for a bind mount")
        src = os.path.abspath(src)
        if not os.path.exists(src):
            # unlike -v, --mount does not create a missing host path
            raise BadOption(f"invalid mount config for type \"bind\": bind source path does "
                            f"not exist: {src}")
        return Mount("bind", dst, source=src, read_only=read_only,
                     propagation=(propagation,) if propagation else ())
    if src:
        _check_volume_name(src)
    return Mount("volume", dst, name=src, read_only=read_only,
                 nocopy=fields.get("volume-nocopy", "false") in ("true", "1"))


def check_unique_destinations(mounts):
    seen = set()
    for m in mounts:
        if m.destination in seen:
            raise BadOption(f"Duplicate mount point: {m.destination}")
        seen.add(m.destination)


# --- devices, hosts, dns, ports ---------------------------------------------------
def parse_device(spec):
    """--device /dev/x[:/dev/y[:rwm]]: the host node must exist (char or block)."""
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise BadOption(f"invalid device specification: {spec}")
    host = parts[0]
    ctr = parts[1] if len(parts) > 1 and parts[1] else host
    perms = parts[2] if len(parts) > 2 else "rwm"
    if len(parts) == 2 and re.fullmatch(r"[rwm]{1,3}", parts[1]):
        ctr, perms = host, parts[1]
    if not re.fullmatch(r"[rwm]{1,3}", perms) or not ctr.startswith("/"):
        raise BadOption(f"invalid device specification: {spec}")
    try:
        st = os.stat(host)
    except OSError as e:
        raise BadOption(f"error gathering device information while adding custom device "
                        f"{host!r}: {e.strerror.lower()}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise BadOption(f"error gathering device information while adding custom device "
                        f"{host!r}: not a device node")
    return Device(host, os.path.normpath(ctr), perms)


def parse_ip(text, flag):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise BadOption(f"invalid argument {text!r} for {flag}: not an IP address") from None


def parse_add_host(spec):
    """--add-host name:ip (or name=ip) -> (name, ip)."""
    sep = "=" if "=" in spec else ":"
    name, _, ip = spec.partition(sep)
    if not name or not ip or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", name):
        raise BadOption(f"invalid argument {spec!r} for --add-host: use HOST:IP")
    if ip == "host-gateway":
        return name, ip
    return name, parse_ip(ip.strip("[]"), "--add-host")


def parse_expose(spec):
    """--expose 80, 80/udp -> '80/tcp'."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadOption(f"invalid range format for --expose: {spec}")
    return f"{int(port)}/{proto}"


def parse_userns(mode):
    """--userns: "" or "host" (minirun runs no user namespace for front-end containers)."""
    if mode in (None, "", "host"):
        return mode or ""
    raise BadOption(f"invalid --userns {mode!r}: only 'host' is supported")


def check_workdir(path):
    if path is not None and path != "" and not path.startswith("/"):
        raise BadOption(f"the working directory {path!r} is invalid, it needs to be an absolute "
                        f"path")
    return path or None


def parse_labels(label_files=(), labels=()):
    """--label-file first, then -l (later wins); KEY or KEY=VALUE."""
    out = {}
    items = []
    for path in label_files:
        try:
            with open(path) as f:
                items += [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as e:
            raise BadOption(f"open {path}: {e.strerror.lower()}") from None
    for item in [*items, *labels]:
        key, _, value = item.partition("=")
        if not key:
            raise BadOption(f"invalid label {item!r}: the key is empty")
        out[key] = value
    return out


# --- limits ----------------------------------------------------------------------
def parse_ulimit(spec):
    """nofile=1024[:2048] -> {"Name", "Soft", "Hard"}."""
    import resource

    name, eq, values = spec.partition("=")
    if not eq or not values:
        raise BadOption(f"invalid ulimit argument: {spec}")
    if not hasattr(resource, "RLIMIT_" + name.upper()):
        raise BadOption(f"invalid ulimit type: {name}")
    soft, _, hard = values.partition(":")
    try:
        soft_v = int(soft)
        hard_v = int(hard) if hard else soft_v
    except ValueError:
        raise BadOption(f"invalid ulimit argument: {spec}") from None
    if soft_v > hard_v:
        raise BadOption(f"ulimit soft limit must be less than or equal to hard limit: "
                        f"{soft_v} > {hard_v}")
    return {"Name": name.lower(), "Soft": soft_v, "Hard": hard_v}


def parse_sysctl(spec):
    """--sysctl NAME=VALUE -> (name, value); only namespaced ones (Docker's rule)."""
    from minirun.spec import sysctl_namespace

    name, eq, value = spec.partition("=")
    name = name.strip()
    if not eq or not name:
        raise BadOption(f"invalid argument {spec!r} for --sysctl: expected NAME=VALUE")
    if sysctl_namespace(name) is None:
        raise BadOption(f"invalid argument {spec!r} for --sysctl: sysctl {name!r} is not "
                        f"whitelisted (not namespaced)")
    return name, value


def parse_caps(names, what):
    """cap names with or without CAP_, any case, or ALL -> ['CAP_X', ...] / ['ALL']."""
    from minirun.linux import caps

    out = []
    for name in names:
        for part in name.split(","):
            part = part.strip().upper()
            if not part:
                continue
            if part == "ALL":
                out.append("ALL")
                continue
            full = part if part.startswith("CAP_") else "CAP_" + part
            if full not in caps.CAP_NUMBERS:
                raise BadOption(f"invalid capability in {what}: {name}")
            out.append(full)
    return out


def parse_security_opts(opts):
    """-> {"no_new_privileges": bool, "seccomp": None|"unconfined"|"builtin"|profile JSON}."""
    out = {"no_new_privileges": False, "seccomp": None}
    for opt in opts:
        # Docker also takes the older "key:value" spelling (seccomp:unconfined).
        key, sep, value = (opt if "=" in opt else opt.replace(":", "=", 1)).partition("=")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise BadOption(f"invalid --security-opt {opt!r}")
            out["no_new_privileges"] = value != "false"
        elif key == "seccomp" and sep:
            from minirun.frontend import seccomp_profile

            out["seccomp"] = seccomp_profile.option_value(value)  # a file is read and checked
        elif key in ("label", "apparmor"):
            continue  # no LSMs here; accepted like Docker on a host without them
        else:
            raise BadOption(f"invalid --security-opt: {opt!r}")
    return out


def parse_log_opts(opts):
    """--log-opt max-size=10m --log-opt max-file=3 (the json-file driver's options)."""
    out = {"max-size": "10m", "max-file": "3"}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or key not in ("max-size", "max-file"):
            raise BadOption(f"unknown log opt {opt!r} for the json-file log driver "
                            f"(max-size, max-file)")
        out[key] = value
    size = parse_size(out["max-size"], "max-size")
    try:
        files = int(out["max-file"])
    except ValueError:
        files = 0
    if size < 1 or files < 1:
        raise BadOption("max-size and max-file must be positive")
    return {"max-size": size, "max-file": files}


# --- health check ----------------------------------------------------------------
def healthcheck(image_config, cmd=None, interval=None, timeout=None, retries=None,
                start_period=None, disabled=False):
    """The image's HEALTHCHECK overridden by the --health-* flags; None when there
    is none.  Durations in seconds (the image has nanoseconds)."""
    if disabled:
        return None
    base = dict((image_config.get("config") or {}).get("Healthcheck") or {})
    test = base.get("Test") or []
    if cmd is not None:
        test = ["CMD-SHELL", cmd] if cmd else []
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise BadOption(f"invalid health check test {test!r}")

    def secs(flag, key, default):
        if flag is not None:
            value = parse_duration(flag, f"--health-{key.lower()}")
            if value < 0:
                raise BadOption(f"--health-{key.lower()} cannot be negative")
            return value
        ns = base.get(key) or 0
        return ns / 1e9 if ns else default

    out = {"Test": test, "Interval": secs(interval, "Interval", 30.0),
           "Timeout": secs(timeout, "Timeout", 30.0),
           "StartPeriod": secs(start_period, "StartPeriod", 0.0),
           "Retries": retries if retries is not None else (base.get("Retries") or 3)}
    if out["Interval"] <= 0 or out["Timeout"] <= 0:
        raise BadOption("health check interval and timeout must be positive")
    if out["Retries"] < 1:
        raise BadOption("--health-retries must be at least 1")
    return out
