"""A container's name files: /etc/hosts, /etc/hostname and /etc/resolv.conf,
made before `create` (bind-mount sources) and filled in place on attach, and
the peers' /etc/hosts rewritten when a user-defined network changes."""
import os

from minirun.network import dns
from minirun.network.common import ETC_FILES
from minirun.network.store import DEFAULT_ROOT, Store, check_container_id, write_in_place


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

