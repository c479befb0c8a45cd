"""Helpers for the cgroup tests: a forked child held until it is in its
cgroup, and the workloads the enforcement tests run in it.

Children are forked from the test process (no interpreter start-up, which
matters in the emulated v2 guest) and wait on a pipe until the test has put
them in their cgroup, the way the runtime holds a container's init until it
sits in its cgroup.  They get PR_SET_PDEATHSIG so they die with a crashed run.
"""
import os
import signal
import time

import prctl

# Parent of every test cgroup of this run (removed with the last of them).
TEST_PARENT = f"/minirun-test-{os.getpid()}"

class Child:
    """A forked process that runs `target(report_fd)` after go()."""

    def __init__(self, target):
        go_r, go_w = os.pipe()
        self.out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 111
            try:
                prctl.set_pdeathsig(signal.SIGKILL)
                os.close(go_w)
                os.close(self.out_r)
                if os.read(go_r, 1) == b"g":
                    code = target(out_w) or 0
            except BaseException as e:  # noqa: BLE001 - report anything, exit
                try:
                    os.write(out_w, f"\nchild error: {e!r}\n".encode())
                except OSError:
                    pass
                code = 112
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(out_w)
        self.pid = pid
        self.go_w = go_w
        self.status = None

    def go(self):
        os.write(self.go_w, b"g")
        os.close(self.go_w)
        self.go_w = None

    def poll(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status

    def wait(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"child {self.pid} still running after {timeout} s")
            time.sleep(0.01)
        return self.status

    @property
    def killed_by(self):
        return os.WTERMSIG(self.status) if self.status is not None and \
            os.WIFSIGNALED(self.status) else None

    @property
    def exit_code(self):
        return os.WEXITSTATUS(self.status) if self.status is not None and \
            os.WIFEXITED(self.status) else None

    def read_report(self):
        """Everything the child wrote to its report fd (reads to EOF)."""
        chunks = []
        while True:
            data = os.read(self.out_r, 65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def cleanup(self):
        if self.go_w is not None:
            os.close(self.go_w)
            self.go_w = None
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(10)
        os.close(self.out_r)


# ----------------------------------------------------------------- workloads
# Each runs in a Child after go(); the return value is the exit code.

def allocate(mib):
    def run(out):
        block = bytearray(mib << 20)
        for i in range(0, len(block), 4096):  # touch every page
            block[i] = 1
        os.write(out, b"allocated")
        return 0
    return run


def fork_many(n, hold=30):
    """Fork up to n children that sleep; report how many forks succeeded."""
    def run(out):
        made = 0
        for _ in range(n):
            try:
                pid = os.fork()
            except OSError as e:
                os.write(out, f"{made} fork failed errno={e.errno}".encode())
                return 0
            if pid == 0:
                os.close(out)  # so the test sees EOF when the parent is done
                time.sleep(hold)
                os._exit(0)
            made += 1
        os.write(out, f"{made} all forked".encode())
        return 0
    return run


def burn_cpu(seconds):
    def run(out):
        start = time.process_time()
        while time.process_time() - start < seconds:
            pass
        os.write(out, b"done")
        return 0
    return run


def ticker(out):
    """Write a byte every 10 ms until killed."""
    while True:
        os.write(out, b".")
        time.sleep(0.01)


def fork_tree(out):
    """Keep forking: each process forks children that fork again (bounded by
    the pids limit the test sets), so a kill that walks the pids once would
    miss the newest ones."""
    os.write(out, b"started")
    while True:
        try:
            if os.fork() == 0:
                continue  # the child forks too
        except OSError:
            pass
        time.sleep(0.005)


def drain(fd, wait=0.0):
    """Read what is in a pipe now (non-blocking), after waiting `wait` s."""
    time.sleep(wait)
    os.set_blocking(fd, False)
    data = b""
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(fd, True)
    return data


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read(path):
    with open(path) as f:
        return f.read().strip()
