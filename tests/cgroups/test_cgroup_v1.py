"""cgroup v1 (and hybrid) integration tests: real cgroups, real processes.

Each test reads back the kernel's files and, for the limits, shows the
kernel enforcing them on a process put into the cgroup.
"""
import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from cg_helpers import (TEST_PARENT, allocate, burn_cpu, drain, fork_many, fork_tree, read,
                        ticker, wait_for)
from minirun import cgroups
from minirun.cgroups import common
from minirun.errors import CgroupError

pytestmark = pytest.mark.skipif(cgroups.detect() != "v1",
                                reason="host is not cgroup v1/hybrid")
MiB = 1 << 20


def _block_device():
    """major:minor of some block device here (throttle rules need a real one)."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            return tuple(int(x) for x in read(f"/sys/block/{name}/dev").split(":"))
    return tuple(int(x) for x in read("/sys/block/loop0/dev").split(":"))


def test_resources_are_written_to_the_v1_files(make_cgroup):
    major, minor = _block_device()
    cg = make_cgroup({
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB,
                   "swappiness": 10, "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 50000, "period": 200000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 99}]},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
                    {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
                    {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"}],
    })
    d = cg.dirs
    assert read(d["memory"] + "/memory.limit_in_bytes") == str(64 * MiB)
    assert read(d["memory"] + "/memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(d["memory"] + "/memory.memsw.limit_in_bytes") == str(96 * MiB)
    assert read(d["memory"] + "/memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read(d["memory"] + "/memory.oom_control")
    assert read(d["cpu"] + "/cpu.shares") == "512"
    assert read(d["cpu"] + "/cpu.cfs_quota_us") == "50000"
    assert read(d["cpu"] + "/cpu.cfs_period_us") == "200000"
    assert read(d["cpuset"] + "/cpuset.cpus") == "0"
    assert read(d["cpuset"] + "/cpuset.mems") == "0"
    assert read(d["pids"] + "/pids.max") == "42"
    assert read(d["blkio"] + "/blkio.throttle.read_bps_device") == f"{major}:{minor} 1048576"
    assert read(d["blkio"] + "/blkio.throttle.write_iops_device") == f"{major}:{minor} 99"
    # in spec order (the OCI conformance suite checks position by position),
    # then the default devices every container gets
    listed = read(d["devices"] + "/devices.list").splitlines()
    assert listed[:3] == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"]
    assert "c 1:3 rwm" in listed and "c 5:2 rwm" in listed and "b 8:20 rwm" not in listed


def test_every_hierarchy_and_the_hybrid_unified_dir_get_the_process(make_cgroup, spawn):
    cg = make_cgroup({"cpu": {"cpus": "0-1"}})
    child = spawn(ticker)
    cg.add_process(child.pid)
    own = common.parse_proc_cgroup(read(f"/proc/{child.pid}/cgroup"))
    for ctrl in cg.dirs:
        assert own[ctrl] == cg.path, ctrl
    if cg.unified:
        assert own[""] == cg.path
    assert cg.pids() == [child.pid]


def test_a_process_moved_out_of_one_hierarchy_is_still_found_and_killed(make_cgroup, spawn):
    cg = make_cgroup()
    other = make_cgroup()
    child = spawn(ticker)
    cg.add_process(child.pid)
    common.add_pid(other.dirs["pids"], child.pid)  # as the OCI suite does with "tasks"
    assert cg.pids() == [child.pid]
    cg.kill_all(signal.SIGKILL)
    child.wait()
    cg.destroy()
    assert os.path.isdir(other.dirs["pids"])  # not ours: left alone


def test_cpuset_is_copied_into_new_parents(make_cgroup, spawn):
    # Two new levels: both must get the parent's cpus/mems or tasks are refused.
    cg = make_cgroup(path=f"{TEST_PARENT}/deep/er/x")
    for d in (os.path.dirname(cg.dirs["cpuset"]), cg.dirs["cpuset"]):
        assert read(d + "/cpuset.cpus") == read("/sys/fs/cgroup/cpuset/cpuset.cpus")
        assert read(d + "/cpuset.mems") == read("/sys/fs/cgroup/cpuset/cpuset.mems")
    child = spawn(ticker)
    cg.add_process(child.pid)


def test_memory_limit_oom_kills_and_is_reported(make_cgroup, spawn):
    cg = make_cgroup({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    assert not cg.oom_killed()
    child = spawn(allocate(128))
    cg.add_process(child.pid)
    child.go()
    child.wait()
    assert child.killed_by == signal.SIGKILL
    assert cg.oom_killed()
    stats = cg.stats()
    assert stats["memory"]["oomKill"] >= 1
    assert stats["memory"]["usage"]["limit"] == 32 * MiB
    assert stats["memory"]["usage"]["max"] > 30 * MiB  # it went right up to the limit


def test_disable_oom_killer_makes_tasks_wait_instead(make_cgroup, spawn):
    cg = make_cgroup({"memory": {"limit": 32 * MiB, "swap": 32 * MiB,
                                 "disableOOMKiller": True}})
    child = spawn(allocate(128))
    cg.add_process(child.pid)
    child.go()
    oom_control = cg.dirs["memory"] + "/memory.oom_control"
    assert wait_for(lambda: "under_oom 1" in read(oom_control))
    assert child.poll() is None and not cg.oom_killed()
    cg.kill_all(signal.SIGKILL)  # a task waiting on OOM still dies to SIGKILL
    child.wait()
    assert child.killed_by == signal.SIGKILL


def test_pids_limit_stops_a_fork_bomb(make_cgroup, spawn):
    cg = make_cgroup({"pids": {"limit": 5}})
    child = spawn(fork_many(20))
    cg.add_process(child.pid)
    child.go()
    child.wait()
    report = child.read_report()
    assert f"fork failed errno={errno.EAGAIN}" in report
    assert int(report.split()[0]) == 4  # the child itself plus 4
    assert int(read(cg.dirs["pids"] + "/pids.events").split()[1]) >= 1
    assert cg.stats()["pids"]["limit"] == 5


def test_cpu_quota_throttles(make_cgroup, spawn):
    cg = make_cgroup({"cpu": {"quota": 10000, "period": 100000}})
    child = spawn(burn_cpu(0.1))
    cg.add_process(child.pid)
    child.go()
    child.wait()
    assert child.exit_code == 0
    stat = common.read_kv(cg.dirs["cpu"] + "/cpu.stat")
    assert stat["nr_throttled"] > 0 and stat["throttled_time"] > 0
    throttling = cg.stats()["cpu"]["throttling"]
    assert throttling["throttledPeriods"] == stat["nr_throttled"]
    assert cg.stats()["cpu"]["usage"]["total"] >= 50_000_000  # ns: the 0.1 s burnt, roughly


def test_freeze_and_thaw(make_cgroup, spawn):
    cg = make_cgroup()
    child = spawn(ticker)
    cg.add_process(child.pid)
    child.go()
    assert wait_for(lambda: drain(child.out_r, 0.05))
    cg.freeze()
    assert cg.is_frozen()
    assert read(cg.dirs["freezer"] + "/freezer.state") == "FROZEN"
    drain(child.out_r)
    assert drain(child.out_r, 0.2) == b""        # nothing runs while frozen
    cg.thaw()
    assert not cg.is_frozen()
    assert wait_for(lambda: drain(child.out_r, 0.05))


@pytest.mark.parametrize("path", ["cgroup.kill", "freezer loop"])
def test_kill_all_leaves_no_escapee(make_cgroup, spawn, path):
    cg = make_cgroup({"pids": {"limit": 64}})
    if path == "freezer loop":
        cg.unified = None  # as on a pure v1 host: no cgroup.kill
    elif not (cg.unified and os.path.exists(cg.unified + "/cgroup.kill")):
        pytest.skip("no cgroup2 mount with cgroup.kill here")
    child = spawn(fork_tree)
    cg.add_process(child.pid)
    child.go()
    assert wait_for(lambda: len(cg.pids()) >= 20)
    cg.kill_all(signal.SIGKILL)
    assert cg.pids() == []
    child.wait()
    assert child.killed_by == signal.SIGKILL


def test_kill_all_with_a_catchable_signal(make_cgroup, spawn):
    cg = make_cgroup()
    children = [spawn(ticker) for _ in range(3)]
    for c in children:
        cg.add_process(c.pid)
        c.go()
    cg.kill_all(signal.SIGTERM)
    for c in children:
        c.wait()
        assert c.killed_by == signal.SIGTERM
    assert not cg.is_frozen()


def test_kill_all_on_a_paused_container(make_cgroup, spawn):
    cg = make_cgroup()
    term, kill = spawn(ticker), spawn(ticker)
    for c in (term, kill):
        cg.add_process(c.pid)
        c.go()
    cg.freeze()
    cg.kill_all(signal.SIGTERM)       # delivered, but the container stays paused
    assert cg.is_frozen() and term.poll() is None
    cg.kill_all(signal.SIGKILL)       # `delete --force` of a paused container
    for c in (term, kill):
        c.wait()
    assert cg.pids() == []


def test_destroy_removes_everything_and_is_idempotent(make_cgroup, spawn):
    cg = make_cgroup({"pids": {"limit": 10}}, path=f"{TEST_PARENT}/own-parent/leaf")
    os.mkdir(cg.dirs["memory"] + "/nested")  # a container may make its own sub-cgroups
    child = spawn(ticker)
    cg.add_process(child.pid)
    with pytest.raises(CgroupError, match="busy"):
        cg.destroy()  # a live process keeps it
    cg.kill_all(signal.SIGKILL)
    cg.destroy()
    dirs = list(cg.dirs.values()) + ([cg.unified] if cg.unified else [])
    for d in dirs:
        assert not os.path.exists(d)
        assert not os.path.exists(os.path.dirname(d))  # the parent create() made
    cg.destroy()  # already gone: fine
    assert not cg.exists()
    cg.kill_all(signal.SIGKILL)  # `delete --force` retried after a partial delete
    assert cg.pids() == [] and not cg.is_frozen() and not cg.oom_killed()


def test_a_rejected_value_names_file_and_value_and_leaves_nothing(make_cgroup):
    cg = make_cgroup(create=False)
    with pytest.raises(CgroupError) as e:
        cg.create({"pids": {"limit": 10}, "cpu": {"quota": 500, "period": 100000}})
    assert "cpu.cfs_quota_us" in str(e.value) and '"500"' in str(e.value)
    assert not cg.exists()
    assert not os.path.exists(os.path.dirname(cg.dirs["pids"]))


def test_update_changes_limits_of_a_running_cgroup(make_cgroup, spawn):
    cg = make_cgroup({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}, "pids": {"limit": 10}})
    child = spawn(ticker)
    cg.add_process(child.pid)
    mem = cg.dirs["memory"]
    # shrink: limit must go before memsw; grow: memsw before limit
    cg.update({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    assert read(mem + "/memory.limit_in_bytes") == str(32 * MiB)
    assert read(mem + "/memory.memsw.limit_in_bytes") == str(32 * MiB)
    cg.update({"memory": {"limit": 128 * MiB, "swap": 256 * MiB}, "pids": {"limit": 3},
               "cpu": {"quota": 30000}})
    assert read(mem + "/memory.limit_in_bytes") == str(128 * MiB)
    assert read(mem + "/memory.memsw.limit_in_bytes") == str(256 * MiB)
    assert read(cg.dirs["pids"] + "/pids.max") == "3"
    assert read(cg.dirs["cpu"] + "/cpu.cfs_quota_us") == "30000"
    cg.update({"memory": {"limit": -1}, "pids": {"limit": -1}})
    assert read(cg.dirs["pids"] + "/pids.max") == "max"
    assert int(read(mem + "/memory.memsw.limit_in_bytes")) > 1 << 60  # unlimited
    assert child.poll() is None


def test_realtime_budget_is_granted_through_new_parents(make_cgroup):
    cg = make_cgroup({"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000}},
                     path=f"{TEST_PARENT}/rt/x")
    assert read(cg.dirs["cpu"] + "/cpu.rt_runtime_us") == "10000"
    assert read(os.path.dirname(cg.dirs["cpu"]) + "/cpu.rt_runtime_us") == "10000"


def test_hugepage_limits_use_the_hybrid_cgroup2_hugetlb(make_cgroup):
    cg = make_cgroup(create=False)
    hug = cg._hugetlb_dir()
    if hug is None or "2MB" not in common.hugepage_sizes():
        pytest.skip("no hugetlb controller (v1 or cgroup2) with 2MB pages")
    cg.create({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
    if hug == cg.unified:
        assert read(cg.unified + "/hugetlb.2MB.max") == str(4 * MiB)
    else:
        assert read(hug + "/hugetlb.2MB.limit_in_bytes") == str(4 * MiB)
    assert "2MB" in cg.stats()["hugetlb"]
    with pytest.raises(CgroupError, match="hugepage size"):
        cg.update({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})


def test_state_round_trip(make_cgroup, spawn):
    cg = make_cgroup({"pids": {"limit": 7}})
    child = spawn(ticker)
    cg.add_process(child.pid)
    again = cgroups.load_cgroup(json.loads(json.dumps(cg.to_dict())))
    assert again.pids() == [child.pid]
    assert again.stats()["pids"]["limit"] == 7
    assert again.created == cg.created


def test_stats_have_runc_shape(make_cgroup):
    stats = make_cgroup({"memory": {"limit": 64 * MiB}}).stats()
    assert set(stats) >= {"cpu", "memory", "pids", "blkio"}
    assert set(stats["cpu"]) == {"usage", "throttling"}
    assert set(stats["memory"]["usage"]) == {"limit", "usage", "max", "failcnt"}
    json.dumps(stats)


RELATIVE_CHILD = r"""
import json, os, sys
from minirun import cgroups
from minirun.cgroups import common
parent = sys.argv[1]
for mount, _ in set(common.Layout.read().v1.values()):
    # join the test parent in every hierarchy (cpuset needs cpus/mems first)
    d = mount + parent
    os.makedirs(d, exist_ok=True)
    if os.path.exists(d + "/cpuset.cpus"):
        for f in ("cpuset.cpus", "cpuset.mems"):
            open(d + "/" + f, "w").write(open(mount + "/" + f).read())
    open(d + "/cgroup.procs", "w").write(str(os.getpid()))
