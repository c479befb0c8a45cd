"""Building the container's filesystem view, inside its new mount namespace.

Applies: root.path, root.readonly, linux.rootfsPropagation, mounts[],
linux.devices (with devices.py), maskedPaths, readonlyPaths, and the switch
of root (pivot_root, or MS_MOVE + chroot with --no-pivot).

Every destination is resolved inside the rootfs (minirun.linux.paths) and
mounted through /proc/self/fd/N, so a symlink in the image can never send a
mount to the host.
"""
import os
import stat

from minirun.errors import ConfigError
from minirun.init import devices, mountopts
from minirun.linux import paths, syscalls
from minirun.linux.syscalls import (
    MNT_DETACH, MS_BIND, MS_MOVE, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC,
    MS_REMOUNT, MS_SLAVE, mount,
)
from minirun.linux.trace import step

# statvfs f_flag bits -> mount flags that a bind remount must keep (the kernel
# refuses to clear "locked" flags inherited from a more privileged namespace).
_ST_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048,
             4096: 1 << 21}


def _kept_flags(path_or_fd):
    st = os.statvfs(path_or_fd)
    return sum(ms for st_bit, ms in _ST_TO_MS.items() if st.f_flag & st_bit)


def prepare(config, rootfs, own_mount_ns=True):
    """Everything before the root switch; returns an O_PATH fd of the rootfs.

    Without a mount namespace of its own (the config has none, as in runc's
    conformance tests) the mounts are made in the caller's namespace, all
    under a bind of the rootfs onto itself, which `delete` detaches."""
    linux = config.get("linux") or {}
    if own_mount_ns:
        # Nothing we mount from here on may propagate back to the host.
        before, _ = mountopts.root_propagation(linux.get("rootfsPropagation"))
        mount(None, "/", None, before,
              why="stop mount events propagating between host and container")
    # pivot_root needs the new root to be a mount point.
    mount(rootfs, rootfs, None, MS_BIND | MS_REC, why="make the rootfs a mount point")
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    mounts = config.get("mounts") or []
    for m in mounts:
        mount_entry(root_fd, m, config)
    dev_is_bind = any(m.get("destination", "").rstrip("/") == "/dev" and _is_bind(m)
                      for m in mounts)
    in_userns = _in_user_namespace(config)
    if not dev_is_bind:
        devices.create_defaults(root_fd, bind_from_host=in_userns)
    devices.create_from_config(root_fd, linux.get("devices") or [], bind_from_host=in_userns)
    if not dev_is_bind:
        devices.create_links(root_fd)
    return root_fd


def _in_user_namespace(config):
    return any(ns.get("type") == "user" for ns in (config.get("linux") or {}).get("namespaces") or [])


def _is_bind(m):
    opts = m.get("options") or []
    return m.get("type") == "bind" or "bind" in opts or "rbind" in opts


def mount_entry(root_fd, m, config):
    dest = m["destination"]
    if not dest.startswith("/"):
        dest = "/" + dest  # runtime-spec: relative destinations are relative to /
    kind = m.get("type") or ""
    flags, propagation, data = mountopts.parse(m.get("options"))
    if _is_bind(m):
        _mount_bind(root_fd, m, dest, flags, propagation)
        return
    if kind == "cgroup":
        _mount_cgroup(root_fd, dest, flags, config)
        return
    if "idmap" in (m.get("options") or []) or "ridmap" in (m.get("options") or []):
        raise ConfigError(f"mount {dest}: idmapped mounts are not supported")
    if kind in ("proc", "sysfs"):
        _refuse_symlink(root_fd, dest, kind)
    target = paths.mkdirs_in_root(root_fd, dest)
    try:
        try:
            mount(m.get("source") or kind, paths.fd_path(target), kind, flags, data,
                  why=f"a {kind} filesystem for the container", shown_target=dest)
        except PermissionError:
            if kind != "sysfs":
                raise
            # A new sysfs needs a network namespace owned by our user namespace;
            # without one, show the host's /sys read-only, as runc does.
            mount("/sys", paths.fd_path(target), None, MS_BIND | MS_REC,
                  why="sysfs cannot be mounted here: bind the host's", shown_target=dest)
            _remount(root_fd, dest, (flags | MS_RDONLY) | MS_BIND)
        _apply_propagation(root_fd, dest, propagation)
    finally:
        os.close(target)


