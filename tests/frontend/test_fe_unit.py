"""Pure logic of the front end: flag parsing, restart back-off, templates,
the log writer and reader, the run/ps/exec dispatch, names and id prefixes."""
import json
import os
import threading
import time

import pytest

from minirun.errors import MinirunError
from minirun.errors import ContainerNotFound
from minirun.frontend import lifecycle, logs, options, records, template, views
from minirun.frontend.monitor import LogWriter


@pytest.mark.parametrize("text,value", [("64m", 64 << 20), ("1g", 1 << 30), ("512", 512),
                                        ("2k", 2048), ("1.5m", int(1.5 * (1 << 20))),
                                        ("64MB", 64 << 20), ("10mib", 10 << 20)])
def test_sizes(text, value):
    assert options.parse_size(text) == value


@pytest.mark.parametrize("text,value", [("30s", 30), ("1m30s", 90), ("500ms", 0.5),
                                        ("2h", 7200), ("0.3s", 0.3), ("5", 5)])
def test_durations(text, value):
    assert options.parse_duration(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["", "lots", "1x", "s30"])
def test_bad_durations(bad):
    with pytest.raises(options.BadOption):
        options.parse_duration(bad)


def test_restart_policies():
    assert options.parse_restart("no") == {"Name": "no", "MaximumRetryCount": 0}
    assert options.parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert options.parse_restart("always")["Name"] == "always"
    for bad in ("sometimes", "always:3", "on-failure:x", "on-failure:-1"):
        with pytest.raises(options.BadOption):
            options.parse_restart(bad)


def test_volumes():
    bind = options.parse_volume("/srv/data:/data:ro")
    assert (bind.kind, bind.source, bind.destination, bind.read_only) == \
        ("bind", "/srv/data", "/data", True)
    named = options.parse_volume("cache:/var/cache")
    assert (named.kind, named.name, named.read_only) == ("volume", "cache", False)
    anon = options.parse_volume("/scratch")
    assert (anon.kind, anon.name) == ("volume", "")
    for bad in ("a:b", "x:/y:bogus", "/a:/", "a:b:c:d", "bad name:/x"):
        with pytest.raises(options.BadOption):
            options.parse_volume(bad)


def test_tmpfs_ulimit_caps_security():
    tmpfs = options.parse_tmpfs("/run:size=1m,mode=1777")
    assert (tmpfs.kind, tmpfs.destination, tmpfs.tmpfs_options) == (
        "tmpfs", "/run", ("nosuid", "nodev", "noexec", "size=1048576", "mode=1777"))
    assert options.parse_ulimit("nofile=10:20") == {"Name": "nofile", "Soft": 10, "Hard": 20}
    assert options.parse_ulimit("nproc=5")["Hard"] == 5
    with pytest.raises(options.BadOption):
        options.parse_ulimit("nofile=20:10")
    with pytest.raises(options.BadOption):
        options.parse_ulimit("bogus=1")
    assert options.parse_caps(["net_admin", "CAP_SYS_TIME", "all"], "x") == [
        "CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"]
    with pytest.raises(options.BadOption):
        options.parse_caps(["FLY"], "--cap-add")
    assert options.parse_security_opts(["no-new-privileges"])["no_new_privileges"] is True
    assert options.parse_security_opts(["no-new-privileges:false"])["no_new_privileges"] is False
    assert options.parse_security_opts(["seccomp=unconfined"])["seccomp"] == "unconfined"
    with pytest.raises(options.BadOption):
        options.parse_security_opts(["magic"])


def test_env(tmp_path, monkeypatch):
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=1\nB=two words\nFROM_HOST\nMISSING\n")
    monkeypatch.setenv("FROM_HOST", "h")
    monkeypatch.delenv("MISSING", raising=False)
    assert options.parse_env([str(f)], ["A=override", "C="]) == [
        "A=1", "B=two words", "FROM_HOST=h", "A=override", "C="]
    with pytest.raises(options.BadOption):
        options.parse_env([], ["=x"])
    with pytest.raises(options.BadOption):
        options.parse_env([str(tmp_path / "absent")], [])


