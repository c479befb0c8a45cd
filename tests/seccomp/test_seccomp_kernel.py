"""Compiled filters loaded by the real exec helper, in a child, on the real kernel.

Each test runs `minirun-exec -1 <fd> <flags> /bin/busybox busybox <applet>`
(the same call the runtime makes as the container's last step) with the
memfd from write_filter_fd, and looks at what the filtered program could do.
"""
import errno
import json
import os
import signal
import subprocess
import sys

import prctl
import pytest

import minirun
from minirun.linux import seccomp
from seccomp_profiles import DOCKER_SHAPED

HELPER = os.path.join(os.path.dirname(minirun.__file__), "libexec", "minirun-exec")
BUSYBOX = "/bin/busybox"
EPERM_TEXT = os.strerror(errno.EPERM)


def run_filtered(profile, argv, preexec_fn=None):
    """Run [path, argv0, args...] under the compiled profile through the exec helper."""
    assert os.access(HELPER, os.X_OK), f"{HELPER} missing: pip install -e . builds it"
    fd, flags = seccomp.write_filter_fd(profile)
    try:
        return subprocess.run([HELPER, "-1", str(fd), str(flags), *argv], pass_fds=[fd],
                              capture_output=True, text=True, timeout=60,
                              preexec_fn=preexec_fn)
    finally:
        if fd >= 0:
            os.close(fd)


def busybox(profile, *args, **kw):
    return run_filtered(profile, [BUSYBOX, "busybox", *args], **kw)


def deny(names, errno_ret=None, action="SCMP_ACT_ERRNO", args=None, **extra):
    rule = {"names": names, "action": action}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    if args:
        rule["args"] = args
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule], **extra}


# glibc's mkdir() is mkdir(2) on x86_64; mkdirat too, in case busybox uses it.
MKDIR = ["mkdir", "mkdirat"]


