"""The CLI's side of the monitor: find or spawn it, ask it things, attach to a container.

The monitor of a --root listens on <root>/.frontend/monitor.sock.  Finding it
and spawning it happen under <root>/.frontend/monitor.lock, the lock the
monitor also takes before it exits when idle, so a request never reaches a
monitor that is going away (see monitor.py).
"""
import _socket  # socket's C module: `socket` builds enum classes at import (~7 ms a call)
import fcntl
import os
import sys

from minirun import jsonio  # json's text, without json's re/enum imports
from minirun.errors import MinirunError
from minirun.frontend import monitor_proto as proto

_BOOT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
         "from minirun.frontend.monitor import main; main()")


class MonitorError(MinirunError):
    exit_code = 125


def _paths(root):
    d = proto.state_dir(root)
    return d, os.path.join(d, proto.SOCKET), os.path.join(d, proto.LOCK)


# A worker starts as the monitor does: without `site` (-S, -I) and with the
# import path of the CLI that spawned the monitor, so it neither scans
# site-packages nor runs .pth files (a third of the interpreter's start-up).
_WORKER_BOOT = ("import sys; sys.path[:] = {paths!r}; "
                "from minirun.frontend.worker import main; main(sys.argv[1:])")


def worker_argv(root):
    """How the monitor runs its workers (this interpreter, this package, no click):
    argv + [op, id, ...] -> worker.main([root, op, id, ...])."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [pkg_root] + [p for p in sys.path[1:] if p and os.path.isabs(p) and p != pkg_root]
    return [sys.executable, "-S", "-I", "-c", _WORKER_BOOT.format(paths=paths), root]


def connect(root, spawn=True):
    """A socket connected to the monitor of `root` (spawned if needed), or None
    when spawn is False and no monitor runs."""
    d, sock_path, lock_path = _paths(root)
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        sock = _try_connect(sock_path)
        if sock is None and spawn:
            _spawn(root)
            sock = _try_connect(sock_path)
            if sock is None:
                raise MonitorError(f"the monitor did not start (see {d}/{proto.LOGFILE})")
        return sock
    finally:
        os.close(fd)


def _try_connect(path):
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        return sock
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None


def _spawn(root):
    """Start the monitor: detached (own session, parent = init or our subreaper),
    a child subreaper (kept across exec), stdio on /dev/null and its log."""
    d, _, _ = _paths(root)
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = [sys.executable, "-S", "-I", "-c", _BOOT, pkg_root, root,
            jsonio.dumps(worker_argv(root))]
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            if os.fork():
                os._exit(0)
            from minirun.linux import caps

            caps.set_child_subreaper()
            null = os.open("/dev/null", os.O_RDWR)
            log = os.open(os.path.join(d, proto.LOGFILE),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(log, 2)
            os.set_inheritable(w, True)
            os.chdir("/")
            import signal

            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execv(sys.executable, argv + [str(w)])
        finally:
            os._exit(127)
    os.close(w)
    os.waitpid(pid, 0)
    try:
        ok = os.read(r, 1)
    finally:
        os.close(r)
    if ok != b"1":
        raise MonitorError(f"the monitor did not start (see {d}/{proto.LOGFILE})")


def _send_line(sock, msg):
    sock.sendall(jsonio.dumps(msg).encode() + b"\n")


def _read_line(sock, timeout=None):
    sock.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    sock.settimeout(None)
    if not buf:
        raise MonitorError("the monitor closed the connection")
    return jsonio.loads(buf)


def tracing():
    """`minirun --trace`: the monitor's start worker should narrate too."""
    from minirun.linux import trace

    return trace.enabled()


def request(root, msg, spawn=True, timeout=None):
    """One request, one JSON reply; None when no monitor runs and spawn is False.
    TimeoutError if the reply takes longer than `timeout`."""
    sock = connect(root, spawn=spawn)
    if sock is None:
        return None
    try:
        _send_line(sock, msg)
        return _read_line(sock, timeout)
    finally:
        sock.close()


class Waiter:
    """`wait` on the monitor, which replies when the container's exit is handled."""

    def __init__(self, root, cid):
        self.sock = connect(root, spawn=False)
        if self.sock is not None:
            _send_line(self.sock, {"op": "wait", "id": cid})

    def result(self, timeout=None):
        """{"exit_code": N} or {"held": False}; None if nobody to ask;
        raises TimeoutError after `timeout` seconds."""
        if self.sock is None:
            return None
        reply = _read_line(self.sock, timeout)
        self.sock.close()
        self.sock = None
        return reply

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# --- attach -------------------------------------------------------------------------
class StartFailed(MinirunError):
    def __init__(self, message, code):
        super().__init__(message)
        self.exit_code = code


def start_attached(root, cid, directory, tty=False, stdin=False, sig_proxy=True,
                   detach_keys=None):
    """Start the container through the monitor and stay attached: its output on
    ours, our stdin to it (stdin=True), our terminal size and Ctrl-C (tty), or
    our signals forwarded (no tty).  Returns its exit code (0 after the detach
    keys); raises StartFailed."""
    return _session(root, {"op": "start", "id": cid, "dir": directory, "attach": True,
                           "stdin": stdin, "trace": tracing()}, tty, stdin, sig_proxy,
                    detach_keys)


