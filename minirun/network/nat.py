"""NAT and isolation with nftables, through its JSON API (libnftables in-process,
or `nft -j -f -` when the library is missing).

minirun owns one table (`ip minirun`, or `ip minirun_<tag>` for a non-default
--root) and rebuilds its rules from the store in a single nft transaction after
every change: the store is the truth, so a crash can never leave a rule that no
record explains, and a cleanup is just "sync again".  Base chains are flushed,
never deleted, so the NAT hooks stay registered and running containers keep
their connections.  The same rules as iptables-save would show them:

  prerouting  (nat, dstnat)   fib daddr type local jump ports
  output      (nat, -100)     fib daddr type local jump ports      # host -> 127.0.0.1:H
  ports                       [ip daddr H] tcp dport H dnat to C:P  comment "<id> ..."
  postrouting (nat, srcnat)   ip saddr SUBNET oifname != BR masquerade          # outbound
                              ct status dnat ip saddr SUBNET oifname BR masquerade  # hairpin
                              ct status dnat ip saddr 127.0.0.0/8 oifname @bridges masquerade
  forward     (filter)        iifname BR oifname != BR oifname @bridges ct status ! dnat drop
  input       (filter)        iifname @bridges ip daddr 127.0.0.0/8 ct status ! dnat drop

Hairpin (a container reaching its own published port through the host) and
localhost (127.0.0.1:H) both need masquerade, or the reply would not come back
through the host's conntrack.  localhost DNAT also needs route_localnet=1 on the
bridge (see bridge.py), which would let containers send to the host's 127.0.0.1
services; the input rule drops exactly that (CVE-2020-8558 in kube-proxy).
"""
import json
import os
import shutil
import subprocess
import threading

from minirun.errors import MinirunError
from minirun.linux.trace import step

FAMILY = "ip"


def _m(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key):
    return {"meta": {"key": key}}


def _payload(proto, field):
    return {"payload": {"protocol": proto, "field": field}}


