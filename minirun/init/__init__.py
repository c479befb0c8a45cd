"""What runs inside the new namespaces (stage 2 of runtime/spawn.py), in order:

  1. a new session; umask 0 while we build the filesystem
  2. rootfs.prepare: mounts, devices (still seeing the host's paths)
  3. the console, if process.terminal
  4. rootfs.switch_root: pivot_root (or MS_MOVE+chroot)
  5. sysctls, hostname/domainname, rootfs.finish (masked/read-only paths)
  6. process.py: rlimits, user, capabilities, no_new_privs, cwd, fds
  7. "ready" to the parent; wait for "exec"; fexecve the sealed helper,
     which waits on exec.fifo for `minirun start` and then execs the user's
     program.
"""
# This package's own module stays free of imports: the runtime imports
# InitArgs before it forks, and stage 1 imports stage 2's code (init/stage2.py
# and what it needs) while the runtime waits on the kernel to put it in its
# cgroup (runtime/spawn.py).


class InitArgs:
    def __init__(self, *, config, rootfs_path, fifo_fd, helper_fd, no_pivot=False,
                 no_new_keyring=False, preserve_fds=0, console_sock_fd=None, container_id="",
                 seccomp=None, process=None, exec_mode=False, state=None):
        self.config = config
        self.rootfs_path = rootfs_path
        self.fifo_fd = fifo_fd
        self.helper_fd = helper_fd
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.console_sock_fd = console_sock_fd
        self.container_id = container_id
        self.seccomp = seccomp        # (fd, flags) of a compiled filter, or None
        self.process = process if process is not None else config.get("process") or {}
        self.exec_mode = exec_mode    # joining a running container (minirun exec)
        self.state = state or {}      # OCI state for hooks run inside the container
