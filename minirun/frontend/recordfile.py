"""A container record on disk: <dir>/container.json, replaced whole.

Stdlib only: the monitor imports this module and must stay small.

Writers hold an exclusive flock on <dir>/lock while they read, change and
replace the file (temp file + rename); readers need no lock because rename(2)
is atomic: they see the old record or the new one, never half of one.
"""
import contextlib
import fcntl
import json
import os
import time

RECORD = "container.json"
LOCK = "lock"


def read(directory):
    """The record in `directory`, or None if there is none (removed)."""
    try:
        with open(os.path.join(directory, RECORD)) as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None


def write(directory, data):
    tmp = os.path.join(directory, f".{RECORD}.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, os.path.join(directory, RECORD))


@contextlib.contextmanager
def locked(directory):
    """Hold the record's lock (FileNotFoundError if the container is gone)."""
    fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def update(directory):
    """Read-modify-write under the lock: `with update(d) as rec: rec[...] = ...`.
    FileNotFoundError if the record was removed meanwhile."""
    with locked(directory):
        data = read(directory)
        if data is None:
            raise FileNotFoundError(os.path.join(directory, RECORD))
        yield data
        write(directory, data)


def timestamp(when=None):
    """RFC 3339 with nanoseconds in UTC, as Docker writes them."""
    ns = time.time_ns() if when is None else int(when * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_timestamp(text):
    """Seconds since the epoch for a timestamp() string (0.0 if empty/invalid)."""
    import calendar

    if not text or text.startswith("0001"):
        return 0.0
    try:
        base, _, frac = text.rstrip("Z").partition(".")
        secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        return secs + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return 0.0
