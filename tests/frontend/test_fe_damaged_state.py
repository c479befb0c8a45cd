"""`rm -f` of a container whose runtime state file was damaged still kills its
processes (through the cgroup recorded before it was made) and removes it all."""
import os

from fe_helpers import wait_for


def test_rm_force_with_damaged_state_file(docker):
    cid = docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    pid = int(docker.inspect(cid, "{{.State.Pid}}"))
    with open(os.path.join(docker.root, cid, "state.json"), "w") as f:
        f.write('{"garbage')
    docker("rm", "-f", cid)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="the container's process")
    assert not docker.leftovers([cid])
