"""The monitor's forkserver: one process that has imported the workers' code
once, and forks a worker per request.

A container's start and its exit each run a worker (worker.py).  Started
fresh, a worker spends most of its time starting the interpreter and
importing the runtime, the network code and, for a bridge, pyroute2; the
work itself (runtime create/start, network attach) is the smaller part.
The monitor starts this process next to it (worker.py forkserver) and asks
it for workers; forking a process that already holds those modules costs a
millisecond or two.

    monitor --SOCK_SEQPACKET--> forkserver --fork--> A --fork--> worker (B)
       request: JSON {"args", "store", "fds"} + the fds        A replies {"pid": B}
                                                               and exits: B is
                                                               re-parented to the
                                                               monitor (a subreaper)

So a forked worker is the monitor's child, as a spawned one is, in its own
session, with fds 0-3 as asked and MINIRUN_STORE of its container.  The
monitor spawns workers the old way while this process is still importing,
when a worker must trace (`--trace` is read at import), or if it is gone.
It exits when the monitor closes the socket (the monitor exits when idle).
"""
import os
import selectors
import socket
import sys

from minirun import jsonio
from minirun.frontend.monitor_proto import log

# What start, exit and health workers import, so that none of them has to.
PRELOAD = ("minirun.frontend.worker", "minirun.frontend.bundle", "minirun.frontend.volumes",
           "minirun.runtime.create", "minirun.runtime.start", "minirun.runtime.delete",
           "minirun.runtime.exec", "minirun.linux.seccomp", "minirun.network",
           "minirun.network.embedded", "minirun.network.bridge", "minirun.network.veth",
           "minirun.network.nat", "minirun.image", "minirun.image.overlay",
           "minirun.image.manifest")
READY = b"ready"


def serve(root, fd=3):
    """Import PRELOAD, say READY on fd (a socket to the monitor), then fork a
    worker per request until the monitor closes the socket."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # (e.g. pyroute2 missing: the worker fails as a spawned one would)
    sock = socket.socket(fileno=fd)
    try:
        sock.send(READY)
    except OSError:
        os._exit(0)  # the monitor went away meanwhile
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 65536, 8)
        if not msg:
            os._exit(0)
        try:
            req = jsonio.loads(msg)
            pid = os.fork()
        except BaseException as e:  # noqa: B902 -- any failure: the monitor spawns instead
            for f in fds:
                os.close(f)
            sock.send(jsonio.dumps({"error": str(e)}).encode())
            continue
        if pid == 0:
            _middle(sock, fds, req, root)
        for f in fds:
            os.close(f)
        os.waitpid(pid, 0)


def _middle(sock, fds, req, root):
    """A: fork the worker, tell the monitor its pid, exit (the worker is then
    re-parented to the monitor)."""
    try:
        try:
            pid = os.fork()
        except OSError as e:
            sock.send(jsonio.dumps({"error": str(e)}).encode())
            return
        if pid == 0:
            _worker(sock, fds, req, root)
        sock.send(jsonio.dumps({"pid": pid}).encode())
    finally:
        os._exit(0)


def _worker(sock, fds, req, root):
    """B: become the worker the monitor asked for (worker.main never returns)."""
    try:
        sock.close()
        os.setsid()
        # The received fds are above 3 (0-3 were open when they arrived).
        for src, target in zip(fds, req["fds"]):
            os.dup2(src, target)
        for src in fds:
            os.close(src)
        os.environ["MINIRUN_STORE"] = req["store"]
        from minirun.frontend import worker

        worker.main([root, *req["args"]])
    except BaseException as e:  # noqa: B902
        try:
            print(f"minirun: forked worker: {e}", file=sys.stderr, flush=True)
        except OSError:
            pass
    finally:
        os._exit(1)


class Client:
    """The monitor's side (stdlib only: the monitor imports nothing else)."""

    def __init__(self, argv, env, timeout=5.0):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                   (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)]  # stderr: the monitor's log
        try:
            self.pid = os.posix_spawn(argv[0], argv + ["forkserver"], env,
                                      file_actions=actions, setsid=True)
        finally:
            os.close(devnull)
            theirs.close()
        self.sock = mine
        self.sock.setblocking(False)
        self.ready = False
        self.timeout = timeout

    def fileno(self):
        return self.sock.fileno()

    def on_readable(self):
        """The READY message (once); False if the forkserver is gone."""
        try:
            msg = self.sock.recv(64)
        except BlockingIOError:
            return True
        except OSError:
            msg = b""
        if msg != READY:
            return False
        self.ready = True
        self.sock.settimeout(self.timeout)
        return True

    def fork(self, args, fds, store):
        """The pid of a worker running `worker.py ROOT *args` with fds
        {target: fd}, or None (then spawn it the old way)."""
        targets = sorted(fds)
        try:
            socket.send_fds(self.sock, [jsonio.dumps(
                {"args": list(args), "store": store, "fds": targets}).encode()],
                [fds[t] for t in targets])
            reply = self.sock.recv(65536)
        except OSError:
            return None
        if not reply:
            return None
        msg = jsonio.loads(reply)
        return msg.get("pid")

    def close(self):
        self.sock.close()


