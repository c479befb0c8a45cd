"""Flag values of `run`/`create` -> validated pieces of a container (pure functions).

Everything is checked here, before anything is made, so a bad flag costs
nothing and leaves nothing behind (exit 125 from `run`).  Units and spellings
follow Docker's: sizes "64m"/"1g" (binary units), durations "1m30s"/"500ms",
"--restart on-failure:3", "--ulimit nofile=1024:2048", "-v SRC:DST[:ro]".
"""
import os
import re
import signal as _signal

from minirun.errors import MinirunError


class BadOption(MinirunError):
    exit_code = 125


# --- sizes, durations, numbers ---------------------------------------------------
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text, what="size"):
    """'64m' -> 67108864 (Docker's RAMInBytes: binary units, optional b)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise BadOption(f"invalid {what} {text!r}: use a number with an optional unit (b, k, m, g)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


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
    rw = "ro" not in opts
    propagation = [o for o in opts if o in ("private", "rprivate", "shared", "rshared",
                                            "slave", "rslave")]
    mount = {"Destination": os.path.normpath(dst), "RW": rw, "Propagation": propagation,
             "NoCopy": "nocopy" in opts}
    if not src:
        return dict(mount, Type="volume", Name="", Source="")
    if src.startswith("/") or src.startswith("."):
        return dict(mount, Type="bind", Source=os.path.abspath(src))
    if not VOLUME_NAME_RE.match(src):
        raise BadOption(f"invalid volume name {src!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+ "
                        f"(a host path must be absolute)")
    return dict(mount, Type="volume", Name=src, Source="")


def parse_tmpfs(spec):
    """--tmpfs /run[:size=64m,mode=1777] -> (destination, [options])."""
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise BadOption(f"invalid --tmpfs {spec!r}: the path must be absolute")
    out = ["nosuid", "nodev", "noexec"]
    for o in (opts.split(",") if opts else []):
        if o.startswith("size="):
            o = f"size={parse_size(o[5:], 'tmpfs size')}"
        out.append(o)
    return os.path.normpath(dst), out


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
    """-> {"no_new_privileges": bool, "seccomp": None|"unconfined"|path}."""
    out = {"no_new_privileges": False, "seccomp": None}
    for opt in opts:
        key, sep, value = opt.replace(":", "=", 1).partition("=") if opt.startswith(
            "no-new-privileges:") else opt.partition("=")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise BadOption(f"invalid --security-opt {opt!r}")
            out["no_new_privileges"] = value != "false"
        elif key == "seccomp" and sep:
            if value != "unconfined" and not os.path.isfile(value):
                raise BadOption(f"opening seccomp profile ({value}) failed: no such file")
            out["seccomp"] = value
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
