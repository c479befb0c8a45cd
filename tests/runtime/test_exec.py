"""`minirun exec`: joins every namespace and the cgroup of a running container."""
import json
import os
import time


def _start_sleeper(runtime, bundle, cid, **config):
    bundle.process["args"] = ["sleep", "300"]
    bundle.config.update(config)
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    return runtime.state(cid)["pid"]


def test_exec_joins_namespaces_and_cgroup(runtime, bundle, cid):
    bundle.config["hostname"] = "exec-host"
    init = _start_sleeper(runtime, bundle, cid)
    out = runtime("exec", cid, "sh", "-c",
                  "hostname; echo $$; for n in pid net ipc uts mnt cgroup; do "
                  "readlink /proc/self/ns/$n; done; cat /proc/self/cgroup")
    lines = out.stdout.splitlines()
    assert lines[0] == "exec-host"
    assert int(lines[1]) > 1, "a new process in the container's pid namespace"
    for kind, line in zip(("pid", "net", "ipc", "uts", "mnt", "cgroup"), lines[2:8]):
        assert line == os.readlink(f"/proc/{init}/ns/{kind}"), kind
    pids = json.loads(runtime("ps", "--format", "json", cid).stdout)
    assert pids == [init], "the exec'd process has exited and left the cgroup"


def test_exec_exit_code_env_cwd_user(runtime, bundle, cid):
    _start_sleeper(runtime, bundle, cid)
    out = runtime("exec", "--env", "FOO=bar", "--cwd", "/etc", "--user", "1000:1000", cid,
                  "sh", "-c", 'echo $FOO; pwd; id -u; id -g; exit 3', check=False)
    assert out.returncode == 3
    assert out.stdout.split() == ["bar", "/etc", "1000", "1000"]


def test_exec_process_file_detached(runtime, bundle, cid, tmp_path):
    _start_sleeper(runtime, bundle, cid)
    proc = {"args": ["sh", "-c", "echo from-process-file > /dev/shm/marker; sleep 300"],
            "env": ["PATH=/bin:/usr/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                             "permitted": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 777, "soft": 777}],
            "noNewPrivileges": True}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    runtime("exec", "--process", tmp_path / "p.json", "--detach", "--pid-file",
            tmp_path / "exec.pid", cid)
    pid = int((tmp_path / "exec.pid").read_text())
    for _ in range(200):
        if "sleep" in open(f"/proc/{pid}/cmdline").read():
            break
        time.sleep(0.01)
    status = open(f"/proc/{pid}/status").read()
    assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000020" in status
    limits = open(f"/proc/{pid}/limits").read()
    assert any(ln.startswith("Max open files") and "777" in ln for ln in limits.splitlines())
    assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")
    assert pid in json.loads(runtime("ps", "--format", "json", cid).stdout)
    out = runtime("exec", cid, "cat", "/dev/shm/marker")
    assert out.stdout == "from-process-file\n"


def test_exec_in_stopped_container_fails(runtime, bundle, cid):
    runtime("run", "-d", "--bundle", bundle.path, cid)  # `true`: exits at once
    for _ in range(200):
        if runtime.state(cid)["status"] == "stopped":
            break
        time.sleep(0.01)
    out = runtime("exec", cid, "true", check=False)
    assert out.returncode != 0 and "stopped" in out.stderr


def test_exec_missing_command_names_it(runtime, bundle, cid):
    _start_sleeper(runtime, bundle, cid)
    out = runtime("exec", cid, "/bin/nope", check=False)
    assert out.returncode != 0 and "/bin/nope" in out.stderr


def test_exec_tty_with_console_socket(runtime, bundle, cid, tmp_path):
    import socket

    _start_sleeper(runtime, bundle, cid)
    path = str(tmp_path / "exec-console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    try:
        runtime("exec", "--detach", "--tty", "--console-socket", path, cid,
                "sh", "-c", "tty; echo done")
        conn, _ = listener.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 1024, 4)
        assert len(fds) == 1 and msg.startswith(b"/dev/pts/")
        data = b""
        while b"done" not in data:
            try:
                chunk = os.read(fds[0], 1024)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(fds[0])
        conn.close()
        assert b"/dev/pts/" in data and b"done" in data
    finally:
        listener.close()