class Spawning:
    """The monitor's worker spawning (a mixin of monitor.Monitor): through the
    forkserver when it is ready, posix_spawn otherwise.  Uses the monitor's
    argv, sel, children, forkserver, forkserver_pids and forked."""

    def spawn(self, args, fds, store, on_exit, trace=False):
        """Start a `minirun` worker with fds {child_fd: our_fd} (None: /dev/null):
        forked by the forkserver (its imports done), or posix_spawned.
        trace: the worker narrates its kernel steps on its stderr (the
        container's), for a CLI that ran `minirun --trace start/run`."""
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        mapping = {}
        for target in (0, 1, 2, 3):
            if target in fds or target < 3:
                src = fds.get(target)
                mapping[target] = devnull if src is None else src
        try:
            # tracing is decided at import: a traced worker starts fresh
            pid = None if trace else self._forked(args, mapping, store)
            if pid is None:
                env = dict(os.environ, MINIRUN_STORE=store)
                env.pop("MINIRUN_TRACE", None)  # a monitor started by a traced CLI: not all
                if trace:
                    env["MINIRUN_TRACE"] = "1"
                actions = [(os.POSIX_SPAWN_DUP2, src, target) for target, src in mapping.items()]
                pid = os.posix_spawn(self.argv[0], self.argv + args, env, file_actions=actions,
                                     setsid=True)
        finally:
            os.close(devnull)
        self.children[pid] = on_exit
        return pid

    # --- the forkserver (forkserver.py): workers without start-up and imports ------------
    def forkserver_ready(self):
        """True once the forkserver has its imports (it is started if it is not)."""
        if self.forkserver is None:
            self._forked(None, None, None)
        return bool(self.forkserver) and self.forkserver.ready

    def _forked(self, args, fds, store):
        """A worker's pid from the forkserver, or None (spawn it instead).  The
        first call starts the forkserver; workers are spawned until it is ready."""
        fs = self.forkserver
        if fs is None:
            env = dict(os.environ)
            env.pop("MINIRUN_TRACE", None)
            try:
                fs = self.forkserver = Client(self.argv, env)
            except OSError as e:
                log(f"starting the forkserver: {e}; workers are spawned")
                self.forkserver = False
                return None
            self.forkserver_pids.add(fs.pid)
            self.sel.register(fs.sock, selectors.EVENT_READ, self._forkserver_readable)
            return None
        if not fs or not fs.ready:
            return None
        pid = fs.fork(args, fds, store)
        if pid is None:
            log("the forkserver failed: workers are spawned from now on")
            self._drop_forkserver()
        else:
            self.forked += 1
        return pid

    def _forkserver_readable(self, _mask):
        fs = self.forkserver
        alive = fs.on_readable()
        if fs.ready or not alive:
            self.sel.unregister(fs.sock)
        if not alive:
            log("the forkserver did not start: workers are spawned")
            self._drop_forkserver()

    def _drop_forkserver(self):
        if self.forkserver:
            try:
                self.sel.unregister(self.forkserver.sock)
            except (KeyError, ValueError):
                pass
            self.forkserver.close()  # it exits when it reads EOF
        self.forkserver = False