@pytest.fixture
def sleepers():
    """Processes to send signals to; killed and reaped whatever happens."""
    procs = []

    def start():
        p = subprocess.Popen([BUSYBOX, "sleep", "60"])
        procs.append(p)
        return p
    try:
        yield start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def test_no_filter_control(tmp_path):
    r = subprocess.run([HELPER, "-1", "-1", "0", BUSYBOX, "busybox", "mkdir", str(tmp_path / "d")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d").is_dir()


def test_blocked_mkdir_fails_with_eperm(tmp_path):
    r = busybox(deny(MKDIR, errno_ret=1), "mkdir", str(tmp_path / "d"))
    assert r.returncode == 1
    assert EPERM_TEXT in r.stderr
    assert not (tmp_path / "d").exists()


def test_configured_errno_is_returned(tmp_path):
    r = busybox(deny(MKDIR, errno_ret=errno.ENOSPC), "mkdir", str(tmp_path / "d"))
    assert r.returncode == 1
    assert os.strerror(errno.ENOSPC) in r.stderr
    assert not (tmp_path / "d").exists()


def test_other_syscalls_still_work(tmp_path):
    (tmp_path / "f").write_text("hello\n")
    r = busybox(deny(MKDIR, errno_ret=1), "cat", str(tmp_path / "f"))
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


def test_unknown_syscall_names_ignored_at_run_time(tmp_path):
    r = busybox(deny(MKDIR + ["not_a_syscall_anywhere"], errno_ret=1), "mkdir",
                str(tmp_path / "d"))
    assert r.returncode == 1 and EPERM_TEXT in r.stderr


def test_argument_filter_on_kill(sleepers):
    target = sleepers()
    # kill(pid, SIGTERM) refused; kill(pid, 0) allowed.
    profile = deny(["kill"], errno_ret=1,
                   args=[{"index": 1, "value": signal.SIGTERM, "op": "SCMP_CMP_EQ"}])
    r = busybox(profile, "kill", "-0", str(target.pid))
    assert r.returncode == 0, r.stderr
    r = busybox(profile, "kill", "-TERM", str(target.pid))
    assert r.returncode != 0 and EPERM_TEXT in r.stderr
    assert target.poll() is None


def test_conditions_on_different_args_are_anded(sleepers):
    protected, other = sleepers(), sleepers()
    profile = deny(["kill"], errno_ret=1, args=[
        {"index": 0, "value": protected.pid, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": signal.SIGTERM, "op": "SCMP_CMP_EQ"}])
    assert busybox(profile, "kill", "-TERM", str(protected.pid)).returncode != 0
    assert busybox(profile, "kill", "-TERM", str(other.pid)).returncode == 0
    assert other.wait(timeout=10) == -signal.SIGTERM
    assert protected.poll() is None


def test_conditions_on_the_same_arg_are_separate_rules(sleepers):
    # runc's rule: two comparisons of one argument become two rules (OR).
    target = sleepers()
    profile = deny(["kill"], errno_ret=1, args=[
        {"index": 1, "value": signal.SIGTERM, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": signal.SIGKILL, "op": "SCMP_CMP_EQ"}])
    assert busybox(profile, "kill", "-TERM", str(target.pid)).returncode != 0
    assert busybox(profile, "kill", "-KILL", str(target.pid)).returncode != 0
    assert busybox(profile, "kill", "-0", str(target.pid)).returncode == 0
    assert target.poll() is None


def test_masked_eq_on_personality():
    # Refuse personality(PER_LINUX32) by its low byte; PER_LINUX still works.
    profile = deny(["personality"], errno_ret=1, args=[
        {"index": 0, "value": 0xFF, "valueTwo": 0x0008, "op": "SCMP_CMP_MASKED_EQ"}])
    r = busybox(profile, "linux32", BUSYBOX, "true")
    assert r.returncode != 0 and EPERM_TEXT in r.stderr
    r = busybox(profile, "linux64", BUSYBOX, "true")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_fatal_actions_deliver_sigsys(tmp_path, action):
    r = busybox(deny(MKDIR, action=action), "mkdir", str(tmp_path / "d"))
    assert r.returncode == -signal.SIGSYS
    assert not (tmp_path / "d").exists()


def test_trace_without_tracer_is_enosys(tmp_path):
    r = busybox(deny(MKDIR, action="SCMP_ACT_TRACE"), "mkdir", str(tmp_path / "d"))
    assert r.returncode == 1 and os.strerror(errno.ENOSYS) in r.stderr


def test_log_action_allows(tmp_path):
    r = busybox(deny(MKDIR, action="SCMP_ACT_LOG"), "mkdir", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d").is_dir()


def test_all_supported_flags_load(tmp_path):
    profile = deny(MKDIR, errno_ret=1, flags=seccomp.supported_flags())
    r = busybox(profile, "mkdir", str(tmp_path / "d"))
    assert r.returncode == 1 and EPERM_TEXT in r.stderr


def test_loading_needs_no_new_privs_or_cap_sys_admin(tmp_path):
    """The kernel's rule the runtime must respect: without CAP_SYS_ADMIN the
    helper can only load the filter if no_new_privs is already set."""
    def drop_sys_admin():
        prctl.capbset_drop(prctl.CAP_SYS_ADMIN)

    def drop_sys_admin_set_nnp():
        drop_sys_admin()
        prctl.set_no_new_privs(1)

    r = busybox(deny(MKDIR, errno_ret=1), "true", preexec_fn=drop_sys_admin)
    assert r.returncode == 1 and "load seccomp filter" in r.stderr
    assert os.strerror(errno.EACCES) in r.stderr
    r = busybox(deny(MKDIR, errno_ret=1), "mkdir", str(tmp_path / "d"),
                preexec_fn=drop_sys_admin_set_nnp)
    assert r.returncode == 1 and EPERM_TEXT in r.stderr


# ---- Docker's default profile shape ----------------------------------------

def test_docker_shaped_allows_ordinary_work(tmp_path):
    script = f"echo hi; mkdir {tmp_path}/d && ls -d {tmp_path}/d; busybox linux32 busybox true"
    r = busybox(DOCKER_SHAPED, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"hi\n{tmp_path}/d\n"


def test_docker_shaped_refuses_namespaces():
    # unshare(2) is not on the list -> the default action, EPERM.
    r = busybox(DOCKER_SHAPED, "unshare", "-m", "true")
    assert r.returncode != 0 and EPERM_TEXT in r.stderr


def test_docker_shaped_errnos_from_python():
    """Syscall by syscall: not listed -> EPERM, clone3 -> its ENOSYS rule,
    newer than anything listed -> ENOSYS (the stub)."""
    code = (
        "import ctypes, json\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def err(*a):\n"
        "    ctypes.set_errno(0)\n"
        "    return libc.syscall(*a), ctypes.get_errno()\n"
        # syslog(SIZE_BUFFER), clone3(NULL, 0), syscall 1000, getpid
        "print(json.dumps([err(103, 10, None, 0), err(435, None, 0), err(1000), err(39)]))\n"
    )
    r = run_filtered(DOCKER_SHAPED, [sys.executable, "python", "-I", "-S", "-c", code])
    assert r.returncode == 0, r.stderr
    syslog, clone3, future, getpid = json.loads(r.stdout)
    assert syslog == [-1, errno.EPERM]
    assert clone3 == [-1, errno.ENOSYS]
    assert future == [-1, errno.ENOSYS]
    assert getpid[0] > 0
