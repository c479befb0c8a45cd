"""Capabilities exactly as configured, for run and exec, compared with runc on
the same bundle: inheritable as listed, ambient only those also permitted
and inheritable (the rest left out with a warning)."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

from minirun_testlib import Runtime

RUNC = shutil.which("runc")
KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
STATUS = ["cat", "/proc/self/status"]

pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (the reference)")


def _caps(text):
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in KEYS:
            out[key] = value.strip()
    assert set(out) == set(KEYS), text
    return out


def _runc_spec_bundle(path, rootfs, edit):
    """`runc spec`'s own config.json (ambient listed, inheritable empty), edited."""
    os.makedirs(path)
    subprocess.run([RUNC, "spec", "--bundle", path], check=True)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["process"].update(terminal=False, args=STATUS)
    config["root"] = {"path": rootfs, "readonly": True}
    edit(config)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def _as_is(config):
    pass


def _non_root_with_ambient(config):
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps,
                                         "permitted": caps, "inheritable": caps,
                                         "ambient": caps}


def _ambient_partly_inheritable(config):
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"]
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps[:2],
                                         "permitted": caps[:2], "inheritable": caps[1:],
                                         "ambient": caps}  # ambient: only CAP_KILL can be


CASES = {"runc-spec": (_as_is, True), "non-root-ambient": (_non_root_with_ambient, False),
         "ambient-partly-inheritable": (_ambient_partly_inheritable, True)}


class Runc(Runtime):
    def cmd(self, *args, log=False):
        return [RUNC, "--root", self.root] + [str(a) for a in args]


@pytest.fixture
def runc(tmp_path):
    rt = Runc(str(tmp_path / "runc-state"), str(tmp_path / "runc-log"))
    yield rt
    rt.cleanup()


@pytest.mark.parametrize("case", list(CASES))
def test_run_and_exec_caps_match_runc(case, tmp_path, demo_rootfs, runtime, runc):
    edit, warns = CASES[case]
    bundle = _runc_spec_bundle(str(tmp_path / "bundle"), demo_rootfs, edit)
    cid = "c" + uuid.uuid4().hex[:10]

    ours = runtime("run", "--bundle", bundle, cid)
    theirs = runc("run", "--bundle", bundle, cid)
    assert _caps(ours.stdout) == _caps(theirs.stdout)
    assert ("not raising" in ours.stderr) == warns, ours.stderr
    if case == "runc-spec":
        assert _caps(ours.stdout)["CapInh"] == _caps(ours.stdout)["CapAmb"] == "0" * 16

    # exec: the process gets the container's capabilities, exactly the same way
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["process"]["args"] = ["sleep", "300"]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    runtime("run", "-d", "--bundle", bundle, cid)
    runc("run", "-d", "--bundle", bundle, cid)
    ours = runtime("exec", cid, *STATUS)
    theirs = runc("exec", cid, *STATUS)
    assert _caps(ours.stdout) == _caps(theirs.stdout)


def test_exec_cap_flag_matches_runc(tmp_path, demo_rootfs, runtime, runc):
    """`exec --cap` adds to bounding, effective and permitted; not to inheritable."""
    def sleeper(config):
        config["process"]["args"] = ["sleep", "300"]

    bundle = _runc_spec_bundle(str(tmp_path / "bundle"), demo_rootfs, sleeper)
    cid = "c" + uuid.uuid4().hex[:10]
    runtime("run", "-d", "--bundle", bundle, cid)
    runc("run", "-d", "--bundle", bundle, cid)
    ours = runtime("exec", "--cap", "CAP_SYS_ADMIN", cid, *STATUS)
    theirs = runc("exec", "--cap", "CAP_SYS_ADMIN", cid, *STATUS)
    assert _caps(ours.stdout) == _caps(theirs.stdout)
    assert "CAP_SYS_ADMIN" not in ours.stderr  # asked for as a flag: no ambient warning
