"""Which containers `ps`, `prune` and `port` show: Docker's --filter keys.

ps:    id, name (regexp), status, label (KEY or KEY=VALUE), ancestor (image
       reference, name without tag, or image id prefix), exited (code)
prune: until (timestamp or duration), label
Filters of one key are ORed; different keys are ANDed (Docker's rule).
"""
from minirun.errors import BadOption
from minirun.frontend import recordfile, views
from minirun.frontend import status  # current_state only: not control (the monitor client)

PS_KEYS = ("id", "name", "status", "label", "ancestor", "exited")
PRUNE_KEYS = ("until", "label", "label!")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def parse_filters(items, keys):
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in keys:
            raise BadOption(f"invalid filter {item!r}" if eq else
                            f"bad format of filter (expected name=value): {item}")
        if key == "status" and value not in STATUSES:
            raise BadOption(f"invalid filter 'status={value}': use one of "
                            f"{', '.join(STATUSES)}")
        if key == "exited" and not value.lstrip("-").isdigit():
            raise BadOption(f"invalid filter 'exited={value}': not an exit code")
        if key == "until":
            from minirun.frontend.logs import parse_since

            value = parse_since(value)
        out.setdefault(key, []).append(value)
    return out


def _labels_match(labels, wanted):
    for v in wanted:
        k, eq, want = v.partition("=")
        if k not in labels or (eq and labels[k] != want):
            return False
    return True


def _ancestor(rec, ref):
    image = rec["Config"]["Image"]
    if ref in (image, image.split(":")[0]) or (ref + ":latest") == image:
        return True
    return len(ref) >= 4 and rec["Image"].split(":")[-1].startswith(ref.split(":")[-1])


def matches(rec, state, filters):
    for key, values in filters.items():
        if key == "name":
            import re  # only for a name filter (a regexp, as Docker's)

            if not any(re.search(v, rec["Name"].lstrip("/")) for v in values):
                return False
        if key == "id" and not any(rec["Id"].startswith(v) for v in values):
            return False
        if key == "status" and state not in values:
            return False
        if key == "exited" and not (state == "exited" and any(
                int(v) == rec["State"]["ExitCode"] for v in values)):
            return False
        if key == "ancestor" and not any(_ancestor(rec, v) for v in values):
            return False
        if key == "label" and not _labels_match(rec["Config"].get("Labels") or {}, values):
            return False
        if key == "label!" and _labels_match(rec["Config"].get("Labels") or {}, values):
            return False
        if key == "until" and not any(
                recordfile.parse_timestamp(rec["Created"]) < v for v in values):
            return False
    return True


def ps_rows(fe, all_=False, filters=(), last=None, latest=False, trunc=True):
    """Rows of `ps` (newest first), with --all/-n/-l and --filter applied."""
    wanted = parse_filters(filters, PS_KEYS)
    if "status" in wanted or "exited" in wanted:
        all_ = True  # Docker: a status filter looks at every container
    records = fe.records()
    if latest:
        last = 1
    if last is not None and last >= 0:
        records = records[:last]
        all_ = True
    rows = []
    for rec in records:
        state = status.current_state(fe, rec)
        if not all_ and state not in ("running", "paused", "restarting"):
            continue
        if matches(rec, state, wanted):
            rows.append(views.ps_row(rec, state, trunc=trunc))
    return rows


def prunable(fe, filters=()):
    """Stopped containers that the prune filters select."""
    wanted = parse_filters(filters, PRUNE_KEYS)
    out = []
    for rec in fe.records():
        state = status.current_state(fe, rec)
        if state in ("exited", "created", "dead") and matches(rec, state, wanted):
            out.append(rec)
    return out


def published_ports(fe, ref=None, private_port=None):
    """[(container name, "80/tcp", "0.0.0.0:8080")] of running containers (one or all)."""
    if private_port:
        port, _, proto = private_port.partition("/")
        if not port.isdigit():
            raise BadOption(f"invalid port {private_port!r}")
        private_port = f"{int(port)}/{proto or 'tcp'}"
    recs = [fe.find(ref)[1]] if ref else fe.records()
    out = []
    for rec in recs:
        if status.current_state(fe, rec) not in ("running", "paused"):
            continue
        ports = (rec.get("NetworkSettings") or {}).get("Ports") or {}
        for key, binds in sorted(ports.items()):
            if private_port and key != private_port:
                continue
            for b in binds or []:
                out.append((rec["Name"].lstrip("/"), key, f"{b['HostIp']}:{b['HostPort']}"))
    return out
