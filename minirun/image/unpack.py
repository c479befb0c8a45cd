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

Each layer stream is decompressed and hashed on a background thread (zlib,
zstandard and hashlib release the GIL), so inflating overlaps with the file
writes of the main thread.  The compressed digest and the diff_id are checked
when the stream ends; callers unpack into a temporary directory and discard it
on mismatch.
"""
import collections
import errno
import hashlib
import os
import queue
import shutil
import stat
import tarfile
import threading
import zlib

from minirun.errors import MinirunError
from minirun.linux.paths import mkdirs_in_root, open_in_root

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
_CHUNK = 1 << 20
_QUEUE_DEPTH = 6
_DIR_CACHE_MAX = 512
_WRITERS = 2
_ASYNC_MAX = 1 << 20      # files up to this size are written by the pool
_ASYNC_QUEUE = 64         # at most this many files...
_ASYNC_BYTES = 8 << 20    # ...and this much data in flight


class UnpackError(MinirunError):
    pass


class DigestMismatch(UnpackError):
    pass


# --- decompress + hash, on a thread ---------------------------------------------------------

def sniff_compression(head):
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return None


class _HashingReader:
    """A raw file wrapper that hashes what is read through it."""

    def __init__(self, raw, hasher, head=b""):
        self.raw, self.hasher, self.head = raw, hasher, head
        self.size = 0
        if head:
            hasher.update(head)
            self.size += len(head)

    def read(self, n=-1):
        if self.head:
            out, self.head = self.head, b""
            return out
        data = self.raw.read(n if n and n > 0 else _CHUNK)
        self.hasher.update(data)
        self.size += len(data)
        return data


class LayerStream:
    """A forward-only file object over the uncompressed tar of one layer.

    Reads `raw` (a binary file object of the blob as stored) on a thread,
    decompresses it (gzip, zstd or none, sniffed from the magic bytes), hashes
    the compressed bytes with the algorithm of `digest` and the uncompressed
    ones with sha256.  Supports what tarfile needs: read, tell, forward seek.
    """

    def __init__(self, raw, digest=None, diff_id=None, name="layer"):
        self.name = name
        self.expected_digest = digest
        self.expected_diff_id = diff_id
        algo = (digest or "sha256:").partition(":")[0]
        self._compressed_hash = hashlib.new(algo)
        self._diff_hash = hashlib.sha256()
        self._raw = raw
        self._queue = queue.Queue(_QUEUE_DEPTH)
        self._stop = False
        self._chunk = b""
        self._off = 0           # offset inside _chunk
        self._pos = 0           # stream position of _chunk[_off]
        self._eof = False
        self.compressed_size = 0
        self.compression = None
        self._thread = threading.Thread(target=self._produce, name=f"inflate {name}", daemon=True)
        self._thread.start()

    # producer side (thread)
    def _put(self, item):
        while not self._stop:
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self):
        try:
            head = self._raw.read(4)
            self.compression = sniff_compression(head)
            reader = _HashingReader(self._raw, self._compressed_hash, head)
            diff_hash = self._diff_hash
            if self.compression == "gzip":
                self._inflate_gzip(reader, diff_hash)
            elif self.compression == "zstd":
                import zstandard

                dec = zstandard.ZstdDecompressor().stream_reader(
                    reader, read_size=_CHUNK, read_across_frames=True)
                while not self._stop:
                    out = dec.read(_CHUNK)
                    if not out:
                        break
                    diff_hash.update(out)
                    if not self._put(out):
                        return
            else:
                while not self._stop:
                    out = reader.read(_CHUNK)
                    if not out:
                        break
                    diff_hash.update(out)
                    if not self._put(out):
                        return
            self.compressed_size = reader.size
            self._put(None)
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

    def _inflate_gzip(self, reader, diff_hash):
        dec = zlib.decompressobj(31)
        pending = b""
        while not self._stop:
            if not pending:
                pending = reader.read(_CHUNK)
                if not pending:
                    while not dec.eof:  # output zlib still holds back
                        out = dec.decompress(b"", _CHUNK)
                        if not out:
                            break
                        diff_hash.update(out)
                        if not self._put(out):
                            return
                    if not dec.eof:
                        raise UnpackError(f"{self.name}: truncated gzip stream")
                    return
            if dec.eof:
                # Another gzip member follows (pigz, concatenated streams), or padding.
                if not pending.strip(b"\0"):
                    pending = b""
                    continue
                dec = zlib.decompressobj(31)
            # max_length bounds memory against compression bombs.
            out = dec.decompress(pending, _CHUNK)
            pending = dec.unused_data if dec.eof else dec.unconsumed_tail
            if out:
                diff_hash.update(out)
                if not self._put(out):
                    return

    # consumer side
    def _next_chunk(self):
        if self._eof:
            return False
        item = self._queue.get()
        if item is None:
            self._eof = True
            self._thread.join()
            return False
        if isinstance(item, BaseException):
            self._eof = True
            if isinstance(item, (zlib.error, OSError)) or type(item).__name__ == "ZstdError":
                raise UnpackError(f"{self.name}: cannot decompress: {item}") from item
            raise item
        self._chunk, self._off = item, 0
        return True

    def read(self, n=-1):
        if n is None or n < 0:
            parts = [self._chunk[self._off:]]
            self._pos += len(parts[0])
            self._chunk, self._off = b"", 0
            while self._next_chunk():
                parts.append(self._chunk)
                self._pos += len(self._chunk)
                self._chunk = b""
            return b"".join(parts)
        avail = len(self._chunk) - self._off
        if n <= avail:
            out = self._chunk[self._off:self._off + n]
            self._off += n
            self._pos += n
            return out
        parts = []
        while n > 0:
            avail = len(self._chunk) - self._off
            if avail == 0:
                if not self._next_chunk():
                    break
                continue
            take = min(avail, n)
            parts.append(self._chunk[self._off:self._off + take])
            self._off += take
            self._pos += take
            n -= take
        return b"".join(parts)

    def tell(self):
        return self._pos

    def seek(self, pos, whence=0):
        if whence != 0 or pos < self._pos:
            raise OSError(errno.ESPIPE, "layer stream only seeks forward")
        self.skip(pos - self._pos)
        return self._pos

    def skip(self, n):
        while n > 0:
            avail = len(self._chunk) - self._off
            if avail == 0:
                if not self._next_chunk():
                    raise UnpackError(f"{self.name}: unexpected end of tar data")
                continue
            take = min(avail, n)
            self._off += take
            self._pos += take
            n -= take

    def copy_to_fd(self, fd, n):
        """Write the next n bytes of the stream to fd."""
        while n > 0:
            avail = len(self._chunk) - self._off
            if avail == 0:
                if not self._next_chunk():
                    raise UnpackError(f"{self.name}: unexpected end of tar data")
                continue
            take = min(avail, n)
            view = memoryview(self._chunk)[self._off:self._off + take]
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._off += take
            self._pos += take
            n -= take

    def finish(self):
        """Drain the stream (tar padding after the end marker counts too) and
        check both digests; returns (digest, diff_id)."""
        self._chunk, self._off = b"", 0
        while self._next_chunk():
            self._pos += len(self._chunk)
            self._chunk = b""
        digest = f"{self._compressed_hash.name}:{self._compressed_hash.hexdigest()}"
        diff_id = f"sha256:{self._diff_hash.hexdigest()}"
        if self.expected_digest and digest != self.expected_digest:
            raise DigestMismatch(f"{self.name}: blob {self.expected_digest} digest mismatch "
                                 f"(content hashes to {digest})")
        if self.expected_diff_id and diff_id != self.expected_diff_id:
            raise DigestMismatch(f"{self.name}: uncompressed layer does not match diff_id "
                                 f"{self.expected_diff_id} (hashes to {diff_id})")
        return digest, diff_id

    def close(self):
        self._stop = True
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)


# --- the extractor ---------------------------------------------------------------------------

def clean_name(name):
    """Lexically clean a member name relative to the root ('' is the root).
    `..` at the top stays at the top, as in a chroot."""
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _lstat(name, dir_fd):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _xattrs(member):
    """The xattrs a member carries in PAX headers (GNU/star and libarchive forms)."""
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            out[name] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            import base64
            import urllib.parse

            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            out[name] = base64.b64decode(value + "=" * (-len(value) % 4))
    # An image must not be able to forge overlayfs metadata (redirects,
    # whiteouts, metacopy) that minirun's own mounts would then honour.
    return {k: v for k, v in out.items()
            if not k.startswith(("trusted.overlay.", "user.overlay."))}


def _ns(seconds):
    return int(round(float(seconds) * 1_000_000_000))


class Extractor:
    """Applies layers to the directory open at root_fd (see module doc)."""

    def __init__(self, root_fd, chown=True):
        self.root_fd = root_fd
        self.chown = chown
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
            try:
                fd = mkdirs_in_root(self.root_fd, path)
            except OSError as e:
                raise UnpackError(f"cannot create directory /{path}: {e.strerror}") from None
        except NotADirectoryError:
            if not create:
                return None
            raise UnpackError(f"/{path} is not a directory") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnpackError(f"/{path}: too many levels of symbolic links") from None
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
            shutil.rmtree(name, dir_fd=pfd)
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
        self._touched = {}  # parent dirs this layer changed -> their times before
        # Into an empty directory, a name this layer has not made yet cannot
        # exist if its parent was made by this layer without going through a
        # symlink: skip the lstat (a third of the work on a big first layer).
        # Anything else (an implicit parent, a removal, a parent reached
        # through a symlink) turns this off for the rest of the layer.
        with os.scandir(self.root_fd) as it:
            self._fresh = next(it, None) is None
        self._real_dirs = {""}
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(_WRITERS, thread_name_prefix="unpack-write")
        try:
            tf = tarfile.TarFile(fileobj=stream, mode="r", errorlevel=2)
        except tarfile.TarError as e:
            raise UnpackError(f"{getattr(stream, 'name', 'layer')}: not a tar archive: {e}") \
                from None
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
                self._entry(stream, member)
                self.entries += 1
            self._drain()
            self._restore_dir_times()
        finally:
            self._drain(quiet=True)
            self._pool.shutdown()
            self._forget_dirs()
            self._close_stale()

    # Regular files up to _ASYNC_MAX are written by a small thread pool (the
    # syscalls release the GIL) while this thread parses the next headers.
    # Anything that could touch a path still being written - removals,
    # whiteouts, hard links, a repeated name, closing cached directory fds,
    # directory times - waits for the pool first.
    def _submit(self, key, pfd, base, m, xattrs, data):
        fut = self._pool.submit(self._write_file, pfd, base, m, xattrs, data)
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
        path = clean_name(m.name)
        if not path:
            if not m.isdir():
                raise UnpackError(f"layer entry {m.name!r} would replace the root directory")
            self._set_meta_fd(self.root_fd, m, _xattrs(m))
            self._dir_times.append(("", m))
            return
        parent, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            return self._whiteout(parent, base)
        if m.issparse():
            raise UnpackError(f"/{path}: sparse files are not supported in layers")
        if m.islnk():
            return self._hardlink(path, parent, base, m)
        pfd = self._parent(parent)
        if parent not in self._touched:
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
        if m.isreg() and m.size <= _ASYNC_MAX:
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
            os.symlink(m.linkname, base, dir_fd=pfd)
            self._set_meta_at(pfd, base, m, xattrs, symlink=True)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            dev = os.makedev(m.devmajor, m.devminor) if not m.isfifo() else 0
            os.mknod(base, kind | 0o600, dev, dir_fd=pfd)
            self._set_meta_at(pfd, base, m, xattrs)
        else:
            raise UnpackError(f"/{path}: unsupported tar entry type {m.type!r}")
        self._layer.add(path)

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
            self._setxattr(f"{_proc(pfd)}/{base}", name, value, follow=False)
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

    def _touch(self, path, fd):
        st = os.fstat(fd)
        self._touched[path] = (st.st_atime_ns, st.st_mtime_ns)

    def _restore_dir_times(self):
        # Adding and removing children changed the directories' mtimes: put
        # back the times of directories this layer has no entry for (as umoci
        # does), then set those of the layer's own directory entries.
        own = {path for path, _ in self._dir_times}
        for path, times in self._touched.items():
            if path in own:
                continue
            if not path:
                os.utime(self.root_fd, ns=times)
                continue
            parent, _, base = path.rpartition("/")
            pfd = self._parent(parent, create=False)
            if pfd is not None:
                st = _lstat(base, pfd)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    os.utime(base, ns=times, dir_fd=pfd, follow_symlinks=False)
        for path, m in reversed(self._dir_times):
            if not path:
                os.utime(self.root_fd, ns=self._times(m))
                continue
            parent, _, base = path.rpartition("/")
            pfd = self._parent(parent, create=False)
            if pfd is None:
                continue
            st = _lstat(base, pfd)
            if st is not None and stat.S_ISDIR(st.st_mode):
                os.utime(base, ns=self._times(m), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, path, parent, base, m):
        self._drain()
        if parent not in self._real_dirs:
            self._fresh = False
        target = clean_name(m.linkname)
        if not target:
            raise UnpackError(f"/{path}: hard link to the root directory")
        if target == path:
            return
        tparent, _, tbase = target.rpartition("/")
        tpfd = self._parent(tparent, create=False)
        tst = _lstat(tbase, tpfd) if tpfd is not None else None
        pfd = self._parent(parent)
        if parent not in self._touched:
            self._touch(parent, pfd)
        if tst is None:
            raise UnpackError(f"/{path}: hard link target /{target} does not exist")
        if stat.S_ISDIR(tst.st_mode):
            raise UnpackError(f"/{path}: hard link to a directory /{target}")
        existing = _lstat(base, pfd)
        if existing is not None:
            if existing.st_ino == tst.st_ino and existing.st_dev == tst.st_dev:
                return
            self._remove(pfd, base, existing)
        os.link(tbase, base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        self._layer.add(path)

    def _whiteout(self, parent, base):
        self._drain()
        if base == OPAQUE:
            return self._opaque(parent)
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise UnpackError(f"invalid whiteout {parent}/{base}")
        vpath = f"{parent}/{victim}" if parent else victim
        if vpath in self._layer:
            return  # a whiteout only hides lower layers, never its own layer
        pfd = self._parent(parent, create=False)
        if pfd is None:
            return
        existing = _lstat(victim, pfd)
        if existing is not None:
            if parent not in self._touched:
                self._touch(parent, pfd)
            self._remove(pfd, victim, existing)

    def _opaque(self, parent):
        try:
            fd = open_in_root(self.root_fd, parent, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            if parent not in self._touched:
                self._touch(parent, fd)
            self._clear_lower(fd, parent)
        finally:
            os.close(fd)

    def _clear_lower(self, dfd, dpath):
        """Remove what lower layers put in a directory, keeping this layer's."""
        removed = False
        with os.scandir(dfd) as entries:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_dir in names:
            cpath = f"{dpath}/{name}" if dpath else name
            if cpath in self._layer:
                if is_dir:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
                    try:
                        self._clear_lower(sub, cpath)
                    finally:
                        os.close(sub)
                continue
            self._fresh = False
            if is_dir:
                shutil.rmtree(name, dir_fd=dfd)
            else:
                os.unlink(name, dir_fd=dfd)
            removed = True
        if removed:
            self._forget_dirs()


