"""The click-free fast path of `ps` and `run` (cli/frontfast.py) against click,
the reference CLI: the same option tables, the same keywords and RunOptions,
the same output; and the modules each fast verb imports."""
import os
import subprocess
import sys

import pytest

from minirun.cli import frontfast
from minirun.frontend import recordfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Options of `run` the fast path leaves to click: click converts their values
# (int), they are click's own (--help), or a secondary form (--no-sig-proxy).
RUN_LEFT_TO_CLICK = {"-c", "--cpu-shares", "--pids-limit", "--health-retries", "--stop-timeout",
                     "--help", "--sig-proxy", "--no-sig-proxy"}
PS_LEFT_TO_CLICK = {"-n", "--last", "--help"}


def _python_path():
    return os.pathsep.join([REPO] + [p for p in sys.path if p and os.path.isdir(p)])


def _click_options(cmd):
    """option string -> (parameter name, kind) of a click command."""
    import click

    out = {}
    for p in cmd.params:
        if not isinstance(p, click.Option):
            continue
        kind = (frontfast.FLAG if p.is_flag else frontfast.MULTIPLE if p.multiple
                else frontfast.VALUE)
        for opt in p.opts:
            out[opt] = (p.name, kind, p.type)
        for opt in p.secondary_opts:
            out[opt] = (p.name, "secondary", p.type)
    ctx = click.Context(cmd)
    for opt in cmd.get_help_option(ctx).opts:
        out[opt] = ("help", frontfast.FLAG, None)
    return out


def _check_table(table, cmd, left_to_click):
    import click

    theirs = _click_options(cmd)
    for opt, (name, kind) in table.items():
        assert opt in theirs, f"{opt} is not an option of click's {cmd.name}"
        assert theirs[opt][:2] == (name, kind), opt
        assert kind == frontfast.FLAG or theirs[opt][2] == click.STRING, \
            f"{opt}: click converts its value; leave it to click"
    missing = set(theirs) - set(table) - left_to_click
    assert not missing, f"options of click's {cmd.name} the fast path does not know: {missing}"


@pytest.mark.unprivileged
def test_run_table_is_clicks():
    from minirun.cli import run

    _check_table(frontfast.RUN_OPTIONS, run.run, RUN_LEFT_TO_CLICK)


@pytest.mark.unprivileged
def test_ps_table_is_clicks():
    from minirun.cli import containers

    _check_table(frontfast.PS_OPTIONS, containers.ps, PS_LEFT_TO_CLICK)


RUN_LINES = [
    ["busybox"],
    ["busybox", "true"],
    ["--rm", "busybox", "true"],
    ["-d", "--network", "none", "busybox", "sleep", "3600"],
    ["-it", "--rm", "busybox", "sh"],
    ["-dit", "--name=web", "-p", "8080:80", "-p8081:81/udp", "busybox", "httpd", "-f", "-p", "80"],
    ["-e", "A=1", "-eB=2", "--env", "C=3", "-l", "k=v", "--label=x=y", "busybox", "env"],
    ["--net", "none", "-h", "box", "-u", "1000:1000", "-w", "/tmp", "busybox", "id", "-u"],
    ["-m", "64m", "--memory-swap", "128m", "--cpus", "1.5", "--shm-size", "32m",
     "--ulimit", "nofile=100:200", "--sysctl", "net.core.somaxconn=1024", "busybox"],
    ["--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
     "--read-only", "--init", "busybox", "sh", "-c", "exit 3"],
    ["--restart", "on-failure:3", "--health-cmd", "true", "--health-interval", "5s",
     "--stop-signal", "USR1", "--tmpfs", "/run:size=1m", "-v", "/data", "--entrypoint", "",
     "busybox", "--not-an-option-of-run"],
    ["--add-host", "db:10.0.0.2", "--dns", "1.1.1.1", "--dns-search", "example.org",
     "--expose", "90", "-P", "--log-opt", "max-size=1m", "--detach-keys", "ctrl-x",
     "busybox"],
]
RUN_LEFT = [
    ["--help"], ["-c", "2", "busybox"], ["--pids-limit", "5", "busybox"],
    ["--no-sig-proxy", "busybox"], ["--bogus", "busybox"], ["-d"], ["--", "busybox"],
    ["--name", "-x", "busybox"], ["-dx", "busybox"], ["-de", "A=1", "busybox"],
    ["--rm=1", "busybox"], ["--bundle", "b", "cid"],
]


