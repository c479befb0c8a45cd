"""Bridged containers on the real kernel: reachability, names, published ports,
isolation, modes, errors.  "Containers" are busybox processes in namespaces of
their own (see conftest.Box); results are checked with pyroute2, nft and
traffic, not by asking minirun.
"""
import os
import socket

import pytest

from net_helpers import BUSYBOX, host_links, http_get_host, nft_rule_comments, unique
from minirun import network
from minirun.errors import MinirunError


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inside(box):
    """{ifname: (state, [addr/prefix], mtu)} and the default gateway, read in the box's netns."""
    from pyroute2 import IPRoute

    fd = os.open(f"/proc/{box.pid}/ns/net", os.O_RDONLY)
    try:
        with IPRoute(netns=fd, flags=0) as ipr:
            links = {}
            for link in ipr.get_links():
                addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                         for a in ipr.get_addr(index=link["index"], family=socket.AF_INET)]
                links[link.get_attr("IFLA_IFNAME")] = (link.get_attr("IFLA_OPERSTATE"), addrs,
                                                       link.get_attr("IFLA_MTU"))
            gw = [r.get_attr("RTA_GATEWAY") for r in ipr.get_routes(family=socket.AF_INET)
                  if r["dst_len"] == 0 and r.get("table") == 254]
            return links, gw
    finally:
        os.close(fd)


def start(boxes, root, cid, serve=None, **kw):
    """etc_files (before "create"), the box with them bind-mounted, then attach."""
    files = network.etc_files(cid, kw.get("hostname"), root=root)
    box = boxes(f"{BUSYBOX} sleep 600" if serve is None else None, files=files, serve=serve)
    info = network.attach(cid, box.pid, root=root, **kw)
    return box, info


def test_two_containers_reach_each_other_by_ip_and_name(store_root, boxes):
    net = unique()
    network.create_network(net, root=store_root)
    web, w = start(boxes, store_root, unique(), serve="hello from web", network=net, hostname="web",
                   aliases=["www"])
    app, a = start(boxes, store_root, unique(), network=net, hostname="app")

    links, gw = inside(web)
    assert set(links) == {"lo", "eth0"}
    assert links["eth0"][1] == [f"{w['ip']}/{w['prefixlen']}"] and links["eth0"][0] == "UP"
    assert links["lo"][1] == ["127.0.0.1/8"]
    assert gw == [w["gateway"]]
    with open(f"/sys/class/net/{w['bridge']}/mtu") as f:
        assert links["eth0"][2] == int(f.read())
    assert os.path.exists(f"/sys/class/net/{w['host_veth']}/brport")
    with open(f"/sys/class/net/{w['host_veth']}/brport/hairpin_mode") as f:
        assert f.read().strip() == "1"

    assert app.http_get(w["ip"]) == "hello from web"
    assert app.http_get("web") == "hello from web"      # through the bind-mounted /etc/hosts
    assert app.http_get("www") == "hello from web"
    # web joined first; its /etc/hosts was rewritten in place when app joined.
    assert f"{a['ip']}\tapp" in web.run("cat", "/etc/hosts").stdout
    assert web.run("cat", "/etc/hostname").stdout == "web\n"

    network.detach(a["container_id"], root=store_root)
    assert "app" not in web.run("cat", "/etc/hosts").stdout
    assert a["host_veth"] not in host_links()


def test_containers_on_different_networks_cannot_reach_each_other(store_root, boxes):
    n1, n2 = unique(), unique()
    network.create_network(n1, root=store_root)
    network.create_network(n2, root=store_root)
    _, srv = start(boxes, store_root, unique(), serve="n1 server", network=n1)
    same, _ = start(boxes, store_root, unique(), network=n1)
    other, o = start(boxes, store_root, unique(), network=n2)
    assert same.http_get(srv["ip"]) == "n1 server"      # the control: the server is up
    assert other.http_get(srv["ip"], wait=1) is None
    assert other.run(BUSYBOX, "ping", "-c1", "-W1", o["gateway"]).returncode == 0
    # Names do not leak across networks either.
    assert srv["hostname"] not in other.run("cat", "/etc/hosts").stdout


