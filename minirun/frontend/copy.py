"""`cp`, `diff`, `export`: files of a front-end container, running or stopped.

A container's files are its overlay rootfs (mounted from create to rm) plus
its volumes and binds (host directories).  Every path inside the container is
resolved with openat2(RESOLVE_IN_ROOT) (linux/paths.py), as if chrooted in
that tree, and files are read and written through fds relative to their
parent directory, never by following a name the container controls: a
symlink in the image cannot make `cp` read or write outside it.  The same
holds for archives the container produced, when they are unpacked on the host.

Transfers are tar streams (Docker's format for `cp` with `-`): the source side
writes entries named under one top name, the destination side renames that
top name by Docker's rules (DEST exists as a directory -> DEST/NAME, else DEST).
"""
import os
import stat
import tarfile
import tempfile

from minirun.errors import MinirunError
from minirun.linux import paths

TOP = "top"  # the top entry's name inside a transfer archive


class CopyError(MinirunError):
    pass


# --- where a container path lives --------------------------------------------------------
def _container_tree(fe, ref):
    from minirun.frontend import worker

    cid, rec = fe.find(ref)
    worker.ensure_rootfs(fe, cid, rec)
    return rec


def _locate(rec, path):
    """(host directory acting as "/", path inside it) for a container path:
    the longest volume/bind destination it is under, else the rootfs."""
    path = os.path.normpath("/" + path.lstrip("/"))
    best = None
    for m in rec.get("Mounts") or []:
        dest = m["Destination"]
        if (path == dest or path.startswith(dest.rstrip("/") + "/")) and os.path.isdir(
                m["Source"]) and (best is None or len(dest) > len(best["Destination"])):
            best = m
    if best is None:
        return rec["Rootfs"], path
    return best["Source"], "/" + os.path.relpath(path, best["Destination"])


class _Root:
    """An fd of a tree's top, for resolving paths inside it."""

    def __init__(self, directory):
        self.fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def parent(self, path, create=False):
        """(parent directory fd, final name) of path; name "" for the root itself."""
        path = os.path.normpath("/" + path.lstrip("/"))
        parent, name = os.path.split(path)
        if not name:
            return os.dup(self.fd), ""
        if create:
            return paths.mkdirs_in_root(self.fd, parent), name
        return paths.open_in_root(self.fd, parent, os.O_PATH | os.O_DIRECTORY), name


def _stat_in(root_dir, path, follow=True):
    """os.stat of a path inside root_dir (None if it or its parent is missing)."""
    with _Root(root_dir) as root:
        try:
            parent, name = root.parent(path)
        except FileNotFoundError:
            return None
        try:
            return os.stat(name or ".", dir_fd=parent, follow_symlinks=follow)
        except FileNotFoundError:
            return None
        finally:
            os.close(parent)


def _lstat(parent, name):
    return os.stat(name or ".", dir_fd=parent, follow_symlinks=False)


# --- writing an archive from a tree ---------------------------------------------------
def _info(arcname, st, linkname=""):
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, linkname
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        info.type, info.size = tarfile.REGTYPE, st.st_size
    return info


def _add(tar, parent, name, arcname, follow=False):
    """Add parent/name (recursively) to tar, through fds only."""
    st = os.stat(name or ".", dir_fd=parent, follow_symlinks=follow)
    if stat.S_ISLNK(st.st_mode):
        tar.addfile(_info(arcname, st, os.fsdecode(os.readlink(name, dir_fd=parent))))
        return
    if stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW),
                     dir_fd=parent)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            tar.addfile(_info(arcname, st), f)
        return
    tar.addfile(_info(arcname, st))
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC |
                     (0 if follow else os.O_NOFOLLOW), dir_fd=parent)
        try:
            for child in sorted(os.listdir(fd)):
                _add(tar, fd, child, f"{arcname}/{child}")
        finally:
            os.close(fd)


