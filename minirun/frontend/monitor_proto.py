"""The monitor's protocol, and the small helpers its modules share (stdlib only).

A client (the CLI) connects to <root>/.frontend/monitor.sock and sends one
JSON line: {"op": "start"|"attach"|"wait"|"cancel"|"status", "id": ...}.
Requests get one JSON line back; `start` with "attach": true and `attach`
then exchange frames both ways: 1 byte type, 4 bytes big-endian length,
payload (STDIN, RESIZE, SIGNAL, CLOSE_STDIN from the client; STARTED,
STDOUT, STDERR, EXIT from the monitor).
"""
import fcntl
import os
import struct
import sys

from _signal import SIGKILL

from minirun import jsonio
from minirun.frontend import recordfile

# selectors.EVENT_READ/WRITE: the CLI imports this module for the frame format,
# and does not need selectors (nor json, signal) for that
_EVENT_READ, _EVENT_WRITE = 1, 2

STDIN, STDOUT, STDERR, RESIZE, EXIT, CLOSE_STDIN, SIGNAL, STARTED = range(8)
HEADER = struct.Struct(">BI")
STREAMS = {STDOUT: "stdout", STDERR: "stderr"}
SOCKET, LOCK, PIDFILE, LOGFILE = "monitor.sock", "monitor.lock", "monitor.pid", "monitor.log"


def state_dir(root):
    return os.path.join(root, ".frontend")


def frame(kind, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    return HEADER.pack(kind, len(payload)) + payload


def log(msg):
    sys.stderr.write(f"{recordfile.timestamp()} monitor[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def nonblock(fd):
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)


def send_signal(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, ValueError, OverflowError):
        pass


def kill(pid):
    send_signal(pid, SIGKILL)


class Client:
    """A connection from a CLI: first a JSON request line, then (attach) frames."""

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.request = None
        self.container = None      # set while attached
        self.wants_stdin = False
        self.closing = False       # close once outbuf is flushed


class ClientHandler:
    def __init__(self, monitor, client):
        self.m = monitor
        self.client = client

    def __call__(self, mask):
        m, client = self.m, self.client
        if client.sock is None:
            return
        if mask & _EVENT_WRITE and client.outbuf:
            try:
                n = client.sock.send(client.outbuf)
                del client.outbuf[:n]
            except BlockingIOError:
                pass
            except OSError:
                m.close_client(client)
                return
            if not client.outbuf and client.closing:
                m.close_client(client)
                return
            m.update_client(client)
        if mask & _EVENT_READ:
            try:
                data = client.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                m.close_client(client)
                return
            client.inbuf += data
            self._parse()

    def _parse(self):
        m, client = self.m, self.client
        if client.request is None:
            nl = client.inbuf.find(b"\n")
            if nl < 0:
                return
            try:
                client.request = jsonio.loads(bytes(client.inbuf[:nl]))
            except ValueError:
                m.reply(client, {"error": "bad request"})
                return
            del client.inbuf[:nl + 1]
            m.handle_request(client, client.request)
        while client.sock is not None and len(client.inbuf) >= HEADER.size:
            kind, length = HEADER.unpack_from(client.inbuf)
            if len(client.inbuf) < HEADER.size + length:
                return
            payload = bytes(client.inbuf[HEADER.size:HEADER.size + length])
            del client.inbuf[:HEADER.size + length]
            m.handle_frame(client, kind, payload)
