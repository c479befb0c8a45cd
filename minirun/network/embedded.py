"""Sockets for the embedded DNS resolver, made inside a container's netns.

A socket belongs to the network namespace it was created in, wherever the
process holding it lives.  So the start worker steps into the new
container's namespace (setns), binds UDP and TCP 127.0.0.11:53 there (the
loopback route covers all of 127.0.0.0/8), steps back, and passes the two
descriptors to the monitor, which answers on them (minirun/dns/server.py).
"""
import contextlib
import os
import socket

from minirun.errors import MinirunError
from minirun.linux import syscalls
from minirun.linux.trace import step

ADDRESS = "127.0.0.11"
PORT = 53


@contextlib.contextmanager
def _in_netns(netns_fd):
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(netns_fd, syscalls.CLONE_NEWNET)
        try:
            yield
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWNET)
    finally:
        os.close(own)


def open_sockets(netns):
    """(udp, tcp) sockets bound to 127.0.0.11:53 in `netns` (a pid or an nsfs path)."""
    from minirun.network.api import _open_netns

    fd = _open_netns(netns)
    step("socket+bind", f"{ADDRESS}:{PORT} udp+tcp (container netns)",
         "the embedded DNS resolver's address, served by the monitor", "setns(2), bind(2)")
    udp = tcp = None
    try:
        with _in_netns(fd):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            udp.bind((ADDRESS, PORT))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((ADDRESS, PORT))
            tcp.listen(16)
    except OSError as e:
        for s in (udp, tcp):
            if s is not None:
                s.close()
        raise MinirunError(f"embedded DNS on {ADDRESS}:{PORT}: {e.strerror}") from None
    finally:
        os.close(fd)
    return udp, tcp