def _pack(root_dir, path, out, follow=False, contents=False):
    """A tar of `path` inside root_dir onto the file object `out`: entries under TOP
    (or, with contents=True, the directory's entries themselves)."""
    st = _stat_in(root_dir, path, follow)
    if st is None:
        raise CopyError(f"Could not find the file {path} in container")
    with _Root(root_dir) as root, tarfile.open(fileobj=out, mode="w|",
                                               format=tarfile.PAX_FORMAT) as tar:
        parent, name = root.parent(path)
        try:
            if contents and stat.S_ISDIR(st.st_mode):
                tar.addfile(_info(TOP, st))
                fd = os.open(name or ".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent)
                try:
                    for child in sorted(os.listdir(fd)):
                        _add(tar, fd, child, f"{TOP}/{child}")
                finally:
                    os.close(fd)
            else:
                _add(tar, parent, name, TOP, follow)
        finally:
            os.close(parent)
    return st


# --- unpacking an archive into a tree ---------------------------------------------------
def _remove(parent, name):
    try:
        st = _lstat(parent, name)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise CopyError(f"cannot overwrite directory {name!r} with a non-directory")
    os.unlink(name, dir_fd=parent)


def _extract_member(root, member, data, target, owner):
    """Create one archive member at path `target` inside root, through fds."""
    parent, name = root.parent(target, create=True)
    try:
        if not name:
            return
        if member.isdir():
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                if not stat.S_ISDIR(_lstat(parent, name).st_mode):
                    raise CopyError(f"cannot overwrite non-directory {target} with a "
                                    f"directory") from None
        elif member.issym():
            _remove(parent, name)
            os.symlink(member.linkname, name, dir_fd=parent)
        elif member.islnk():
            _remove(parent, name)
            src_parent, src_name = root.parent(member.linkname)
            try:
                os.link(src_name, name, src_dir_fd=src_parent, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(src_parent)
        elif member.ischr() or member.isblk() or member.isfifo():
            _remove(parent, name)
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() \
                else stat.S_IFIFO
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                     dir_fd=parent)
        else:
            _remove(parent, name)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o600, dir_fd=parent)
            with os.fdopen(fd, "wb") as f:
                while True:
                    chunk = data.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
        uid, gid = owner if owner is not None else (member.uid, member.gid)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        if not member.issym():
            os.chmod(name, member.mode, dir_fd=parent)
        if not member.isdir():
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent,
                     follow_symlinks=False)
        return name
    finally:
        os.close(parent)


def _unpack(fileobj, root_dir, dest, rename_top=None, owner=None):
    """Unpack a tar stream into `dest` inside root_dir.  With rename_top, the
    top entry TOP (and what is under it) is named rename_top instead."""
    dirs = []
    with _Root(root_dir) as root, tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            name = member.name.lstrip("/")
            if rename_top is not None:
                if name != TOP and not name.startswith(TOP + "/"):
                    continue
                name = rename_top + name[len(TOP):]
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise CopyError(f"archive entry {member.name!r} leaves the destination")
            if not parts:
                continue
            data = tar.extractfile(member) if member.isreg() else None
            target = os.path.join(dest, *parts)
            _extract_member(root, member, data, target, owner)
            if member.isdir():
                dirs.append((target, member.mtime))
        for target, mtime in reversed(dirs):  # after the writes into them
            parent, name = root.parent(target)
            try:
                os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)


def _destination(root_dir, dest, src_is_dir, src_name, contents):
    """Docker's rules -> (directory to unpack into, name for the top entry)."""
    clean = os.path.normpath("/" + dest.lstrip("/"))
    parent_dir, name = os.path.split(clean)
    if _stat_in(root_dir, parent_dir) is None:
        raise CopyError(f"no such directory: {parent_dir}")
    st = _stat_in(root_dir, clean)  # a symlink to a directory counts as one
    if st is None:
        if dest.endswith("/") and not src_is_dir:
            raise CopyError(f"destination directory {dest!r} must exist")
        return parent_dir, name
    if stat.S_ISDIR(st.st_mode):
        return (parent_dir, name) if contents else (clean, src_name)
    if src_is_dir:
        raise CopyError(f"cannot copy a directory to a file: {dest}")
    return parent_dir, name


