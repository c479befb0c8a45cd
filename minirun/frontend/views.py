"""What the commands print: ps rows and STATUS texts, inspect documents,
stats and top (--format templates: template.py)."""
import os
import time

from minirun.frontend import recordfile


# --- human text -------------------------------------------------------------------------
def human_duration(seconds):
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def human_size(n):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000


def binary_size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.4g}{unit}"
        n /= 1024


def _ago(ts):
    return human_duration(time.time() - recordfile.parse_timestamp(ts)) + " ago"


def status_text(rec, state):
    """ps STATUS: "Up 3 seconds (healthy)", "Exited (0) 2 minutes ago", ..."""
    st = rec["State"]
    if state in ("running", "paused"):
        text = "Up " + human_duration(time.time() - recordfile.parse_timestamp(st["StartedAt"]))
        health = (st.get("Health") or {}).get("Status")
        if state == "paused":
            text += " (Paused)"
        elif health:
            text += " (health: starting)" if health == "starting" else f" ({health})"
        return text
    if state == "restarting":
        return f"Restarting ({st['ExitCode']}) {_ago(st['FinishedAt'])}"
    if state == "exited":
        if st["FinishedAt"].startswith("0001"):
            return "Created" if st["Status"] == "created" else f"Exited ({st['ExitCode']})"
        return f"Exited ({st['ExitCode']}) {_ago(st['FinishedAt'])}"
    if state == "created":
        return "Created"
    if state == "removing":
        return "Removal In Progress"
    return state.capitalize()


def ports_text(rec, state):
    if state not in ("running", "paused"):
        return ""
    out = []
    for key, binds in sorted((rec.get("NetworkSettings") or {}).get("Ports", {}).items()):
        for b in binds or []:
            out.append(f"{b['HostIp']}:{b['HostPort']}->{key}")
    return ", ".join(out)


def command_text(rec, trunc=True):
    args = [rec["Path"], *rec["Args"]]
    if args[:2] == ["/dev/init", "--"]:
        args = args[2:]
    text = " ".join(args)
    if trunc and len(text) > 20:
        text = text[:19] + "…"
    return f'"{text}"'


def ps_row(rec, state, trunc=True):
    cid = rec["Id"]
    return {
        "ID": cid[:12] if trunc else cid,
        "Image": rec["Config"]["Image"],
        "Command": command_text(rec, trunc),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(
            recordfile.parse_timestamp(rec["Created"]))),
        "RunningFor": _ago(rec["Created"]),
        "Status": status_text(rec, state),
        "State": state,
        "Ports": ports_text(rec, state),
        "Names": rec["Name"].lstrip("/"),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(rec["Config"].get("Labels", {}).items())),
        "Mounts": ",".join(m.get("Name") or m["Source"] for m in rec.get("Mounts") or []),
        "Networks": ",".join((rec.get("NetworkSettings") or {}).get("Networks", {})),
    }


PS_COLUMNS = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
              ("CREATED", "RunningFor"), ("STATUS", "Status"), ("PORTS", "Ports"),
              ("NAMES", "Names")]


