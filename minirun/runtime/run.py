"""`minirun run`: create + start; in the foreground, also wait, relay signals
(and the terminal), delete, and exit with the container's status."""
import os

from minirun.linux.signals import (SIG_DFL, SIGCONT, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
                                   SIGUSR2, SIGWINCH, set_handler)
from minirun.runtime import delete as delete_mod
from minirun.runtime.create import create
from minirun.runtime.start import start
from minirun.runtime.state import Container

FORWARDED = (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT)


def run(root, container_id, bundle=".", detach=False, pid_file=None, console_socket=None,
        no_pivot=False, no_new_keyring=False, preserve_fds=0, keep=False):
    """Returns the exit status to exit with (0 when detached)."""
    from minirun import spec

    config = spec.load_bundle_config(os.path.abspath(bundle))
    terminal = bool((config.get("process") or {}).get("terminal"))
    console_parent = None
    console_child = None
    if terminal and not console_socket and not detach:
        # We are the terminal's other end: the init sends us the pty master.
        import socket

        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    container = create(root, container_id, bundle, pid_file=pid_file,
                       console_socket=console_socket, no_pivot=no_pivot,
                       no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                       console_sock=console_child, subreaper=not detach, config=config)
    pid = container.pid
    container.close()
    if detach:
        start(root, container_id)
        return 0
    master = attach_terminal(console_parent, pid)
    try:
        start(root, container_id)
        if master is not None:
            from minirun.runtime import tty

            tty.relay(master, pid)
        status = wait_for_init(pid)
    finally:
        for sig in FORWARDED:
            set_handler(sig, SIG_DFL)
        if not keep:
            with Container.load(root, container_id) as c:
                delete_mod.destroy(c)
    return status


def attach_terminal(console_parent, pid):
    """Take the pty master from the container (when we are its terminal's
    other end), give it our window size before the program can ask, and
    forward our signals to pid.  Returns the master fd, or None."""
    master = None
    if console_parent is not None:
        import socket

        from minirun.runtime import tty

        _, fds, _, _ = socket.recv_fds(console_parent, 1024, 1)
        console_parent.close()
        master = fds[0]
        tty.copy_window_size(master)
    for sig in FORWARDED:
        set_handler(sig, lambda signum, _frame: _forward(pid, signum, master))
    return master


def _forward(pid, signum, master):
    if signum == SIGWINCH and master is not None:
        from minirun.runtime import tty

        tty.copy_window_size(master)
        return
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def wait_for_init(pid):
    """Reap children (we are their subreaper) until the init exits."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if got == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
