"""What the runtime and the CLI call: networks, and containers' attachments.

The OCI runtime core never calls this (engines bring their own networking); the
Docker-like front end does, between `create` and `start`:

    files = network.etc_files(cid, hostname)        # before create: bind-mount sources
    ... create the container (new netns, files bind-mounted on /etc/...) ...
    info = network.attach(cid, init_pid, network="bridge", publish=["8080:80"],
                          hostname=hostname, aliases=["web"])
    ... start; later, on delete (also --force, also after a crash) ...
    network.detach(cid)

Every kernel object is recorded in the store before it is made, and removed
from the store only after it is gone, so `cleanup_stale()` can always finish
what a crashed container or a killed minirun left behind.
"""
import contextlib
import datetime
import ipaddress
import os
import re
import secrets
import shutil

from minirun.errors import MinirunError
from minirun.linux import proc
from minirun.network import dns, ipam
from minirun.network import ports as portmap
from minirun.network.store import (DEFAULT_NETWORK, DEFAULT_ROOT, PREDEFINED, Store,
                                   check_container_id, check_network_name, write_in_place)

ETC_FILES = ("hosts", "hostname", "resolv.conf")
MODES = ("bridge", "none", "host", "container")


# -- helpers -------------------------------------------------------------------
def parse_mode(network):
    """("bridge", name) | ("none", None) | ("host", None) | ("container", id)."""
    network = network or DEFAULT_NETWORK
    if network in ("none", "host"):
        return network, None
    if network.startswith("container:"):
        other = network.partition(":")[2]
        check_container_id(other)
        return "container", other
    check_network_name(network)
    return "bridge", network


def netns_path(netns):
    """The nsfs path of a network namespace given as a PID or a path."""
    if isinstance(netns, int) or (isinstance(netns, str) and netns.isdigit()):
        return f"/proc/{int(netns)}/ns/net"
    return os.fspath(netns)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _me():
    pid = os.getpid()
    return {"pid": pid, "start": proc.start_time(pid)}


def _kernel_error(what, exc):
    if isinstance(exc, MinirunError):
        return exc
    detail = getattr(exc, "strerror", None) or (exc.args[-1] if getattr(exc, "args", None) else exc)
    return MinirunError(f"{what}: {detail}")


def _open_netns(netns):
    path = netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise MinirunError(f"network namespace {path}: {e.strerror}") from None
    st, mine = os.fstat(fd), os.stat("/proc/self/ns/net")
    if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
        os.close(fd)
        raise MinirunError(f"{path} is the host's network namespace: a bridged container needs its own")
    return fd


_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
_WORD_RE = re.compile(r"^[^\s#;]+$")


def _check_names(hostname, aliases, dns_servers, dns_search, dns_options):
    """Everything that ends up in /etc/hosts or resolv.conf: one word each, so a
    name cannot smuggle extra lines into another container's files."""
    for name in [hostname, *aliases]:
        if not isinstance(name, str) or not _HOST_RE.match(name):
            raise MinirunError(f"invalid hostname or alias {name!r}")
    for server in dns_servers or ():
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise MinirunError(f"invalid DNS server {server!r}") from None
    for word in [*(dns_search or ()), *(dns_options or ())]:
        if not isinstance(word, str) or not _WORD_RE.match(word):
            raise MinirunError(f"invalid DNS search domain or option {word!r}")


# -- networks ------------------------------------------------------------------
def _our_bridges(store):
    return [n["bridge"] for n in store.networks()]


def _new_network(store, name, subnet=None, gateway=None, default=False):
    """Record and build a bridge network (caller holds the lock)."""
    with store.host_lock():
        return _new_network_locked(store, name, subnet, gateway, default)


