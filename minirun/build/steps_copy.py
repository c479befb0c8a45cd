"""COPY and ADD: files from a SourceTree into a step's rootfs, through fds.

Docker's rules: a directory source copies its contents; several sources, or
a destination ending in `/`, make the destination a directory; a single file
goes to `dest/basename` when dest is an existing directory, else to dest.
Missing destination directories are created (0755, owned as --chown says).
Files keep their permission bits (or take --chmod) and become root's unless
--chown is given; from another stage or image they keep their owners.  ADD
also unpacks local tar archives (plain, gzip, bzip2, xz) into the destination.
Every destination path is resolved inside the rootfs (RESOLVE_IN_ROOT); the
last component is always replaced, never written through.
"""
import os
import posixpath
import shutil
import stat

from minirun.build.context import SourceError, open_entry
from minirun.errors import MinirunError
from minirun.linux.paths import mkdirs_in_root, open_in_root


class CopyOptions:
    def __init__(self, chown=None, chmod=None, keep_owner=False):
        self.chown = chown          # (uid, gid) or None
        self.chmod = chmod          # int or None
        self.keep_owner = keep_owner  # COPY --from without --chown


def _owner(st, opts):
    if opts.chown is not None:
        return opts.chown
    if opts.keep_owner:
        return st.st_uid, st.st_gid
    return 0, 0


def _mode(st, opts):
    return opts.chmod if opts.chmod is not None else stat.S_IMODE(st.st_mode)


def _exists_dir(root_fd, path):
    try:
        fd = open_in_root(root_fd, path, os.O_PATH)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _mkdirs(root_fd, path, opts):
    """mkdir -p inside the root; new directories get --chown's owner."""
    parts = [p for p in path.split("/") if p]
    for n in range(1, len(parts) + 1):
        sub = "/".join(parts[:n])
        try:
            os.close(open_in_root(root_fd, sub, os.O_PATH | os.O_DIRECTORY))
        except FileNotFoundError:
            fd = mkdirs_in_root(root_fd, sub, 0o755)
            try:
                os.chmod(f"/proc/self/fd/{fd}", 0o755)
                uid, gid = opts.chown or (0, 0)
                os.chown(f"/proc/self/fd/{fd}", uid, gid)
            finally:
                os.close(fd)
    return mkdirs_in_root(root_fd, path)


def _remove(pfd, name):
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return st
    os.unlink(name, dir_fd=pfd)
    return None


def _set_meta(pfd, name, st, opts, symlink=False):
    uid, gid = _owner(st, opts)
    os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
    if not symlink:
        os.chmod(name, _mode(st, opts), dir_fd=pfd)
    os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)


def _copy_entry(st, sdfd, sname, pfd, name, opts):
    """One walked source entry to pfd/name."""
    existing = _remove(pfd, name)
    if stat.S_ISDIR(st.st_mode):
        if existing is None:
            os.mkdir(name, 0o700, dir_fd=pfd)
        return True  # metadata after its contents (mtime)
    if stat.S_ISREG(st.st_mode):
        if existing is not None:
            shutil.rmtree(f"/proc/self/fd/{pfd}/{name}")
        src = open_entry(sdfd, sname)
        try:
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=pfd)
            try:
                while os.sendfile(dst, src, None, 1 << 30):
                    pass
            finally:
                os.close(dst)
        finally:
            os.close(src)
    elif stat.S_ISLNK(st.st_mode):
        if existing is not None:
            shutil.rmtree(f"/proc/self/fd/{pfd}/{name}")
        os.symlink(os.readlink(sname, dir_fd=sdfd), name, dir_fd=pfd)
        _set_meta(pfd, name, st, opts, symlink=True)
        return False
    elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=pfd)
    else:
        return False  # sockets are skipped
    _set_meta(pfd, name, st, opts)
    return False


