"""Apply image layers (tar, tar+gzip, tar+zstd) to a directory, safely.

Why not `tarfile.extractall`: even with `filter='tar'` it has had escapes
(CVE-2025-4517, gh-149486, gh-151558), and `filter='data'` strips setuid bits
and device nodes that a rootfs needs.  Here tarfile only parses headers; every
filesystem change is made by this module:

* Member names are cleaned lexically (`..` cannot climb above `/`), then the
  parent directory is resolved with openat2(RESOLVE_IN_ROOT), so `..`,
  absolute names and symlinks - from this layer or an earlier one - are all
  resolved as if chrooted into the destination.  The last component is never
  followed: it is created with O_EXCL / mkdirat / symlinkat / mknodat /
  linkat relative to the parent's fd.
* Inodes are replaced, never rewritten in place (umoci's rule), so a file
  that was hard-linked from elsewhere cannot be modified through the link.
* Hardlink targets are resolved inside the root the same way; the root itself
  can never become a symlink or a file.
* Whiteouts are resolved inside the root too, so `etc/.wh.x` with `etc -> /`
  removes `<root>/x`, never the host's.
* `trusted.overlay.*` xattrs in a layer are dropped: they would let an image
  forge overlayfs redirects and whiteouts.

Whiteouts delete what lower layers put there (`.wh.NAME`), or all of a
directory's lower children (`.wh..wh..opq`, wherever it appears in the layer),
never entries of the same layer.  The per-layer overlayfs cache (overlay.py)
applies a layer through an overlay mount of the layers below it, so the kernel
records those deletions as overlay whiteouts in the new layer's directory.

Each layer stream is decompressed and checked on a background thread
(layerstream.py).  The compressed digest and the diff_id are known only when
the stream ends; callers unpack into a temporary directory and discard it on
any error.

The Extractor is made of three parts: this module applies the entries,
dirtimes.py keeps directory times, whiteouts.py removes what whiteouts name;
tarheader.py reads names, xattrs and header numbers.
"""
import collections
import errno
import os
import stat
import tarfile

from minirun.image import sparse
from minirun.image.dirtimes import DirTimes
from minirun.image.layerstream import (DigestMismatch, LayerStream, LimitExceeded,  # noqa: F401
                                       Limits, UnpackError, sniff_compression)
from minirun.image.tarheader import (_ID_MAX, _NS_MAX, OPAQUE, WHITEOUT_PREFIX,  # noqa: F401
                                     _lstat, _ns, _proc, _rmtree, _xattrs, check_header,
                                     clean_name, raw_name, show)
from minirun.image.whiteouts import Whiteouts
from minirun.linux.paths import mkdirs_in_root, open_in_root

_DIR_CACHE_MAX = 512
_WRITERS = 2
_ASYNC_MAX = 1 << 20      # files up to this size are written by the pool
_ASYNC_QUEUE = 64         # at most this many files...
_ASYNC_BYTES = 8 << 20    # ...and this much data in flight


# --- the extractor ---------------------------------------------------------------------------