def attach(root, cid, tty=False, stdin=True, sig_proxy=True, detach_keys=None):
    """Join a running container's I/O (`minirun attach`); its exit code, or 0
    when the detach keys were typed."""
    return _session(root, {"op": "attach", "id": cid, "stdin": stdin}, tty, stdin, sig_proxy,
                    detach_keys)


DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def parse_detach_keys(text):
    """Docker's --detach-keys: "ctrl-p,ctrl-q", "a", "ctrl-@" ... -> bytes."""
    if text is None:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        k = key.strip().lower()
        if len(k) == 1:
            out.append(ord(k))
        elif k.startswith("ctrl-") and len(k) == 6 and (k[5].isalpha() or k[5] in "@[\\]^_"):
            out.append(ord(k[5].upper()) & 0x1f)
        else:
            from minirun.errors import BadOption

            raise BadOption(f"invalid detach keys ({text}): use e.g. ctrl-p,ctrl-q or a,b")
    return bytes(out)


class _DetachMatcher:
    """Finds the detach sequence in what the user types; what is held back as
    a possible start of it is passed on once it turns out not to be."""

    def __init__(self, keys):
        self.keys = keys or b""
        self.held = b""

    def feed(self, data):
        """-> (bytes to send on, detached?)"""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            self.held += bytes([byte])
            if self.keys.startswith(self.held):
                if self.held == self.keys:
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
        return bytes(out), False


def _session(root, request, tty, stdin, sig_proxy, detach_keys):
    import selectors
    import signal

    sock = connect(root)
    if tty:
        request["size"] = _winsize()
    _send_line(sock, request)
    matcher = _DetachMatcher(detach_keys if stdin else None)
    sock.setblocking(False)
    out = bytearray()
    state = {"exit": None, "error": None}
    saved_tty = None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    pending_signals = []

    def on_signal(signum, _frame):
        pending_signals.append(signum)
        try:
            os.write(wake_w, b"s")
        except BlockingIOError:
            pass

    forwarded = [signal.SIGWINCH] if tty else []
    if sig_proxy and not tty:
        forwarded += [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                      signal.SIGUSR1, signal.SIGUSR2]
    old_handlers = {s: signal.signal(s, on_signal) for s in forwarded}
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "sock")
    sel.register(wake_r, selectors.EVENT_READ, "signal")
    stdin_open = bool(stdin)
    if stdin_open:
        try:
            sel.register(0, selectors.EVENT_READ, "stdin")
        except (ValueError, OSError, PermissionError):
            stdin_open = False  # e.g. a regular file: not pollable
            _send_stdin_file(sock)
    try:
        if tty and os.isatty(0):
            import termios
            import tty as ttymod

            saved_tty = termios.tcgetattr(0)
            ttymod.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop typed-ahead input
        pending = bytearray()
        while state["exit"] is None and state["error"] is None:
            for key, _ in sel.select():
                if key.data == "sock":
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        state["error"] = ("the monitor went away", 125)
                        break
                    out += data
                    _handle_frames(out, state)
                elif key.data == "stdin":
                    data = os.read(0, 65536)
                    if data:
                        data, detached = matcher.feed(data)
                        if data:
                            pending += proto.frame(proto.STDIN, data)
                        if detached:
                            state["exit"] = 0
                            break
                    else:
                        sel.unregister(0)
                        stdin_open = False
                        pending += proto.frame(proto.STDIN, b"\x04") if tty else \
                            proto.frame(proto.CLOSE_STDIN)
                elif key.data == "signal":
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                    while pending_signals:
                        signum = pending_signals.pop(0)
                        if signum == signal.SIGWINCH:
                            pending += proto.frame(proto.RESIZE, "%d %d" % tuple(_winsize()))
                        else:
                            pending += proto.frame(proto.SIGNAL, str(signum))
            if pending:
                sock.setblocking(True)
                try:
                    sock.sendall(pending)
                except OSError:
                    pass
                sock.setblocking(False)
                pending.clear()
    finally:
        if saved_tty is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved_tty)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        sel.close()
        sock.close()
        os.close(wake_r)
        os.close(wake_w)
    if state["error"] is not None:
        raise StartFailed(*state["error"])
    return state["exit"]


def _send_stdin_file(sock):
    """stdin is a regular file (epoll refuses those): send all of it now.  The
    monitor always reads its clients, so blocking here cannot deadlock."""
    sock.setblocking(True)
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            sock.sendall(proto.frame(proto.STDIN, data))
        sock.sendall(proto.frame(proto.CLOSE_STDIN))
    finally:
        sock.setblocking(False)


def _handle_frames(buf, state):
    while len(buf) >= proto.HEADER.size:
        kind, length = proto.HEADER.unpack_from(buf)
        if len(buf) < proto.HEADER.size + length:
            return
        payload = bytes(buf[proto.HEADER.size:proto.HEADER.size + length])
        del buf[:proto.HEADER.size + length]
        if kind == proto.STDOUT:
            _write_all(1, payload)
        elif kind == proto.STDERR:
            _write_all(2, payload)
        elif kind == proto.STARTED:
            msg = jsonio.loads(payload)
            if "error" in msg:
                state["error"] = (msg["error"], msg.get("code", 125))
        elif kind == proto.EXIT:
            state["exit"] = jsonio.loads(payload).get("exit_code")
            if state["exit"] is None:
                state["exit"] = 255


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        except BrokenPipeError:
            return
        view = view[n:]


def _winsize():
    import fcntl as f
    import struct
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", f.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        return [rows, cols]
    except OSError:
        return [24, 80]
