"""podman (through conmon) drives minirun: `podman --runtime minirun ...`.

podman gets a private containers.conf and storage.conf (CONTAINERS_CONF,
CONTAINERS_STORAGE_CONF) with its storage, runroot, tmp dir and network config
under a temp dir, and runs in a private mount namespace (engine_sandbox), so the
machine's own podman state is never touched.  The containers.conf:
  * lists minirun in runtime_supports_json, so conmon passes --log-format=json
    and podman can read minirun's error messages;
  * pins default_ulimits to this process's hard limits: podman's defaults
    (nofile 1048576, nproc 4194304) are above them and raising a hard limit
    needs CAP_SYS_RESOURCE, which this machine does not grant.
podman calls the runtime without --root, so minirun uses its default root,
/run/minirun, which the sandbox keeps private to the test.
"""
import os
import resource
import shutil
import uuid

import pytest

from engine_sandbox import Sandbox, wait_for
from minirun_testlib import MINIRUN, REPO

# The runtime under test; MINIRUN_ENGINE_RUNTIME=/usr/sbin/runc runs the same
# scenarios against runc, to tell an engine quirk from a minirun bug.
RUNTIME = os.environ.get("MINIRUN_ENGINE_RUNTIME") or MINIRUN
# podman passes no --root: the runtime's default root (runc: /run/runc).
DEFAULT_ROOT = "/run/" + os.path.basename(RUNTIME)

PODMAN = shutil.which("podman")
CONMON = shutil.which("conmon")
pytestmark = pytest.mark.skipif(not (PODMAN and CONMON),
                                reason="podman is not installed (apt-get install podman conmon)")
SHOW_TTY = ('tty; for i in $(seq 100); do s=$(stty size 2>/dev/null); '
            '[ -n "$s" ] && [ "$s" != "0 0" ] && break; sleep 0.05; done; echo "size $s"')


def pinned_ulimits():
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576
    # podman lowers its own NPROC to pid_max; ask for no more than that.
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    return nofile, nproc


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


