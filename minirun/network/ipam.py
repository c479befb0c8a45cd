"""IP address management: pure functions over a network record.

A network record holds its table as `net["ipam"] = {"allocated": {ip: container_id},
"last": ip}`; callers hold the store lock around allocate/release and save the
record afterwards, so two containers can never get the same address.

Allocation continues after the last address handed out (like CNI's host-local)
instead of taking the lowest free one, so an address that was just released is
not reused at once while peers may still have its old neighbour entry cached.
"""
import ipaddress

from minirun.errors import MinirunError

# Ranges other engines take by default, never picked automatically (podman's
# default bridge and its user networks, Docker's default bridge): a host that
# runs them too would get colliding routes.  `--subnet` may still name them.
ENGINE_DEFAULTS = ["10.88.0.0/16", "10.89.0.0/16", "172.17.0.0/16"]
# The default network's subnet: minirun's own /16s first, then Docker's
# user-network pool (172.18-31), all checked against the host at creation.
DEFAULT_POOL = [f"10.{n}.0.0/16" for n in range(87, 79, -1)] + \
    [f"172.{n}.0.0/16" for n in range(18, 32)]
# User-defined networks get a /24 each from minirun's own range.
USER_POOL_PREFIXES = ["10.80.0.0/14", "10.76.0.0/14"]


def parse_subnet(text):
    try:
        subnet = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise MinirunError(f"invalid subnet {text!r}: {e}") from None
    if subnet.version != 4:
        raise MinirunError(f"invalid subnet {text}: only IPv4 is supported")
    if subnet.prefixlen > 30:
        raise MinirunError(f"invalid subnet {text}: too small, use a prefix of /30 or shorter")
    return subnet


def pick_gateway(subnet, gateway=None):
    """The bridge's own address: the first host address unless given."""
    if gateway is None:
        return str(subnet.network_address + 1)
    try:
        gw = ipaddress.ip_address(gateway)
    except ValueError:
        raise MinirunError(f"invalid gateway {gateway!r}") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise MinirunError(f"gateway {gateway} is not a host address of subnet {subnet}")
    return str(gw)


def candidates(default):
    """Subnets to try, in order, for the default or a user-defined network."""
    if default:
        yield from (ipaddress.ip_network(s) for s in DEFAULT_POOL)
    else:
        for prefix in USER_POOL_PREFIXES:
            yield from ipaddress.ip_network(prefix).subnets(new_prefix=24)


def choose_subnet(taken, default=False):
    """The first candidate subnet overlapping none of `taken` (ip_network list: the
    host's routes, addresses and other bridges) nor another engine's default."""
    avoid = [ipaddress.ip_network(s) for s in ENGINE_DEFAULTS] + list(taken)
    for subnet in candidates(default):
        if not any(subnet.overlaps(t) for t in avoid):
            return subnet
    raise MinirunError("no free subnet left for a new network: pass --subnet")


def new_table():
    return {"allocated": {}, "last": None}


def allocate(net, container_id):
    """Reserve a free address of `net` for `container_id`; returns it as a string."""
    subnet = ipaddress.ip_network(net["subnet"])
    table = net.setdefault("ipam", new_table())
    allocated = table["allocated"]
    first = int(subnet.network_address) + 1
    last = int(subnet.broadcast_address) - 1
    size = last - first + 1
    taken = {int(ipaddress.ip_address(a)) for a in allocated}
    taken.add(int(ipaddress.ip_address(net["gateway"])))
    start = int(ipaddress.ip_address(table["last"])) + 1 if table.get("last") else first
    for i in range(size):
        candidate = first + (start - first + i) % size
        if candidate not in taken:
            ip = str(ipaddress.ip_address(candidate))
            allocated[ip] = container_id
            table["last"] = ip
            return ip
    raise MinirunError(f"no free address left in network {net['name']} ({net['subnet']})")


def release(net, container_id):
    """Free every address `container_id` holds in `net`; returns them."""
    allocated = net.get("ipam", {}).get("allocated", {})
    freed = [ip for ip, owner in allocated.items() if owner == container_id]
    for ip in freed:
        del allocated[ip]
    return freed


def mac_for(ip):
    """A locally administered MAC derived from the IPv4 address (Docker's 02:42:...):
    a reused address comes back with the same MAC, so stale ARP entries stay right."""
    octets = ipaddress.ip_address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)
