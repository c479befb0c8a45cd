"""`minirun --trace`: the kernel steps of a real run of the demo image, in order.

The trace is what makes minirun a teaching tool, so these tests pin down its
*sequence* (not just that it prints something): the cgroup before the fork,
the id maps between the two stages, the mounts before pivot_root, the
capability drops before no_new_privs, seccomp right before the final execve.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from minirun_testlib import MINIRUN, REPO, Runtime

# [minirun PID] CALL DETAIL  # WHY [MAN(N)]  -- every line, whole.
LINE = re.compile(r"^\[minirun (\d+)\] (\S+(?: RTM_\w+)?)(?: (.*?))?(?:  # (.*?))?(?: \[([^\]]+)\])?$")
DEMO_NAMESPACES = ("CLONE_NEWNS", "CLONE_NEWCGROUP", "CLONE_NEWUTS", "CLONE_NEWIPC",
                   "CLONE_NEWPID", "CLONE_NEWNET")


@pytest.fixture(scope="module")
def demo():
    """The demo image exactly as `images/build_busybox.py` ships it (in a
    directory others may traverse: the user namespace test maps root away)."""
    out = tempfile.mkdtemp(prefix="minirun-teach-")
    try:
        os.chmod(out, 0o755)
        subprocess.run([sys.executable, os.path.join(REPO, "images", "build_busybox.py"),
                        "--out", out], check=True, capture_output=True)
        yield os.path.join(out, "busybox")
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(str(tmp_path / "state"), str(tmp_path / "log.json"))
    yield runtime
    runtime.cleanup()


def parse(stderr):
    steps = []
    for text in stderr.splitlines():
        m = LINE.match(text)
        assert m, f"not a whole trace line (interleaved?): {text!r}"
        pid, call, detail, why, man = m.groups()
        steps.append({"pid": int(pid), "call": call, "detail": detail or "", "why": why or "",
                      "man": man or "", "text": text})
    return steps


def in_order(steps, expected):
    """Find each (call, regex on the line) in order; returns the matched steps."""
    found, i = [], 0
    for call, pattern in expected:
        while i < len(steps) and not (steps[i]["call"] == call and
                                      re.search(pattern, steps[i]["text"])):
            i += 1
        assert i < len(steps), (f"step {call} /{pattern}/ missing or out of order after "
                                f"{found[-1]['text'] if found else 'the start'}:\n"
                                + "\n".join(s["text"] for s in steps))
        found.append(steps[i])
        i += 1
    return found


def traced_run(rt, bundle, cid):
    result = rt("--trace", "run", "--bundle", bundle, cid, check=False)
    assert result.returncode == 0, result.stderr
    return result, parse(result.stderr)


def test_demo_run_traces_every_kernel_step_in_order(rt, demo):
    cid = "tr" + uuid.uuid4().hex[:10]
    result, steps = traced_run(rt, demo, cid)
    assert result.stdout == "Hello from minirun! I am pid 1 on host minirun, uid 0.\n"

    found = in_order(steps, [
        ("mkdir", rf"/sys/fs/cgroup/.*/{cid} "),
        ("memfd_create", r"minirun-exec .*F_SEAL_WRITE"),
        ("fork", r"stage 1"),
        ("write", rf"/{cid}/cgroup\.procs <- "),
        ("unshare", r"CLONE_NEW"),
        ("fork", r"stage 2"),
        ("prctl", r"PR_SET_DUMPABLE 0"),
        ("ioctl", r"SIOCSIFFLAGS lo IFF_UP"),
        ("mount", r"none -> / .*MS_REC\|MS_SLAVE"),
        ("mount", r"/rootfs -> \S+/rootfs .*MS_BIND\|MS_REC"),
        ("mount", r"proc -> /proc type=proc"),
        ("mount", r"tmpfs -> /dev type=tmpfs .*MS_NOSUID"),
        ("mount", r"devpts -> /dev/pts type=devpts"),
        ("mount", r"sysfs -> /sys type=sysfs flags=MS_RDONLY"),
        ("mknod", r"/dev/null 1:3"),
        ("symlink", r"/dev/fd->/proc/self/fd"),
        ("pivot_root", r""),
        ("umount2", r"\. flags=MNT_DETACH"),
        ("sethostname", r"sethostname minirun "),
        ("mount", r"maskedPaths"),
        ("mount", r"/proc/sys .*MS_RDONLY\|MS_REMOUNT"),
        ("setrlimit", r"RLIMIT_NOFILE soft=1024"),
        ("prctl", r"PR_CAPBSET_DROP .*CAP_SYS_ADMIN"),
        ("setgroups/setresgid/setresuid", r"uid=0 gid=0"),
        ("capset", r"effective=3"),
        ("prctl", r"PR_SET_NO_NEW_PRIVS 1"),
        ("fexecve", r"minirun-exec"),
        ("execve", r"/bin/sh \['/bin/sh', '-c', 'echo \"Hello from minirun!"),
        ("rmdir", rf"/sys/fs/cgroup/.*/{cid} "),
    ])
    by_call = {s["call"]: s for s in found}
    # Which process does what: the runtime, stage 1, and pid 1 of the new pid namespace.
    runtime_pid = found[0]["pid"]
    assert by_call["memfd_create"]["pid"] == by_call["rmdir"]["pid"] == runtime_pid
    assert by_call["unshare"]["pid"] not in (runtime_pid, 1)
    assert int(found[3]["detail"].rsplit("'", 2)[-2]) == by_call["unshare"]["pid"]
    for s in found[6:]:
        if s["call"] not in ("write", "rmdir"):
            assert s["pid"] == 1, s["text"]
    unshared = set(by_call["unshare"]["detail"].split()[0].split("|"))
    assert unshared == set(DEMO_NAMESPACES)
    capdrop = next(s for s in steps if s["detail"].startswith("PR_CAPBSET_DROP"))
    kept = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
    assert not kept & set(capdrop["detail"].split()[1].split(","))
    # The container's filesystem is in place before pivot_root, masked after it.
    pivot = next(i for i, s in enumerate(steps) if s["call"] == "pivot_root")
    assert all(s["call"] != "mount" or "maskedPaths" not in s["why"] for s in steps[:pivot])
    # Teaching: every step says which man page to read, and nearly all say why.
    assert all(re.fullmatch(r"[a-z_0-9]+\(\d\)", s["man"]) for s in steps), \
        [s["text"] for s in steps if not re.fullmatch(r"[a-z_0-9]+\(\d\)", s["man"])]
    no_reason = [s["text"] for s in steps if not s["why"]]
    assert len(no_reason) <= 3, no_reason
    # execve is the last step inside the container.
    last_inside = [s for s in steps if s["pid"] == 1][-1]
    assert last_inside["call"] == "execve"


def test_user_namespace_limits_and_seccomp_in_order(rt, demo, tmp_path):
    """The demo with a user namespace, cgroup limits, seccomp and a read-only root."""
    with open(os.path.join(demo, "config.json")) as f:
        config = json.load(f)
    config["root"] = {"path": os.path.join(demo, "rootfs"), "readonly": True}
    config["process"]["args"] = ["/bin/sh", "-c", "cd /tmp 2>/dev/null || echo blocked"]
    linux = config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    linux["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 32}}
    linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO"}]}
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    cid = "tr" + uuid.uuid4().hex[:10]
    result, steps = traced_run(rt, str(bundle), cid)
    assert "blocked" in result.stdout

    found = in_order(steps, [
        ("seccomp", r"compiled default=SCMP_ACT_ALLOW rules=1"),
        ("mkdir", rf"/{cid} "),
        ("write", r"(memory\.limit_in_bytes|memory\.max) <- '67108864'"),
        ("write", r"pids\.max <- '32'"),
        ("fork", r"stage 1"),
        ("unshare", r"unshare CLONE_NEWUSER "),
        ("write", r"uid_map '0 200000 65536'"),
        ("write", r"gid_map '0 200000 65536'"),
        ("setresgid/setresuid", r"0 0 0"),
        ("unshare", r"CLONE_NEWNS"),
        ("fork", r"stage 2"),
        ("mount", r"/dev/null -> /dev/null .*MS_BIND"),  # no mknod in a user namespace
        ("pivot_root", r""),
        ("mount", r"none -> / .*MS_RDONLY\|MS_REMOUNT"),  # root.readonly
        ("prctl", r"PR_CAPBSET_DROP"),
        ("prctl", r"PR_SET_NO_NEW_PRIVS 1"),
        ("fexecve", r"minirun-exec"),
        ("seccomp", r"SECCOMP_SET_MODE_FILTER"),
        ("execve", r"/bin/sh"),
    ])
    runtime_pid = found[0]["pid"]
    stage1 = found[5]["pid"]
    # The parent writes the maps of stage 1, which then becomes root inside.
    assert found[6]["pid"] == found[7]["pid"] == runtime_pid
    assert f"/proc/{stage1}/uid_map" in found[6]["detail"]
    assert found[8]["pid"] == stage1
    assert not any(s["call"] == "mknod" for s in steps)


def test_no_trace_lines_when_off(rt, demo):
    cid = "tr" + uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if k != "MINIRUN_TRACE"}
    result = rt("run", "--bundle", demo, cid, env=env)
    assert result.stdout.startswith("Hello from minirun!")
    assert result.stderr == ""


def test_environment_variable_turns_it_on(rt, demo):
    cid = "tr" + uuid.uuid4().hex[:10]
    result = rt("run", "--bundle", demo, cid, env=dict(os.environ, MINIRUN_TRACE="1"))
    steps = parse(result.stderr)
    assert [s["call"] for s in steps if s["pid"] == 1][-1] == "execve"


@pytest.mark.unprivileged
def test_lines_from_many_processes_never_interleave():
    """Each line is one write(2): 8 processes x 300 long lines into one pipe."""
    code = (
        "import os\n"
        "from minirun.linux import trace\n"
        "trace.enable()\n"
        "kids = []\n"
        "for n in range(8):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        for i in range(300):\n"
        "            trace.step('write', str(n) * 1500, 'why ' + str(i), 'write(2)')\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    steps = parse(proc.stderr)
    assert len(steps) == 8 * 300
    for s in steps:
        assert len(set(s["detail"])) == 1 and len(s["detail"]) == 1500


@pytest.mark.unprivileged
def test_step_is_silent_and_cheap_when_off():
    code = ("import os, sys\n"
            "os.environ.pop('MINIRUN_TRACE', None)\n"
            "from minirun.linux import trace\n"
            "assert not trace.enabled()\n"
            "trace.step('mount', 'a -> b', 'why', 'mount(2)')\n")
    env = {k: v for k, v in os.environ.items() if k != "MINIRUN_TRACE"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""


def test_network_attach_traces_netlink_requests(rt, demo, tmp_path):
    """The bridge/veth/NAT steps of a published port (the front end's `run -p`)."""
    cid = "tr" + uuid.uuid4().hex[:10]
    rt("create", "--bundle", demo, cid)
    pid = rt.state(cid)["pid"]
    code = ("import sys\n"
            "from minirun import network\n"
            "cid, pid, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
            "try:\n"
            "    network.attach(cid, pid, publish=['18080:80'], root=root)\n"
            "    network.detach(cid, root=root)\n"
            "finally:\n"
            "    network.purge(root)\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code, cid, str(pid), rt.root],
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, MINIRUN_TRACE="1"))
    finally:
        rt("delete", "--force", cid, check=False)
    assert proc.returncode == 0, proc.stderr
    steps = parse(proc.stderr)
    in_order(steps, [
        ("netlink RTM_NEWLINK", r"bridge \S+"),
        ("netlink RTM_NEWADDR", r"dev \S+"),
        ("netlink RTM_NEWLINK", r"up"),
        ("write", r"route_localnet"),
        ("netlink RTM_NEWLINK", r"veth \S+ peer eth0"),
        ("netlink RTM_NEWLINK", r"master"),
        ("netlink RTM_NEWLINK", r"hairpin on"),
        ("netlink RTM_NEWLINK", r"lo up \(container\)"),
        ("netlink RTM_NEWADDR", r"dev eth0 \(container\)"),
        ("netlink RTM_NEWLINK", r"eth0 up \(container\)"),
        ("netlink RTM_NEWROUTE", r"default via"),
        ("nft", r"-j -f -"),
        ("netlink RTM_DELLINK", r""),
    ])


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_docker_like_run_of_the_demo_image(demo, tmp_path):
    """`minirun --trace run --rm -p PORT:80 busybox ...`: the image's overlay
    rootfs, the namespaces and mounts, then the bridge, veth and NAT the front
    end adds between create and start, then the program."""
    store, root = tmp_path / "store", tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k != "MINIRUN_TRACE"}
    env["MINIRUN_STORE"] = str(store)
    layout = os.path.join(os.path.dirname(demo), "oci", "busybox")

    def minirun(*args):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run([MINIRUN, "--root", str(root), *args], env=env, stdout=out,
                                  stderr=err, stdin=subprocess.DEVNULL, timeout=120)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(), err.read().decode()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    try:
        minirun("load", "-i", layout, "--name", "busybox:latest")
        result = minirun("--trace", "run", "--rm", "-p", f"{free_port()}:80", "busybox",
                         "echo", "hello")
        assert result.stdout == "hello\n"
        steps = parse(result.stderr)
        overlay, unshare, veth = in_order(steps, [
            ("mount", r"overlay -> \S+/rootfs type=overlay"),
            ("unshare", r"CLONE_NEWNET"),
            ("netlink RTM_NEWLINK", r"veth \S+ peer eth0"),
        ])
        in_order([s for s in steps if s["pid"] == 1], [
            ("mount", r"none -> / .*MS_SLAVE"),
            ("mount", r"/rootfs -> \S+/rootfs .*MS_BIND"),
            ("mount", r"proc -> /proc"),
            ("mount", r"-> /etc/hosts .*MS_BIND"),   # the network's files
            ("pivot_root", r""),
            ("umount2", r"MNT_DETACH"),
            ("sethostname", r"[0-9a-f]{12}"),        # the short container id
            ("prctl", r"PR_CAPBSET_DROP"),
            ("capset", r""),
            ("fexecve", r"minirun-exec"),
            ("execve", r"/bin/echo \['echo', 'hello'\]"),
        ])
        net = in_order([s for s in steps if s["call"].startswith(("netlink", "nft"))], [
            ("netlink RTM_NEWLINK", r"bridge \S+"),
            ("netlink RTM_NEWADDR", r"/16 dev \S+"),
            ("netlink RTM_NEWLINK", r"veth \S+ peer eth0"),
            ("netlink RTM_NEWLINK", r"master"),
            ("netlink RTM_NEWLINK", r"hairpin on"),
            ("netlink RTM_NEWADDR", r"dev eth0 \(container\)"),
            ("netlink RTM_NEWROUTE", r"default via"),
            ("nft", r"commands"),
        ])
        assert net[2] is veth and overlay["pid"] != 1 and unshare["pid"] != 1
    finally:
        try:
            with open(root / ".frontend" / "monitor.pid") as f:
                os.kill(int(f.read().split()[0]), 15)
        except (OSError, ValueError):
            pass
        from minirun import network

        network.purge(str(root))
        subprocess.run([MINIRUN, "image", "prune", "--store", str(store)], env=env,
                       capture_output=True)
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(tmp_path) in line.split()[4]]
