"""What compose prints: logs with `service-1  | ` prefixes (coloured on a
terminal, as Compose colours them), and the `ps` table."""
import os
import sys
import threading
import time

COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")


def use_colour(stream, no_colour=False):
    return not no_colour and "NO_COLOR" not in os.environ and stream.isatty()


class Prefixer:
    """Writes whole log lines with the container's prefix, one writer at a time."""

    def __init__(self, recs, out, prefix=True, timestamps=False, colour=False):
        self.out = out
        self.lock = threading.Lock()
        self.timestamps = timestamps
        self.names = {}
        short = {r["Id"]: _short(r) for r in recs}
        width = max((len(n) for n in short.values()), default=0)
        for i, r in enumerate(recs):
            text = f"{short[r['Id']]:<{width}}  | " if prefix else ""
            if colour and prefix:
                text = f"\033[{COLOURS[i % len(COLOURS)]}m{text}\033[0m"
            self.names[r["Id"]] = text

    def printer(self, cid):
        def emit(entry):
            text = entry.get("log", "")
            if self.timestamps:
                text = entry.get("time", "") + " " + text
            if not text.endswith("\n"):
                text += "\n"
            with self.lock:
                self.out.write(self.names[cid] + text)
                self.out.flush()
        return emit


def _short(rec):
    """Compose's prefix: <service>-<n> (or the container name if it is set)."""
    labels = rec["Config"].get("Labels") or {}
    service = labels.get("com.docker.compose.service")
    number = labels.get("com.docker.compose.container-number")
    name = rec["Name"].lstrip("/")
    project = labels.get("com.docker.compose.project")
    if service and number and name == f"{project}-{service}-{number}":
        return f"{service}-{number}"
    return name


def show(recs, tail=None, prefix=True, timestamps=False, out=None, no_colour=False):
    """Every container's log so far, merged by time."""
    from minirun.frontend import logs

    out = out or sys.stdout
    p = Prefixer(recs, out, prefix, timestamps, use_colour(out, no_colour))
    entries = []
    for rec in recs:
        got = []
        f, _ = logs.show(rec["LogPath"], got.append, tail)
        if f is not None:
            f.close()
        entries += [(e.get("time", ""), i, rec["Id"], e) for i, e in enumerate(got)]
    for _, _, cid, e in sorted(entries, key=lambda x: (x[0], x[1])):
        p.printer(cid)(e)


def follow(fe, recs, tail=None, prefix=True, timestamps=False, out=None, no_colour=False,
           stop_at_first_exit=False):
    """Follow every container's log until all have stopped, or the first one with
    stop_at_first_exit; returns the id of the first that stopped (Ctrl-C raises
    KeyboardInterrupt in the caller's thread)."""
    from minirun.frontend import control, logs

    out = out or sys.stdout
    p = Prefixer(recs, out, prefix, timestamps, use_colour(out, no_colour))

    def running(cid):
        try:
            return control.is_running(fe, fe.load(cid))
        except Exception:
            return False

    def one(rec):
        try:
            logs.follow(rec["LogPath"], p.printer(rec["Id"]), lambda: running(rec["Id"]), tail)
        except (BrokenPipeError, OSError):
            pass

    threads = {r["Id"]: threading.Thread(target=one, args=(r,), daemon=True) for r in recs}
    for t in threads.values():
        t.start()
    first = None
    while any(t.is_alive() for t in threads.values()):
        if first is None:
            first = next((cid for cid, t in threads.items() if not t.is_alive()), None)
            if first is not None and stop_at_first_exit:
                break
        time.sleep(0.1)   # the main thread stays free for Ctrl-C
    return first or next(iter(threads), None)


PS_COLUMNS = [("NAME", "Name"), ("IMAGE", "Image"), ("COMMAND", "Command"),
              ("SERVICE", "Service"), ("CREATED", "RunningFor"), ("STATUS", "Status"),
              ("PORTS", "Ports")]


def ps_rows(fe, recs):
    from minirun.frontend import control, views

    rows = []
    for rec in recs:
        state = control.current_state(fe, rec)
        row = views.ps_row(rec, state)
        labels = rec["Config"].get("Labels") or {}
        row.update(Name=row["Names"], Service=labels.get("com.docker.compose.service", ""),
                   Project=labels.get("com.docker.compose.project", ""))
        rows.append(row)
    return rows
