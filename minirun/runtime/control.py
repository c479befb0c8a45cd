"""`pause`, `resume`, `update` and `events`: verbs that act on the cgroup of
a running container."""
import json
import sys
import time

from minirun.errors import ConfigError, ContainerNotRunning, InvalidState, MinirunError
from minirun.runtime.state import PAUSED, RUNNING, STOPPED, Container


def _cgroup(container):
    cg = container.cgroup()
    if cg is None:
        raise MinirunError("container has no cgroup")
    return cg


def pause(root, container_id):
    with Container.load(root, container_id) as c:
        status = c.status()
        if status != RUNNING:
            raise ContainerNotRunning(container_id) if status == STOPPED else \
                InvalidState(f"cannot pause a container that is {status}")
        _cgroup(c).freeze()


def resume(root, container_id):
    with Container.load(root, container_id) as c:
        if c.status() != PAUSED:
            raise InvalidState("container not paused")
        _cgroup(c).thaw()


def load_resources(path):
    try:
        if path == "-":
            data = sys.stdin.read()
        else:
            with open(path) as f:
                data = f.read()
        resources = json.loads(data)
    except OSError as e:
        raise ConfigError(f"resources file {path}: {e.strerror.lower()}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"resources: invalid JSON: {e}") from None
    if not isinstance(resources, dict):
        raise ConfigError("resources must be a JSON object (linux.resources)")
    return resources


def update(root, container_id, resources):
    from minirun import spec_validate

    spec_validate.check_resources(resources)  # the spec's types and ranges, before any write
    with Container.load(root, container_id) as c:
        if c.status() == STOPPED:
            raise ContainerNotRunning(container_id)
        _cgroup(c).update(resources)


def stats_event(root, container_id):
    with Container.load(root, container_id, lock=False) as c:
        if c.status() == STOPPED:
            raise ContainerNotRunning(container_id)
        return {"type": "stats", "id": container_id, "data": _cgroup(c).stats()}


def events(root, container_id, interval, write):
    """Print a stats event every `interval` seconds and an "oom" event when the
    OOM killer strikes, until the container stops."""
    with Container.load(root, container_id, lock=False) as c:
        cg = _cgroup(c)
        seen_ooms = cg.oom_kill_count()
        while c.status() != STOPPED:
            ooms = cg.oom_kill_count()
            if ooms > seen_ooms:
                write({"type": "oom", "id": container_id})
                seen_ooms = ooms
            write({"type": "stats", "id": container_id, "data": cg.stats()})
            time.sleep(interval)
