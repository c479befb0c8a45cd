"""The Docker-like commands as a user types them, against Docker's documented
behaviour and exit codes: the verbs both worlds have (Docker's for front-end
containers, runc's for OCI containers), cp, attach, diff, export/import, port,
events, the run flags that reach the container, typed-ahead input, two bridges
with podman's range taken, and the lines users get for mistakes."""
import json
import os
import signal
import subprocess
import tarfile
import time

import pytest

from fe_helpers import MINIRUN, Pty, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (containers)")


def one_line_error(res, code, text=None):
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    if text:
        assert text in res.stderr, res.stderr


def test_dual_meaning_verbs(docker, tmp_path):
    """create/start/kill/pause/resume/exec/update/delete/rm/events/ps: a front-end
    name gets Docker's behaviour, an OCI container under --root runc's."""
    cid = docker("create", "--name", "web", "-l", "k=v", "busybox", "sleep", "60").stdout.strip()
    assert len(cid) == 64
    bundle = tmp_path / "bundle"
    docker("bundle", "busybox", bundle, "--", "sleep", "60")
    docker("create", "--bundle", bundle, "ocictr")               # runc's create
    try:
        docker("start", "web")                                   # Docker's: prints the name
        docker("start", "ocictr")                                # runc's: prints nothing
        state = json.loads(docker("state", "ocictr").stdout)
        assert state["status"] == "running"
        assert docker("ps", "--format", "{{.Names}} {{.State}}").stdout.split() == [
            "web", "running"]
        assert json.loads(docker("ps", "--format", "json", "ocictr").stdout)  # runc's ps ID
        assert docker("exec", "web", "echo", "in-web").stdout == "in-web\n"
        assert docker("exec", "ocictr", "echo", "in-oci").stdout == "in-oci\n"
        docker("pause", "web")
        assert docker.inspect("web", "{{.State.Status}}") == "paused"
        docker("resume", "web")                                  # resume == unpause
        docker("pause", "ocictr")
        assert json.loads(docker("state", "ocictr").stdout)["status"] == "paused"
        docker("unpause", "ocictr")
        docker("update", "--memory", "32m", "web")
        assert docker.inspect("web", "{{.HostConfig.Memory}}") == str(32 << 20)
        docker("update", "--pids-limit", "50", "ocictr")
        assert docker("kill", "web").stdout == "web\n"           # Docker's: SIGKILL, waits
        assert docker.inspect("web", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
        docker("kill", "ocictr", "9")                            # runc's: ID SIGNAL
        wait_for(lambda: json.loads(docker("state", "ocictr").stdout)["status"] == "stopped")
        # containerd's shim (--log on every call) repeats `delete --force ID` after its
        # container is gone: runc's "nothing to do", never Docker's rm of a same-named one
        docker("--log", tmp_path / "shim.log", "delete", "--force", "web")
        assert docker.inspect("web", "{{.Name}}") == "/web"
        res = docker("delete", "web", check=False)               # Docker's rm of a stopped one
        assert res.returncode == 0 and res.stdout == "web\n"
        docker("delete", "ocictr")                               # runc's delete
        one_line_error(docker("start", "nosuch", check=False), 1, "container does not exist")
        one_line_error(docker("kill", "nosuch", "9", check=False), 1, "does not exist")
        assert docker("delete", "--force", "nosuch", check=False).returncode == 0
        one_line_error(docker("rm", "-f", "nosuch", "gone", check=False), 1,
                       "No such container: nosuch")
        helped = docker("kill", "--help").stdout
        assert "Docker's form" in helped and "runc's form" in helped and "--all" in helped
    finally:
        docker("delete", "--force", "ocictr", check=False)


def test_cp_both_ways_stopped_container(docker, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("hello\n")
    os.chown(src / "f", 1234, 5678)
    os.symlink("f", src / "link")
    docker("create", "--name", "c", "-v", "vol:/vol", "busybox", "sleep", "60")
    # into a stopped container: ownership is root's, or the source's with -a
    docker("cp", src, "c:/tmp/")
    docker("cp", "-a", src, "c:/tmp/keep")
    docker("cp", src / "f", "c:/vol/in-volume")
    # a symlink in the container pointing outside: resolved inside the rootfs
    docker("cp", src / "f", "c:/etc/minirun-test")
    docker("start", "c")
    docker("exec", "c", "ln", "-s", "/etc", "/tmp/esc")
    docker("exec", "c", "ln", "-s", "/../../../../../../etc", "/tmp/deep")
    docker("cp", src / "f", "c:/tmp/esc/written-through-link")
    docker("cp", src / "f", "c:/tmp/deep/written-deep")
    assert not os.path.exists("/etc/written-through-link")
    assert not os.path.exists("/etc/written-deep")
    out = docker("exec", "c", "sh", "-c", "ls -ln /tmp/src /tmp/keep; cat /vol/in-volume; "
                 "readlink /tmp/src/link; ls /etc/written-through-link /etc/written-deep").stdout
    lines = out.splitlines()
    assert any(line.split()[2:4] == ["0", "0"] and line.endswith(" f") for line in lines)
    assert any(line.split()[2:4] == ["1234", "5678"] and line.endswith(" f") for line in lines)
    assert "hello" in out and "f" in lines and "/etc/written-deep" in out
    docker("stop", "-t", "0", "c")
    # out of a stopped container: files, directories, symlinks, to a file or a directory
    dest = tmp_path / "out"
    dest.mkdir()
    docker("cp", "c:/tmp/keep", dest)                    # an existing dir: dest/keep
    docker("cp", "c:/tmp/src/.", dest / "contents")      # "/." copies the contents
    docker("cp", "c:/tmp/src/link", dest / "link")       # the symlink itself
    docker("cp", "c:/vol/in-volume", dest / "from-volume")
    assert (dest / "keep" / "f").read_text() == "hello\n"
    assert (dest / "contents" / "f").read_text() == "hello\n"
    assert os.readlink(dest / "link") == "f"
    assert (dest / "from-volume").read_text() == "hello\n"
    assert os.stat(dest / "keep" / "f").st_uid == 0      # the caller's, without -a
    docker("cp", "-a", "c:/tmp/keep/f", dest / "f-archive")
    assert os.stat(dest / "f-archive").st_uid == 1234
    # archives on stdout and stdin
    res = subprocess.run(docker.cmd("cp", "c:/tmp/src", "-"), env=docker.env,
                         capture_output=True, check=True)
    names = sorted(tarfile.open(fileobj=__import__("io").BytesIO(res.stdout)).getnames())
    assert names == ["src", "src/f", "src/link", "src/sub"]
    archive = tmp_path / "in.tar"
    with tarfile.open(archive, "w") as t:
        t.add(src / "f", arcname="from-stdin")
    with open(archive, "rb") as f:
        subprocess.run(docker.cmd("cp", "-", "c:/tmp"), env=docker.env, stdin=f, check=True)
    docker("cp", "c:/tmp/from-stdin", dest / "round-trip")
    assert (dest / "round-trip").read_text() == "hello\n"
    # mistakes: Docker's messages and exit codes
    one_line_error(docker("cp", "c:/nonexistent", dest, check=False), 1, "Could not find")
    one_line_error(docker("cp", src, "c:/etc/passwd", check=False), 1, "cannot copy a directory")
    one_line_error(docker("cp", src, dest, check=False), 125, "at least one container")
    one_line_error(docker("cp", "c:/a", "c:/b", check=False), 125, "between containers")
    # diff and export/import of the stopped container
    diff = docker("diff", "c").stdout.splitlines()
    assert "A /tmp/src" in diff and "A /etc/minirun-test" in diff and "C /tmp" in diff
    assert "A /etc/hosts" not in diff
    tarball = tmp_path / "c.tar"
    docker("export", "-o", tarball, "c")
    with tarfile.open(tarball) as t:
        assert "tmp/src/f" in t.getnames() and "bin/busybox" in t.getnames()
    image_id = docker("import", tarball, "imported:1").stdout.strip()
    assert image_id.startswith("sha256:")
    assert docker("run", "--rm", "imported:1", "cat", "/tmp/src/f").stdout == "hello\n"
    docker("rmi", "imported:1")
    one_line_error(docker("import", "-", check=False, input="not a tar" * 100), 1, "not a tar")


def test_attach_and_detach_keys(docker):
    docker("run", "-dit", "--name", "sh1", "busybox", "sh")
    p = Pty([MINIRUN, "--root", docker.root, "attach", "sh1"], docker.env)
    try:
        time.sleep(0.5)
        p.write("echo attached-$((6*7))\n")
        p.read_until("attached-42")
        p.write("\x10\x11")                      # Ctrl-P Ctrl-Q: detach, leave it running
        assert p.wait() == 0
    finally:
        p.kill()
    assert docker.inspect("sh1", "{{.State.Status}}") == "running"
    p = Pty([MINIRUN, "--root", docker.root, "attach", "--detach-keys", "ctrl-x", "sh1"],
            docker.env)
    try:
        time.sleep(0.5)
        p.write("\x18")
        assert p.wait() == 0
    finally:
        p.kill()
    p = Pty([MINIRUN, "--root", docker.root, "attach", "sh1"], docker.env)
    try:
        time.sleep(0.5)
        p.write("exit 5\n")                      # the container ends: attach exits with it
        assert p.wait() == 5
    finally:
        p.kill()
    one_line_error(docker("attach", "sh1", check=False), 1, "stopped container")
    one_line_error(docker("attach", "--detach-keys", "bogus-key", "sh1", check=False), 125,
                   "invalid detach keys")


def test_typeahead_and_resize(docker):
    """`printf 'echo hi; exit 7\\n' | script -qec 'minirun run -it --rm busybox sh'`
    runs the line (podman does); the pty follows the terminal's size."""
    cmd = " ".join([MINIRUN, "--root", docker.root, "run", "-it", "--rm", "busybox", "sh"])
    res = subprocess.run(["script", "-qec", cmd, "/dev/null"], input=b"echo hi; exit 7\n",
                         env=docker.env, capture_output=True, timeout=60)
    assert res.returncode == 7 and b"hi\r\n" in res.stdout, res.stdout
    p = Pty([MINIRUN, "--root", docker.root, "run", "-it", "--rm", "busybox", "sh"], docker.env,
            rows=30, cols=100)
    try:
        p.read_until("/ # ", 30)
        p.write("stty size\n")
        p.read_until("30 100")
        p.resize(41, 123)
        time.sleep(0.3)
        p.write("stty size\n")
        p.read_until("41 123")
        p.write("exit 3\n")
        assert p.wait() == 3
    finally:
        p.kill()


def test_events_create_start_die_oom_health(docker):
    ev = docker.popen("events", "--format", "{{json .}}", stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        res = docker("run", "--name", "oomer", "-m", "8m", "--memory-swap", "8m", "busybox",
                     "sh", "-c", "x=a; while true; do x=$x$x; done", check=False)
        assert res.returncode == 137
        assert docker.inspect("oomer", "{{.State.OOMKilled}}") == "true"
        docker("run", "--name", "ok", "busybox", "true")
        docker("run", "-d", "--name", "hc", "--health-cmd", "true", "--health-interval", "0.3s",
               "busybox", "sleep", "30")
        wait_for(lambda: docker.inspect("hc", "{{.State.Health.Status}}") == "healthy", 20)
        docker("rm", "-f", "oomer", "ok", "hc")
        time.sleep(0.5)
    finally:
        ev.send_signal(signal.SIGINT)
        out, _ = ev.communicate(timeout=10)
    events = [json.loads(line) for line in out.decode().splitlines()]
    seen = [(e["Actor"]["Attributes"]["name"], e["Action"]) for e in events]
    for want in [("oomer", "create"), ("oomer", "start"), ("oomer", "oom"), ("oomer", "die"),
                 ("ok", "die"), ("hc", "health_status: healthy"), ("hc", "kill"),
                 ("ok", "destroy")]:
        assert want in seen, (want, seen)
    assert seen.index(("oomer", "oom")) < seen.index(("oomer", "die"))
    die = next(e for e in events if e["Action"] == "die" and e["Actor"]["Attributes"]["name"]
               == "oomer")
    assert die["Actor"]["Attributes"]["exitCode"] == "137" and die["Type"] == "container"
    # history with --since/--until and filters, as text
    past = docker("events", "--since", "10m", "--until", "0s", "--filter", "event=die",
                  "--filter", "container=ok").stdout.splitlines()
    assert len(past) == 1 and " container die " in past[0] and "name=ok" in past[0]
    one_line_error(docker("events", "--filter", "colour=red", check=False), 125, "invalid filter")


def test_run_flags_reach_the_container(docker, tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "data").write_text("from host\n")
    labels = tmp_path / "labels"
    labels.write_text("team=blue\n")
    cidfile = tmp_path / "cid"
    script = ("cat /b/data; grep -c ' /t ' /proc/mounts; df -k /dev/shm | tail -1; "
              "ls -l /dev/mynull; grep -E 'db|gw' /etc/hosts; cat /etc/resolv.conf; "
              "echo x > /v/f && cat /v/f; touch /b/ro 2>/dev/null || echo read-only")
    out = docker("run", "--name", "flags", "--cidfile", cidfile, "--label-file", labels,
                 "--mount", f"type=bind,source={bind},target=/b,readonly",
                 "--mount", "type=volume,source=named,target=/v",
                 "--mount", "type=tmpfs,target=/t,tmpfs-size=1m",
                 "--shm-size", "2m", "--device", "/dev/null:/dev/mynull",
                 "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway",
                 "--dns", "9.9.9.9", "--dns-search", "example.com", "--userns", "host",
                 "--expose", "7000", "busybox", "sh", "-c", script).stdout
    assert "from host" in out and "read-only" in out and "10.1.2.3\tdb" in out
    assert "\tgw" in out and "nameserver 9.9.9.9" in out and "search example.com" in out
    assert " 2048 " in out and "/dev/mynull" in out and out.count("x\n") == 1
    assert cidfile.read_text() == docker.inspect("flags", "{{.Id}}")
    one_line_error(docker("run", "--cidfile", cidfile, "busybox", "true", check=False), 125,
                   "container ID file found")
    assert docker.inspect("flags", "{{index .Config.Labels \"team\"}}") == "blue"
    assert docker.inspect("flags", "{{json .Config.ExposedPorts}}") == '{"7000/tcp":{}}'
    # logs: --until, --details
    docker("run", "--name", "talk", "busybox", "echo", "said")
    assert docker("logs", "--details", "talk").stdout == " said\n"
    assert docker("logs", "--until", "1h", "talk").stdout == ""       # before it ran
    assert docker("logs", "--since", "1h", "--until", "0s", "talk").stdout == "said\n"
    # -P publishes every exposed port; `port` with no container lists them all
    docker("run", "-d", "--name", "pub", "-P", "--expose", "81", "-p", "127.0.0.1::82",
           "busybox", "sleep", "30")
    ports = docker("port", "pub").stdout.splitlines()
    assert len(ports) == 2 and any(line.startswith("81/tcp -> 0.0.0.0:") for line in ports)
    assert docker("port", "pub", "82").stdout.startswith("127.0.0.1:")
    assert any(line.startswith("pub\t81/tcp") for line in docker("port").stdout.splitlines())
    one_line_error(docker("port", "pub", "99", check=False), 1, "No public port")
    # ps --filter: status, name, ancestor, exited, label
    fmt = ["--format", "{{.Names}}"]
    assert docker("ps", "--filter", "status=running", *fmt).stdout.split() == ["pub"]
    assert sorted(docker("ps", "-a", "--filter", "exited=0", *fmt).stdout.split()) == [
        "flags", "talk"]
    assert docker("ps", "-a", "--filter", "label=team=blue", *fmt).stdout.split() == ["flags"]
    assert docker("ps", "-a", "--filter", "name=^ta", *fmt).stdout.split() == ["talk"]
    assert len(docker("ps", "-a", "--filter", "ancestor=busybox", *fmt).stdout.split()) == 3
    one_line_error(docker("ps", "--filter", "status=sleepy", check=False), 125, "status=sleepy")
    # prune --filter until=: nothing is older than an hour; then everything stopped goes
    assert "Deleted" not in docker("container", "prune", "-f", "--filter", "until=1h").stdout
    pruned = docker("container", "prune", "-f", "--filter", "label=team=blue").stdout
    assert "Deleted Containers" in pruned and docker.ids().__len__() == 2
    docker("rm", "-f", "pub", "talk")
    docker("volume", "rm", "named")


def test_mistakes_are_one_line(docker, tmp_path):
    for args, code, text in [
        (("run", "--memory", "99999999999999999999g", "busybox", "true"), 125, "out of range"),
        (("run", "--mount", "type=bind,target=/x", "busybox"), 125, "source is required"),
        (("run", "--device", "/nonexistent", "busybox"), 125, "/nonexistent"),
        (("ps", "--format", "{{.Names"), 125, "template parsing error: template: :1:1:"),
        (("inspect", "-f", "{{len .}", "x"), 125, "template parsing error"),
        (("images", "--format", "{{.Nope}}"), 125, "can't evaluate field Nope"),
        (("create", "--name", "bad/name", "busybox"), 125, "Invalid container name"),
        (("exec", "nosuch", "true"), 1, "does not exist"),
        (("logs", "nosuch"), 1, "No such container: nosuch"),
    ]:
        one_line_error(docker(*args, check=False), code, text)
    docker("create", "--name", "x1", "busybox", "nonexistent-cmd")
    one_line_error(docker("start", "-a", "x1", check=False), 127)
    res = docker("run", "--rm", "busybox", "/etc/passwd", check=False)
    one_line_error(res, 126, "permission denied")
    assert docker.inspect("x1", "{{.Name}} {{len .Config.Cmd}}") == "/x1 1"
    nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             MINIRUN, "ps"], capture_output=True, text=True)
    one_line_error(nobody, 1, "minirun needs root")
    for shell in ("bash", "zsh", "fish"):
        script = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 MINIRUN, "completion", shell], capture_output=True, text=True)
        assert script.returncode == 0 and "_MINIRUN_COMPLETE" in script.stdout