@pytest.mark.unprivileged
@pytest.mark.parametrize("args", RUN_LINES, ids=" ".join)
def test_run_keywords_and_options_are_clicks(args, monkeypatch, tmp_path):
    from minirun.cli import dockercalls, run

    monkeypatch.delenv("MINIRUN_STORE", raising=False)
    monkeypatch.delenv("MINIRUN_TRACE", raising=False)
    monkeypatch.chdir(tmp_path)
    parsed = frontfast.parse(["--root", "/tmp/r", "run", *args])
    assert parsed is not None
    verb, glob, kw = parsed
    assert (verb, glob) == ("run", {"root": "/tmp/r"})
    theirs = run.run.make_context("run", list(args)).params
    assert kw == theirs
    assert dockercalls.options_from(kw) == dockercalls.options_from(theirs)


@pytest.mark.unprivileged
@pytest.mark.parametrize("args", RUN_LEFT, ids=" ".join)
def test_run_forms_left_to_click(args, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert frontfast.parse(["run", *args]) is None


@pytest.mark.unprivileged
def test_run_in_a_bundle_directory_is_runcs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert frontfast.parse(["run", "cid"]) is None
    assert frontfast.parse(["run", "busybox", "true"]) is not None


@pytest.mark.unprivileged
@pytest.mark.parametrize("args", [["ps", "ID"], ["ps", "-n", "2"], ["--log", "f", "ps"],
                                  ["ps", "--help"], ["ps", "-ax"], ["--trace", "ps"]])
def test_ps_forms_left_to_click(args):
    assert frontfast.parse(args) is None


def _record(cid, name, status, created, code=0, labels=None):
    return {"Id": cid, "Name": "/" + name, "Created": created, "Path": "sleep",
            "Args": ["3600", "a-long-argument-to-truncate"],
            "State": {"Status": status, "Running": False, "Paused": False, "ExitCode": code,
                      "StartedAt": created, "FinishedAt": "2021-03-04T05:06:08.5Z"
                      if status == "exited" else "0001-01-01T00:00:00Z"},
            "Image": "sha256:" + "ab" * 32, "Mounts": [],
            "Config": {"Image": "busybox", "Labels": labels or {}},
            "HostConfig": {}, "NetworkSettings": {"Networks": {}, "Ports": {}}}


PS_LINES = [[], ["-a"], ["-aq"], ["-q", "--all", "--no-trunc"], ["-a", "--format", "json"],
            ["-a", "--format", "{{.Names}} {{.Status}}"], ["-a", "--format", "table {{.ID}}"],
            ["-l"], ["-a", "-f", "status=exited"], ["--filter", "label=tier=web", "-a"],
            ["-a", "-f", "name=^w"], ["-f", "bogus=1"], ["-a", "--format", "{{.Nope}}"],
            ["-a", "--format", "{{"]]


@pytest.mark.unprivileged
def test_ps_prints_what_click_prints(tmp_path):
    store, root = tmp_path / "store", tmp_path / "root"
    containers = store / "frontend" / "containers"
    records = [_record("a1" * 32, "web", "exited", "2021-03-04T05:06:07.123456789Z", 3,
                       {"tier": "web"}),
               _record("b2" * 32, "db", "created", "2021-03-05T05:06:07.5Z"),
               _record("c3" * 32, "w2", "exited", "2021-03-06T05:06:07Z", 0)]
    for rec in records:
        d = containers / rec["Id"]
        d.mkdir(parents=True)
        recordfile.write(str(d), rec)
    env = dict(os.environ, PYTHONPATH=_python_path(), MINIRUN_STORE=str(store))
    env.pop("MINIRUN_TRACE", None)
    fast_code = ("import sys\nfrom minirun.cli import frontfast\n"
                 "frontfast.try_run(sys.argv[1:])\nsys.exit(99)")
    slow_code = "import sys\nfrom minirun.cli.app import run_click\nrun_click(sys.argv[1:])"
    for args in PS_LINES:
        argv = ["--root", str(root), "ps", *args]
        fast = subprocess.run([sys.executable, "-S", "-c", fast_code, *argv], env=env,
                              capture_output=True, text=True)
        slow = subprocess.run([sys.executable, "-S", "-c", slow_code, *argv], env=env,
                              capture_output=True, text=True)
        if fast.returncode == 99:
            assert args in (["-f", "bogus=1"],), f"ps {args} fell back to click"
            continue
        assert (fast.returncode, fast.stdout, fast.stderr) == \
            (slow.returncode, slow.stdout, slow.stderr), args


@pytest.mark.unprivileged
@pytest.mark.parametrize("text", [
    "2021-03-04T05:06:07.123456789Z", "2021-03-04T05:06:07Z", "2000-02-29T23:59:59.5Z",
    "1999-12-31T23:59:60Z", "2024-12-31T00:00:00.000000001Z", "2021-13-04T05:06:07Z",
    "2021-02-30T05:06:07Z", "2021-03-04 05:06:07Z", "2021-03-04T05:06:07.Z", "garbage", "",
    "0001-01-01T00:00:00Z", "2021-03-04T05:06:07+01:00", "1970-01-01T00:00:00Z"])
def test_timestamps_parse_as_strptime_parses_them(text):
    import calendar
    import time

    def reference(text):
        if not text or text.startswith("0001"):
            return 0.0
        try:
            base, _, frac = text.rstrip("Z").partition(".")
            secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
            return secs + (float("0." + frac) if frac else 0.0)
        except ValueError:
            return 0.0

    assert recordfile.parse_timestamp(text) == reference(text)


# --- what each fast verb imports ---------------------------------------------------------
PROBE = """
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
{body}
"""
# Never in `ps`: each costs more than the listing itself.
PS_EXPENSIVE = {"click", "json", "re", "enum", "signal", "datetime", "typing", "dataclasses",
                "socket", "selectors", "subprocess", "shutil", "contextlib", "collections",
                "functools", "pyroute2", "yaml", "http", "http.client", "ssl", "hashlib",
                "tarfile", "calendar", "_strptime", "minirun.frontend.template",
                "minirun.frontend.control", "minirun.frontend.client", "minirun.image",
                "minirun.network"}
PS_MODULES = {"minirun", "minirun.cli", "minirun.cli.fastpath", "minirun.cli.frontfast",
              "minirun.cli.fastcommon", "minirun.flock",
              "minirun.cli.dockercalls", "minirun.errors", "minirun.log", "minirun.jsonio",
              "minirun.frontend", "minirun.frontend.listing", "minirun.frontend.lookup",
              "minirun.frontend.recordfile", "minirun.frontend.records",
              "minirun.frontend.status", "minirun.frontend.views", "gc", "fcntl", "_json", "os",
              "os.path", "posixpath", "genericpath", "stat", "_stat", "errno",
              "_collections_abc",
              # a running container: the runtime's state, /proc and the freezer (paused?)
              "minirun.runtime", "minirun.runtime.state", "minirun.linux", "minirun.linux.proc",
              "minirun.linux.trace", "minirun.linux.signals", "minirun.cgroups",
              "minirun.cgroups.common", "minirun.cgroups.v1", "minirun.cgroups.v2", "time",
              "select", "resource", "struct", "_struct"}
# Never in `run` (none of its forms needs them before the container runs).
RUN_EXPENSIVE = {"click", "pyroute2", "yaml", "http", "http.client", "ssl", "urllib.request",
                 "minirun.frontend.template", "minirun.image.registry", "minirun.network.bridge",
                 "minirun.network.veth", "minirun.network.nat", "subprocess"}


# All that `run -d` imports when the monitor's forkserver creates the container.
RUN_DETACHED_MODULES = {
    "minirun", "minirun.cli", "minirun.cli.fastpath", "minirun.cli.frontfast", "minirun.cli.fastcommon",
    "minirun.flock",
    "minirun.cli.dockercalls", "minirun.errors", "minirun.log", "minirun.jsonio",
    "minirun.linux", "minirun.linux.signals", "minirun.linux.trace", "minirun.frontend",
    "minirun.frontend.client", "minirun.frontend.control", "minirun.frontend.events",
    "minirun.frontend.lookup", "minirun.frontend.monitor_proto", "minirun.frontend.recordfile",
    "minirun.frontend.records", "minirun.frontend.status", "gc", "fcntl", "_json", "_socket",
    "os", "os.path", "posixpath", "genericpath", "stat", "_stat", "errno", "_collections_abc",
    "struct", "_struct", "time"}


def _wait_for_forkserver(docker):
    from fe_helpers import wait_for

    def ready():
        fs = (_monitor_status(docker) or {}).get("forkserver")
        return fs is not None and fs["ready"]

    wait_for(ready, 60, what="the forkserver to have its imports")


def _modules(tmp_path, env, *argv):
    out = tmp_path / "modules.txt"
    body = "from minirun.cli import main\nmain(sys.argv[1:])"
    with open(tmp_path / "probe.out", "w") as sink:  # files, not pipes: a container's init
        res = subprocess.run([sys.executable, "-S", "-c", PROBE.format(body=body), str(out),
                              *argv], env=env, stdout=sink, stderr=sink, timeout=60)
    assert res.returncode == 0, (tmp_path / "probe.out").read_text()
    return set(out.read_text().split())


def _baseline(tmp_path, env):
    out = tmp_path / "base.txt"
    subprocess.run([sys.executable, "-S", "-c", PROBE.format(body="pass"), str(out)], env=env,
                   check=True)
    return set(out.read_text().split())


def test_ps_and_run_import_only_what_they_use(tmp_path, docker):
    env = dict(docker.env, PYTHONPATH=_python_path())
    baseline = _baseline(tmp_path, env)
    loaded = _modules(tmp_path, env, "--root", docker.root, "ps") - baseline
    assert not loaded & PS_EXPENSIVE, sorted(loaded & PS_EXPENSIVE)
    assert loaded <= PS_MODULES, sorted(loaded - PS_MODULES)
    # the monitor starts with this run; its forkserver is not ready: created here
    loaded = _modules(tmp_path, env, "--root", docker.root, "run", "-d", "--network", "none",
                      "busybox", "sleep", "60") - baseline
    assert "minirun.cli.frontfast" in loaded and "minirun.frontend.create" in loaded
    assert not loaded & RUN_EXPENSIVE, sorted(loaded & RUN_EXPENSIVE)
    # once it is, a worker forked from it creates the container: the CLI imports
    # neither the run options nor the create code
    _wait_for_forkserver(docker)
    loaded = _modules(tmp_path, env, "--root", docker.root, "run", "-d", "--network", "none",
                      "busybox", "sleep", "60") - baseline
    assert "minirun.cli.frontfast" in loaded, sorted(loaded)
    assert loaded <= RUN_DETACHED_MODULES, sorted(loaded - RUN_DETACHED_MODULES)
    # with one container running, `ps` reads its runtime state, still nothing more
    loaded = _modules(tmp_path, env, "--root", docker.root, "ps", "-a") - baseline
    assert not loaded & PS_EXPENSIVE, sorted(loaded & PS_EXPENSIVE)
    assert loaded <= PS_MODULES, sorted(loaded - PS_MODULES)
    assert docker("ps").stdout.count("sleep 60") == 2
    docker("rm", "-f", *docker.ids())


# --- the monitor's forkserver (frontend/forkserver.py) ------------------------------------
def _monitor_status(docker):
    from minirun.frontend import client

    return client.request(docker.root, {"op": "status"}, spawn=False, timeout=10)


def test_workers_forked_by_the_forkserver_behave_as_spawned_ones(docker, tmp_path):
    """Once the forkserver has its imports, start and exit workers are forked from
    it: re-parented to the monitor, exit codes, --rm cleanup and errors unchanged."""
    docker("run", "-d", "--network", "none", "--name", "holder", "busybox", "sleep", "60")
    monitor = docker.monitor_pid()
    _wait_for_forkserver(docker)
    fs = _monitor_status(docker)["forkserver"]
    with open(f"/proc/{fs['pid']}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == monitor  # the monitor's child
    before = fs["forked"]
    res = docker("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; exit 3",
                 check=False)
    assert (res.returncode, res.stdout) == (3, "out\n")
    res = docker("run", "--rm", "--network", "none", "busybox", "nosuchcommand", check=False)
    assert res.returncode == 127 and "nosuchcommand" in res.stderr
    cid = docker("run", "-d", "--network", "none", "busybox", "sleep", "60").stdout.strip()
    # the container's init is the monitor's child (the worker's runtime create
    # re-parents it to the subreaper), as with a spawned worker
    pid = int(docker.inspect(cid, "{{.State.Pid}}"))
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == monitor
    # the create worker works in the CLI's directory with the CLI's environment
    (tmp_path / "vars").write_text("FROM_FILE=yes\n")
    res = subprocess.run(docker.cmd("run", "--rm", "--network", "none", "-e", "FOO",
                                    "--env-file", "vars", "busybox", "sh", "-c",
                                    "echo $FOO $FROM_FILE"), cwd=tmp_path,
                         env=dict(docker.env, FOO="bar"), capture_output=True, text=True)
    assert (res.returncode, res.stdout) == (0, "bar yes\n"), res.stderr
    res = docker("run", "-d", "--network", "none", "--memory", "1k", "busybox", check=False)
    assert (res.returncode, res.stderr) == (125, "minirun: Minimum memory limit allowed is 6MB\n")
    after = _monitor_status(docker)["forkserver"]
    assert after["pid"] == fs["pid"]
    # each run's create (4), start+exit (2), a failed start, a start of -d
    assert after["forked"] >= before + 8
    docker("rm", "-f", cid, "holder")
    assert set(docker.ids()) == set()
    with open(os.path.join(docker.root, ".frontend", "monitor.log")) as f:
        assert "forkserver" not in f.read()
