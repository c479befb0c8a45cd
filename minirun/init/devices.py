"""Device nodes in the container's /dev: the defaults every container gets
(runtime-spec "Default Devices"), linux.devices, and the standard symlinks.

All of it is done relative to a dirfd of /dev resolved inside the rootfs, so
an image whose /dev is a symlink cannot make us create nodes on the host
(runc GHSA-xjvp-4fhw-gc47).  In a user namespace mknod is not allowed, so the
host's node is bind-mounted onto an empty file instead, as runc does.
"""
import os
import stat

from minirun.errors import ConfigError
from minirun.linux import paths
from minirun.linux.syscalls import MS_BIND, mount
from minirun.linux.trace import step

DEFAULT_DEVICES = [
    # name, major, minor
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
    ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
]
LINKS = [
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
]
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _make_node(dir_fd, name, kind, major, minor, mode, uid, gid, bind_from_host, shown):
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"device {shown}: a directory is in the way")
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    if bind_from_host and kind != stat.S_IFIFO:
        fd = os.open(name, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o000, dir_fd=dir_fd)
        os.close(fd)
        target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            mount(shown, paths.fd_path(target), None, MS_BIND,
                  why="no mknod in a user namespace: bind the host's node", shown_target=shown)
        finally:
            os.close(target)
        return
    step("mknod", f"{shown} {major}:{minor} mode={mode:o}", "a device node", "mknod(2)")
    os.mknod(name, kind | (mode & 0o7777), os.makedev(major, minor), dir_fd=dir_fd)
    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    os.chmod(name, mode & 0o7777, dir_fd=dir_fd)


def create_defaults(root_fd, bind_from_host):
    dev = paths.mkdirs_in_root(root_fd, "/dev")
    dev_dir = os.open(paths.fd_path(dev), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.close(dev)
    try:
        for name, major, minor in DEFAULT_DEVICES:
            _make_node(dev_dir, name, stat.S_IFCHR, major, minor, 0o666, 0, 0,
                       bind_from_host, f"/dev/{name}")
    finally:
        os.close(dev_dir)


def create_from_config(root_fd, devices, bind_from_host):
    for d in devices:
        path = d.get("path") or ""
        if not path.startswith("/dev/"):
            raise ConfigError(f"device path {path!r} must be under /dev")
        kind = _TYPES.get(d.get("type"))
        if kind is None:
            raise ConfigError(f"device {path}: unknown type {d.get('type')!r}")
        parent, name = paths.split_parent(root_fd, path)
        parent_dir = os.open(paths.fd_path(parent), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.close(parent)
        try:
            mode = d.get("fileMode")
            _make_node(parent_dir, name, kind, d.get("major", 0), d.get("minor", 0),
                       0o666 if mode is None else mode, d.get("uid", 0), d.get("gid", 0),
                       bind_from_host, path)
        finally:
            os.close(parent_dir)


def create_links(root_fd):
    dev = paths.mkdirs_in_root(root_fd, "/dev")
    dev_dir = os.open(paths.fd_path(dev), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.close(dev)
    step("symlink", " ".join(f"/dev/{name}->{target}" for name, target in LINKS),
         "the links programs expect in /dev", "symlink(2)")
    try:
        for name, target in LINKS:
            try:
                os.symlink(target, name, dir_fd=dev_dir)
            except FileExistsError:
                if name == "ptmx":
                    # Some images ship /dev/ptmx as a node; the spec wants the
                    # link to the container's own devpts instance.
                    st = os.stat(name, dir_fd=dev_dir, follow_symlinks=False)
                    if not stat.S_ISDIR(st.st_mode):
                        os.unlink(name, dir_fd=dev_dir)
                        os.symlink(target, name, dir_fd=dev_dir)
    finally:
        os.close(dev_dir)


def open_verified_null(root_fd):
    """An O_PATH fd of the container's /dev/null, checked to really be the
    1:3 character device (CVE-2025-31133: a symlink there must not let a
    masked path be bound to something else)."""
    fd = paths.open_in_root(root_fd, "/dev/null")
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise ConfigError("/dev/null in the container is not the null device")
    return fd
