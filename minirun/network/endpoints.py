"""Containers' endpoints: attach a container to a network (or none, host, or
another container's), connect it to more networks, detach it, and clean up
what crashed containers left behind."""
import contextlib
import ipaddress
import os
import shutil

from minirun.errors import MinirunError
from minirun.linux import proc
from minirun.network import ipam
from minirun.network import ports as portmap
from minirun.network.common import (ETC_FILES, _check_names, _kernel_error, _me, _now,
                                    _open_netns, netns_path, parse_mode)
from minirun.network.namefiles import _refresh_peers, _write_files
from minirun.network.networks import _ensure_bridge, _network
from minirun.network.store import DEFAULT_NETWORK, DEFAULT_ROOT, Store, check_container_id


def _result(store, ep):
    out = {k: ep.get(k) for k in ("container_id", "mode", "network", "ip", "prefixlen", "gateway", "mac",
                                  "bridge", "host_veth", "ifname", "hostname", "aliases", "ports")}
    out["embedded_dns"] = ep.get("dns") == "embedded"
    if ep["mode"] == "container":
        owner = store.endpoint(ep["shares"]) or {}
        out.update({k: owner.get(k) for k in ("network", "ip", "prefixlen", "gateway", "mac")})
        out["shares"] = ep["shares"]
        files_of = ep["shares"]
    else:
        files_of = ep["container_id"]
    d = store.files_dir(files_of)
    out["files"] = {f"/etc/{n}": os.path.join(d, n) for n in ETC_FILES}
    return out


def _is_stale(store, ep):
    if ep.get("state") == "attaching":
        owner = ep.get("owner") or {}
        return not proc.is_running(owner.get("pid"), owner.get("start"))
    pid = ep.get("container_pid")
    if pid and not proc.is_running(pid["pid"], pid["start"]):
        return True
    if ep["mode"] == "bridge":
        from minirun.network import bridge

        # The kernel deletes a veth pair when the container's netns goes away.
        return not bridge.link_exists(ep["host_veth"])
    if ep["mode"] == "container":
        return store.endpoint(ep["shares"]) is None
    path = ep.get("netns")
    return bool(path) and not pid and not os.path.exists(path)


def _loopback_up(netns):
    from minirun.network import veth

    fd = _open_netns(netns)
    try:
        veth.loopback_up(fd)
    except Exception as e:
        raise _kernel_error("bringing up lo", e) from e
    finally:
        os.close(fd)


def _detach(store, container_id):
    """Undo everything recorded for container_id (caller holds the lock)."""
    ep = store.endpoint(container_id)
    if ep is None:
        return False
    if ep["mode"] == "bridge" and ep.get("host_veth"):
        from minirun.network import veth

        veth.unplug(ep["host_veth"])
    net = store.network(ep["network"]) if ep["mode"] == "bridge" else None
    if net is not None:
        ipam.release(net, container_id)
        store.save_network(net)
    store.remove_endpoint(container_id)
    if ep.get("ports"):
        from minirun.network import nat

        nat.sync(store)
    if net is not None:
        _refresh_peers(store, net["name"])
    if ep["mode"] != "container":
        shutil.rmtree(store.files_dir(container_id), ignore_errors=True)
    return True


