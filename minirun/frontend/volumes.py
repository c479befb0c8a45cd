"""Volumes: directories under <store>/volumes that outlive containers.

    <store>/volumes/<name>/_data          what the container sees (bind-mounted)
    <store>/volumes/<name>/volume.json    {Name, CreatedAt, Driver, Labels, Anonymous}

`-v NAME:/path` creates NAME on first use and keeps it after `rm`; `-v /path`
and an image's VOLUME make an anonymous volume (a random name) that `rm -v`
and `--rm` remove.  A new, empty volume first gets a copy of what the image
has at the mount point (Docker's copy-up), read through an fd opened inside
the rootfs so a symlink in the image cannot point the copy at the host.
"""
import contextlib
import fcntl
import json
import os
import secrets
import shutil

from minirun.errors import MinirunError
from minirun.frontend import recordfile
from minirun.frontend.options import VOLUME_NAME_RE


class VolumeError(MinirunError):
    pass


def _dir(fe, name):
    if not VOLUME_NAME_RE.match(name or ""):
        raise VolumeError(f"invalid volume name {name!r}")
    return os.path.join(fe.volumes_dir, name)


@contextlib.contextmanager
def _lock(fe):
    os.makedirs(fe.volumes_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(fe.volumes_dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create(fe, name=None, labels=None, anonymous=False):
    """Create a volume (idempotent for a named one); returns (info, created_now)."""
    if not name:
        name, anonymous = secrets.token_hex(32), True
    d = _dir(fe, name)
    with _lock(fe):
        info = _info(d)
        if info is not None:
            return info, False
        tmp = f"{d}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "_data"), mode=0o755)
        os.chmod(tmp, 0o701)
        info = {"Name": name, "Driver": "local", "CreatedAt": recordfile.timestamp(),
                "Labels": dict(labels or {}), "Anonymous": anonymous, "Scope": "local",
                "Options": {}}
        with open(os.path.join(tmp, "volume.json"), "w") as f:
            json.dump(info, f)
        os.rename(tmp, d)
    return _info(d), True


def _info(d):
    try:
        with open(os.path.join(d, "volume.json")) as f:
            info = json.load(f)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    info["Mountpoint"] = os.path.join(d, "_data")
    return info


def inspect(fe, name):
    info = _info(_dir(fe, name))
    if info is None:
        raise VolumeError(f"get {name}: no such volume")
    return info


def list_volumes(fe):
    try:
        names = sorted(n for n in os.listdir(fe.volumes_dir) if VOLUME_NAME_RE.match(n))
    except FileNotFoundError:
        return []
    return [i for i in (_info(os.path.join(fe.volumes_dir, n)) for n in names) if i]


def users(fe):
    """volume name -> [container ids] for every container record."""
    out = {}
    for rec in fe.records():
        for m in rec.get("Mounts") or []:
            if m.get("Type") == "volume":
                out.setdefault(m["Name"], []).append(rec["Id"])
    return out


def remove(fe, name, force=False):
    d = _dir(fe, name)
    with _lock(fe):
        if _info(d) is None:
            if force:
                return
            raise VolumeError(f"get {name}: no such volume")
        in_use = users(fe).get(name)
        if in_use:
            raise VolumeError(f"remove {name}: volume is in use - [{', '.join(in_use)}]")
        _rmtree(d)


def _rmtree(d):
    """Remove a volume: renamed first, so a crash never leaves half a volume."""
    gone = f"{d}.rm-{os.getpid()}"
    os.rename(d, gone)
    shutil.rmtree(gone, ignore_errors=True)


def prune(fe, all_volumes=False):
    """Remove unused volumes (anonymous ones only unless all_volumes); returns
    [(name, bytes)]."""
    removed = []
    with _lock(fe):
        used = users(fe)
        for info in list_volumes(fe):
            if info["Name"] in used or not (all_volumes or info.get("Anonymous")):
                continue
            d = _dir(fe, info["Name"])
            size = du(d)
            _rmtree(d)
            removed.append((info["Name"], size))
    return removed


def remove_anonymous(fe, mounts):
    """Remove the anonymous volumes of a removed container (rm -v, --rm)."""
    for m in mounts or []:
        if m.get("Type") == "volume" and m.get("Anonymous"):
            try:
                remove(fe, m["Name"], force=True)
            except VolumeError:
                pass  # another container uses it (--volumes-from style reuse)


def du(path):
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                pass
    return total


def copy_up(rootfs, destination, data_dir):
    """Fill an empty new volume with the image's content at `destination`."""
    from minirun.linux.paths import open_in_root

    if os.listdir(data_dir):
        return
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, destination, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return  # nothing there (or not a directory): the volume starts empty
    finally:
        os.close(root_fd)
    try:
        src = f"/proc/self/fd/{fd}"
        st = os.fstat(fd)
        os.chown(data_dir, st.st_uid, st.st_gid)
        os.chmod(data_dir, st.st_mode & 0o7777)
        # symlinks=True: links are copied as links, never followed.
        shutil.copytree(src, data_dir, symlinks=True, dirs_exist_ok=True)
    finally:
        os.close(fd)
