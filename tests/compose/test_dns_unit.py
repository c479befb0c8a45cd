"""The embedded resolver's wire format and answers, without root or sockets
in other namespaces: queries are built and parsed with minirun.dns.wire, and
the name table is read from endpoint records written to a tmp dir."""
import json
import os
import socket
import struct

import pytest

from minirun.dns import server, wire

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root


def write_endpoint(root, cid, network, ip, hostname=None, aliases=(), mode="bridge",
                   state="attached", **extra):
    d = os.path.join(root, ".network", "endpoints")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{cid}.json"), "w") as f:
        json.dump({"container_id": cid, "mode": mode, "network": network, "ip": ip,
                   "hostname": hostname or cid[:12], "aliases": list(aliases),
                   "state": state, **extra}, f)
    touch_old(d)


_ticks = [0]


def touch_old(d):
    """The table trusts the directory's mtime only once it is older than a clock
    tick: give it a distinct time in the past, so each write is seen at once."""
    _ticks[0] += 1
    os.utime(d, ns=(_ticks[0], _ticks[0]))


class FakeSelector:
    def __init__(self):
        self.registered = {}

    def register(self, s, events, data):
        self.registered[s] = data

    def unregister(self, s):
        del self.registered[s]


class FakeTimer:
    def cancel(self):
        self.cancelled = True


def make_resolver(root, upstreams=()):
    return server.Resolver(str(root), FakeSelector(), lambda d, cb: FakeTimer(), list(upstreams))


def test_name_round_trip_and_compression():
    assert wire.encode_name("web.example.") == b"\x03web\x07example\x00"
    assert wire.encode_name("") == b"\x00"
    msg = b"\x00" * 12 + b"\x03web\x07example\x00" + b"\x03api\xc0\x0c"
    assert wire.decode_name(msg, 12) == ("web.example", 25)
    assert wire.decode_name(msg, 25) == ("api.web.example", 31)
    with pytest.raises(wire.Malformed):
        wire.encode_name("x" * 64)
    with pytest.raises(wire.Malformed):
        wire.decode_name(b"\x00" * 12 + b"\xc0\x0c", 12)  # points at itself
    with pytest.raises(wire.Malformed):
        wire.decode_name(b"\x05ab", 0)


def test_query_parse_and_response():
    data = wire.query("Web", wire.A, qid=77)
    q = wire.Query(data)
    assert (q.id, q.name, q.key, q.qtype, q.qclass, q.udp_size) == (77, "Web", "web", 1, 1, 512)
    out = wire.response(q, answers=[(wire.A, 600, wire.rdata_a("10.0.0.2")),
                                    (wire.A, 600, wire.rdata_a("10.0.0.3"))])
    r = wire.parse_response(out)
    assert r["id"] == 77 and r["rcode"] == wire.NOERROR and r["flags"] & wire.QR
    assert r["flags"] & wire.RD and r["flags"] & wire.AA
    assert [a[3] for a in r["answers"]] == ["10.0.0.2", "10.0.0.3"]
    assert r["answers"][0][:3] == ("Web", wire.A, 600)


def test_edns_size_and_truncation():
    opt = b"\x00" + struct.pack(">HHIH", wire.OPT, 1232, 0, 0)
    data = bytearray(wire.query("many"))
    data[10:12] = b"\x00\x01"      # ARCOUNT 1
    q = wire.Query(bytes(data) + opt)
    assert q.udp_size == 1232
    answers = [(wire.A, 600, wire.rdata_a(f"10.0.{i // 250}.{i % 250 + 1}")) for i in range(100)]
    small = wire.response(wire.Query(wire.query("many")), answers=answers)
    r = wire.parse_response(small)
    assert r["flags"] & wire.TC and r["answers"] == [] and len(small) <= 512
    big = wire.parse_response(wire.response(q, answers=answers, max_size=65535))
    assert len(big["answers"]) == 100 and not big["flags"] & wire.TC


