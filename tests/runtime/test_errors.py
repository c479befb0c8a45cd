"""Bad input: one clear line, runc's wording, a JSON line in --log, and
nothing half-made."""
import json
import os

from minirun_testlib import MINIRUN


def _last_log(runtime):
    with open(runtime.log) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    return lines[-1]


def test_missing_bundle(runtime, cid, tmp_path):
    out = runtime("create", "--bundle", tmp_path / "nope", cid, check=False, log=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    entry = _last_log(runtime)
    assert entry["level"] == "error" and "nope" in entry["msg"] and entry["time"].endswith("Z")
    assert runtime.ids() == []


def test_malformed_json(runtime, bundle, cid):
    with open(os.path.join(bundle.path, "config.json"), "w") as f:
        f.write("{not json")
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0 and "invalid JSON" in out.stderr and "Traceback" not in out.stderr
    assert runtime.ids() == []


def test_wrong_oci_version(runtime, bundle, cid):
    bundle.config["ociVersion"] = "0.9.0"
    bundle.save()
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0 and "ociVersion" in out.stderr
    assert runtime.ids() == []


def test_unknown_container(runtime):
    for verb in (["state"], ["start"], ["kill"], ["delete"], ["ps"]):
        out = runtime(*verb, "ghost", check=False, log=True)
        assert out.returncode != 0, verb
        assert "container does not exist" in out.stderr, verb
        assert _last_log(runtime)["msg"] == "container does not exist"


def test_duplicate_id(runtime, bundle, cid):
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    again = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert again.returncode != 0 and "exists" in again.stderr
    assert runtime.state(cid)["status"] == "created"


def test_invalid_id(runtime, bundle):
    out = runtime("create", "--bundle", bundle.path, "../escape", check=False)
    assert out.returncode != 0 and "invalid container id" in out.stderr


def test_start_of_stopped_container(runtime, bundle, cid):
    runtime("run", "-d", "--bundle", bundle.path, cid)  # `true` exits at once
    pid = runtime.state(cid)["pid"] or 0
    for _ in range(200):
        if runtime.state(cid)["status"] == "stopped":
            break
        import time
        time.sleep(0.01)
    out = runtime("start", cid, check=False)
    assert out.returncode != 0 and "stopped" in out.stderr
    assert pid >= 0


def test_log_file_exists_even_when_nothing_is_logged(runtime, bundle, cid):
    runtime("list", log=True)
    assert os.path.exists(runtime.log)


def test_usage_error_is_one_clear_line():
    import subprocess
    out = subprocess.run([MINIRUN, "kill"], capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr and "CONTAINER_ID" in out.stderr