def test_healthcheck_flags_override_the_image():
    image = {"config": {"Healthcheck": {"Test": ["CMD", "check"], "Interval": 5_000_000_000,
                                        "Retries": 7}}}
    hc = options.healthcheck(image)
    assert hc["Test"] == ["CMD", "check"] and hc["Interval"] == 5 and hc["Retries"] == 7
    hc = options.healthcheck(image, cmd="curl -f x", interval="1s", retries=2)
    assert hc["Test"] == ["CMD-SHELL", "curl -f x"] and hc["Interval"] == 1 and hc["Retries"] == 2
    assert options.healthcheck(image, disabled=True) is None
    assert options.healthcheck({"config": {"Healthcheck": {"Test": ["NONE"]}}}) is None
    assert options.healthcheck({}) is None


def test_restart_backoff():
    rec = {"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}},
           "RestartCount": 0}
    assert lifecycle.restart_delay(rec, 0, 1) is None
    assert lifecycle.restart_delay(rec, 1, 1) == 0.1
    rec["RestartDelay"] = 0.1
    assert lifecycle.restart_delay(rec, 1, 1) == 0.2
    assert lifecycle.restart_delay(rec, 1, 11) == 0.1   # ran long enough: reset
    rec["RestartCount"] = 3
    assert lifecycle.restart_delay(rec, 1, 1) is None
    rec["HostConfig"]["RestartPolicy"] = {"Name": "always"}
    rec["RestartDelay"] = 50
    assert lifecycle.restart_delay(rec, 0, 1) == 60
    rec["ManualStop"] = True
    assert lifecycle.restart_delay(rec, 0, 1) is None


def test_exec_error_codes():
    """126/127 come from the error's kind (raised in the container's init), not its text."""
    from minirun import errors

    assert errors.docker_exit_code(errors.CommandNotFound("exec: x: anything")) == 127
    assert errors.docker_exit_code(errors.CommandNotInvokable("exec: /etc/passwd")) == 126
    assert errors.docker_exit_code(errors.ExecError("chdir to cwd failed")) == 125
    assert errors.docker_exit_code(MinirunError("executable file not found")) == 125
    # the kind survives the trip from the init to the runtime (spawn.report_error)
    for cls in (errors.CommandNotFound, errors.CommandNotInvokable, errors.ExecError):
        got = errors.from_report({"error": "e", "kind": cls.kind})
        assert type(got) is cls and str(got) == "e"
    assert type(errors.from_report({"error": "e", "kind": "setup"})) is MinirunError


def test_templates():
    doc = {"State": {"Status": "running", "Running": True, "Health": None},
           "Name": "/web", "Config": {"Env": ["A=1"], "Labels": {"k": "v"}}}
    assert template.render("{{.State.Status}} {{ .Name }}", doc) == "running /web"
    assert template.render("{{json .Config.Env}}", doc) == '["A=1"]'
    assert template.render("{{.State.Running}} {{.State.Health}}", doc) == "true <no value>"
    assert template.render("{{.Config.Labels}}", doc) == "map[k:v]"
    assert template.render("{{upper .State.Status}}", doc) == "RUNNING"
    assert json.loads(template.render("json", doc)) == doc
    assert template.render("{{.Nope}}", doc) == "<no value>"  # a map: Go's missingkey=default
    with pytest.raises(MinirunError):
        template.render_list("{{.Nope}}", [doc])  # a list row: an unknown field


def test_human_duration():
    assert views.human_duration(0.3) == "Less than a second"
    assert views.human_duration(1) == "1 second"
    assert views.human_duration(45) == "45 seconds"
    assert views.human_duration(90) == "About a minute"
    assert views.human_duration(600) == "10 minutes"
    assert views.human_duration(3 * 3600) == "3 hours"


