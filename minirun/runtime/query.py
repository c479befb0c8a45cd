"""Read-only verbs: `state`, `list`, `ps`."""
import os

from minirun.runtime.state import Container, list_ids


def state(root, container_id):
    with Container.load(root, container_id, lock=False) as c:
        return c.oci_state()


def list_states(root, problems=None):
    """The OCI states of every container; one whose state file cannot be read
    is left out and its error appended to `problems` (when given)."""
    from minirun.errors import ContainerNotFound, StateCorrupt

    out = []
    for cid in list_ids(root):
        try:
            with Container.load(root, cid, lock=False) as c:
                out.append(c.oci_state())
        except ContainerNotFound:  # deleted while we listed
            continue
        except StateCorrupt as e:
            if problems is not None:
                problems.append(str(e))
    return out


def processes(root, container_id):
    """Host pids of every process in the container (its cgroup)."""
    from minirun.errors import ContainerNotRunning
    from minirun.runtime.state import STOPPED

    with Container.load(root, container_id, lock=False) as c:
        if c.status() == STOPPED:
            raise ContainerNotRunning(container_id)
        cg = c.cgroup()
        pids = cg.pids() if cg is not None else [c.pid]
    return sorted(pids)


def describe_process(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        st = os.stat(f"/proc/{pid}")
        with open(f"/proc/{pid}/stat") as f:
            ppid = f.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None
    return {"uid": st.st_uid, "pid": pid, "ppid": int(ppid), "cmd": cmd}
