"""The container side: a veth pair from the bridge into the container's netns.

One netlink request creates the pair with the peer already inside the
container's namespace and already named eth0 (IFLA_NET_NS_FD on the peer), so
no temporary name is ever visible on the host and no rename is needed.  The
inside is then configured through a netlink socket opened in that namespace:
a socket belongs to the netns it was created in, so a helper thread setns()es
into the container's netns, opens the socket and exits; the calling thread and
the rest of the process never leave the host namespace.
"""
import errno
import socket
import threading

from minirun.linux import syscalls
from minirun.linux.trace import step
from minirun.network.bridge import delete_link, iproute, link_index


def _netlink_socket_in(netns_fd):
    result = {}

    def run():
        try:
            syscalls.setns(netns_fd, syscalls.CLONE_NEWNET)
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
            result["fd"] = s.detach()
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    t = threading.Thread(target=run, name="minirun-netns")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["fd"]


def iproute_in(netns_fd):
    """An IPRoute talking to the network namespace open at `netns_fd`."""
    from pyroute2 import IPRoute

    return IPRoute(groups=0, fileno=_netlink_socket_in(netns_fd))


def plug(netns_fd, host_name, bridge, ip, prefixlen, gateway, mac, mtu, ifname="eth0",
         default_route=True):
    """Connect the netns at `netns_fd` to `bridge`: veth `host_name` <-> `ifname`,
    address ip/prefixlen, default route via gateway (not for a container's second
    network: its subnet's route is enough), lo and ifname up."""
    with iproute() as ipr:
        br = link_index(ipr, bridge)
        if br is None:
            raise FileNotFoundError(errno.ENODEV, f"bridge {bridge} does not exist")
        step("netlink RTM_NEWLINK", f"veth {host_name} peer {ifname} netns fd {netns_fd}",
             "a cable from the bridge into the container", "veth(4)")
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu,
                 peer={"ifname": ifname, "net_ns_fd": netns_fd, "mtu": mtu, "address": mac})
        idx = link_index(ipr, host_name)
        step("netlink RTM_NEWLINK", f"{host_name} master {bridge}", "plug the host end into the bridge",
             "ip-link(8)")
        ipr.link("set", index=idx, master=br)
        # Hairpin: let a frame leave through the port it came in on, so a
        # container can reach its own published port through the host.
        step("netlink RTM_NEWLINK", f"{host_name} hairpin on", "a container may reach its own "
             "published port through the host", "bridge(8)")
        ipr.brport("set", index=idx, mode=1)
        step("netlink RTM_NEWLINK", f"{host_name} up", "", "ip-link(8)")
        ipr.link("set", index=idx, state="up")
    with iproute_in(netns_fd) as ns:
        lo = link_index(ns, "lo")
        step("netlink RTM_NEWLINK", "lo up (container)", "a new network namespace starts with lo down",
             "ip-link(8)")
        ns.link("set", index=lo, state="up")
        dev = link_index(ns, ifname)
        step("netlink RTM_NEWADDR", f"{ip}/{prefixlen} dev {ifname} (container)",
             "the container's address", "ip-address(8)")
        ns.addr("add", index=dev, address=ip, prefixlen=prefixlen)
        step("netlink RTM_NEWLINK", f"{ifname} up (container)", "", "ip-link(8)")
        ns.link("set", index=dev, state="up")
        if default_route:
            step("netlink RTM_NEWROUTE", f"default via {gateway} (container)",
                 "send everything else to the bridge", "ip-route(8)")
            ns.route("add", dst="0.0.0.0/0", gateway=gateway, oif=dev)


def loopback_up(netns_fd):
    """`--network none`: a namespace with only lo, and lo up."""
    with iproute_in(netns_fd) as ns:
        step("netlink RTM_NEWLINK", "lo up (container)", "--network none: only loopback",
             "ip-link(8)")
        ns.link("set", index=link_index(ns, "lo"), state="up")


def unplug(host_name):
    """Delete the host end (the peer in the container goes with it); False if gone."""
    import os

    if not os.path.exists(f"/sys/class/net/{host_name}"):
        # The kernel deletes the pair with the container's netns: usually the
        # case by now, and checking sysfs spares the ~0.2 s pyroute2 import.
        return False
    return delete_link(host_name, "unplug the container (its eth0 goes too)", "veth(4)")
