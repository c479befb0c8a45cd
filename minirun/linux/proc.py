"""Reading /proc: process start times (to tell a live PID from a reused one)."""
import os


def stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rfind(b")") + 2:].split()


def start_time(pid):
    """Start time in clock ticks since boot (field 22), or None if gone."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def is_running(pid, started):
    """True if `pid` is the same process that started at `started` and has not
    exited (a zombie waiting to be reaped counts as exited)."""
    if not pid:
        return False
    fields = stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return False
    return started is None or int(fields[19]) == started


def children(pid):
    """Direct children of pid (needs CONFIG_PROC_CHILDREN, present on Debian)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except FileNotFoundError:
        pass
    return out
