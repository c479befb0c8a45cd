"""The monitor: one small process per --root that holds every started container.

Something has to be the parent of a detached container's init: only the
parent learns its exit status, and someone must drain its stdout/stderr
while nobody is attached.  Docker has containerd-shim per container, podman
has conmon (C, ~1-2 MB) per container.  minirun has ONE monitor per --root,
shared by all containers, that imports nothing but the standard library, so
its cost stays flat as containers are added (see docs/frontend.md for the
figures).  All real work happens in short-lived `minirun` worker processes
it starts; the monitor is only plumbing:

    CLI ──unix socket──> monitor ──posix_spawn──> worker.py start ID
                           │ child subreaper        └─ runtime create (C1 forks C2,
                           │                           C1 exits: C2, the container's
                           │                           init, is re-parented to us)
                           │                           + network attach + start
                           ├─ reads the container's stdout/stderr pipes (or pty master)
                           │    -> <record>/container-log.json (JSON lines, rotated)
                           │    -> attached clients (`run` without -d, `start -a`)
                           ├─ waitpid: the exit status -> worker.py exited ID STATUS
                           │    (cgroup, network, OOM, --rm, restart decision)
                           ├─ restart timers (back-off decided by the exit worker)
                           └─ health checks: worker.py health ID CMD (an exec) every interval

It exits by itself when it holds no container and no client (idle), under
the same lock the CLI takes to find or spawn it, so a CLI never talks to a
monitor that is going away.

By job: this file is the loop (timers, children, clients, start, exit);
monitor_start.py starting (requests, the start worker, its report, `run`'s
create); forkserver.py spawning workers (forked from a process that has
imported their code, or posix_spawned);
monitor_proto.py the protocol (attach frames, request lines); logwriter.py
the json-file log; monitor_relay.py the I/O relay; monitor_health.py the
health checks.
"""
import fcntl
import heapq
import itertools
import json
import os
import selectors
import signal
import socket
import sys
import time

from minirun.frontend import forkserver, recordfile
from minirun.frontend.logwriter import LogWriter  # noqa: F401  (tests use it from here)
from minirun.frontend.monitor_health import HealthChecks
from minirun.frontend.monitor_proto import (  # noqa: F401  (client.py uses them from here)
    CLOSE_STDIN, EXIT, HEADER, LOCK, LOGFILE, PIDFILE, RESIZE, SIGNAL, SOCKET, STARTED, STDERR,
    STDIN, STDOUT, STREAMS, Client, ClientHandler, frame, log, state_dir)
from minirun.frontend.monitor_proto import nonblock as _nonblock
from minirun.frontend.monitor_proto import send_signal as _signal
from minirun.frontend.monitor_relay import OutputHandler, Relay  # noqa: F401
from minirun.frontend.monitor_start import Starting
from minirun.frontend.restart import exit_code

IDLE_SECONDS = 2.0
DRAIN_SECONDS = 2.0            # after the init exits, how long to wait for pipe EOF