class Podman:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        d = sandbox.dir
        self.nofile, self.nproc = pinned_ulimits()
        with open(os.path.join(d, "containers.conf"), "w") as f:
            f.write(f'''[containers]
default_ulimits = ["nofile={self.nofile}:{self.nofile}", "nproc={self.nproc}:{self.nproc}"]
log_driver = "k8s-file"

[network]
network_config_dir = "{d}/networks"

[engine]
cgroup_manager = "cgroupfs"
conmon_path = ["{CONMON}"]
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
runtime_supports_json = ["crun", "runc", "minirun"]
static_dir = "{d}/storage/libpod"
tmp_dir = "{d}/libpod-tmp"
volume_path = "{d}/storage/volumes"
''')
        with open(os.path.join(d, "storage.conf"), "w") as f:
            f.write(f'''[storage]
driver = "overlay"
graphroot = "{d}/storage"
runroot = "{d}/runroot"
''')
        os.makedirs(os.path.join(d, "tmp"))
        self.env = dict(os.environ, CONTAINERS_CONF=os.path.join(d, "containers.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(d, "storage.conf"),
                        TMPDIR=os.path.join(d, "tmp"))
        self.image = f"oci:{demo_layout(d)}:latest"

    def argv(self, *args):
        return [PODMAN, "--runtime", RUNTIME, *args]

    def __call__(self, *args, **kw):
        kw.setdefault("env", self.env)
        return self.sandbox.run(self.argv(*args), **kw)

    def run_opts(self):
        # Every container (and conmon) in the sandbox's cgroup subtree.
        return ["--quiet", "--cgroup-parent", self.sandbox.cgroup_parent, "--network", "none"]

    def run(self, *cmd, opts=(), **kw):
        return self("run", "--rm", *self.run_opts(), *opts, self.image, *cmd, **kw)

    def inspect(self, name, fmt):
        return self("inspect", "--format", fmt, name).stdout.strip()

    def states(self):
        """Containers minirun keeps state for (podman uses minirun's default root)."""
        try:
            # (a name starting with a dot is minirun's own, e.g. .seccomp: never an id)
            return [n for n in os.listdir(self.sandbox.host_path(DEFAULT_ROOT)) if not n.startswith(".")]
        except FileNotFoundError:
            return []


@pytest.fixture(scope="module")
def podman():
    with Sandbox("pm", ["/run/containers", DEFAULT_ROOT, "/var/lib/containers"]) as sandbox:
        engine = Podman(sandbox)
        try:
            yield engine
        finally:
            engine("rm", "--all", "--force", "--time", "0", check=False)


@pytest.fixture
def clean(podman):
    """Afterwards: no container left in podman, none in minirun's root."""
    yield podman
    left = podman("ps", "--all", "--quiet").stdout.split()
    if left:
        podman("rm", "--force", "--time", "0", *left, check=False)
    assert not left, f"containers left: {left}"
    # podman's cleanup process (conmon's exit command) may still be running.
    wait_for(lambda: podman.states() == [], what="minirun state to be deleted")


def test_run_exit_codes_and_errors(clean):
    podman = clean
    out = podman.run("sh", "-c", "echo hello from minirun; exit 7", check=False)
    assert (out.returncode, out.stdout) == (7, "hello from minirun\n"), out.stderr
    assert podman.run("true", check=False).returncode == 0
    # podman maps the runtime's message (from the --log json file) to 127/126.
    out = podman.run("no-such-command", check=False)
    assert out.returncode == 127, out.stderr
    assert "executable file not found in $PATH" in out.stderr
    out = podman.run("/etc/passwd", check=False)
    assert out.returncode == 126, out.stderr
    assert "permission denied" in out.stderr


def test_run_spec_details(clean):
    """What podman's spec asks for: pinned rlimits, hostname, env, the
    read-only cgroup mount (runc 1.1.5 leaves the tmpfs under it writable on
    cgroup v1; minirun does not), seccomp."""
    podman = clean
    out = podman.run("sh", "-c", "ulimit -n; ulimit -u; echo $container; hostname; "
                     "grep Seccomp: /proc/self/status; touch /sys/fs/cgroup/x",
                     opts=["--hostname", "pmhost"], check=False)
    lines = out.stdout.splitlines()
    assert lines[:4] == [str(podman.nofile), str(podman.nproc), "podman", "pmhost"], out.stderr
    assert lines[4].split() == ["Seccomp:", "2"]
    assert "Read-only file system" in out.stderr


def test_read_only_rootfs_and_limits(clean):
    """--read-only (tmpfs with runc's tmpcopyup on /tmp, /run, ...), and
    --memory/--pids-limit visible through the container's /sys/fs/cgroup."""
    out = clean.run("sh", "-c",
                    "touch /new-file; touch /tmp/ok && echo tmp-writable; "
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
                    "cat /sys/fs/cgroup/memory.max; "
                    "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
                    opts=["--read-only", "--memory", "64m", "--pids-limit", "100"], check=False)
    assert "Read-only file system" in out.stderr
    assert out.stdout.split() == ["tmp-writable", str(64 << 20), "100"], out.stderr


def test_detached_exec_pause_stop_rm(clean):
    podman = clean
    name = "d-" + uuid.uuid4().hex[:8]
    podman("run", "--detach", "--name", name, *podman.run_opts(), podman.image, "sh", "-c",
           'trap "exit 42" TERM; while :; do sleep 0.05; done')
    assert podman.inspect(name, "{{.State.Status}}") == "running"
    cid = podman.inspect(name, "{{.Id}}")
    assert cid in podman.states()

    out = podman("exec", name, "sh", "-c", "echo in $(hostname); exit 3", check=False)
    assert out.returncode == 3, out.stderr
    assert out.stdout == f"in {cid[:12]}\n"
    code, output = podman.sandbox.run_on_pty(podman.argv("exec", "-it", name, "sh", "-c",
                                                         SHOW_TTY), env=podman.env,
                                             rows=33, cols=91)
    assert code == 0, output
    assert "/dev/pts/" in output and "size 33 91" in output, output

    podman("pause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "paused"
    podman("unpause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "running"

    # SIGTERM reaches the trap (a SIGKILL after the timeout would give 137).
    podman("stop", "--time", "60", name)
    assert podman.inspect(name, "{{.State.ExitCode}}") == "42"
    podman("rm", name)
    wait_for(lambda: cid not in podman.states(), what="minirun state to be deleted")


def test_host_pid_namespace_leaves_no_orphan(clean):
    """With --pid host, what the container leaves behind is killed through
    its cgroup (kill --all / delete --force)."""
    out = clean.run("sh", "-c", "sleep 100 & echo $!", opts=["--pid", "host"])
    orphan = int(out.stdout)  # a host pid
    wait_for(lambda: not os.path.exists(f"/proc/{orphan}"), what="the orphan to be killed")


def test_run_interactive_tty(clean):
    podman = clean
    argv = podman.argv("run", "--rm", "-it", *podman.run_opts(), podman.image, "sh", "-c",
                       SHOW_TTY + "; read line; echo got $line; exit 5")
    code, output = podman.sandbox.run_on_pty(argv, env=podman.env, rows=27, cols=88,
                                             send="typed\n", after="size ")
    assert code == 5, output
    assert "/dev/pts/0" in output and "size 27 88" in output and "got typed" in output, output


def test_preserve_fds(clean, tmp_path):
    podman = clean
    (tmp_path / "passed").write_text("through fd 3\n")
    # fd 3 is passed on; nothing else of podman's or conmon's may leak in.
    # (The glob's own directory fd is closed by the time `[ -e ]` looks.)
    script = 'cat <&3; for f in /proc/$$/fd/*; do [ -e "$f" ] && echo -n "${f##*/} "; done; echo'
    argv = podman.argv("run", "--rm", "--preserve-fds", "1", *podman.run_opts(),
                       podman.image, "sh", "-c", script)
    out = podman.sandbox.run(["sh", "-c", 'exec "$@" 3<"$0"', str(tmp_path / "passed"),
                              *argv], env=podman.env)
    lines = out.stdout.splitlines()
    assert lines[0] == "through fd 3"
    assert lines[1].split() == ["0", "1", "2", "3"]
