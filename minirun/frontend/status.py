"""What state a front-end container is in right now (the record, corrected by
the runtime's state and the monitor's liveness).

Its own module, importing only the runtime's state reader: `ps` asks this
for every container and needs nothing else of control.py (the monitor
client, events, signals).
"""
from minirun.errors import MinirunError


def monitor_alive(rec):
    from minirun.linux import proc

    m = rec.get("Monitor") or {}
    return bool(m) and proc.is_running(m.get("pid"), m.get("start"))


def current_state(fe, rec):
    """State.Status as it is now: "paused" comes from the cgroup, and a
    container whose monitor died (crash, reboot) shows as exited (255) unless
    its process still runs."""
    st = rec["State"]
    status = st["Status"]
    if status not in ("running", "restarting"):
        return status
    from minirun.runtime.state import PAUSED, RUNNING, Container

    try:
        with Container.load(fe.root, rec["Id"], lock=False) as c:
            runtime_status = c.status()
    except MinirunError:
        runtime_status = None
    if runtime_status == PAUSED:
        return "paused"
    if status == "restarting":
        return status if monitor_alive(rec) else "exited"
    if runtime_status == RUNNING:
        return "running"
    if not monitor_alive(rec):
        return "exited"
    return "running"  # exiting right now: the monitor will record it


def is_running(fe, rec):
    return current_state(fe, rec) in ("running", "paused", "restarting")