def _entries(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_log_writer_lines_partials_and_rotation(tmp_path):
    path = str(tmp_path / "log.json")
    w = LogWriter(path, max_size=400, max_files=3)
    w.write("stdout", b"one\ntw")
    w.write("stdout", b"o\n")
    w.write("stderr", b"no newline")
    assert [e["log"] for e in _entries(path)] == ["one\n", "two\n"]
    w.flush()
    assert _entries(path)[-1] == {"log": "no newline", "stream": "stderr",
                                  "time": _entries(path)[-1]["time"]}
    for i in range(50):
        w.write("stdout", b"line %d\n" % i)
    w.close()
    files = sorted(os.listdir(tmp_path))
    assert files == ["log.json", "log.json.1", "log.json.2"]
    assert all(os.path.getsize(tmp_path / f) <= 400 for f in files)
    # the newest lines survive, in order, across the files
    seen = [e["log"] for f in ("log.json.2", "log.json.1", "log.json")
            for e in _entries(tmp_path / f)]
    assert seen[-1] == "line 49\n"
    numbers = [int(x.split()[1]) for x in seen if x.startswith("line")]
    assert numbers == sorted(numbers) and numbers == list(range(numbers[0], 50))


def test_log_writer_splits_long_lines(tmp_path):
    path = str(tmp_path / "log.json")
    w = LogWriter(path, max_size=1 << 20, max_files=1)
    w.write("stdout", b"x" * 40000 + b"\n")
    w.close()
    parts = [e["log"] for e in _entries(path)]
    assert "".join(parts) == "x" * 40000 + "\n" and len(parts) == 3


class _Collect:
    def __init__(self):
        self.lines = []

    def __call__(self, entry):
        self.lines.append(entry["log"])


def test_logs_tail_and_since(tmp_path):
    path = str(tmp_path / "log.json")
    with open(path + ".1", "w") as f:
        f.write(json.dumps({"log": "old\n", "stream": "stdout",
                            "time": "2020-01-01T00:00:00.000000000Z"}) + "\n")
    with open(path, "w") as f:
        for i in range(3):
            f.write(json.dumps({"log": f"new {i}\n", "stream": "stdout",
                                "time": f"2030-01-01T00:00:0{i}.000000000Z"}) + "\n")
    out = _Collect()
    logs.show(path, out)[0].close()
    assert out.lines == ["old\n", "new 0\n", "new 1\n", "new 2\n"]
    out = _Collect()
    logs.show(path, out, tail=2)[0].close()
    assert out.lines == ["new 1\n", "new 2\n"]
    printer = logs.Printer(since=logs.parse_since("2025-01-01T00:00:00Z"))
    assert printer.since > 0
    assert logs.parse_since("10m", now=1000.0) == 400.0


def test_logs_follow_across_rotation(tmp_path):
    path = str(tmp_path / "log.json")
    writer = LogWriter(path, max_size=300, max_files=20)  # several rotations per poll
    done = threading.Event()

    def produce():
        for i in range(40):
            writer.write("stdout", b"msg %d\n" % i)
            time.sleep(0.005)
        writer.close()
        time.sleep(0.3)
        done.set()

    out = _Collect()
    t = threading.Thread(target=produce)
    t.start()
    logs.follow(path, out, still_running=lambda: not done.is_set())
    t.join()
    assert out.lines == [f"msg {i}\n" for i in range(40)]


def test_dispatch_run_ps_exec(tmp_path, monkeypatch):
    from minirun.cli import dispatch as d

    def is_oci(cmd, args, root="/nonexistent"):
        return cmd.pick(list(args), root)

    monkeypatch.chdir(tmp_path)
    for cmd in (d.run_dispatch, d.create_dispatch):
        assert is_oci(cmd, ["--bundle", "/b", "id"])
        assert is_oci(cmd, ["-b", "/b", "id"])
        assert is_oci(cmd, ["--pid-file", "p", "id"])
        assert not is_oci(cmd, ["busybox", "echo", "hi"])
        assert not is_oci(cmd, ["--name", "x", "busybox", "ls", "-b"])
        assert not is_oci(cmd, ["myid"])
    assert is_oci(d.run_dispatch, ["-b", "/b", "-d", "id"])
    assert not is_oci(d.run_dispatch, ["-it", "--rm", "-e", "X=1", "busybox"])
    (tmp_path / "config.json").write_text("{}")
    assert is_oci(d.run_dispatch, ["myid"]) and is_oci(d.run_dispatch, ["-d", "myid"])
    assert not is_oci(d.run_dispatch, ["busybox", "true"])
    assert not is_oci(d.ps_dispatch, ["-a"])
    assert not is_oci(d.ps_dispatch, ["--format", "json", "-q"])
    assert is_oci(d.ps_dispatch, ["c1"]) and is_oci(d.ps_dispatch, ["--format", "json", "c1"])
    assert is_oci(d.events_dispatch, ["c1"]) and not is_oci(d.events_dispatch, ["--since", "1m"])
    root = tmp_path / "root"
    (root / "engine-ctr").mkdir(parents=True)
    monkeypatch.setenv("MINIRUN_STORE", str(tmp_path / "store"))
    fe = records.Frontend(str(tmp_path / "store"), str(root)).ensure()
    cid = fe.new_id()
    os.mkdir(fe.record_dir(cid))
    with open(os.path.join(fe.record_dir(cid), "container.json"), "w") as f:
        json.dump({"Id": cid, "Name": "/web"}, f)
    fe.reserve_name("web", cid)
    (root / cid).mkdir()  # a running front-end container has runtime state too
    verbs = [d.exec_dispatch, d.start_dispatch, d.kill_dispatch, d.pause_dispatch,
             d.resume_dispatch, d.unpause_dispatch, d.delete_dispatch, d.rm_dispatch,
             d.update_dispatch]
    for cmd in verbs:
        rest = ["x"] if cmd.name in ("exec", "kill") else []
        # an OCI container, an unknown id (runc's "does not exist") -> runc's form
        assert is_oci(cmd, ["engine-ctr", *rest], str(root)), cmd.name
        assert is_oci(cmd, ["unknown", *rest], str(root)), cmd.name
        # a front-end name, id prefix or full id -> Docker's form
        assert not is_oci(cmd, ["web", *rest], str(root)), cmd.name
        assert not is_oci(cmd, [cid[:6], *rest], str(root)), cmd.name
        assert not is_oci(cmd, [cid, *rest], str(root)), cmd.name
    # more containers than runc's verb takes: Docker's (`rm gone web`)
    assert not is_oci(d.rm_dispatch, ["-f", "unknown", "web"], str(root))
    assert not is_oci(d.start_dispatch, ["a", "b"], str(root))
    assert is_oci(d.exec_dispatch, ["--process", "p.json", "web"], str(root))
    assert not is_oci(d.exec_dispatch, ["-it", "web", "sh"], str(root))
    assert is_oci(d.kill_dispatch, ["--all", "web", "9"], str(root))
    assert not is_oci(d.kill_dispatch, ["-s", "HUP", "web"], str(root))
    assert is_oci(d.update_dispatch, ["--resources", "-", "web"], str(root))
    assert not is_oci(d.delete_dispatch, ["-f", "web"], str(root))


def test_names_and_prefixes(tmp_path):
    fe = records.Frontend(str(tmp_path), str(tmp_path / "root")).ensure()
    a = "ab" + "0" * 62
    b = "ac" + "1" * 62
    for cid in (a, b):
        os.mkdir(fe.record_dir(cid))
        with open(os.path.join(fe.record_dir(cid), "container.json"), "w") as f:
            json.dump({"Id": cid, "Name": "/x", "Created": ""}, f)
    fe.reserve_name("one", a)
    with pytest.raises(records.Conflict):
        fe.reserve_name("one", b)
    with pytest.raises(MinirunError):
        fe.reserve_name("bad/name", b)
    assert fe.resolve("one") == a and fe.resolve("ab") == a and fe.resolve(b) == b
    with pytest.raises(MinirunError, match="multiple"):
        fe.resolve("a")
    with pytest.raises(ContainerNotFound):
        fe.resolve("zz")
    generated = fe.generate_name(b)
    assert fe.resolve(generated) == b and "_" in generated
    fe.remove_record(a, "one")
    with pytest.raises(ContainerNotFound):
        fe.resolve("one")
    fe.reserve_name("one", b)  # free again
