"""`minirun kill`: send a signal to the container's init (or, with --all, to
every process in its cgroup)."""
import os
import signal

from minirun.errors import ContainerNotRunning, MinirunError
from minirun.runtime.state import STOPPED, Container


def parse_signal(value):
    """runc's forms: a number, "KILL" or "SIGKILL" (any case)."""
    text = str(value).strip()
    if text.isdigit():
        num = int(text)
        if not 0 < num < signal.NSIG:
            raise MinirunError(f"invalid signal {value!r}")
        return num
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        raise MinirunError(f"unknown signal {value!r}")
    return int(sig)


def kill(root, container_id, sig=signal.SIGTERM, all_processes=False):
    with Container.load(root, container_id) as container:
        status = container.status()
        if status == STOPPED:
            if all_processes:
                return  # runc: kill --all of a stopped container succeeds (ctr task delete -f)
            raise ContainerNotRunning(container_id)
        cgroup = container.cgroup()
        if all_processes and cgroup is not None:
            cgroup.kill_all(sig)
            return
        try:
            os.kill(container.pid, sig)
        except ProcessLookupError:
            raise ContainerNotRunning(container_id) from None