# --- the API ---------------------------------------------------------------------------------
def copy_from(fe, ref, src, dest, archive=False, follow=False, stdout=None):
    """docker cp CONTAINER:SRC DEST (DEST "-": a tar stream onto stdout)."""
    rec = _container_tree(fe, ref)
    root_dir, inner = _locate(rec, src)
    contents = src.endswith("/.")
    if dest == "-":
        with tempfile.SpooledTemporaryFile(64 << 20) as tmp:
            _pack(root_dir, inner, tmp, follow, contents)
            tmp.seek(0)
            base = "." if contents else os.path.basename(os.path.normpath(inner)) or "."
            _rename_stream(tmp, stdout, base)
        return
    with tempfile.SpooledTemporaryFile(64 << 20) as tmp:
        st = _pack(root_dir, inner, tmp, follow, contents)
        tmp.seek(0)
        dest = os.path.abspath(dest)
        host_root = os.path.dirname(dest.rstrip("/")) or "/"
        into, name = _destination(host_root, "/" + os.path.basename(dest.rstrip("/")) + (
            "/" if dest.endswith("/") else ""), stat.S_ISDIR(st.st_mode),
            os.path.basename(os.path.normpath(inner)), contents)
        owner = None if archive else (os.getuid(), os.getgid())
        _unpack(tmp, host_root, into, rename_top=name, owner=owner)


def copy_to(fe, ref, src, dest, archive=False, follow=False, stdin=None):
    """docker cp SRC CONTAINER:DEST (SRC "-": a tar stream from stdin, unpacked into
    the directory DEST)."""
    rec = _container_tree(fe, ref)
    root_dir, inner = _locate(rec, dest)
    if src == "-":
        st = _stat_in(root_dir, inner)
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise CopyError(f"destination directory {dest!r} must exist")
        _unpack(stdin, root_dir, inner, owner=None if archive else (0, 0))
        return
    src_abs = os.path.abspath(src)
    if not os.path.lexists(src_abs):
        raise CopyError(f"lstat {src_abs}: no such file or directory")
    contents = src.endswith("/.")
    with tempfile.SpooledTemporaryFile(64 << 20) as tmp:
        st = _pack(os.path.dirname(src_abs.rstrip("/")) or "/",
                   "/" + os.path.basename(src_abs.rstrip("/")), tmp, follow, contents)
        tmp.seek(0)
        into, name = _destination(root_dir, inner + ("/" if dest.endswith("/") else ""),
                                  stat.S_ISDIR(st.st_mode), os.path.basename(src_abs), contents)
        _unpack(tmp, root_dir, into, rename_top=name, owner=None if archive else (0, 0))


def _rename_stream(src, out, base):
    """Re-write a transfer archive with TOP named `base` (what `docker cp C:X -` gives)."""
    with tarfile.open(fileobj=src, mode="r|") as tin, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            member.name = base + member.name[len(TOP):]
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)


# --- diff, export --------------------------------------------------------------------------
def diff(fe, ref):
    """[(kind, path)]: A added, C changed, D deleted, from the overlay's upper dir."""
    from minirun.image import manifest as mf

    rec = _container_tree(fe, ref)
    upper = rec["GraphDriver"]["Data"]["UpperDir"]
    store = fe.image_store()
    lowers = [store.layer_dir(c) for c in mf.Image(store, rec["ImageManifest"]).chain_ids]
    out = []
    base = os.fsencode(upper)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(("D", rel))  # overlayfs whiteout
            elif any(os.path.lexists(os.path.join(os.fsencode(lo), rel)) for lo in lowers):
                out.append(("C", rel))
            else:
                out.append(("A", rel))
    # /etc/hosts, hostname and resolv.conf are the runtime's bind-mount targets
    # (Docker keeps them in an "init" layer): not the container's changes.
    out = [(k, p) for k, p in out if p not in RUNTIME_FILES]
    changed = [p for _, p in out]
    out = [(k, p) for k, p in out if k != "C" or not os.path.isdir(os.path.join(base, p))
           or any(q.startswith(p + b"/") for q in changed)
           or not any(os.path.lexists(os.path.join(os.fsencode(lo), p)) for lo in lowers)]
    return [(k, "/" + os.fsdecode(p)) for k, p in sorted(out, key=lambda e: e[1])]


RUNTIME_FILES = (b"etc/hosts", b"etc/hostname", b"etc/resolv.conf")


def export(fe, ref, out):
    """The container's filesystem (rootfs, not volumes) as a tar stream onto `out`."""
    rec = _container_tree(fe, ref)
    with _Root(rec["Rootfs"]) as root, tarfile.open(fileobj=out, mode="w|",
                                                    format=tarfile.PAX_FORMAT) as tar:
        for child in sorted(_listdir(root.fd)):
            _add(tar, root.fd, child, child)


def _listdir(fd):
    dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    try:
        return os.listdir(dfd)
    finally:
        os.close(dfd)
