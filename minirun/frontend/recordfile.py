"""A container record on disk: <dir>/container.json, replaced whole.

Stdlib only (and minirun.jsonio, which is json's own C accelerator without
json's `re`/`enum` imports): the monitor, the workers and `ps` import this
module, so it must stay small.

Writers hold an exclusive flock on <dir>/lock while they read, change and
replace the file (temp file + rename); readers need no lock because rename(2)
is atomic: they see the old record or the new one, never half of one.
"""
import fcntl
import os
import time

from minirun import jsonio
from minirun.flock import Flock

RECORD = "container.json"
LOCK = "lock"


def read(directory):
    """The record in `directory`, or None if there is none (removed)."""
    try:
        with open(os.path.join(directory, RECORD)) as f:
            return jsonio.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None


def write(directory, data):
    tmp = os.path.join(directory, f".{RECORD}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(jsonio.dumps(data, indent=1))
    os.replace(tmp, os.path.join(directory, RECORD))


class locked(Flock):
    """Hold the record's lock (FileNotFoundError if the container is gone):
    `with locked(d): ...`."""

    def __init__(self, directory):
        super().__init__(os.path.join(directory, LOCK))


class update:
    """Read-modify-write under the lock: `with update(d) as rec: rec[...] = ...`.
    FileNotFoundError if the record was removed meanwhile; nothing is written
    when the block raises."""

    def __init__(self, directory):
        self.directory = directory
        self.lock = locked(directory)
        self.data = None

    def __enter__(self):
        self.lock.__enter__()
        try:
            self.data = read(self.directory)
            if self.data is None:
                raise FileNotFoundError(os.path.join(self.directory, RECORD))
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self.data

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                write(self.directory, self.data)
        finally:
            self.lock.__exit__(None, None, None)
        return False


def timestamp(when=None):
    """RFC 3339 with nanoseconds in UTC, as Docker writes them."""
    ns = time.time_ns() if when is None else int(when * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_timestamp(text):
    """Seconds since the epoch for a timestamp() string (0.0 if empty/invalid)."""
    if not text or text.startswith("0001"):
        return 0.0
    # The common shape, YYYY-MM-DDTHH:MM:SS[.frac]Z, by hand: time.strptime
    # imports _strptime (re, locale, calendar, datetime), and `ps` parses
    # two timestamps per container.
    if (len(text) >= 20 and text[4] == text[7] == "-" and text[10] == "T"
            and text[13] == text[16] == ":" and text[-1] == "Z" and text[19] in ".Z"):
        fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
        frac = text[20:-1]
        if all(f.isdigit() and f.isascii() for f in fields) and (
                not frac or frac.isdigit() and frac.isascii()) and (text[19] == "." or
                                                                     len(text) == 20):
            y, mo, d, h, mi, s = (int(f) for f in fields)
            if 1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and h < 24 and mi < 60 \
                    and s < 62:
                secs = ((_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + s
                return secs + (float("0." + frac) if frac else 0.0)
    import calendar

    try:
        base, _, frac = text.rstrip("Z").partition(".")
        secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        return secs + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return 0.0


def _month_days(y, m):
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31
