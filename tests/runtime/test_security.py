"""Hardening that every container gets: fd hygiene, cwd check, the sealed
exec helper, non-dumpable setup."""
import os
import socket

from minirun_testlib import run_in


def test_only_stdio_reaches_the_container(runtime, bundle, cid, tmp_path):
    leaked = os.open(str(tmp_path), os.O_RDONLY)  # inheritable-looking fd in the caller
    os.set_inheritable(leaked, True)
    try:
        bundle.process["args"] = ["ls", "/proc/self/fd"]
        bundle.save()
        out = runtime("run", "--bundle", bundle.path, cid, pass_fds=(leaked,))
        # ls itself opens one fd for the directory it lists.
        assert sorted(int(x) for x in out.stdout.split()) == [0, 1, 2, 3]
    finally:
        os.close(leaked)


def test_preserve_fds(runtime, bundle, cid, tmp_path):
    import shlex
    import subprocess

    payload = tmp_path / "payload"
    payload.write_text("passed through\n")
    bundle.process["args"] = ["sh", "-c", "cat <&3; ls /proc/self/fd | wc -l"]
    bundle.save()
    cmd = shlex.join(runtime.cmd("run", "--preserve-fds", "1", "--bundle", bundle.path, cid))
    out = subprocess.run(f"exec {cmd} 3<{shlex.quote(str(payload))}", shell=True,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "passed through"
    assert lines[1].strip() == "5"  # 0,1,2, the preserved 3, and ls's own


def test_cwd_must_exist_inside_the_container(runtime, bundle, cid):
    bundle.process["cwd"] = "/no/such/dir"
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "/no/such/dir" in out.stderr
    assert runtime.ids() == []


def test_missing_executable_fails_at_create_and_leaves_nothing(runtime, bundle, cid):
    bundle.process["args"] = ["/bin/does-not-exist"]
    bundle.save()
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0
    assert "/bin/does-not-exist" in out.stderr and "no such file or directory" in out.stderr
    assert runtime.ids() == []
    by_name = runtime("create", "--bundle", bundle.path, cid, check=False)
    bundle.process["args"] = ["nosuchcommand"]
    bundle.save()
    by_name = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert "executable file not found in $PATH" in by_name.stderr
    assert runtime.ids() == []


def test_non_executable_is_permission_denied(runtime, bundle, cid):
    bundle.process["args"] = ["/etc/passwd"]
    bundle.save()
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0 and "permission denied" in out.stderr


def test_host_python_is_not_reachable_from_the_container(runtime, bundle, cid):
    """/proc/<init>/exe is a sealed memfd while the container waits for start."""
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.startswith("/memfd:minirun-exec")
    try:
        os.open(f"/proc/{pid}/exe", os.O_WRONLY)
        raise AssertionError("the exec helper must not be writable")
    except OSError:
        pass


def test_console_socket_receives_pty_master(runtime, bundle, cid, tmp_path):
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    bundle.process["terminal"] = True
    bundle.process["args"] = ["sh", "-c", "tty; echo size $(stty size)"]
    bundle.process["consoleSize"] = {"height": 40, "width": 100}
    bundle.save()
    runtime("create", "--console-socket", path, "--bundle", bundle.path, cid)
    conn, _ = listener.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 1024, 4)
    assert len(fds) == 1 and msg.startswith(b"/dev/pts/")
    master = fds[0]
    runtime("start", cid)
    data = b""
    while b"size" not in data or not data.endswith(b"\n"):
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    conn.close()
    listener.close()
    assert b"/dev/pts/0" in data and b"size 40 100" in data


def test_terminal_without_console_socket_is_an_error(runtime, bundle, cid):
    bundle.process["terminal"] = True
    bundle.save()
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0 and "console-socket" in out.stderr
    assert runtime.ids() == []


def test_exec_gets_only_stdio_and_same_hardening(runtime, bundle, cid, tmp_path):
    bundle.process["args"] = ["sleep", "300"]
    bundle.process["noNewPrivileges"] = True
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    out = runtime("exec", cid, "sh", "-c",
                  "echo $(ls /proc/self/fd); grep -E 'NoNewPrivs|CapBnd|CapEff' /proc/self/status;"
                  " pwd", log=True)  # the --log file must not leak in either
    lines = out.stdout.splitlines()
    assert sorted(int(x) for x in lines[0].split()) == [0, 1, 2, 3], \
        "stdio plus ls's own directory fd"
    status = dict(line.split(":\t") for line in lines[1:4])
    assert status["NoNewPrivs"] == "1"
    assert status["CapBnd"] == status["CapEff"] == format((1 << 29) | (1 << 5) | (1 << 10), "016x")
    assert lines[-1] == "/"


def test_sys_fs_cgroup_is_read_only(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid,
                 "mkdir /sys/fs/cgroup/memory/x 2>&1 || echo refused; "
                 "echo 1 > /sys/fs/cgroup/pids/pids.max 2>/dev/null || echo refused")
    assert out.stdout.count("refused") == 2