def _refuse_symlink(root_fd, dest, kind):
    parent, name = paths.split_parent(root_fd, dest)
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise ConfigError(f"refusing to mount {kind} on {dest}: it is a symlink in the rootfs")
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"refusing to mount {kind} on {dest}: not a directory")
    except FileNotFoundError:
        pass
    finally:
        os.close(parent)


def _mount_bind(root_fd, m, dest, flags, propagation):
    source = m.get("source") or ""
    if not os.path.isabs(source):
        raise ConfigError(f"mount {dest}: bind source {source!r} must be an absolute path")
    try:
        src_is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    except FileNotFoundError:
        raise ConfigError(f"mount {dest}: bind source {source}: no such file or directory") from None
    target = (paths.mkdirs_in_root(root_fd, dest) if src_is_dir
              else paths.create_file_in_root(root_fd, dest))
    try:
        mount(source, paths.fd_path(target), None, MS_BIND | (flags & MS_REC),
              why="show a host path inside the container", shown_target=dest)
    finally:
        os.close(target)
    extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
    if extra:
        _remount(root_fd, dest, extra | MS_BIND | (flags & MS_REC))
    _apply_propagation(root_fd, dest, propagation)


def _remount(root_fd, dest, flags):
    """Change the flags of the mount now at dest (a bind remount)."""
    fd = paths.open_in_root(root_fd, dest)
    try:
        mount(None, paths.fd_path(fd), None, flags | MS_REMOUNT | _kept_flags(paths.fd_path(fd)),
              why="apply the mount's flags (ro, nosuid, ...)", shown_target=dest)
    finally:
        os.close(fd)


def _apply_propagation(root_fd, dest, propagation):
    for prop in propagation:
        fd = paths.open_in_root(root_fd, dest)
        try:
            mount(None, paths.fd_path(fd), None, prop, why="mount propagation", shown_target=dest)
        finally:
            os.close(fd)


def _cgroup_hierarchies():
    """(mountpoint, fstype, super options) of the host's cgroup mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, super_opts = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((left.split()[4], fstype, super_opts))
    return out


def _own_cgroups():
    """controllers-string -> path, from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


def _mount_cgroup(root_fd, dest, flags, config):
    """/sys/fs/cgroup inside the container: the container's own cgroups only.

    With a private cgroup namespace a fresh cgroup mount already shows just
    the container's subtree; without one, bind the container's directory."""
    private_ns = any(ns.get("type") == "cgroup" and not ns.get("path")
                     for ns in (config.get("linux") or {}).get("namespaces") or [])
    hierarchies = _cgroup_hierarchies()
    own = _own_cgroups()
    target = paths.mkdirs_in_root(root_fd, dest)
    try:
        v2_only = [h for h in hierarchies if h[0] == "/sys/fs/cgroup" and h[1] == "cgroup2"]
        if v2_only:
            if private_ns:
                mount("cgroup2", paths.fd_path(target), "cgroup2", flags & ~MS_RDONLY,
                      why="the container's cgroup2 tree", shown_target=dest)
            else:
                host = "/sys/fs/cgroup" + own.get("", "/")
                mount(host, paths.fd_path(target), None, MS_BIND | MS_REC,
                      why="bind the container's own cgroup", shown_target=dest)
        else:
            mount("cgroup", paths.fd_path(target), "tmpfs", (flags & ~MS_RDONLY) | MS_NOSUID |
                  MS_NODEV | MS_NOEXEC, "mode=755", why="a tmpfs to hold one dir per hierarchy",
                  shown_target=dest)
            _mount_v1_hierarchies(root_fd, dest, hierarchies, own, private_ns, flags)
    finally:
        os.close(target)
    if flags & MS_RDONLY:
        _remount(root_fd, dest, MS_RDONLY | MS_BIND)


