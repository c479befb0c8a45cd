"""`minirun kill`: send a signal to the container's init (or, with --all, to
every process in its cgroup)."""
import os

from minirun.errors import ContainerNotRunning, MinirunError
from minirun.linux import signals
from minirun.runtime.state import STOPPED, Container


def parse_signal(value):
    """runc's forms: a number, "KILL" or "SIGKILL" (any case)."""
    text = str(value).strip()
    if text.isdigit():
        num = int(text)
        if not 0 < num < signals.NSIG:
            raise MinirunError(f"invalid signal {value!r}")
        return num
    sig = signals.number(text)
    if sig is None:
        raise MinirunError(f"unknown signal {value!r}")
    return sig


def kill(root, container_id, sig=signals.SIGTERM, all_processes=False):
    with Container.load(root, container_id) as container:
        status = container.status()
        if status == STOPPED:
            if all_processes:
                return  # runc: kill --all of a stopped container succeeds (ctr task delete -f)
            raise ContainerNotRunning(container_id)
        cgroup = container.cgroup() if all_processes else None
        if cgroup is not None:
            cgroup.kill_all(sig)
            return
        try:
            os.kill(container.pid, sig)
        except ProcessLookupError:
            raise ContainerNotRunning(container_id) from None
