"""The host side: bridges, routes and sysctls, over netlink with pyroute2.

pyroute2 costs ~0.2 s to import, so this module (imported only when a container
actually gets a network) is the only place that pays it; `import minirun.network`
does not.
"""
import errno
import ipaddress
import socket

from minirun.linux.trace import step


def iproute():
    """An IPRoute for the host's network namespace (not subscribed to events)."""
    from pyroute2 import IPRoute

    return IPRoute(groups=0)


def is_errno(exc, *codes):
    return getattr(exc, "code", None) in codes


def link_index(ipr, name):
    """Index of link `name`, or None: one RTM_GETLINK for that name (link_lookup
    would dump every link, which grows with the number of containers)."""
    try:
        return ipr.link("get", ifname=name)[0]["index"]
    except Exception as e:
        if is_errno(e, errno.ENODEV):
            return None
        raise


def link_exists(name):
    with iproute() as ipr:
        return link_index(ipr, name) is not None


def link_names(prefix=""):
    with iproute() as ipr:
        return sorted(name for name in (l.get("ifname") for l in ipr.get_links())
                      if name and name.startswith(prefix))


def write_sysctl(path, value):
    step("write", f"{path}={value}", "kernel switch for forwarding/NAT", "proc_sys_net(5)")
    with open(path, "w") as f:
        f.write(str(value))


def read_sysctl(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def host_networks(exclude_links=()):
    """Subnets the host already routes to (main table and its own addresses), as
    ip_network objects, ignoring the default route, loopback and `exclude_links`."""
    taken = []
    with iproute() as ipr:
        skip = {link_index(ipr, n) for n in exclude_links} - {None}
        for r in ipr.get_routes(family=socket.AF_INET):
            if r.get("table") != 254 or r.get_attr("RTA_OIF") in skip:
                continue
            dst = r.get_attr("RTA_DST") or "0.0.0.0"
            if r["dst_len"] == 0:
                continue
            taken.append(ipaddress.ip_network(f"{dst}/{r['dst_len']}", strict=False))
        for a in ipr.get_addr(family=socket.AF_INET):
            if a["index"] in skip:
                continue
            net = ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False)
            if not net.is_loopback:
                taken.append(net)
    return taken


def ensure_bridge(name, gateway, prefixlen, mac, mtu=None):
    """Create bridge `name` with `gateway/prefixlen` and bring it up; idempotent.
    Returns (created, mtu)."""
    created = False
    with iproute() as ipr:
        idx = link_index(ipr, name)
        if idx is None:
            step("netlink RTM_NEWLINK", f"bridge {name}", "the switch the containers plug into",
                 "ip-link(8)")
            try:
                kw = {"mtu": mtu} if mtu else {}
                # A fixed MAC: otherwise the bridge takes its lowest port's MAC and
                # changes it as containers come and go, confusing neighbours.
                ipr.link("add", ifname=name, kind="bridge", address=mac, **kw)
                created = True
            except Exception as e:
                if not is_errno(e, errno.EEXIST):
                    raise
            idx = link_index(ipr, name)
        try:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
            step("netlink RTM_NEWADDR", f"{gateway}/{prefixlen} dev {name}", "the containers' gateway",
                 "ip-address(8)")
        except Exception as e:
            if not is_errno(e, errno.EEXIST):
                raise
        step("netlink RTM_NEWLINK", f"{name} up", "switch the bridge on", "ip-link(8)")
        ipr.link("set", index=idx, state="up")
        link = ipr.get_links(idx)[0]
        mtu = link.get_attr("IFLA_MTU")
    # Published ports on 127.0.0.1 are DNAT'ed out of this bridge with source
    # 127.0.0.1 (masqueraded afterwards); without route_localnet the kernel drops
    # such packets as martians.
    write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", 1)
    if read_sysctl("/proc/sys/net/ipv4/ip_forward") != "1":
        write_sysctl("/proc/sys/net/ipv4/ip_forward", 1)
    return created, mtu


def delete_link(name, why="remove a minirun interface", man="ip-link(8)"):
    """Delete a link by name; False if it did not exist."""
    with iproute() as ipr:
        idx = link_index(ipr, name)
        if idx is None:
            return False
        step("netlink RTM_DELLINK", name, why, man)
        try:
            ipr.link("del", index=idx)
        except Exception as e:
            if is_errno(e, errno.ENODEV):
                return False
            raise
        return True

