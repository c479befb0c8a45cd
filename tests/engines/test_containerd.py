"""containerd drives minirun through its io.containerd.runc.v2 shim, as on a
Kubernetes node (RuntimeClass -> runtime options -> BinaryName), here with
`ctr run --runc-binary minirun`.

A private containerd (own config, root, state, socket, TMPDIR, in a private
mount namespace: see engine_sandbox) serves the whole module; it imports the
demo image from an OCI archive, and is stopped by PID at the end.  Every
container is named after the test and checked to leave no minirun state and
no cgroup behind.
"""
import os
import select
import shutil
import subprocess
import uuid

import pytest

from engine_sandbox import Sandbox, make_oci_archive, wait_for
from minirun_testlib import MINIRUN, REPO

# The runtime under test; MINIRUN_ENGINE_RUNTIME=/usr/sbin/runc runs the same
# scenarios against runc, to tell an engine quirk from a minirun bug.
RUNTIME = os.environ.get("MINIRUN_ENGINE_RUNTIME") or MINIRUN

CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")
pytestmark = pytest.mark.skipif(
    not (CONTAINERD and CTR and shutil.which("containerd-shim-runc-v2")),
    reason="containerd is not installed (apt-get install containerd)")

IMAGE = "localhost/minirun/busybox:latest"
# Waits for ctr's resize of the pty (it comes after start), then prints it.
SHOW_TTY = ('tty; for i in $(seq 100); do s=$(stty size 2>/dev/null); '
            '[ -n "$s" ] && [ "$s" != "0 0" ] && break; sleep 0.05; done; echo "size $s"')


def demo_layout(tmp_dir):
    layout = os.path.join(REPO, "images", "out", "oci", "busybox")
    if os.path.exists(os.path.join(layout, "index.json")):
        return layout
    import build_busybox  # on sys.path through minirun_testlib

    rootfs = os.path.join(tmp_dir, "rootfs")
    build_busybox.build_rootfs(rootfs)
    layout = os.path.join(tmp_dir, "layout")
    build_busybox.write_oci_layout(rootfs, layout)
    return layout


