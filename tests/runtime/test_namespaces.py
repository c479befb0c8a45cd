"""linux.namespaces: new ones of every type, joined ones by path, id maps."""
import os
import time

import pytest

from minirun_testlib import run_in


def _ns(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_new_namespaces_differ_from_host(runtime, bundle, cid):
    bundle.linux["namespaces"] = [{"type": t} for t in
                                  ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    for kind in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert _ns(pid, kind) != _ns(os.getpid(), kind), kind
    assert _ns(pid, "user") == _ns(os.getpid(), "user")


def test_pid_namespace_makes_the_process_pid_1(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid, "echo $$; ls /proc | grep -c '^[0-9]'")
    pid, count = out.stdout.split()
    assert pid == "1" and int(count) <= 3  # sh, ls, grep


def test_network_namespace_has_only_loopback_and_it_is_up(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid, "ls /sys/class/net; cat /sys/class/net/lo/flags")
    names, flags = out.stdout.split()
    assert names == "lo" and int(flags, 16) & 1, "lo must be up (IFF_UP)"


def test_uts_namespace_hostname_and_domainname(runtime, bundle, cid):
    bundle.config["hostname"] = "box-" + cid[:6]
    bundle.config["domainname"] = "example.test"
    out = run_in(runtime, bundle, cid, "hostname; cat /proc/sys/kernel/domainname")
    assert out.stdout.split() == ["box-" + cid[:6], "example.test"]
    assert os.uname().nodename != "box-" + cid[:6]


def test_hostname_without_uts_namespace_is_an_error(runtime, bundle, cid):
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"] if ns["type"] != "uts"]
    bundle.config["hostname"] = "nope"
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "UTS namespace" in out.stderr
    assert runtime.ids() == []


def test_ipc_namespace_is_private(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid, "readlink /proc/self/ns/ipc")
    assert out.stdout.strip() != _ns(os.getpid(), "ipc")


def test_cgroup_namespace_root(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid, "cat /proc/self/cgroup")
    for line in out.stdout.splitlines():
        assert line.endswith(":/"), line


def test_join_namespaces_by_path(runtime, bundle, cid, tmp_path):
    bundle.process["args"] = ["sleep", "300"]
    bundle.config["hostname"] = "first"
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    first = runtime.state(cid)["pid"]

    from minirun_testlib import _new_bundle
    second = _new_bundle(tmp_path / "second", bundle.config["root"]["path"], ["true"])
    nss = []
    for ns in second.linux["namespaces"]:
        if ns["type"] in ("network", "uts", "ipc"):
            ns["path"] = f"/proc/{first}/ns/" + {"network": "net"}.get(ns["type"], ns["type"])
        nss.append(ns)
    second.linux["namespaces"] = nss
    second.config.pop("hostname", None)
    out = run_in(runtime, second, cid + "b", "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc")
    lines = out.stdout.split()
    assert lines[0] == "first"
    assert lines[1] == _ns(first, "net") and lines[2] == _ns(first, "ipc")


def test_join_namespace_of_wrong_type_fails(runtime, bundle, cid):
    for ns in bundle.linux["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/proc/{os.getpid()}/ns/uts"
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0
    assert runtime.ids() == []


def test_join_missing_namespace_path_fails_cleanly(runtime, bundle, cid):
    for ns in bundle.linux["namespaces"]:
        if ns["type"] == "ipc":
            ns["path"] = "/proc/999999999/ns/ipc"
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "ipc namespace" in out.stderr
    assert runtime.ids() == []


@pytest.fixture
def userns_bundle(private_bundle):
    base = 200000
    rootfs = os.path.join(private_bundle.path, "rootfs")
    # The container's root (host uid 200000) must be able to reach its rootfs,
    # as with runc; pytest makes its temp dirs 0700.
    path = private_bundle.path
    while path not in ("/", "/tmp"):
        os.chmod(path, os.stat(path).st_mode | 0o011)
        path = os.path.dirname(path)
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), base, base)
    os.lchown(rootfs, base, base)
    private_bundle.linux["namespaces"].append({"type": "user"})
    private_bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": base, "size": 65536}]
    private_bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": base, "size": 65536}]
    private_bundle.linux.pop("resources", None)
    return private_bundle.save()


def test_user_namespace_with_mappings(runtime, userns_bundle, cid):
    out = run_in(runtime, userns_bundle, cid,
                 "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /root/x && stat -c %u /root/x")
    lines = [line.split() for line in out.stdout.splitlines()]
    assert lines[0] == ["0", "200000", "65536"] and lines[1] == ["0", "200000", "65536"]
    assert lines[2] == ["0"] and lines[3] == ["0"]
    assert os.stat(os.path.join(userns_bundle.path, "rootfs/root/x")).st_uid == 200000


def test_user_namespace_devices_are_usable(runtime, userns_bundle, cid):
    out = run_in(runtime, userns_bundle, cid, "echo hi > /dev/null && head -c4 /dev/zero | wc -c")
    assert out.stdout.strip() == "4"
