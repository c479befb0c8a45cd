"""Services as nftables rules (what kube-proxy's nftables mode does, in small).

One table per store, `ip minirun_kube` (tagged like the network's table for a
non-default --root), rebuilt whole from the kube state after every change, so
a rule exists only while a recorded Service explains it:

  prerouting (nat, dstnat)  jump services        # from pods (through the bridge)
  output     (nat, -100)    jump services        # from the host itself
  services   ip daddr CLUSTER_IP tcp dport P
                 dnat to numgen random mod N map { 0 : POD_IP0, 1 : POD_IP1 }:TARGET
             fib daddr type local tcp dport NODE_PORT  dnat to numgen ... (NodePort)
  filter_out / filter_fwd (filter)
             ip daddr SERVICE_RANGE drop     # a ClusterIP without endpoints, or a port
                                             # it does not serve: nothing leaves the host

The Services' DNS names (`<svc>.<ns>.svc.cluster.local` -> ClusterIP) are
published with the rules, for the embedded resolver the pods ask
(network/records.py; pods get kubelet's search list and ndots:5).

numgen random spreads new connections evenly over the pods (conntrack keeps a
connection on the pod it started on).  Masquerading for the replies is the
network's own (its `ct status dnat` rules in the minirun table): a DNATed
packet from a pod back onto the bridge, or from 127.0.0.1, is masqueraded there.
"""
import ipaddress

from minirun.network import nat

SERVICE_CIDR = "10.96.0.0/16"   # Kubernetes' default service range is 10.96.0.0/12
DOMAIN = "cluster.local"        # the cluster domain of Services' DNS names


def table_name(fe):
    from minirun.network import Store

    tag = Store(fe.root).tag
    return f"minirun_kube_{tag}" if tag else "minirun_kube"


def service_cidr(fe):
    """SERVICE_CIDR for the default --root; another root (tests, a second setup)
    gets a /24 of 10.97.0.0/16 picked by its tag, so that two stores' tables do
    not both claim one ClusterIP."""
    from minirun.network import Store

    tag = Store(fe.root).tag
    return f"10.97.{int(tag, 16) % 256}.0/24" if tag else SERVICE_CIDR


def allocate_ip(services, cidr=SERVICE_CIDR, wanted=None, what="service"):
    """A free ClusterIP from `cidr` (the first ten are skipped: Kubernetes keeps
    .1 for its API server and .10 is often DNS); `wanted` if given and free."""
    from minirun.kube.objects import KubeError

    net = ipaddress.ip_network(cidr)
    taken = {s["clusterIP"] for s in services.values()}
    if wanted:
        try:
            addr = ipaddress.ip_address(wanted)
        except ValueError:
            raise KubeError(f"{what}: spec.clusterIP: Invalid value: {wanted!r}") from None
        if addr not in net:
            raise KubeError(f"{what}: spec.clusterIP: Invalid value: {wanted!r}: provided IP is "
                            f"not in the valid range ({cidr})")
        if wanted in taken:
            raise KubeError(f"{what}: spec.clusterIP: Invalid value: {wanted!r}: provided IP is "
                            f"already allocated")
        return wanted
    for host in net.hosts():
        if int(host) - int(net.network_address) < 10:
            continue
        if str(host) not in taken:
            return str(host)
    raise KubeError(f"{what}: no free ClusterIP left in {cidr}")


def allocate_node_port(services, wanted, what):
    from minirun.kube.objects import NODE_PORT_RANGE, KubeError
    from minirun.network.ports import _bind_probe

    taken = {p for s in services.values() for p in s.get("nodePorts", {}).values()}
    if wanted:
        if wanted in taken:
            raise KubeError(f"{what}: spec.ports.nodePort: Invalid value: {wanted}: provided "
                            f"port is already allocated")
        return wanted
    for port in range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1):
        if port in taken:
            continue
        try:
            _bind_probe("0.0.0.0", port, "tcp")  # free on the host too
        except Exception:
            continue
        return port
    raise KubeError(f"{what}: no free node port")