def attach(container_id, netns=None, network=DEFAULT_NETWORK, publish=(), hostname=None, aliases=(),
           dns_servers=None, dns_search=None, dns_options=None, embedded_dns=False,
           extra_hosts=(), root=DEFAULT_ROOT):
    """Give a created container its network; returns what was set up.

    container_id  the container's id (the endpoint is keyed by it)
    netns         its network namespace: the init PID or an nsfs path (ignored for host)
    network       "bridge" (default network), a user-defined network name, "none",
                  "host", or "container:<id>" (share that container's netns and files)
    publish       port mappings, "[hostIP:][hostPort:]containerPort[/tcp|udp]" strings or dicts
    hostname      written to /etc/hostname and /etc/hosts (default: the id's first 12 chars)
    aliases       more names peers on a user-defined network find this container by
    dns_*         override the host-derived nameservers / search domains / options
    embedded_dns  on a user-defined network: resolv.conf names 127.0.0.11, whose
                  sockets the caller opens (network/embedded.py) and serves
                  (dns/server.py); /etc/hosts then lists only the container itself

    Returns {"container_id", "mode", "network", "ip", "prefixlen", "gateway", "mac",
    "bridge", "host_veth", "ifname", "hostname", "aliases", "ports" (with chosen host
    ports), "files": {"/etc/hosts": path, ...}}; fields that do not apply are None.
    On failure nothing is left behind and MinirunError is raised.
    """
    check_container_id(container_id)
    mode, name = parse_mode(network)
    wanted = [portmap.parse_publish(p) for p in publish or ()]
    if wanted and mode in ("none", "container"):
        raise MinirunError(f"conflicting options: port publishing and the {network} network mode")
    if mode == "host":
        wanted = []  # the container's own sockets are the host's: nothing to forward
    hostname = hostname or container_id[:12]
    aliases = [a for a in aliases or () if a]
    _check_names(hostname, [*aliases, *(n for n, _ in extra_hosts)], dns_servers, dns_search,
                 dns_options)
    for _, ip in extra_hosts:
        if ip != "host-gateway":
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise MinirunError(f"invalid IP address in --add-host: {ip!r}") from None
    dns_opts = {"dns": dns_servers, "dns_search": dns_search, "dns_options": dns_options}
    store = Store(root)
    ep = {"container_id": container_id, "mode": mode, "network": name if mode == "bridge" else None,
          "hostname": hostname, "aliases": aliases, "ports": [], "state": "attaching", "owner": _me(),
          "created": _now(), "extra_hosts": [list(h) for h in extra_hosts]}
    if netns is not None and mode != "host":
        ep["netns"] = netns_path(netns)
        if isinstance(netns, int) or str(netns).isdigit():
            ep["container_pid"] = {"pid": int(netns), "start": proc.start_time(int(netns))}

    nsfd = None
    if mode == "bridge":
        if netns is None:
            raise MinirunError("a bridged container needs its network namespace (PID or path)")
        nsfd = _open_netns(netns)
    try:
        # Reserve everything under the lock, build outside it, commit under it.
        with store.lock():
            old = store.endpoint(container_id)
            if old is not None:
                if not _is_stale(store, old):
                    raise MinirunError(f"container {container_id} is already attached to a network")
                _detach(store, container_id)
            if mode == "container":
                if store.endpoint(name) is None:
                    raise MinirunError(f"cannot join the network of container {name}: it has none")
                ep.update(state="attached", shares=name)
                store.save_endpoint(ep)
                return _result(store, ep)
            if mode in ("none", "host"):
                if mode == "none" and netns is not None:
                    _loopback_up(netns)
                ep["state"] = "attached"
                store.save_endpoint(ep)
                _write_files(store, ep, dns_opts)
                return _result(store, ep)
            net = _network(store, name)
            if embedded_dns and not net.get("default"):
                ep["dns"] = "embedded"
                if dns_servers:   # what the resolver forwards to, instead of the host's
                    ep["dns_upstreams"] = list(dns_servers)
            published = [p for o in store.endpoints() for p in o.get("ports") or ()]
            claimed = portmap.claim(wanted, published)
            ip = ipam.allocate(net, container_id)
            store.save_network(net)
            ep.update(ip=ip, prefixlen=ipaddress.ip_network(net["subnet"]).prefixlen, gateway=net["gateway"],
                      mac=ipam.mac_for(ip), bridge=net["bridge"], host_veth=store.host_veth(container_id),
                      ifname="eth0", ports=claimed)
            store.save_endpoint(ep)
        try:
            from minirun.network import nat, veth

            created, mtu = _ensure_bridge(net, store)
            veth.plug(nsfd, ep["host_veth"], net["bridge"], ip, ep["prefixlen"], net["gateway"], ep["mac"], mtu)
            with store.lock():
                ep["state"] = "attached"
                store.save_endpoint(ep)
                _write_files(store, ep, dns_opts)
                if claimed or created:
                    nat.sync(store)
                _refresh_peers(store, name)
        except BaseException as e:
            with store.lock(), contextlib.suppress(Exception):
                _detach(store, container_id)
            if not isinstance(e, Exception):
                raise
            raise _kernel_error(f"connecting {container_id} to network {name}", e) from e
    finally:
        if nsfd is not None:
            os.close(nsfd)
    return _result(store, ep)