def copy_sources(tree, sources, root_fd, dest, opts, workdir="/", add=False, dest_is_dir=None):
    """Copy expanded `sources` of `tree` to `dest` in the rootfs at root_fd.
    dest_is_dir: the instruction named several sources (across trees)."""
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    dest_dir = dest.endswith("/") or len(sources) > 1 or bool(dest_is_dir)
    dest = posixpath.normpath(dest)
    for src in sources:
        fd, st = tree.open(src)
        os.close(fd)
        if add and stat.S_ISREG(st.st_mode) and not tree.remote and _is_archive(tree, src):
            _extract(tree, src, root_fd, dest, opts)
            continue
        if stat.S_ISDIR(st.st_mode):
            target = dest
        elif dest_dir or _exists_dir(root_fd, dest):
            target = posixpath.join(dest, posixpath.basename(src) or ".")
        else:
            target = dest
        _copy_tree(tree, src, root_fd, target, opts, st)


def _copy_tree(tree, src, root_fd, target, opts, top_st):
    parent, _, base = target.rstrip("/").rpartition("/")
    dirs = []  # (dir fd, name, stat) whose metadata is set last
    opened = {}
    try:
        if stat.S_ISDIR(top_st.st_mode):
            tfd = _mkdirs(root_fd, target, opts)
            opened[""] = tfd
        else:
            opened["\0parent"] = _mkdirs(root_fd, parent, opts)
        links = {}  # (dev, ino) of a multiply linked source file -> its first copy
        for brel, st, sdfd, sname in tree.walk(src):
            if brel == "":
                if stat.S_ISDIR(st.st_mode):
                    continue  # the destination directory itself keeps its metadata
                _copy_entry(st, None, sname, opened["\0parent"], base, opts)
                continue
            bparent, _, bname = brel.rpartition("/")
            pfd = opened[bparent]
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                first = links.get((st.st_dev, st.st_ino))
                if first is not None:  # hard links stay hard links (as BuildKit keeps them)
                    if _remove(pfd, bname) is not None:
                        shutil.rmtree(f"/proc/self/fd/{pfd}/{bname}")
                    os.link(first[1], bname, src_dir_fd=first[0], dst_dir_fd=pfd,
                            follow_symlinks=False)
                    continue
                links[(st.st_dev, st.st_ino)] = (pfd, bname)
            if _copy_entry(st, sdfd, bname, pfd, bname, opts):
                opened[brel] = os.open(bname, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW |
                                       os.O_CLOEXEC, dir_fd=pfd)
                dirs.append((pfd, bname, st))
        for pfd, name, st in reversed(dirs):
            _set_meta(pfd, name, st, opts)
    except OSError as e:
        raise MinirunError(f"COPY failed: cannot copy {src} to {target}: {e.strerror or e}") \
            from None
    finally:
        for fd in opened.values():
            os.close(fd)


def _is_archive(tree, src):
    fd, _ = tree.open(src)
    try:
        head = os.pread(fd, 262, 0)
    finally:
        os.close(fd)
    return (head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00"
            or head[257:262] == b"ustar")


def _extract(tree, src, root_fd, dest, opts):
    """ADD of a local archive: its entries, with their owners, under dest."""
    import bz2
    import lzma

    from minirun.image import unpack

    fd, _ = tree.open(src)
    raw = os.fdopen(fd, "rb")
    try:
        head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
        if head[:3] == b"BZh":
            raw = bz2.open(raw)
        elif head[:6] == b"\xfd7zXZ\x00":
            raw = lzma.open(raw)
        dfd = _mkdirs(root_fd, dest, opts)
        try:
            droot = os.open(f"/proc/self/fd/{dfd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        finally:
            os.close(dfd)
        try:
            unpack.apply_layer(droot, raw, name=f"ADD {src}")
        except MinirunError as e:
            raise SourceError(f"ADD failed: {e}") from None
        finally:
            os.close(droot)
    finally:
        raw.close()
