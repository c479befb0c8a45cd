"""The embedded resolver: answers containers' queries on 127.0.0.11:53.

Where it runs (docs/compose.md): the start worker opens a UDP and a TCP
socket bound to 127.0.0.11:53 *inside* the new container's network namespace
(minirun/network/embedded.py) and hands them to the monitor with the init's
pid; the monitor, already the holder of every running container of its
--root, serves them all from its one event loop with this class.  A socket
keeps the namespace it was made in, so one process in the host's namespace
answers every container, and forwards other names to the container's
--dns servers if it has some, else to the host's own resolvers (reachable
from here, even a loopback stub like 127.0.0.53).

Names come from the network store (<root>/.network/endpoints/*.json):
on the asking container's network, each container is found by its
hostname, its aliases (container name, compose service name, network
aliases) and its short id; several containers under one name all answer
(A records, rotated per query, as Docker's round robin).  Other sources
publish names for a network too (network/records.py: kube's Services), with
zones in which a name they do not list is NXDOMAIN at once.
"""
import errno
import json
import os
import socket
import time

from minirun.dns import wire
from minirun.network import records

ADDRESS = "127.0.0.11"
TTL = 600                       # Docker's embedded server answers with 600 s
FORWARD_TIMEOUT = 3.0
HOST_RESOLV_CONF = "/etc/resolv.conf"
TRUST_AFTER_NS = 50_000_000     # a directory mtime younger than this may hide a later change


class NameTable:
    """Names per network, loaded from the endpoint records and reloaded when
    the endpoints directory changes (its mtime: records are replaced by rename)."""

    def __init__(self, root):
        self.dir = os.path.join(root, ".network", "endpoints")
        self.records_dir = os.path.join(root, ".network", "records")
        self._stamp = None
        self.network_of = {}    # container id -> its network names
        self.upstreams = {}     # container id -> its own forwarders (--dns)
        self.names = {}         # (network, name) -> [ip, ...]
        self.reverse = {}       # (network, ip) -> name
        self.zones = {}         # network -> zones whose names are all known here

    def refresh(self):
        mtimes = []
        for d in (self.dir, self.records_dir):
            try:
                mtimes.append(os.stat(d).st_mtime_ns)
            except FileNotFoundError:
                mtimes.append(0)
        if mtimes == self._stamp:
            return
        network_of, names, reverse, upstreams = {}, {}, {}, {}
        try:
            entries = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.dir, entry)) as f:
                    ep = json.load(f)
            except (OSError, ValueError):
                continue
            if ep.get("mode") != "bridge" or not ep.get("ip") or ep.get("state") != "attached":
                continue
            net, ip, cid = ep["network"], ep["ip"], ep.get("of") or ep["container_id"]
            network_of.setdefault(cid, []).append(net)   # "of": a network added by connect()
            if ep.get("dns_upstreams"):
                upstreams[cid] = list(ep["dns_upstreams"])
            own = [*ep.get("aliases", []), ep.get("hostname"), cid[:12]]
            for name in dict.fromkeys(n.lower().rstrip(".") for n in own if n):
                names.setdefault((net, name), []).append(ip)
            reverse[(net, ip)] = next(n for n in own if n)
        zones = {}
        for rec in records.load(self.records_dir):
            net = rec["network"]
            for name, ips in (rec.get("names") or {}).items():
                have = names.setdefault((net, name), [])
                have += [ip for ip in ips if ip not in have]
            zones.setdefault(net, set()).update(rec.get("zones") or ())
        self.network_of, self.names, self.reverse = network_of, names, reverse
        self.upstreams, self.zones = upstreams, zones
        # A change within the same clock tick would not move the mtime again.
        now = time.time_ns()
        self._stamp = mtimes if all(now - m > TRUST_AFTER_NS for m in mtimes) else None

    def lookup(self, cid, name):
        """Addresses of `name` on the networks of container `cid` (None: unknown)."""
        self.refresh()
        found = []
        for net in self.network_of.get(cid, ()):
            found += [ip for ip in self.names.get((net, name), ()) if ip not in found]
        return found or None

    def in_zone(self, cid, name):
        """True if `name` is in a zone published for one of `cid`'s networks."""
        self.refresh()
        for net in self.network_of.get(cid, ()):
            for zone in self.zones.get(net, ()):
                if name == zone or name.endswith("." + zone):
                    return True
        return False

    def pointer(self, cid, name):
        """The name of a container for a PTR query of its address, or None."""
        suffix = ".in-addr.arpa"
        if not name.endswith(suffix):
            return None
        parts = name[:-len(suffix)].split(".")
        if len(parts) != 4:
            return None
        self.refresh()
        ip = ".".join(reversed(parts))
        for net in self.network_of.get(cid, ()):
            if (net, ip) in self.reverse:
                return self.reverse[(net, ip)]
        return None


