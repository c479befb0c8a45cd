"""Resolve and create paths inside a container's rootfs as if chrooted there.

A container image is untrusted: its symlinks may point anywhere, including
`../../..` or `/etc`.  Every path minirun takes from config.json (mount
destinations, device nodes, masked paths) is therefore resolved with
openat2(RESOLVE_IN_ROOT), which makes the kernel treat the rootfs fd as `/`
for every component and symlink, and minirun then acts on the resulting fd
(for mounts: on /proc/self/fd/N).  This closes the class of bugs behind runc's
CVE-2021-30465, CVE-2024-45310 and CVE-2026-41579.
"""
import errno
import os
import posixpath
import stat

from minirun.linux.syscalls import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


def open_in_root(root_fd, path, flags=os.O_PATH, mode=0):
    """Open `path` (absolute or not) inside the root; returns an fd.  A path
    is str or bytes (image layers give bytes: names are never decoded)."""
    slash, dot = (b"/", b".") if isinstance(path, bytes) else ("/", ".")
    return openat2(root_fd, path.lstrip(slash) or dot, flags, mode, _RESOLVE)


def exists_in_root(root_fd, path):
    try:
        os.close(open_in_root(root_fd, path))
        return True
    except FileNotFoundError:
        return False


def mkdirs_in_root(root_fd, path, mode=0o755, _depth=0):
    """`mkdir -p` inside the root; returns an O_PATH fd of the directory.

    A dangling symlink on the way is followed the way the kernel would follow
    it if the rootfs were "/", and its target is created inside the root."""
    if _depth > 40:
        raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
    slash = b"/" if isinstance(path, bytes) else "/"  # str or bytes, kept as given
    # Lexical clean-up clamps ".." at "/", as RESOLVE_IN_ROOT does.
    parts = [p for p in posixpath.normpath(slash + path).split(slash) if p]
    done = []
    for part in parts:
        done.append(part)
        rel = slash.join(done)
        try:
            fd = open_in_root(root_fd, rel, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            parent = open_in_root(root_fd, slash.join(done[:-1]), os.O_PATH | os.O_DIRECTORY)
            try:
                os.mkdir(part, mode, dir_fd=parent)
            except FileExistsError:
                target = os.readlink(part, dir_fd=parent)  # EINVAL if not a symlink
                base = slash.join(done[:-1])
                joined = target if target.startswith(slash) else base + slash + target
                os.close(mkdirs_in_root(root_fd, joined, mode, _depth + 1))
            finally:
                os.close(parent)
            fd = open_in_root(root_fd, rel, os.O_PATH | os.O_DIRECTORY)
        if len(done) < len(parts):
            os.close(fd)
    if not parts:
        return os.dup(root_fd)
    return fd


def create_file_in_root(root_fd, path, mode=0o644):
    """Make sure a regular file (or whatever already is there) exists at path;
    returns an O_PATH fd of it.  Used for bind-mount targets of files."""
    parent, _, _name = path.rstrip("/").rpartition("/")
    os.close(mkdirs_in_root(root_fd, parent))
    try:
        return open_in_root(root_fd, path)
    except FileNotFoundError:
        fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, mode)
        os.close(fd)
        return open_in_root(root_fd, path)


def fd_path(fd):
    """The magic-link path through which syscalls that take paths act on fd."""
    return f"/proc/self/fd/{fd}"


def is_dir_fd(fd):
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def split_parent(root_fd, path):
    """Open the parent of `path` inside the root; returns (parent_fd, name)."""
    parent, _, name = path.rstrip("/").rpartition("/")
    if not name:
        raise OSError(errno.EINVAL, "not a file path", path)
    return mkdirs_in_root(root_fd, parent), name