class Containerd:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.namespace = sandbox.name  # so cgroupsPath is /<sandbox name>/<id>
        self.socket = os.path.join(sandbox.dir, "containerd.sock")
        self.runc_root = os.path.join(sandbox.dir, "runc")
        self.env = dict(os.environ, TMPDIR=os.path.join(sandbox.dir, "tmp"))
        self.daemon = None

    def start(self):
        d = self.sandbox.dir
        os.makedirs(os.path.join(d, "tmp"))
        config = os.path.join(d, "config.toml")
        with open(config, "w") as f:
            f.write(f'''version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = "{d}/debug.sock"
[metrics]
  address = ""
''')
        self.daemon = self.sandbox.start_daemon([CONTAINERD, "--config", config],
                                                "containerd.log", env=self.env)

        def up():
            if self.daemon.poll() is not None:
                raise AssertionError(f"containerd exited: {self.log()}")
            return os.path.exists(self.socket) and \
                self.ctr("version", check=False).returncode == 0
        wait_for(up, timeout=20, what="containerd to serve")

    def log(self):
        with open(os.path.join(self.sandbox.dir, "containerd.log"), errors="replace") as f:
            return f.read()[-4000:]

    def ctr(self, *args, **kw):
        kw.setdefault("env", self.env)
        return self.sandbox.run([CTR, "--address", self.socket, "--namespace", self.namespace,
                                 *args], **kw)

    def run_args(self):
        return ["--runc-binary", RUNTIME, "--runc-root", self.runc_root]

    def run(self, cid, *cmd, opts=(), **kw):
        """`ctr run --rm [opts] IMAGE cid cmd...`; returns the CompletedProcess."""
        return self.ctr("run", "--rm", *self.run_args(), *opts, IMAGE, cid, *cmd, **kw)

    def run_detached(self, cid, *cmd, opts=()):
        self.ctr("run", "-d", *self.run_args(), *opts, IMAGE, cid, *cmd)
        return self.task(cid)

    def tasks(self):
        """{id: (pid, status)} from `ctr task ls`."""
        lines = self.ctr("task", "ls").stdout.splitlines()[1:]
        return {f[0]: (int(f[1]), f[2]) for f in (ln.split() for ln in lines) if len(f) >= 3}

    def task(self, cid):
        return self.tasks()[cid]

    def ps(self, cid):
        lines = self.ctr("task", "ps", cid).stdout.splitlines()[1:]
        return sorted(int(ln.split()[0]) for ln in lines if ln.strip())

    def remove(self, cid):
        """Kill and delete a task and its container, whatever state they are in."""
        if cid in self.tasks():
            self.ctr("task", "kill", "--all", "--signal", "SIGKILL", cid, check=False)
            wait_for(lambda: self.tasks().get(cid, (0, "STOPPED"))[1] == "STOPPED",
                     what=f"task {cid} to stop")
            self.ctr("task", "delete", cid, check=False)
        self.ctr("container", "delete", cid, check=False)

    def states(self):
        """Containers minirun still has state for (under the shim's --root)."""
        try:
            # (a name starting with a dot is minirun's own, e.g. .seccomp: never an id)
            return [n for n in os.listdir(os.path.join(self.runc_root, self.namespace)) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def cgroup_exists(self, cid):
        from engine_sandbox import cgroup_dirs

        return bool(cgroup_dirs(f"/{self.namespace}/{cid}"))


@pytest.fixture(scope="module")
def containerd():
    with Sandbox("ctrd", ["/run/containerd"]) as sandbox:
        engine = Containerd(sandbox)
        engine.start()
        archive = make_oci_archive(demo_layout(sandbox.dir),
                                   os.path.join(sandbox.dir, "busybox.tar"), IMAGE)
        engine.ctr("images", "import", archive)
        try:
            yield engine
        finally:
            for line in engine.ctr("container", "ls", "-q", check=False).stdout.split():
                engine.remove(line)


@pytest.fixture
def cid(containerd, request):
    """A container id for this test; afterwards nothing of it may remain."""
    name = request.node.name.removeprefix("test_").replace("_", "-")[:20] + "-" + \
        uuid.uuid4().hex[:6]
    yield name
    containerd.remove(name)
    assert name not in containerd.states(), "minirun state left behind"
    assert not containerd.cgroup_exists(name), "cgroup left behind"


def test_echo_and_exit_code(containerd, cid):
    out = containerd.run(cid, "sh", "-c", "echo hello from minirun; exit 3", check=False)
    assert out.returncode == 3, out.stderr
    assert out.stdout == "hello from minirun\n"


def test_env_and_cwd(containerd, cid):
    out = containerd.run(cid, "sh", "-c", 'echo "$FOO|$PATH"; pwd; id -u',
                         opts=["--env", "FOO=bar baz", "--cwd", "/tmp"])
    foo_path, cwd, uid = out.stdout.splitlines()
    assert foo_path == "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert (cwd, uid) == ("/tmp", "0")


def test_create_error_reaches_ctr(containerd, cid):
    """The shim reads the error from minirun's --log json file."""
    out = containerd.run(cid, "no-such-command", check=False)
    assert out.returncode != 0
    assert "OCI runtime create failed" in out.stderr
    assert 'exec: "no-such-command": executable file not found in $PATH' in out.stderr


def test_detached_task_exec_and_ps(containerd, cid):
    pid, status = containerd.run_detached(cid, "sleep", "300")
    assert status == "RUNNING"
    with open(f"/proc/{pid}/cgroup") as f:
        assert f"/{containerd.namespace}/{cid}" in f.read()
    out = containerd.ctr("task", "exec", "--exec-id", "e1", cid, "sh", "-c",
                         "tr '\\0' ' ' < /proc/1/cmdline; echo; exit 5", check=False)
    assert out.returncode == 5, out.stderr
    assert out.stdout == "sleep 300 \n"
    assert containerd.ps(cid) == [pid]

    containerd.ctr("task", "exec", "--detach", "--exec-id", "e2", cid, "sleep", "200")
    pids = wait_for(lambda: len(containerd.ps(cid)) == 2 and containerd.ps(cid),
                    what="the exec'd process in task ps")
    (other,) = set(pids) - {pid}
    with open(f"/proc/{other}/cmdline") as f:
        assert f.read() == "sleep\x00200\x00"
    containerd.ctr("task", "kill", "--exec-id", "e2", "--signal", "SIGKILL", cid)
    wait_for(lambda: containerd.ps(cid) == [pid], what="the exec'd process to go")


def test_exec_with_tty(containerd, cid):
    containerd.run_detached(cid, "sleep", "300")
    argv = [CTR, "--address", containerd.socket, "--namespace", containerd.namespace,
            "task", "exec", "--tty", "--exec-id", "t1", cid, "sh", "-c", SHOW_TTY + "; exit 4"]
    code, output = containerd.sandbox.run_on_pty(argv, env=containerd.env, rows=31, cols=97)
    assert code == 4, output
    assert "/dev/pts/" in output and "size 31 97" in output, output


def test_run_with_tty(containerd, cid):
    argv = [CTR, "--address", containerd.socket, "--namespace", containerd.namespace,
            "run", "--rm", "--tty", *containerd.run_args(), IMAGE, cid,
            "sh", "-c", SHOW_TTY + "; read line; echo got $line; exit 6"]
    code, output = containerd.sandbox.run_on_pty(argv, env=containerd.env, rows=24, cols=80,
                                                 send="typed\n", after="size ")
    assert code == 6, output
    assert "/dev/pts/0" in output and "size 24 80" in output and "got typed" in output, output


def test_pause_and_resume(containerd, cid):
    pid, _ = containerd.run_detached(cid, "sleep", "300")
    freezer = f"/sys/fs/cgroup/freezer/{containerd.namespace}/{cid}/freezer.state"
    containerd.ctr("task", "pause", cid)
    assert containerd.task(cid) == (pid, "PAUSED")
    if os.path.exists(freezer):
        with open(freezer) as f:
            assert f.read().strip() == "FROZEN"
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("D", "S")
    containerd.ctr("task", "resume", cid)
    assert containerd.task(cid) == (pid, "RUNNING")
    out = containerd.ctr("task", "exec", "--exec-id", "after", cid, "echo", "thawed")
    assert out.stdout == "thawed\n"


def test_kill_delivers_the_signal(containerd, cid):
    argv = ["run", "--rm", *containerd.run_args(), IMAGE, cid, "sh", "-c",
            'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.05; done']
    proc = containerd.sandbox.popen(
        [CTR, "--address", containerd.socket, "--namespace", containerd.namespace, *argv],
        env=containerd.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready and proc.stdout.readline() == b"ready\n"
        containerd.ctr("task", "kill", cid)  # SIGTERM, passed to minirun as "15"
        assert proc.wait(timeout=30) == 42
        assert proc.stdout.read() == b"got TERM\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_kill_all_with_sigkill(containerd, cid):
    pid, _ = containerd.run_detached(cid, "sh", "-c", "sleep 300 & sleep 301 & wait")
    wait_for(lambda: len(containerd.ps(cid)) == 3, what="three processes in the task")
    containerd.ctr("task", "kill", "--all", "--signal", "SIGKILL", cid)
    wait_for(lambda: containerd.task(cid)[1] == "STOPPED", what="the task to stop")
    assert not os.path.exists(f"/proc/{pid}/cmdline")
    out = containerd.ctr("task", "delete", cid)
    assert "137" in out.stderr + out.stdout  # "task ... exit with non-zero exit code 137"


def _memory_limit_file(namespace, cid):
    v1 = f"/sys/fs/cgroup/memory/{namespace}/{cid}/memory.limit_in_bytes"
    return v1 if os.path.exists(v1) else f"/sys/fs/cgroup/{namespace}/{cid}/memory.max"


def _have_swap():
    with open("/proc/meminfo") as f:
        return any(ln.split()[:2] != ["SwapTotal:", "0"] for ln in f if ln.startswith("SwapTotal"))


def test_memory_limit(containerd, cid):
    containerd.run_detached(cid, "sleep", "300", opts=["--memory-limit", str(32 << 20)])
    with open(_memory_limit_file(containerd.namespace, cid)) as f:
        assert int(f.read()) == 32 << 20
    small = containerd.ctr("task", "exec", "--exec-id", "small", cid,
                           "dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=1")
    assert "1+0 records out" in small.stderr
    if not _have_swap():  # with swap, the kernel may page out instead of killing
        big = containerd.ctr("task", "exec", "--exec-id", "big", cid,
                             "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1",
                             check=False)
        # dd with a 64 MiB buffer is OOM-killed
        assert big.returncode == 137, big.stdout + big.stderr


def test_read_only_rootfs(containerd, cid):
    out = containerd.run(cid, "sh", "-c",
                         "touch /new-file; echo rc=$?; touch /dev/shm/ok && echo shm-writable",
                         opts=["--read-only"])
    assert "Read-only file system" in out.stderr + out.stdout
    assert "rc=1" in out.stdout and "shm-writable" in out.stdout



def test_host_pid_namespace_kill_all(containerd, cid):
    """Without a private pid namespace the shim cleans up with `kill --all`
    once the init process exits: no orphan may survive the task."""
    out = containerd.run(cid, "sh", "-c", "sleep 100 & echo $!",
                         opts=["--with-ns", f"pid:/proc/{os.getpid()}/ns/pid"])
    orphan = int(out.stdout)  # a host pid: the container shares our pid namespace
    wait_for(lambda: not os.path.exists(f"/proc/{orphan}"), what="the orphan to be killed")