class Extractor(DirTimes, Whiteouts):
    """Applies layers to the directory open at root_fd (see module doc)."""

    def __init__(self, root_fd, chown=True, limits=None):
        self.root_fd = root_fd
        self.chown = chown
        self.limits = limits or Limits()
        self._dirs = {}
        self._stale = []
        self._pending = {}  # (parent dev, ino, name) -> future of its write
        self._ids = {}  # cached parent fd -> (dev, ino) of the directory
        self._queue = collections.deque()
        self._inflight = 0
        self.entries = 0

    # parent directories, resolved inside the root and cached
    def _forget_dirs(self):
        # Callers may still hold one of these fds for the current entry:
        # close them when the next entry starts.
        self._stale.extend(self._dirs.values())
        self._dirs.clear()

    def _close_stale(self):
        self._drain()  # writer threads may still use these fds
        for fd in self._stale:
            self._ids.pop(fd, None)
            os.close(fd)
        self._stale.clear()

    def _parent(self, path, create=True):
        fd = self._dirs.get(path)
        if fd is not None:
            return fd
        try:
            fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            if not create:
                return None
            self._fresh = False
            self._touch_existing_ancestor(path)
            try:
                fd = mkdirs_in_root(self.root_fd, path)
            except OSError as e:
                raise UnpackError(f"cannot create directory /{show(path)}: {e.strerror}") \
                    from None
        except NotADirectoryError:
            if not create:
                return None
            raise UnpackError(f"/{show(path)} is not a directory") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnpackError(f"/{show(path)}: too many levels of symbolic links") \
                    from None
            raise
        if len(self._dirs) >= _DIR_CACHE_MAX:
            self._forget_dirs()
        self._dirs[path] = fd
        st = os.fstat(fd)
        self._ids[fd] = (st.st_dev, st.st_ino)
        return fd

    def _remove(self, pfd, name, st):
        self._drain()
        self._fresh = False
        if stat.S_ISDIR(st.st_mode):
            _rmtree(name, pfd)
            self._forget_dirs()
        else:
            os.unlink(name, dir_fd=pfd)
            if stat.S_ISLNK(st.st_mode):
                self._forget_dirs()

    # one layer
    def apply(self, stream):
        """Apply one layer from a LayerStream (or any forward-readable tar file)."""
        self._layer = set()
        self._dir_times = []
        self._touched = {}  # (dev, ino) of dirs this layer changed -> (name, times before)
        self._touched_names = set()
        # Into an empty directory, a name this layer has not made yet cannot
        # exist if its parent was made by this layer without going through a
        # symlink: skip the lstat (a third of the work on a big first layer).
        # Anything else (an implicit parent, a removal, a parent reached
        # through a symlink) turns this off for the rest of the layer.
        with os.scandir(self.root_fd) as it:
            self._fresh = next(it, None) is None
        self._real_dirs = {b""}
        from concurrent.futures import ThreadPoolExecutor

        self._pools = [ThreadPoolExecutor(1, thread_name_prefix="unpack-write")
                       for _ in range(_WRITERS)]
        try:
            # utf-8 + surrogateescape: every name maps back to its exact bytes.
            tf = tarfile.TarFile(fileobj=stream, mode="r", errorlevel=2, encoding="utf-8",
                                 errors="surrogateescape")
        except tarfile.TarError as e:
            self._shutdown_pools()
            if str(e) == "empty file":  # zero bytes: an empty layer, as for umoci
                return
            raise UnpackError(f"{getattr(stream, 'name', 'layer')}: not a tar archive: {e}") \
                from None
        self._tf = tf
        try:
            while True:
                try:
                    member = tf.next()
                except tarfile.TarError as e:
                    raise UnpackError(f"{getattr(stream, 'name', 'layer')}: bad tar header: {e}") \
                        from None
                if member is None:
                    break
                tf.members.clear()  # keep memory flat on big layers
                if self._stale:
                    self._close_stale()
                self.entries += 1
                if self.entries > self.limits.max_entries:
                    raise self.limits.too_many(getattr(stream, "name", "layer"))
                self._entry(stream, member)
            self._drain()
            self._restore_dir_times()
        finally:
            self._drain(quiet=True)
            self._shutdown_pools()
            self._forget_dirs()
            self._close_stale()

    def _shutdown_pools(self):
        for pool in self._pools:
            pool.shutdown()

    # Regular files up to _ASYNC_MAX are written by a few writer threads (the
    # syscalls release the GIL) while this thread parses the next headers.
    # Each directory has one writer: creating a file takes the directory's
    # inode lock, and a second writer waiting for it spins on a CPU (on ext4
    # without a journal a create can take most of a millisecond, scanning
    # for an inode not recently deleted) -- measured, two writers on one
    # directory were barely faster than one.
    # Anything that could touch a path still being written - removals,
    # whiteouts, hard links, a repeated name, closing cached directory fds,
    # directory times - waits for the pool first.
    def _submit(self, key, pfd, base, m, xattrs, data):
        pool = self._pools[hash(key[:2]) % len(self._pools)]  # by directory (dev, ino)
        fut = pool.submit(self._write_file, pfd, base, m, xattrs, data)
        self._pending[key] = fut
        self._queue.append((fut, len(data)))
        self._inflight += len(data)
        while len(self._queue) > _ASYNC_QUEUE or self._inflight > _ASYNC_BYTES:
            done, size = self._queue.popleft()
            done.result()
            self._inflight -= size
        if len(self._pending) > 4 * _ASYNC_QUEUE:
            self._pending = {p: f for p, f in self._pending.items() if not f.done()}

    def _drain(self, quiet=False):
        if not self._queue:
            return
        error = None
        while self._queue:
            fut, _ = self._queue.popleft()
            try:
                fut.result()
            except BaseException as e:
                error = error or e
        self._pending.clear()
        self._inflight = 0
        if error is not None and not quiet:
            raise error

    def _write_file(self, pfd, base, m, xattrs, data):
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self._set_meta_fd(fd, m, xattrs)
            os.utime(fd, ns=self._times(m))
        finally:
            os.close(fd)

    def _entry(self, stream, m):
        path = clean_name(raw_name(m.name))
        check_header(m, show(path))
        if not path:
            if not m.isdir():
                raise UnpackError(f"layer entry {m.name!r} would replace the root directory")
            self._set_meta_fd(self.root_fd, m, _xattrs(m))
            self._dir_times.append((b"", m))
            return
        parent, _, base = path.rpartition(b"/")
        if base.startswith(WHITEOUT_PREFIX):
            return self._whiteout(parent, base)
        if m.isreg() and m.size > self.limits.max_bytes:
            raise self.limits.too_big(f"/{show(path)}")
        if m.islnk():
            return self._hardlink(path, parent, base, m)
        pfd = self._parent(parent)
        self._touch(parent, pfd)
        # Keyed by the real directory, not the name: `lib/x` and `usr/lib/x`
        # are one file when lib -> usr/lib.
        key = (*self._ids[pfd], base)
        if key in self._pending:
            self._drain()  # the same file twice in one layer
        if self._fresh and parent not in self._real_dirs:
            self._fresh = False
        if self._fresh and path not in self._layer:
            existing = None
        else:
            existing = _lstat(base, pfd)
        xattrs = _xattrs(m)
        if m.isdir():
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
                try:
                    self._clear_xattrs(fd, keep=xattrs)
                    self._set_meta_fd(fd, m, xattrs)
                finally:
                    os.close(fd)
            else:
                if existing is not None:
                    self._remove(pfd, base, existing)
                os.mkdir(base, 0o700, dir_fd=pfd)
                if self._fresh:
                    self._real_dirs.add(path)
                fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
                try:
                    self._set_meta_fd(fd, m, xattrs)
                finally:
                    os.close(fd)
            self._dir_times.append((path, m))
            self._layer.add(path)
            return
        if existing is not None:
            self._remove(pfd, base, existing)
        if m.issparse():
            self._drain()
            sparse.write_sparse(stream, m, pfd, base, self._tar_offset(), show(path))
            self._set_meta_at(pfd, base, m, xattrs)
        elif m.isreg() and m.size <= _ASYNC_MAX:
            self._submit(key, pfd, base, m, xattrs, stream.read(m.size) if m.size else b"")
        elif m.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=pfd)
            try:
                if m.size:
                    stream.copy_to_fd(fd, m.size)
                self._set_meta_fd(fd, m, xattrs)
                os.utime(fd, ns=self._times(m))
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(raw_name(m.linkname), base, dir_fd=pfd)
            self._set_meta_at(pfd, base, m, xattrs, symlink=True)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            dev = os.makedev(m.devmajor, m.devminor) if not m.isfifo() else 0
            os.mknod(base, kind | 0o600, dev, dir_fd=pfd)
            self._set_meta_at(pfd, base, m, xattrs)
        else:
            raise UnpackError(f"/{show(path)}: unsupported tar entry type {m.type!r}")
        self._layer.add(path)

    def _tar_offset(self):
        """Where tarfile will look for the next header: a sparse member's
        data must end before it."""
        return self._tf.offset

    def _times(self, m):
        mtime = _ns(m.mtime)
        atime = m.pax_headers.get("atime")
        return (_ns(atime) if atime else mtime, mtime)

    def _set_meta_fd(self, fd, m, xattrs):
        """Owner, mode (after chown, which clears setuid), then xattrs (after
        chown, which clears security.capability)."""
        if self.chown:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        for name, value in xattrs.items():
            self._setxattr(fd, name, value)

    def _set_meta_at(self, pfd, base, m, xattrs, symlink=False):
        if self.chown:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if not symlink:
            os.chmod(base, m.mode & 0o7777, dir_fd=pfd)
        for name, value in xattrs.items():
            # lsetxattr through the parent's fd: the last component is not followed.
            self._setxattr(_proc(pfd).encode() + b"/" + base, name, value, follow=False)
        os.utime(base, ns=self._times(m), dir_fd=pfd, follow_symlinks=False)

    @staticmethod
    def _setxattr(target, name, value, follow=True):
        try:
            os.setxattr(target, name, value, follow_symlinks=follow)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EPERM) and not name.startswith("user."):
                return  # e.g. security.selinux on a host without it, as umoci does
            raise UnpackError(f"cannot set xattr {name}: {e.strerror}") from None

    @staticmethod
    def _clear_xattrs(fd, keep):
        for name in os.listxattr(fd):
            if name not in keep and not name.startswith("trusted.overlay."):
                try:
                    os.removexattr(fd, name)
                except OSError:
                    pass

    def _hardlink(self, path, parent, base, m):
        self._drain()
        if parent not in self._real_dirs:
            self._fresh = False
        target = clean_name(raw_name(m.linkname))
        if not target:
            raise UnpackError(f"/{show(path)}: hard link to the root directory")
        if target == path:
            return
        tparent, _, tbase = target.rpartition(b"/")
        tpfd = self._parent(tparent, create=False)
        tst = _lstat(tbase, tpfd) if tpfd is not None else None
        pfd = self._parent(parent)
        self._touch(parent, pfd)
        if tst is None:
            raise UnpackError(f"/{show(path)}: hard link target /{show(target)} does not exist")
        if stat.S_ISDIR(tst.st_mode):
            raise UnpackError(f"/{show(path)}: hard link to a directory /{show(target)}")
        existing = _lstat(base, pfd)
        if existing is not None:
            if existing.st_ino == tst.st_ino and existing.st_dev == tst.st_dev:
                return
            self._remove(pfd, base, existing)
        os.link(tbase, base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        self._layer.add(path)


def open_root(path, create=False):
    """Open a destination directory for extraction (never through a symlink)."""
    if create:
        os.makedirs(path, exist_ok=True)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise UnpackError(f"cannot open {path}: {e.strerror}") from None


def apply_layer(root_fd, raw, digest=None, diff_id=None, name="layer", chown=True,
                size=None, media_type=None, limits=None):
    """Apply one layer blob (open binary file) to the directory at root_fd,
    verifying its digest and diff_id, and when given its size and that its
    compression is the one media_type names.  Returns (digest, diff_id, entries)."""
    limits = limits or Limits.from_env()
    stream = LayerStream(raw, digest, diff_id, name, size=size, media_type=media_type,
                         limits=limits)
    try:
        ex = Extractor(root_fd, chown=chown, limits=limits)
        try:
            ex.apply(stream)
        except (ValueError, OverflowError) as e:  # a value no syscall takes
            raise UnpackError(f"{name}: invalid entry: {e}") from None
        except OSError as e:  # the kernel refused something the layer asked for
            what = e.filename if e.filename else ""
            what = f" {show(what) if isinstance(what, bytes) else what}" if what else ""
            raise UnpackError(f"{name}: cannot create{what}: {e.strerror or e}") from None
        got_digest, got_diff_id = stream.finish()
        return got_digest, got_diff_id, ex.entries
    finally:
        stream.close()


def unpack_image(image, rootfs, chown=True, limits=None):
    """Apply all layers of an Image (from a Store or OCI layout) to the
    directory rootfs, in order, verifying every blob against its descriptor
    (size, digest, compression) and its diff_id."""
    limits = limits or Limits.from_env()
    root_fd = open_root(rootfs)
    try:
        total = 0
        for n, (layer, diff_id) in enumerate(zip(image.layers, image.diff_ids), 1):
            with image.source.open_blob(layer["digest"]) as raw:
                _, _, entries = apply_layer(root_fd, raw, layer["digest"], diff_id,
                                            name=f"layer {n} ({layer['digest'][:19]})",
                                            chown=chown, size=layer["size"],
                                            media_type=layer["mediaType"], limits=limits)
            total += entries
        return total
    finally:
        os.close(root_fd)
