"""pause/resume, update, events --stats: verbs over the container's cgroup."""
import json
import time


def _sleeper(runtime, bundle, cid):
    bundle.process["args"] = ["sh", "-c", "sleep 300 & sleep 301"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    time.sleep(0.1)


def _proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_pause_resume(runtime, bundle, cid):
    _sleeper(runtime, bundle, cid)
    runtime("pause", cid)
    assert runtime.state(cid)["status"] == "paused"
    again = runtime("pause", cid, check=False)
    assert again.returncode != 0
    runtime("resume", cid)
    assert runtime.state(cid)["status"] == "running"
    not_paused = runtime("resume", cid, check=False)
    assert not_paused.returncode != 0 and "not paused" in not_paused.stderr


def test_delete_force_of_paused_container(runtime, bundle, cid):
    _sleeper(runtime, bundle, cid)
    pids = json.loads(runtime("ps", "--format", "json", cid).stdout)
    runtime("pause", cid)
    runtime("delete", "--force", cid)
    for pid in pids:
        try:
            assert _proc_state(pid) in ("Z", "X")
        except FileNotFoundError:
            pass


def test_kill_all_reaches_every_process(runtime, bundle, cid):
    _sleeper(runtime, bundle, cid)
    pids = json.loads(runtime("ps", "--format", "json", cid).stdout)
    assert len(pids) >= 2
    runtime("kill", "--all", cid, "KILL")
    for _ in range(300):
        if all(_gone(p) for p in pids):
            break
        time.sleep(0.01)
    assert all(_gone(p) for p in pids)


def _gone(pid):
    try:
        return _proc_state(pid) in ("Z", "X")
    except FileNotFoundError:
        return True


def test_update_and_stats(runtime, bundle, cid, tmp_path):
    _sleeper(runtime, bundle, cid)
    runtime("update", "--memory", str(64 << 20), "--pids-limit", "42", cid)
    (tmp_path / "r.json").write_text(json.dumps({"cpu": {"quota": 50000, "period": 100000}}))
    runtime("update", "--resources", tmp_path / "r.json", cid)
    stats = json.loads(runtime("events", "--stats", cid).stdout)
    assert stats["type"] == "stats" and stats["id"] == cid
    data = stats["data"]
    assert data["pids"]["current"] >= 2 and data["pids"]["limit"] == 42
    assert data["memory"]["usage"]["limit"] == 64 << 20
    bad = runtime("update", "--resources", tmp_path / "missing.json", cid, check=False)
    assert bad.returncode != 0 and "missing.json" in bad.stderr


def test_features_document(runtime):
    doc = json.loads(runtime("features").stdout)
    assert doc["ociVersionMin"] == "1.0.0"
    assert "user" in doc["linux"]["namespaces"] and "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]