def _prefix(cidr):
    addr, _, length = cidr.partition("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


_LOCAL_DST = _m({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
_DNATTED = _m({"ct": {"key": "status"}}, "dnat", op="in")
_NOT_DNATTED = _m({"ct": {"key": "status"}}, "dnat", op="!")


def _comment(text):
    return text.encode()[:127].decode(errors="ignore")  # nft limits comments to 128 bytes


def ruleset(table, networks, endpoints):
    """The nft JSON commands that make `table` match the given store records."""
    t = {"family": FAMILY, "table": table}
    chains = {
        "prerouting": {"type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"},
        "output": {"type": "nat", "hook": "output", "prio": -100, "policy": "accept"},
        "ports": {},
        "postrouting": {"type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"},
        "forward": {"type": "filter", "hook": "forward", "prio": 0, "policy": "accept"},
        "input": {"type": "filter", "hook": "input", "prio": 0, "policy": "accept"},
    }
    cmds = [{"add": {"table": {"family": FAMILY, "name": table}}},
            {"add": {"set": {**t, "name": "bridges", "type": "ifname"}}}]
    for name, spec in chains.items():
        cmds.append({"add": {"chain": {**t, "name": name, **spec}}})
    for name in chains:
        cmds.append({"flush": {"chain": {**t, "name": name}}})
    cmds.append({"flush": {"set": {**t, "name": "bridges"}}})
    bridges = sorted(n["bridge"] for n in networks)
    if bridges:
        cmds.append({"add": {"element": {**t, "name": "bridges", "elem": bridges}}})

    def rule(chain, expr, comment=None):
        r = {**t, "chain": chain, "expr": expr}
        if comment:
            r["comment"] = _comment(comment)
        cmds.append({"add": {"rule": r}})

    rule("prerouting", [_LOCAL_DST, {"jump": {"target": "ports"}}])
    rule("output", [_LOCAL_DST, {"jump": {"target": "ports"}}])
    by_name = {n["name"]: n for n in networks}
    for ep in sorted(endpoints, key=lambda e: e["container_id"]):
        if ep.get("mode") != "bridge" or not ep.get("ip") or ep.get("network") not in by_name:
            continue
        for p in ep.get("ports") or ():
            expr = []
            if p["host_ip"] != "0.0.0.0":
                expr.append(_m(_payload("ip", "daddr"), p["host_ip"]))
            expr.append(_m(_payload(p["proto"], "dport"), p["host_port"]))
            expr.append({"dnat": {"addr": ep["ip"], "port": p["container_port"]}})
            rule("ports", expr, f"{ep['container_id']} {p['host_ip']}:{p['host_port']}->"
                                f"{p['container_port']}/{p['proto']}")
    for net in sorted(networks, key=lambda n: n["name"]):
        br, subnet, tag = net["bridge"], _prefix(net["subnet"]), f"network {net['name']}"
        saddr = _m(_payload("ip", "saddr"), subnet)
        rule("postrouting", [saddr, _m(_meta("oifname"), br, op="!="), {"masquerade": None}], tag)
        rule("postrouting", [_DNATTED, saddr, _m(_meta("oifname"), br), {"masquerade": None}], tag)
        rule("forward", [_m(_meta("iifname"), br), _m(_meta("oifname"), br, op="!="),
                         _m(_meta("oifname"), "@bridges"), _NOT_DNATTED, {"drop": None}], tag)
    rule("postrouting", [_DNATTED, _m(_payload("ip", "saddr"), _prefix("127.0.0.0/8")),
                         _m(_meta("oifname"), "@bridges"), {"masquerade": None}], "localhost")
    rule("input", [_m(_meta("iifname"), "@bridges"),
                   _m(_payload("ip", "daddr"), _prefix("127.0.0.0/8")),
                   _NOT_DNATTED, {"drop": None}], "no route_localnet abuse")
    return cmds


class _Libnftables:
    """libnftables in-process (what Debian's python3-nftables wraps with ctypes too):
    ~1 ms per transaction instead of ~12 ms for starting `nft`.  One context per
    process: it holds a netlink socket, which a forked child must not share."""

    _JSON_OUTPUT = 1 << 4  # NFT_CTX_OUTPUT_JSON

    def __init__(self):
        import ctypes

        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        self.lib = lib
        self.ctx = None
        self.pid = None
        self.lock = threading.Lock()

    def __call__(self, text):
        """Run an nft command buffer (JSON or nft syntax); (ok, output, error)."""
        with self.lock:
            if self.ctx is None or self.pid != os.getpid():
                self.ctx = self.lib.nft_ctx_new(0)
                self.pid = os.getpid()
                self.lib.nft_ctx_buffer_output(self.ctx)
                self.lib.nft_ctx_buffer_error(self.ctx)
                self.lib.nft_ctx_output_set_flags(self.ctx, self._JSON_OUTPUT)
            rc = self.lib.nft_run_cmd_from_buffer(self.ctx, text.encode())
            out = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode()
            err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode()
            return rc == 0, out, err


_lib = None


def _nft(text):
    """(ok, stdout, stderr) of one nft command buffer: libnftables if present, else nft(8)."""
    global _lib
    if _lib is None:
        try:
            _lib = _Libnftables()
        except OSError:
            _lib = False
    if _lib:
        return _lib(text)
    exe = shutil.which("nft") or "/usr/sbin/nft"
    try:
        res = subprocess.run([exe, "-j", "-f", "-"], input=text, capture_output=True, text=True)
    except FileNotFoundError:
        raise MinirunError("nft not found: install the nftables package") from None
    return res.returncode == 0, res.stdout, res.stderr


def run(commands, why=""):
    """Apply nft JSON commands in one transaction."""
    step("nft -j -f -", f"{len(commands)} commands", why or "update minirun's nftables table", "nft(8)")
    ok, _, err = _nft(json.dumps({"nftables": commands}))
    if not ok:
        first = err.strip().splitlines()[0] if err.strip() else "failed"
        raise MinirunError(f"nftables: {first.removeprefix('internal:0:0-0: ')}")


def list_table(table):
    """The table as nft's JSON objects, or None if it does not exist."""
    ok, out, _ = _nft(json.dumps({"nftables": [{"list": {"table": {"family": FAMILY, "name": table}}}]}))
    if not ok:
        return None
    return json.loads(out).get("nftables", []) if out.strip() else []


def sync(store):
    """Make the kernel's table match the store (caller holds the store lock)."""
    run(ruleset(store.table, store.networks(), store.endpoints()), "rebuild NAT rules from the store")


def delete_table(table):
    if list_table(table) is None:
        return
    run([{"delete": {"table": {"family": FAMILY, "name": table}}}], "remove minirun's nftables table")
