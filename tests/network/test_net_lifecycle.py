"""Many containers at once, crashes, and teardown that leaves nothing behind.

Leftovers are looked for in the kernel (pyroute2, nft) and in the store's files
directly, not through minirun's API.
"""
import json
import multiprocessing
import os
import signal
import socket

from net_helpers import BUSYBOX, host_links, nft_rule_comments, unique
from minirun import network


def _eth0_addresses(pid):
    from pyroute2 import IPRoute

    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        with IPRoute(netns=fd, flags=0) as ipr:
            idx = ipr.link_lookup(ifname="eth0")
            return [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx[0], family=socket.AF_INET)] \
                if idx else []
    finally:
        os.close(fd)


def _allocated(root):
    with open(os.path.join(root, ".network", "networks", "bridge.json")) as f:
        return json.load(f)["ipam"]["allocated"]


def _endpoint_files(root):
    return os.listdir(os.path.join(root, ".network", "endpoints"))


def _attach_worker(root, cid, pid, publish, q):
    try:
        q.put((cid, network.attach(cid, pid, publish=publish, root=root), None))
    except BaseException as e:  # reported to the parent, which fails the test
        q.put((cid, None, repr(e)))


def _detach_worker(root, cid, q):
    try:
        q.put((cid, network.detach(cid, root=root), None))
    except BaseException as e:
        q.put((cid, None, repr(e)))


def _in_parallel(target, args_list):
    """Start one process per args tuple at once (fork: pyroute2 is already
    imported in the parent), collect what each put on the queue."""
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, q)) for args in args_list]
    for p in procs:
        p.start()
    try:
        return [q.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()


def test_100_parallel_containers_get_distinct_addresses_and_leave_nothing(store_root, boxes):
    from minirun.network import bridge, nat, veth  # noqa: F401  (import once, before forking)

    n = 100
    table = network.Store(store_root).table
    network.list_networks(root=store_root)            # the default network, made once
    holders = [boxes(f"{BUSYBOX} sleep 600") for _ in range(n)]
    cids = [unique() for _ in range(n)]
    # Every 10th container publishes a port, so there are DNAT rules to clean too.
    jobs = [(store_root, cid, box.pid, ["127.0.0.1::80"] if i % 10 == 0 else [])
            for i, (cid, box) in enumerate(zip(cids, holders))]
    results = _in_parallel(_attach_worker, jobs)
    assert [err for _, _, err in results if err] == []
    infos = {cid: info for cid, info, _ in results}
    ips = [info["ip"] for info in infos.values()]
    assert len(set(ips)) == n
    assert len({p["host_port"] for i in infos.values() for p in i["ports"]}) == n // 10
    # The kernel agrees: each netns has the address minirun reported, each veth exists.
    for cid, box in zip(cids, holders):
        assert _eth0_addresses(box.pid) == [infos[cid]["ip"]]
    links = host_links()
    assert all(info["host_veth"] in links for info in infos.values())
    assert len(_allocated(store_root)) == n
    assert sum(c.partition(" ")[0] in infos for c in nft_rule_comments(table)) == n // 10

    # Half are deleted normally (in parallel), half crash (killed) and are cleaned up after.
    deleted, crashed = cids[: n // 2], cids[n // 2:]
    results = _in_parallel(_detach_worker, [(store_root, cid) for cid in deleted])
    assert [err for _, _, err in results if err] == [] and all(ok for _, ok, _ in results)
    for box in holders[n // 2:]:
        box.kill()
    assert sorted(network.cleanup_stale(root=store_root)) == sorted(crashed)

    links = host_links()
    assert [i["host_veth"] for i in infos.values() if i["host_veth"] in links] == []
    assert [c for c in nft_rule_comments(table) if c.partition(" ")[0] in infos] == []
    assert _allocated(store_root) == {}
    assert _endpoint_files(store_root) == []
    assert os.listdir(os.path.join(store_root, ".network", "files")) == []


def _crash_during_attach(root, cid, pid):
    """Run attach in a child that is SIGKILLed right after the veth is plugged:
    minirun dying half-way, with the kernel objects made but not committed."""
    from minirun.network import veth

    plug = veth.plug

    def plug_then_die(*args, **kwargs):
        plug(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    child = os.fork()
    if child == 0:
        try:
            veth.plug = plug_then_die
            network.attach(cid, pid, publish=["127.0.0.1::80"], root=root)
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_crash_of_minirun_mid_attach_is_cleaned_up(store_root, boxes):
    box = boxes(f"{BUSYBOX} sleep 600")
    cid = unique()
    store = network.Store(store_root)
    network.list_networks(root=store_root)
    _crash_during_attach(store_root, cid, box.pid)
    veth_name = store.host_veth(cid)
    assert veth_name in host_links()                  # half-made: veth and address exist
    assert cid in _allocated(store_root).values()
    # A retry of the same container first cleans what the crash left.
    info = network.attach(cid, box.pid, root=store_root)
    assert _eth0_addresses(box.pid) == [info["ip"]]
    assert list(_allocated(store_root).values()) == [cid]
    network.detach(cid, root=store_root)

    other = boxes(f"{BUSYBOX} sleep 600")
    cid2 = unique()
    _crash_during_attach(store_root, cid2, other.pid)
    assert network.cleanup_stale(root=store_root) == [cid2]
    assert store.host_veth(cid2) not in host_links()
    assert _allocated(store_root) == {}
    assert [c for c in nft_rule_comments(store.table) if c.startswith(cid2)] == []


def test_crashed_container_gives_its_address_back(store_root, boxes):
    box = boxes(f"{BUSYBOX} sleep 600")
    cid = unique()
    info = network.attach(cid, box.pid, publish=["127.0.0.1::80"], root=store_root)
    live = boxes(f"{BUSYBOX} sleep 600")
    keep = network.attach(unique(), live.pid, root=store_root)
    box.kill()
    assert network.cleanup_stale(root=store_root) == [cid]
    assert info["ip"] not in _allocated(store_root)
    assert info["host_veth"] not in host_links()
    assert not any(c.startswith(cid) for c in nft_rule_comments(network.Store(store_root).table))
    assert keep["host_veth"] in host_links()          # the live one is untouched
    assert network.cleanup_stale(root=store_root) == []
