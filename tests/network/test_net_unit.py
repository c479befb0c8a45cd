"""Pure logic of the network layer: IPAM, -p parsing, name files, the nft ruleset."""
import ipaddress
import multiprocessing
import os

import pytest

from minirun.errors import MinirunError
from minirun.network import dns, ipam, nat
from minirun.network.ports import claim, parse_publish
from minirun.network.store import Store

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root


def _net(subnet="10.1.2.0/29", gateway=None):
    s = ipaddress.ip_network(subnet)
    return {"name": "n", "subnet": subnet, "gateway": gateway or str(s.network_address + 1),
            "ipam": ipam.new_table()}


def test_allocate_skips_gateway_and_continues_after_last():
    net = _net()  # hosts .1-.6, gateway .1
    got = [ipam.allocate(net, f"c{i}") for i in range(5)]
    assert got == ["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]
    with pytest.raises(MinirunError, match="no free address"):
        ipam.allocate(net, "full")
    assert ipam.release(net, "c1") == ["10.1.2.3"]
    # .3 is the only free one: found by wrapping around past the end.
    assert ipam.allocate(net, "again") == "10.1.2.3"


def test_release_returns_the_address_for_reuse_later_not_at_once():
    net = _net("10.1.2.0/24")
    a = ipam.allocate(net, "a")
    ipam.release(net, "a")
    b = ipam.allocate(net, "b")
    assert a != b and a not in net["ipam"]["allocated"]


def test_gateway_and_subnet_validation():
    s = ipam.parse_subnet("10.9.0.0/24")
    assert ipam.pick_gateway(s) == "10.9.0.1"
    assert ipam.pick_gateway(s, "10.9.0.254") == "10.9.0.254"
    for bad in ("10.9.0.0", "10.9.0.255", "10.9.1.1", "nope"):
        with pytest.raises(MinirunError):
            ipam.pick_gateway(s, bad)
    for bad in ("10.9.0.1/24", "fd00::/64", "10.9.0.0/31", "x"):
        with pytest.raises(MinirunError):
            ipam.parse_subnet(bad)


def test_choose_subnet_avoids_taken_ranges():
    # never podman's or Docker's defaults, even when the host does not use them now
    for default in (True, False):
        got = ipam.choose_subnet([], default=default)
        assert not any(got.overlaps(ipaddress.ip_network(s)) for s in ipam.ENGINE_DEFAULTS)
    assert str(ipam.choose_subnet([], default=True)) == "10.87.0.0/16"
    taken = [ipaddress.ip_network("10.87.0.0/16"), ipaddress.ip_network("10.86.0.0/15")]
    assert str(ipam.choose_subnet(taken, default=True)) == "10.85.0.0/16"
    taken = [ipaddress.ip_network("10.80.0.0/23")]
    assert str(ipam.choose_subnet(taken)) == "10.80.2.0/24"
    everything = [ipaddress.ip_network("0.0.0.0/0")]
    with pytest.raises(MinirunError, match="--subnet"):
        ipam.choose_subnet(everything)


def test_mac_follows_ip():
    assert ipam.mac_for("10.88.0.2") == "02:42:0a:58:00:02"


@pytest.mark.parametrize("spec, want", [
    ("8080:80", ("0.0.0.0", 8080, 80, "tcp")),
    ("127.0.0.1:8080:80/udp", ("127.0.0.1", 8080, 80, "udp")),
    ("80", ("0.0.0.0", 0, 80, "tcp")),
    ("127.0.0.1::53/UDP", ("127.0.0.1", 0, 53, "udp")),
    ({"host_port": 1, "container_port": 2}, ("0.0.0.0", 1, 2, "tcp")),
])
def test_parse_publish(spec, want):
    p = parse_publish(spec)
    assert (p["host_ip"], p["host_port"], p["container_port"], p["proto"]) == want


@pytest.mark.parametrize("spec", ["", "80/sctp", "a:80", "8080:0", "70000:80", "1.2.3:80:80",
                                  "[::1]:80:80", "8000-8001:80-81", "1:2:3:4"])
def test_parse_publish_rejects(spec):
    with pytest.raises(MinirunError):
        parse_publish(spec)


def test_claim_detects_ports_allocated_to_other_containers():
    port = claim([parse_publish("127.0.0.1::1")], [])[0]["host_port"]  # free on the host now
    taken = [parse_publish(f"127.0.0.1:{port}:80/tcp")]
    with pytest.raises(MinirunError, match="port is already allocated"):
        claim([parse_publish(f"{port}:1")], taken)          # 0.0.0.0 covers 127.0.0.1
    with pytest.raises(MinirunError, match="port is already allocated"):
        claim([parse_publish(f"{port}:1"), parse_publish(f"{port}:2")], [])  # twice in one request
    # Same port on another protocol or another address is no conflict.
    assert claim([parse_publish(f"127.0.0.1:{port}:1/udp")], taken)[0]["host_port"] == port
    assert claim([parse_publish(f"127.0.0.2:{port}:1")], taken)[0]["host_port"] == port


def test_claim_detects_a_host_listener():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(MinirunError, match="address already in use"):
            claim([parse_publish(f"{port}:80")], [])


def test_claim_picks_a_free_port_for_port_zero():
    (p,) = claim([parse_publish("127.0.0.1::80")], [])
    assert 0 < p["host_port"] <= 65535


def test_resolv_conf_drops_loopback_stubs(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("# hi\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nsearch example.org\n"
                    "options edns0\n")
    text = dns.resolv_conf(host_path=str(host))
    assert "127.0.0.53" not in text and "::1" not in text
    assert "nameserver 10.0.0.2" in text and "search example.org" in text and "options edns0" in text
    host.write_text("nameserver 127.0.0.1\n")
    text = dns.resolv_conf(host_path=str(host))
    # Only a stub: fall back (systemd-resolved's upstream file, else public servers).
    assert "127.0.0.1" not in text and "nameserver" in text
    text = dns.resolv_conf(dns=["10.0.0.9"], dns_search=["a.b"], host_path=str(host))
    assert text.count("nameserver") == 1 and "nameserver 10.0.0.9" in text and "search a.b" in text


def test_hosts_lists_self_then_peers_in_address_order():
    text = dns.hosts("10.0.0.5", ["web", "web", "www"], [("10.0.0.10", ["db"]), ("10.0.0.9", ["cache", "redis"])])
    lines = [line for line in text.splitlines() if line.startswith("10.")]
    assert lines == ["10.0.0.5\tweb www", "10.0.0.9\tcache redis", "10.0.0.10\tdb"]
    assert text.startswith("127.0.0.1\tlocalhost\n")


def test_ruleset_has_one_dnat_per_port_and_per_network_nat():
    nets = [{"name": "a", "bridge": "br-a", "subnet": "10.1.0.0/24"},
            {"name": "b", "bridge": "br-b", "subnet": "10.2.0.0/24"}]
    eps = [{"container_id": "c1", "mode": "bridge", "network": "a", "ip": "10.1.0.2",
            "ports": [parse_publish("8080:80"), parse_publish("127.0.0.1:53:53/udp")]},
           {"container_id": "c2", "mode": "none", "ports": []}]
    cmds = nat.ruleset("t", nets, eps)
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    dnat = [r for r in rules if r["chain"] == "ports"]
    assert [r["comment"] for r in dnat] == ["c1 0.0.0.0:8080->80/tcp", "c1 127.0.0.1:53->53/udp"]
    assert dnat[0]["expr"][-1] == {"dnat": {"addr": "10.1.0.2", "port": 80}}
    assert sum(r["chain"] == "forward" for r in rules) == 2          # one isolation rule per network
    assert sum(r["chain"] == "postrouting" for r in rules) == 2 * 2 + 1
    # Chains are flushed, not deleted, so running containers keep their NAT state.
    assert not any("delete" in c for c in cmds)


def _alloc_worker(root, cid, q):
    store = Store(root)
    with store.lock():
        net = store.network("n")
        ip = ipam.allocate(net, cid)
        store.save_network(net)
    q.put(ip)


def test_parallel_allocations_under_the_store_lock_never_collide(tmp_path):
    store = Store(str(tmp_path))
    with store.lock():
        store.save_network(_net("10.1.0.0/24"))
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_alloc_worker, args=(str(tmp_path), f"c{i}", q)) for i in range(100)]
    for p in procs:
        p.start()
    ips = [q.get(timeout=30) for _ in procs]
    for p in procs:
        p.join()
    assert len(set(ips)) == 100
    assert len(store.network("n")["ipam"]["allocated"]) == 100


def test_store_names_are_per_root():
    assert Store("/run/minirun").table == "minirun" and Store("/run/minirun").default_bridge == "minirun0"
    a, b = Store("/tmp/a"), Store("/tmp/b")
    assert a.table != b.table and a.default_bridge != b.default_bridge
    assert len(a.default_bridge) <= 15 and len(a.host_veth("x" * 300)) <= 15
    assert a.host_veth("c") == Store("/tmp/a").host_veth("c") != b.host_veth("c")


def test_import_does_not_load_pyroute2():
    import subprocess
    import sys

    code = "import minirun.network, sys; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd())
    assert out.stdout.strip() == "False", out.stderr
