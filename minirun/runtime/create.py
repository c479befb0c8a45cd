"""`minirun create`: build the container and leave its process waiting.

When this returns, the container's init exists (its host pid is in the pid
file), has all its namespaces, mounts, user and capabilities, and is blocked
in the exec helper on <state>/exec.fifo until `minirun start`.
"""
import os

from minirun import errors, spec
from minirun.errors import ConfigError, MinirunError
from minirun.init import InitArgs
from minirun.init.helper import sealed_helper_fd
from minirun.linux import proc
from minirun import hooks
from minirun.runtime.spawn import SpawnPlan, kill_and_reap, spawn
from minirun.runtime.state import CREATED, Container, now_rfc3339


def write_pid_file(path, pid):
    """The host pid in decimal, no newline (go-runc parses the whole file)."""
    path = os.path.abspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def connect_console(path):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise MinirunError(f"console socket {path}: {e.strerror.lower()}") from None
    return sock


def create(root, container_id, bundle=".", pid_file=None, console_socket=None, no_pivot=False,
           no_new_keyring=False, preserve_fds=0, console_sock=None, subreaper=False,
           config=None):
    """Create the container; returns its (locked) Container.  On any failure
    nothing is left behind: no process, cgroup or state directory.  `config`:
    the bundle's config.json as spec.load_bundle_config returned it, when the
    caller has read it already."""
    bundle = os.path.abspath(bundle)
    if config is None:
        config = spec.load_bundle_config(bundle)
    process = config.get("process") or {}
    rootfs = spec.rootfs_path(bundle, config)
    if not os.path.isdir(rootfs):
        raise ConfigError(f"rootfs {rootfs}: no such directory")
    if process.get("terminal") and console_socket is None and console_sock is None:
        raise ConfigError("process.terminal is true: a --console-socket is required to "
                          "create a container with a terminal")
    preserve_fds += int(os.environ.get("LISTEN_FDS", "0") or 0)
    linux = config.get("linux") or {}
    namespaces = spec.namespaces(config)
    seccomp = None
    if linux.get("seccomp"):
        from minirun.linux import seccomp as seccomp_mod

        seccomp = seccomp_mod.write_filter_fd(linux["seccomp"], os.path.join(root, ".seccomp"))

    container = Container.new(root, container_id)
    cgroup = None
    spawned = None
    owned_fds = []
    try:
        container.data.update(bundle=bundle, rootfs=rootfs, created=now_rfc3339(),
                              annotations=config.get("annotations") or {},
                              no_new_keyring=no_new_keyring)
        if "mount" not in namespaces:
            # Its mounts will live in our namespace, on a bind of the rootfs.
            from minirun.runtime.delete import mounts_at

            container.data["host_mounts"] = {"path": rootfs, "below": mounts_at(rootfs)}
        container.save_config(config)
        os.mkfifo(container.fifo_path, 0o622)
        os.chmod(container.fifo_path, 0o622)  # not narrowed by our umask: any uid may write
        # Opened here, by the host's root: the init may run as a user (or in a
        # user namespace) that cannot reach the state directory.
        fifo_fd = os.open(container.fifo_path, os.O_PATH | os.O_CLOEXEC)
        owned_fds.append(fifo_fd)
        from minirun.cgroups import open_cgroup, resources_from_spec

        cgroup = open_cgroup(container_id, linux.get("cgroupsPath"))
        cgroup.plan()
        # Recorded before they exist: killed at any instant from here on, we
        # leave nothing that `delete --force` cannot find (runtime/state.py).
        container.record_objects({"cgroup": cgroup.to_dict(),
                                  "host_mounts": container.data.get("host_mounts")})
        cgroup.create(resources_from_spec(linux), linux.get("devices"))
        container.data["cgroup"] = cgroup.to_dict()
        container.save()

        helper_fd = sealed_helper_fd()
        owned_fds.append(helper_fd)
        console_fd = None
        if process.get("terminal"):
            sock = console_sock or connect_console(console_socket)
            owned_fds.append(sock.detach())
            console_fd = owned_fds[-1]
        if seccomp:
            owned_fds.append(seccomp[0])
        init_args = InitArgs(config=config, rootfs_path=rootfs, fifo_fd=fifo_fd,
                             helper_fd=helper_fd, no_pivot=no_pivot,
                             no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                             console_sock_fd=console_fd, container_id=container_id,
                             seccomp=seccomp)
        plan = SpawnPlan(
            new_ns=[t for t, path in namespaces.items() if not path],
            join_ns={t: path for t, path in namespaces.items() if path},
            uid_mappings=linux.get("uidMappings") or [],
            gid_mappings=linux.get("gidMappings") or [],
            cgroup=cgroup,
            oom_score_adj=process.get("oomScoreAdj"),
            stage2=init_args,
            subreaper=subreaper,
            close_in_child=[container.lock_fd],
        )
        spawned = spawn(plan)
        for fd in owned_fds:
            os.close(fd)
        owned_fds = []
        # Not saved yet: were we to crash now, the init is in the cgroup that
        # `delete --force` kills.
        container.data.update(pid=spawned.pid, pid_start=proc.start_time(spawned.pid))
        _wait_ready(spawned.channel, container, config)
        container.data["status"] = CREATED
        container.save()
        spawned.channel.send(exec=True)
        msg = spawned.channel.recv()  # EOF: the helper was exec'd
        if msg is not None:
            raise MinirunError(msg.get("error", "container init failed"))
        spawned.channel.close()
        if pid_file:
            write_pid_file(pid_file, spawned.pid)
        return container
    except BaseException:
        for fd in owned_fds:
            os.close(fd)
        if spawned is not None:
            spawned.channel.close()
            kill_and_reap(spawned.pid)
        if cgroup is not None:
            cgroup.kill_all(9)
            cgroup.destroy()
        from minirun.runtime.delete import release_host_mounts

        release_host_mounts(container.data.get("host_mounts"))
        container.remove()
        container.close()
        raise


def _wait_ready(channel, container, config):
    """Serve the init's requests (hooks to run in the runtime's namespace)
    until it reports ready."""
    while True:
        msg = channel.recv()
        if msg is None:
            raise MinirunError("container init exited before it was ready")
        if "error" in msg:
            raise errors.from_report(msg)
        if msg.get("ready"):
            return
        if msg.get("hooks") == "createRuntime":
            try:
                hooks.run_phase(config, "createRuntime", container.oci_state())
            except MinirunError as e:
                channel.send(error=str(e))
                raise
            channel.send(done=True, state=container.oci_state())
