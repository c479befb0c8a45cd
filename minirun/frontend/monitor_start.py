"""Starting containers, in the monitor: a `start` (or `attach`) request, the start
worker it spawns (worker.py start ID) with the container's stdio pipes, and the
worker's report (the init's pid, the pty master, the DNS sockets)."""
import json
import os
import selectors
import socket
import time

from minirun.frontend import recordfile
from minirun.frontend.logwriter import LogWriter
from minirun.frontend.monitor_proto import STARTED, frame, log
from minirun.frontend.monitor_proto import nonblock as _nonblock
from minirun.frontend.monitor_proto import send_signal as _signal
from minirun.frontend.monitor_relay import OutputHandler
from minirun.frontend.restart import exit_code


class Container:
    def __init__(self, cid, directory, store):
        self.id = cid
        self.dir = directory
        self.store = store
        self.state = "idle"        # starting, running, draining, exiting, backoff
        self.pid = None
        self.status = None         # raw wait status of the init
        self.worker = None         # pid of the start or exit worker
        self.trace = False         # the CLI that started it asked for --trace
        self.report = None         # socket the start worker reports on
        self.reported = False
        self.outputs = {}          # fd -> stream name (pipes, or the pty master as stdout)
        self.master = None
        self.stdin = None          # fd we write the container's stdin to
        self.stdin_buf = bytearray()
        self.stdin_eof = False
        self.clients = []          # attached
        self.waiters = []          # `wait` requests
        self.starters = []         # detached `start` requests waiting for the worker's report
        self.log = None
        self.tty = False
        self.size = None
        self.health = None
        self.health_timer = None
        self.health_proc = None    # the running Probe
        self.started_at = 0.0
        self.restart_timer = None
        self.drain_timer = None
        self.exit_out = bytearray()
        self.exit_pipe = None
        self.paused = False
        self.signals = []          # forwarded before the pid was known


