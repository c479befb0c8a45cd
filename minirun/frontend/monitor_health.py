"""Health checks, run by the monitor: a worker execs the check in the container
every interval; its exit code and output go to State.Health in the record,
and a change of status is an event (health_status: healthy|unhealthy)."""
import os
import selectors
import signal
import time

from minirun.frontend import events, recordfile
from minirun.frontend.monitor_proto import kill as _kill
from minirun.frontend.monitor_proto import nonblock as _nonblock
from minirun.frontend.restart import exit_code

HEALTH_LOG = 5
HEALTH_OUTPUT = 4096


class HealthChecks:
    """The monitor's health-check methods (a mixin of monitor.Monitor)."""

    def _schedule_health(self, c):
        c.health_timer = self.call_later(c.health["Interval"], lambda: self._run_health(c))

    def _cancel_health(self, c):
        if c.health_timer:
            c.health_timer.cancel()
            c.health_timer = None
        probe = c.health_proc
        if probe is not None:
            c.health_proc = None
            probe.timer.cancel()
            _kill(probe.pid)
            self._close_probe_pipe(probe)

    def _run_health(self, c):
        if c.state != "running":
            return
        test = c.health["Test"]
        cmd = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        r, w = os.pipe()
        probe = Probe()
        try:
            probe.pid = self.spawn(["health", c.id, *cmd], {1: w, 2: w}, c.store,
                                   lambda st: self._health_done(c, probe, st))
        finally:
            os.close(w)
        _nonblock(r)
        probe.fd = r
        probe.timer = self.call_later(c.health["Timeout"], lambda: self._health_timeout(probe))
        c.health_proc = probe
        self.sel.register(r, selectors.EVENT_READ, lambda _m: self._read_probe(probe))

    def _read_probe(self, probe):
        try:
            data = os.read(probe.fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self._close_probe_pipe(probe)
        elif len(probe.output) < HEALTH_OUTPUT:
            probe.output += data[:HEALTH_OUTPUT - len(probe.output)]

    def _close_probe_pipe(self, probe):
        if probe.fd is not None:
            try:
                self.sel.unregister(probe.fd)
            except (KeyError, ValueError):
                pass
            os.close(probe.fd)
            probe.fd = None

    def _health_timeout(self, probe):
        probe.timed_out = True
        try:
            os.kill(probe.pid, signal.SIGTERM)   # the exec forwards it to the check
        except ProcessLookupError:
            return
        probe.timer = self.call_later(1.0, lambda: _kill(probe.pid))

    def _health_done(self, c, probe, status):
        probe.timer.cancel()
        while probe.fd is not None:
            self._read_probe(probe)
            if probe.fd is not None and not _readable(probe.fd):
                self._close_probe_pipe(probe)
        if c.health_proc is not probe:
            return   # cancelled: the container stopped meanwhile
        c.health_proc = None
        code, output = exit_code(status), bytes(probe.output).decode("utf-8", "replace")
        if probe.timed_out:
            note = f"Health check exceeded timeout ({c.health['Timeout']:g}s)\n"
            code, output = -1, note + output
        self._record_health(c, code, output, probe.started)
        if c.state == "running":
            self._schedule_health(c)

    def _record_health(self, c, code, output, t0):
        in_start_period = time.monotonic() - c.started_at < c.health.get("StartPeriod", 0)
        try:
            with recordfile.update(c.dir) as rec:
                h = (rec.setdefault("State", {}).get("Health")
                     or {"Status": "starting", "FailingStreak": 0, "Log": []})
                before = h["Status"]
                if code == 0:
                    h["Status"], h["FailingStreak"] = "healthy", 0
                elif not in_start_period:
                    h["FailingStreak"] += 1
                    if h["FailingStreak"] >= c.health["Retries"]:
                        h["Status"] = "unhealthy"
                h["Log"] = (h.get("Log") or [])[-(HEALTH_LOG - 1):] + [{
                    "Start": recordfile.timestamp(t0), "End": recordfile.timestamp(),
                    "ExitCode": code, "Output": output}]
                rec["State"]["Health"] = h
        except OSError:
            return
        if h["Status"] != before:
            events.emit(rec.get("Store") or c.store, "health_status: " + h["Status"], rec)


class Probe:
    """One running health check."""

    def __init__(self):
        self.pid = None
        self.fd = None
        self.output = bytearray()
        self.started = time.time()
        self.timer = None
        self.timed_out = False

def _readable(fd):
    import select

    return bool(select.select([fd], [], [], 0)[0])
