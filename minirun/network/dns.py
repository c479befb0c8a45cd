"""Name files for a container: /etc/hosts, /etc/hostname, /etc/resolv.conf.

Containers on a user-defined network find each other by name through
/etc/hosts, which is rewritten (in place, so bind mounts see it) whenever a
container joins or leaves the network; or, when the front end serves the
embedded resolver for them (minirun/dns/), through 127.0.0.11.  resolv.conf is the
host's, minus loopback stub resolvers (systemd-resolved's 127.0.0.53, dnsmasq's
127.0.0.1) that cannot be reached from inside another network namespace.
"""
import ipaddress

HOST_RESOLV_CONF = "/etc/resolv.conf"
# systemd-resolved keeps the real upstream servers here when /etc/resolv.conf is its stub.
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
# What Docker falls back to when the host has no usable nameserver.
FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]

HOSTS_HEADER = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def _is_loopback(addr):
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return ""


def filter_resolv_conf(text):
    """(lines to keep, nameservers kept) of a resolv.conf, loopback nameservers dropped."""
    kept, servers = [], []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "nameserver":
            if len(fields) < 2 or _is_loopback(fields[1]):
                continue
            servers.append(fields[1])
        kept.append(line)
    return kept, servers


def resolv_conf(dns=None, dns_search=None, dns_options=None, host_path=HOST_RESOLV_CONF):
    """Content of a bridged container's /etc/resolv.conf."""
    kept, servers = filter_resolv_conf(_read(host_path))
    if not servers:
        upstream, upstream_servers = filter_resolv_conf(_read(RESOLVED_UPSTREAM))
        if upstream_servers:
            kept, servers = upstream, upstream_servers
    if dns or dns_search or dns_options:
        # Explicit settings replace the host's lines of the same kind.
        drop = set()
        if dns:
            drop.add("nameserver")
        if dns_search:
            drop |= {"search", "domain"}
        if dns_options:
            drop.add("options")
        kept = [line for line in kept if not (line.split() and line.split()[0] in drop)]
        if dns:
            kept += [f"nameserver {s}" for s in dns]
            servers = list(dns)
        if dns_search:
            kept.append("search " + " ".join(dns_search))
        if dns_options:
            kept.append("options " + " ".join(dns_options))
    if not servers:
        kept.append("# the host has no nameserver reachable from a container; using public ones")
        kept += [f"nameserver {s}" for s in FALLBACK_NAMESERVERS]
    return "\n".join(kept).rstrip("\n") + "\n"


def embedded_resolv_conf(dns_search=None, dns_options=None, host_path=HOST_RESOLV_CONF):
    """resolv.conf for the embedded resolver: it answers container names and
    forwards the rest (to --dns servers, else the host's); the host's search
    domains and options are kept unless given, with ndots:0 (Docker's) so a
    bare name is asked as is first."""
    keep = []
    if dns_search:
        keep.append("search " + " ".join(dns_search))
    if dns_options:
        keep.append("options " + " ".join(dns_options))
    for line in _read(host_path).splitlines():
        fields = line.split()
        if fields and fields[0] in ("search", "domain"):
            if not dns_search:
                keep.append(line)
        elif fields and fields[0] == "options" and not dns_options:
            rest = [o for o in fields[1:] if not o.startswith("ndots:")]
            if rest:
                keep.append("options " + " ".join(rest))
    # ndots:0 (Docker's) unless the caller sets ndots (kube's pods: ndots:5, as kubelet)
    ndots = [] if any(o.startswith("ndots:") for o in dns_options or ()) else ["options ndots:0"]
    return "\n".join(["nameserver 127.0.0.11", *keep, *ndots]) + "\n"


def host_resolv_conf(host_path=HOST_RESOLV_CONF):
    """A host-network container shares the host's loopback, so it keeps the stub."""
    return _read(host_path) or "".join(f"nameserver {s}\n" for s in FALLBACK_NAMESERVERS)


def _names(*groups):
    seen, out = set(), []
    for group in groups:
        for name in group or ():
            if name and name not in seen:
                seen.add(name)
                out.append(name)
    return out


def hosts(own_ip=None, own_names=(), peers=()):
    """Content of /etc/hosts: localhost, the container itself, then its peers.

    `peers` is a list of (ip, [names]) for the other containers of the same
    user-defined network, so `ping web` works from `app`.
    """
    lines = [HOSTS_HEADER]
    if own_ip and own_names:
        lines.append(f"{own_ip}\t{' '.join(_names(own_names))}\n")
    for ip, names in sorted(peers, key=lambda p: ipaddress.ip_address(p[0])):
        names = _names(names)
        if names:
            lines.append(f"{ip}\t{' '.join(names)}\n")
    return "".join(lines)


def host_hosts(hostname):
    """/etc/hosts of a host-network container: the host's file, plus its hostname."""
    text = _read("/etc/hosts") or HOSTS_HEADER
    if hostname and hostname not in text.split():
        text = text.rstrip("\n") + f"\n127.0.1.1\t{hostname}\n"
    return text


def hostname_file(hostname):
    return f"{hostname}\n"