def test_published_port_from_host_localhost_other_container_and_hairpin(store_root, boxes):
    port, local_port = free_port(), free_port()
    web, w = start(boxes, store_root, unique(), serve="published", publish=[f"{port}:80"])
    _, l = start(boxes, store_root, unique(), serve="local only", publish=[f"127.0.0.1:{local_port}:80"])
    peer, _ = start(boxes, store_root, unique())
    net = unique()
    network.create_network(net, root=store_root)
    far, f = start(boxes, store_root, unique(), network=net)

    assert http_get_host("127.0.0.1", port) == "published"             # localhost:8080 -> 80
    assert http_get_host(w["gateway"], port) == "published"            # a host address
    assert peer.http_get(w["gateway"], port) == "published"            # another container, via the host
    assert far.http_get(f["gateway"], port) == "published"             # from another network, via the host
    assert web.http_get(w["gateway"], port) == "published"             # hairpin: its own published port
    assert http_get_host("127.0.0.1", local_port) == "local only"
    assert peer.http_get(w["gateway"], local_port, wait=1) is None     # bound to 127.0.0.1 only
    assert any(c.startswith(f"{w['container_id']} 0.0.0.0:{port}->80/tcp")
               for c in nft_rule_comments(network.Store(store_root).table))
    assert w["ports"] == [{"host_ip": "0.0.0.0", "host_port": port, "container_port": 80, "proto": "tcp"}]


