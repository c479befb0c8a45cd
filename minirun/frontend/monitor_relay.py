"""The monitor's I/O relay: container output to the log and to attached
clients (with back-pressure), client input to the container's stdin or pty,
and the pty's window size."""
import fcntl
import os
import selectors
import struct

from minirun.frontend.monitor_proto import STDERR, STDOUT, frame

PAUSE_ABOVE = 1 << 20          # bytes queued for a slow client: stop reading the container
RESUME_BELOW = 256 << 10


class Relay:
    """The monitor's I/O methods (a mixin of monitor.Monitor)."""

    def _apply_size(self, c):
        if c.master is not None and c.size:
            import termios

            try:
                fcntl.ioctl(c.master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", c.size[0], c.size[1], 0, 0))
            except OSError:
                pass

    def read_output(self, c, fd):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""   # EIO: the pty's last slave end closed
        if not data:
            self._close_output(c, fd)
            if c.state == "draining":
                self._maybe_exited(c)
            return
        stream = c.outputs[fd]
        c.log.write(stream, data)
        kind = STDOUT if stream == "stdout" else STDERR
        for client in list(c.clients):
            self.send(client, frame(kind, data))

    def _close_output(self, c, fd):
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass
        c.outputs.pop(fd, None)
        if fd == c.master:
            c.master = None
            c.stdin = None
        os.close(fd)

    def _flow(self, c):
        """Back-pressure: stop reading a container a slow attached client can't keep up with."""
        queued = max((len(cl.outbuf) for cl in c.clients), default=0)
        if not c.paused and queued > PAUSE_ABOVE:
            c.paused = True
            for fd in c.outputs:
                self._mute(fd)
        elif c.paused and queued < RESUME_BELOW:
            c.paused = False
            for fd in c.outputs:
                self.sel.register(fd, selectors.EVENT_READ, OutputHandler(self, c, fd))

    def _mute(self, fd):
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _flush_stdin(self, c):
        if c.stdin is None:
            return
        while c.stdin_buf:
            try:
                n = os.write(c.stdin, c.stdin_buf)
            except BlockingIOError:
                self.call_later(0.05, lambda: self._flush_stdin(c))
                return
            except OSError:
                c.stdin_buf.clear()
                break
            del c.stdin_buf[:n]
        if c.stdin_eof and c.stdin != c.master:
            os.close(c.stdin)
            c.stdin = None

    def _close_io(self, c):
        for fd in list(c.outputs):
            self._close_output(c, fd)
        if c.stdin is not None and c.stdin != c.master:
            os.close(c.stdin)
        c.stdin = None
        if c.report is not None:
            self.sel.unregister(c.report)
            c.report.close()
            c.report = None


class OutputHandler:
    def __init__(self, monitor, c, fd):
        self.m, self.c, self.fd = monitor, c, fd

    def __call__(self, _mask):
        self.m.read_output(self.c, self.fd)