class Starting:
    """The monitor's start methods (a mixin of monitor.Monitor)."""

    def attach(self, client, req):
        """`minirun attach`: a client joins a running container's I/O."""
        c = self.containers.get(req.get("id"))
        if c is None or c.state != "running":
            self.send(client, frame(STARTED, json.dumps(
                {"error": "You cannot attach to a stopped container, start it first",
                 "code": 1})))
            client.closing = True
            return
        client.container = c
        client.wants_stdin = bool(req.get("stdin")) and c.stdin is not None
        c.clients.append(client)
        if req.get("size"):
            c.size = tuple(req["size"])
            self._apply_size(c)
        self.send(client, frame(STARTED, json.dumps({"pid": c.pid})))

    def create(self, client, req):
        """`run`'s create in a worker from the forkserver (createworker.py), so
        the CLI need not import the front end; {"fallback": true} (the CLI
        creates itself) while the forkserver is not ready."""
        if not self.forkserver_ready():
            self.reply(client, {"create": True, "fallback": True})
            return
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        done = []

        def finish(msg):
            if done:
                return
            done.append(True)
            try:
                self.sel.unregister(mine)
            except (KeyError, ValueError):
                pass
            mine.close()
            self.reply(client, msg)

        def readable(_mask=None):
            try:
                data = mine.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            finish(json.loads(data) if data else
                   {"create": True, "error": "the create worker failed", "code": 125})

        try:
            mine.send(json.dumps({k: req.get(k) for k in ("kw", "store", "cwd", "env", "umask")})
                      .encode())
            self.spawn(["create"], {2: 2, 3: theirs.fileno()}, req.get("store") or "",
                       lambda _status: readable())
        except OSError as e:
            log(f"the create worker: {e}")
            theirs.close()
            mine.close()
            self.reply(client, {"create": True, "fallback": True})
            return
        theirs.close()
        mine.setblocking(False)
        self.sel.register(mine, selectors.EVENT_READ, readable)

    def start(self, client, req):
        cid, directory = req["id"], req["dir"]
        c = self.containers.get(cid)
        if c is not None and c.state != "backoff":
            if req.get("attach"):
                self.send(client, frame(STARTED, json.dumps(
                    {"error": f"container {cid[:12]} is already running", "code": 125})))
                client.closing = True
            else:
                self.reply(client, {"error": f"container {cid[:12]} is already running"})
            return
        rec = recordfile.read(directory)
        if rec is None:
            self.reply(client, {"error": f"No such container: {cid}"})
            return
        if c is None:
            c = Container(cid, directory, rec.get("Store") or "")
            self.containers[cid] = c
        elif c.restart_timer:
            c.restart_timer.cancel()
        c.trace = bool(req.get("trace"))
        c.stdin_buf, c.stdin_eof = bytearray(), False
        if req.get("attach"):
            client.container = c
            client.wants_stdin = bool(req.get("stdin"))
            c.clients.append(client)
            if req.get("size"):
                c.size = tuple(req["size"])
        else:
            c.starters.append(client)
        self._launch(c, rec)

    def _launch(self, c, rec):
        cfg = rec.get("Config") or {}
        host = rec.get("HostConfig") or {}
        c.tty = bool(cfg.get("Tty"))
        c.health = rec.get("Healthcheck")
        logcfg = (host.get("LogConfig") or {}).get("Config") or {}
        if c.log is None:
            c.log = LogWriter(rec["LogPath"], int(logcfg.get("max-size", 10 << 20)),
                              int(logcfg.get("max-file", 3)))
        fds, ours = {}, []
        if not c.tty:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            fds[1], fds[2] = out_w, err_w
            ours += [out_w, err_w]
            for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
                _nonblock(fd)
                c.outputs[fd] = stream
                self.sel.register(fd, selectors.EVENT_READ, OutputHandler(self, c, fd))
            if cfg.get("OpenStdin"):
                in_r, in_w = os.pipe()
                _nonblock(in_w)
                fds[0] = in_r
                ours.append(in_r)
                c.stdin, c.stdin_buf, c.stdin_eof = in_w, bytearray(), False
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds[3] = theirs.fileno()
        try:
            c.worker = self.spawn(["start", c.id], fds, c.store,
                                  lambda status: self._start_worker_done(c, status),
                                  trace=c.trace)
        except OSError as e:
            log(f"spawning the start worker: {e}")
            for fd in ours:
                os.close(fd)
            theirs.close()
            mine.close()
            self._start_failed(c, f"cannot run the start worker: {e}", 125)
            return
        for fd in ours:
            os.close(fd)
        theirs.close()
        mine.setblocking(False)
        c.report, c.reported = mine, False
        c.state = "starting"
        c.status = None
        self.sel.register(mine, selectors.EVENT_READ, lambda _m: self._report(c))

    def _report(self, c):
        try:
            data, fds, _, _ = socket.recv_fds(c.report, 65536, 4)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        self.sel.unregister(c.report)
        c.report.close()
        c.report = None
        msg = json.loads(data) if data else {"error": "the start worker died", "code": 125}
        c.reported = True
        if "error" in msg:
            for fd in fds:
                os.close(fd)
            self._start_failed(c, msg["error"], msg.get("code", 125))
            return
        c.pid = msg["pid"]
        c.state = "running"
        c.started_at = time.monotonic()
        if msg.get("dns") == 2 and len(fds) >= 2:
            # UDP and TCP 127.0.0.11:53 made in its netns: we answer there
            self.resolver().add(c.id, fds[-2], fds[-1])
            fds = fds[:-2]
        if fds:
            c.master = fds[0]
            _nonblock(c.master)
            c.outputs[c.master] = "stdout"
            # What the client typed while the container started is in stdin_buf
            # already: it goes to the pty now (typeahead), not away.
            c.stdin = c.master
            c.stdin_eof = False
            self._apply_size(c)
            self.sel.register(c.master, selectors.EVENT_READ, OutputHandler(self, c, c.master))
        self.children[c.pid] = lambda status: self._init_exited(c, status)
        for sig in c.signals:
            _signal(c.pid, sig)
        c.signals = []
        if c.pid in self.early:
            self._init_exited_later(c, self.early.pop(c.pid))
        started = json.dumps({"pid": c.pid})
        for client in list(c.clients):
            self.send(client, frame(STARTED, started))
        for client in c.starters:
            self.reply(client, {"ok": True, "pid": c.pid})
        c.starters = []
        if c.health:
            self._schedule_health(c)
        self._flush_stdin(c)

    def _init_exited_later(self, c, status):
        self.children.pop(c.pid, None)
        self._init_exited(c, status)

    def _start_worker_done(self, c, status):
        c.worker = None
        if c.report is not None:
            # Its report may still be queued on the socket.
            self._report(c)
        elif not c.reported:
            self._start_failed(c, f"the start worker failed (status {exit_code(status)})", 125)
        if c.state == "draining" and c.status is not None:
            self._maybe_exited(c)

    def _start_failed(self, c, error, code):
        self._close_io(c)
        for client in list(c.clients):
            self.send(client, frame(STARTED, json.dumps({"error": error, "code": code})))
            client.closing = True
            if not client.outbuf:
                self.close_client(client)
        for client in c.starters:
            self.reply(client, {"error": error, "code": code})
        c.starters = []
        self._finish(c, None, notify_clients=False)