def test_port_in_use_is_an_error_that_leaves_nothing(store_root, boxes):
    port = free_port()
    start(boxes, store_root, unique(), publish=[f"{port}:80"])
    store = network.Store(store_root)
    before = dict(store.network("bridge")["ipam"]["allocated"])
    rules_before = nft_rule_comments(store.table)
    box = boxes(f"{BUSYBOX} sleep 600")
    cid = unique()
    with pytest.raises(MinirunError, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
        network.attach(cid, box.pid, publish=[f"127.0.0.1:{port}:81"], root=store_root)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(MinirunError, match="address already in use"):
            network.attach(cid, box.pid, publish=[f"{busy}:80"], root=store_root)
    assert store.endpoint(cid) is None
    assert store.network("bridge")["ipam"]["allocated"] == before
    assert nft_rule_comments(store.table) == rules_before
    assert store.host_veth(cid) not in host_links()
    assert set(inside(box)[0]) == {"lo"}


def test_none_mode_has_only_loopback_up(store_root, boxes):
    cid = unique()
    box, info = start(boxes, store_root, cid, network="none", hostname="lonely")
    links, gw = inside(box)
    assert set(links) == {"lo"} and links["lo"][1] == ["127.0.0.1/8"] and gw == []
    assert info["ip"] is None and "lonely" in box.run("cat", "/etc/hosts").stdout
    with pytest.raises(MinirunError, match="port publishing"):
        network.attach(unique(), box.pid, network="none", publish=["80"], root=store_root)
    assert network.detach(cid, root=store_root) is True
    assert not os.path.exists(info["files"]["/etc/hosts"])


def test_host_mode_makes_nothing_and_uses_the_hosts_files(store_root):
    links = host_links()
    cid = unique()
    info = network.attach(cid, None, network="host", publish=["80"], hostname="h", root=store_root)
    assert host_links() == links
    assert info["ip"] is None and info["ports"] == [] and info["host_veth"] is None
    with open(info["files"]["/etc/resolv.conf"]) as got, open("/etc/resolv.conf") as host:
        assert got.read() == host.read()      # the host's loopback stub resolver works here
    assert network.detach(cid, root=store_root) is True


def test_container_mode_shares_the_other_containers_network(store_root, boxes):
    owner = unique()
    _, o = start(boxes, store_root, owner)
    info = network.attach(unique(), None, network=f"container:{owner}", root=store_root)
    assert info["ip"] == o["ip"] and info["files"] == o["files"]
    assert network.detach(info["container_id"], root=store_root) is True
    assert o["host_veth"] in host_links()      # the owner keeps its network
    with pytest.raises(MinirunError, match="has none"):
        network.attach(unique(), None, network="container:nosuch", root=store_root)


def test_errors_are_clear_and_leave_nothing(store_root, boxes):
    box = boxes(f"{BUSYBOX} sleep 600")
    cid = unique()
    with pytest.raises(MinirunError, match="network nosuch not found"):
        network.attach(cid, box.pid, network="nosuch", root=store_root)
    for bad in ({"hostname": "a\n10.0.0.1 evil"}, {"aliases": ["ok", "bad name"]}, {"dns_servers": ["x"]},
                {"dns_options": ["ndots:1\nnameserver 1.2.3.4"]}):
        with pytest.raises(MinirunError, match="invalid"):
            network.attach(cid, box.pid, root=store_root, **bad)
    with pytest.raises(MinirunError, match="host's network namespace"):
        network.attach(cid, os.getpid(), root=store_root)
    assert network.endpoint(cid, root=store_root) is None
    network.attach(cid, box.pid, root=store_root)
    with pytest.raises(MinirunError, match="already attached"):
        network.attach(cid, box.pid, root=store_root)
    net = unique()
    network.create_network(net, root=store_root)
    cid2 = unique()
    network.attach(cid2, boxes(f"{BUSYBOX} sleep 600").pid, network=net, root=store_root)
    with pytest.raises(MinirunError, match="has active endpoints"):
        network.remove_network(net, root=store_root)
    assert network.detach(cid2, root=store_root) is True
    assert network.detach(cid2, root=store_root) is False          # idempotent
    bridge = network.inspect_network(net, root=store_root)["bridge"]
    network.remove_network(net, root=store_root)
    assert bridge not in host_links()
    assert not any(c == f"network {net}" for c in nft_rule_comments(network.Store(store_root).table))


def test_containers_cannot_reach_the_hosts_loopback_services(store_root, boxes):
    """route_localnet=1 on the bridge (needed for 127.0.0.1:hostPort) must not let
    a container send to services the host binds on 127.0.0.1 (CVE-2020-8558)."""
    box, info = start(boxes, store_root, unique(), publish=[f"127.0.0.1:{free_port()}:80"])
    with open(f"/proc/sys/net/ipv4/conf/{info['bridge']}/route_localnet") as f:
        assert f.read().strip() == "1"
    # The container does what an attacker with CAP_NET_ADMIN in its netns can:
    # route 127.0.0.1 out of eth0, to the bridge.
    script = ("echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet && "
              "ip route del local 127.0.0.0/8 dev lo table local && "
              "ip route del local 127.0.0.1 dev lo table local && "
              f"ip route add 127.0.0.1/32 via {info['gateway']} dev eth0")
    assert box.run("sh", "-c", script).returncode == 0
    # UDP: one datagram delivered is enough to show the hole, no handshake needed.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:
        service.bind(("127.0.0.1", 0))
        service.settimeout(1)
        port = service.getsockname()[1]
        assert box.run("bash", "-c", f"echo attack > /dev/udp/127.0.0.1/{port}").returncode == 0
        with pytest.raises(socket.timeout):
            service.recvfrom(100)


def test_published_udp_port(store_root, boxes):
    import subprocess
    import sys

    port = free_port()
    box, _ = start(boxes, store_root, unique(), publish=[f"127.0.0.1:{port}:5353/udp"])
    echo = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353)); "
            "print('ready', flush=True)\nwhile True:\n d, a = s.recvfrom(100); s.sendto(b'echo ' + d, a)")
    server = subprocess.Popen(["nsenter", "-t", str(box.pid), "-n", sys.executable, "-c", echo],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(2)
            c.sendto(b"ping", ("127.0.0.1", port))
            assert c.recvfrom(100)[0] == b"echo ping"
    finally:
        server.kill()
        server.wait()