def test_malformed_queries():
    for bad in (b"", b"\x00" * 5, wire.query("x")[:14]):
        with pytest.raises(wire.Malformed):
            wire.Query(bad)
    answer = wire.response(wire.Query(wire.query("x")))
    with pytest.raises(wire.Malformed):
        wire.Query(answer)                      # a response is not a query
    err = wire.parse_response(wire.error(wire.query("x")[:14], wire.FORMERR))
    assert err["rcode"] == wire.FORMERR and err["id"] == 0x1234
    assert wire.error(b"\x00", wire.FORMERR) is None


def test_replicas_aliases_and_networks(tmp_path):
    a, b, c, d = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    write_endpoint(tmp_path, a, "proj_default", "10.89.0.2", aliases=["proj-web-1", "web"])
    write_endpoint(tmp_path, b, "proj_default", "10.89.0.3", aliases=["proj-web-2", "web"])
    write_endpoint(tmp_path, c, "proj_default", "10.89.0.4", hostname="dbhost",
                   aliases=["proj-db-1", "db", "database"])
    write_endpoint(tmp_path, d, "other", "10.90.0.2", aliases=["web"])
    res = make_resolver(tmp_path)

    def ask(cid, name, qtype=wire.A):
        out = res.answer(cid, wire.Query(wire.query(name, qtype)))
        return None if out is None else wire.parse_response(out)

    r = ask(c, "web")
    assert sorted(x[3] for x in r["answers"]) == ["10.89.0.2", "10.89.0.3"]
    # Rotated between queries (round robin), the set unchanged.
    assert ask(c, "web")["answers"][0][3] != r["answers"][0][3]
    assert [x[3] for x in ask(a, "DATABASE.")["answers"]] == ["10.89.0.4"]
    assert [x[3] for x in ask(a, "dbhost")["answers"]] == ["10.89.0.4"]
    assert [x[3] for x in ask(a, c[:12])["answers"]] == ["10.89.0.4"]
    # Another network's containers are not visible.
    assert [x[3] for x in ask(d, "web")["answers"]] == ["10.90.0.2"]
    assert ask(d, "db")["rcode"] == wire.NXDOMAIN
    # A known name without an address of that type: no data, not an error.
    r = ask(a, "web", wire.AAAA)
    assert r["rcode"] == wire.NOERROR and r["answers"] == []
    r = ask(a, "4.0.89.10.in-addr.arpa", wire.PTR)
    assert r["answers"][0][3] == "proj-db-1"
    # Names with a dot that no container has go upstream.
    assert ask(a, "pypi.org") is None


def test_table_follows_the_store(tmp_path):
    a, b = "a" * 64, "b" * 64
    write_endpoint(tmp_path, a, "n", "10.1.0.2", aliases=["x"])
    res = make_resolver(tmp_path)
    assert res.table.lookup(a, "y") is None
    write_endpoint(tmp_path, b, "n", "10.1.0.3", aliases=["y"])
    assert res.table.lookup(a, "y") == ["10.1.0.3"]
    os.unlink(os.path.join(tmp_path, ".network", "endpoints", f"{b}.json"))
    touch_old(os.path.join(tmp_path, ".network", "endpoints"))
    assert res.table.lookup(a, "y") is None
    # Attaching (not yet attached) endpoints and other modes answer nothing.
    write_endpoint(tmp_path, b, "n", "10.1.0.3", aliases=["y"], state="attaching")
    assert res.table.lookup(a, "y") is None


