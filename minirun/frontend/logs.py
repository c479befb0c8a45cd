"""Reading a container's JSON-lines log: `logs [-f] [--tail N] [-t] [--since]`.

The monitor appends {"log", "stream", "time"} lines to container-log.json and
rotates it to .1, .2, ... (oldest has the highest number).  Following polls
the file: the monitor is the only writer, lines are whole (one write(2) per
batch), and a rotation shows as a new inode at the path, after which the old
file is read to its end before moving on.
"""
import json
import os
import sys
import time

from minirun.errors import MinirunError
from minirun.frontend import recordfile

POLL = 0.1


def _files(path):
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return list(reversed(rotated)) + [path]


def _newer(path, ino):
    """Rotated files written after the file with inode `ino`, oldest first."""
    rotated = _files(path)[:-1]
    for i, name in enumerate(rotated):
        try:
            if os.stat(name).st_ino == ino:
                return rotated[i + 1:]
        except FileNotFoundError:
            continue
    return []


def _entries(f):
    for line in f:
        if not line.endswith(b"\n"):
            return  # a partial line: never the case for the monitor's writes, but be safe
        try:
            yield json.loads(line)
        except ValueError:
            continue


def parse_since(text, now=None):
    """RFC 3339 timestamp, Unix seconds, or a relative duration ("10m")."""
    from minirun.frontend.options import BadOption, parse_duration

    if text is None:
        return None
    now = time.time() if now is None else now
    try:
        return float(text)
    except ValueError:
        pass
    if "T" in text or text.count("-") >= 2:
        value = recordfile.parse_timestamp(text if text.endswith("Z") else text + "Z")
        if value:
            return value
        raise BadOption(f"invalid --since value {text!r}")
    return now - parse_duration(text, "--since")


class Printer:
    def __init__(self, timestamps=False, since=None, out=None, err=None, until=None,
                 details=None):
        self.timestamps = timestamps
        self.since = since
        self.until = until
        # --details: Docker puts the entry's extra attributes ("k=v,...") and a
        # space before each line; minirun's log entries have none.
        self.details = details
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer

    def __call__(self, entry):
        if self.since is not None or self.until is not None:
            t = recordfile.parse_timestamp(entry.get("time"))
            if (self.since is not None and t < self.since) or (
                    self.until is not None and t > self.until):
                return
        text = entry.get("log", "").encode()
        if self.details is not None:
            text = self.details.encode() + b" " + text
        if self.timestamps:
            text = entry.get("time", "").encode() + b" " + text
        stream = self.err if entry.get("stream") == "stderr" else self.out
        stream.write(text)
        stream.flush()


def show(path, printer, tail=None):
    """Print what is logged now; returns (file object at its end, inode) of
    the current file for follow(), or (None, None) if there is no log yet."""
    entries = []
    current = None
    for name in _files(path):
        try:
            f = open(name, "rb")
        except FileNotFoundError:
            continue
        if name == path:
            current = f
            entries_iter = _entries(f)
        else:
            with f:
                entries_iter = list(_entries(f))
        if tail is None:
            for e in entries_iter:
                printer(e)
        else:
            entries.extend(entries_iter)
            if len(entries) > tail * 2 + 1000:
                entries = entries[-tail:]
    if tail is not None:
        for e in entries[-tail:] if tail > 0 else []:
            printer(e)
    if current is None:
        return None, None
    return current, os.fstat(current.fileno()).st_ino


def follow(path, printer, still_running, tail=None):
    """show(), then keep printing new lines until still_running() is False."""
    f, ino = show(path, printer, tail)
    last_check = 0.0
    while True:
        if f is not None:
            pos = f.tell()
            for e in _entries(f):
                printer(e)
                pos = f.tell()
            f.seek(pos)
        try:
            now_ino = os.stat(path).st_ino
        except FileNotFoundError:
            now_ino = None
        if now_ino is not None and now_ino != ino:
            # Rotated: the old file is complete; read its rest, then the files
            # rotated after it (if it rotated more than once since we looked).
            if f is not None:
                for e in _entries(f):
                    printer(e)
                f.close()
            for name in _newer(path, ino):
                try:
                    with open(name, "rb") as g:
                        for e in _entries(g):
                            printer(e)
                except FileNotFoundError:
                    pass
            try:
                f = open(path, "rb")
                ino = os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                f, ino = None, None
            continue
        now = time.monotonic()
        if now - last_check > 0.5:
            last_check = now
            if not still_running():
                if f is not None:
                    for e in _entries(f):
                        printer(e)
                    f.close()
                return
        time.sleep(POLL)


def print_logs(fe, ref, follow_output=False, tail="all", timestamps=False, since=None, until=None,
               details=False):
    """`minirun logs`: the container's output, stdout to stdout and stderr to stderr."""
    from minirun.frontend import control
    from minirun.frontend.options import BadOption

    cid, rec = fe.find(ref)
    if tail == "all":
        tail_n = None
    else:
        try:
            tail_n = int(tail)
        except ValueError:
            raise BadOption(f"invalid --tail {tail!r}: a number or all") from None
        if tail_n < 0:
            tail_n = None
    until_t = parse_since(until)
    printer = Printer(timestamps, parse_since(since), until=until_t,
                      details="" if details else None)
    if not follow_output or (until_t is not None and until_t <= time.time()):
        f, _ = show(rec["LogPath"], printer, tail_n)
        if f is not None:
            f.close()
        return

    def still_running():
        if until_t is not None and time.time() > until_t:
            return False
        try:
            r = fe.load(cid)
        except MinirunError:
            return False
        return control.is_running(fe, r)

    follow(rec["LogPath"], printer, still_running, tail_n)
