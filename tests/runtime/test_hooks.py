"""OCI hooks: each phase at its moment, in its namespace, with the state on
stdin; failures abort (or only warn, for poststart/poststop)."""
import json
import os


def _hook(log, phase, extra=""):
    # Record the phase, the state's status and pid, and the hook's mount ns.
    script = (f'read -r state; echo "{phase} $(echo "$state" | grep -o \'"status": "[a-z]*"\' '
              f'| cut -d\\" -f4) $(readlink /proc/self/ns/mnt)" >> {log}; {extra}')
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def test_every_phase_in_order_with_state(runtime, bundle, cid, tmp_path):
    log = tmp_path / "hooks.log"
    phases = ["createRuntime", "createContainer", "prestart", "poststart", "poststop"]
    bundle.config["hooks"] = {p: [_hook(log, p)] for p in phases}
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    created = [ln.split()[0] for ln in log.read_text().splitlines()]
    assert created == ["createRuntime", "createContainer"], "prestart waits for start"
    runtime("start", cid)
    runtime("delete", "--force", cid)
    lines = log.read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["createRuntime", "createContainer", "prestart",
                                               "poststart", "poststop"]
    host_mnt = os.readlink("/proc/self/ns/mnt")
    info = {ln.split()[0]: ln.split()[1:] for ln in lines}
    assert info["createRuntime"][0] == "creating" and info["prestart"][0] == "created"
    assert info["poststart"][0] == "running" and info["poststop"][0] == "stopped"
    # createContainer runs in the container's (new) mount namespace, before
    # pivot_root; the others in the runtime's.
    assert info["createContainer"][1] != host_mnt
    for phase in ("createRuntime", "prestart", "poststart", "poststop"):
        assert info[phase][1] == host_mnt, phase


def test_start_container_hook_runs_inside_before_the_program(runtime, private_bundle, cid):
    log = "/hooks.log"  # after pivot_root: the container's own file
    bundle = private_bundle
    bundle.config["hooks"] = {"startContainer": [_hook(log, "startContainer")]}
    bundle.process["args"] = ["sh", "-c", "echo program >> /hooks.log"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    path = os.path.join(bundle.path, "rootfs", "hooks.log")
    assert not os.path.exists(path), "startContainer waits for start"
    runtime("start", cid)
    for _ in range(300):
        if os.path.exists(path) and "program" in open(path).read():
            break
        import time
        time.sleep(0.01)
    lines = open(path).read().splitlines()
    assert [ln.split()[0] for ln in lines] == ["startContainer", "program"]
    assert lines[0].split()[1] == "running"
    assert lines[0].split()[2] != os.readlink("/proc/self/ns/mnt")


def test_failing_prestart_aborts_and_cleans_up(runtime, bundle, cid):
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    pid = runtime.state(cid)["pid"]
    out = runtime("start", cid, check=False)
    assert out.returncode != 0 and "prestart hook" in out.stderr
    assert not os.path.exists(f"/proc/{pid}/cmdline") or \
        open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in "ZX"
    assert runtime.ids() == []


def test_failing_create_runtime_hook_fails_create(runtime, bundle, cid):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                                 "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    bundle.save()
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0 and "createRuntime hook" in out.stderr and "nope" in out.stderr
    assert runtime.ids() == []


def test_failing_poststart_and_poststop_only_warn(runtime, bundle, cid, tmp_path):
    marker = tmp_path / "second"
    bundle.config["hooks"] = {
        "poststart": [{"path": "/bin/false"}],
        "poststop": [{"path": "/bin/false"},
                     {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}],
    }
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    started = runtime("start", cid)
    assert "warning" in started.stderr
    deleted = runtime("delete", "--force", cid)
    assert "warning" in deleted.stderr and marker.exists(), "later poststop hooks still run"


def test_hook_timeout(runtime, bundle, cid):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                                 "timeout": 1}]}
    bundle.save()
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode != 0 and "timed out" in out.stderr
    assert runtime.ids() == []


def test_hook_env_and_args(runtime, bundle, cid, tmp_path):
    out_file = tmp_path / "env"
    bundle.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", f'echo "$0 $GREETING" > {out_file}', "arg0x"],
        "env": ["GREETING=hi"]}]}
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    assert out_file.read_text() == "arg0x hi\n"
    state = json.loads(runtime("state", cid).stdout)
    assert state["status"] == "created"