def _proc(fd):
    return f"/proc/self/fd/{fd}"


def open_root(path, create=False):
    """Open a destination directory for extraction (never through a symlink)."""
    if create:
        os.makedirs(path, exist_ok=True)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise UnpackError(f"cannot open {path}: {e.strerror}") from None


def apply_layer(root_fd, raw, digest=None, diff_id=None, name="layer", chown=True):
    """Apply one layer blob (open binary file) to the directory at root_fd,
    verifying its digest and diff_id.  Returns (digest, diff_id, entries)."""
    stream = LayerStream(raw, digest, diff_id, name)
    try:
        ex = Extractor(root_fd, chown=chown)
        try:
            ex.apply(stream)
        except OSError as e:  # the kernel refused something the layer asked for
            what = f" {e.filename}" if e.filename else ""
            raise UnpackError(f"{name}: cannot create{what}: {e.strerror or e}") from None
        got_digest, got_diff_id = stream.finish()
        return got_digest, got_diff_id, ex.entries
    finally:
        stream.close()


def unpack_image(image, rootfs, chown=True):
    """Apply all layers of an Image (from a Store or OCI layout) to the
    directory rootfs, in order, verifying every digest and diff_id."""
    root_fd = open_root(rootfs)
    try:
        total = 0
        for n, (layer, diff_id) in enumerate(zip(image.layers, image.diff_ids), 1):
            with image.source.open_blob(layer["digest"]) as raw:
                _, _, entries = apply_layer(root_fd, raw, layer["digest"], diff_id,
                                            name=f"layer {n} ({layer['digest'][:19]})",
                                            chown=chown)
            total += entries
        return total
    finally:
        os.close(root_fd)
