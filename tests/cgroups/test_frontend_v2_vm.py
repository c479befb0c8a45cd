"""The Docker-like front end on a cgroup v2 host: its main scenarios, through
the `minirun` CLI, run in the QEMU guest by run_v2_in_vm.sh (or directly on a
v2 host).  cgroup v2 hosts are the common case (systemd's default), while the
rest of tests/frontend runs on whatever the development host has.

One test and few minirun calls, because each costs several seconds under
emulation:
  web  run -d -p --restart always: answers on the published port, fails, is
       restarted (same filesystem, same port), answers again; stop (and it
       stays stopped), rm
  oom  run --memory 8m: tail is OOM-killed, exit status 137, inspect says
       OOMKilled; rm
Teardown removes what is left and fails the test if anything remains
(records, mounts, runtime state, cgroups, veths, bridge, nftables table).
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from minirun import cgroups

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "frontend"))
from fe_helpers import Docker, build_layout, free_port  # noqa: E402

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(cgroups.detect() != "v2",
                                 reason="needs cgroup v2 (test_v2_suite_in_guest runs it in a "
                                        "guest)")]
SLOW = 600  # seconds any one CLI call may take in an emulated guest


@pytest.fixture
def docker():
    base = tempfile.mkdtemp(prefix="mrv2-")
    d = Docker(base)
    try:
        d.load(build_layout(os.path.join(base, "image")), "busybox:latest")
        yield d
    finally:
        leftovers = _teardown(d)
        subprocess.run(["rm", "-rf", base], check=False)
    assert not leftovers, f"left behind: {leftovers}"


def _teardown(d):
    """What fe_helpers.Docker.cleanup does, with patience for an emulated CPU."""
    from minirun import network

    ids = sorted(d.ids() | d.seen)
    if d.ids():
        d("rm", "-f", *sorted(d.ids()), check=False, timeout=SLOW)
    pid = d.monitor_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        _wait(lambda: d.monitor_pid() is None, 120)
    leftovers = d.leftovers(ids)
    store = network.Store(d.root)
    network.purge(d.root)
    if subprocess.run(["nft", "list", "table", "ip", store.table],
                      capture_output=True).returncode == 0:
        leftovers.append(f"nftables table {store.table}")
    if os.path.exists(f"/sys/class/net/{store.default_bridge}"):
        leftovers.append(f"bridge {store.default_bridge}")
    return leftovers


def _wait(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return None


def _read_port(port):
    """What the container sends on 127.0.0.1:port before closing; None if
    nothing listens there (yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return None
    return data.decode().strip() or None


# First start: leave a mark in the container's own filesystem, answer once,
# fail.  Every later start: answer with a fresh id until stopped.
WEB = ('if [ -e /started-before ]; then '
       'while :; do echo "again $(cat /proc/sys/kernel/random/uuid)" | nc -l -p 8080; done; fi; '
       'touch /started-before; echo first | nc -l -p 8080; exit 3')


def test_run_publish_restart_oom_stop_rm(docker):
    port = free_port()
    web_id = docker("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:8080",
                    "--restart", "always", "busybox", "sh", "-c", WEB, timeout=SLOW).stdout.strip()
    docker.seen.add(web_id)
    assert len(web_id) == 64
    assert os.path.isdir(f"/sys/fs/cgroup/minirun/{web_id}")
    # --memory, alongside (the guest has two CPUs): memory.max kills tail
    oom = docker.popen("run", "--name", "oom", "--memory", "8m", "busybox", "tail", "/dev/zero",
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    try:
        # -p: the published port on the guest's loopback reaches the container
        assert _wait(lambda: _read_port(port), 120) == "first"
        # --restart always: started again, same filesystem, same published port
        again = _wait(lambda: _read_port(port), 300)
        assert again and again.startswith("again "), again
        _, err = oom.communicate(timeout=SLOW)
    finally:
        if oom.poll() is None:
            oom.kill()
            oom.wait()
    assert oom.returncode == 137, err   # run reports the OOM kill as 128 + SIGKILL

    # stop: SIGTERM (ignored by sh as PID 1), SIGKILL after 1 s; no restart after it
    docker("stop", "-t", "1", "web", timeout=SLOW)
    assert _read_port(port) is None
    assert not os.path.exists(f"/sys/fs/cgroup/minirun/{web_id}")

    fmt = ("{{.Name}} {{.State.Status}} {{.State.OOMKilled}} {{.State.ExitCode}} "
           "{{.RestartCount}} {{.HostConfig.Memory}} {{.Id}}")
    states = docker("inspect", "-f", fmt, "web", "oom", timeout=SLOW).stdout.split("\n")
    docker.seen.add(states[1].split()[-1])
    assert states[0] == f"/web exited false 137 1 0 {web_id}"
    assert states[1].startswith(f"/oom exited true 137 0 {8 << 20} ")

    # rm of stopped containers, no --force needed
    docker("rm", "web", "oom", timeout=SLOW)
    assert docker.ids() == set()