def _new_network_locked(store, name, subnet, gateway, default):
    from minirun.network import bridge, nat

    taken = bridge.host_networks(exclude_links=_our_bridges(store))
    ours = [(n["name"], ipaddress.ip_network(n["subnet"])) for n in store.networks()]
    if subnet:
        subnet = ipam.parse_subnet(subnet)
        for other, net in ours:
            if subnet.overlaps(net):
                raise MinirunError(f"subnet {subnet} overlaps with network {other} ({net})")
        for route in taken:
            if subnet.overlaps(route):
                raise MinirunError(f"subnet {subnet} overlaps with the host's route to {route}")
    else:
        subnet = ipam.choose_subnet(taken + [n for _, n in ours], default=default)
    net_id = secrets.token_hex(32)
    net = {
        "name": name,
        "id": net_id,
        "driver": "bridge",
        "bridge": store.default_bridge if default else f"mr-{net_id[:12]}",
        "subnet": str(subnet),
        "gateway": ipam.pick_gateway(subnet, gateway),
        "default": default,
        "created": _now(),
        "ipam": ipam.new_table(),
    }
    store.save_network(net)
    try:
        _ensure_bridge(net)
        nat.sync(store)
    except BaseException as e:
        store.remove_network(name)
        with contextlib.suppress(Exception):
            bridge.delete_link(net["bridge"])
        with contextlib.suppress(Exception):
            nat.sync(store)
        raise _kernel_error(f"creating network {name}", e) from e
    return net


def _ensure_bridge(net, store=None):
    from minirun.network import bridge

    prefixlen = ipaddress.ip_network(net["subnet"]).prefixlen
    if store is not None and not os.path.exists(f"/sys/class/net/{net['bridge']}"):
        # Made again (after a reboot, or a `network rm` elsewhere): the range is
        # checked again, since another engine may have taken it meanwhile.
        subnet = ipaddress.ip_network(net["subnet"])
        for route in bridge.host_networks(exclude_links=_our_bridges(store)):
            if subnet.overlaps(route):
                raise MinirunError(f"network {net['name']}: its subnet {subnet} now overlaps the "
                                   f"host's route to {route}; remove the network (a new one "
                                   f"picks a free range) or give it another --subnet")
    return bridge.ensure_bridge(net["bridge"], net["gateway"], prefixlen, ipam.mac_for(net["gateway"]),
                                net.get("mtu"))


def _network(store, name):
    """The network record `name`, creating the default one on first use."""
    net = store.network(name)
    if net is None and name == DEFAULT_NETWORK:
        net = _new_network(store, name, default=True)
    if net is None:
        raise MinirunError(f"network {name} not found")
    return net


def _public(net, store=None):
    out = {k: v for k, v in net.items() if k != "ipam"}
    if store is not None:
        out["containers"] = {
            ep["container_id"]: {"ip": ep.get("ip"), "mac": ep.get("mac"), "host_veth": ep.get("host_veth"),
                                 "hostname": ep.get("hostname"), "aliases": ep.get("aliases", []),
                                 "ports": ep.get("ports", [])}
            for ep in store.endpoints() if ep.get("mode") == "bridge" and ep.get("network") == net["name"]}
    return out


def create_network(name, subnet=None, gateway=None, root=DEFAULT_ROOT):
    """Create a user-defined bridge network; returns its record (without the IPAM table)."""
    check_network_name(name)
    if name in PREDEFINED:
        raise MinirunError(f"network with name {name} already exists (it is pre-defined)")
    store = Store(root)
    with store.lock():
        if store.network(name):
            raise MinirunError(f"network with name {name} already exists")
        return _public(_new_network(store, name, subnet, gateway))


def remove_network(name, root=DEFAULT_ROOT):
    """Remove a user-defined network: its bridge and its NAT rules."""
    from minirun.network import bridge, nat

    if name in PREDEFINED:
        raise MinirunError(f"{name} is a pre-defined network and cannot be removed")
    store = Store(root)
    with store.lock():
        net = store.network(name)
        if net is None:
            raise MinirunError(f"network {name} not found")
        users = [ep["container_id"] for ep in store.endpoints()
                 if ep.get("mode") == "bridge" and ep.get("network") == name]
        if users:
            raise MinirunError(f"error while removing network: network {name} id {net['id'][:12]} "
                               f"has active endpoints ({', '.join(sorted(users))})")
        bridge.delete_link(net["bridge"])
        store.remove_network(name)
        nat.sync(store)


