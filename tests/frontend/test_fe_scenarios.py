"""The Docker-like front end end to end, as a user types it (root, real kernel,
the locally built busybox image).  Every test runs in a private store and
--root; the `docker` fixture fails the test if anything is left behind."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from fe_helpers import Pty, derive_layout, free_port, http_get, wait_for


def test_run_rm_prints_and_leaves_nothing(docker, tmp_path):
    cidfile = tmp_path / "cid"
    res = docker("run", "--rm", "--cidfile", cidfile, "busybox", "echo", "hi")
    assert res.stdout == "hi\n"
    assert docker.ids() == set()
    # The fixture looks for this id's record, rootfs mount, upper dir, runtime
    # state, cgroups and veth.
    docker.seen.add(cidfile.read_text())


def test_exit_codes(docker):
    assert docker("run", "--rm", "busybox", "sh", "-c", "exit 7", check=False).returncode == 7
    res = docker("run", "--rm", "busybox", "no-such-command", check=False)
    assert res.returncode == 127 and "not found" in res.stderr
    res = docker("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert res.returncode == 126 and "permission denied" in res.stderr
    res = docker("run", "--rm", "--no-such-flag", "busybox", "true", check=False)
    assert res.returncode == 125
    res = docker("run", "--rm", "--memory", "lots", "busybox", "true", check=False)
    assert res.returncode == 125 and "invalid --memory" in res.stderr
    res = docker("run", "--rm", "localhost:1/nothing:here", "true", check=False)
    assert res.returncode == 125 and len(res.stderr.strip().splitlines()) <= 2
    assert docker.ids() == set()


def test_name_conflict_and_port_in_use_create_nothing(docker):
    docker("container", "create", "--name", "taken", "busybox", "true")
    res = docker("run", "--name", "taken", "busybox", "true", check=False)
    assert res.returncode == 125 and "already in use" in res.stderr
    assert len(docker.ids()) == 1
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        res = docker("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
    assert res.returncode == 125 and f"Bind for 0.0.0.0:{port} failed" in res.stderr
    assert len(docker.ids()) == 1
    port = free_port()
    docker("run", "-d", "--name", "holder", "-p", f"{port}:80", "busybox", "sleep", "60")
    res = docker("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
    assert res.returncode == 125 and "port is already allocated" in res.stderr, res.stderr
    assert len(docker.ids()) == 2
    docker("rm", "-f", "taken", "holder")


def test_web_server_published_on_localhost(docker):
    port = free_port()
    cid = docker("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox",
                 "httpd", "-f", "-p", "80", "-h", "/var/www").stdout.strip()
    assert len(cid) == 64
    body = wait_for(lambda: http_get(port), what="the web server")
    assert "hello from a minirun container" in body
    ps = docker("ps").stdout
    assert "web" in ps and f"0.0.0.0:{port}->80/tcp" in ps
    assert docker("port", "web").stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"
    docker("rm", "-f", "web")
    assert http_get(port, timeout=0.5) is None


def test_environment_from_flags_and_file(docker, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=file value\nSHARED=from-file\n\n")
    res = docker("run", "--rm", "-e", "A=1", "--env-file", env_file, "-e", "SHARED=from-flag",
                 "--hostname", "box", "busybox", "sh", "-c",
                 'echo "$A|$FROM_FILE|$SHARED|$HOSTNAME|$(hostname)"')
    assert res.stdout.strip() == "1|file value|from-flag|box|box"


def test_bind_mount_writes_show_on_host(docker, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in").write_text("from host\n")
    res = docker("run", "--rm", "-v", f"{host}:/data", "busybox", "sh", "-c",
                 "cat /data/in; echo from container > /data/out")
    assert res.stdout == "from host\n"
    assert (host / "out").read_text() == "from container\n"
    res = docker("run", "--rm", "-v", f"{host}:/data:ro", "busybox", "sh", "-c",
                 "echo x > /data/ro", check=False)
    assert res.returncode != 0 and not (host / "ro").exists()


def test_named_volume_survives_rm(docker):
    docker("run", "--name", "writer", "-v", "keep:/data", "busybox", "sh", "-c",
           "echo kept > /data/file")
    docker("rm", "writer")
    assert "keep" in docker("volume", "ls", "-q").stdout.split()
    res = docker("run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/file")
    assert res.stdout == "kept\n"
    docker("run", "-d", "--name", "user", "-v", "keep:/data", "busybox", "sleep", "60")
    res = docker("volume", "rm", "keep", check=False)
    assert res.returncode != 0 and "in use" in res.stderr
    docker("rm", "-f", "user")
    docker("volume", "rm", "keep")
    assert docker("volume", "ls", "-q").stdout.strip() == ""


def test_image_volume_is_anonymous_and_copied_up(docker, busybox_layout, tmp_path):
    layout = derive_layout(busybox_layout, str(tmp_path / "vol"), Volumes={"/var/www": {}})
    docker.load(layout, "withvol:latest")
    docker("run", "--name", "v", "withvol", "cat", "/var/www/index.html")
    assert "hello" in docker("logs", "v").stdout
    mounts = docker.inspect("v")["Mounts"]
    assert [m["Destination"] for m in mounts] == ["/var/www"]
    assert docker("volume", "ls", "-q").stdout.split() == [mounts[0]["Name"]]
    docker("rm", "-v", "v")
    assert docker("volume", "ls", "-q").stdout.strip() == ""


def test_memory_limit_oom_kills(docker):
    hog = "x=a; while true; do x=$x$x; done"
    res = docker("run", "--name", "hog", "--memory", "16m", "--memory-swap", "16m",
                 "busybox", "sh", "-c", hog, check=False, timeout=60)
    assert res.returncode == 137
    state = docker.inspect("hog")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    docker("rm", "hog")


def test_restart_on_failure_three_times(docker, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    docker("run", "-d", "--name", "flaky", "--restart", "on-failure:3", "-v", f"{runs}:/runs",
           "busybox", "sh", "-c", "echo run >> /runs/count; exit 3")
    wait_for(lambda: docker.inspect("flaky", "{{.State.Status}}") == "exited"
             and docker.inspect("flaky", "{{.RestartCount}}") == "3", timeout=20,
             what="three restarts")
    time.sleep(0.6)  # a fourth start would come 0.8 s after the third
    assert (runs / "count").read_text() == "run\n" * 4
    doc = docker.inspect("flaky")
    assert doc["RestartCount"] == 3 and doc["State"]["ExitCode"] == 3
    docker("rm", "flaky")


def test_restart_always_stops_on_stop(docker):
    docker("run", "-d", "--name", "loop", "--restart", "always", "busybox", "true")
    wait_for(lambda: int(docker.inspect("loop", "{{.RestartCount}}")) >= 2, timeout=20,
             what="restarts")
    docker("stop", "-t", "1", "loop")
    count = docker.inspect("loop", "{{.RestartCount}}")
    time.sleep(1.0)
    assert docker.inspect("loop", "{{.State.Status}}") == "exited"
    assert docker.inspect("loop", "{{.RestartCount}}") == count
    docker("rm", "loop")


def test_health_check_turns_unhealthy(docker):
    docker("run", "-d", "--name", "sick", "--health-cmd", "test -e /tmp/ok",
           "--health-interval", "0.3s", "--health-retries", "2", "busybox", "sh", "-c",
           "touch /tmp/ok; sleep 1.5; rm /tmp/ok; sleep 60")
    wait_for(lambda: docker.inspect("sick", "{{.State.Health.Status}}") == "healthy",
             timeout=15, what="healthy")
    wait_for(lambda: docker.inspect("sick", "{{.State.Health.Status}}") == "unhealthy",
             timeout=15, what="unhealthy")
    assert "(unhealthy)" in docker("ps").stdout
    health = docker.inspect("sick")["State"]["Health"]
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    docker("rm", "-f", "sick")


def test_image_healthcheck_is_used(docker, busybox_layout, tmp_path):
    layout = derive_layout(busybox_layout, str(tmp_path / "hc"), Healthcheck={
        "Test": ["CMD-SHELL", "exit 0"], "Interval": 300_000_000, "Retries": 1})
    docker.load(layout, "withhc:latest")
    docker("run", "-d", "--name", "fine", "withhc", "sleep", "60")
    wait_for(lambda: docker.inspect("fine", "{{.State.Health.Status}}") == "healthy",
             timeout=15, what="healthy")
    docker("rm", "-f", "fine")


def test_logs_follow(docker):
    docker("run", "-d", "--name", "talker", "busybox", "sh", "-c",
           "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done; echo oops >&2")
    follow = docker.popen("logs", "-f", "talker", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    out, err = follow.communicate(timeout=20)
    assert follow.returncode == 0
    assert out.splitlines() == [f"line {i}" for i in range(1, 6)]
    assert err == "oops\n"
    assert docker("logs", "--tail", "2", "talker").stdout == "line 5\n"
    stamped = docker("logs", "-t", "talker").stdout.splitlines()[0]
    assert stamped.endswith(" line 1") and stamped[:4].isdigit() and "T" in stamped
    with open(docker.inspect("talker")["LogPath"]) as f:
        first = json.loads(f.readline())
    assert first["log"] == "line 1\n" and first["stream"] == "stdout" and first["time"]
    docker("rm", "talker")


def test_log_rotation(docker):
    docker("run", "--name", "chatty", "--log-opt", "max-size=2k", "--log-opt", "max-file=2",
           "busybox", "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done")
    path = docker.inspect("chatty")["LogPath"]
    assert os.path.getsize(path) < 2048 + 200 and os.path.exists(path + ".1")
    assert not os.path.exists(path + ".2")
    lines = docker("logs", "chatty").stdout.splitlines()
    assert lines[-1] == "line 299" and 10 < len(lines) < 300
    docker("rm", "chatty")


def test_exec_it_through_a_pty(docker):
    docker("run", "-d", "--name", "box", "-e", "GREETING=hey", "busybox", "sleep", "60")
    term = Pty(docker.cmd("exec", "-it", "box", "sh"), docker.env)
    try:
        term.read_until("# ")
        term.write("echo $((6*7)) $GREETING; tty; stty size\n")
        term.read_until("42 hey")
        term.read_until("30 100")
        term.write("exit 4\n")
        assert term.wait() == 4
    finally:
        term.kill()
    assert b"/dev/pts/" in term.out
    res = docker("exec", "-w", "/tmp", "-u", "1000", "box", "sh", "-c", "pwd; id -u")
    assert res.stdout.split() == ["/tmp", "1000"]
    assert docker("exec", "box", "nope", check=False).returncode == 127
    docker("rm", "-f", "box")


def test_run_it_through_a_pty(docker):
    term = Pty(docker.cmd("run", "-it", "--rm", "busybox", "sh"), docker.env, rows=25, cols=90)
    try:
        term.read_until("# ")
        term.write("stty size\n")
        term.read_until("25 90")
        term.resize(40, 120)
        time.sleep(0.2)
        term.write("stty size; exit 3\n")
        term.read_until("40 120")
        assert term.wait() == 3
    finally:
        term.kill()


def test_stdin_and_signals_when_attached(docker, tmp_path):
    res = docker("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="hello\n")
    assert res.stdout == "HELLO\n"
    big = tmp_path / "big"
    big.write_bytes(os.urandom(1 << 20))
    with open(big, "rb") as f:   # a regular file: not pollable, sent whole
        res = subprocess.run(docker.cmd("run", "--rm", "-i", "busybox", "wc", "-c"), stdin=f,
                             capture_output=True, env=docker.env, timeout=60)
    assert res.stdout.decode().strip() == str(1 << 20)
    res = docker("run", "--rm", "busybox", "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x")
    assert res.stdout == "x" * 3000000
    proc = docker.popen("run", "--rm", "busybox", "sh", "-c",
                        'trap "echo caught; exit 5" INT; echo ready; while :; do sleep 0.1; done',
                        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert out == "caught\n" and proc.returncode == 5


def test_stop_kills_after_the_timeout(docker):
    docker("run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
           'trap "" TERM; echo ready; while :; do sleep 0.1; done')
    wait_for(lambda: "ready" in docker("logs", "stubborn").stdout, what="the trap")
    t0 = time.monotonic()
    docker("stop", "-t", "1", "stubborn")
    took = time.monotonic() - t0
    assert 1.0 <= took < 8, took
    state = docker.inspect("stubborn")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    docker("rm", "stubborn")


def test_stop_with_a_handler_is_quick_and_wait_reports(docker):
    docker("run", "-d", "--name", "polite", "busybox", "sh", "-c",
           'trap "exit 0" TERM; while :; do sleep 0.1; done')
    waiter = docker.popen("wait", "polite", stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    docker("stop", "polite")
    assert waiter.communicate(timeout=15)[0].strip() == "0"
    assert docker.inspect("polite", "{{.State.ExitCode}}") == "0"
    docker("restart", "polite")
    assert docker.inspect("polite", "{{.State.Status}}") == "running"
    docker("rm", "-f", "polite")


def test_lifecycle_commands(docker):
    cid = docker("container", "create", "--name", "c1", "-l", "team=a", "busybox",
                 "sh", "-c", "echo started; sleep 60").stdout.strip()
    assert docker("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.strip() == "c1 created"
    docker("container", "start", "c1")
    assert docker("ps", "-q").stdout.strip() == cid[:12]
    assert docker("ps", "-q", "--no-trunc", "--filter", "label=team=a").stdout.strip() == cid
    row = json.loads(docker("ps", "--format", "json").stdout)
    assert row["Names"] == "c1" and row["State"] == "running"
    assert docker.inspect(cid[:5], "{{.Name}} {{.Config.Image}}") == "/c1 busybox"
    assert "sleep 60" in docker("top", "c1").stdout
    stats = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}").stdout.split()
    assert stats[0] == "c1" and int(stats[1]) >= 1
    docker("container", "pause", "c1")
    assert docker.inspect("c1", "{{.State.Status}}") == "paused"
    docker("container", "unpause", "c1")
    docker("rename", "c1", "c2")
    assert docker.inspect("c2", "{{.Name}}") == "/c2"
    res = docker("rm", "c2", check=False)
    assert res.returncode != 0 and "stop the container" in res.stderr
    docker("container", "kill", "c2")
    assert docker.inspect("c2", "{{.State.ExitCode}}") == "137"
    assert docker("logs", "c2").stdout == "started\n"
    out = docker("container", "prune", "-f").stdout
    assert cid in out
    assert docker("ps", "-aq").stdout.strip() == ""


def test_detached_rm_and_start_attach(docker):
    docker("run", "-d", "--rm", "--name", "brief", "busybox", "sh", "-c", "sleep 0.3")
    wait_for(lambda: docker("ps", "-aq").stdout.strip() == "", what="--rm removal")
    docker("container", "create", "--name", "later", "busybox", "sh", "-c", "echo out; exit 2")
    res = docker("container", "start", "-a", "later", check=False)
    assert res.returncode == 2 and res.stdout == "out\n"
    docker("rm", "later")


def test_limits_caps_and_init(docker):
    res = docker("run", "--rm", "--pids-limit", "20", "--cpus", "0.5", "--cpu-shares", "512",
                 "--ulimit", "nofile=100:200", "--cap-drop", "ALL", "--cap-add", "NET_RAW",
                 "--read-only", "--tmpfs", "/scratch", "--security-opt", "no-new-privileges",
                 "busybox", "sh", "-c",
                 "ulimit -n; grep -E 'CapEff|NoNewPrivs' /proc/self/status; touch /scratch/ok "
                 "&& echo tmpfs-ok; touch /nope 2>/dev/null || echo ro-ok")
    lines = res.stdout.split("\n")
    assert lines[0] == "100"
    assert "CapEff:\t0000000000002000" in res.stdout  # CAP_NET_RAW only
    assert "NoNewPrivs:\t1" in res.stdout
    assert "tmpfs-ok" in res.stdout and "ro-ok" in res.stdout
    if os.path.exists("/usr/bin/catatonit") or os.path.exists("/usr/bin/tini-static"):
        res = docker("run", "--rm", "--init", "busybox", "ps", "-o", "pid,args")
        assert "1 /dev/init -- ps" in res.stdout


def test_user_defined_network_and_names(docker):
    docker("network", "create", "fe-net")
    try:
        docker("run", "-d", "--name", "server", "--network", "fe-net", "busybox",
               "httpd", "-f", "-p", "80", "-h", "/var/www")
        res = docker("run", "--rm", "--network", "fe-net", "busybox", "sh", "-c",
                     "wget -q -O - http://server/")
        assert "hello" in res.stdout
        res = docker("run", "--rm", "--network", "container:server", "busybox",
                     "wget", "-q", "-O", "-", "http://127.0.0.1/")
        assert "hello" in res.stdout
        res = docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
        assert [line.split(":")[1].strip() for line in res.stdout.splitlines()] == ["lo"]
        docker("rm", "-f", "server")
    finally:
        docker("network", "rm", "fe-net", check=False)


def test_system_prune(docker):
    docker("run", "--name", "old", "-v", "/anon", "busybox", "true")
    docker("volume", "create", "named")
    out = docker("system", "prune", "-f", "--volumes").stdout
    assert "Deleted Containers" in out
    assert docker("ps", "-aq").stdout.strip() == ""
    assert docker("volume", "ls", "-q").stdout.split() == ["named"]
    docker("volume", "rm", "named")


@pytest.mark.parametrize("args", [["run", "--bundle", "{bundle}", "{cid}"],
                                  ["run", "-b", "{bundle}", "--keep", "{cid}"]])
def test_oci_run_still_works(docker, bundle, cid, args):
    bundle.process["args"] = ["echo", "oci"]
    bundle.save()
    res = docker(*[a.format(bundle=bundle.path, cid=cid) for a in args])
    assert res.stdout == "oci\n"
    docker("delete", "--force", cid, check=False)
    assert docker.ids() == set()
