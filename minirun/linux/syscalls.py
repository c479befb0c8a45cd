"""Thin Python wrappers over minirun._linux: failures become OSError(errno).

Also the constants (CLONE_NEW*, MS_*, RESOLVE_*) that the standard library
does not define.
"""
import os

from minirun._linux import ffi, lib
from minirun.linux.trace import step

# Namespace flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "time": CLONE_NEWTIME,
}
# The names /proc/<pid>/ns/ uses for each spec namespace type.
PROC_NS_NAMES = {
    "mount": "mnt", "cgroup": "cgroup", "uts": "uts", "ipc": "ipc",
    "user": "user", "pid": "pid", "network": "net", "time": "time",
}

# Mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# openat2 resolve flags (linux/openat2.h)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CLOSE_RANGE_CLOEXEC = 1 << 2

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_CHILD_SUBREAPER = 36


def _check(ret, what, path=None):
    if ret < 0:
        err = ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _cstr(s):
    if s is None:
        return ffi.NULL
    return os.fsencode(s) if isinstance(s, str) else s  # a name's bytes, surrogates kept


def _flag_names(flags, table):
    names = [name for name, bit in table.items() if flags & bit]
    return "|".join(names) or "0"


# The kernel's names for the flags (CLONE_NEWNS is the mount namespace: it was
# the first, before anyone expected others).
CLONE_FLAG_NAMES = {
    "CLONE_NEWNS": CLONE_NEWNS, "CLONE_NEWCGROUP": CLONE_NEWCGROUP, "CLONE_NEWUTS": CLONE_NEWUTS,
    "CLONE_NEWIPC": CLONE_NEWIPC, "CLONE_NEWUSER": CLONE_NEWUSER, "CLONE_NEWPID": CLONE_NEWPID,
    "CLONE_NEWNET": CLONE_NEWNET, "CLONE_NEWTIME": CLONE_NEWTIME,
}


def unshare(flags):
    step("unshare", _flag_names(flags, CLONE_FLAG_NAMES),
         "give this process new namespaces", "unshare(2)")
    _check(lib.mr_unshare(flags), "unshare")


def setns(fd, nstype=0, path=None):
    step("setns", path or str(fd), "join an existing namespace", "setns(2)")
    _check(lib.mr_setns(fd, nstype), "setns", path)


_MS_NAMES = {
    "MS_RDONLY": MS_RDONLY, "MS_NOSUID": MS_NOSUID, "MS_NODEV": MS_NODEV,
    "MS_NOEXEC": MS_NOEXEC, "MS_REMOUNT": MS_REMOUNT, "MS_BIND": MS_BIND,
    "MS_MOVE": MS_MOVE, "MS_REC": MS_REC, "MS_PRIVATE": MS_PRIVATE,
    "MS_SLAVE": MS_SLAVE, "MS_SHARED": MS_SHARED, "MS_UNBINDABLE": MS_UNBINDABLE,
    "MS_RELATIME": MS_RELATIME, "MS_STRICTATIME": MS_STRICTATIME,
    "MS_NOATIME": MS_NOATIME,
}


def mount(source, target, fstype, flags=0, data=None, why="", shown_target=None):
    step("mount", f"{source or 'none'} -> {shown_target or target} type={fstype or '-'} "
         f"flags={_flag_names(flags, _MS_NAMES)}" + (f" data={data}" if data else ""),
         why, "mount(2)")
    _check(lib.mr_mount(_cstr(source), _cstr(target), _cstr(fstype), flags, _cstr(data)),
           f"mount {source or fstype} on {shown_target or target}", shown_target or target)


_UMOUNT_NAMES = {"MNT_FORCE": 1, "MNT_DETACH": 2, "MNT_EXPIRE": 4, "UMOUNT_NOFOLLOW": 8}


def umount2(target, flags=0, why="drop a mount"):
    step("umount2", f"{target} flags={_flag_names(flags, _UMOUNT_NAMES)}", why, "umount2(2)")
    _check(lib.mr_umount2(_cstr(target), flags), "umount", target)


def pivot_root(new_root, put_old):
    step("pivot_root", f"{new_root} {put_old}",
         "make the container's rootfs the root of this mount namespace", "pivot_root(2)")
    _check(lib.mr_pivot_root(_cstr(new_root), _cstr(put_old)), "pivot_root", new_root)


def close_range(first, last=0xFFFFFFFF, flags=0):
    _check(lib.mr_close_range(first, last, flags), "close_range")


def openat2(dirfd, path, flags, mode=0, resolve=0):
    fd = lib.mr_openat2(dirfd, _cstr(path), flags | os.O_CLOEXEC, mode, resolve)
    return _check(fd, f"open {path}", path)


def setdomainname(name):
    step("setdomainname", name, "set the UTS namespace's NIS domain name", "setdomainname(2)")
    raw = name.encode()
    _check(lib.mr_setdomainname(raw, len(raw)), "setdomainname")


def ambient_raise(cap):
    _check(lib.mr_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "raise ambient capability")


def set_child_subreaper():
    """Orphans below us are re-parented to us (a foreground `run` reaps the
    container's init).  Here, not through python-prctl: loading it and
    libcap costs a `run` ~3 ms for this one call."""
    _check(lib.mr_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def ambient_clear():
    _check(lib.mr_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")


def join_session_keyring(name):
    step("keyctl", f"JOIN_SESSION_KEYRING {name}", "a session keyring of the container's own",
         "keyctl(2)")
    _check(lib.mr_join_session_keyring(_cstr(name)), "join session keyring")


BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type


def bpf_load_cgroup_device(insns, license="Apache-2.0"):
    """Load an eBPF cgroup device program (bytes of struct bpf_insn); returns its fd.

    On a verifier rejection the OSError's message carries the verifier log.
    """
    step("bpf", f"BPF_PROG_LOAD type=CGROUP_DEVICE insns={len(insns) // 8}",
         "the device filter of a cgroup v2 container", "bpf(2)")
    buf = ffi.from_buffer(insns)
    lic = _cstr(license)
    fd = lib.mr_bpf_prog_load_cgroup_device(buf, len(insns) // 8, lic, ffi.NULL, 0)
    if fd < 0:
        err = ffi.errno
        log = ffi.new("char[]", 65536)
        lib.mr_bpf_prog_load_cgroup_device(buf, len(insns) // 8, lic, log, 65536)
        detail = ffi.string(log).decode(errors="replace").strip()
        raise OSError(err, f"bpf prog load: {os.strerror(err)}" +
                      (f": {detail}" if detail else ""))
    return fd


def bpf_prog_attach(cgroup_fd, prog_fd, attach_type, flags=0, path=None):
    step("bpf", f"BPF_PROG_ATTACH {path or cgroup_fd} type={attach_type} flags={flags}",
         "attach the program to the cgroup", "bpf(2)")
    _check(lib.mr_bpf_prog_attach(cgroup_fd, prog_fd, attach_type, flags), "bpf prog attach",
           path)


def seccomp_load(program, flags=0):
    """Load a BPF program (bytes of struct sock_filter) for this process."""
    step("seccomp", f"SECCOMP_SET_MODE_FILTER {len(program) // 8} instructions flags={flags}",
         "restrict the system calls the container may make", "seccomp(2)")
    buf = ffi.from_buffer(program)
    _check(lib.mr_seccomp_filter(flags, buf, len(program) // 8), "load seccomp filter")