def list_networks(root=DEFAULT_ROOT):
    """All networks: the default bridge (created on first use), host, none, user-defined."""
    store = Store(root)
    with store.lock():
        _network(store, DEFAULT_NETWORK)
        nets = [_public(n) for n in store.networks()]
    nets += [{"name": "host", "driver": "host", "id": "host"}, {"name": "none", "driver": "null", "id": "none"}]
    order = {DEFAULT_NETWORK: 0, "host": 1, "none": 2}
    return sorted(nets, key=lambda n: (order.get(n["name"], 3), n["name"]))


def inspect_network(name, root=DEFAULT_ROOT):
    """A network's record plus the containers attached to it."""
    if name in ("host", "none"):
        return {"name": name, "driver": "host" if name == "host" else "null", "id": name, "containers": {}}
    store = Store(root)
    with store.lock():
        return _public(_network(store, name), store)


# -- name files ------------------------------------------------------------------
def etc_files(container_id, hostname=None, root=DEFAULT_ROOT):
    """Create (if missing) and return {"/etc/hosts": path, "/etc/hostname": path,
    "/etc/resolv.conf": path}: bind-mount sources, to be put in config.json before
    `create`.  `attach` fills them in place, so the mounts see the final content."""
    check_container_id(container_id)
    store = Store(root)
    d = store.files_dir(container_id)
    os.makedirs(d, mode=0o755, exist_ok=True)
    hostname = hostname or container_id[:12]
    initial = {"hosts": dns.hosts(), "hostname": dns.hostname_file(hostname), "resolv.conf": dns.resolv_conf()}
    paths = {}
    for name in ETC_FILES:
        path = os.path.join(d, name)
        if not os.path.exists(path):
            write_in_place(path, initial[name])
        paths[f"/etc/{name}"] = path
    return paths


def _peers(store, ep):
    """(ip, names) of the other containers on ep's network, if it is user-defined."""
    net = store.network(ep["network"])
    if not net or net.get("default"):
        return []
    return [(o["ip"], [o["hostname"], *o.get("aliases", [])]) for o in store.endpoints()
            if o.get("mode") == "bridge" and o.get("network") == ep["network"]
            and o["container_id"] != ep["container_id"] and o.get("ip")]


def _extra_hosts(ep):
    """--add-host lines for /etc/hosts ("host-gateway": the bridge's address)."""
    out = ""
    for name, ip in ep.get("extra_hosts") or ():
        if ip == "host-gateway":
            ip = ep.get("gateway") or "127.0.0.1"
        out += f"{ip}\t{name}\n"
    return out


def _write_files(store, ep, dns_opts):
    paths = etc_files(ep["container_id"], ep["hostname"], store.root)
    if ep["mode"] == "host":
        hosts, resolv = dns.host_hosts(ep["hostname"]), dns.host_resolv_conf()
    else:
        own = [ep["hostname"], *ep.get("aliases", [])]
        # Without an address (none) the hostname still resolves, Debian-style, to 127.0.1.1.
        # With the embedded resolver, peers are found through it (all replicas
        # of a name), not through /etc/hosts, which is read first and knows one.
        peers = _peers(store, ep) if ep["mode"] == "bridge" and not ep.get("dns") else ()
        hosts = dns.hosts(ep.get("ip") or "127.0.1.1", own, peers)
        resolv = (dns.embedded_resolv_conf(dns_opts["dns_search"], dns_opts["dns_options"])
                  if ep.get("dns") else dns.resolv_conf(**dns_opts))
    write_in_place(paths["/etc/hosts"], hosts + _extra_hosts(ep))
    write_in_place(paths["/etc/hostname"], dns.hostname_file(ep["hostname"]))
    write_in_place(paths["/etc/resolv.conf"], resolv)
    return paths


def _refresh_peers(store, network):
    """Rewrite /etc/hosts of every container on a user-defined network."""
    net = store.network(network)
    if not net or net.get("default"):
        return
    for ep in store.endpoints():
        if ep.get("mode") == "bridge" and ep.get("network") == network and not ep.get("dns"):
            path = os.path.join(store.files_dir(ep["container_id"]), "hosts")
            if os.path.exists(path):
                own = [ep["hostname"], *ep.get("aliases", [])]
                write_in_place(path, dns.hosts(ep["ip"], own, _peers(store, ep)) +
                               _extra_hosts(ep))


# -- containers ----------------------------------------------------------------------
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
