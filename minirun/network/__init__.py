"""Docker-like networking for `minirun run`: bridges, veth pairs, IPAM, NAT,
published ports and name files.  Kept apart from the OCI runtime core, which
only creates or joins a netns (engines bring their own networking).

Modules:
  api     the functions below: what the front end and the CLI call, gathered from
    common     parse_mode, netns_path, name checks
    networks   create/remove/list/inspect bridge networks
    namefiles  /etc/hosts, /etc/hostname, /etc/resolv.conf of each container
    endpoints  attach, connect, detach, cleanup_stale, purge
  store   networks and endpoints on disk, under one lock
  ipam    address allocation (pure)
  ports   `-p` parsing and host-port checks
  dns     /etc/hosts, /etc/hostname, /etc/resolv.conf content
  bridge  host side over netlink (pyroute2, imported only here and in veth)
  veth    the container side: veth pair into the netns
  nat     nftables table (JSON API), rebuilt from the store
  embedded  the embedded DNS resolver's sockets, made inside a container's netns
  records   names published to that resolver by other sources (kube Services)

Importing this package does not import pyroute2.
"""
from minirun.network.api import (attach, cleanup_stale, connect, create_network, detach, endpoint,
                                 etc_files,
                                 inspect_network, list_networks, parse_mode, purge, remove_network)
from minirun.network.ports import parse_publish
from minirun.network.store import DEFAULT_NETWORK, DEFAULT_ROOT, Store

__all__ = ["attach", "connect", "detach", "cleanup_stale", "etc_files", "endpoint", "create_network", "remove_network",
           "list_networks", "inspect_network", "purge", "parse_mode", "parse_publish", "DEFAULT_NETWORK",
           "DEFAULT_ROOT", "Store"]
