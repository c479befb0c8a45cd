"""The container's process attributes, applied just before the final exec.

Applies process.user (uid, gid, additionalGids, umask), process.rlimits,
process.capabilities, process.noNewPrivileges, process.cwd, process.env and
process.args; then hands over to the sealed exec helper (see
c_ext/exec_helper.c for why the last execve is not done by Python).
"""
import errno
import os
import resource
import stat

from minirun.errors import CommandNotFound, CommandNotInvokable, ConfigError, ExecError
from minirun.linux import caps, syscalls
from minirun.linux.trace import step

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_path(env):
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return DEFAULT_PATH


def resolve_executable(args0, env):
    """Find args[0] as execvp would, inside the container (we are already in
    its root).  Fails now, at create, with the path in the message."""
    if "/" in args0:
        candidates = [args0]
    else:
        candidates = [os.path.join(d or ".", args0) for d in env_path(env).split(":")]
    found_not_exec = None
    for path in candidates:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK):
            return path
        found_not_exec = path
    if found_not_exec:
        raise CommandNotInvokable(f"exec: {found_not_exec}: permission denied")
    if "/" in args0:
        raise CommandNotFound(f"exec: {args0}: no such file or directory")
    raise CommandNotFound(f"exec: \"{args0}\": executable file not found in $PATH")


def apply_rlimits(rlimits):
    for rl in rlimits or []:
        kind = getattr(resource, rl["type"], None)
        if kind is None:
            raise ConfigError(f"unknown rlimit type {rl['type']!r}")
        step("setrlimit", f"{rl['type']} soft={rl['soft']} hard={rl['hard']}", "", "setrlimit(2)")
        try:
            resource.setrlimit(kind, (rl["soft"], rl["hard"]))
        except (ValueError, OSError) as e:
            raise ConfigError(f"setrlimit {rl['type']}: {e}") from None


def apply_user_and_caps(process):
    """Drop to process.user and process.capabilities (the order matters:
    bounding set first, while we still have CAP_SETPCAP; then the ids with
    keep-caps so permitted survives setuid; then the sets, then ambient)."""
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    spec_caps = process.get("capabilities")
    if spec_caps is not None:
        available = caps.current_bounding()
        wanted = {k: caps.parse(spec_caps.get(k), f"process.capabilities.{k}")
                  for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
        missing = set().union(*wanted.values()) - available
        if missing:
            # runtime-spec: a capability that cannot be granted is a warning.
            os.write(2, ("minirun: warning: cannot grant " + ", ".join(
                sorted(caps.CAP_NAMES[c] for c in missing)) + " (not in the bounding set)\n").encode())
            wanted = {k: v & available for k, v in wanted.items()}
        caps.apply_bounding(wanted["bounding"])
        caps.set_keepcaps(True)
    groups = user.get("additionalGids") or []
    step("setgroups/setresgid/setresuid", f"uid={uid} gid={gid} groups={groups}",
         "become the container's user", "credentials(7)")
    try:
        os.setgroups(groups)
    except PermissionError:
        if groups:
            raise
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if spec_caps is not None:
        caps.set_keepcaps(False)
        # The kernel never sets inheritable caps on its own; neither do we,
        # unless the config asks (CVE-2022-29162).
        caps.apply_sets(wanted["effective"], wanted["permitted"], wanted["inheritable"])
        # The kernel allows an ambient cap only if it is permitted and
        # inheritable; the others are not raised (runc: the same; the warning
        # was given at validation, spec.validate_process).
        caps.apply_ambient(wanted["ambient"] & wanted["permitted"] & wanted["inheritable"])
    if process.get("noNewPrivileges"):
        caps.set_no_new_privs()


def chdir_checked(cwd, retry_later=False):
    """chdir, then verify we really are inside the container's root
    (CVE-2024-21626: a leaked fd as cwd would put us on the host).
    With retry_later, a permission error returns False instead of failing."""
    try:
        os.chdir(cwd)
    except PermissionError:
        if retry_later:
            return False
        raise ExecError(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                        "permission denied") from None
    except FileNotFoundError:
        raise ExecError(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                        "no such file or directory") from None
    except NotADirectoryError:
        raise ExecError(f"chdir to cwd ({cwd!r}) set in config.json failed: not a directory") \
            from None
    try:
        here = os.getcwd()
    except FileNotFoundError:
        here = ""
    if not here.startswith("/"):
        raise ExecError(f"current working directory {cwd!r} is outside of the container root")
    return True


def close_fds(keep_from, keep):
    """Mark every fd >= keep_from close-on-exec, except those in `keep`."""
    try:
        syscalls.close_range(keep_from, 0xFFFFFFFF, syscalls.CLOSE_RANGE_CLOEXEC)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOSYS, errno.EINVAL):
            raise
        # Older kernels, or a seccomp profile that does not know close_range.
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= keep_from:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass
    for fd in range(3, keep_from):
        try:
            os.set_inheritable(fd, True)
        except OSError as e:
            if e.errno != errno.EBADF:
                raise
    for fd in keep:
        os.set_inheritable(fd, True)


def exec_helper(helper_fd, fifo_fd, seccomp_fd, seccomp_flags, path, args, env):
    argv = ["minirun-exec", str(fifo_fd), str(seccomp_fd), str(seccomp_flags), path, *args]
    # The helper's own steps (c_ext/exec_helper.c) are announced here: it
    # runs with the container's environment and prints nothing itself.
    step("fexecve", "minirun-exec (the sealed memfd)", "leave Python; the helper "
         "waits on exec.fifo for `minirun start`" if fifo_fd >= 0 else "leave Python", "execve(2)")
    if seccomp_fd >= 0:
        step("seccomp", f"SECCOMP_SET_MODE_FILTER flags={seccomp_flags} (in the helper)",
             "the syscall filter, loaded last so that it only has to allow the final execve",
             "seccomp(2)")
    step("execve", f"{path} {args}", "become the container's process", "execve(2)")
    envp = {k: v for k, _, v in (e.partition("=") for e in env)}
    try:
        os.execve(helper_fd, argv, envp)  # fexecve: execveat(fd, "", AT_EMPTY_PATH)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOSYS):
            raise
        # A seccomp profile without execveat: exec the memfd through /proc.
        os.execve(f"/proc/self/fd/{helper_fd}", argv, envp)