def test_forwarding_and_refusal(tmp_path):
    a = "a" * 64
    write_endpoint(tmp_path, a, "n", "10.1.0.2")
    replies = []
    res = make_resolver(tmp_path, upstreams=[])
    res.handle(a, wire.query("pypi.org"), replies.append)
    assert wire.parse_response(replies[-1])["rcode"] == wire.REFUSED
    res.handle(a, b"\x12\x34\x00", replies.append)       # too short even for FORMERR
    assert len(replies) == 1
    res.handle(a, wire.query("x")[:14], replies.append)
    assert wire.parse_response(replies[-1])["rcode"] == wire.FORMERR

    # A forwarded query goes out unchanged and its answer comes back as is.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
        upstream.bind(("127.0.0.1", 0))
        res = make_resolver(tmp_path, upstreams=["127.0.0.1"])
        port = upstream.getsockname()[1]
        orig = socket.socket.connect

        def connect(self, addr):   # the upstream listens on a test port, not 53
            return orig(self, (addr[0], port))

        socket.socket.connect = connect
        try:
            res.handle(a, wire.query("pypi.org", qid=9), replies.append)
        finally:
            socket.socket.connect = orig
        data, peer = upstream.recvfrom(512)
        assert wire.Query(data).name == "pypi.org"
        q = wire.Query(data)
        upstream.sendto(wire.response(q, answers=[(wire.A, 5, wire.rdata_a("192.0.2.1"))],
                                      authoritative=False), peer)
        (up, handler), = res.sel.registered.items()
        up.setblocking(True)
        handler(1)
    r = wire.parse_response(replies[-1])
    assert r["id"] == 9 and r["answers"][0][3] == "192.0.2.1"
    assert res.sel.registered == {}


def test_host_nameservers(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\n"
                    "nameserver 127.0.0.11\nsearch example\n")
    assert server.host_nameservers(str(conf)) == ["127.0.0.53", "fe80::1"]
    assert server.host_nameservers(str(tmp_path / "none")) == []


def test_container_forwarders_win(tmp_path):
    a, b = "a" * 64, "b" * 64
    write_endpoint(tmp_path, a, "n", "10.1.0.2", dns_upstreams=["192.0.2.53"])
    write_endpoint(tmp_path, b, "n", "10.1.0.3")
    res = make_resolver(tmp_path, upstreams=[])
    res.table.refresh()
    assert res.table.upstreams == {a: ["192.0.2.53"]}
    replies = []
    res.handle(b, wire.query("pypi.org"), replies.append)   # b has none, the host none
    assert wire.parse_response(replies[-1])["rcode"] == wire.REFUSED


def test_embedded_resolv_conf(tmp_path):
    from minirun.network import dns

    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nsearch corp.example\noptions edns0 ndots:2\n")
    assert dns.embedded_resolv_conf(host_path=str(host)) == (
        "nameserver 127.0.0.11\nsearch corp.example\noptions edns0\noptions ndots:0\n")
    assert dns.embedded_resolv_conf(["a.example"], ["rotate"], host_path=str(host)) == (
        "nameserver 127.0.0.11\nsearch a.example\noptions rotate\noptions ndots:0\n")


def test_real_sockets_udp_and_tcp(tmp_path):
    """The handlers on real sockets (on 127.0.0.1 here, in a container's netns
    for real), pumped by a real selector as the monitor's loop does."""
    import selectors
    import threading

    a = "a" * 64
    write_endpoint(tmp_path, a, "n", "10.1.0.2", aliases=["web"])
    sel = selectors.DefaultSelector()
    res = server.Resolver(str(tmp_path), sel, lambda d, cb: FakeTimer(), [])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    uport, tport = udp.getsockname()[1], tcp.getsockname()[1]
    res.add(a, udp.detach(), tcp.detach())
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            for key, mask in sel.select(0.05):
                key.data(mask)

    t = threading.Thread(target=loop)
    t.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5)
            c.sendto(wire.query("web"), ("127.0.0.1", uport))
            r = wire.parse_response(c.recv(512))
        assert [x[3] for x in r["answers"]] == ["10.1.0.2"]
        with socket.create_connection(("127.0.0.1", tport), timeout=5) as c:
            for name in ("web", "nope"):       # two queries on one connection
                q = wire.query(name)
                c.sendall(len(q).to_bytes(2, "big") + q)
                size = int.from_bytes(c.recv(2), "big")
                data = b""
                while len(data) < size:
                    data += c.recv(size - len(data))
                r = wire.parse_response(data)
                if name == "web":
                    assert [x[3] for x in r["answers"]] == ["10.1.0.2"]
                else:
                    assert r["rcode"] == wire.NXDOMAIN
    finally:
        stop.set()
        t.join()
        res.close()
    assert res.sockets == {} and not sel.get_map()


