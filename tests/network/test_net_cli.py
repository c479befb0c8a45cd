"""`minirun network create/ls/inspect/rm` through the real command line."""
import json
import subprocess
import sys

from net_helpers import host_links, nft_rule_comments, unique
from minirun import network


def minirun(root, *args):
    return subprocess.run([sys.executable, "-c", "from minirun.cli import main; main()", "--root", root, *args],
                          capture_output=True, text=True, timeout=60)


def test_network_create_ls_inspect_rm(store_root):
    name = unique()
    res = minirun(store_root, "network", "create", "--subnet", "10.213.77.0/24", "--gateway", "10.213.77.254", name)
    assert res.returncode == 0, res.stderr
    net_id = res.stdout.strip()
    assert len(net_id) == 64

    res = minirun(store_root, "network", "ls")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["NETWORK", "ID", "NAME"]
    assert any(line.split()[:2] == [net_id[:12], name] and "10.213.77.0/24" in line for line in lines)
    assert minirun(store_root, "network", "ls", "-q").stdout.split() == ["bridge", "host", "none", name]

    (info,) = json.loads(minirun(store_root, "network", "inspect", name).stdout)
    assert (info["subnet"], info["gateway"], info["containers"]) == ("10.213.77.0/24", "10.213.77.254", {})
    assert info["bridge"] in host_links()
    with open(f"/sys/class/net/{info['bridge']}/address") as f:
        assert f.read().strip() == "02:42:0a:d5:4d:fe"     # fixed, derived from the gateway
    assert f"network {name}" in nft_rule_comments(network.Store(store_root).table)

    res = minirun(store_root, "network", "create", name)
    assert res.returncode == 1 and res.stderr.strip() == f"minirun: network with name {name} already exists"
    res = minirun(store_root, "network", "create", "--subnet", "10.213.77.128/25", unique())
    assert res.returncode == 1 and "overlaps with network" in res.stderr
    res = minirun(store_root, "network", "rm", "bridge")
    assert res.returncode == 1 and "pre-defined" in res.stderr

    res = minirun(store_root, "network", "rm", name, "nosuch")
    assert res.returncode == 1 and res.stdout.strip() == name and "network nosuch not found" in res.stderr
    assert info["bridge"] not in host_links()
    assert f"network {name}" not in nft_rule_comments(network.Store(store_root).table)
    assert "Traceback" not in res.stderr
