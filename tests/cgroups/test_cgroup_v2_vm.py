"""cgroup v2 proof, run inside a QEMU guest (pure v2, Debian kernel).

A cgroup v1/hybrid host cannot prove the v2 driver, so on such a host the one
test `test_v2_suite_in_guest` boots the guest of tests/vm/minivm.py and runs
the v2 tests there (through tests/cgroups/run_v2_in_vm.sh); in the guest, or
on a v2 host, the other tests run directly and that one is skipped.  All are
marked `vm`: `pytest -m "not vm"` leaves them out.

The guest emulates its CPU (20-40x slower Python), so: one file, children
forked rather than started, small allocations.
"""
import errno
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cg_helpers import (TEST_PARENT, allocate, burn_cpu, drain, fork_many, fork_tree, read,
                        ticker, wait_for)
from minirun import cgroups
from minirun.cgroups import common
from minirun.errors import CgroupError

pytestmark = pytest.mark.vm
in_guest = pytest.mark.skipif(cgroups.detect() != "v2",
                              reason="needs cgroup v2 (test_v2_suite_in_guest runs it in a guest)")
MiB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.skipif(cgroups.detect() == "v2", reason="already in a cgroup v2 system")
def test_v2_suite_in_guest():
    """Boot the v2 guest and run the v2 tests there."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
    import minivm

    try:
        minivm.prepare()  # fetches the kernel and builds the initramfs on first use
    except minivm.Unavailable as e:
        pytest.skip(f"QEMU cannot run a guest here: {e}")
    env = dict(os.environ, MINIRUN_PYTHON=sys.executable)
    # Its own session: a timeout here takes QEMU down with the script.
    proc = subprocess.Popen([os.path.join(HERE, "run_v2_in_vm.sh")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    tail = (stdout + stderr)[-6000:]
    assert proc.returncode == 0, tail
    passed = re.search(r"(\d+) passed", stdout)
    assert passed and int(passed.group(1)) >= 10, tail
    # the only test skipped in the guest is this one
    skips = [line for line in stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("already in a cgroup v2 system" in line for line in skips), tail


@in_guest
def test_create_enables_controllers_and_writes_v2_files(make_cgroup):
    cg = make_cgroup({
        "memory": {"limit": 64 * MiB, "reservation": 16 * MiB, "swap": 96 * MiB},
        "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "unified": {"memory.high": str(48 * MiB)},
    }, path=f"{TEST_PARENT}/mid/leaf")
    d = cg.dir
    assert read(d + "/memory.max") == str(64 * MiB)
    assert read(d + "/memory.swap.max") == str(32 * MiB)      # memory+swap - memory
    assert read(d + "/memory.low") == str(16 * MiB)
    assert read(d + "/memory.high") == str(48 * MiB)          # unified wins last
    assert read(d + "/cpu.weight") == "100"                   # shares 1024 -> weight 100
    assert read(d + "/cpu.max") == "50000 200000"
    assert read(d + "/cpuset.cpus") == "0"
    assert read(d + "/pids.max") == "42"
    # every ancestor delegates; the leaf, which holds the processes, does not
    for ancestor in (common.CGROUP_ROOT + TEST_PARENT, os.path.dirname(d)):
        enabled = read(ancestor + "/cgroup.subtree_control").split()
        assert {"cpu", "cpuset", "memory", "pids", "io"} <= set(enabled), ancestor
    assert read(d + "/cgroup.subtree_control") == ""
    cg.update({"memory": {"limit": 32 * MiB}, "cpu": {"quota": -1}, "pids": {"limit": -1}})
    assert read(d + "/memory.max") == str(32 * MiB)
    assert read(d + "/cpu.max") == "max 200000"
    assert read(d + "/pids.max") == "max"


@in_guest
def test_memory_max_oom_kill_is_detected(make_cgroup, spawn):
    cg = make_cgroup({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}})
    child = spawn(allocate(48))
    cg.add_process(child.pid)
    child.go()
    child.wait(120)
    assert child.killed_by == signal.SIGKILL
    assert cg.oom_killed()
    assert cg.stats()["memory"]["oomKill"] >= 1


@in_guest
def test_pids_max_stops_forks(make_cgroup, spawn):
    cg = make_cgroup({"pids": {"limit": 4}})
    child = spawn(fork_many(8))
    cg.add_process(child.pid)
    child.go()
    child.wait(120)
    report = child.read_report()
    assert f"3 fork failed errno={errno.EAGAIN}" in report, report
    assert common.read_kv(cg.dir + "/pids.events")["max"] >= 1


@in_guest
def test_cpu_max_throttles(make_cgroup, spawn):
    cg = make_cgroup({"cpu": {"quota": 10000, "period": 100000}})
    child = spawn(burn_cpu(0.05))
    cg.add_process(child.pid)
    child.go()
    child.wait(120)
    stat = common.read_kv(cg.dir + "/cpu.stat")
    assert stat["nr_throttled"] > 0 and stat["throttled_usec"] > 0
    assert cg.stats()["cpu"]["throttling"]["throttledPeriods"] == stat["nr_throttled"]


@in_guest
def test_io_max_throttles_the_guest_disk(make_cgroup, spawn):
    if not os.path.exists("/sys/block/vda/dev"):
        pytest.skip("no --disk attached")
    major, minor = (int(x) for x in read("/sys/block/vda/dev").split(":"))
    cg = make_cgroup({"blockIO": {"throttleWriteBpsDevice": [
        {"major": major, "minor": minor, "rate": MiB}]}})
    assert read(cg.dir + "/io.max") == f"{major}:{minor} rbps=max wbps={MiB} riops=max wiops=max"

    def write_direct(out):
        import mmap
        buf = mmap.mmap(-1, MiB)  # page-aligned, as O_DIRECT wants
        buf.write(b"x" * MiB)
        fd = os.open("/dev/vda", os.O_WRONLY | os.O_DIRECT)
        start = time.monotonic()
        for _ in range(3):
            os.write(fd, buf)
        os.close(fd)
        os.write(out, f"{time.monotonic() - start:.2f}".encode())
        return 0

    child = spawn(write_direct)
    cg.add_process(child.pid)
    child.go()
    child.wait(120)
    elapsed = float(child.read_report())
    # 3 MiB at 1 MiB/s: about 2 s once the first second's budget is spent
    assert elapsed > 1.5, elapsed
    written = sum(e["value"] for e in cg.stats()["blkio"]["ioServiceBytesRecursive"]
                  if e["op"] == "Write" and (e["major"], e["minor"]) == (major, minor))
    assert written >= 3 * MiB


@in_guest
def test_freeze_and_thaw(make_cgroup, spawn):
    cg = make_cgroup()
    child = spawn(ticker)
    cg.add_process(child.pid)
    child.go()
    assert wait_for(lambda: drain(child.out_r, 0.05))
    cg.freeze()
    assert cg.is_frozen() and common.read_kv(cg.dir + "/cgroup.events")["frozen"] == 1
    drain(child.out_r)
    assert drain(child.out_r, 0.3) == b""
    cg.thaw()
    assert not cg.is_frozen()
    assert wait_for(lambda: drain(child.out_r, 0.05))
    # kill --all of a paused container does not resume it; a signal that is
    # fatal by default (SIGTERM here) kills even a frozen task on v2
    cg.freeze()
    cg.kill_all(signal.SIGTERM)
    assert cg.is_frozen()
    cg.kill_all(signal.SIGKILL)
    child.wait()
    assert child.killed_by in (signal.SIGTERM, signal.SIGKILL) and cg.pids() == []


@in_guest
def test_cgroup_kill_leaves_no_escapee(make_cgroup, spawn):
    cg = make_cgroup({"pids": {"limit": 24}})
    child = spawn(fork_tree)
    cg.add_process(child.pid)
    child.go()
    assert wait_for(lambda: len(cg.pids()) >= 10, 60)
    cg.kill_all(signal.SIGKILL)
    assert cg.pids() == []
    assert common.read_kv(cg.dir + "/cgroup.events")["populated"] == 0
    child.wait()
    assert child.killed_by == signal.SIGKILL


@in_guest
def test_device_rules_are_enforced_by_ebpf(make_cgroup, spawn):
    cg = make_cgroup({"devices": [{"allow": False, "access": "rwm"}]})  # + the defaults

    def try_open(out):
        for path in ("/dev/null", "/dev/zero", "/dev/vda" if os.path.exists("/dev/vda")
                     else "/dev/mem"):
            try:
                os.close(os.open(path, os.O_RDONLY))
                os.write(out, f"{path}=ok ".encode())
            except OSError as e:
                os.write(out, f"{path}={errno.errorcode[e.errno]} ".encode())
        return 0

    child = spawn(try_open)
    cg.add_process(child.pid)
    child.go()
    child.wait(60)
    report = child.read_report().split()
    assert report[0] == "/dev/null=ok"      # a default device
    assert report[1] == "/dev/zero=ok"
    assert report[2].endswith("=EPERM")      # everything else is denied


@in_guest
def test_rejected_value_leaves_nothing(make_cgroup):
    cg = make_cgroup(create=False, path=f"{TEST_PARENT}/bad/x")
    with pytest.raises(CgroupError) as e:
        cg.create({"pids": {"limit": 5}, "cpu": {"quota": 500, "period": 100000}})
    assert "cpu.max" in str(e.value) and '"500 100000"' in str(e.value)
    assert not os.path.exists(os.path.dirname(cg.dir))


@in_guest
def test_destroy_removes_everything(make_cgroup, spawn):
    cg = make_cgroup({"pids": {"limit": 5}}, path=f"{TEST_PARENT}/gone/leaf")
    os.mkdir(cg.dir + "/nested")
    child = spawn(ticker)
    cg.add_process(child.pid)
    cg.kill_all(signal.SIGKILL)
    cg.destroy()
    assert not os.path.exists(os.path.dirname(cg.dir))
    cg.destroy()


@in_guest
def test_from_a_session_scope_relative_and_default_paths(spawn):
    """A root shell sits in a leaf like user.slice/session-1.scope, which holds
    processes and so cannot delegate controllers.  A relative cgroupsPath goes
    under that leaf's parent (as runc does); the default goes to /minirun/<id>."""
    slice_dir = common.CGROUP_ROOT + TEST_PARENT + "/user.slice"
    scope = slice_dir + "/session-1.scope"
    os.makedirs(scope)
    default_id = "d" + str(os.getpid())
    made = []

    def in_scope(out):
        import json

        with open(scope + "/cgroup.procs", "w") as f:
            f.write("0")
        layout = common.Layout.read()  # this process's own cgroup, not the parent's
        rel = cgroups.open_cgroup("rel", "sub/x", layout=layout)
        rel.create({"pids": {"limit": 3}, "memory": {"limit": 32 * MiB}})
        default = cgroups.open_cgroup(default_id, None, layout=layout)
        default.create({"pids": {"limit": 4}})
        os.write(out, json.dumps([rel.to_dict(), default.to_dict()]).encode())
        return 0

    child = spawn(in_scope)
    child.go()
    child.wait(120)
    import json

    report = child.read_report()
    try:
        assert child.exit_code == 0, report
        made = [cgroups.load_cgroup(d) for d in json.loads(report)]
        rel, default = made
        assert rel.dir == slice_dir + "/sub/x"
        assert read(rel.dir + "/pids.max") == "3"
        assert "memory" in read(slice_dir + "/cgroup.subtree_control").split()
        assert default.dir == f"{common.CGROUP_ROOT}/minirun/{default_id}"
        assert read(default.dir + "/pids.max") == "4"
    finally:
        for cg in made:
            cg.destroy()
        for d in (scope, slice_dir + "/sub", slice_dir):
            common.rmdir_retry(d)
    assert not os.path.exists(slice_dir + "/sub")
