"""process.*: args, env, cwd, user, umask, rlimits, capabilities,
noNewPrivileges, oomScoreAdj; linux.sysctl."""
from minirun_testlib import run_in


def _status(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(key)


def test_args_env_cwd(runtime, bundle, cid):
    bundle.process["env"] = ["PATH=/bin", "GREETING=hello world"]
    bundle.process["cwd"] = "/etc"
    out = run_in(runtime, bundle, cid, 'echo "$GREETING"; pwd; echo "$0"')
    assert out.stdout.splitlines() == ["hello world", "/etc", "sh"]


def test_args_are_not_split_or_globbed(runtime, bundle, cid):
    bundle.process["args"] = ["echo", "a  b", "*", "$HOME"]
    bundle.save()
    out = runtime("run", "--bundle", bundle.path, cid)
    assert out.stdout == "a  b * $HOME\n"


def test_user_uid_gid_groups_umask(runtime, bundle, cid):
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 65534], "umask": 0o077}
    out = run_in(runtime, bundle, cid, "id -u; id -g; id -G; umask; cat /proc/self/status")
    lines = out.stdout.splitlines()
    assert lines[0] == "1000" and lines[1] == "1000"
    assert set(lines[2].split()) == {"1000", "5", "65534"}
    assert lines[3] == "0077"
    # A non-root user keeps only ambient capabilities across exec.
    assert _status(out.stdout, "CapEff") == _status(out.stdout, "CapAmb")


def test_capabilities(runtime, bundle, cid):
    caps = ["CAP_CHOWN", "CAP_KILL"]
    bundle.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    out = run_in(runtime, bundle, cid, "cat /proc/self/status")
    expect = format((1 << 0) | (1 << 5), "016x")
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert _status(out.stdout, key) == expect, key
    assert _status(out.stdout, "CapInh") == "0" * 16, "never set inheritable caps unasked"


def test_ambient_capabilities_for_non_root(runtime, bundle, cid):
    caps = ["CAP_NET_BIND_SERVICE"]
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                                      "inheritable": caps, "ambient": caps}
    out = run_in(runtime, bundle, cid, "cat /proc/self/status")
    bit = format(1 << 10, "016x")
    assert _status(out.stdout, "CapAmb") == bit and _status(out.stdout, "CapEff") == bit


def test_ambient_needs_inheritable(runtime, bundle, cid):
    """Not inheritable: the kernel refuses it as ambient; left out, with a warning."""
    caps = ["CAP_NET_BIND_SERVICE"]
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                                      "ambient": caps}
    out = run_in(runtime, bundle, cid, "cat /proc/self/status")
    assert _status(out.stdout, "CapAmb") == _status(out.stdout, "CapInh") == "0" * 16
    assert "not raising CAP_NET_BIND_SERVICE" in out.stderr


def test_unknown_capability_is_rejected(runtime, bundle, cid):
    bundle.process["capabilities"]["bounding"] = ["CAP_TEST"]
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "CAP_TEST" in out.stderr
    assert runtime.ids() == []


def test_no_new_privileges(runtime, bundle, cid):
    bundle.process["noNewPrivileges"] = True
    on = run_in(runtime, bundle, cid, "grep NoNewPrivs /proc/self/status")
    assert on.stdout.split()[-1] == "1"
    bundle.process["noNewPrivileges"] = False
    off = run_in(runtime, bundle, cid + "b", "grep NoNewPrivs /proc/self/status")
    assert off.stdout.split()[-1] == "0"


def test_rlimits(runtime, bundle, cid):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
                                 {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    out = run_in(runtime, bundle, cid, "ulimit -n; ulimit -Hn; ulimit -c")
    assert out.stdout.split() == ["321", "654", "0"]


def test_unknown_rlimit_is_rejected(runtime, bundle, cid):
    bundle.process["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "RLIMIT_BOGUS" in out.stderr


def test_oom_score_adj(runtime, bundle, cid):
    bundle.process["oomScoreAdj"] = 321
    out = run_in(runtime, bundle, cid, "cat /proc/self/oom_score_adj")
    assert out.stdout.strip() == "321"


def test_sysctl(runtime, bundle, cid):
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
    out = run_in(runtime, bundle, cid, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")
    assert out.stdout.split() == ["1", "123456789"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456789"


def test_non_namespaced_sysctl_is_refused(runtime, bundle, cid):
    bundle.linux["sysctl"] = {"kernel.panic": "7"}
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "not namespaced" in out.stderr
    with open("/proc/sys/kernel/panic") as f:
        assert f.read().strip() != "7"
    assert runtime.ids() == []


def test_net_sysctl_needs_a_network_namespace(runtime, bundle, cid):
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != "network"]
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "network namespace" in out.stderr