def table(rows, columns, sep="   "):
    """Left-aligned columns (Docker's tabwriter, padding 3)."""
    head = [c for c, _ in columns]
    body = [[str(r.get(k, "")) for _, k in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = []
    for row in [head] + body:
        lines.append(sep.join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


# --- inspect ----------------------------------------------------------------------------
_PRIVATE = ("Healthcheck", "ManualStop", "RestartDelay", "Store", "Root", "Bundle", "Rootfs",
            "ImageManifest", "Monitor")


def inspect_doc(rec, state):
    doc = {k: v for k, v in rec.items() if k not in _PRIVATE}
    st = dict(doc["State"])
    st["Status"] = state
    st["Running"] = state in ("running", "paused")
    st["Paused"] = state == "paused"
    st["Restarting"] = state == "restarting"
    if state == "exited" and rec["State"]["Status"] in ("running", "restarting"):
        st.update(Dead=True, ExitCode=255 if st.get("ExitCode", 0) == 0 else st["ExitCode"],
                  Error="the monitor holding the container is gone", Pid=0)
    doc["State"] = st
    doc["Mounts"] = [{k: v for k, v in m.items() if k != "Anonymous"} for m in rec["Mounts"]]
    return doc


def image_doc(fe, name):
    """`inspect` of an image, or None."""
    image = fe.image_store().lookup(name)
    if image is None:
        return None
    cfg = image.config
    return {"Id": image.id, "RepoTags": image.names, "Created": cfg.get("created"),
            "Architecture": cfg.get("architecture"), "Os": cfg.get("os"), "Size": image.size,
            "Config": cfg.get("config", {}), "RootFS": {"Type": "layers",
                                                      "Layers": image.diff_ids}}


def inspect_any(fe, name, kind=None):
    """The inspect document of a container, else image, volume or network (or
    only of `kind`); None when there is none."""
    from minirun.errors import MinirunError
    from minirun.frontend import control, volumes

    def container():
        _, rec = fe.find(name)
        return inspect_doc(rec, control.current_state(fe, rec))

    def network():
        from minirun import network as net

        return net.inspect_network(name, root=fe.root)

    finders = {"container": container, "image": lambda: image_doc(fe, name),
               "volume": lambda: volumes.inspect(fe, name), "network": network}
    for k, find in finders.items():
        if kind in (None, k):
            try:
                doc = find()
            except MinirunError:
                doc = None
            if doc is not None:
                return doc
    return None


# --- stats ---------------------------------------------------------------------------------
def _net_io(pid):
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, rest = line.partition(":")
                if name.strip() == "lo":
                    continue
                fields = rest.split()
                rx += int(fields[0])
                tx += int(fields[8])
    except (OSError, ValueError, IndexError):
        pass
    return rx, tx


def _host_memory():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def sample(fe, rec):
    """One reading of a running container's cgroup: cpu ns, memory, pids, io."""
    from minirun.runtime.state import Container

    with Container.load(fe.root, rec["Id"], lock=False) as c:
        cg = c.cgroup()
        pid = c.pid
        stats = cg.stats() if cg is not None else {}
    mem = stats.get("memory") or {}
    usage = (mem.get("usage") or {}).get("usage", 0)
    cache = mem.get("cache", 0) or (mem.get("raw") or {}).get("inactive_file", 0)
    limit = (mem.get("usage") or {}).get("limit", 0)
    host = _host_memory()
    if not limit or limit > host:
        limit = host
    blk = stats.get("blkio") or {}
    read = write = 0
    for e in blk.get("ioServiceBytesRecursive") or []:
        op = (e.get("op") or "").lower()
        if op == "read":
            read += e.get("value", 0)
        elif op == "write":
            write += e.get("value", 0)
    rx, tx = _net_io(pid)
    return {"cpu": ((stats.get("cpu") or {}).get("usage") or {}).get("total", 0),
            "time": time.monotonic(), "mem": max(usage - cache, 0), "limit": limit,
            "pids": (stats.get("pids") or {}).get("current", 0), "net": (rx, tx),
            "blk": (read, write)}


def stats_row(rec, before, after):
    ncpu = os.cpu_count() or 1
    dt = after["time"] - before["time"]
    cpu = (after["cpu"] - before["cpu"]) / (dt * 1e9) * 100 if dt > 0 else 0.0
    cpu = min(max(cpu, 0.0), 100.0 * ncpu)
    mem_pct = after["mem"] / after["limit"] * 100 if after["limit"] else 0.0
    return {"Container": rec["Id"][:12], "ID": rec["Id"][:12], "Name": rec["Name"].lstrip("/"),
            "CPUPerc": f"{cpu:.2f}%",
            "MemUsage": f"{binary_size(after['mem'])} / {binary_size(after['limit'])}",
            "MemPerc": f"{mem_pct:.2f}%",
            "NetIO": f"{human_size(after['net'][0])} / {human_size(after['net'][1])}",
            "BlockIO": f"{human_size(after['blk'][0])} / {human_size(after['blk'][1])}",
            "PIDs": str(after["pids"])}


STATS_COLUMNS = [("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"),
                 ("MEM USAGE / LIMIT", "MemUsage"), ("MEM %", "MemPerc"),
                 ("NET I/O", "NetIO"), ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs")]


def stats_stream(fe, refs=(), all_=False, once=False):
    """Lists of stats rows: one reading a second (once: a single one)."""
    from minirun.errors import MinirunError
    from minirun.frontend import control

    if refs:
        records = [fe.find(ref)[1] for ref in refs]
    else:
        records = [r for r in fe.records()
                   if all_ or control.current_state(fe, r) in ("running", "paused")]

    def reading():
        out = {}
        for rec in records:
            try:
                out[rec["Id"]] = sample(fe, rec)
            except MinirunError:
                continue
        return out

    before = reading()
    while True:
        time.sleep(0.5 if once else 1.0)
        after = reading()
        yield [stats_row(rec, before[rec["Id"]], after[rec["Id"]])
               for rec in records if rec["Id"] in before and rec["Id"] in after]
        if once:
            return
        before = after


def top(fe, ref, ps_args=()):
    """Lines of host `ps` (default -ef) for the container's processes, header first."""
    import subprocess

    from minirun.errors import MinirunError
    from minirun.frontend import execute

    pids = execute.processes(fe, ref)
    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise MinirunError(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return []
    header = lines[0].split()
    if "PID" not in header:
        raise MinirunError("couldn't find PID field in ps output")
    col = header.index("PID")
    return [lines[0]] + [line for line in lines[1:] if len(line.split()) > col
                         and line.split()[col].isdigit() and int(line.split()[col]) in pids]
