"""A private place for a real engine (containerd, podman) to run during a test.

Engines take their config, root and state directories from us, but a few paths
are fixed in their code: containerd 1.6 puts shim sockets in /run/containerd/s,
podman 4.3 makes /run/containers/networks and writes containers/image's blob
cache to /var/lib/containers/cache, and podman calls the runtime without
--root, so minirun keeps those containers in its default /run/minirun.

So every engine command runs inside a mount namespace of our own (entered with
nsenter, held open by a helper process) in which those paths are empty tmpfs
mounts.  Whatever the engine mounts there (overlay rootfs, /dev/shm, the
tmpfs) never appears on the host and disappears with the namespace, even when
a test fails half-way.  Cgroups are not namespaced: engines are told to put
every container under a cgroup parent named after this sandbox, and teardown
removes that subtree.

Teardown (close) kills by PID only what is ours: the daemon we started, the
processes in our cgroup subtree and the processes in our mount namespace; then
it checks that nothing is left on the host and raises if something is.
"""
import errno
import fcntl
import io
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import termios
import time
import uuid

CGROUP_ROOT = "/sys/fs/cgroup"
# Mount points we had to create on the host carry this xattr, and sandboxes
# (also those of other test processes) hold a shared flock on LOCK_DIR while
# they live.  Only the last one out removes the marked directories: removing a
# directory that is a mount point in another mount namespace detaches that
# mount, which would expose a running sandbox's engine to the host paths.
LOCK_DIR = "/run"
CREATED_MARK = "trusted.minirun-engine-sandbox"


