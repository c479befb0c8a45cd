"""The kube controller: one small process per store while kube objects exist.

Who watches what (the split a real node has between the kubelet and the
controllers):
  * a container that exits is restarted by the front end's monitor, through its
    restart policy (restartPolicy Always/OnFailure -> always/on-failure), with
    Docker's back-off: nothing here has to notice;
  * a pod whose infra container is gone (killed, `minirun rm -f`) has lost its
    network namespace, which the monitor cannot give back: this process replaces
    it (a Deployment's pod by a new pod, a bare Pod by the same one again), and
    follows the new pod addresses into the Services' nftables rules;
  * liveness probes (exec in the container, httpGet and tcpSocket from the host
    to the pod's address, as the kubelet does): after failureThreshold failures
    the container is SIGKILLed without a manual stop, so the monitor restarts it;
  * readiness probes (the same three kinds): a container with one is ready after
    successThreshold successes, not ready after failureThreshold failures, and not
    ready while it is not running or since it (re)started; the results go into
    the state under the lock (pod["ready"]) and a pod is a Service endpoint only
    while all its probed containers are ready (api._sync_services).
It reconciles once a second under the kube state lock (play and down take the
same lock) and leaves by itself when the last object is deleted.  A flock on
controller.lock held for its whole life keeps it single.
"""
import fcntl
import os
import signal
import subprocess
import sys
import time
import traceback

INTERVAL = 1.0


def _start_time(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rfind(b")") + 2:].split()[19])


def running_pid(st):
    """The controller's pid if it runs (pid and start time both match), else None."""
    try:
        with open(st.pid_path) as f:
            pid, start = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    return pid if _start_time(pid) == start else None


def ensure(fe):
    """Start the controller unless it runs."""
    from minirun.kube.state import State

    st = State(fe)
    if running_pid(st):
        return
    log = open(os.path.join(st.dir, "controller.log"), "ab")
    with log:
        subprocess.Popen([sys.executable, "-m", "minirun.kube.controller", fe.store_root,
                          fe.root], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 10
    while not running_pid(st) and time.monotonic() < deadline:
        time.sleep(0.02)


def stop(fe, timeout=10.0):
    """Wait for the controller to leave (it does once nothing is recorded); SIGTERM
    it if it does not."""
    from minirun.kube.state import State

    st = State(fe)
    begun = time.monotonic()
    termed = False
    while (pid := running_pid(st)) is not None:
        waited = time.monotonic() - begun
        if waited > timeout:
            os.kill(pid, signal.SIGKILL)
            break
        if waited > timeout / 2 and not termed:
            os.kill(pid, signal.SIGTERM)
            termed = True
        time.sleep(0.05)


class Prober:
    """Liveness and readiness probes, timed per container and kind (kept in memory:
    a restarted controller simply starts counting again, as a restarted kubelet
    does; its readiness starts from "not ready")."""

    def __init__(self, fe):
        self.fe = fe
        self.timers = {}   # (cid, kind) -> {"started", "next", "failures", "successes"}
        self.ready = {}    # cid -> readiness probe's verdict

    def targets(self, data):
        for pod in data["pods"].values():
            for c in pod["spec"]["containers"]:
                cid = pod["containers"].get(c["name"])
                for kind in ("liveness", "readiness"):
                    if c.get(kind) and cid:
                        yield cid, kind, c[kind], pod

    def run(self, data, now):
        from minirun.kube import adapter

        seen = set()
        for cid, kind, probe, pod in list(self.targets(data)):
            seen.add((cid, kind))
            try:
                rec = self.fe.load(cid)
            except Exception:
                continue
            if adapter.state(self.fe, cid) != "running":
                self.ready.pop(cid, None)
                continue
            started = rec["State"].get("StartedAt")
            t = self.timers.get((cid, kind))
            if t is None or t["started"] != started:
                # (re)started: counted afresh, and not ready until probed again
                t = self.timers[(cid, kind)] = {"started": started, "failures": 0,
                                                "successes": 0,
                                                "next": now + probe["initialDelaySeconds"]}
                if kind == "readiness":
                    self.ready[cid] = False
            if now < t["next"]:
                continue
            t["next"] = now + probe["periodSeconds"]
            if self.check(cid, probe, pod):
                t["failures"] = 0
                t["successes"] += 1
                if kind == "readiness" and t["successes"] >= probe["successThreshold"]:
                    self.ready[cid] = True
                continue
            t["successes"] = 0
            t["failures"] += 1
            if t["failures"] < probe["failureThreshold"]:
                continue
            if kind == "readiness":
                self.ready[cid] = False
                continue
            print(f"{time.strftime('%H:%M:%S')} liveness probe failed "
                  f"{t['failures']} times: restarting {pod['name']}/{cid[:12]}", flush=True)
            adapter.kill_for_restart(self.fe, cid)
            del self.timers[(cid, kind)]
        for key in set(self.timers) - seen:
            del self.timers[key]
        for cid in set(self.ready) - {cid for cid, kind in seen if kind == "readiness"}:
            del self.ready[cid]

    def record(self, data):
        """Write the readiness verdicts into the pods' records (caller holds the lock);
        True if one changed."""
        changed = False
        for pod in data["pods"].values():
            ready = {c["name"]: self.ready.get(pod["containers"].get(c["name"]), False)
                     for c in pod["spec"]["containers"] if c.get("readiness")}
            if ready and pod.get("ready") != ready:
                pod["ready"] = ready
                changed = True
        return changed

    def check(self, cid, probe, pod):
        from minirun.kube import adapter

        if "exec" in probe:
            return adapter.exec_probe(self.fe, cid, probe["exec"], probe["timeoutSeconds"])
        if "tcpSocket" in probe:
            return tcp_ok(pod.get("ip"), probe["tcpSocket"]["port"], probe["timeoutSeconds"])
        return http_ok(pod.get("ip"), probe["httpGet"]["port"], probe["httpGet"]["path"],
                       probe["timeoutSeconds"])


def http_ok(ip, port, path, timeout):
    """The kubelet's httpGet: any status from 200 to 399 is a success."""
    import http.client

    if not ip:
        return False
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "kube-probe/minirun"})
        return 200 <= conn.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def tcp_ok(ip, port, timeout):
    """The kubelet's tcpSocket: the connection opens."""
    import socket

    if not ip:
        return False
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def main(store_root, root):
    from minirun.frontend.records import Frontend
    from minirun.kube import api
    from minirun.kube.state import State

    fe = Frontend(store_root, root)
    st = State(fe)
    os.makedirs(st.dir, mode=0o700, exist_ok=True)
    lock = os.open(os.path.join(st.dir, "controller.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0   # another controller runs
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with open(st.pid_path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
    os.replace(st.pid_path + ".tmp", st.pid_path)
    prober = Prober(fe)
    try:
        while not stopping:
            try:
                with st.locked() as data:
                    if st.empty(data):
                        break
                    prober.record(data)
                    for error in api.reconcile(fe, st, data):
                        print(f"{time.strftime('%H:%M:%S')} {error}", flush=True)
                    snapshot = {"pods": {k: dict(v) for k, v in data["pods"].items()}}
                prober.run(snapshot, time.monotonic())
            except Exception:   # a bug or a front-end failure: say it, try again next round
                traceback.print_exc()
                sys.stdout.flush()
            time.sleep(INTERVAL)
    finally:
        try:
            os.unlink(st.pid_path)
        except FileNotFoundError:
            pass
        if not os.path.exists(st.path):   # nothing left: no log either
            try:
                os.unlink(os.path.join(st.dir, "controller.log"))
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
