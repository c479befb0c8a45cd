"""`minirun start`: let a created container run its program.

The init is blocked opening <state>/exec.fifo for writing; opening the read
end releases it, and the byte it writes tells us it got past the FIFO.
"""
import os
import select
import time

from minirun.errors import InvalidState, MinirunError
from minirun import hooks
from minirun.runtime.state import CREATED, RUNNING, STOPPED, Container

_MESSAGES = {
    STOPPED: "cannot start a container that has stopped",
    RUNNING: "cannot start an already running container",
}


def start(root, container_id):
    with Container.load(root, container_id) as container:
        status = container.status()
        if status != CREATED:
            raise InvalidState(_MESSAGES.get(status, f"cannot start a container in the {status} state"))
        config = container.config()
        if config and hooks.has(config, "prestart"):
            # After `start` is called, before the program runs (the init
            # still waits on the FIFO), in the runtime's namespaces.
            try:
                hooks.run_phase(config, "prestart", container.oci_state(CREATED))
            except MinirunError:
                from minirun.runtime.delete import destroy

                destroy(container, run_poststop=False)
                raise
        _release(container)
        if config is not None and not (config.get("process") or {}).get("args"):
            raise InvalidState("cannot start a container without a process "
                               "(process is not set in config.json)")
        container.data["status"] = RUNNING
        container.save()
        if config and hooks.has(config, "poststart"):
            # The program may already have exited; the hook is told about the
            # moment it describes: the container started running.
            hooks.run_phase(config, "poststart", container.oci_state(RUNNING))


def _release(container):
    fd = os.open(container.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                data = os.read(fd, 1)
                if data == b"0":
                    break
            if not container.init_alive():
                raise MinirunError("container init exited before start")
            if not ready:
                time.sleep(0)
    finally:
        os.close(fd)
        os.unlink(container.fifo_path)