def test_two_bridges_with_podmans_range_taken(docker):
    """A podman-style bridge holds 10.88.0.0/16: minirun's default network and a
    new one pick other ranges, and both bridges keep working."""
    from minirun.network import bridge as br

    name = "mrt-pm" + str(os.getpid() % 10000)
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.88.0.1/16", "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        docker("network", "create", "second")
        try:
            out = docker("run", "--rm", "busybox", "sh", "-c",
                         "ip -4 -o addr show eth0; ping -c1 -W2 $(ip route | awk "
                         "'/default/ {print $3}') >/dev/null && echo gateway-ok").stdout
            assert "gateway-ok" in out and "10.88." not in out
            nets = {n["name"]: n.get("subnet") for n in json.loads(
                docker("network", "ls", "--format", "json").stdout)}
            import ipaddress

            podman = ipaddress.ip_network("10.88.0.0/16")
            for net in ("bridge", "second"):
                assert not ipaddress.ip_network(nets[net]).overlaps(podman), nets
            assert not ipaddress.ip_network(nets["bridge"]).overlaps(
                ipaddress.ip_network(nets["second"]))
            assert docker("run", "--rm", "--network", "second", "busybox", "true")
            route = subprocess.run(["ip", "route", "get", "10.88.0.5"], capture_output=True,
                                   text=True, check=True).stdout
            ours = [n.get("bridge") for n in json.loads(
                docker("network", "ls", "--format", "json").stdout) if n.get("bridge")]
            assert ours and not any(f"dev {b} " in route for b in ours)  # podman's range stays
            assert any(n.overlaps(podman) for n in br.host_networks())
        finally:
            docker("network", "rm", "second", check=False)
        one_line_error(docker("network", "create", "--subnet", "10.88.0.0/24", "clash",
                              check=False), 1, "overlaps")
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)
