"""Docker's event stream for front-end containers: create, start, die, oom,
health_status, kill, stop, pause, unpause, rename, destroy.

Whoever does the thing appends one JSON line (Docker's event shape) to
<store>/frontend/events.jsonl; `minirun events` reads it and, while it waits,
polls for new lines.  A single write(2) of one line with O_APPEND never
interleaves with another writer's line.  The file is rotated to .1 at 1 MiB.
Stdlib only: the monitor (health_status) writes events too.
"""
import os
import time

from minirun import jsonio  # json's text without json's imports (workers emit events)

MAX_BYTES = 1 << 20


def path(store_root):
    return os.path.join(store_root, "frontend", "events.jsonl")


def emit(fe, action, rec, **attributes):
    """Record `action` for the container record `rec` (never fails the caller)."""
    store = getattr(fe, "store_root", fe)
    now = time.time_ns()
    attrs = dict((rec.get("Config") or {}).get("Labels") or {})
    attrs.update(image=(rec.get("Config") or {}).get("Image", ""),
                 name=rec.get("Name", "").lstrip("/"))
    attrs.update({k: str(v) for k, v in attributes.items()})
    status = action
    event = {"status": status, "id": rec["Id"], "from": attrs["image"], "Type": "container",
             "Action": action, "Actor": {"ID": rec["Id"], "Attributes": attrs},
             "scope": "local", "time": now // 10**9, "timeNano": now}
    line = (jsonio.dumps(event) + "\n").encode()
    p = path(store)
    try:
        if os.path.getsize(p) > MAX_BYTES:
            os.replace(p, p + ".1")
    except OSError:
        pass
    try:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, line)
    except OSError:
        pass
    finally:
        os.close(fd)


def _lines(p, offset):
    """Complete lines of file p from offset; (events, new offset)."""
    try:
        with open(p, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        try:
            out.append(jsonio.loads(line))
        except ValueError:
            continue
    return out, offset + end


def read(store_root, since=None, until=None, follow=True, matches=None, poll=0.1):
    """Events with since <= time (<= until), oldest first; with follow, wait for new
    ones (until `until` passes, or forever).  Times are seconds since the epoch."""
    p = path(store_root)
    if since is None and follow:
        since = time.time()  # Docker: without --since, only what happens from now on
    old, _ = _lines(p + ".1", 0)
    current, offset = _lines(p, 0)
    if not follow and until is None:
        until = time.time()
    for ev in old + current:
        t = ev["timeNano"] / 1e9
        if since is not None and t < since:
            continue
        if until is not None and t > until:
            return
        if matches is None or matches(ev):
            yield ev
    if not follow:
        return
    inode = _inode(p)
    while until is None or time.time() <= until:
        time.sleep(poll)
        if _inode(p) != inode:  # rotated: the rest of the old file, then the new one
            rest, _ = _lines(p + ".1", offset)
            new, offset = _lines(p, 0)
            new = rest + new
            inode = _inode(p)
        else:
            new, offset = _lines(p, offset)
        for ev in new:
            if until is not None and ev["timeNano"] / 1e9 > until:
                return
            if matches is None or matches(ev):
                yield ev


def _inode(p):
    try:
        return os.stat(p).st_ino
    except FileNotFoundError:
        return None


FILTER_KEYS = ("container", "event", "image", "label", "type")


def selection(fe, filters=(), since=None, until=None):
    """(matches(event) -> bool, since, until) for `events --filter/--since/--until`."""
    from minirun.errors import BadOption
    from minirun.frontend.logs import parse_since

    wanted = {}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or key not in FILTER_KEYS:
            raise BadOption(f"invalid filter {item!r}: use one of {', '.join(FILTER_KEYS)}")
        wanted.setdefault(key, []).append(value)

    def one(ev, key, value):
        attrs = ev["Actor"]["Attributes"]
        if key == "container":
            return ev["id"].startswith(value) or attrs.get("name") == value
        if key == "event":
            return ev["Action"] == value or ev["Action"].split(":")[0] == value
        if key == "image":
            return attrs.get("image") in (value, value + ":latest")
        if key == "label":
            k, eq, v = value.partition("=")
            return k in attrs and (not eq or attrs[k] == v)
        return ev["Type"] == value

    def matches(ev):
        return all(any(one(ev, k, v) for v in values) for k, values in wanted.items())

    return matches, parse_since(since), parse_since(until)


def text(ev):
    """Docker's default line: TIME container ACTION ID (attr=value, ...)."""
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ev["time"]))
    frac = f"{ev['timeNano'] % 10**9:09d}"
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
    return f"{t}.{frac}Z {ev['Type']} {ev['Action']} {ev['id']} ({attrs})"
