"""Real containers under the cgroup v2 driver, run inside the QEMU guest
(tests/cgroups/run_v2_in_vm.sh runs this file next to test_cgroup_v2_vm.py)
or directly on a cgroup v2 host.

The library-level proof is test_cgroup_v2_vm.py; this one shows the runtime
itself applying linux.resources on v2: an OOM kill at memory.max seen by
`events`, pids.max stopping a fork loop, cpu.max throttling, pause/resume
through cgroup.freeze, and delete --force emptying and removing the cgroup.
Few containers: Python is 20-40x slower under emulation.
"""
import json
import os
import time

import pytest

from minirun import cgroups

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(cgroups.detect() != "v2",
                                 reason="needs cgroup v2 (test_v2_suite_in_guest runs it in a guest)")]


def _stats(runtime, cid):
    return json.loads(runtime("events", "--stats", cid, timeout=120).stdout)["data"]


def _wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_container_limits_on_v2(runtime, bundle, cid):
    bundle.process["args"] = ["sleep", "600"]
    bundle.linux["resources"] = {"memory": {"limit": 24 << 20, "swap": 24 << 20},
                                 "pids": {"limit": 12},
                                 "cpu": {"quota": 10000, "period": 100000}}
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid, timeout=120)
    pid = runtime.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        path = "/sys/fs/cgroup" + f.read().strip().split("::", 1)[1]
    with open(os.path.join(path, "memory.max")) as f:
        assert f.read().strip() == str(24 << 20)
    with open(os.path.join(path, "cpu.max")) as f:
        assert f.read().split() == ["10000", "100000"]

    oom = runtime("exec", cid, "tail", "/dev/zero", check=False, timeout=120)
    assert oom.returncode == 128 + 9
    assert _stats(runtime, cid)["memory"]["oomKill"] >= 1

    runtime("exec", "--detach", cid, "sh", "-c", "while :; do sleep 60 & done 2>/dev/null",
            timeout=120)
    assert _wait_for(lambda: _stats(runtime, cid)["pids"]["current"] >= 11)
    assert _stats(runtime, cid)["pids"]["current"] <= 12

    runtime("exec", "--detach", cid, "sh", "-c", "while :; do :; done", check=False,
            timeout=120)
    assert _wait_for(lambda: _stats(runtime, cid)["cpu"]["throttling"]["throttledPeriods"] > 0)

    runtime("pause", cid, timeout=120)
    with open(os.path.join(path, "cgroup.freeze")) as f:
        assert f.read().strip() == "1"
    assert runtime.state(cid)["status"] == "paused"
    runtime("resume", cid, timeout=120)
    assert runtime.state(cid)["status"] == "running"

    runtime("delete", "--force", cid, timeout=120)
    assert not os.path.exists(path), "delete removes the container's cgroup"
