"""Issue 6's scale test through the real front end: 100 bridged containers
started at once get 100 distinct addresses; after they are removed no veth,
IPAM entry or nftables rule of theirs remains (checked with pyroute2 and
nft, not by asking minirun)."""
import ipaddress
import json
import subprocess

from fe_helpers import wait_for

N = 100


def test_parallel_bridged_containers_get_distinct_addresses(docker):
    procs = [docker.popen("run", "-d", "--name", f"par{i}", "busybox", "sleep", "300",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(N)]
    failures = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            failures.append((i, err.decode(errors="replace")))
    assert not failures, failures[:3]

    addresses = {}
    for i in range(N):
        addresses[f"par{i}"] = docker.inspect(f"par{i}", "{{.NetworkSettings.IPAddress}}")
    assert len(set(addresses.values())) == N, "two containers got the same address"
    from minirun import network

    store = network.Store(docker.root)
    bridge = store.default_bridge
    subnet = next(n for n in store.networks() if n["bridge"] == bridge)["subnet"]
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(subnet)
               for a in addresses.values())

    # The kernel agrees: N veths enslaved to the bridge (pyroute2, not minirun).
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        bridge_index = ipr.link_lookup(ifname=bridge)[0]
        enslaved = [link for link in ipr.get_links()
                    if link.get_attr("IFLA_MASTER") == bridge_index]
    assert len(enslaved) == N

    docker("rm", "-f", *[f"par{i}" for i in range(N)], timeout=600)
    with IPRoute() as ipr:
        enslaved = [link for link in ipr.get_links()
                    if link.get_attr("IFLA_MASTER") == bridge_index]
    assert enslaved == [], "veths left on the bridge"
    assert list(store.endpoints()) == [], "IPAM entries left"
    rules = json.loads(subprocess.run(["nft", "-j", "list", "table", "ip", store.table],
                                      capture_output=True, text=True).stdout or "{}")
    leftover = [r for r in rules.get("nftables", []) if "rule" in r and
                any(a in json.dumps(r["rule"]) for a in addresses.values())]
    assert leftover == [], "nftables rules that name a removed container's address"
    wait_for(lambda: not docker.ids(), 10, what="records to go")