def _mount_v1_hierarchies(root_fd, dest, hierarchies, own, private_ns, flags):
    for mountpoint, fstype, super_opts in hierarchies:
        if not mountpoint.startswith("/sys/fs/cgroup/"):
            continue
        name = mountpoint[len("/sys/fs/cgroup/"):]
        if "/" in name:
            continue
        if fstype == "cgroup2":
            key = ""
            opts = None
        else:
            ctrls = [o for o in super_opts.split(",") if o not in ("rw", "ro") and
                     not o.startswith(("release_agent", "clone_children", "xattr"))]
            key = ",".join(ctrls)
            opts = key
        sub = paths.mkdirs_in_root(root_fd, f"{dest}/{name}")
        try:
            sub_path = paths.fd_path(sub)
            sub_flags = (flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC
            mounted = False
            if private_ns:
                try:
                    mount("cgroup", sub_path, fstype, sub_flags, opts,
                          why="this hierarchy, rooted at the container's cgroup",
                          shown_target=f"{dest}/{name}")
                    mounted = True
                except PermissionError:
                    pass
            if not mounted:
                own_path = own.get(key, own.get(key.replace("name=", ""), "/"))
                mount(mountpoint + own_path, sub_path, None, MS_BIND,
                      why="bind the container's own cgroup", shown_target=f"{dest}/{name}")
        finally:
            os.close(sub)
        if flags & MS_RDONLY:
            _remount(root_fd, f"{dest}/{name}", MS_RDONLY | MS_BIND | sub_flags)


def switch_root(rootfs, no_pivot, own_mount_ns=True):
    """Make the rootfs "/" and detach the host's filesystem from this namespace."""
    if not own_mount_ns:
        # Moving or pivoting would change the host's own mount table.
        os.chdir(rootfs)
        step("chroot", ".", "no mount namespace: only a chroot is possible", "chroot(2)")
        os.chroot(".")
        os.chdir("/")
        return
    if no_pivot:
        os.chdir(rootfs)
        mount(rootfs, "/", None, MS_MOVE, why="--no-pivot: move the rootfs over /")
        step("chroot", ".", "--no-pivot: a chroot (escapable; pivot_root is not)", "chroot(2)")
        os.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        # pivot_root(".", ".") stacks the old root on top of the new one;
        # unmounting it then leaves only the container's tree.
        syscalls.pivot_root(".", ".")
        os.fchdir(old_root)
        mount(None, ".", None, MS_SLAVE | MS_REC,
              why="don't let the unmount below propagate to the host")
        syscalls.umount2(".", MNT_DETACH, why="detach the host's old root stacked on top: "
                         "nothing outside the rootfs stays reachable")
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def finish(config):
    """After the root switch: masked and read-only paths, read-only root."""
    linux = config.get("linux") or {}
    _, after = mountopts.root_propagation(linux.get("rootfsPropagation"))
    if after:
        mount(None, "/", None, after, why="linux.rootfsPropagation of the new root")
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in linux.get("maskedPaths") or []:
            _mask(root_fd, path)
        for path in linux.get("readonlyPaths") or []:
            _make_readonly(root_fd, path)
    finally:
        os.close(root_fd)
    if (config.get("root") or {}).get("readonly"):
        mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _kept_flags("/"),
              why="root.readonly")


def _mask(root_fd, path):
    try:
        fd = paths.open_in_root(root_fd, path)
    except FileNotFoundError:
        return
    try:
        if paths.is_dir_fd(fd):
            mount("tmpfs", paths.fd_path(fd), "tmpfs", MS_RDONLY, None,
                  why="maskedPaths: hide a directory under an empty read-only tmpfs",
                  shown_target=path)
        else:
            null = devices.open_verified_null(root_fd)
            try:
                mount(paths.fd_path(null), paths.fd_path(fd), None, MS_BIND,
                      why="maskedPaths: hide a file under /dev/null", shown_target=path)
            finally:
                os.close(null)
    finally:
        os.close(fd)


def _make_readonly(root_fd, path):
    try:
        fd = paths.open_in_root(root_fd, path)
    except FileNotFoundError:
        return
    try:
        mount(paths.fd_path(fd), paths.fd_path(fd), None, MS_BIND | MS_REC,
              why="readonlyPaths: a bind of the path onto itself ...", shown_target=path)
    finally:
        os.close(fd)
    _remount(root_fd, path, MS_BIND | MS_RDONLY | MS_REC)
