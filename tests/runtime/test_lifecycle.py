"""Every OCI verb, driven through the CLI as engines drive runc."""
import json
import os
import subprocess
import time

from minirun_testlib import MINIRUN, run_in


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_spec_writes_runc_like_config(tmp_path):
    out = subprocess.run([MINIRUN, "spec", "--bundle", tmp_path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["ociVersion"].startswith("1.")
    assert config["process"]["args"] == ["sh"]
    assert {ns["type"] for ns in config["linux"]["namespaces"]} >= {"pid", "mount", "ipc", "uts",
                                                                    "network"}
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    assert "inheritable" not in config["process"]["capabilities"]
    again = subprocess.run([MINIRUN, "spec", "--bundle", tmp_path], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr


def test_create_start_state_kill_delete(runtime, bundle, cid, tmp_path):
    bundle.process["args"] = ["sleep", "300"]
    bundle.config["annotations"] = {"org.example.k": "v"}
    bundle.save()
    pid_file = tmp_path / "pid"
    runtime("create", "--bundle", bundle.path, "--pid-file", pid_file, cid)
    raw = pid_file.read_text()
    assert raw.isdigit(), "pid file must be a bare decimal with no newline"
    pid = int(raw)
    st = runtime.state(cid)
    assert st["status"] == "created" and st["pid"] == pid and st["id"] == cid
    assert st["bundle"] == bundle.path and st["annotations"] == {"org.example.k": "v"}
    assert st["ociVersion"].startswith("1.")
    # The init waits in the sealed exec helper, not in Python (CVE-2019-5736).
    assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:minirun-exec")
    # No minirun helper stays behind: the init was re-parented away from us.
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        assert b"minirun" not in f.read()

    runtime("start", cid)
    st = runtime.state(cid)
    assert st["status"] == "running" and st["pid"] == pid, "the pid must not change at start"
    assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")

    start_again = runtime("start", cid, check=False)
    assert start_again.returncode != 0 and "running" in start_again.stderr

    refused = runtime("delete", cid, check=False)
    assert refused.returncode != 0 and "not stopped" in refused.stderr
    assert _alive(pid)

    runtime("kill", cid, "KILL")
    for _ in range(200):
        if runtime.state(cid)["status"] == "stopped":
            break
        time.sleep(0.01)
    assert runtime.state(cid)["status"] == "stopped"
    again = runtime("kill", cid, "TERM", check=False)
    assert again.returncode != 0 and "container not running" in again.stderr
    runtime("kill", "--all", cid, "9")  # runc: --all on a stopped container succeeds
    runtime("delete", cid)
    gone = runtime("state", cid, check=False)
    assert gone.returncode != 0 and "does not exist" in gone.stderr
    runtime("delete", "--force", cid)  # engines do this after the fact: exit 0


def test_kill_signal_forms(runtime, bundle, cid):
    bundle.process["args"] = ["sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.05; done"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    time.sleep(0.3)  # let the shell install its trap
    runtime("kill", cid, "SIGUSR1")
    pid = runtime.state(cid)["pid"]
    for _ in range(300):
        if not _alive(pid):
            break
        time.sleep(0.01)
    assert runtime.state(cid)["status"] == "stopped"
    bad = runtime("kill", cid, "NOPE", check=False)
    assert bad.returncode != 0 and "signal" in bad.stderr


def test_kill_numeric_and_default(runtime, bundle, cid):
    # pid 1 of a pid namespace ignores signals it has no handler for: trap TERM.
    bundle.process["args"] = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    time.sleep(0.3)
    runtime("kill", cid)  # default: TERM
    pid = runtime.state(cid)["pid"]
    for _ in range(300):
        if not _alive(pid):
            break
        time.sleep(0.01)
    assert runtime.state(cid)["status"] == "stopped"


def test_delete_of_created_container_needs_force(runtime, bundle, cid):
    """runtime-spec: delete of a container that is not stopped MUST fail
    (runc and crun allow it for "created"; minirun follows the spec)."""
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    refused = runtime("delete", cid, check=False)
    assert refused.returncode != 0 and "not stopped: created" in refused.stderr
    assert runtime.state(cid)["status"] == "created", "a refused delete has no effect"
    runtime("delete", "--force", cid)
    for _ in range(200):
        if not _alive(pid):
            break
        time.sleep(0.01)
    assert not _alive(pid)


def test_delete_force_running(runtime, bundle, cid):
    bundle.process["args"] = ["sh", "-c", "sleep 300 & sleep 300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    runtime("delete", "--force", cid)
    assert not _alive(pid)
    assert runtime("state", cid, check=False).returncode != 0


def test_run_foreground_exit_codes_and_stdio(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid, "echo out; echo err >&2; exit 7", check=False)
    assert out.returncode == 7
    assert out.stdout == "out\n" and "err\n" in out.stderr
    assert cid not in runtime.ids(), "run deletes the container after it exits"


def test_run_foreground_reports_signal_as_128_plus_n(runtime, bundle, cid):
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    fg = subprocess.Popen(runtime.cmd("run", "--bundle", bundle.path, cid),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if cid in runtime.ids() and runtime("state", cid, check=False).returncode == 0 \
                    and runtime.state(cid)["status"] == "running":
                break
            time.sleep(0.01)
        runtime("kill", cid, "KILL")
        assert fg.wait(timeout=30) == 128 + 9
    finally:
        fg.kill()
        fg.wait()


def test_run_stdin_passes_through(runtime, bundle, cid):
    bundle.process["args"] = ["sh", "-c", "read line; echo got:$line"]
    bundle.save()
    out = runtime("run", "--bundle", bundle.path, cid, input="hello\n")
    assert out.stdout == "got:hello\n"


def test_run_detached_and_list(runtime, bundle, cid, tmp_path):
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, "--pid-file", tmp_path / "p", cid)
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [(cid, "running")]
    table = runtime("list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"] and cid in table[1]
    assert runtime("list", "-q").stdout.split() == [cid]
    pids = json.loads(runtime("ps", "--format", "json", cid).stdout)
    assert int((tmp_path / "p").read_text()) in pids


def test_ps_table(runtime, bundle, cid):
    bundle.process["args"] = ["sh", "-c", "sleep 300 & sleep 301"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    time.sleep(0.2)
    table = runtime("ps", cid).stdout
    assert "sleep 300" in table and "sleep 301" in table


def test_version_and_help():
    out = subprocess.run([MINIRUN, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("minirun version ")
    assert "spec: 1." in out.stdout
    helptext = subprocess.run([MINIRUN, "--help"], capture_output=True, text=True).stdout
    for verb in ("create", "start", "state", "kill", "delete", "run", "list", "spec"):
        assert verb in helptext


def test_works_with_empty_environment(runtime, bundle, cid):
    """podman calls kill/delete with only XDG_RUNTIME_DIR= set."""
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid, env={"XDG_RUNTIME_DIR": ""})
    runtime("kill", cid, "9", env={})
    runtime("delete", "--force", cid, env={})


def test_concurrent_calls_are_serialised(runtime, bundle, cid):
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    procs = [subprocess.Popen(runtime.cmd("start", cid), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    codes = [p.wait(timeout=30) for p in procs]
    assert sorted(codes) == [0, 1, 1, 1], "exactly one start may win"
    assert runtime.state(cid)["status"] == "running"


def test_run_foreground_with_terminal_relays_the_pty(runtime, bundle, cid):
    """process.terminal without --console-socket: `run` is the terminal's other end."""
    import shlex

    bundle.process["terminal"] = True
    bundle.process["args"] = ["sh", "-c", "tty; stty size; echo done"]
    bundle.save()
    cmd = shlex.join(runtime.cmd("run", "--bundle", bundle.path, cid))
    out = subprocess.run(["script", "-qec", f"stty rows 33 cols 91; {cmd}", "/dev/null"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    text = out.stdout.replace("\r", "")
    assert "/dev/pts/0" in text and "33 91" in text and "done" in text
