"""Stage 2's main: the steps listed at the top of init/__init__.py, in order."""
import fcntl  # noqa: F401  (everything stage 2 needs is imported up front:
import os
import resource  # noqa: F401  after pivot_root the host's Python library is gone)
import struct
import termios  # noqa: F401

import _socket  # the C module only: the socket module's enums cost milliseconds
from minirun.errors import ConfigError, MinirunError
from minirun.init import console
from minirun.init import process as proc_setup
from minirun.init import rootfs
from minirun.linux import caps, syscalls
from minirun.linux.trace import step
from minirun import hooks


def _bring_up_loopback():
    step("ioctl", "SIOCSIFFLAGS lo IFF_UP", "a new network namespace starts with lo down",
         "netdevice(7)")
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, ifreq))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))     # SIOCSIFFLAGS
    finally:
        s.close()


def _set_sysctls(sysctls):
    for key, value in (sysctls or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        if ".." in key.split(".") or key.startswith("/"):
            raise ConfigError(f"invalid sysctl {key!r}")
        step("write", f"{path} = {value}", "linux.sysctl (a namespaced kernel parameter)",
             "sysctl(8)")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise ConfigError(f"sysctl {key}={value}: {e.strerror.lower()}") from None


def run(args, channel):
    """Stage 2 main: set up the container, then exec.  Never returns."""
    config = args.config
    process = args.process
    linux = config.get("linux") or {}
    namespaces = {ns["type"]: ns.get("path") for ns in linux.get("namespaces") or []}
    caps.set_dumpable(False)
    if not args.exec_mode:
        os.setsid()
        os.umask(0)
        fifo_fd = args.fifo_fd
        own_mount_ns = "mount" in namespaces
        if "network" in namespaces and not namespaces["network"]:
            _bring_up_loopback()
        if hooks.has(config, "createContainer") or hooks.has(config, "startContainer"):
            import subprocess  # noqa: F401  (hooks after pivot_root cannot import it)
        root_fd = rootfs.prepare(config, args.rootfs_path, own_mount_ns)
        os.close(root_fd)
        if any(hooks.has(config, p) for p in ("createRuntime", "createContainer",
                                               "startContainer")):
            # createRuntime runs in the runtime's namespaces: minirun runs it,
            # and sends back the state (with our host pid) for the others.
            channel.send(hooks="createRuntime")
            reply = channel.recv()
            if reply is None or "error" in reply:
                raise MinirunError((reply or {}).get("error", "createRuntime hooks failed"))
            args.state = reply["state"]
        if hooks.has(config, "createContainer"):
            hooks.run_phase(config, "createContainer", args.state)
        if args.console_sock_fd is not None:
            console.setup_in_container(args.rootfs_path, args.console_sock_fd, process)
        rootfs.switch_root(args.rootfs_path, args.no_pivot, own_mount_ns)
        _set_sysctls(linux.get("sysctl"))
        if config.get("hostname"):
            if "uts" not in namespaces:
                raise ConfigError("unable to set hostname without a private UTS namespace")
            step("sethostname", config["hostname"], "the UTS namespace's own hostname",
                 "sethostname(2)")
            _socket.sethostname(config["hostname"])
        if config.get("domainname"):
            syscalls.setdomainname(config["domainname"])
        rootfs.finish(config)
        if not args.no_new_keyring:
            try:
                syscalls.join_session_keyring(f"_ses.{args.container_id}")
            except OSError:
                pass  # keyrings disabled or not allowed here; runc ignores this too
    else:
        fifo_fd = -1
        if args.console_sock_fd is not None:
            console.setup_in_container(None, args.console_sock_fd, process)
    if not process.get("args"):
        # A config without process: create works, `start` reports the error
        # and this init just ends (runtime-spec: start MUST fail).
        channel.send(ready=True)
        if channel.recv() is not None:
            channel.close()
            _wait_for_start(fifo_fd)
        os._exit(0)
    env = process.get("env") or []
    user = process.get("user") or {}
    os.umask(user.get("umask", 0o022))
    proc_setup.apply_rlimits(process.get("rlimits"))
    seccomp_fd, seccomp_flags = args.seccomp or (-1, 0)
    keep_from = 3 + args.preserve_fds
    helper_fd = _move_above(args.helper_fd, keep_from)
    if fifo_fd >= 0:
        fifo_fd = _move_above(fifo_fd, keep_from)
    if seccomp_fd >= 0:
        seccomp_fd = _move_above(seccomp_fd, keep_from)
    if min(channel.fds()) < keep_from:
        raise MinirunError("internal error: channel fd collides with --preserve-fds")
    proc_setup.close_fds(keep_from, [fd for fd in (fifo_fd, seccomp_fd) if fd >= 0])
    # chdir first as root (the user may lack search rights on the way to a
    # cwd it owns); if that is refused, again as the user, like runc.
    cwd = process.get("cwd") or "/"
    chdir_done = proc_setup.chdir_checked(cwd, retry_later=True)
    if seccomp_fd >= 0 and not process.get("noNewPrivileges"):
        # Without no_new_privs the kernel only accepts a filter from a process
        # holding CAP_SYS_ADMIN, so load it now, before capabilities are
        # dropped (as runc does); the few steps left run under it.
        program = os.pread(seccomp_fd, os.fstat(seccomp_fd).st_size, 0)
        syscalls.seccomp_load(program, seccomp_flags)
        os.close(seccomp_fd)
        seccomp_fd, seccomp_flags = -1, 0
    proc_setup.apply_user_and_caps(process)
    if not chdir_done:
        proc_setup.chdir_checked(cwd)
    path = proc_setup.resolve_executable(process["args"][0], env)
    channel.send(ready=True)
    if channel.recv() is None:
        os._exit(1)  # minirun went away: do not run a half-owned container
    if fifo_fd >= 0 and hooks.has(config, "startContainer"):
        channel.close()
        # startContainer hooks run after `start`, inside the container, before
        # the program: wait for start here (in Python) instead of the helper.
        _wait_for_start(fifo_fd)
        fifo_fd = -1
        state = dict(args.state, status="running")
        hooks.run_phase(config, "startContainer", state)
    proc_setup.exec_helper(helper_fd, fifo_fd, seccomp_fd, seccomp_flags, path,
                           process["args"], env)
    raise MinirunError("exec helper returned")


def _wait_for_start(fifo_fd):
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo_fd)


def _move_above(fd, minimum):
    if fd >= minimum:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, minimum)
    os.close(fd)
    return new