def test_a_container_on_two_networks_sees_both(tmp_path):
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    write_endpoint(tmp_path, a, "front", "10.1.0.2", aliases=["proxy"])
    write_endpoint(tmp_path, a + "+back", "back", "10.2.0.2", aliases=["proxy"], of=a)
    write_endpoint(tmp_path, b, "front", "10.1.0.3", aliases=["web"])
    write_endpoint(tmp_path, c, "back", "10.2.0.3", aliases=["db"])
    res = make_resolver(tmp_path)
    assert res.table.lookup(a, "web") == ["10.1.0.3"]
    assert res.table.lookup(a, "db") == ["10.2.0.3"]
    assert res.table.lookup(b, "db") is None               # not on "back"
    assert res.table.lookup(c, "proxy") == ["10.2.0.2"]    # its address on "back"
    assert res.table.lookup(b, "proxy") == ["10.1.0.2"]
    assert res.table.pointer(c, "2.0.2.10.in-addr.arpa") == "proxy"


def test_published_records_and_zones(tmp_path):
    """A record source (kube's Services) publishes names for one network, with a
    zone it serves whole; the table follows publish and withdraw."""
    from minirun.errors import MinirunError
    from minirun.network import records

    pod, other = "a" * 64, "b" * 64
    write_endpoint(tmp_path, pod, "minirun-kube", "10.89.0.2")
    write_endpoint(tmp_path, other, "proj_default", "10.90.0.2")
    res = make_resolver(tmp_path)

    def ask(cid, name, qtype=wire.A):
        out = res.answer(cid, wire.Query(wire.query(name, qtype)))
        return None if out is None else wire.parse_response(out)

    assert ask(pod, "web.default.svc.cluster.local") is None      # not published: upstream
    records.publish("kube", "minirun-kube", {"Web.default.svc.cluster.local.": ["10.96.0.10"]},
                    zones=["cluster.local"], root=str(tmp_path))
    touch_old(records.directory(str(tmp_path)))
    r = ask(pod, "web.default.svc.cluster.local")
    assert [x[3] for x in r["answers"]] == ["10.96.0.10"]
    # In the zone but unknown: NXDOMAIN here (a search-list try), not forwarded.
    assert ask(pod, "web.svc.cluster.local")["rcode"] == wire.NXDOMAIN
    assert ask(pod, "pypi.org.default.svc.cluster.local")["rcode"] == wire.NXDOMAIN
    assert ask(pod, "web.default.svc.cluster.local", wire.AAAA)["answers"] == []
    assert ask(pod, "pypi.org") is None
    # Another network does not see them.
    assert ask(other, "web.default.svc.cluster.local") is None
    records.publish("kube", "minirun-kube", {}, root=str(tmp_path))      # nothing: withdrawn
    touch_old(records.directory(str(tmp_path)))
    assert ask(pod, "web.default.svc.cluster.local") is None
    assert os.listdir(records.directory(str(tmp_path))) == []
    with pytest.raises(MinirunError, match="invalid DNS name"):
        records.publish("kube", "n", {"bad..name": ["10.0.0.1"]}, root=str(tmp_path))
    with pytest.raises(MinirunError, match="invalid record source"):
        records.publish("../x", "n", {}, root=str(tmp_path))


def test_embedded_resolv_conf_keeps_a_given_ndots(tmp_path):
    from minirun.network import dns

    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 10.0.0.1\nsearch corp.example\n")
    search = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert dns.embedded_resolv_conf(search, ["ndots:5"], host_path=str(host)) == (
        "nameserver 127.0.0.11\nsearch default.svc.cluster.local svc.cluster.local "
        "cluster.local\noptions ndots:5\n")
