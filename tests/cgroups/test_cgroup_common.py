"""Unit tests for the pure parts of minirun.cgroups: layout detection, path
resolution, spec -> cgroup conversions, device rules and the eBPF program."""
import struct

import pytest

from minirun.cgroups import common, devices_bpf, v1, v2
from minirun.cgroups.common import Layout
from minirun.errors import CgroupError

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""
V2_MOUNTINFO = """\
22 1 0:21 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
COMOUNTED_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""


def test_parse_proc_cgroup_splits_comounted_controllers():
    own = common.parse_proc_cgroup("2:cpu,cpuacct:/a\n1:name=systemd:/s\n0::/u\n")
    assert own == {"cpu": "/a", "cpuacct": "/a", "name=systemd": "/s", "": "/u"}


def test_hybrid_host_is_v1_even_with_a_controller_on_cgroup2():
    layout = Layout(HYBRID_MOUNTINFO, HYBRID_CGROUP, unified_controllers=["hugetlb"])
    assert not layout.is_v2
    assert set(layout.v1) == {"cpu", "cpuacct", "cpuset", "memory"}  # not name=systemd
    assert layout.unified == ("/sys/fs/cgroup/unified", "/")
    assert layout.own_path("memory") == "/process_api/abc"
    assert layout.own_path("cpu") == "/"


def test_pure_v2_needs_controllers():
    assert Layout(V2_MOUNTINFO, "0::/user.slice/session-1.scope\n", ["cpu", "memory"]).is_v2
    assert not Layout(V2_MOUNTINFO, "0::/\n", []).is_v2


def test_bind_mounted_hierarchy_root_is_stripped():
    layout = Layout(COMOUNTED_MOUNTINFO, "3:memory:/docker/abc/sub\n2:cpu,cpuacct:/\n")
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == ("/sys/fs/cgroup/cpu,cpuacct", "/")
    assert layout.own_path("memory") == "/sub"


@pytest.mark.parametrize("given, own, want", [
    (None, "/x", "/minirun/cid"),
    ("", "/x", "/minirun/cid"),
    ("/cgrouptest", "/x", "/cgrouptest"),
    ("/a/b/", "/x", "/a/b"),
    ("testdir/cgrouptest/container", "/process_api/abc",
     "/process_api/abc/testdir/cgrouptest/container"),
    ("rel", "/", "/rel"),
    ("/../../etc", "/", "/etc"),            # cannot climb out of the mount
    ("../../../escape", "/a", "/escape"),
    ("machine.slice:libpod:abc", "/", "/machine.slice/libpod-abc.scope"),
    ("system.slice:docker:abc", "/", "/system.slice/docker-abc.scope"),
    ("a-b.slice:p:n", "/", "/a.slice/a-b.slice/p-n.scope"),
])
def test_resolve_path(given, own, want):
    assert common.resolve_path("cid", given, own) == want


def test_resolve_path_refuses_the_root():
    with pytest.raises(CgroupError):
        common.resolve_path("cid", "/", "/")


def test_shares_to_weight_maps_min_default_max_exactly():
    assert common.shares_to_weight(0) == 0          # unset
    assert common.shares_to_weight(2) == 1
    assert common.shares_to_weight(1024) == 100
    assert common.shares_to_weight(262144) == 10000
    values = [common.shares_to_weight(s) for s in (2, 10, 100, 512, 1024, 2048, 65536, 262144)]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_blkio_weight_to_io_weight():
    assert common.blkio_weight_to_io_weight(0) == 0
    assert common.blkio_weight_to_io_weight(10) == 1
    assert common.blkio_weight_to_io_weight(1000) == 10000
    assert common.blkio_weight_to_io_weight(500) == 1 + 490 * 9999 // 990


@pytest.mark.parametrize("swap, limit, want", [
    (0, 0, None), (0, 100, None), (-1, 100, -1), (0, -1, -1),
    (150, 100, 50), (100, 100, 0),
])
def test_swap_to_v2(swap, limit, want):
    assert common.swap_to_v2(swap, limit) == want


@pytest.mark.parametrize("swap, limit", [(50, 100), (100, 0), (100, -1)])
def test_swap_to_v2_refuses(swap, limit):
    with pytest.raises(CgroupError):
        common.swap_to_v2(swap, limit)


def test_cpu_max():
    assert common.cpu_max(0, 0) is None
    assert common.cpu_max(50000, 100000) == "50000 100000"
    assert common.cpu_max(-1, 100000) == "max 100000"
    assert common.cpu_max(20000, 0) == "20000"   # keeps the current period
    assert common.cpu_max(0, 250000) == "max 250000"


def test_limit_str():
    assert common.limit_str(-1) == "max"
    assert common.limit_str(4096) == "4096"


def test_hugepage_size_names(tmp_path):
    for kb in (2048, 1048576, 64):
        (tmp_path / f"hugepages-{kb}kB").mkdir()
    assert common.hugepage_sizes(str(tmp_path)) == ["64KB", "2MB", "1GB"]
    assert common.pagesize_bytes("2MB") == 2 << 20
    with pytest.raises(CgroupError):
        common.pagesize_bytes("2M")


@pytest.mark.parametrize("rule, text", [
    ({"allow": False, "access": "rwm"}, "a *:* rwm"),
    ({"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}, "c 10:229 rwm"),
    ({"allow": True, "type": "b", "major": 8, "access": "wr"}, "b 8:* rw"),
    ({"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"}, "c *:* m"),
])
def test_device_rule_v1(rule, text):
    assert common.device_rule_v1(rule) == text


@pytest.mark.parametrize("rule", [{"type": "x"}, {"access": "rwx"}])
def test_bad_device_rules_are_refused(rule):
    with pytest.raises(CgroupError):
        common.normalize_device_rule(rule)


def test_effective_device_rules_keep_spec_order_then_defaults():
    spec = [{"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "rwm"}]
    rules = common.effective_device_rules(spec, [{"type": "c", "major": 42, "minor": 7}])
    assert [common.device_rule_v1(r) for r in rules[:3]] == [
        "a *:* rwm", "c 10:229 rwm", "c 1:9 rwm"]
    texts = [common.device_rule_v1(r) for r in rules]
    assert "c 1:3 rwm" in texts and "c 42:7 rwm" in texts
    # the explicit deny of /dev/urandom (1:9) is not undone by a default allow
    assert [r["allow"] for r in rules if (r["major"], r["minor"]) == (1, 9)] == [False]
    assert common.effective_device_rules([], []) == []
    assert common.effective_device_rules(rules) == rules  # idempotent


def test_resources_from_spec_completes_devices_only():
    linux = {"resources": {"memory": {"limit": 1}, "devices": [{"allow": False,
                                                                 "access": "rwm"}]}}
    res = common.resources_from_spec(linux)
    assert res["memory"] == {"limit": 1}
    assert len(res["devices"]) == 1 + len(common.DEFAULT_DEVICE_RULES)
    assert common.resources_from_spec({}) == {}


def test_v1_refuses_what_it_cannot_do():
    with pytest.raises(CgroupError, match="unified"):
        v1.validate({"unified": {"memory.high": "1"}})
    with pytest.raises(CgroupError, match="swappiness"):
        v1.validate({"memory": {"swappiness": 101}})
    with pytest.raises(CgroupError, match="swap"):
        v1.validate({"memory": {"limit": 200, "swap": 100}})
    v1.validate({"memory": {"limit": 100, "swap": 200, "swappiness": 10}})


def test_v2_refuses_what_it_cannot_do():
    with pytest.raises(CgroupError, match="realtime"):
        v2.validate({"cpu": {"realtimeRuntime": 1000}})
    with pytest.raises(CgroupError, match="net_cls"):
        v2.validate({"network": {"classID": 1}})
    for key in ("../x", "memory", "cgroup.procs", ".hidden"):
        with pytest.raises(CgroupError):
            v2.validate({"unified": {key: "1"}})
    v2.validate({"unified": {"memory.high": "1", "cgroup.max.depth": "2"}})


def test_v2_needed_controllers():
    r = {"memory": {"limit": 1}, "cpu": {"shares": 2, "cpus": "0"}, "pids": {"limit": 3},
         "blockIO": {"weight": 10}, "unified": {"misc.max": "x", "cgroup.max.depth": "1"}}
    assert v2.needed_controllers(r) == {"memory", "cpu", "cpuset", "pids", "io", "misc"}
    assert v2.needed_controllers({"memory": {"disableOOMKiller": True}}) == set()


# ------------------------------------------------------------------ eBPF devices

DENY_ALL = {"allow": False, "access": "rwm"}
NULL_RW = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}


def test_device_evaluation_semantics():
    rules = [DENY_ALL, NULL_RW, {"allow": True, "type": "b", "major": 8, "access": "r"}]
    ev = devices_bpf.evaluate
    assert ev(rules, "c", 1, 3, "rw")
    assert not ev(rules, "c", 1, 3, "m")          # mknod not granted
    assert not ev(rules, "c", 1, 5, "r")          # /dev/zero: only deny-all matches
    assert ev(rules, "b", 8, 1, "r") and not ev(rules, "b", 8, 1, "w")
    # later rules win; a deny refuses any overlapping access
    assert not ev(rules + [{"allow": False, "type": "c", "major": 1, "minor": 3,
                            "access": "w"}], "c", 1, 3, "rw")
    assert ev([], "c", 1, 5, "rwm")                # no rules: a fresh cgroup allows


def _decode(code):
    return [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]


def test_device_program_shape():
    assert devices_bpf.program([]) is None
    insns = _decode(devices_bpf.program([DENY_ALL, NULL_RW]))
    assert insns[-1][0] == devices_bpf.EXIT
    # every jump lands inside the program, and nothing follows the final
    # unconditional rule (the verifier rejects unreachable instructions)
    for pc, (code, _regs, off, _imm) in enumerate(insns):
        if code in (devices_bpf.JNE_K, devices_bpf.JNE_X, devices_bpf.JEQ_K):
            assert 0 < pc + 1 + off < len(insns)
    assert insns[-2] == (devices_bpf.MOV64_K, devices_bpf.R0, 0, 0)  # deny-all verdict
    # without a wildcard rule the program ends in the default allow
    tail = _decode(devices_bpf.program([NULL_RW]))[-2]
    assert tail == (devices_bpf.MOV64_K, devices_bpf.R0, 0, 1)
