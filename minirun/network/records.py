"""Names published to the embedded resolver by something other than a container.

A container's own names come from its endpoint record.  Other sources (kube's
Services: `web.default.svc.cluster.local` -> the ClusterIP) write one record
file each, `<root>/.network/records/<source>.json`:

    {"network": "minirun-kube",                 # who may ask (containers on it)
     "names": {"web.default.svc.cluster.local": ["10.96.0.10"]},
     "zones": ["cluster.local"]}                # names in it not listed: NXDOMAIN

so the resolver (dns/server.py NameTable) serves them with the containers'
names, re-reading the directory when its mtime changes, with no knowledge of
what a Service is.  Written atomically under the network store's lock.
"""
import json
import os
import re

from minirun.errors import MinirunError
from minirun.network.store import DEFAULT_ROOT, Store, write_atomic

_SOURCE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def directory(root):
    return os.path.join(Store(root).dir, "records")


def check_name(name):
    """A DNS name of lower-case labels of at most 63 characters (253 in all)."""
    if not isinstance(name, str) or not name or len(name) > 253 or \
            not all(_LABEL_RE.match(label) for label in name.split(".")):
        raise MinirunError(f"invalid DNS name {name!r}")
    return name


def publish(source, network, names, zones=(), root=DEFAULT_ROOT):
    """Make `names` ({name: [IPv4 address, ...]}) answer for containers on
    `network`; replaces what `source` published before.  Nothing to publish
    (no names, no zones) withdraws the record."""
    import ipaddress

    if not _SOURCE_RE.match(source or ""):
        raise MinirunError(f"invalid record source {source!r}")
    clean = {}
    for name, ips in names.items():
        for ip in ips:
            if ipaddress.ip_address(ip).version != 4:
                raise MinirunError(f"{name}: only IPv4 addresses are served ({ip})")
        clean[check_name(name.lower().rstrip("."))] = sorted(set(ips), key=ipaddress.ip_address)
    zones = sorted({check_name(z.lower().rstrip(".")) for z in zones})
    if not clean and not zones:
        withdraw(source, root)
        return
    store = Store(root)
    with store.lock():
        os.makedirs(directory(root), mode=0o711, exist_ok=True)
        record = {"network": network, "names": clean, "zones": zones}
        write_atomic(os.path.join(directory(root), f"{source}.json"),
                     json.dumps(record, indent=1, sort_keys=True).encode())


def withdraw(source, root=DEFAULT_ROOT):
    """Remove what `source` published (nothing if it published nothing)."""
    path = os.path.join(directory(root), f"{source}.json")
    if not os.path.exists(path):
        return
    with Store(root).lock():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def load(path):
    """Every readable record under the directory `path`, in name order."""
    out = []
    try:
        entries = sorted(os.listdir(path))
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.endswith(".json") or entry.startswith("."):
            continue
        try:
            with open(os.path.join(path, entry)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("network"):
            out.append(rec)
    return out