def wait_for(predicate, timeout=10.0, what="condition", interval=0.02):
    """Poll predicate() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def cgroup_hierarchies():
    """Mounted cgroup hierarchies (v1 controllers, and the v2 one if any)."""
    found = []
    for name in sorted(os.listdir(CGROUP_ROOT)):
        path = os.path.join(CGROUP_ROOT, name)
        if os.path.exists(os.path.join(path, "cgroup.procs")) and not os.path.islink(path):
            found.append(path)
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):
        found.append(CGROUP_ROOT)  # pure cgroup v2
    return found


def cgroup_dirs(parent):
    """Every existing directory of the cgroup subtree `parent`, deepest first."""
    dirs = []
    for hierarchy in cgroup_hierarchies():
        top = os.path.join(hierarchy, parent.strip("/"))
        for dirpath, _, _ in os.walk(top):
            dirs.append(dirpath)
    return sorted(dirs, key=lambda d: d.count("/"), reverse=True)


def _read_pids(path):
    try:
        with open(path) as f:
            return {int(x) for x in f.read().split()}
    except OSError:
        return set()


def _mount_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _marked(path):
    try:
        return os.getxattr(path, CREATED_MARK, follow_symlinks=False) == b"1"
    except OSError:
        return False


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def make_oci_archive(layout, dest, image_name):
    """A tar of an OCI image layout whose index names the image for
    `ctr images import` (io.containerd.image.name), keeping the layout's
    org.opencontainers.image.ref.name tag."""
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    for manifest in index["manifests"]:
        manifest.setdefault("annotations", {})["io.containerd.image.name"] = image_name
    data = json.dumps(index).encode()
    with tarfile.open(dest, "w") as tar:
        for name in sorted(os.listdir(layout)):
            if name != "index.json":
                tar.add(os.path.join(layout, name), name)
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return dest


class Sandbox:
    """See the module docstring.  Use as a context manager."""

    def __init__(self, prefix, private_paths):
        self.name = f"minirun-{prefix}-{uuid.uuid4().hex[:8]}"
        # Short base path: unix socket paths (containerd.sock, conmon's
        # attach socket) must stay under 108 bytes.
        self.dir = tempfile.mkdtemp(prefix=f"mr-{prefix}-", dir="/tmp")
        self.cgroup_parent = "/" + self.name
        self.private_paths = list(private_paths)
        self._lock_fd = None
        self._helper = None
        self._daemons = []
        self.ns = None

    # --- setting up ---------------------------------------------------------
    def __enter__(self):
        try:
            self._start_namespace()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start_namespace(self):
        self._lock_fd = os.open(LOCK_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        for path in self.private_paths:
            # A mount point has to exist on the host: make (and mark) the
            # missing directories.
            missing = []
            p = path
            while not os.path.exists(p):
                missing.append(p)
                p = os.path.dirname(p)
            for d in reversed(missing):
                os.mkdir(d, 0o755)
                os.setxattr(d, CREATED_MARK, b"1")
        script = ('for p; do mount -t tmpfs -o mode=0755 minirun-test "$p" || exit 1; done; '
                  'echo ready; exec cat >/dev/null')
        # The helper lives until we close its stdin (or the test process dies).
        self._helper = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
             *self.private_paths],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self._helper.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"could not set up the private mount namespace: {line!r}")
        self.ns = _mount_ns(self._helper.pid)
        fcntl.flock(self._lock_fd, fcntl.LOCK_SH)

    # --- running things inside ------------------------------------------------
    def cmd(self, argv):
        return ["nsenter", f"--mount=/proc/{self._helper.pid}/ns/mnt", "--", *map(str, argv)]

    def run(self, argv, check=True, timeout=60, env=None, input=None):
        """Run a command in the sandbox; stdout/stderr go to files, not pipes,
        because what it starts in the background (a shim, conmon) may keep
        them open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
            proc = subprocess.Popen(self.cmd(argv), stdin=stdin, stdout=out, stderr=err,
                                    env=env, cwd=self.dir)
            try:
                proc.communicate(input.encode() if input is not None else None,
                                 timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"timed out after {timeout}s: {' '.join(map(str, argv))}")
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(argv, proc.returncode,
                                                 out.read().decode(errors="replace"),
                                                 err.read().decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def popen(self, argv, env=None, **kw):
        return subprocess.Popen(self.cmd(argv), env=env, cwd=self.dir, **kw)

    def start_daemon(self, argv, log_name, env=None):
        log = open(os.path.join(self.dir, log_name), "ab")
        proc = self.popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._daemons.append(proc)
        return proc

    def host_path(self, path):
        """Where a path as the sandbox sees it can be read from the host."""
        return f"/proc/{self._helper.pid}/root{path}"

    def run_on_pty(self, argv, env=None, rows=30, cols=100, send=None, after=None, timeout=60):
        """Run argv with a new pseudo-terminal as its stdin/stdout/stderr (as
        a user at a terminal would); write `send` once the output contains
        `after`.  Returns (exit code, output with \\r removed)."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            proc = self.popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                              start_new_session=True)
        finally:
            os.close(slave)
        output = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if send is not None and (after is None or after.encode() in output):
                    os.write(master, send.encode())
                    send = None
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError as e:  # EIO: every slave fd is closed
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if data:
                        output += data
                        continue
                    if proc.poll() is not None:
                        break
                elif proc.poll() is not None:
                    break
            else:
                proc.kill()
                raise AssertionError(f"timed out on a terminal: {argv}\n{output!r}")
            return proc.wait(), output.decode(errors="replace").replace("\r", "")
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # --- tearing down -----------------------------------------------------------
    def namespace_pids(self):
        if self.ns is None:
            return set()
        helper = self._helper.pid if self._helper else None
        pids = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != helper and _mount_ns(entry) == self.ns:
                pids.add(int(entry))
        return pids

    def cgroup_pids(self):
        pids = set()
        for d in cgroup_dirs(self.cgroup_parent):
            pids |= _read_pids(os.path.join(d, "cgroup.procs"))
        return pids

    def _thaw(self):
        for d in cgroup_dirs(self.cgroup_parent):
            state = os.path.join(d, "freezer.state")
            if os.path.exists(state):
                try:
                    with open(state, "w") as f:
                        f.write("THAWED")
                except OSError:
                    pass

    def _remove_mount_points(self):
        if self._lock_fd is None:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another sandbox still runs: the last one out cleans up
        else:
            for path in self.private_paths:
                d = path
                while d != "/" and _marked(d):
                    try:
                        os.rmdir(d)
                    except OSError:
                        break  # not empty: someone else's now
                    d = os.path.dirname(d)
        os.close(self._lock_fd)
        self._lock_fd = None

    def leftover_processes(self):
        return self.namespace_pids() | self.cgroup_pids()

    def close(self):
        problems = []
        for proc in self._daemons:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    problems.append(f"daemon {proc.args} ignored SIGTERM")
                    proc.kill()
                    proc.wait()
        self._daemons = []
        # Engines finish some work asynchronously (podman's cleanup process):
        # give them a moment, then kill what is left, by PID.
        try:
            wait_for(lambda: not self.leftover_processes(), timeout=5, what="engine processes")
        except AssertionError:
            left = self.leftover_processes()
            problems.append(f"processes left running, killed: {sorted(left)}")
            self._thaw()
            for _ in range(50):
                left = self.leftover_processes()
                if not left:
                    break
                for pid in left:
                    _kill(pid)
                time.sleep(0.1)
        if self._helper is not None:
            self._helper.stdin.close()
            self._helper.wait()
            self._helper.stdout.close()
        self.ns = None
        for d in cgroup_dirs(self.cgroup_parent):
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    time.sleep(0.05)
            else:
                problems.append(f"cgroup {d} stays busy")
        self._remove_mount_points()
        with open("/proc/self/mountinfo") as f:
            mounts = [ln.split()[4] for ln in f]
        leaked = [m for m in mounts if m == self.dir or m.startswith(self.dir + "/")]
        if leaked:
            problems.append(f"mounts left on the host: {leaked}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("sandbox teardown: " + "; ".join(problems))
