"""linux.resources enforced on real containers (this host: cgroup v1),
reported through `events --stats`; the cgroup is gone after delete."""
import json
import os
import subprocess
import time


def _stats(runtime, cid):
    return json.loads(runtime("events", "--stats", cid).stdout)["data"]


def _sleeper(runtime, bundle, cid, script, resources):
    bundle.process["args"] = ["sh", "-c", script]
    bundle.linux["resources"] = resources
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)


def _wait_for(predicate, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_memory_limit_oom_kills_and_events_report_it(runtime, bundle, cid):
    # tail buffers /dev/zero (no newline ever) until the OOM killer stops it.
    _sleeper(runtime, bundle, cid, "tail /dev/zero; echo tail-died > /dev/shm/x; sleep 300",
             {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    assert _wait_for(lambda: _stats(runtime, cid)["memory"]["oomKill"] >= 1)
    data = _stats(runtime, cid)
    assert data["memory"]["usage"]["limit"] == 32 << 20
    out = runtime("exec", cid, "cat", "/dev/shm/x")
    assert out.stdout == "tail-died\n"
    assert runtime.state(cid)["status"] == "running"


def test_oom_of_the_init_stops_the_container(runtime, bundle, cid):
    bundle.process["args"] = ["tail", "/dev/zero"]
    bundle.linux["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    bundle.save()
    out = runtime("run", "--bundle", bundle.path, cid, check=False)
    assert out.returncode == 128 + 9, "killed by the OOM killer (SIGKILL)"


def test_pids_limit_stops_a_fork_bomb(runtime, bundle, cid):
    _sleeper(runtime, bundle, cid, "sleep 300", {"pids": {"limit": 16}})
    # The bomb runs as an exec'd process, which joins the container's cgroup.
    bomb = runtime("exec", "--detach", cid, "sh", "-c",
                   "while :; do sleep 300 & done 2>/dev/null")
    assert bomb.returncode == 0
    assert _wait_for(lambda: _stats(runtime, cid)["pids"]["current"] >= 16)
    time.sleep(0.3)
    data = _stats(runtime, cid)
    assert data["pids"]["current"] <= 16 and data["pids"]["limit"] == 16
    # The bomb keeps retrying fork, so one slot may be a fork in flight.
    assert 14 <= len(json.loads(runtime("ps", "--format", "json", cid).stdout)) <= 16
    assert runtime.state(cid)["status"] == "running"


def test_cpu_quota_throttles(runtime, bundle, cid):
    _sleeper(runtime, bundle, cid, "while :; do :; done",
             {"cpu": {"quota": 10000, "period": 100000}})
    assert _wait_for(lambda: _stats(runtime, cid)["cpu"]["throttling"]["throttledPeriods"] >= 3)
    pid = runtime.state(cid)["pid"]
    # ~10% of one CPU: far below a free-running loop.
    def cpu_ticks():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    before = cpu_ticks()
    time.sleep(1.0)
    used = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
    assert used < 0.3, f"used {used:.2f}s of CPU in 1s under a 10% quota"


def test_cgroup_removed_on_delete(runtime, bundle, cid):
    _sleeper(runtime, bundle, cid, "sleep 300", {"pids": {"limit": 100}})
    with open(f"/proc/{runtime.state(cid)['pid']}/cgroup") as f:
        paths = [line.rstrip().split(":", 2) for line in f]
    pids_path = next(p for _, ctrl, p in paths if ctrl == "pids")
    assert os.path.isdir("/sys/fs/cgroup/pids" + pids_path)
    runtime("delete", "--force", cid)
    assert not os.path.exists("/sys/fs/cgroup/pids" + pids_path)


def test_rejected_limit_names_file_and_value_and_leaves_nothing(runtime, bundle, cid):
    bundle.linux["resources"] = {"cpu": {"cpus": "999"}}
    bundle.save()
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0 and "cpuset.cpus" in out.stderr and "999" in out.stderr
    assert runtime.ids() == []
    leftover = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "3", "-name", cid],
                              capture_output=True, text=True).stdout
    assert leftover == ""
