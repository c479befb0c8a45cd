"""A message channel between minirun and the processes it forks.

Two pipes (one per direction) carry one JSON object per line; a closed peer
reads as None.  All four ends are close-on-exec, so a successful execve
inside the container is seen by the parent as EOF.  (Pipes rather than a
socketpair: importing the socket module costs more than the whole exchange.)
"""
import os

from minirun import jsonio as json


class Channel:
    def __init__(self, read_fd, write_fd):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buffer = b""
        self._held = []  # messages read ahead of the one awaited (see hold)

    @classmethod
    def pair(cls):
        a_read, b_write = os.pipe2(os.O_CLOEXEC)
        b_read, a_write = os.pipe2(os.O_CLOEXEC)
        return cls(a_read, a_write), cls(b_read, b_write)

    def send(self, **msg):
        data = json.dumps(msg).encode() + b"\n"
        while data:
            data = data[os.write(self.write_fd, data):]

    def hold(self, msg):
        """Give a message back: the next recv returns it (in hold order)."""
        self._held.append(msg)

    def recv(self):
        if self._held:
            return self._held.pop(0)
        while b"\n" not in self._buffer:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def fds(self):
        return (self.read_fd, self.write_fd)

    def close(self):
        for fd in self.fds():
            try:
                os.close(fd)
            except OSError:
                pass
        self.read_fd = self.write_fd = -1
