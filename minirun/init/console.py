"""process.terminal: a pseudo-terminal for the container.

The pty pair comes from the container's own devpts instance; the master is
sent to whoever listens on --console-socket (one message, the pty name as
data and the master fd as SCM_RIGHTS, as runc does), the slave becomes the
container's stdin/stdout/stderr, its controlling terminal and /dev/console.
"""
import fcntl
import os
import struct
import termios

from minirun.linux import paths
from minirun.linux.syscalls import MS_BIND, mount
from minirun.linux.trace import step

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def setup_in_container(rootfs_path, sock_fd, process):
    if rootfs_path is not None:
        root_fd = os.open(rootfs_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            master = paths.open_in_root(root_fd, "/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
        finally:
            os.close(root_fd)
    else:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    step("open", "/dev/ptmx", "a pseudo-terminal pair for process.terminal", "pty(7)")
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    size = process.get("consoleSize")
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
    if rootfs_path is not None:
        root_fd = os.open(rootfs_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            target = paths.create_file_in_root(root_fd, "/dev/console", 0o600)
            try:
                mount(paths.fd_path(slave), paths.fd_path(target), None, MS_BIND,
                      why="/dev/console is the container's terminal", shown_target="/dev/console")
            finally:
                os.close(target)
        finally:
            os.close(root_fd)
    import socket  # already loaded by whoever asked for a terminal (exec.py, run.py)

    sock = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(sock, [f"/dev/pts/{number}".encode()], [master])
    finally:
        sock.close()
        os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    if os.getsid(0) != os.getpid():
        os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
