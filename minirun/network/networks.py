"""Networks: create, remove, list and inspect bridge networks (the records
and the bridges behind them).  The default network is made on first use."""
import contextlib
import ipaddress
import os
import secrets

from minirun.errors import MinirunError
from minirun.network import ipam
from minirun.network.common import _kernel_error, _now
from minirun.network.store import DEFAULT_NETWORK, DEFAULT_ROOT, PREDEFINED, Store, check_network_name


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