def host_nameservers(path=HOST_RESOLV_CONF):
    """The host's resolvers, as the host uses them (this process is in the
    host's network namespace, so loopback stubs work)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver" and fields[1] != ADDRESS:
                    out.append(fields[1].split("%")[0])
    except OSError:
        pass
    return out


class Resolver:
    """Serves the sockets of every container; plugs into the caller's selector
    (handlers are called with the event mask) and timer (call_later)."""

    def __init__(self, root, selector, call_later, upstreams=None):
        self.table = NameTable(root)
        self.sel = selector
        self.call_later = call_later
        self.upstreams = upstreams          # None: the host's, read per forward
        self.sockets = {}                   # cid -> [sockets, incl. TCP connections]
        self.turn = 0

    # --- sockets --------------------------------------------------------------------
    def add(self, cid, udp_fd, tcp_fd):
        self.remove(cid)        # a restarted container comes with new sockets
        udp = socket.socket(fileno=udp_fd)
        tcp = socket.socket(fileno=tcp_fd)
        for s in (udp, tcp):
            s.setblocking(False)
        self.sockets[cid] = [udp, tcp]
        self.sel.register(udp, 1, lambda _m: self._udp(cid, udp))
        self.sel.register(tcp, 1, lambda _m: self._accept(cid, tcp))

    def remove(self, cid):
        """Close a container's sockets (they hold its network namespace)."""
        for s in self.sockets.pop(cid, []):
            self._close(s)

    def close(self):
        for cid in list(self.sockets):
            self.remove(cid)

    def _close(self, s):
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()

    def _udp(self, cid, sock):
        for _ in range(64):     # a burst, without starving the rest of the loop
            try:
                data, peer = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.handle(cid, data, lambda reply, p=peer: _sendto(sock, reply, p), tcp=False)

    def _accept(self, cid, listener):
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.sockets.setdefault(cid, []).append(conn)
        buf = bytearray()
        self.sel.register(conn, 1, lambda _m: self._tcp(cid, conn, buf))

    def _tcp(self, cid, conn, buf):
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(cid, conn)
            return
        buf += data
        while len(buf) >= 2:
            size = int.from_bytes(buf[:2], "big")
            if len(buf) < 2 + size:
                break
            message = bytes(buf[2:2 + size])
            del buf[:2 + size]
            self.handle(cid, message, lambda reply: self._tcp_reply(cid, conn, reply), tcp=True)

    def _tcp_reply(self, cid, conn, reply):
        try:
            conn.setblocking(True)
            conn.settimeout(1.0)
            conn.sendall(len(reply).to_bytes(2, "big") + reply)
            conn.setblocking(False)
        except OSError:
            self._drop(cid, conn)

    def _drop(self, cid, conn):
        socks = self.sockets.get(cid) or []
        if conn in socks:
            socks.remove(conn)
        self._close(conn)

    # --- answers ----------------------------------------------------------------------
    def handle(self, cid, data, reply, tcp=False):
        try:
            q = wire.Query(data)
        except wire.Malformed:
            err = wire.error(data, wire.FORMERR)
            if err:
                reply(err)
            return
        answer = self.answer(cid, q, 65535 if tcp else q.udp_size)
        if answer is not None:
            reply(answer)
        else:
            self._forward(cid, q, data, reply)

    def answer(self, cid, q, max_size=wire.UDP_MAX):
        """The answer from the container names, or None: not ours, forward it."""
        if q.opcode != 0:
            return wire.response(q, wire.NOTIMP, max_size=max_size)
        if q.qclass != wire.IN:
            return None
        name = q.key
        ips = self.table.lookup(cid, name)
        if ips:
            if q.qtype not in (wire.A, wire.ANY):
                return wire.response(q, max_size=max_size)   # the name exists: no data
            self.turn += 1
            k = self.turn % len(ips)
            ordered = ips[k:] + ips[:k]
            return wire.response(q, answers=[(wire.A, TTL, wire.rdata_a(ip)) for ip in ordered],
                                 max_size=max_size)
        if q.qtype == wire.PTR:
            target = self.table.pointer(cid, name)
            if target:
                return wire.response(q, answers=[(wire.PTR, TTL, wire.rdata_name(target))],
                                     max_size=max_size)
        if ("." not in name and name) or self.table.in_zone(cid, name):
            # A single label no container has: the host's resolvers would not
            # know it either (Docker answers these itself too); nor a name in a
            # zone a record source serves whole (cluster.local).
            return wire.response(q, wire.NXDOMAIN, max_size=max_size)
        return None

    def _forward(self, cid, q, data, reply):
        servers = self.table.upstreams.get(cid) or (
            self.upstreams if self.upstreams is not None else host_nameservers())
        if not servers:
            reply(wire.response(q, wire.REFUSED, authoritative=False))
            return
        server = servers[0]
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        try:
            up = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            up.connect((server, 53))
            up.send(data)
        except OSError:
            reply(wire.response(q, wire.SERVFAIL, authoritative=False))
            return
        state = {"done": False}

        def finish(answer):
            if state["done"]:
                return
            state["done"] = True
            timer.cancel()
            self._close(up)
            reply(answer)

        def readable(_mask):
            try:
                answer = up.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                answer = wire.response(q, wire.SERVFAIL, authoritative=False)
            finish(answer)

        timer = self.call_later(FORWARD_TIMEOUT, lambda: finish(
            wire.response(q, wire.SERVFAIL, authoritative=False)))
        self.sel.register(up, 1, readable)


def _sendto(sock, data, peer):
    try:
        sock.sendto(data, peer)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.ECONNREFUSED, errno.EPERM):
            raise