# --- helpers -----------------------------------------------------------------------
class Timer:
    def __init__(self, when, callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class Monitor(Starting, Relay, HealthChecks, forkserver.Spawning):
    def __init__(self, root, argv):
        self.root = root
        self.argv = argv           # client.worker_argv: [python, -S, -I, -c, BOOT, ROOT]
        self.dir = state_dir(root)
        self.sel = selectors.DefaultSelector()
        self.containers = {}
        self.children = {}         # pid -> callback(status)
        self.early = {}            # pids reaped before anyone claimed them
        self.timers = []
        self.seq = itertools.count()
        self.idle_since = time.monotonic()
        self.listener = None
        self.dns = None            # the embedded DNS resolver, once a container needs it
        self.forkserver = None     # forkserver.Client once started; False: not again
        self.forkserver_pids = set()
        self.forked = 0            # workers the forkserver made (`status` shows it)

    # --- timers ----------------------------------------------------------------
    def call_later(self, delay, callback):
        t = Timer(time.monotonic() + delay, callback)
        heapq.heappush(self.timers, (t.when, next(self.seq), t))
        return t

    def _run_timers(self):
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, t = heapq.heappop(self.timers)
            if not t.cancelled:
                self._safely(t.callback)

    def _next_timeout(self):
        while self.timers and self.timers[0][2].cancelled:
            heapq.heappop(self.timers)
        if not self.timers:
            return 1.0
        return max(0.0, min(1.0, self.timers[0][0] - time.monotonic()))

    def _safely(self, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # one container's trouble must not stop the others
            import traceback

            log(f"internal error: {e}\n{traceback.format_exc()}")

    # --- main loop -------------------------------------------------------------
    def serve(self, ready_fd):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.dir, SOCKET)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, self._accept)
        r, w = os.pipe()
        _nonblock(r)
        _nonblock(w)
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: self._shutdown())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.sel.register(r, selectors.EVENT_READ, lambda _m: self._drain_wakeup(r))
        with open(os.path.join(self.dir, PIDFILE), "w") as f:
            f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        log("started")
        while True:
            for key, mask in self.sel.select(self._next_timeout()):
                self._safely(key.data, mask)
            self._reap()
            self._run_timers()
            self._maybe_exit()

    def _drain_wakeup(self, fd):
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass

    def _busy(self):
        return bool(self.containers or self.children or any(
            isinstance(k.data, ClientHandler) for k in self.sel.get_map().values()))

    def _maybe_exit(self):
        if self._busy():
            self.idle_since = time.monotonic()
            return
        if time.monotonic() - self.idle_since < IDLE_SECONDS:
            return
        # Under the CLI's lock: a CLI that connected before we took it is in
        # the accept queue, and one that comes after finds no socket.
        fd = os.open(os.path.join(self.dir, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        import select

        pending, _, _ = select.select([self.listener], [], [], 0)
        if pending:
            os.close(fd)
            return
        self._shutdown()

    def _shutdown(self):
        for name in (SOCKET, PIDFILE):
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        if self.containers:
            log(f"exiting with {len(self.containers)} containers still held")
        else:
            log("idle: exiting")
        os._exit(0)

    # --- children ----------------------------------------------------------------
    def _reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.forkserver_pids:
                self.forkserver_pids.discard(pid)
                if self.forkserver and self.forkserver.pid == pid:
                    log(f"the forkserver exited (status {exit_code(status)})")
                    self._drop_forkserver()
                continue
            callback = self.children.pop(pid, None)
            if callback is not None:
                self._safely(callback, status)
            else:
                self.early[pid] = status  # a container init whose worker has not reported
                if len(self.early) > 1024:
                    self.early.pop(next(iter(self.early)))

    # --- clients -------------------------------------------------------------------
    def _accept(self, _mask):
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            client = Client(sock)
            self.sel.register(sock, selectors.EVENT_READ, ClientHandler(self, client))

    def send(self, client, data):
        if client.sock is None:
            return
        client.outbuf += data
        self.update_client(client)

    def update_client(self, client):
        if client.sock is None:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
        try:
            self.sel.modify(client.sock, events, self.sel.get_key(client.sock).data)
        except (KeyError, ValueError):
            pass
        c = client.container
        if c is not None:
            self._flow(c)

    def reply(self, client, msg):
        self.send(client, json.dumps(msg).encode() + b"\n")
        client.closing = True
        if not client.outbuf:
            self.close_client(client)

    def close_client(self, client):
        if client.sock is None:
            return
        try:
            self.sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()
        client.sock = None
        c = client.container
        if c is not None:
            if client in c.clients:
                c.clients.remove(client)
            if client.wants_stdin:
                c.stdin_eof = True   # `run -i`: stdin closes with the client (stdin_once)
                self._flush_stdin(c)
            self._flow(c)
        for c in self.containers.values():
            if client in c.waiters:
                c.waiters.remove(client)
            if client in c.starters:
                c.starters.remove(client)

    def handle_request(self, client, req):
        op = req.get("op")
        if op == "start":
            self.start(client, req)
        elif op == "create":
            self.create(client, req)
        elif op == "wait":
            c = self.containers.get(req.get("id"))
            if c is None:
                self.reply(client, {"held": False})
            else:
                c.waiters.append(client)
        elif op == "cancel":
            c = self.containers.get(req.get("id"))
            cancelled = False
            if c is not None and c.state == "backoff":
                c.restart_timer.cancel()
                cancelled = True
                self._finish(c, None)
            self.reply(client, {"ok": True, "cancelled": cancelled})
        elif op == "attach":
            self.attach(client, req)
        elif op == "status":
            fs = self.forkserver
            self.reply(client, {"pid": os.getpid(), "containers": {
                cid: {"state": c.state, "pid": c.pid} for cid, c in self.containers.items()},
                "forkserver": {"pid": fs.pid, "ready": fs.ready, "forked": self.forked}
                if fs else None})
        else:
            self.reply(client, {"error": f"unknown request {op!r}"})

    def handle_frame(self, client, kind, payload):
        c = client.container
        if c is None:
            return
        if kind == STDIN:
            c.stdin_buf += payload
            self._flush_stdin(c)
        elif kind == CLOSE_STDIN:
            c.stdin_eof = True
            self._flush_stdin(c)
        elif kind == RESIZE:
            rows, cols = (int(x) for x in payload.split())
            c.size = (rows, cols)
            self._apply_size(c)
        elif kind == SIGNAL:
            if c.state == "starting":
                c.signals.append(int(payload))  # the worker has not reported the pid yet
            elif c.pid and c.state == "running":
                _signal(c.pid, int(payload))

    # --- exit ----------------------------------------------------------------------
    def resolver(self):
        """The embedded DNS resolver, made on first use (minirun/dns/server.py)."""
        if self.dns is None:
            from minirun.dns.server import Resolver

            self.dns = Resolver(self.root, self.sel, self.call_later)
        return self.dns

    def _init_exited(self, c, status):
        if self.dns is not None:
            self.dns.remove(c.id)   # its sockets would keep the netns alive
        c.status = status
        c.state = "draining"
        self._cancel_health(c)
        c.drain_timer = self.call_later(DRAIN_SECONDS, lambda: self._maybe_exited(c, force=True))
        self._maybe_exited(c)

    def _maybe_exited(self, c, force=False):
        if c.state != "draining" or c.worker is not None:
            return  # the start worker is still writing the record
        if c.outputs and not force:
            return
        c.drain_timer.cancel()
        self._close_io(c)
        c.log.flush()
        c.state = "exiting"
        r, w = os.pipe()
        c.exit_out = bytearray()
        try:
            c.worker = self.spawn(["exited", c.id, str(c.status)], {1: w, 2: 2},
                                  c.store, lambda st: self._exit_worker_done(c, st))
        except OSError as e:
            os.close(r)
            os.close(w)
            log(f"spawning the exit worker: {e}")
            self._record_exit(c)
            self._finish(c, exit_code(c.status))
            return
        os.close(w)
        _nonblock(r)
        c.exit_pipe = r
        self.sel.register(r, selectors.EVENT_READ, lambda _m: self._read_exit(c))

    def _read_exit(self, c):
        try:
            data = os.read(c.exit_pipe, 65536)
        except BlockingIOError:
            return
        if data:
            c.exit_out += data
            return
        self.sel.unregister(c.exit_pipe)
        os.close(c.exit_pipe)
        c.exit_pipe = None

    def _exit_worker_done(self, c, status):
        c.worker = None
        if c.exit_pipe is not None:
            self._read_exit(c)
            if c.exit_pipe is not None:
                self.sel.unregister(c.exit_pipe)
                os.close(c.exit_pipe)
                c.exit_pipe = None
        try:
            result = json.loads(bytes(c.exit_out) or b"{}")
        except ValueError:
            result = {}
        code = result.get("exit_code", exit_code(c.status))
        if not result:
            log(f"{c.id[:12]}: the exit worker failed (status {exit_code(status)})")
            self._record_exit(c)
        delay = result.get("restart_in")
        if delay is not None:
            c.state = "backoff"
            c.pid = None
            self._notify(c, code)
            c.restart_timer = self.call_later(float(delay), lambda: self._restart(c))
            return
        self._finish(c, code)

    def _restart(self, c):
        rec = recordfile.read(c.dir)
        if rec is None or rec.get("ManualStop") or (rec.get("State") or {}).get(
                "Status") != "restarting":
            self._finish(c, None)
            return
        self._launch(c, rec)

    def _record_exit(self, c):
        """Fallback when the exit worker could not run: at least the status."""
        try:
            with recordfile.update(c.dir) as rec:
                st = rec.setdefault("State", {})
                st.update(Status="exited", Running=False, Restarting=False, Pid=0,
                          ExitCode=exit_code(c.status) if c.status is not None else 255,
                          FinishedAt=recordfile.timestamp())
        except OSError:
            pass

    def _notify(self, c, code):
        msg = json.dumps({"exit_code": code})
        for client in c.clients:
            self.send(client, frame(EXIT, msg))
            client.closing = True
            client.container = None
            if not client.outbuf:
                self.close_client(client)
        c.clients = []
        for client in c.waiters:
            self.reply(client, {"exit_code": code})
        c.waiters = []

    def _finish(self, c, code, notify_clients=True):
        if notify_clients:
            self._notify(c, code)
        else:
            for client in c.waiters:
                self.reply(client, {"exit_code": code})
            c.waiters = []
        self._cancel_health(c)
        if c.log is not None:
            c.log.close()
            c.log = None
        c.state = "idle"
        self.containers.pop(c.id, None)


def _start_time(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def main():
    """python -S -I -c '...main()' ROOT ARGV_JSON READY_FD"""
    root, argv, ready = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    Monitor(root, argv).serve(ready)
