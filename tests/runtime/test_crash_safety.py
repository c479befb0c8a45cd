"""SIGKILL at any instant of `create` (`run -d`, `delete`) leaves nothing that
`delete --force` cannot remove; a damaged state.json is an error, never a
lost container.

The kill points are the kernel steps minirun announces in its trace, and
the silent checkpoints around its state files (minirun/linux/trace.py):
MINIRUN_FAULT_STEP=N makes the minirun process SIGKILL itself at its N-th.  After each kill we look for what it left in
every cgroup hierarchy, the mount table, the process table, the host's links
and nft rules; then `delete --force` must leave none of it.
"""
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from minirun_testlib import MINIRUN, build_busybox


def _cgroup_mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                out.append(fields[4])
    return out


def _processes_with(marker):
    """Pids whose environment holds marker (inherited from the minirun call,
    or given to the container's process by its config)."""
    found = []
    needle = marker.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read():
                    with open(f"/proc/{name}/stat") as st:
                        if st.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(name))
        except OSError:
            continue
    return found


def _nft_ruleset():
    try:
        return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                              timeout=30).stdout
    except FileNotFoundError:
        return ""


class Leaks:
    """What a container of ours can leave on the host, found without minirun."""

    def __init__(self, cid, cgroup_top, rootfs, marker):
        self.cid, self.cgroup_top, self.rootfs, self.marker = cid, cgroup_top, rootfs, marker

    def find(self):
        left = []
        for mount in _cgroup_mounts():
            path = os.path.join(mount, self.cgroup_top.strip("/"))
            if os.path.exists(path):
                left.append(f"cgroup {path}")
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4]
                if point == self.rootfs or point.startswith(self.rootfs + "/"):
                    left.append(f"mount {point}")
        left += [f"process {pid}" for pid in _processes_with(self.marker)]
        left += [f"link {name}" for name in os.listdir("/sys/class/net") if self.cid in name]
        if self.cid in _nft_ruleset():
            left.append("nft rule naming the container")
        return left

    def wait_gone(self, timeout=10):
        """What is still there once killed processes had time to exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.find()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)


def _make_bundle(tmp_path, marker, cgroups_path, mount_ns):
    from minirun.spec import default_spec

    bundle = tmp_path / "bundle"
    build_busybox.build_rootfs(str(bundle / "rootfs"))
    config = default_spec()
    config["process"].update(terminal=False, args=["sleep", "300"])
    config["process"]["env"].append(marker)
    config["root"] = {"path": "rootfs", "readonly": False}
    config["linux"]["cgroupsPath"] = cgroups_path
    if not mount_ns:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != "mount"]
    with open(bundle / "config.json", "w") as f:
        json.dump(config, f)
    return str(bundle)


def _minirun(root, *args, env=None):
    # Files, not pipes: a created container keeps our stdout/stderr open.
    with open(os.devnull, "wb") as null, tempfile.TemporaryFile() as err:
        result = subprocess.run([MINIRUN, "--root", root, *args], stdin=null, stdout=null,
                                stderr=err, env=env, timeout=120)
        err.seek(0)
        result.stderr = err.read()
    return result


# Every step of a plain create and of delete; every second or third of the
# variants (the time budget).  delete: of a created container without a mount
# namespace, so that its mounts in ours are among what it undoes.
@pytest.mark.parametrize("verb,mount_ns,stride", [("create", True, 1), ("create", False, 2),
                                                  ("run", True, 4), ("delete", False, 1)],
                         ids=["create", "create-no-mount-ns", "run-detached", "delete"])
def test_sigkill_at_every_step_leaves_nothing(tmp_path, verb, mount_ns, stride):
    cid = "f" + uuid.uuid4().hex[:10]
    marker = f"MINIRUN_FAULT_MARK={uuid.uuid4().hex}"
    top = f"/minirun-fault-{cid}"  # a parent of our own: its removal is checked too
    bundle = _make_bundle(tmp_path, marker, f"{top}/{cid}", mount_ns)
    leaks = Leaks(cid, top, os.path.join(bundle, "rootfs"), marker)
    root = str(tmp_path / "state")
    env = dict(os.environ, MINIRUN_FAULT_MARK=marker.partition("=")[2])
    args = {"create": ["create", "--bundle", bundle, cid],
            "run": ["run", "-d", "--bundle", bundle, cid],
            "delete": ["delete", "--force", cid]}[verb]
    killed_points = leaky_points = 0
    kinds = {}
    try:
        for step in range(1, 400, stride):
            if verb == "delete":
                env.pop("MINIRUN_FAULT_STEP", None)
                made = _minirun(root, "create", "--bundle", bundle, cid, env=env)
                assert made.returncode == 0, made.stderr.decode()
            env["MINIRUN_FAULT_STEP"] = str(step)
            result = _minirun(root, *args, env=env)
            finished = result.returncode == 0
            if not finished:
                assert result.returncode == -signal.SIGKILL, \
                    f"step {step}: {result.returncode} {result.stderr.decode()}"
                killed_points += 1
                left = leaks.find()
                if left:
                    leaky_points += 1  # expected: it is what delete --force is for
                for kind in {x.split()[0] for x in left}:
                    kinds[kind] = kinds.get(kind, 0) + 1
            gone = _minirun(root, "delete", "--force", cid)
            assert gone.returncode == 0, f"step {step}: {gone.stderr.decode()}"
            left = leaks.wait_gone()
            assert not left, f"killed at step {step}, delete --force left: {left}"
            assert not os.path.exists(os.path.join(root, cid)), f"step {step}: state dir left"
            if finished:
                break
        else:
            pytest.fail("the verb never finished: MINIRUN_FAULT_STEP counted too many steps")
    finally:
        _minirun(root, "delete", "--force", cid)
    # Enough kill points to mean something (create alone announces dozens of steps),
    # and some of them did leave objects for delete --force to remove.
    enough = 10 if verb == "delete" else 30
    assert killed_points * stride >= enough and leaky_points >= 5, (killed_points, leaky_points)
    if not mount_ns:
        assert kinds.get("mount"), kinds  # some kill points left mounts in our namespace
    print(f"{verb} mount_ns={mount_ns}: {killed_points} kill points, {leaky_points} left "
          f"objects ({kinds}), all removed by delete --force")



def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("damage,keep_objects", [
    ('{"garbage', True), ("", True), ("[]", True), ('{"id": "%s", "status": 7}', True),
    ('{"id": "%s", "status": "running", "pid": "12"}', True),
    ('{"id": "%s", "status": "running", "cgroup": "x"}', True),
    ('{"garbage', False),  # no objects.json: the cgroup is derived from id and config
], ids=["truncated", "empty", "array", "bad-status", "pid-string", "cgroup-string",
        "no-record"])
def test_damaged_state_file_is_an_error_not_a_lost_container(runtime, bundle, cid, damage,
                                                             keep_objects):
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    other = cid + "-ok"
    runtime("run", "-d", "--bundle", bundle.path, cid)
    runtime("run", "-d", "--bundle", bundle.path, other)
    pid = runtime.state(cid)["pid"]
    cgroup = json.load(open(os.path.join(runtime.root, cid, "state.json")))["cgroup"]
    dirs = list(cgroup.get("dirs", {}).values()) + [cgroup.get("unified") or cgroup.get("mount",
                                                                                         "")]
    dirs = [d for d in dirs if d and d.endswith(cid)]
    assert dirs
    path = os.path.join(runtime.root, cid, "state.json")
    with open(path, "w") as f:
        f.write(damage.replace("%s", cid))
    if not keep_objects:
        os.unlink(os.path.join(runtime.root, cid, "objects.json"))

    out = runtime("state", cid, check=False)
    assert out.returncode == 1 and path in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""
    listed = runtime("list", check=False)
    assert listed.returncode != 0 and other in listed.stdout and cid + " " not in listed.stdout
    assert path in listed.stderr and "Traceback" not in listed.stderr
    refused = runtime("delete", cid, check=False)
    assert refused.returncode == 1 and path in refused.stderr
    assert _alive(pid) and all(os.path.isdir(d) for d in dirs)  # nothing was touched

    runtime("delete", "--force", cid)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid), "delete --force did not kill the container's process"
    assert not any(os.path.exists(d) for d in dirs), dirs
    assert cid not in runtime.ids()
    assert runtime("list", "-q").stdout.split() == [other]