def connect(container_id, netns, network, hostname=None, aliases=(), root=DEFAULT_ROOT):
    """Connect an attached container to one more user-defined network (Compose's
    several `networks:`): its next interface (eth1, eth2, ...) and an address
    there, without a default route (the first network keeps it).  Recorded as
    the endpoint "<id>+<network>"; detach(<id>) removes it with the rest.
    Returns what attach returns, for that interface."""
    from minirun.network import nat, veth

    check_container_id(container_id)
    mode, name = parse_mode(network)
    if mode != "bridge":
        raise MinirunError(f"cannot connect {container_id} to {network}: not a bridge network")
    aliases = [a for a in aliases or () if a]
    hostname = hostname or container_id[:12]
    _check_names(hostname, aliases, None, None, None)
    eid = f"{container_id}+{name}"
    check_container_id(eid)
    store = Store(root)
    nsfd = _open_netns(netns)
    try:
        with store.lock():
            first = store.endpoint(container_id)
            if first is None or first.get("mode") != "bridge":
                raise MinirunError(f"container {container_id} has no bridge network to add to")
            if first["network"] == name or store.endpoint(eid) is not None:
                raise MinirunError(f"container {container_id} is already connected to network "
                                   f"{name}")
            net = _network(store, name)
            if net.get("default"):
                raise MinirunError("the default bridge network can only be a container's first")
            n = 1 + sum(1 for e in store.endpoints() if e.get("of") == container_id)
            ip = ipam.allocate(net, eid)
            store.save_network(net)
            ep = {"container_id": eid, "of": container_id, "mode": "bridge", "network": name,
                  "hostname": hostname, "aliases": aliases, "ports": [], "state": "attaching",
                  "owner": _me(), "created": _now(), "netns": netns_path(netns),
                  "ip": ip, "prefixlen": ipaddress.ip_network(net["subnet"]).prefixlen,
                  "gateway": net["gateway"], "mac": ipam.mac_for(ip), "bridge": net["bridge"],
                  "host_veth": store.host_veth(eid), "ifname": f"eth{n}"}
            if first.get("dns"):
                ep["dns"] = first["dns"]
            if first.get("container_pid"):
                ep["container_pid"] = first["container_pid"]
            store.save_endpoint(ep)
        try:
            created, mtu = _ensure_bridge(net, store)
            veth.plug(nsfd, ep["host_veth"], net["bridge"], ip, ep["prefixlen"], net["gateway"],
                      ep["mac"], mtu, ifname=ep["ifname"], default_route=False)
            with store.lock():
                ep["state"] = "attached"
                store.save_endpoint(ep)
                if created:
                    nat.sync(store)
                _refresh_peers(store, name)
        except BaseException as e:
            with store.lock(), contextlib.suppress(Exception):
                _detach(store, eid)
            if not isinstance(e, Exception):
                raise
            raise _kernel_error(f"connecting {container_id} to network {name}", e) from e
    finally:
        os.close(nsfd)
    return _result(store, ep)


def detach(container_id, root=DEFAULT_ROOT):
    """Remove a container's network: veth, address, port rules, name files, and
    the networks connect() added.  Idempotent; returns False if there was nothing
    to do.  Cheap when the container never had a network (no netlink, no pyroute2)."""
    check_container_id(container_id)
    store = Store(root)
    endpoints = os.path.join(store.dir, "endpoints")
    try:
        more = [n[:-5] for n in os.listdir(endpoints)
                if n.startswith(container_id + "+") and n.endswith(".json")]
    except FileNotFoundError:
        more = []
    if not more and not os.path.exists(os.path.join(endpoints, f"{container_id}.json")):
        shutil.rmtree(store.files_dir(container_id), ignore_errors=True)
        return False
    with store.lock():
        try:
            for eid in more:
                _detach(store, eid)
            return _detach(store, container_id)
        except Exception as e:
            raise _kernel_error(f"disconnecting {container_id}", e) from e


def endpoint(container_id, root=DEFAULT_ROOT):
    """What `attach` returned for a container, or None."""
    check_container_id(container_id)
    store = Store(root)
    ep = store.endpoint(container_id)
    return _result(store, ep) if ep else None


def cleanup_stale(root=DEFAULT_ROOT):
    """Detach containers whose process or netns is gone (crash, kill -9 of minirun,
    `delete --force`) and resync the NAT table; returns the ids cleaned."""
    store = Store(root)
    if not os.path.isdir(store.dir):
        return []
    cleaned = []
    with store.lock():
        for ep in store.endpoints():
            if _is_stale(store, ep):
                _detach(store, ep["container_id"])
                cleaned.append(ep["container_id"])
        if store.networks():
            from minirun.network import nat

            nat.sync(store)
    return cleaned


def purge(root=DEFAULT_ROOT):
    """Remove everything this store made: endpoints, bridges, the nftables table,
    the records.  For tests and uninstall; running containers lose their network."""
    from minirun.network import bridge, nat

    store = Store(root)
    if not os.path.isdir(store.dir):
        return
    with store.lock():
        for ep in store.endpoints():
            _detach(store, ep["container_id"])
        for net in store.networks():
            bridge.delete_link(net["bridge"])
            store.remove_network(net["name"])
        nat.delete_table(store.table)
        shutil.rmtree(store.dir)
