"""Image config -> OCI runtime config (image-spec conversion.md).

    Entrypoint + Cmd   -> process.args      (args given by the user replace Cmd)
    Env                -> process.env       (PATH added if the image has none)
    WorkingDir         -> process.cwd
    User               -> process.user      (names looked up in the image's
                                             /etc/passwd and /etc/group, read
                                             through openat2(RESOLVE_IN_ROOT))
    Labels, StopSignal, ExposedPorts, os/arch, created, author -> annotations
    Volumes            -> annotation minirun.image.volumes (the front end makes them)
"""
import json
import os
import shutil
import stat

from minirun.errors import MinirunError
from minirun.linux.paths import open_in_root
from minirun.spec import default_spec

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_DB = 4 << 20


def _read_in_root(rootfs, path):
    """Contents of a file inside rootfs, resolved as if chrooted; None if absent."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb") as f:
            fd = None
            return f.read(_MAX_DB).decode("utf-8", "replace")
    finally:
        if fd is not None:
            os.close(fd)


def read_db(rootfs, path):
    text = _read_in_root(rootfs, path) if rootfs else None
    rows = []
    for line in (text or "").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def home_dir(rootfs, uid):
    """The home directory of `uid` in the image's /etc/passwd (Docker's HOME default)."""
    for row in read_db(rootfs, "/etc/passwd"):
        if len(row) > 5 and row[2] == str(uid):
            return row[5] or "/"
    return "/root" if uid == 0 else "/"


def resolve_user(rootfs, user):
    """'name', 'uid', 'name:group', 'uid:gid' -> {"uid", "gid", "additionalGids"?}"""
    user = (user or "").strip()
    if not user:
        return {"uid": 0, "gid": 0}
    uname, _, gname = user.partition(":")
    passwd = read_db(rootfs, "/etc/passwd")
    group = read_db(rootfs, "/etc/group")
    entry = None
    if uname.isdigit():
        uid = int(uname)
        entry = next((r for r in passwd if len(r) > 3 and r[2] == uname), None)
    else:
        entry = next((r for r in passwd if len(r) > 3 and r[0] == uname), None)
        if entry is None:
            raise MinirunError(f"unable to find user {uname}: no matching entries in passwd file")
        uid = int(entry[2])
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    if gname:
        if gname.isdigit():
            gid = int(gname)
        else:
            g = next((r for r in group if len(r) > 2 and r[0] == gname), None)
            if g is None:
                raise MinirunError(f"unable to find group {gname}: no matching entries in "
                                   f"group file")
            gid = int(g[2])
    out = {"uid": uid, "gid": gid}
    if entry and not gname:
        name = entry[0]
        extra = sorted({int(r[2]) for r in group
                        if len(r) > 3 and r[2].isdigit() and name in r[3].split(",")} - {gid})
        if extra:
            out["additionalGids"] = extra
    return out


# The image config fields a bundle is made from, by the JSON type the image
# spec gives them; null means absent.  A wrong type is the image's mistake:
# one line naming the field, not a traceback (or a Cmd "ls" run as l, s).
_STRINGS, _STRING, _OBJECT, _STRING_MAP = "an array of strings", "a string", "an object", \
    "an object of strings"
_RUN_FIELDS = {"Entrypoint": _STRINGS, "Cmd": _STRINGS, "Env": _STRINGS, "Shell": _STRINGS,
               "OnBuild": _STRINGS, "WorkingDir": _STRING, "User": _STRING,
               "StopSignal": _STRING, "Labels": _STRING_MAP, "ExposedPorts": _OBJECT,
               "Volumes": _OBJECT, "Healthcheck": _OBJECT}
_TOP_FIELDS = {"os": _STRING, "architecture": _STRING, "variant": _STRING,
               "author": _STRING, "created": _STRING, "config": _OBJECT}
_HEALTH_FIELDS = {"Test": _STRINGS}
_JSON_TYPES = {str: "a string", bool: "a boolean", int: "a number", float: "a number",
               list: "an array", dict: "an object"}


def _type_ok(value, want):
    if want == _STRING:
        return isinstance(value, str)
    if want == _STRINGS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if want == _STRING_MAP:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, dict)


def _check_fields(doc, fields, where):
    for key, want in fields.items():
        value = doc.get(key)
        if value is not None and not _type_ok(value, want):
            got = _JSON_TYPES.get(type(value), type(value).__name__)
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise MinirunError(f"invalid image config: {where}{key} must be {want}, "
                               f"not {got} ({shown})")


# Docker reads these as a "strslice": a plain string is a list of one.
_STRSLICE_FIELDS = ("Entrypoint", "Cmd", "Shell")


def check_image_config(image_config):
    """Raise MinirunError (one line) for a field of a type the image spec does
    not allow; the front end calls this before making anything.  A string
    Entrypoint/Cmd/Shell becomes a list of one, in place, as Docker reads it."""
    if not isinstance(image_config, dict):
        raise MinirunError("invalid image config: not a JSON object")
    _check_fields(image_config, _TOP_FIELDS, "")
    cfg = image_config.get("config") or {}
    if isinstance(cfg, dict):
        for key in _STRSLICE_FIELDS:
            if isinstance(cfg.get(key), str):
                cfg[key] = [cfg[key]]
    _check_fields(cfg, _RUN_FIELDS, "config.")
    health = cfg.get("Healthcheck") or {}
    _check_fields(health, _HEALTH_FIELDS, "config.Healthcheck.")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        value = health.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise MinirunError(f"invalid image config: config.Healthcheck.{key} must be an "
                               f"integer, not {json.dumps(value)[:40]}")


def image_spec(image_config, rootfs=None, args=None, entrypoint=None, env=(), user=None,
               workdir=None, terminal=False, hostname=None):
    """An OCI config.json dict for an image config (the `config` of an Image).
    rootfs (a path) is needed to resolve user names."""
    check_image_config(image_config)
    cfg = image_config.get("config") or {}
    spec = default_spec()
    proc = spec["process"]
    ep = list(entrypoint if entrypoint is not None else (cfg.get("Entrypoint") or []))
    cmd = list(args) if args else list(cfg.get("Cmd") or []) if entrypoint is None else []
    proc["args"] = ep + cmd
    if not proc["args"]:
        raise MinirunError("no command specified: the image has no Entrypoint or Cmd")
    image_env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in image_env):
        image_env.insert(0, DEFAULT_PATH)
    if terminal and not any(e.startswith("TERM=") for e in image_env):
        image_env.append("TERM=xterm")
    merged = {}
    for item in image_env + list(env):
        key = item.split("=", 1)[0]
        merged[key] = item
    proc["env"] = list(merged.values())
    proc["cwd"] = workdir or cfg.get("WorkingDir") or "/"
    if not proc["cwd"].startswith("/"):
        proc["cwd"] = "/" + proc["cwd"]
    proc["user"] = resolve_user(rootfs, user if user is not None else cfg.get("User"))
    proc["terminal"] = bool(terminal)
    spec["root"] = {"path": "rootfs", "readonly": False}
    if hostname:
        spec["hostname"] = hostname
    annotations = dict(cfg.get("Labels") or {})
    fields = {
        "org.opencontainers.image.os": image_config.get("os"),
        "org.opencontainers.image.architecture": image_config.get("architecture"),
        "org.opencontainers.image.variant": image_config.get("variant"),
        "org.opencontainers.image.author": image_config.get("author"),
        "org.opencontainers.image.created": image_config.get("created"),
        "org.opencontainers.image.stopSignal": cfg.get("StopSignal"),
        "org.opencontainers.image.exposedPorts": ",".join(sorted(cfg.get("ExposedPorts") or {}))
        or None,
        "minirun.image.volumes": ",".join(sorted(cfg.get("Volumes") or {})) or None,
    }
    # A field wins over a label of the same name (conversion.md).
    annotations.update({k: str(v) for k, v in fields.items() if v})
    if annotations:
        spec["annotations"] = annotations
    return spec


def image_to_bundle(image, bundle_dir, store=None, args=None, user=None, env=(), workdir=None,
                    terminal=False, use_overlay=False, container_id=None):
    """Write a runnable OCI bundle for an Image: bundle_dir/rootfs and
    bundle_dir/config.json.  By default the rootfs is a plain directory (the
    bundle stands alone); use_overlay mounts a store-backed overlay instead
    (needs container_id; returns its cleanup).  Returns (bundle_dir, cleanup)."""
    from minirun.image import overlay, unpack

    os.makedirs(bundle_dir, exist_ok=True)
    os.chmod(bundle_dir, 0o700)  # setuid files and devices of the image stay private
    rootfs = os.path.join(bundle_dir, "rootfs")
    cleanup = None
    if os.path.lexists(rootfs):
        raise MinirunError(f"{rootfs} already exists")
    try:
        if use_overlay:
            rootfs, cleanup = overlay.prepare_rootfs(image, container_id, store=store)
        else:
            os.mkdir(rootfs, 0o755)
            unpack.unpack_image(image, rootfs)
        spec = image_spec(image.config, rootfs, args=args, user=user, env=env, workdir=workdir,
                          terminal=terminal)
        if use_overlay:
            spec["root"]["path"] = rootfs  # the mount lives in the store
        tmp = os.path.join(bundle_dir, ".config.json.tmp")
        with open(tmp, "w") as f:
            json.dump(spec, f, indent=2)
        os.rename(tmp, os.path.join(bundle_dir, "config.json"))
    except BaseException:
        if cleanup:
            cleanup()
        elif os.path.isdir(rootfs):
            shutil.rmtree(rootfs, ignore_errors=True)
        raise
    return bundle_dir, cleanup