cg = cgroups.open_cgroup("rel", "testdir/cgrouptest/container")
cg.create({"pids": {"limit": 9}})
cg.add_process(os.getpid())
own = open("/proc/self/cgroup").read()
print(json.dumps({"cg": cg.to_dict(), "own": own}))
"""


def test_relative_path_is_under_the_callers_cgroup(make_cgroup):
    """A relative cgroupsPath lands under the caller's own cgroup, where the
    OCI conformance suite looks for it: mount + /proc/<pid>/cgroup entry, which
    must contain the configured path."""
    base = f"{TEST_PARENT}/caller"
    out = subprocess.run([sys.executable, "-c", RELATIVE_CHILD, base], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    cg = cgroups.load_cgroup(result["cg"])
    try:
        assert cg.path == base + "/testdir/cgrouptest/container"
        assert read(cg.dirs["pids"] + "/pids.max") == "9"
        own = common.parse_proc_cgroup(result["own"])
        for ctrl in ("pids", "memory", "cpu", "devices"):
            assert "testdir/cgrouptest/container" in own[ctrl]
            assert os.path.isdir(cg.mounts[ctrl] + own[ctrl])
    finally:
        cg.destroy()
        for mount in set(cg.mounts.values()):
            for d in (mount + base + "/testdir", mount + base):
                common.rmdir_retry(d)
    assert not cg.exists()


def test_absolute_path_is_where_the_conformance_suite_reads_it(make_cgroup):
    # runtime-tools: filepath.Join(<mount dir of the first cgroup mount>, "memory", path)
    cg = make_cgroup({"memory": {"limit": 50593792}}, path=f"{TEST_PARENT}/cgrouptest")
    assert read(f"/sys/fs/cgroup/memory{TEST_PARENT}/cgrouptest/memory.limit_in_bytes") == \
        "50593792"


def test_containers_sharing_a_parent_can_come_and_go_concurrently():
    """One container's cleanup removes the shared parent it made while
    another is being created inside it: creation must recover."""
    import threading

    errors = []

    def churn(tag):
        for i in range(15):
            cg = cgroups.open_cgroup(f"{tag}{i}", f"{TEST_PARENT}/race/{tag}{i}")
            try:
                cg.create({"pids": {"limit": 5}, "cpu": {"cpus": "0"}})
                cg.destroy()
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(f"{tag}{i}: {e}")
                try:
                    cg.destroy()
                except CgroupError:
                    pass

    threads = [threading.Thread(target=churn, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for mount in set(common.Layout.read().v1[c][0] for c in ("pids", "cpuset")):
        for d in (mount + TEST_PARENT + "/race", mount + TEST_PARENT):
            common.rmdir_retry(d)  # a parent the other thread still used may remain
