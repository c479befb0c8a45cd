"""Published ports: parsing `-p [hostIP:][hostPort:]containerPort[/tcp|udp]` and
making sure a host port is free before minirun claims it.

A port is taken if another container of the store publishes it, or if a host
process is bound to it (found by trying to bind it ourselves).  minirun keeps no
daemon holding the port open (Docker's docker-proxy does), so a host process
may still bind it later; DNAT then wins for traffic from outside.
"""
import errno
import ipaddress
import socket

from minirun.errors import MinirunError

PROTOCOLS = ("tcp", "udp")


def _port(text, what, spec, allow_zero=False):
    try:
        port = int(text)
    except ValueError:
        if "-" in text:
            raise MinirunError(f"invalid port mapping {spec!r}: port ranges are not supported") from None
        raise MinirunError(f"invalid port mapping {spec!r}: bad {what} {text!r}") from None
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise MinirunError(f"invalid port mapping {spec!r}: {what} {port} out of range")
    return port


def parse_publish(spec):
    """One mapping as a dict {host_ip, host_port, container_port, proto}.

    host_port 0 means "any free port" (chosen at attach time).  Accepts a dict
    with those keys too, so callers may pass either form.
    """
    if isinstance(spec, dict):
        spec = dict(spec)
        text = (f"{spec.get('host_ip') or ''}:{spec.get('host_port') or ''}:"
                f"{spec['container_port']}/{spec.get('proto', 'tcp')}")
        return parse_publish(text)
    if not isinstance(spec, str) or not spec:
        raise MinirunError(f"invalid port mapping {spec!r}")
    body, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise MinirunError(f"invalid port mapping {spec!r}: protocol must be tcp or udp")
    if body.startswith("["):
        raise MinirunError(f"invalid port mapping {spec!r}: IPv6 host addresses are not supported")
    parts = body.split(":")
    if len(parts) == 1:
        host_ip, host_port, container_port = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, (host_port, container_port) = "", parts
    elif len(parts) == 3:
        host_ip, host_port, container_port = parts
    else:
        raise MinirunError(f"invalid port mapping {spec!r}: use [hostIP:][hostPort:]containerPort[/proto]")
    if host_ip:
        try:
            addr = ipaddress.ip_address(host_ip)
        except ValueError:
            raise MinirunError(f"invalid port mapping {spec!r}: bad host IP {host_ip!r}") from None
        if addr.version != 4:
            raise MinirunError(f"invalid port mapping {spec!r}: IPv6 host addresses are not supported")
    return {
        "host_ip": host_ip or "0.0.0.0",
        "host_port": _port(host_port, "host port", spec, allow_zero=True) if host_port else 0,
        "container_port": _port(container_port, "container port", spec),
        "proto": proto,
    }


def describe(p):
    return f"{p['host_ip']}:{p['host_port']}->{p['container_port']}/{p['proto']}"


def _overlap(a, b):
    """Two mappings collide if they share protocol and port and an address
    (0.0.0.0 shares every address)."""
    return (a["proto"] == b["proto"] and a["host_port"] == b["host_port"]
            and (a["host_ip"] == b["host_ip"] or "0.0.0.0" in (a["host_ip"], b["host_ip"])))


def _bind_probe(host_ip, port, proto):
    """Bind the port ourselves for an instant; returns the port (chosen if 0)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if proto == "tcp":
            # Ignore connections lingering in TIME_WAIT; a listener still conflicts.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise MinirunError(f"Bind for {host_ip}:{port} failed: address already in use "
                                   f"(a host process has {proto} port {port})") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise MinirunError(f"Bind for {host_ip}:{port} failed: {host_ip} is not an "
                                   "address of this host") from None
            raise MinirunError(f"Bind for {host_ip}:{port} failed: {e.strerror}") from None
        return s.getsockname()[1]


def claim(wanted, published):
    """Check the mappings in `wanted` against the ones already `published` by other
    containers and against host sockets; fill in chosen ports.  Returns new dicts."""
    out = []
    for p in wanted:
        p = dict(p)
        for _ in range(64):
            if p["host_port"] == 0:
                p["host_port"] = _bind_probe(p["host_ip"], 0, p["proto"])
                if any(_overlap(p, q) for q in published + out):
                    p["host_port"] = 0   # another container holds it through DNAT only
                    continue
                break
            for q in published + out:
                if _overlap(p, q):
                    raise MinirunError(f"Bind for {p['host_ip']}:{p['host_port']} failed: "
                                       "port is already allocated")
            _bind_probe(p["host_ip"], p["host_port"], p["proto"])
            break
        else:
            raise MinirunError("could not find a free host port")
        out.append(p)
    return out