def _m(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _dnat(ips, port):
    if len(ips) == 1:
        return {"dnat": {"addr": ips[0], "port": port}}
    pick = {"numgen": {"mode": "random", "mod": len(ips), "offset": 0}}
    return {"dnat": {"addr": {"map": {"key": pick, "data": {"set": [[i, ip] for i, ip in
                                                                    enumerate(ips)]}}},
                     "port": port}}


def ruleset(table, services, cidr=SERVICE_CIDR):
    """nft JSON commands making `table` serve `services`:
    {key: {"clusterIP", "ports": [{"port", "targetPort" (int), "nodePort", "protocol"}],
           "endpoints": [pod IPs]}}."""
    t = {"family": nat.FAMILY, "table": table}
    chains = {
        "prerouting": {"type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"},
        "output": {"type": "nat", "hook": "output", "prio": -100, "policy": "accept"},
        "services": {},
        "filter_out": {"type": "filter", "hook": "output", "prio": 0, "policy": "accept"},
        "filter_fwd": {"type": "filter", "hook": "forward", "prio": 0, "policy": "accept"},
    }
    cmds = [{"add": {"table": {"family": nat.FAMILY, "name": table}}}]
    for name, spec in chains.items():
        cmds.append({"add": {"chain": {**t, "name": name, **spec}}})
        cmds.append({"flush": {"chain": {**t, "name": name}}})

    def rule(chain, expr, comment=None):
        r = {**t, "chain": chain, "expr": expr}
        if comment:
            r["comment"] = comment[:127]
        cmds.append({"add": {"rule": r}})

    rule("prerouting", [{"jump": {"target": "services"}}])
    rule("output", [{"jump": {"target": "services"}}])
    daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
    local = _m({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    for key in sorted(services):
        svc = services[key]
        ips = sorted(svc.get("endpoints") or [], key=lambda a: ipaddress.ip_address(a))
        if not ips:
            continue
        for p in svc["ports"]:
            proto = p["protocol"].lower()
            dport = {"payload": {"protocol": proto, "field": "dport"}}
            target = _dnat(ips, p["targetPort"])
            rule("services", [_m(daddr, svc["clusterIP"]), _m(dport, p["port"]), target],
                 f"{key}:{p['port']}")
            if p.get("nodePort"):
                rule("services", [local, _m(dport, p["nodePort"]), target],
                     f"{key} nodePort {p['nodePort']}")
    addr, _, length = cidr.partition("/")
    service_range = {"prefix": {"addr": addr, "len": int(length)}}
    for chain in ("filter_out", "filter_fwd"):
        rule(chain, [_m(daddr, service_range), {"drop": None}],
             "no endpoint for this service address")
    return cmds


def search_domains(namespace):
    """A pod's resolv.conf search list, as kubelet writes it (dnsPolicy ClusterFirst)."""
    return [f"{namespace}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]


def dns_names(services):
    """{"<svc>.<ns>.svc.cluster.local": [ClusterIP]} for the embedded resolver: with
    the search list and ndots:5, `<svc>`, `<svc>.<ns>` and `<svc>.<ns>.svc` reach
    these names too, as with cluster DNS."""
    out = {}
    for key, svc in services.items():
        namespace, name = key.split("/", 1)
        out[f"{name}.{namespace}.svc.{DOMAIN}"] = [svc["clusterIP"]]
    return out


def sync(fe, services):
    """Make the table and the DNS names match `services`; no Service left: neither."""
    from minirun.kube import adapter
    from minirun.network import records

    records.publish("kube", adapter.NETWORK, dns_names(services),
                    zones=[DOMAIN] if services else (), root=fe.root)
    table = table_name(fe)
    if not services:
        nat.delete_table(table)
        return
    nat.run(ruleset(table, services, service_cidr(fe)), "rebuild the Services' nftables rules")
